"""Reliability model: the run as training segments, checkpoints and failures (docs/design.md, "Two
time scales"). A coarse discrete-event simulation, one event per segment + checkpoint, failure or
restart, when its expected event count is within EVENT_BUDGET; beyond it (very long runs, very
frequent failures) the same model's expected values in closed form (expected.py), which the result
says. A run with failures whose expected wall time exceeds MAX_SLOWDOWN times its failure-free time
cannot progress: that is the result, not an endless simulation. The simulation has a single
process, so it needs no event queue: a clock advanced by each delay the job waits (the additions
SimPy's scheduler made, so the same results), ~5x faster than SimPy.

Checkpoint interval: Young (1974), "A first order approximation to the optimum checkpoint interval",
tau = sqrt(2 delta M); Daly (2006), "A higher order estimate of the optimum checkpoint interval for
restart dumps", tau = sqrt(2 delta M) [1 + sqrt(delta/2M)/3 + (delta/2M)/9] - delta for delta < 2M,
else M. delta: checkpoint write time, M: the system's mean time between failures.
"""

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from simulator import units
from simulator.scenario.setup import Setup
from simulator.training_run.expected import expected_run, log_wall_s
from simulator.workload.params import total_params

# Expected events above which the closed form replaces the simulation: ~0.1 s of the clock (~0.5 s if
# it were SimPy at ~2 us per event); 5x what the largest bundled scenario draws (Llama 3 405B, 54 days
# on 16k GPUs: ~40,000).
EVENT_BUDGET = 200_000
MAX_EVENTS = 10 * EVENT_BUDGET  # a seeded draw this far past its expectation stops; the closed form answers
# Expected wall time / failure-free time beyond which the run is reported as unable to progress:
# goodput below one millionth, where e^(L/M) soon leaves the floating-point range.
MAX_SLOWDOWN = 1e6


class SimulationCutOff(Exception):
    """The seeded simulation drew more than MAX_EVENTS events."""


@dataclass(frozen=True)
class ReliabilityResult:
    wall_s: float
    useful_s: float  # W: failure-free training time
    interruptions: int  # failures observed in the simulation
    interruptions_expected: float  # wall / MTBF
    goodput: float  # useful / wall
    checkpoint_interval_s: float  # tau (0 when failures are off: nothing to checkpoint against)
    checkpoint_write_s: float  # delta
    mtbf_s: float
    redo_s: float  # training time lost (work since the last checkpoint), done again
    recovery_s: float  # restarts + checkpoint loads
    checkpoint_s: float  # all checkpoint writes, interrupted ones included
    method: str = "simulated"  # or "expected" (closed form) or "no progress" (the figures above are inf)
    note: str | None = None  # why it was not simulated

    @property
    def progresses(self) -> bool:
        return math.isfinite(self.wall_s)

    @property
    def lost_s(self) -> float:
        return self.redo_s + self.recovery_s


def young_interval(delta_s: float, mtbf_s: float) -> float:
    return math.sqrt(2.0 * delta_s * mtbf_s)


def daly_interval(delta_s: float, mtbf_s: float) -> float:
    if delta_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta_s / (2.0 * mtbf_s)
    return young_interval(delta_s, mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta_s


def checkpoint_bytes(setup: Setup) -> float:
    return total_params(setup.model) * setup.reliability.checkpoint_bytes_per_param


def system_mtbf_s(setup: Setup) -> float:
    """1 / (gpus x GPU rate + nodes x node rate), in seconds; inf without failures."""
    r, c = setup.reliability, setup.cluster
    per_hour = c.num_gpus * r.gpu_failures_per_hour + c.num_nodes * r.node_failures_per_hour
    return units.SECONDS_PER_HOUR / per_hour if per_hour > 0 else math.inf


@dataclass
class _Tally:
    interruptions: int = 0
    redo_s: float = 0.0
    recovery_s: float = 0.0
    checkpoint_s: float = 0.0
    events: int = 0


@dataclass(frozen=True)
class FailureModel:
    """The run model's inputs in seconds: checkpoint interval tau, checkpoint write delta, restart
    with checkpoint load, system mean time between failures (inf without failures)."""

    tau: float
    delta: float
    recovery: float
    mtbf: float


def checkpoint_load_s(setup: Setup) -> float:
    """Reading the last checkpoint back at a restart: its bytes over the nodes' aggregate read bandwidth."""
    return checkpoint_bytes(setup) / (setup.cluster.num_nodes * setup.reliability.read_bytes_per_s_per_node)


def failure_model(setup: Setup) -> FailureModel:
    r, nodes = setup.reliability, setup.cluster.num_nodes
    nbytes = checkpoint_bytes(setup)
    delta = nbytes / (nodes * r.write_bytes_per_s_per_node)
    recovery = r.restart_s + checkpoint_load_s(setup)
    mtbf = system_mtbf_s(setup)
    if r.checkpoint_interval_s is not None:
        tau = r.checkpoint_interval_s
    else:
        tau = daly_interval(delta, mtbf) if math.isfinite(mtbf) else math.inf
    return FailureModel(tau, delta, recovery, mtbf)


def run_with_failures(setup: Setup, useful_s: float) -> ReliabilityResult:
    """Wall time to accumulate `useful_s` seconds of training under failures: simulated (seeded,
    deterministic) when that takes at most ~EVENT_BUDGET events, else the closed-form expectation;
    a run that cannot progress has an infinite wall time and says why."""
    m = failure_model(setup)
    log_slowdown = log_wall_s(useful_s, m.tau, m.delta, m.recovery, m.mtbf) - math.log(useful_s)
    if math.isfinite(m.mtbf) and log_slowdown > math.log(MAX_SLOWDOWN):  # without failures it ends, however slowly
        return _no_progress(m, useful_s)
    expected = expected_run(useful_s, m.tau, m.delta, m.recovery, m.mtbf)
    if expected.events <= EVENT_BUDGET:
        try:
            return simulate_run(setup, useful_s)
        except SimulationCutOff:
            pass
    note = (
        f"expected values of the failure model (closed form): simulating the run's failures would take "
        f"~{expected.events:.2g} events"
    )
    return ReliabilityResult(
        wall_s=expected.wall_s,
        useful_s=useful_s,
        interruptions=round(expected.interruptions),
        interruptions_expected=expected.interruptions,
        goodput=useful_s / expected.wall_s,
        checkpoint_interval_s=m.tau if math.isfinite(m.tau) else 0.0,
        checkpoint_write_s=m.delta,
        mtbf_s=m.mtbf,
        redo_s=expected.redo_s,
        recovery_s=expected.recovery_s,
        checkpoint_s=expected.checkpoint_s,
        method="expected",
        note=note,
    )


def _no_progress(m: FailureModel, useful_s: float) -> ReliabilityResult:
    note = (
        f"the run cannot progress: the system fails every {m.mtbf:.3g} s on average, a checkpoint interval "
        f"is {m.tau:.3g} s plus {m.delta:.3g} s of checkpoint write and a restart with its checkpoint load takes "
        f"{m.recovery:.3g} s, "
        f"so the expected wall time is over {MAX_SLOWDOWN:.0e} times the {useful_s:.3g} s of training"
    )
    inf = math.inf
    return ReliabilityResult(
        wall_s=inf,
        useful_s=useful_s,
        interruptions=0,
        interruptions_expected=inf,
        goodput=0.0,
        checkpoint_interval_s=m.tau if math.isfinite(m.tau) else 0.0,
        checkpoint_write_s=m.delta,
        mtbf_s=m.mtbf,
        redo_s=inf,
        recovery_s=inf,
        checkpoint_s=inf,
        method="no progress",
        note=note,
    )


def simulate_run(setup: Setup, useful_s: float) -> ReliabilityResult:
    """Wall time to accumulate `useful_s` seconds of training under failures (seeded, deterministic),
    event by event; SimulationCutOff past MAX_EVENTS."""
    m = failure_model(setup)
    tau, delta, recovery, mtbf = m.tau, m.delta, m.recovery, m.mtbf
    rng = np.random.default_rng(setup.seed)
    clock = _Clock()
    tally = _Tally()
    for delay in _job(clock, rng, tally, useful_s, tau, delta, recovery, mtbf):
        clock.now = clock.now + delay
    wall = clock.now
    return ReliabilityResult(
        wall_s=wall,
        useful_s=useful_s,
        interruptions=tally.interruptions,
        interruptions_expected=wall / mtbf,
        goodput=useful_s / wall if wall > 0 else 1.0,
        checkpoint_interval_s=tau if math.isfinite(tau) else 0.0,
        checkpoint_write_s=delta,
        mtbf_s=mtbf,
        redo_s=tally.redo_s,
        recovery_s=tally.recovery_s,
        checkpoint_s=tally.checkpoint_s,
    )


class _Clock:
    """Simulated time of the job, in seconds; `timeout` is the delay to wait, as the job yields it."""

    def __init__(self) -> None:
        self.now: float = 0  # an int, as SimPy's initial time: a run with no event reports 0

    @staticmethod
    def timeout(delay: float) -> float:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        return delay


def _job(
    env: _Clock,
    rng: np.random.Generator,
    tally: _Tally,
    useful_s: float,
    tau: float,
    delta: float,
    recovery: float,
    mtbf: float,
) -> Generator[float, None, None]:
    """The training job: segments of tau each closed by a checkpoint of delta; a failure loses the
    segment in progress and costs `recovery` (restart + checkpoint load)."""

    def next_failure() -> float:
        return env.now + rng.exponential(mtbf) if math.isfinite(mtbf) else math.inf

    fail_at = next_failure()
    remaining = useful_s
    while remaining > 0:
        seg = min(tau, remaining)
        final = seg >= remaining
        ckpt = 0.0 if final else delta  # the last segment ends the job; no checkpoint after it
        _count_event(tally)
        if env.now + seg + ckpt <= fail_at:
            yield env.timeout(seg + ckpt)
            tally.checkpoint_s += ckpt
            remaining = 0.0 if final else remaining - seg
            continue
        elapsed = fail_at - env.now
        yield env.timeout(elapsed)  # the failure: the segment (and a partial checkpoint) is lost
        tally.redo_s += min(elapsed, seg)
        tally.checkpoint_s += max(0.0, elapsed - seg)
        tally.interruptions += 1
        fail_at = next_failure()
        while env.now + recovery > fail_at:  # struck again while restarting: start over
            tally.recovery_s += fail_at - env.now
            yield env.timeout(fail_at - env.now)
            tally.interruptions += 1
            _count_event(tally)
            fail_at = next_failure()
        tally.recovery_s += recovery
        yield env.timeout(recovery)


def _count_event(tally: _Tally) -> None:
    tally.events += 1
    if tally.events > MAX_EVENTS:
        raise SimulationCutOff
