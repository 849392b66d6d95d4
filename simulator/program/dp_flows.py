"""The data-parallel traffic of a chunk as flows: the gradient reduction (whole, or in buckets) and the
ZeRO-1/2 weight all-gather (workload/dp_comm.py priced on the topology)."""

from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.workload.dp_comm import gradient_reduction, weight_gather
from simulator.workload.ops import CommOp
from simulator.workload.placement import chunk_params_on_rank
from simulator.workload.step import ChunkWork, StepWork


def reduce_flows(work: StepWork, c: ChunkWork, pricer: CommPricer, params: float) -> tuple[FlowSpec, ...]:
    op = gradient_reduction(work.setup, params)
    return flows(pricer, op, c.stage) if op else ()


def flows(pricer: CommPricer, op: CommOp, stage: int) -> tuple[FlowSpec, ...]:
    return tuple(pricer.unit_flows(op.collective, op.group, stage, op.bytes))


def dp_flows(work: StepWork, c: ChunkWork, pricer: CommPricer) -> tuple[tuple[FlowSpec, ...], tuple[FlowSpec, ...]]:
    """Per-chunk data-parallel traffic (the bucket granularity of overlapped reduction)."""
    params = chunk_params_on_rank(work.setup, c.index, c.layers)
    gather = weight_gather(work.setup, params)
    return reduce_flows(work, c, pricer, params), (flows(pricer, gather, c.stage) if gather else ())
