"""The data-parallel traffic of a chunk as flows: the gradient reduction (whole, or in buckets) and the
ZeRO-1/2 weight all-gather (workload/dp_comm.py priced on the topology)."""

from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.workload.dp_comm import gradient_reductions, weight_gathers
from simulator.workload.ops import CommOp
from simulator.workload.placement import RankParams, chunk_rank_params
from simulator.workload.step import ChunkWork, StepWork


def reduce_flows(work: StepWork, c: ChunkWork, pricer: CommPricer, params: RankParams) -> tuple[FlowSpec, ...]:
    """The gradient reduction of `params`: dense gradients over DP x CP, then the experts' over expert-DP."""
    ops = gradient_reductions(work.setup, params.dense, params.expert)
    return tuple(f for op in ops for f in flows(pricer, op, c.stage))


def flows(pricer: CommPricer, op: CommOp, stage: int) -> tuple[FlowSpec, ...]:
    return tuple(pricer.unit_flows(op.collective, op.group, stage, op.bytes))


def dp_flows(work: StepWork, c: ChunkWork, pricer: CommPricer) -> tuple[tuple[FlowSpec, ...], tuple[FlowSpec, ...]]:
    """Per-chunk data-parallel traffic (the bucket granularity of overlapped reduction)."""
    params = chunk_rank_params(work.setup, c.index)
    gathers = weight_gathers(work.setup, params.dense, params.expert)
    return reduce_flows(work, c, pricer, params), tuple(f for op in gathers for f in flows(pricer, op, c.stage))
