"""The reliability model in closed form: the expected values of the job reliability.py simulates
(segments of training closed by a checkpoint, failures at exponential times, a restart that a
failure during it starts over), solved exactly instead of drawn event by event.

For a segment of work L (training s plus checkpoint c), failure rate lam = 1/M and restart R, as in
Daly (2006), "A higher order estimate of the optimum checkpoint interval for restart dumps":

    E[wall] = M e^(R/M) (e^(L/M) - 1)

(attempts until one runs L without a failure, e^(L/M) on average; each failure costs the restart,
itself repeated until R passes without one); the interruptions are E[wall] / M. The split of the
lost time into re-done training, interrupted checkpoints and restarts integrates the failure time
over the attempt. Cost: O(1) whatever the run's length, where the simulation costs an event per
segment and failure.
"""

import math
from dataclasses import dataclass

SERIES_BELOW = 1e-4  # lam*t below this: the Taylor series of _lost_share (1 - e^-y (1+y) cancels)


@dataclass(frozen=True)
class Expected:
    """Expected totals over the run, in seconds (interruptions and events: counts)."""

    wall_s: float
    redo_s: float
    recovery_s: float
    checkpoint_s: float
    interruptions: float
    events: float  # segment attempts + restarts struck again: the events the simulation would draw


def segments(useful_s: float, tau_s: float) -> tuple[int, float]:
    """(full segments of tau, each closed by a checkpoint; training in the last, unclosed one)."""
    if not math.isfinite(tau_s) or useful_s <= tau_s:
        return 0, useful_s
    full = math.ceil(useful_s / tau_s) - 1
    return full, min(tau_s, max(useful_s - full * tau_s, 0.0))


def log_wall_s(useful_s: float, tau_s: float, delta_s: float, restart_s: float, mtbf_s: float) -> float:
    """log E[wall], computed in logs so that a run that will never finish (e^(L/M) beyond any float)
    is still a number to compare."""
    if not math.isfinite(mtbf_s):
        full, last = segments(useful_s, tau_s)
        return math.log(useful_s + full * delta_s)
    lam = 1.0 / mtbf_s
    full, last = segments(useful_s, tau_s)
    terms = [_log_segment_wall(last, lam, restart_s)] if last > 0 else []
    if full:
        terms.append(math.log(full) + _log_segment_wall(tau_s + delta_s, lam, restart_s))
    return _log_sum(terms)


def _log_segment_wall(work_s: float, lam: float, restart_s: float) -> float:
    """log of E[wall] of one segment, log(e^(lam R) (e^(lam L) - 1) / lam)."""
    x = lam * work_s
    return x + math.log(-math.expm1(-x)) + lam * restart_s - math.log(lam)


def _log_sum(logs: list[float]) -> float:
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs))


def expected_run(useful_s: float, tau_s: float, delta_s: float, restart_s: float, mtbf_s: float) -> Expected:
    """Expected totals of the whole run; call only when log_wall_s shows it finishes (else they overflow)."""
    full, last = segments(useful_s, tau_s)
    lam = 0.0 if not math.isfinite(mtbf_s) else 1.0 / mtbf_s
    parts = [(full, _segment(tau_s, delta_s, lam, restart_s))] if full else []
    if last > 0:
        parts.append((1, _segment(last, 0.0, lam, restart_s)))
    return Expected(*(sum(n * seg[i] for n, seg in parts) for i in range(6)))


def _segment(s: float, c: float, lam: float, restart_s: float) -> tuple[float, float, float, float, float, float]:
    """(wall, redo, recovery, checkpoint, interruptions, events) of one segment: s of training, then c
    of checkpoint (Expected's fields, in order)."""
    if lam == 0.0:
        return s + c, 0.0, 0.0, c, 0.0, 1.0
    failed_attempts = math.expm1(lam * (s + c))  # e^(lam L) - 1
    recovery = failed_attempts * math.expm1(lam * restart_s) / lam
    redo = math.exp(lam * (s + c)) * _lost_share(lam * s) / lam + s * math.expm1(lam * c)
    lost_checkpoint = math.exp(lam * c) * _lost_share(lam * c) / lam
    interruptions = failed_attempts * math.exp(lam * restart_s)
    wall = s + c + redo + lost_checkpoint + recovery
    return wall, redo, recovery, c + lost_checkpoint, interruptions, 1.0 + interruptions


def _lost_share(y: float) -> float:
    """1 - e^-y (1 + y): lam times the expected time a failure within the first y/lam of an attempt
    has cost (the integral of x lam e^(-lam x) over that span)."""
    if y < SERIES_BELOW:
        return y * y * (0.5 - y / 3.0 + y * y / 8.0)
    return -math.expm1(-y) - y * math.exp(-y)
