"""Analytical step time: per-op roofline costs summed per stage, the pipeline-bubble formula
for the schedule, then exposed data-parallel communication and the optimizer.

1F1B / GPipe (Narayanan et al. 2021 sec. 2.2.1): t = (m - 1) * max_s(t_s) + sum_s(t_s), which is
(m + p - 1) * t for equal stages, i.e. a bubble of (p - 1) / m. Interleaved with v chunks per
stage (sec. 2.2.2): the bubble shrinks to (p - 1) / v chunks' worth. Communication inside a
micro-batch (TP, CP, PP) is not overlapped with compute (Megatron-LM 2021); DP gradient
reduction is exposed unless `dp_overlap`, in which case it hides behind one micro-batch's backward.
"""

from collections import defaultdict
from dataclasses import dataclass

from simulator.costs.collectives import p2p_time_s
from simulator.costs.timing import item_time_s
from simulator.enums import Category, Schedule
from simulator.metrics.categories import category_of, empty_breakdown
from simulator.workload.layer import Item
from simulator.workload.ops import CommOp
from simulator.workload.step import StepWork


@dataclass(frozen=True)
class StageTimes:
    """Per-micro-batch work of one stage by category, and its forward/backward totals (s)."""

    forward_s: float
    backward_s: float
    by_category: dict[Category, float]


@dataclass(frozen=True)
class StepEstimate:
    time_s: float
    breakdown_s: dict[Category, float]  # average GPU; sums to time_s
    stage_busy_s: list[float]


def _sum_items(work: StepWork, items, acc: dict[Category, float]) -> float:
    """Total time of a sequence of items; ZeRO-3 gathers (non-blocking) only count where they
    exceed the compute they prefetch behind, which this closed form ignores (they are added to
    the category but not to the critical path)."""
    total = 0.0
    cache: dict[int, float] = {}
    for item in items:
        key = id(item)
        if key not in cache:
            cache[key] = item_time_s(work.setup, item)
        t = cache[key]
        acc[category_of(item)] += t if _blocking(item) else 0.0
        total += t if _blocking(item) else 0.0
    return total


def _blocking(item: Item) -> bool:
    return not isinstance(item, CommOp) or item.blocking


def stage_times(work: StepWork) -> list[StageTimes]:
    setup = work.setup
    p2p = p2p_time_s(setup, work.pp_message_bytes) if setup.plan.pp > 1 else 0.0
    out = []
    for stage in range(setup.plan.pp):
        acc = empty_breakdown()
        fwd = bwd = 0.0
        for chunk in (c for c in work.chunks if c.stage == stage):
            fwd += _sum_items(work, chunk.forward(work.layer), acc)
            bwd += _sum_items(work, chunk.backward(work.layer), acc)
            sends = (chunk.index < len(work.chunks) - 1) + (chunk.index > 0)
            acc[Category.COMM_PP] += sends * p2p
            fwd += (chunk.index < len(work.chunks) - 1) * p2p
            bwd += (chunk.index > 0) * p2p
        out.append(StageTimes(forward_s=fwd, backward_s=bwd, by_category=acc))
    return out


def pipeline_time_s(work: StepWork, stages: list[StageTimes]) -> float:
    m, p = work.micro_batches, work.setup.plan.pp
    per_mb = [s.forward_s + s.backward_s for s in stages]
    if work.setup.plan.schedule is Schedule.INTERLEAVED:
        v = work.setup.plan.virtual_stages
        return m * max(per_mb) + (p - 1) * max(per_mb) / v
    return (m - 1) * max(per_mb) + sum(per_mb)


def estimate_step(work: StepWork) -> StepEstimate:
    stages = stage_times(work)
    m = work.micro_batches
    t_pipe = pipeline_time_s(work, stages)
    tails = []
    per_stage_cats = []
    for st, stage_work in zip(stages, work.stages, strict=True):
        cats = defaultdict(float, {c: v * m for c, v in st.by_category.items()})
        dp = sum(item_time_s(work.setup, c) for c in stage_work.dp_comm)
        if work.setup.plan.dp_overlap:
            dp = max(0.0, dp - st.backward_s)
        opt = item_time_s(work.setup, stage_work.optimizer)
        cats[Category.COMM_DP] += dp
        cats[Category.OPTIMIZER] += opt
        tails.append(dp + opt)
        per_stage_cats.append(cats)
    time_s = t_pipe + max(tails)
    breakdown = empty_breakdown()
    busy = []
    for st, cats, tail in zip(stages, per_stage_cats, tails, strict=True):
        pipe_busy = m * (st.forward_s + st.backward_s)
        cats[Category.BUBBLE] += t_pipe - pipe_busy
        cats[Category.IDLE] += time_s - t_pipe - tail
        busy.append(pipe_busy + tail)
        for c, v in cats.items():
            breakdown[c] += v / len(stages)
    return StepEstimate(time_s=time_s, breakdown_s=breakdown, stage_busy_s=busy)
