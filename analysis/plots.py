"""PNG plots of one simulated step (written by `simulator run --out`): where the time goes, memory
per GPU against capacity, the pipeline timeline of one data-parallel replica, the cluster's power
through the step, utilisation per stage, and the cluster's power through a stretch of the whole run."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from simulator.units import us_to_s  # noqa: E402

GB = 1e9
PASS_COLOURS = {"forward": "#4c72b0", "backward": "#dd8452", "other": "#55a868", "wait": "#e0e0e0"}


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write at the plots' common resolution and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_breakdown(result: dict[str, Any], path: Path) -> Path:
    step = result["step"]
    items = sorted(((k, v) for k, v in step["breakdown_s"].items() if v > 0), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(items) + 1.5))
    ax.barh([k.replace("_", " ") for k, _ in items], [v for _, v in items], color="#4c72b0")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.2f} s ({100 * v / step['time_s']:.1f} %)", va="center", fontsize=8)
    ax.set_xlabel("seconds per step (average GPU)")
    ax.set_xlim(0, max(v for _, v in items) * 1.3)
    ax.set_title(f"{result['name']}: step {step['time_s']:.2f} s, MFU {100 * step['mfu']:.1f} %")
    return save_figure(fig, path)


def plot_memory(name: str, per_stage: list[dict[str, float]], capacity_bytes: float, path: Path) -> Path:
    """Stacked bytes per GPU of every pipeline stage with the HBM capacity line."""
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(per_stage) + 3), 4.5))
    bottom = [0.0] * len(per_stage)
    stages = [str(s) for s in range(len(per_stage))]
    handles = []
    for kind in per_stage[0]:
        values = [st[kind] / GB for st in per_stage]
        handles.append(ax.bar(stages, values, bottom=bottom, label=kind))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    cap = ax.axhline(capacity_bytes / GB, color="red", linestyle="--", label=f"capacity {capacity_bytes / GB:.0f} GB")
    pad = max(0.0, (3 - len(per_stage)) / 2)  # a single stage stays a bar, not a wall
    ax.set_xlim(-0.5 - pad, len(per_stage) - 0.5 + pad)
    ax.set_xlabel("pipeline stage")
    ax.set_ylabel("GB per GPU")
    ax.set_title(f"{name}: memory per GPU")
    # legend top-down in the order of the stack
    ax.legend(handles=[cap, *handles[::-1]], fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def timeline_bars(trace: dict[str, Any]) -> tuple[int, dict[str, list[tuple[int, float, float]]]]:
    """Pipeline stages of one replica and their compute-stream intervals (stage, start_s, duration_s)
    by kind, read from a Chrome trace (simulator/results/trace.py: pid = rank, tid 0 = compute stream,
    cat "wait" for idle, the stream name for a forward/backward span, layers and kernels below it)."""
    events = trace["traceEvents"]
    labels = [e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"]
    pp = sum(1 for label in labels if label.startswith("stage") and "replica" not in label)
    bars: dict[str, list[tuple[int, float, float]]] = {k: [] for k in PASS_COLOURS}
    for e in events:
        if e.get("ph") != "X" or e.get("tid") != 0 or e["pid"] >= pp or e.get("cat") not in ("compute", "wait"):
            continue
        name = e["name"]
        kind = (
            "wait"
            if e["cat"] == "wait"
            else "forward"
            if "forward" in name
            else ("backward" if "backward" in name else "other")
        )
        bars[kind].append((e["pid"], us_to_s(e["ts"]), us_to_s(e["dur"])))
    return pp, bars


def plot_timeline(name: str, trace: dict[str, Any], time_s: float, path: Path) -> Path:
    """Gantt chart of every stage's compute stream in one replica: forward, backward, waits."""
    pp, bars = timeline_bars(trace)
    fig, ax = plt.subplots(figsize=(12, 0.45 * pp + 1.8))
    for kind, rows in bars.items():
        for stage in range(pp):
            ranges = [(start, dur) for st, start, dur in rows if st == stage]
            ax.broken_barh(ranges, (stage - 0.4, 0.8), facecolors=PASS_COLOURS[kind], edgecolor="none")
    ax.set_yticks(range(pp), [f"stage {i}" for i in range(pp)])
    ax.set_ylim(pp - 0.5, -0.5)
    ax.set_xlim(0, time_s)
    ax.set_xlabel("time in the step (s)")
    ax.set_title(f"{name}: pipeline timeline (one data-parallel replica)")
    handles = [
        Patch(color=c, label=k if k != "wait" else "waiting (bubble, comm)") for k, c in PASS_COLOURS.items() if bars[k]
    ]
    # at the right, outside the axes: clear of the time axis however few stages there are
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    return save_figure(fig, path)


PHASE_COLOURS = {
    "warm-up": "#c6dbef",
    "steady 1F1B": "#ffffff",
    "cool-down": "#c6dbef",
    "gradient reduction": "#fdd0a2",
    "optimizer": "#c7e9c0",
}


def power_series(trace: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The cluster's IT power counter of a trace (simulator/results/trace.py power_counters): times (s)
    and MW, a step function holding each value until the next."""
    from simulator.results.trace import CLUSTER_PID, CLUSTER_POWER

    points = [
        (us_to_s(e["ts"]), e["args"]["MW"])
        for e in trace["traceEvents"]
        if e.get("ph") == "C" and e.get("pid") == CLUSTER_PID and e.get("name") == CLUSTER_POWER
    ]
    return [t for t, _ in points], [v for _, v in points]


def step_phases(trace: dict[str, Any]) -> list[tuple[str, float, float]]:
    """Phases of stage 0's step from its compute spans: pipeline warm-up (forwards only) to the first
    backward, the steady state to the last forward, cool-down to the last backward, then the gradient
    reduction it waits for and the optimizer step."""
    spans = [
        (e["name"], us_to_s(e["ts"]), us_to_s(e["ts"] + e["dur"]))
        for e in trace["traceEvents"]
        if e.get("ph") == "X" and e.get("pid") == 0 and e.get("tid") == 0 and e.get("cat") == "compute"
    ]
    backward = [(s, e) for n, s, e in spans if "backward" in n]
    forward = [(s, e) for n, s, e in spans if "forward" in n]
    optimizer = [(s, e) for n, s, e in spans if n == "optimizer"]
    if not backward or not forward or not optimizer:
        return []
    first_b, last_f = min(s for s, _ in backward), max(e for _, e in forward)
    last_b, (opt_s, opt_e) = max(e for _, e in backward), optimizer[0]
    cuts = [
        ("warm-up", 0.0, first_b),
        ("steady 1F1B", first_b, last_f),
        ("cool-down", last_f, last_b),
        ("gradient reduction", last_b, opt_s),
        ("optimizer", opt_s, opt_e),
    ]
    return [(k, a, b) for k, a, b in cuts if b > a]


def plot_power(name: str, trace: dict[str, Any], time_s: float, path: Path) -> Path | None:
    """The cluster's IT power (MW) through the step with stage 0's phases shaded; None without counters."""
    times, mw = power_series(trace)
    if not times:
        return None
    fig, ax = plt.subplots(figsize=(12, 3.8))
    phases = step_phases(trace)
    for phase, a, b in phases:
        ax.axvspan(a, b, color=PHASE_COLOURS[phase], alpha=0.8, lw=0)
    ax.step(times, mw, where="post", color="#c44e52", lw=1.0)
    ax.set_xlim(0, time_s)
    ax.set_ylim(0, max(mw) * 1.1)
    ax.set_xlabel("time in the step (s)")
    ax.set_ylabel("cluster IT power (MW)")
    ax.set_title(f"{name}: cluster power through the step (phases of stage 0)")
    shown = dict.fromkeys(k for k, _, _ in phases)
    handles = [Patch(facecolor=PHASE_COLOURS[k], edgecolor="#999999", label=k) for k in shown]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    return save_figure(fig, path)


RUN_PHASE_STYLE = {  # phase of run.power_window -> (legend label, shading)
    "training": ("training", "#ffffff"),
    "checkpoint": ("checkpoint write (job blocked)", "#9ecae1"),
    "stopped": ("failure: job stopped, nodes idle", "#fcbba1"),
    "restart": ("restart: checkpoint load", "#fdd0a2"),
    "redo": ("lost work done again", "#dadaeb"),
}


def plot_run_power(result: dict[str, Any], path: Path) -> Path | None:
    """The cluster's IT and facility power (MW) through the run's representative stretch around a
    failure (run.power_window: simulator/training_run/window.py), phases shaded; training drawn at the
    step's mean with the step's own minimum-to-peak band. None when the result has no window."""
    window = (result.get("run") or {}).get("power_window")
    if not window or not window["intervals"]:
        return None
    intervals = window["intervals"]
    span_s = intervals[-1]["end_s"]
    unit, per = ("h", 3600.0) if span_s > 3 * 3600 else ("min", 60.0)
    fig, ax = plt.subplots(figsize=(12, 4.2))
    shown: dict[str, None] = {}
    for iv in intervals:
        a, b = iv["start_s"] / per, iv["end_s"] / per
        if iv["phase"] != "training":
            ax.axvspan(a, b, color=RUN_PHASE_STYLE[iv["phase"]][1], alpha=0.9, lw=0)
        shown[iv["phase"]] = None
    power = result.get("power") or {}
    low, peak = power.get("cluster_W_min"), power.get("cluster_W_peak")
    if low is not None and peak is not None and peak > low:
        for iv in (iv for iv in intervals if iv["phase"] in ("training", "redo")):
            ax.fill_between(
                [iv["start_s"] / per, iv["end_s"] / per], low / 1e6, peak / 1e6, color="#c44e52", alpha=0.12, lw=0
            )
    times = [iv["start_s"] / per for iv in intervals] + [span_s / per]
    it_mw = [iv["cluster_W"] / 1e6 for iv in intervals]
    fac_mw = [iv["facility_W"] / 1e6 for iv in intervals]
    ax.step(times, [*it_mw, it_mw[-1]], where="post", color="#c44e52", lw=1.2)
    ax.step(times, [*fac_mw, fac_mw[-1]], where="post", color="#555555", lw=1.0, ls="--")
    ax.set_xlim(0, span_s / per)
    top = max(max(fac_mw), (peak or 0.0) / 1e6) * 1.1
    ax.set_ylim(0, top)
    named: set[str] = set()
    for iv in intervals:  # a phase too short to see at this scale: its length written beside its first one
        d = iv["end_s"] - iv["start_s"]
        if iv["phase"] != "training" and iv["phase"] not in named and d < 0.01 * span_s:
            named.add(iv["phase"])
            label = f" {iv['phase']} {d:.3g} s"
            ax.text(iv["end_s"] / per, 0.02 * top, label, rotation=90, fontsize=7, va="bottom", color="#333333")
    ax.set_xlabel(f"time in the stretch ({unit})")
    ax.set_ylabel("cluster power (MW)")
    mtbf = window.get("mtbf_s")
    around = f"around a failure (one every {mtbf / 3600:.1f} h on average)" if mtbf else "(no failure rate)"
    what_if = "; what-if: the reliability model is off" if window.get("what_if") else ""
    ax.set_title(f"{result['name']}: cluster power through the run, {around}{what_if}", fontsize=10)
    handles: list[Any] = [
        Line2D([], [], color="#c44e52", lw=1.2, label="IT (GPUs, nodes, switches)"),
        Line2D([], [], color="#555555", lw=1.0, ls="--", label=f"facility (x PUE {window['pue']:g})"),
    ]
    if low is not None and peak is not None and peak > low:
        handles.append(Patch(facecolor="#c44e52", alpha=0.12, label="within a step: minimum to peak"))
    handles += [
        Patch(facecolor=RUN_PHASE_STYLE[k][1], edgecolor="#999999", label=RUN_PHASE_STYLE[k][0])
        for k in RUN_PHASE_STYLE
        if k in shown
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    return save_figure(fig, path)


def plot_utilisation(name: str, utilisation: list[float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(utilisation) + 2), 3.8))
    ax.bar([str(i) for i in range(len(utilisation))], [100 * u for u in utilisation], color="#55a868")
    ax.set_ylim(0, 100)
    ax.set_xlabel("pipeline stage (x replica in full fidelity)")
    ax.set_ylabel("compute busy (% of step)")
    ax.set_title(f"{name}: utilisation per stage")
    return save_figure(fig, path)


def stage_memory(memory: dict[str, Any]) -> list[dict[str, float]]:
    """Bytes per category of every pipeline stage; a result written before `per_stage_bytes`
    existed has only its most loaded stage."""
    return memory.get("per_stage_bytes") or [memory["per_gpu_bytes"]]


def write_step_plots(result: dict[str, Any], trace: dict[str, Any] | None, out_dir: Path) -> list[Path]:
    """The step plots of a result JSON (contract section 3) and, for the Gantt, its Chrome trace:
    the one code path of `simulator run --out` and `simulator plot`."""
    name = result["name"]
    paths = [
        plot_breakdown(result, out_dir / "breakdown.png"),
        plot_memory(name, stage_memory(result["memory"]), result["memory"]["capacity_bytes"], out_dir / "memory.png"),
    ]
    if trace is not None:
        paths.append(plot_timeline(name, trace, result["step"]["time_s"], out_dir / "timeline.png"))
        power = plot_power(name, trace, result["step"]["time_s"], out_dir / "power.png")
        if power is not None:
            paths.append(power)
    run_power = plot_run_power(result, out_dir / "run_power.png")
    if run_power is not None:
        paths.append(run_power)
    if "stage_utilisation" in result["step"]:
        paths.append(plot_utilisation(name, result["step"]["stage_utilisation"], out_dir / "utilisation.png"))
    return paths
