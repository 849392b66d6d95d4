"""Spans -> where the time goes: the per-category breakdown of every stage's compute stream.

Compute spans contribute their segment's categories, and the time collectives running beside
them took from them (comm_contention). Waits are split by what was in flight:
while a stage waits for a pipeline message, the part of the wait during which that message was
on the wire is exposed pipeline communication (comm_pp), the rest is the pipeline bubble;
waits on data-parallel collectives are exposed DP communication; a finished stage waiting for
the slowest one is idle. Overlapped communication is therefore never double-counted.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.engine.spans import Span, Stream, WaitReason
from simulator.enums import Category

if TYPE_CHECKING:  # the engine (SimPy, the flow network) is not needed to read its spans
    from simulator.engine.core import EngineResult


def empty_breakdown() -> dict[Category, float]:
    return {c: 0.0 for c in Category}


# A stage's time not spent on its own work: waiting for other stages, exposed communication it does not
# compute beside, the host (the rest is computing, blocking TP/CP collectives included)
WAITING = frozenset(
    {
        Category.BUBBLE,
        Category.IDLE,
        Category.COMM_PP,
        Category.COMM_DP,
        Category.COMM_EP,
        Category.EXPERT_IMBALANCE,
        Category.HOST_OVERHEAD,
    }
)


@dataclass(frozen=True)
class StepBreakdown:
    """Where each simulated stage's step time went, by category, and the average over stages."""

    average_s: dict[Category, float]  # the average stage (= average GPU); sums to the step time
    per_stage_s: list[dict[Category, float]]

    def stage_utilisation(self, time_s: float) -> list[float]:
        """Share of the step each stage's compute stream spent computing (ops and blocking TP/CP)."""
        return [sum(v for c, v in s.items() if c not in WAITING) / time_s for s in self.per_stage_s]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def span_shares(span: Span, result: "EngineResult") -> list[tuple[Category, float]]:
    """Seconds of a compute-stream span by category (module docstring): a compute span's segment
    categories (scaled to a straggler's pace) and the contention it suffered; a wait split by what was
    in flight. The one attribution the breakdown and the power timeline (energy/timeline.py) share."""
    d = span.duration_s
    if span.wait is None:
        seg = span.segment
        assert seg is not None, "a compute span runs a segment"
        own = d - span.contention_s
        scale = own / seg.duration_s if seg.duration_s > 0 else 0.0  # a straggler's slowdown
        shares = [(c, v * scale) for c, v in seg.by_category.items()]
        shares.append((Category.COMM_CONTENTION, span.contention_s))
        return shares
    if span.wait is WaitReason.PP_RECV:
        assert isinstance(span.awaited, tuple), "a pipeline wait names its message"
        sent, arrived = result.messages.get(span.awaited, (span.end_s, span.end_s))
        on_wire = _overlap(span.start_s, span.end_s, sent, arrived)
        return [(Category.COMM_PP, on_wire), (Category.BUBBLE, d - on_wire)]
    if span.wait is WaitReason.DP_COMM:
        return [(Category.COMM_DP, d)]
    if span.wait is WaitReason.EP_COMM:
        return [(Category.COMM_EP, d)]
    return [(Category.IDLE, d)]


def step_breakdown(result: "EngineResult") -> StepBreakdown:
    """Per simulated rank and for the average rank (= the average GPU)."""
    stages = result.ranks
    per_stage = [empty_breakdown() for _ in range(stages)]
    compute = Stream.COMPUTE  # ~10^4 spans: look the member up once
    for span in result.spans:
        if span.stream is not compute:
            continue
        acc = per_stage[span.rank]
        for c, v in span_shares(span, result):
            acc[c] += v
    average = empty_breakdown()
    for acc in per_stage:
        for c, v in acc.items():
            average[c] += v / stages
    return StepBreakdown(average, per_stage)
