"""Step result -> whole run. Without the reliability model the run is failure-free
(`interruptions` 0, `goodput` 1): days = iterations x step time."""

import math
from dataclasses import dataclass

from simulator import units
from simulator.energy.power import StepEnergy
from simulator.scenario.setup import Setup


@dataclass(frozen=True)
class RunResult:
    iterations: int
    days: float
    gpu_hours: float
    energy_mwh: float
    cost_usd: float
    co2_tonnes: float
    interruptions: float
    goodput: float
    checkpoint_interval_s: float


def whole_run(setup: Setup, step_time_s: float, energy: StepEnergy) -> RunResult | None:
    if setup.training.tokens is None:
        return None
    iterations = math.ceil(setup.training.tokens / setup.tokens_per_step)
    wall_s = iterations * step_time_s
    n = setup.cluster.num_gpus
    gpu_hours = n * wall_s / units.SECONDS_PER_HOUR
    energy_J = n * iterations * energy.facility_J
    kwh = units.joules_to_kwh(energy_J)
    e = setup.economics
    return RunResult(
        iterations=iterations,
        days=wall_s / units.SECONDS_PER_DAY,
        gpu_hours=gpu_hours,
        energy_mwh=units.joules_to_mwh(energy_J),
        cost_usd=gpu_hours * e.usd_per_gpu_hour + kwh * e.usd_per_kWh,
        co2_tonnes=kwh * e.grid_kg_co2_per_kWh / 1000.0,
        interruptions=0.0,
        goodput=1.0,
        checkpoint_interval_s=0.0,
    )
