"""The data-parallel traffic of a chunk as flows: the gradient reduction (whole, or in buckets) and the
ZeRO-1/2 weight all-gather (workload/dp_comm.py priced on the topology)."""

from collections.abc import Iterable

from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.enums import Collective, LayerKind
from simulator.workload.dp_comm import gradient_reductions, weight_gathers
from simulator.workload.ops import CommOp
from simulator.workload.placement import RankParams, chunk_rank_params, layer_rank_params
from simulator.workload.step import ChunkWork, StepWork


def reduce_flows(work: StepWork, c: ChunkWork, pricer: CommPricer, params: RankParams) -> tuple[FlowSpec, ...]:
    """The gradient reduction of `params`: dense gradients over DP x CP, then the experts' over expert-DP."""
    ops = gradient_reductions(work.setup, params.dense, params.expert)
    return tuple(f for op in ops for f in flows(pricer, op, c.stage))


def gather_flows(work: StepWork, c: ChunkWork, pricer: CommPricer, params: RankParams) -> tuple[FlowSpec, ...]:
    """The ZeRO-1/2 weight all-gather of `params`: dense weights over DP x CP, the experts' over expert-DP."""
    ops = weight_gathers(work.setup, params.dense, params.expert)
    return tuple(f for op in ops for f in flows(pricer, op, c.stage))


def flows(pricer: CommPricer, op: CommOp, stage: int) -> tuple[FlowSpec, ...]:
    return tuple(pricer.unit_flows(op.collective, op.group, stage, op.bytes))


def dp_flows(work: StepWork, c: ChunkWork, pricer: CommPricer) -> tuple[tuple[FlowSpec, ...], tuple[FlowSpec, ...]]:
    """Per-chunk data-parallel traffic (the bucket granularity of overlapped reduction)."""
    params = chunk_rank_params(work.setup, c.index)
    return reduce_flows(work, c, pricer, params), gather_flows(work, c, pricer, params)


def collective_flows(ops: Iterable[CommOp], kind: Collective, pricer: CommPricer, stage: int) -> tuple[FlowSpec, ...]:
    """The flows of those `ops` that are `kind` collectives (a ZeRO-3 layer's gathers or reduce-scatters)."""
    return tuple(f for op in ops if op.collective is kind for f in flows(pricer, op, stage))


def bucket_params(work: StepWork, c: ChunkWork) -> tuple[RankParams, dict[LayerKind, RankParams], RankParams]:
    """What overlapped gradient reduction (PyTorch DDP buckets, Megatron --overlap-grad-reduce) reduces
    in the chunk's last backward, and overlapped weight gathers (--overlap-param-gather) gather in its
    first forward: the head's bucket (with the MTP modules) when the chunk is the last and not the
    first, one bucket per layer of each kind, and the rest with the embedding."""
    setup = work.setup
    per_layer = {kind: layer_rank_params(setup, kind) for kind in work.layers}
    kinds = [c.kind(i) for i in range(c.layers)]
    layers = RankParams()
    for kind in dict.fromkeys(kinds):
        layers = layers + kinds.count(kind) * per_layer[kind]
    ends = chunk_rank_params(setup, c.index) + layers * -1.0
    head = ends if c.index == setup.plan.chunks - 1 and c.index != 0 else RankParams()
    return head, per_layer, ends + head * -1.0
