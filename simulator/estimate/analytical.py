"""Analytical step time: the engine's compiled program (same per-op costs, same collective
pricing) combined with the pipeline-bubble formula instead of an event simulation.

1F1B / GPipe (Narayanan et al. 2021 sec. 2.2.1): t = (m - 1) * max_s(t_s) + sum_s(t_s), which is
(m + p - 1) * t for equal stages, a bubble of (p - 1) / m. Interleaved with v chunks per stage
(sec. 2.2.2): the bubble shrinks to (p - 1) / v of a stage's micro-batch time. Pipeline messages
are on the critical path once per chunk boundary; ZeRO-3 gathers count where they exceed the
layer they prefetch behind; DP reduction is exposed after the pipeline drains (overlapped
buckets hide behind the last micro-batch's backward, overlapped weight gathers behind the first
forward but their first bucket). Compute beside an overlapped collective
loses the SMs NCCL holds (the engine's contention model): a collective active for C seconds beside
W seconds of compute adds min(C s, W s / (1 - s)), s the share of SMs taken.
"""

from dataclasses import dataclass

from simulator.collectives.experts import ExpertRouting
from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer, FlowSpec, static_time_s
from simulator.costs.contention import contention_s, contention_share
from simulator.enums import Category, Schedule
from simulator.metrics.breakdown import empty_breakdown
from simulator.program.blocks import Block, ChunkProgram
from simulator.program.compile import compile_program
from simulator.topology import build_topology
from simulator.workload.step import StepWork


@dataclass(frozen=True)
class StepEstimate:
    time_s: float
    breakdown_s: dict[Category, float]  # average GPU; sums to time_s


def _blocks_time(
    pricer: CommPricer, blocks: tuple[Block, ...], acc: dict[Category, float], m: int, share: float, overlap: bool
) -> float:
    """Time of one pass over `blocks`; adds m passes' worth of categories to `acc`. An expert-parallel
    exchange blocks the block after it, or with `overlap` (moe_overlap) hides behind up to as much
    compute of another micro-batch."""
    total = 0.0
    for b in blocks:
        if b.exchange:
            exchange = static_time_s(pricer.topo, b.exchange)
            exposed_ep = max(0.0, exchange - b.segment.duration_s) if overlap else exchange
            total += exposed_ep
            acc[Category.COMM_EP] += m * exposed_ep
        gather = static_time_s(pricer.topo, b.gather) if b.gather else 0.0
        reduce = static_time_s(pricer.topo, b.reduce) if b.reduce else 0.0
        exposed = max(0.0, gather - b.segment.duration_s)
        slowed = contention_s(gather + reduce, b.segment.duration_s, share)
        total += b.segment.duration_s + exposed + slowed
        acc[Category.COMM_DP] += m * exposed
        acc[Category.COMM_CONTENTION] += m * slowed
        for c, v in b.segment.by_category.items():
            acc[c] += m * v
    return total


def _flows_s(pricer: CommPricer, groups: list[tuple[FlowSpec, ...]]) -> float:
    return sum(static_time_s(pricer.topo, g) for g in groups)


def estimate_step(work: StepWork) -> StepEstimate:
    setup = work.setup
    plan = setup.plan
    pricer = CommPricer(
        build_topology(setup.cluster),
        Layout.of(plan),
        setup.cluster.collective_algorithm,
        ExpertRouting.of(setup.model, setup.plan),
    )
    program = compile_program(work, pricer)
    m = work.micro_batches
    share = contention_share(plan, setup.cluster.gpu)
    p2p = static_time_s(pricer.topo, [pricer.p2p(0, 1 % plan.pp, program.pp_message_bytes)]) if plan.pp > 1 else 0.0
    per_mb, tails, cats = [], [], []
    for sp in program.stages:
        acc = empty_breakdown()
        t = 0.0
        for chunk in sp.chunks:
            for blocks in (chunk.forward, chunk.backward):
                t += _blocks_time(pricer, blocks, acc, m, share, plan.moe_overlap)
            t += _boundaries(chunk, plan.chunks) * p2p
            acc[Category.COMM_PP] += m * _boundaries(chunk, plan.chunks) * p2p
        dp = _flows_s(pricer, [c.grad_reduce for c in sp.chunks])
        buckets = _flows_s(pricer, [b.bucket for c in sp.chunks for b in c.backward_last])
        last_backward = sum(b.segment.duration_s for c in sp.chunks for b in c.backward)
        dp += max(0.0, buckets - last_backward) + _flows_s(pricer, [c.param_gather for c in sp.chunks])
        synced = [b.param_sync for c in sp.chunks for b in c.forward_first if b.param_sync]
        # one bucket ahead, the gathers hide behind the forwards between the chunks' first forwards: the
        # warm-up's min(m, pp) forwards of each chunk when interleaved, the first forward otherwise
        ahead = min(m, plan.pp) if plan.schedule is Schedule.INTERLEAVED else 1
        first_forward = ahead * sum(b.segment.duration_s for c in sp.chunks for b in c.forward_first)
        gathers = _flows_s(pricer, synced)
        if synced:  # the first bucket waits at the start of the step
            first = static_time_s(pricer.topo, synced[0])
            dp += first + max(0.0, gathers - first - first_forward)
        acc[Category.COMM_DP] += dp
        slowed = contention_s(buckets, last_backward, share) + contention_s(gathers, first_forward, share)
        acc[Category.COMM_CONTENTION] += slowed
        dp += slowed
        acc[Category.OPTIMIZER] += sp.optimizer.duration_s
        per_mb.append(t)
        tails.append(dp + sp.optimizer.duration_s)
        cats.append(acc)
    if plan.schedule is Schedule.INTERLEAVED:
        t_pipe = m * max(per_mb) + (plan.pp - 1) * max(per_mb) / plan.virtual_stages
    else:
        t_pipe = (m - 1) * max(per_mb) + sum(per_mb)
    time_s = t_pipe + max(tails)
    breakdown = empty_breakdown()
    for t, tail, acc in zip(per_mb, tails, cats, strict=True):
        acc[Category.BUBBLE] += t_pipe - m * t
        acc[Category.IDLE] += time_s - t_pipe - tail
        for c, v in acc.items():
            breakdown[c] += v / plan.pp
    return StepEstimate(time_s=time_s, breakdown_s=breakdown)


def _boundaries(chunk: ChunkProgram, chunks: int) -> int:
    """Messages this chunk sends per micro-batch: activation forward, gradient backward."""
    return (chunk.chunk < chunks - 1) + (chunk.chunk > 0)
