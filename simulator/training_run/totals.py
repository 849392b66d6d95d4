"""Step result -> whole run. Without the reliability model the run is failure-free (`interruptions`
0, `goodput` 1): days = iterations x step time. With it (`reliability.enabled`), training_run/reliability.py
adds checkpoints, failures, lost work and restarts; energy then counts re-done training at the
step's power and checkpoint/restart time at idle power."""

import math
from dataclasses import asdict, dataclass
from typing import Any

from simulator import units
from simulator.energy.cost import co2_tonnes, cost_usd
from simulator.energy.power import StepEnergy, facility_power_W
from simulator.enums import Category
from simulator.scenario.setup import Setup
from simulator.training_run.reliability import ReliabilityResult, run_with_failures


@dataclass(frozen=True)
class RunResult:
    """The whole run. Figures that depend on the wall time are None when the reliability model is on
    and the run cannot progress (`progresses`; `failure_note` says why)."""

    iterations: int
    days: float | None
    gpu_hours: float | None
    energy_mwh: float | None
    cost_usd: float | None
    co2_tonnes: float | None
    interruptions: float | None  # expected unexpected interruptions over the run: wall time / system MTBF (contract)
    goodput: float
    checkpoint_interval_s: float
    days_ideal: float = 0.0  # failure-free: iterations x step time
    interruptions_simulated: int = 0  # what the seeded run simulation drew (closed form: the expectation, rounded)
    lost_hours: float | None = 0.0  # wall time lost to failures: re-done training + restarts
    checkpoint_hours: float | None = 0.0  # wall time spent writing checkpoints
    days_with_failures: float | None = 0.0  # what the reliability model predicts, reported even when it is off
    failure_model: str = "simulated"  # "expected" (closed form) or "no progress"; in the JSON only when not simulated
    failure_note: str | None = None  # why not simulated

    @property
    def progresses(self) -> bool:
        return self.days is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the failure model's method and note only when the failures were not simulated."""
        d = asdict(self)
        if self.failure_model == "simulated":
            del d["failure_model"], d["failure_note"]
        return d


def whole_run(setup: Setup, step_time_s: float, energy: StepEnergy) -> RunResult | None:
    if setup.training.tokens is None:
        return None
    iterations = math.ceil(setup.training.tokens / setup.tokens_per_step)
    useful_s = iterations * step_time_s
    what_if = run_with_failures(setup, useful_s)  # cheap (bounded events or closed form), so always reported
    rel = what_if if setup.reliability.enabled else None
    if rel and not rel.progresses:
        return _stalled(iterations, useful_s, rel)
    n = setup.cluster.num_gpus
    energy_J = n * iterations * energy.facility_J
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
        days_with_failures=what_if.wall_s / units.SECONDS_PER_DAY if what_if.progresses else None,
        failure_model=what_if.method,
        failure_note=what_if.note,
    )


def _stalled(iterations: int, useful_s: float, rel: ReliabilityResult) -> RunResult:
    """A run that cannot progress: no finite wall time, energy or cost to report."""
    return RunResult(
        iterations=iterations,
        days=None,
        gpu_hours=None,
        energy_mwh=None,
        cost_usd=None,
        co2_tonnes=None,
        interruptions=None,
        goodput=0.0,
        checkpoint_interval_s=rel.checkpoint_interval_s,
        days_ideal=useful_s / units.SECONDS_PER_DAY,
        lost_hours=None,
        checkpoint_hours=None,
        days_with_failures=None,
        failure_model=rel.method,
        failure_note=rel.note,
    )
