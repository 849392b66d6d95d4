"""Reliability model: the run as training segments, checkpoints and failures (design.md, "Two
time scales"). A coarse discrete-event simulation, one event per segment + checkpoint, failure or
restart. It has a single process, so it needs no event queue: a clock advanced by each delay the
job waits (the additions SimPy's scheduler made), ~5x faster than SimPy for the 10^4-10^5 events of
a large run.

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
from simulator.workload.params import total_params

MAX_EVENTS = 10_000_000  # a run that needs more is one that essentially never finishes


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


def simulate_run(setup: Setup, useful_s: float) -> ReliabilityResult:
    """Wall time to accumulate `useful_s` seconds of training under failures (seeded, deterministic)."""
    r, nodes = setup.reliability, setup.cluster.num_nodes
    nbytes = checkpoint_bytes(setup)
    delta = nbytes / (nodes * r.write_bytes_per_s_per_node)
    recovery = r.restart_s + nbytes / (nodes * r.read_bytes_per_s_per_node)
    mtbf = system_mtbf_s(setup)
    if r.checkpoint_interval_s is not None:
        tau = r.checkpoint_interval_s
    else:
        tau = daly_interval(delta, mtbf) if math.isfinite(mtbf) else math.inf
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
        tally.events += 1
        if tally.events > MAX_EVENTS:
            raise RuntimeError(f"reliability model: no progress after {MAX_EVENTS:,} events (failures too frequent)")
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
            tally.events += 1
            fail_at = next_failure()
        tally.recovery_s += recovery
        yield env.timeout(recovery)
