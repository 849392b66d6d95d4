"""Comparison plot of several scenarios: step time split by category, and memory per GPU vs capacity."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
