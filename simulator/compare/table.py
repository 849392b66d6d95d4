"""Run several scenarios and lay their results side by side: step time, tokens/s, MFU, memory and
fit, days, energy, cost."""

from pathlib import Path
from typing import Any

from simulator.results.table import Column, Table
from simulator.scenario.load import load_setup
from simulator.simulate import simulate
from simulator.units import GIGA

COLUMNS = (
    Column("scenario", "name"),
    Column("step s", "step.time_s", "{:.3f}"),
    Column("tokens/s", "step.tokens_per_s", "{:,.0f}"),
    Column("MFU %", "step.mfu", "{:.1f}", lambda v: 100 * v),
    Column("GB/GPU", "memory.peak_bytes", "{:.1f}", lambda v: v / GIGA),
    Column("fits", "feasible"),
    Column("days", "run.days", "{:.1f}"),
    Column("MWh", "run.energy_mwh", "{:,.0f}"),
    Column("cost $", "run.cost_usd", "{:,.0f}"),
)


def simulate_all(paths: list[Path], overrides: list[str]) -> list[dict[str, Any]]:
    """Contract JSON of each scenario, in the order given (invalid input raises ConfigError)."""
    setups = [load_setup(p, overrides) for p in paths]  # validate everything before simulating anything
    return [simulate(s).to_dict() for s in setups]


def comparison(results: list[dict[str, Any]]) -> Table:
    return Table.of(COLUMNS, results)
