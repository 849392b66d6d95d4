"""Which breakdown category a work item's time belongs to."""

from simulator.enums import Category, CommGroup, OpKind, Phase
from simulator.workload.layer import Item
from simulator.workload.ops import CommOp

_COMM = {
    CommGroup.TP: Category.COMM_TP,
    CommGroup.CP: Category.COMM_CP,
    CommGroup.PP: Category.COMM_PP,
    CommGroup.DP: Category.COMM_DP,
}
_COMPUTE = {
    OpKind.GEMM: Category.GEMM,
    OpKind.ATTENTION: Category.ATTENTION,
    OpKind.ELEMENTWISE: Category.OTHER_COMPUTE,
    OpKind.OPTIMIZER: Category.OPTIMIZER,
}


def category_of(item: Item) -> Category:
    """Communication by its group; compute by kind, except that recomputed forward work is its own
    category (so the cost of activation checkpointing is visible)."""
    if isinstance(item, CommOp):
        return _COMM[item.group]
    if item.phase is Phase.RECOMPUTE:
        return Category.RECOMPUTE
    return _COMPUTE[item.kind]


def empty_breakdown() -> dict[Category, float]:
    return {c: 0.0 for c in Category}
