"""The embedding on the first pipeline chunk: vocab-parallel lookup, its TP reduction, and its backward."""

from simulator.enums import Collective, CommGroup, Phase
from simulator.workload.layer import elementwise, tp_comm
from simulator.workload.ops import CommOp, Item
from simulator.workload.shapes import RankShapes


def embedding_forward(r: RankShapes) -> list[Item]:
    """Vocab-parallel lookup (each TP rank owns V/t rows) + position add + dropout, then the TP
    reduction that combines the partial lookups (all-reduce, or reduce-scatter with SP)."""
    out = r.tokens * r.h * r.elem
    return [
        elementwise("embedding_lookup", Phase.FORWARD, 2 * out),
        *tp_comm("tp_embedding_reduce", Phase.FORWARD, r, gather=False),
        elementwise("embedding_dropout", Phase.FORWARD, 2 * r.norm_tokens * r.h * r.elem),
    ]


def embedding_backward(r: RankShapes) -> list[Item]:
    """Scatter-add of the output gradient into the embedding table rows."""
    grad = r.tokens * r.h * r.elem
    sp_gather = (
        [CommOp("tp_embedding_bwd", CommGroup.TP, Collective.ALL_GATHER, Phase.BACKWARD, grad, r.tp)] if r.sp else []
    )
    return [*sp_gather, elementwise("embedding_grad", Phase.BACKWARD, 3 * grad)]
