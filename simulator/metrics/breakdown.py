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


@dataclass(frozen=True)
class StepBreakdown:
    """Where each simulated stage's step time went, by category, and the average over stages."""

    average_s: dict[Category, float]  # the average stage (= average GPU); sums to the step time
    per_stage_s: list[dict[Category, float]]

    def stage_utilisation(self, time_s: float) -> list[float]:
        """Share of the step each stage's compute stream spent computing (ops and blocking TP/CP)."""
        busy = (
            Category.BUBBLE,
            Category.IDLE,
            Category.COMM_PP,
            Category.COMM_DP,
            Category.COMM_EP,
            Category.EXPERT_IMBALANCE,
            Category.HOST_OVERHEAD,
        )
        return [sum(v for c, v in s.items() if c not in busy) / time_s for s in self.per_stage_s]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _account_wait(span: Span, result: "EngineResult", acc: dict[Category, float]) -> None:
    d = span.duration_s
    if span.wait is WaitReason.PP_RECV:
        assert isinstance(span.awaited, tuple), "a pipeline wait names its message"
        sent, arrived = result.messages.get(span.awaited, (span.end_s, span.end_s))
        on_wire = _overlap(span.start_s, span.end_s, sent, arrived)
        acc[Category.COMM_PP] += on_wire
        acc[Category.BUBBLE] += d - on_wire
    elif span.wait is WaitReason.DP_COMM:
        acc[Category.COMM_DP] += d
    elif span.wait is WaitReason.EP_COMM:
        acc[Category.COMM_EP] += d
    else:
        acc[Category.IDLE] += d


def step_breakdown(result: "EngineResult") -> StepBreakdown:
    """Per simulated rank and for the average rank (= the average GPU)."""
    stages = result.ranks
    per_stage = [empty_breakdown() for _ in range(stages)]
    compute, contention = Stream.COMPUTE, Category.COMM_CONTENTION  # ~10^4 spans: look the members up once
    for span in result.spans:
        if span.stream is not compute:
            continue
        acc = per_stage[span.rank]
        if span.wait is not None:
            _account_wait(span, result, acc)
        else:
            seg = span.segment
            assert seg is not None, "a compute span runs a segment"
            own = span.duration_s - span.contention_s
            scale = own / seg.duration_s if seg.duration_s > 0 else 0.0  # a straggler's slowdown
            for c, v in seg.by_category.items():
                acc[c] += v * scale
            acc[contention] += span.contention_s
    average = empty_breakdown()
    for acc in per_stage:
        for c, v in acc.items():
            average[c] += v / stages
    return StepBreakdown(average, per_stage)
