"""The LM head on the last pipeline chunk: final norm, logits GEMM and the cross-entropy loss."""

from simulator.catalog.models import ModelSpec
from simulator.enums import Collective, CommGroup, Phase, Role
from simulator.workload.layer import backward_gemms, elementwise, gemm_op, tp_comm
from simulator.workload.ops import CommOp, GemmShape, Item
from simulator.workload.shapes import RankShapes

LOSS_ELEM_BYTES = 4  # the vocab-parallel cross-entropy works on fp32 logits (Megatron-LM)


def cross_entropy_bytes(r: RankShapes) -> tuple[float, float]:
    """HBM bytes per logit of the loss, forward and backward, after the LM head wrote the logits.

    Eager (Megatron-LM's _VocabParallelCrossEntropy over `output.float()`; PyTorch's cross_entropy
    under autocast makes the same passes): forward casts to fp32 (read elem, write 4), takes the
    max (read 4), subtracts it in place (read 4, write 4), exponentiates in place (read 4, write 4),
    sums (read 4) and divides in place (read 4, write 4), keeping the softmax for the backward, which
    scales it by the incoming gradient in place (read 4, write 4) and casts back (read 4, write elem).
    Fused (Megatron-Core's cross_entropy_loss_fusion): the max pass and one fused pass read the
    logits (2 elem) and write the exponentials (4), the loss pass turns them into the softmax in
    place (read 4, write 4); the backward reads it (4) and writes the gradient (elem)."""
    if r.fused_loss:
        return 2 * r.elem + 3 * LOSS_ELEM_BYTES, LOSS_ELEM_BYTES + r.elem
    return r.elem + 9 * LOSS_ELEM_BYTES, 3 * LOSS_ELEM_BYTES + r.elem


def head_shape(r: RankShapes) -> GemmShape:
    return GemmShape(m=r.tokens, n=r.vocab // r.tp, k=r.h)


def head_forward(model: ModelSpec, r: RankShapes) -> list[Item]:
    logits = r.tokens * r.vocab_local
    return [
        elementwise("final_norm", Phase.FORWARD, 2 * r.norm_tokens * r.h * r.elem),
        *tp_comm("tp_head_gather", Phase.FORWARD, r, gather=True),
        gemm_op("lm_head", Phase.FORWARD, head_shape(r), r.elem, Role.LM_HEAD),
        elementwise("cross_entropy", Phase.FORWARD, logits * cross_entropy_bytes(r)[0]),
    ]


def head_backward(model: ModelSpec, r: RankShapes) -> list[Item]:
    logits = r.tokens * r.vocab_local
    input_grad = tp_comm("tp_head_bwd", Phase.BACKWARD, r, gather=False) if r.sp else _head_input_allreduce(r)
    return [
        elementwise("cross_entropy_bwd", Phase.BACKWARD, logits * cross_entropy_bytes(r)[1]),
        *backward_gemms("lm_head", head_shape(r), r.elem, Role.LM_HEAD),
        *input_grad,
        elementwise("final_norm_bwd", Phase.BACKWARD, 3 * r.norm_tokens * r.h * r.elem),
    ]


def _head_input_allreduce(r: RankShapes) -> list[CommOp]:
    if r.tp == 1:
        return []
    size = r.tokens * r.h * r.elem
    return [CommOp("tp_head_bwd", CommGroup.TP, Collective.ALL_REDUCE, Phase.BACKWARD, size, r.tp)]
