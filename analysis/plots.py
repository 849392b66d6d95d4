"""PNG plots of one simulated step (written by `simulator run --out`): where the time goes, memory
per GPU against capacity, the pipeline timeline of one data-parallel replica, utilisation per stage."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

GB = 1e9
PASS_COLOURS = {"forward": "#4c72b0", "backward": "#dd8452", "other": "#55a868", "wait": "#e0e0e0"}


def _save(fig: Any, path: Path) -> Path:
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
    return _save(fig, path)


def plot_memory(name: str, per_stage: list[dict[str, float]], capacity_bytes: float, path: Path) -> Path:
    """Stacked bytes per GPU of every pipeline stage with the HBM capacity line."""
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(per_stage) + 3), 4.5))
    bottom = [0.0] * len(per_stage)
    stages = [str(s) for s in range(len(per_stage))]
    for kind in per_stage[0]:
        values = [st[kind] / GB for st in per_stage]
        ax.bar(stages, values, bottom=bottom, label=kind)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.axhline(capacity_bytes / GB, color="red", linestyle="--", label=f"capacity {capacity_bytes / GB:.0f} GB")
    ax.set_xlabel("pipeline stage")
    ax.set_ylabel("GB per GPU")
    ax.set_title(f"{name}: memory per GPU")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_timeline(name: str, spans: list[Any], pp: int, time_s: float, path: Path) -> Path:
    """Gantt chart of every stage's compute stream in one replica: forward, backward, waits."""
    fig, ax = plt.subplots(figsize=(12, 0.45 * pp + 1.8))
    bars: dict[str, list[tuple[int, float, float]]] = {k: [] for k in PASS_COLOURS}
    for s in spans:
        if s.stream.value != "compute" or s.rank >= pp:
            continue
        kind = (
            "wait"
            if s.wait is not None
            else "forward"
            if "forward" in s.name
            else ("backward" if "backward" in s.name else "other")
        )
        bars[kind].append((s.rank, s.start_s, s.duration_s))
    for kind, rows in bars.items():
        for stage in range(pp):
            ranges = [(start, dur) for st, start, dur in rows if st == stage]
            ax.broken_barh(ranges, (stage - 0.4, 0.8), facecolors=PASS_COLOURS[kind], edgecolor="none")
    ax.set_yticks(range(pp), [f"stage {i}" for i in range(pp)])
    ax.invert_yaxis()
    ax.set_xlim(0, time_s)
    ax.set_xlabel("time in the step (s)")
    ax.set_title(f"{name}: pipeline timeline (one data-parallel replica)")
    handles = [Patch(color=c, label=k if k != "wait" else "waiting (bubble, comm)") for k, c in PASS_COLOURS.items()]
    ax.legend(handles=handles, ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return _save(fig, path)


def plot_utilisation(name: str, utilisation: list[float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(utilisation) + 2), 3.8))
    ax.bar([str(i) for i in range(len(utilisation))], [100 * u for u in utilisation], color="#55a868")
    ax.set_ylim(0, 100)
    ax.set_xlabel("pipeline stage (x replica in full fidelity)")
    ax.set_ylabel("compute busy (% of step)")
    ax.set_title(f"{name}: utilisation per stage")
    return _save(fig, path)


def write_step_plots(
    result: dict[str, Any], spans: list[Any], per_stage_memory: list[dict[str, float]], pp: int, out_dir: Path
) -> list[Path]:
    name = result["name"]
    paths = [
        plot_breakdown(result, out_dir / "breakdown.png"),
        plot_memory(name, per_stage_memory, result["memory"]["capacity_bytes"], out_dir / "memory.png"),
    ]
    if spans:
        paths.append(plot_timeline(name, spans, pp, result["step"]["time_s"], out_dir / "timeline.png"))
    if "stage_utilisation" in result["step"]:
        paths.append(plot_utilisation(name, result["step"]["stage_utilisation"], out_dir / "utilisation.png"))
    return paths
