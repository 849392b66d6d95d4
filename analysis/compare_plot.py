"""Comparison plots of several scenarios: step time split by category and memory per GPU vs capacity
(compare.png); throughput and MFU against the GPU count when the scenarios differ in it (compare_scaling.png)."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from analysis.plots import save_figure  # noqa: E402
from simulator.results.labels import gpu_count  # noqa: E402

GB = 1e9


def plot_comparison(results: list[dict[str, Any]], path: Path) -> Path:
    names = [r["name"] for r in results]
    categories = [c for c in results[0]["step"]["breakdown_s"] if any(r["step"]["breakdown_s"][c] > 0 for r in results)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.6 * len(results) + 3))
    cmap = plt.get_cmap("tab20")
    left = [0.0] * len(results)
    for i, c in enumerate(categories):
        values = [r["step"]["breakdown_s"][c] for r in results]
        ax1.barh(names, values, left=left, color=cmap(i % 20), label=c.replace("_", " "))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax1.set_xlabel("step time (s), average GPU")
    ax1.set_title("where the step goes")
    ax1.invert_yaxis()
    ax1.legend(fontsize=7, ncol=2, loc="lower right")
    peaks = [r["memory"]["peak_bytes"] / GB for r in results]
    caps = [r["memory"]["capacity_bytes"] / GB for r in results]
    colours = ["#55a868" if r["feasible"] else "#c44e52" for r in results]
    ax2.barh(names, peaks, color=colours)
    ax2.scatter(caps, names, marker="|", s=400, color="black", label="GPU capacity")
    ax2.set_xlabel("peak memory per GPU (GB); red = does not fit")
    ax2.set_title("memory")
    ax2.invert_yaxis()
    ax2.legend(fontsize=8)
    return save_figure(fig, path)


def plot_scaling(results: list[dict[str, Any]], path: Path) -> Path | None:
    """Tokens/s and MFU against the GPU count (dp * tp * pp * cp) of each scenario, one line per model,
    with linear scaling from each model's smallest run for reference. None (nothing written) unless
    the scenarios differ in GPU count."""
    gpus = [g for g in (gpu_count(r) for r in results) if g is not None]
    if len(gpus) < len(results) or len(set(gpus)) < 2:
        return None
    ticks = sorted(set(gpus))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    models: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for g, r in zip(gpus, results, strict=True):
        models.setdefault(r.get("model", {}).get("name", r["name"]), []).append((g, r))
    cmap = plt.get_cmap("tab10")
    for m, (model, runs) in enumerate(models.items()):
        runs.sort(key=lambda gr: gr[0])
        ok = [(g, r) for g, r in runs if r["feasible"]]
        colour = cmap(m % 10)
        xs = [g for g, _ in ok]
        tokens = [r["step"]["tokens_per_s"] for _, r in ok]
        ax1.plot(xs, tokens, "o-", color=colour, label=model)
        ax2.plot(xs, [100 * r["step"]["mfu"] for _, r in ok], "o-", color=colour, label=model)
        if len(ok) > 1:
            ax1.plot(xs, [tokens[0] * g / xs[0] for g in xs], ":", color=colour, lw=1)
        for g, r in runs:
            if not r["feasible"]:
                ax1.plot(g, r["step"]["tokens_per_s"], "x", color="#c44e52", ms=9)
                ax2.plot(g, 100 * r["step"]["mfu"], "x", color="#c44e52", ms=9)
    ax1.plot([], [], ":", color="grey", label="linear scaling")
    if not all(r["feasible"] for r in results):
        ax1.plot([], [], "x", color="#c44e52", ls="none", label="does not fit in memory")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(g) for g in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("GPUs (dp x tp x pp x cp)")
        ax.grid(alpha=0.3, which="both")
    ax1.set_yscale("log")
    ax1.set_ylabel("throughput (tokens/s)")
    ax1.set_title("throughput")
    ax1.legend(fontsize=8)
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("MFU (%)")
    ax2.set_title("model FLOPs utilisation")
    return save_figure(fig, path)
