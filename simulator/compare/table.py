"""Run several scenarios and lay their results side by side: step time, tokens/s, MFU, memory and
fit, days, energy, cost."""

from pathlib import Path
from typing import Any

from simulator.results.table import Column, Table
from simulator.scenario.errors import ConfigError
from simulator.scenario.load import load_setup
from simulator.scenario.setup import Setup
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


def load_all(paths: list[Path], overrides: list[str]) -> list[Setup]:
    """Every scenario resolved before any is simulated; one ConfigError with the problems of every bad
    file, each line naming its file."""
    setups, problems = [], []
    for path in paths:
        try:
            setups.append(load_setup(path, overrides))
        except ConfigError as exc:
            problems += [p if p.startswith(f"{path}:") else f"{path}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return setups


def simulate_all(paths: list[Path], overrides: list[str]) -> list[dict[str, Any]]:
    """Contract JSON of each scenario, in the order given (invalid input raises ConfigError)."""
    return [simulate(s).to_dict() for s in load_all(paths, overrides)]


def comparison(results: list[dict[str, Any]]) -> Table:
    return Table.of(COLUMNS, results)
