"""Step result -> whole run. Without the reliability model the run is failure-free (`interruptions`
0, `goodput` 1): days = iterations x step time. With it (`reliability.enabled`), training_run/reliability.py
adds checkpoints, failures, lost work and restarts; energy then counts re-done training at the
step's power and checkpoint/restart time at idle power."""

import math
from dataclasses import dataclass

from simulator import units
from simulator.energy.cost import co2_tonnes, cost_usd
from simulator.energy.power import StepEnergy, facility_power_W
from simulator.enums import Category
from simulator.scenario.setup import Setup
from simulator.training_run.reliability import simulate_run


@dataclass(frozen=True)
class RunResult:
    iterations: int
    days: float
    gpu_hours: float
    energy_mwh: float
    cost_usd: float
    co2_tonnes: float
    interruptions: float  # expected unexpected interruptions over the run: wall time / system MTBF (contract)
    goodput: float
    checkpoint_interval_s: float
    days_ideal: float = 0.0  # failure-free: iterations x step time
    interruptions_simulated: int = 0  # what the seeded run simulation drew
    lost_hours: float = 0.0  # wall time lost to failures: re-done training + restarts
    checkpoint_hours: float = 0.0  # wall time spent writing checkpoints
    days_with_failures: float = 0.0  # what the reliability model predicts, reported even when it is off


def whole_run(setup: Setup, step_time_s: float, energy: StepEnergy) -> RunResult | None:
    if setup.training.tokens is None:
        return None
    iterations = math.ceil(setup.training.tokens / setup.tokens_per_step)
    useful_s = iterations * step_time_s
    n = setup.cluster.num_gpus
    energy_J = n * iterations * energy.facility_J
    what_if = simulate_run(setup, useful_s)  # cheap (one event per segment), so always reported
    rel = what_if if setup.reliability.enabled else None
    wall_s = rel.wall_s if rel else useful_s
    if rel:
        idle_W = facility_power_W(setup, Category.IDLE)
        energy_J += n * (rel.redo_s * energy.facility_J / step_time_s + (rel.recovery_s + rel.checkpoint_s) * idle_W)
    gpu_hours = n * wall_s / units.SECONDS_PER_HOUR
    kwh = units.joules_to_kwh(energy_J)
    e = setup.economics
    return RunResult(
        iterations=iterations,
        days=wall_s / units.SECONDS_PER_DAY,
        gpu_hours=gpu_hours,
        energy_mwh=units.joules_to_mwh(energy_J),
        cost_usd=cost_usd(e, gpu_hours, kwh),
        co2_tonnes=co2_tonnes(e, kwh),
        interruptions=rel.interruptions_expected if rel else 0.0,
        goodput=rel.goodput if rel else 1.0,
        checkpoint_interval_s=rel.checkpoint_interval_s if rel else 0.0,
        days_ideal=useful_s / units.SECONDS_PER_DAY,
        interruptions_simulated=rel.interruptions if rel else 0,
        lost_hours=rel.lost_s / units.SECONDS_PER_HOUR if rel else 0.0,
        checkpoint_hours=rel.checkpoint_s / units.SECONDS_PER_HOUR if rel else 0.0,
        days_with_failures=what_if.wall_s / units.SECONDS_PER_DAY,
    )
