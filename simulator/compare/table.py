"""Run several scenarios and lay their results side by side: step time, tokens/s, MFU, memory and
fit, days, energy, cost."""

from pathlib import Path
from typing import Any

from simulator.scenario import load_setup
from simulator.simulate import simulate
from simulator.units import GIGA

COLUMNS = (
    ("scenario", "name", "{}"),
    ("step s", "step.time_s", "{:.3f}"),
    ("tokens/s", "step.tokens_per_s", "{:,.0f}"),
    ("MFU %", "step.mfu", "{:.1%}"),
    ("GB/GPU", "memory.peak_bytes", "{:.1f}"),
    ("fits", "feasible", "{}"),
    ("days", "run.days", "{:.1f}"),
    ("MWh", "run.energy_mwh", "{:,.0f}"),
    ("cost $", "run.cost_usd", "{:,.0f}"),
)


def run_all(paths: list[Path], overrides: list[str]) -> list[dict[str, Any]]:
    """Contract JSON of each scenario, in the order given (invalid input raises ConfigError)."""
    setups = [load_setup(p, overrides) for p in paths]  # validate everything before simulating anything
    return [simulate(s).to_dict() for s in setups]


def _get(result: dict[str, Any], dotted: str) -> Any:
    node: Any = result
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def cell(result: dict[str, Any], dotted: str, fmt: str) -> str:
    value = _get(result, dotted)
    if value is None:
        return "-"
    if dotted == "memory.peak_bytes":
        value = value / GIGA
    if dotted == "objectives.energy":
        value = value / 1e3  # J -> kJ
    if fmt == "{:.1%}":
        return f"{100 * value:.1f}"
    return fmt.format(value)


def table(results: list[dict[str, Any]]) -> str:
    rows = [[h for h, _, _ in COLUMNS]] + [[cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(h for h, _, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(cell(r, k, f) for _, k, f in COLUMNS) + " |" for r in results]
    return "\n".join([head, sep, *body])
