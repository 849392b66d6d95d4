"""PNG plots of one simulated step (written by `simulator run --out`): where the time goes, memory
per GPU against capacity, the pipeline timeline of one data-parallel replica, the cluster's power
through the step, utilisation per stage."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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
    if "stage_utilisation" in result["step"]:
        paths.append(plot_utilisation(name, result["step"]["stage_utilisation"], out_dir / "utilisation.png"))
    return paths
