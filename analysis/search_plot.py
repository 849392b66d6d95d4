"""Plots of `simulator search`: the time/cost and time/energy trade-offs of every feasible plan with
the Pareto front (search_pareto.png), and where the step time of the best plans goes (search_top.png)."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from analysis.compare_plot import plot_scaling  # noqa: E402
from simulator.results.labels import plan_label  # noqa: E402

LABELLED = 5  # best plans named on the scatter
TOP = 15  # plans in the bar chart
LOG_SPAN = 8.0  # an axis whose values span more than this factor is drawn in log scale


def plot_search(search: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write search_pareto.png and search_top.png for a search result (contract section 4)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ranked = [(i, r) for i, r in enumerate(search["results"]) if r.get("feasible", True)]
    paths = [
        plot_pareto(search, ranked, out_dir / "search_pareto.png"),
        plot_top(search, ranked, out_dir / "search_top.png"),
    ]
    best = [p["best"] for p in search.get("sweep", []) if p.get("best")]
    scaling = plot_scaling(best, out_dir / "search_scaling.png") if best else None  # a sweep over cluster sizes
    return paths + ([scaling] if scaling else [])


def _panels(results: list[dict[str, Any]]) -> list[tuple[str, list[float]]]:
    """(y label, values) of each panel: the run's cost and energy when every plan has a run, else
    the step's cost (when the search wrote it) and energy per GPU."""
    if results and all("cost_usd" in r.get("run", {}) for r in results):
        return [
            ("cost of the whole run (USD)", [r["run"]["cost_usd"] for r in results]),
            ("energy of the whole run (MWh)", [r["run"].get("energy_mwh", 0.0) for r in results]),
        ]
    panels = []
    if all("objectives" in r for r in results):
        panels.append(("cost of one step (USD)", [r["objectives"]["cost"] for r in results]))
    panels.append(("energy per GPU per step (J)", [r["step"].get("energy_J_per_gpu", 0.0) for r in results]))
    return panels


def _title(search: dict[str, Any], ranked: list[tuple[int, dict[str, Any]]]) -> str:
    name = search["results"][0]["name"] if search["results"] else "search"
    objective = search.get("objective")
    best = f", ranked by {objective}" if objective else ""
    return f"{name}: {search.get('feasible', len(ranked))} feasible of {search['candidates_evaluated']} plans{best}"


def plot_pareto(search: dict[str, Any], ranked: list[tuple[int, dict[str, Any]]], path: Path) -> Path:
    """Step time against cost and against energy (one panel each), every feasible plan coloured by
    its peak memory per GPU (how much headroom it leaves), the time/cost/energy Pareto front circled."""
    results = [r for _, r in ranked]
    panels = _panels(results)
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 6.5), squeeze=False)
    axes = axes[0]
    fig.suptitle(_title(search, ranked), fontsize=12)
    if not ranked:
        for ax in axes:
            ax.text(0.5, 0.5, "no feasible plan", ha="center", va="center", transform=ax.transAxes, fontsize=14)
            ax.set_axis_off()
        return _save(fig, path)
    xs = [r["step"]["time_s"] for r in results]
    memory_GB = [r["memory"]["peak_bytes"] / 1e9 for r in results]
    front = _front(search, ranked, xs)
    for ax, (y_label, ys) in zip(axes, panels, strict=True):
        sc = ax.scatter(xs, ys, c=memory_GB, cmap="viridis", s=28, alpha=0.85, zorder=2)
        fx, fy = [xs[k] for k in front], [ys[k] for k in front]
        ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="#c44e52", linewidths=1.6, zorder=4)
        ax.set_xlabel("step time (s)")
        ax.set_ylabel(y_label)
        _log_if_wide(ax, xs, ys)
        if "(USD)" in y_label:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _usd(v)))
        ax.grid(alpha=0.3, which="both")
    fig.colorbar(sc, ax=list(axes), label="peak memory per GPU (GB)", fraction=0.03, pad=0.02)
    _label_best(axes[0], xs, panels[0][1], results[:LABELLED])
    plans = "plan" if len(front) == 1 else "plans"
    label = f"Pareto front over time, cost and energy ({len(front)} {plans})"
    handles = [Line2D([], [], ls="none", marker="o", mfc="none", mec="#c44e52", ms=9, label=label)]
    axes[0].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=9, frameon=False)
    return _save(fig, path)


def _front(search: dict[str, Any], ranked: list[tuple[int, dict[str, Any]]], xs: list[float]) -> list[int]:
    """Positions in `ranked` of the Pareto front: the search's own `pareto` indices when it wrote
    them, else computed from the plans' objectives (none when they have no objectives)."""
    given = search.get("pareto")
    if given is None:
        results = [r for _, r in ranked]
        if not all("objectives" in r for r in results):
            return []
        from simulator.search.rank import pareto_front

        return pareto_front(results)
    position = {i: k for k, (i, _) in enumerate(ranked)}
    return sorted((position[i] for i in given if i in position), key=lambda k: xs[k])


def _label_best(ax: Any, xs: list[float], ys: list[float], best: list[dict[str, Any]]) -> None:
    """Name the best plans in a column of text in the emptiest corner of the axes, an arrow to each
    point: the best plans are often a tight cluster that labels next to the points would cover."""
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    pts = to_axes.transform(list(zip(xs, ys, strict=True)))
    corners = {  # text anchor (x, y, ha) -> the region the column covers, in axes fractions
        (0.02, 0.97, "left"): (0.0, 0.5, 0.55, 1.0),
        (0.98, 0.97, "right"): (0.5, 0.5, 1.0, 1.0),
        (0.02, 0.03 + 0.065 * (len(best) - 1), "left"): (0.0, 0.0, 0.55, 0.45),
        (0.98, 0.03 + 0.065 * (len(best) - 1), "right"): (0.5, 0.0, 1.0, 0.45),
    }
    x0, y0, ha = min(corners, key=lambda c: sum(_inside(p, corners[c]) for p in pts))
    for k, r in enumerate(best):
        ax.annotate(
            f"{k + 1}. {plan_label(r)}  ({_summary(r)})",
            (xs[k], ys[k]),
            xytext=(x0, y0 - 0.065 * k),
            textcoords="axes fraction",
            ha=ha,
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999", "alpha": 0.9},
            arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 0.8, "shrinkB": 4},
            zorder=5,
        )


def _inside(p: Any, box: tuple[float, float, float, float]) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def plot_top(search: dict[str, Any], ranked: list[tuple[int, dict[str, Any]]], path: Path) -> Path:
    top = [r for _, r in ranked[:TOP]]
    fig, ax = plt.subplots(figsize=(11, 0.38 * max(len(top), 3) + 2.2))
    ax.set_title(f"{_title(search, ranked)}: where the step goes", fontsize=11)
    if not top:
        ax.text(0.5, 0.5, "no feasible plan", ha="center", va="center", transform=ax.transAxes, fontsize=14)
        ax.set_axis_off()
        return _save(fig, path)
    labels = [f"{k + 1}. {plan_label(r)}" for k, r in enumerate(top)]
    keys = list(top[0]["step"]["breakdown_s"])
    categories = [c for c in keys if any(r["step"]["breakdown_s"].get(c, 0.0) > 0 for r in top)]
    cmap = plt.get_cmap("tab20")
    left = [0.0] * len(top)
    for c in categories:
        values = [max(r["step"]["breakdown_s"].get(c, 0.0), 0.0) for r in top]
        ax.barh(labels, values, left=left, color=cmap(keys.index(c) % 20), label=c.replace("_", " "))
        left = [a + b for a, b in zip(left, values, strict=True)]
    for k, r in enumerate(top):
        ax.text(left[k], k, f" {_summary(r)}", va="center", fontsize=8)
    ax.set_xlim(0, max(left) * 1.3)
    ax.set_ylim(len(top) - 0.5, -0.5)  # best at the top
    ax.set_xlabel("step time (s), average GPU, by category")
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    return _save(fig, path)


def _summary(r: dict[str, Any]) -> str:
    """Step time, and run cost when known: '3.12 s, $4.5M'."""
    text = f"{r['step']['time_s']:.3g} s"
    if "cost_usd" in r.get("run", {}):
        text += f", {_usd(r['run']['cost_usd'])}"
    return text


USD_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _usd(v: float) -> str:
    """'$512', '$9.5k', '$999.5k', '$1.0M', '$0.0123': one decimal with a unit, whole dollars below a
    thousand, three digits below one. A value that rounds up to the next unit takes that unit
    ($999,960 is '$1.0M', not '$1000.0k')."""
    sign, v = ("-" if v < 0 else ""), abs(v)
    for i, (scale, suffix) in enumerate(USD_UNITS):
        if v >= scale or (i + 1 < len(USD_UNITS) and round(v / USD_UNITS[i + 1][0], 1) >= 1000):
            return f"{sign}${v / scale:.1f}{suffix}"
    if round(v) >= 1000:
        return f"{sign}$1.0k"
    return f"{sign}${v:.0f}" if v >= 100 else f"{sign}${v:.3g}"


def _log_if_wide(ax: Any, xs: list[float], ys: list[float]) -> None:
    if min(xs) > 0 and max(xs) / min(xs) > LOG_SPAN:
        ax.set_xscale("log")
    if min(ys) > 0 and max(ys) / min(ys) > LOG_SPAN:
        ax.set_yscale("log")


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
