"""Multi-token prediction modules (DeepSeek-V3, arXiv 2412.19437 sec. 2.2; Megatron-Core
`--mtp-num-layers`), after the main model's head on the last pipeline chunk. Module k embeds the
tokens shifted by k with the shared embedding, normalises it and the previous depth's hidden state,
projects their concatenation (2h -> h), runs one transformer layer of the model's last layer kind and
predicts through the shared output head and its own loss."""

from simulator.catalog.models import ModelSpec
from simulator.enums import Phase, Role
from simulator.workload.head import head_backward, head_forward
from simulator.workload.layer import LayerWork, elementwise, linear, linear_backward, tp_backward, tp_comm
from simulator.workload.ops import GemmShape, Item
from simulator.workload.shapes import RankShapes


def mtp_projection(r: RankShapes) -> GemmShape:
    """The 2h -> h projection, row-parallel under TP (each rank its share of the 2h inputs)."""
    return GemmShape(m=r.tokens, n=r.h, k=2 * r.h // r.tp)


def mtp_module_forward(model: ModelSpec, r: RankShapes, layer: LayerWork) -> list[Item]:
    fwd = Phase.FORWARD
    act = r.norm_tokens * r.h * r.elem
    return [
        elementwise("mtp_embedding", fwd, 2 * r.tokens * r.h * r.elem / r.tp),
        elementwise("mtp_norms", fwd, 2 * 2 * act),
        *tp_comm("tp_gather_mtp", fwd, r, gather=True, width=2 * r.h),
        *linear(Role.MTP_PROJ, fwd, mtp_projection(r), r),
        *tp_comm("tp_reduce_mtp", fwd, r, gather=False),
        *layer.forward,
        *head_forward(model, r),
    ]


def mtp_module_backward(model: ModelSpec, r: RankShapes, layer: LayerWork) -> list[Item]:
    bwd = Phase.BACKWARD
    act = r.norm_tokens * r.h * r.elem
    return [
        *head_backward(model, r),
        *layer.backward,
        *tp_backward("tp_mtp_out_bwd", r, at_output=True),
        *linear_backward(Role.MTP_PROJ, mtp_projection(r), r),
        *tp_backward("tp_mtp_in_bwd", r, at_output=False, width=2 * r.h),
        elementwise("mtp_norms_bwd", bwd, 2 * 3 * act),
        elementwise("mtp_embedding_grad", bwd, 3 * r.tokens * r.h * r.elem / r.tp),
    ]


def mtp_work(model: ModelSpec, r: RankShapes, layer: LayerWork) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    """The forward and backward items of all `model.mtp_layers` modules (depth 1 first; backward last first)."""
    forward: list[Item] = []
    backward: list[Item] = []
    for _ in range(model.mtp_layers):
        forward += mtp_module_forward(model, r, layer)
        backward = mtp_module_backward(model, r, layer) + backward
    return tuple(forward), tuple(backward)
