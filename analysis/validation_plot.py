"""Plot of `simulator validate --plot`: predicted against published step time for every case, and the
spread of the signed error per group."""

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.plots import save_figure  # noqa: E402
from simulator.validation.runner import Row  # noqa: E402

TIME = "iteration_time_s"


def plot_validation(rows: Sequence[Row], path: Path) -> Path:
    """Left: log-log scatter of predicted against published step time, one colour per group, with
    the +-10 % and +-25 % bands. Right: each group's signed errors (one dot per case, its MAPE
    written beside it), groups ordered by MAPE."""
    by_group: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.metric == TIME and r.predicted is not None:
            by_group[r.group].append(r)
    groups = sorted(by_group, key=lambda g: mean(abs(r.error_pct or 0.0) for r in by_group[g]))
    cmap = plt.get_cmap("tab20")
    colour = {g: cmap(i % 20) for i, g in enumerate(groups)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, max(6.0, 0.38 * len(groups) + 2.5)))

    times = [t for g in groups for r in by_group[g] for t in (r.published, r.predicted or r.published)]
    lo, hi = min(times) / 1.5, max(times) * 1.5
    line = [lo, hi]
    ax.plot(line, line, color="black", lw=1)
    for band, alpha in ((0.10, 0.18), (0.25, 0.08)):
        ax.fill_between(
            line, [x * (1 - band) for x in line], [x * (1 + band) for x in line], color="grey", alpha=alpha, lw=0
        )
    for g in groups:
        pts = by_group[g]
        ax.scatter([r.published for r in pts], [r.predicted for r in pts], s=10, color=colour[g], label=g, alpha=0.75)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published step time (s)")
    ax.set_ylabel("predicted step time (s)")
    ax.set_title("every case (bands: +-10 % and +-25 %)")
    ax.legend(fontsize=7, loc="upper left", frameon=False)

    for i, g in enumerate(groups):
        errs = [r.error_pct or 0.0 for r in by_group[g]]
        jitter = [i + 0.3 * ((k * 0.618) % 1 - 0.5) for k in range(len(errs))]
        bx.scatter(errs, jitter, s=8, color=colour[g], alpha=0.6)
        bx.text(
            1.01,
            i,
            f"{mean(abs(e) for e in errs):.1f} % ({len(errs)})",
            transform=bx.get_yaxis_transform(),
            va="center",
            fontsize=8,
        )
    for x in (-25, -10, 10, 25):
        bx.axvline(x, color="grey", lw=0.8, ls=":" if abs(x) == 25 else "--")
    bx.axvline(0, color="black", lw=1)
    bx.set_yticks(range(len(groups)), groups, fontsize=8)
    bx.invert_yaxis()
    bx.set_xlabel("error of the predicted step time (%): positive is slower than published")
    bx.set_title("per group: one dot per case; MAPE (cases) on the right")
    return save_figure(fig, path)
