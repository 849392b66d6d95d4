"""The cluster's power through a representative stretch of the run (`run.power_window` in the JSON,
`run_power.png`): training segments closed by checkpoints, a failure that stops the job, the restart
with its checkpoint load, the lost work done again, and the training that follows.

The stretch follows the reliability model's own figures (reliability.failure_model): segments of the
checkpoint interval tau closed by a checkpoint write delta; two segments, then the failure halfway
through the third (the mean work a failure loses when failures are rare against the interval,
tau << MTBF: Young 1974), the job stopped for reliability.restart_s, the checkpoint read back, the lost
half segment done again, the rest of the segment, and one more segment. A run shorter than tau writes
no checkpoint (reliability.segments): its stretch is the whole run, failing halfway.
Each phase draws its power of energy/run_power.phase_facility_W, the same the run's energy counts, so
the window's energy is run_energy_J of its phase durations (tested). Training is drawn at the step's
mean power: the step's own swing (power.cluster_W_min to cluster_W_peak) is seconds long, the window
hours. Without a failure rate the stretch has no failure: three segments and their checkpoints; with
neither failures nor checkpoints there is nothing to show (None). Phases of no length are left out.
"""

import math
from dataclasses import dataclass
from typing import Any

from simulator.energy.power import StepEnergy
from simulator.energy.run_power import phase_facility_W
from simulator.enums import RunPhase
from simulator.scenario.setup import Setup
from simulator.training_run.reliability import checkpoint_load_s, failure_model

SEGMENTS_BEFORE = 2  # whole checkpoint intervals before the failure's
FAILURE_AT = 0.5  # where in its segment the failure strikes (module docstring)
SEGMENTS_WITHOUT_FAILURE = 3  # the stretch shown when the model has checkpoints but no failure rate


@dataclass(frozen=True)
class PowerInterval:
    """One stretch of constant power: its phase, start and end (s from the window's start), and the
    cluster's IT power (W: GPUs, nodes, switches; the facility draws pue times it)."""

    phase: RunPhase
    start_s: float
    end_s: float
    cluster_W: float


@dataclass(frozen=True)
class RunWindow:
    """A representative stretch of the run, piecewise constant (module docstring). `what_if`: the
    scenario's reliability model is off, so the run's figures count none of it."""

    intervals: tuple[PowerInterval, ...]
    pue: float
    mtbf_s: float
    what_if: bool

    def durations_s(self) -> dict[RunPhase, float]:
        """Time in each phase over the window."""
        out: dict[RunPhase, float] = {}
        for iv in self.intervals:
            out[iv.phase] = out.get(iv.phase, 0.0) + (iv.end_s - iv.start_s)
        return out

    def energy_J(self) -> float:
        """The facility's energy over the window (J): the IT power integrated, x PUE."""
        return sum((iv.end_s - iv.start_s) * iv.cluster_W for iv in self.intervals) * self.pue

    def to_dict(self) -> dict[str, Any]:
        return {
            "what_if": self.what_if,
            "mtbf_s": self.mtbf_s if math.isfinite(self.mtbf_s) else None,
            "pue": self.pue,
            "intervals": [
                {
                    "phase": iv.phase.value,
                    "start_s": iv.start_s,
                    "end_s": iv.end_s,
                    "cluster_W": iv.cluster_W,
                    "facility_W": iv.cluster_W * self.pue,
                }
                for iv in self.intervals
            ],
        }


def phase_sequence(setup: Setup, useful_s: float) -> list[tuple[RunPhase, float]]:
    """The window's phases and their durations (s), in order (module docstring); [] when the model has
    neither checkpoints nor failures."""
    m = failure_model(setup)
    if not (math.isfinite(m.tau) or math.isfinite(m.mtbf)) or useful_s <= 0:
        return []
    # a run within one interval ends before its first checkpoint (reliability.segments): the whole run
    whole = useful_s <= m.tau
    seg = useful_s if whole else m.tau
    before = [] if whole else [(RunPhase.TRAINING, seg), (RunPhase.CHECKPOINT, m.delta)] * SEGMENTS_BEFORE
    after = [] if whole else [(RunPhase.CHECKPOINT, m.delta), (RunPhase.TRAINING, seg), (RunPhase.CHECKPOINT, m.delta)]
    if not math.isfinite(m.mtbf):
        return [(RunPhase.TRAINING, seg)] if whole else before + after[1:]
    lost = FAILURE_AT * seg
    return [
        *before,
        (RunPhase.TRAINING, lost),
        (RunPhase.STOPPED, setup.reliability.restart_s),
        (RunPhase.RESTART, checkpoint_load_s(setup)),
        (RunPhase.REDO, lost),
        (RunPhase.TRAINING, seg - lost),
        *after,
    ]


def power_window(setup: Setup, energy: StepEnergy, step_time_s: float, useful_s: float) -> RunWindow | None:
    """The run's representative stretch at each phase's power (module docstring)."""
    phases = phase_sequence(setup, useful_s)
    if not phases:
        return None
    pue, n = setup.economics.pue, setup.cluster.num_gpus
    watts = phase_facility_W(setup, energy, step_time_s)
    intervals, t = [], 0.0
    for phase, d in phases:
        if d > 0:
            intervals.append(PowerInterval(phase, t, t + d, watts[phase] * n / pue))
            t += d
    return RunWindow(tuple(intervals), pue, failure_model(setup).mtbf, what_if=not setup.reliability.enabled)
