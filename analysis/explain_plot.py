"""Plot of `simulator explain`: shares of time, energy and money by operation, as stacked bars."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_shares(report: dict[str, Any], path: Path) -> Path:
    shares = report["shares"]
    totals = report["totals"]
    metrics = [("time_s", "time"), ("energy_J", "energy"), ("cost_usd", "money")]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    cmap = plt.get_cmap("tab20")
    left = [0.0] * len(metrics)
    for i, s in enumerate(shares):
        widths = [100 * s[key] / totals[key] if totals[key] else 0.0 for key, _ in metrics]
        ax.barh([m for _, m in metrics], widths, left=left, color=cmap(i % 20), label=s["label"])
        for j, w in enumerate(widths):
            if w >= 4:
                ax.text(left[j] + w / 2, j, f"{w:.0f}%", ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of one training step (%)")
    ax.invert_yaxis()
    ax.set_title(f"{report['name']}: where the time, energy and money go (step {report['step_time_s']:.2f} s)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
