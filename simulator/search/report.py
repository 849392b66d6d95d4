"""The search's outcome for a person: the ranked plans as an aligned table or Markdown, and the files
`search --out` writes besides the plots (search.json with every feasible plan, search.md)."""

import json
from pathlib import Path
from typing import Any

from simulator.results.table import Column, Table
from simulator.units import GIGA

STEP_COLUMNS = (
    Column("step s", "step.time_s", "{:.3f}"),
    Column("tokens/s", "step.tokens_per_s", "{:,.0f}"),
    Column("MFU %", "step.mfu", "{:.1f}", lambda v: 100 * v),
    Column("GB/GPU", "memory.peak_bytes", "{:.1f}", lambda v: v / GIGA),
)
RUN_COLUMNS = (
    Column("days", "run.days", "{:.1f}"),
    Column("MWh", "run.energy_mwh", "{:,.0f}"),
    Column("cost $", "run.cost_usd", "{:,.0f}"),
)
# without training.tokens the objectives are per step
PER_STEP_COLUMNS = (
    Column("$/step", "objectives.cost", "{:.3g}"),
    Column("kJ/step", "objectives.energy", "{:,.0f}", lambda v: v / 1e3),
)
TEXT_HEADERS = ("sweep", "plan", "Pareto")
CAVEAT_MARK = "!"  # after the plan label of a result with a `caveat`, explained under the table


def ranking(data: dict[str, Any]) -> Table:
    """The listed plans best first: rank, sweep point (in a sweep), label, figures, Pareto mark."""
    per_run = all(r.get("run") for r in data["results"])
    columns = STEP_COLUMNS + (RUN_COLUMNS if per_run else PER_STEP_COLUMNS)
    swept = any("sweep" in r for r in data["results"])
    head = ["#", *(["sweep"] if swept else []), "plan", *(c.header for c in columns), "Pareto"]
    pareto = set(data["pareto"])
    rows = [
        [
            str(i + 1),
            *([_point(r.get("sweep", {}))] if swept else []),
            _plan_cell(r, bool(data.get("estimated"))),
            *(c.cell(r) for c in columns),
            "*" if i in pareto else "",
        ]
        for i, r in enumerate(data["results"])
    ]
    return Table(head, rows, frozenset(i for i, h in enumerate(head) if h in TEXT_HEADERS))


def _plan_cell(r: dict[str, Any], refined: bool) -> str:
    estimate = " (estimate)" if refined and r["step"].get("method") == "analytical" else ""
    return r["label"] + estimate + (f" {CAVEAT_MARK}" if r.get("caveat") else "")


def caveats(results: list[dict[str, Any]]) -> list[str]:
    """The footnotes of the marked plans: each distinct caveat once."""
    return [f"{CAVEAT_MARK} {c}" for c in dict.fromkeys(r["caveat"] for r in results if r.get("caveat"))]


def _point(values: dict[str, Any]) -> str:
    """'num_gpus=512' for {'cluster.num_gpus': 512}."""
    return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items())


def title(data: dict[str, Any]) -> str:
    return (
        f"{data['candidates_evaluated']} candidate plans, {data['feasible']} fit in memory; "
        f"best {len(data['results'])} by {data['objective']} (* = on the time/cost/energy Pareto front)"
    )


def report(data: dict[str, Any]) -> str:
    """The ranked plans as an aligned text table, with the counts above it."""
    bests = [p["best"] for p in data.get("sweep", []) if p["best"]]
    lines = [title(data), "", ranking(data).text(), *caveats(data["results"] + bests)]
    if data.get("leanest"):
        lean = data["leanest"]
        lines += [
            "",
            f"no plan fits: the leanest, {lean['label']}, needs {lean['peak_bytes'] / 1e9:.1f} GB per GPU "
            f"of {lean['capacity_bytes'] / 1e9:.1f} GB",
        ]
    if data.get("sweep"):
        lines += ["", "best plan of each sweep point:"]
        for point in data["sweep"]:
            best = point["best"]
            if best is None:
                what = "no plan fits"
            else:
                what = f"#{point['rank']} {_plan_cell(best, False)}, {best['step']['time_s']:.3f} s"
            lines.append(f"  {_point(point['values'])}: {point['feasible']} plans fit; {what}")
    return "\n".join(lines)


def write_search_files(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """search.json (every feasible plan, best first) and search.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "search.json", out_dir / "search.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    heading = f"# Search: {data['results'][0]['name'] if data['results'] else ''}\n\n"
    notes = "".join(f"\n{line}\n" for line in caveats(data["results"]))
    paths[1].write_text(heading + title(data) + "\n\n" + ranking(data).markdown() + "\n" + notes)
    return paths
