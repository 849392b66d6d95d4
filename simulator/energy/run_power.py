"""Power of the whole run's phases (training, checkpoint write, a job stopped by a failure, its restart):
what one GPU with its share of node and fabric draws at the facility meter in each. The run's energy
(training_run/totals.py) and its power window (training_run/window.py) both price time with these.

- Training and re-done training: the step's own facility energy over its time (its mean power).
- Checkpoint write: the job blocks while its state goes to storage; the GPUs hold their context and run
  no kernel, as while they wait for the host (`host_overhead`). Morrison et al. 2025 ("Holistically
  Evaluating the Environmental Impact of Creating Language Models", arXiv:2503.05804, sec. 4.3, Fig. 2)
  measured H100s "over 600W" while training and "just over 100W" while checkpointing; Hopper's
  host_overhead (power.yaml, measured here: a live context with no kernel, 119 W on an H200) sits there.
- Stopped: a failure stops the job and its nodes drop to idle (no process on the GPU: its catalogued
  `idle_W`; the step's `idle` category is a live process waiting for slower stages) until it restarts
  (reliability.restart_s: detection, node replacement, rescheduling, process start).
- Restart: the restarted job's GPUs hold their context while it reads the checkpoint (`host_overhead`).
Node overhead and switches draw their (constant) power in every phase, as in the step energy.
"""

from simulator.energy.power import StepEnergy, facility_power_W
from simulator.enums import Category, RunPhase
from simulator.scenario.setup import Setup

# The GPU activity of each phase outside training (module docstring for the sources); None: no process
# holds the GPU, which draws its catalogued idle_W
PHASE_ACTIVITY: dict[RunPhase, Category | None] = {
    RunPhase.CHECKPOINT: Category.HOST_OVERHEAD,
    RunPhase.STOPPED: None,
    RunPhase.RESTART: Category.HOST_OVERHEAD,
}


def phase_facility_W(setup: Setup, energy: StepEnergy, step_time_s: float) -> dict[RunPhase, float]:
    """Each run phase's power per GPU at the facility meter (W; GPU, its node and switch share, x PUE)."""
    training_W = energy.facility_J / step_time_s
    idle = {phase: facility_power_W(setup, category) for phase, category in PHASE_ACTIVITY.items()}
    return {RunPhase.TRAINING: training_W, RunPhase.REDO: training_W, **idle}


def run_energy_J(setup: Setup, powers_W: dict[RunPhase, float], durations_s: dict[RunPhase, float]) -> float:
    """The whole cluster's facility energy over the given time in each phase: sum of n x P(phase) x t."""
    return setup.cluster.num_gpus * sum(powers_W[p] * t for p, t in durations_s.items())


def cluster_phase_W(setup: Setup, phase: RunPhase) -> float:
    """The cluster's IT power (GPUs, nodes, switches; no PUE) while the job is in `phase` (not training)."""
    return facility_power_W(setup, PHASE_ACTIVITY[phase]) / setup.economics.pue * setup.cluster.num_gpus
