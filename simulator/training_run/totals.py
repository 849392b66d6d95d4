"""Step result -> whole run. Without the reliability model the run is failure-free (`interruptions`
0, `goodput` 1): days = iterations x step time. With it (`reliability.enabled`), training_run/reliability.py
adds checkpoints, failures, lost work and restarts; energy then counts re-done training at the
step's power and checkpoint, stopped and restart time at those phases' power (energy/run_power.py).
`power_window` is a representative stretch of the run at the same powers (window.py), a what-if of the
reliability model when it is off."""

import math
from dataclasses import asdict, dataclass
from typing import Any

from simulator import units
from simulator.energy.cost import co2_tonnes, cost_usd
from simulator.energy.power import StepEnergy
from simulator.energy.run_power import phase_facility_W, run_energy_J
from simulator.enums import RunPhase
from simulator.scenario.setup import Setup
from simulator.training_run.reliability import ReliabilityResult, checkpoint_load_s, run_with_failures
from simulator.training_run.window import RunWindow, power_window


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
    power_window: RunWindow | None = None  # a representative stretch of the run's power (window.py)

    @property
    def progresses(self) -> bool:
        return self.days is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the failure model's method and note only when the failures were not simulated."""
        d = asdict(self)
        if self.failure_model == "simulated":
            del d["failure_model"], d["failure_note"]
        if self.power_window is None:
            del d["power_window"]
        else:
            d["power_window"] = self.power_window.to_dict()
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
    energy_J = run_energy_J(setup, phase_facility_W(setup, energy, step_time_s), run_phases_s(setup, useful_s, rel))
    wall_s = rel.wall_s if rel else useful_s
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
        power_window=power_window(setup, energy, step_time_s, useful_s),
    )


def run_phases_s(setup: Setup, useful_s: float, rel: ReliabilityResult | None) -> dict[RunPhase, float]:
    """The run's wall time by phase: the training, and with the reliability model the re-done training,
    the checkpoint writes and the recovery, split between the stopped job and its checkpoint load in
    the ratio of reliability.restart_s to the load (a restart struck again is charged at that mix)."""
    if rel is None:
        return {RunPhase.TRAINING: useful_s}
    restart_s, load_s = setup.reliability.restart_s, checkpoint_load_s(setup)
    stopped_share = restart_s / (restart_s + load_s) if restart_s + load_s > 0 else 1.0
    return {
        RunPhase.TRAINING: useful_s,
        RunPhase.REDO: rel.redo_s,
        RunPhase.CHECKPOINT: rel.checkpoint_s,
        RunPhase.STOPPED: rel.recovery_s * stopped_share,
        RunPhase.RESTART: rel.recovery_s * (1.0 - stopped_share),
    }


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
