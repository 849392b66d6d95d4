"""The kernels and messages of one transformer layer for one micro-batch on one rank.

Forward order follows Megatron-LM's GPT layer: norm, QKV, core attention, output projection,
TP reduction, dropout+residual, norm, MLP up (+gate), activation, MLP down, TP reduction,
dropout+residual. Backward runs each GEMM as an activation-gradient (dgrad) and a
weight-gradient (wgrad) GEMM of the same FLOPs. Communication follows Korthikanti et al.
2022 sec. 4.2: without sequence parallelism two all-reduces forward and two backward; with it an
all-gather and a reduce-scatter in place of each all-reduce (same volume).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from simulator.catalog.loader import bundled
from simulator.catalog.models import ModelSpec
from simulator.enums import Collective, CommGroup, OpKind, Phase, Recompute, Role, TpOverlap
from simulator.workload.ops import CommOp, GemmShape, Item, Op
from simulator.workload.shapes import RankShapes

# FlashAttention's backward pass runs 5 matmuls against the forward's 2 (it recomputes the
# scores): 2.5x the forward FLOPs instead of 2x (Dao 2023, sec. 3.1).
FLASH_BACKWARD_WORK = 2.5 / 2.0


@dataclass(frozen=True)
class LayerWork:
    """One transformer layer's items on one rank: forward, backward, and the forward recomputed."""

    forward: tuple[Item, ...]
    backward: tuple[Item, ...]
    recompute: tuple[Item, ...]  # runs before `backward` when activations were not kept


def gemm_op(
    name: str, phase: Phase, shape: GemmShape, elem: int, role: Role | None = None, fp8_capable: bool = False
) -> Op:
    bytes_moved = (shape.m * shape.k + shape.k * shape.n + shape.m * shape.n) * elem * shape.batch
    return Op(
        name, OpKind.GEMM, phase, flops=shape.flops, bytes=bytes_moved, gemm=shape, fp8_capable=fp8_capable, role=role
    )


def backward_gemms(
    name: str, fwd: GemmShape, elem: int, role: Role | None = None, fp8_capable: bool = False
) -> list[Op]:
    """dX = dY @ W^T (m x k from m x n, n x k) and dW = X^T @ dY (k x n from k x m, m x n)."""
    dgrad = GemmShape(m=fwd.m, n=fwd.k, k=fwd.n, batch=fwd.batch)
    wgrad = GemmShape(m=fwd.k, n=fwd.n, k=fwd.m, batch=fwd.batch)
    return [
        gemm_op(f"{name}_dgrad", Phase.BACKWARD, dgrad, elem, role, fp8_capable),
        gemm_op(f"{name}_wgrad", Phase.BACKWARD, wgrad, elem, role, fp8_capable),
    ]


# FP8 recipes (NVIDIA Transformer Engine) run the four linear layers of each block in FP8 and keep
# attention, the LM head and everything else in BF16. Each FP8 GEMM input that is not produced by
# a fused norm needs a cast-and-transpose kernel (read 2-byte values, write 1-byte value and its
# transpose); in the backward the output gradient is cast and transposed the same way.
FP8_CAST_TRANSPOSE_BYTES_PER_ELEM = 2 + 2 * 1


def linear(role: Role, phase: Phase, shape: GemmShape, r: RankShapes) -> list[Op]:
    """A block linear layer: its GEMM (FP8-capable), preceded by the FP8 input cast when in FP8."""
    gemm = gemm_op(role.value, phase, shape, r.gemm_elem, role, fp8_capable=True)
    if r.gemm_elem != 1:
        return [gemm]
    cast_bytes = shape.m * shape.k * FP8_CAST_TRANSPOSE_BYTES_PER_ELEM
    return [elementwise(f"{role.value}_fp8_cast", phase, cast_bytes, Role.FP8_CAST), gemm]


def linear_backward(role: Role, fwd: GemmShape, r: RankShapes) -> list[Op]:
    ops = backward_gemms(role.value, fwd, r.gemm_elem, role, fp8_capable=True)
    if r.gemm_elem != 1:
        return ops
    cast_bytes = fwd.m * fwd.n * FP8_CAST_TRANSPOSE_BYTES_PER_ELEM
    return [elementwise(f"{role.value}_grad_fp8_cast", Phase.BACKWARD, cast_bytes, Role.FP8_CAST), *ops]


def elementwise(name: str, phase: Phase, bytes_moved: float, role: Role | None = None) -> Op:
    return Op(name, OpKind.ELEMENTWISE, phase, bytes=bytes_moved, role=role)


@cache
def pipeline_sms(linear: Role) -> int:
    """SMs the `pipeline` reduce-scatter after this linear layer takes from its GEMM (kernels.yaml)."""
    return int(bundled("kernels")["tp_comm_overlap"]["pipeline_sms"][linear.value])


def tp_comm(
    name: str, phase: Phase, r: RankShapes, gather: bool, linear: Role | None = None, width: int = 0
) -> list[CommOp]:
    """The TP reduction (or SP gather) of one [tokens, h] activation around the block linear
    `linear`; none without TP. With TP comm overlap the gather feeds the linear's GEMM by ring
    exchange and the reduce-scatter drains it in pipelined chunks (block linears only: userbuffers
    do not cover the embedding and the LM head). `width`: of the activation, default hidden."""
    if r.tp == 1:
        return []
    size = r.tokens * (width or r.h) * r.elem
    if not r.sp:
        return [CommOp(name, CommGroup.TP, Collective.ALL_REDUCE, phase, size, r.tp)] if not gather else []
    kind = Collective.ALL_GATHER if gather else Collective.REDUCE_SCATTER
    if not r.tp_overlap or linear is None:
        return [CommOp(name, CommGroup.TP, kind, phase, size, r.tp)]
    if gather:
        return [CommOp(name, CommGroup.TP, kind, phase, size, r.tp, overlap=TpOverlap.RING_EXCHANGE)]
    sms = pipeline_sms(linear)
    return [CommOp(name, CommGroup.TP, kind, phase, size, r.tp, overlap=TpOverlap.PIPELINE, overlap_sms=sms)]


def layer_shapes(model: ModelSpec, r: RankShapes) -> dict[str, GemmShape]:
    t = r.tokens
    mlp_in = 2 * r.f if model.gated_mlp else r.f
    return {
        "qkv": GemmShape(m=t, n=(r.heads + r.kv_heads) * r.d + r.kv_heads * r.d_v, k=r.h),
        "attn_proj": GemmShape(m=t, n=r.h, k=r.heads * r.d_v),
        "mlp_up": GemmShape(m=t, n=mlp_in // r.tp, k=r.h),
        "mlp_down": GemmShape(m=t, n=r.h, k=r.f // r.tp),
        "scores": GemmShape(m=r.s_q, n=r.s, k=r.d, batch=r.b * r.heads),
        "context": GemmShape(m=r.s_q, n=r.d_v, k=r.s, batch=r.b * r.heads),
    }


def cp_comm(name: str, phase: Phase, r: RankShapes, kind: Collective) -> list[CommOp]:
    """Context parallelism: every rank needs the K and V of the whole sequence (ring exchange in
    Megatron-LM's CP, Liu et al. 2023 ring attention), and returns dK, dV in the backward."""
    if r.cp == 1:
        return []
    kv = r.b * r.s * r.kv_heads * (r.d + r.d_v) * r.elem  # gathered K and V of the full sequence
    return [CommOp(name, CommGroup.CP, kind, phase, kv, r.cp)]


@cache
def causal_block_rows() -> int:
    return int(bundled("kernels")["flash_attention"]["causal_block_rows"])


def causal_fraction(r: RankShapes) -> float:
    """Share of the [s_q, s] score matrix a causal FlashAttention kernel computes: each query block of
    T rows runs to the end of its own rows, so s (s + T) / 2 of the s^2 elements (T = 1 would be the
    exact lower triangle). Under context parallelism a rank's query chunks cross the diagonal once
    in total (s_q rows), so the same share holds for its s_q x s block."""
    return min(1.0, (r.s + causal_block_rows()) / (2 * r.s))


def score_elements(r: RankShapes) -> float:
    """Elements of this rank's score matrices for one micro-batch, before the causal share."""
    return r.b * r.heads * r.s_q * r.s


def attention_forward(model: ModelSpec, r: RankShapes, flash: bool, phase: Phase) -> list[Op]:
    g = layer_shapes(model, r)
    if flash:
        flops = g["scores"].flops + g["context"].flops
        qkvo = _qkvo_bytes(r)
        return [
            Op(
                "flash_attn",
                OpKind.ATTENTION,
                phase,
                flops=flops,
                bytes=qkvo,
                causal_fraction=causal_fraction(r),
                exps=score_elements(r),
                head_dim=r.d,
            )
        ]
    scores = score_elements(r)
    # fused scale + causal mask + softmax (+ dropout): read scores, write probs (+ dropped probs, 1-byte mask)
    softmax_bytes = scores * (3 * r.elem + 1 if model.dropout else 2 * r.elem)
    return [
        _attention_gemm("attn_scores", phase, g["scores"], r.elem),
        elementwise("attn_softmax_dropout", phase, softmax_bytes),
        _attention_gemm("attn_context", phase, g["context"], r.elem),
    ]


def _qkvo_bytes(r: RankShapes) -> float:
    """Bytes a fused attention kernel reads and writes: Q, K (query/key head dim), V and O (value head dim)."""
    return r.tokens * ((r.heads + r.kv_heads) * r.d + (r.kv_heads + r.heads) * r.d_v) * r.elem


def _attention_gemm(name: str, phase: Phase, shape: GemmShape, elem: int) -> Op:
    op = gemm_op(name, phase, shape, elem)
    return Op(name, OpKind.ATTENTION, phase, flops=op.flops, bytes=op.bytes, gemm=shape)


def attention_backward(model: ModelSpec, r: RankShapes, flash: bool) -> list[Op]:
    g = layer_shapes(model, r)
    bwd = Phase.BACKWARD
    if flash:
        flops = 2 * (g["scores"].flops + g["context"].flops)
        qkvo = _qkvo_bytes(r)
        return [
            Op(
                "flash_attn_bwd",
                OpKind.ATTENTION,
                bwd,
                flops=flops,
                bytes=2 * qkvo,
                work_factor=FLASH_BACKWARD_WORK,
                causal_fraction=causal_fraction(r),
                exps=score_elements(r),  # the backward recomputes P = exp(S - m) once
                head_dim=r.d,
            )
        ]
    scores = score_elements(r)
    ctx = [_as_attention(o) for o in backward_gemms("attn_context", g["context"], r.elem)]
    sc = [_as_attention(o) for o in backward_gemms("attn_scores", g["scores"], r.elem)]
    mask = 1 if model.dropout else 0  # read grad, probs (and mask), write grad
    return [*ctx, elementwise("attn_softmax_bwd", bwd, scores * (3 * r.elem + mask)), *sc]


def _as_attention(op: Op) -> Op:
    return Op(op.name, OpKind.ATTENTION, op.phase, flops=op.flops, bytes=op.bytes, gemm=op.gemm)


def dropout_mask_bytes(model: ModelSpec, act: float, r: RankShapes) -> float:
    """The 1-byte mask a residual dropout writes (forward) or reads (backward) for an activation of
    `act` bytes; none for models trained without dropout."""
    return act / r.elem if model.dropout else 0.0


def attention_block_forward(model: ModelSpec, r: RankShapes, flash: bool, phase: Phase) -> list[Item]:
    """The layer's first half: norm, Q/K/V (or latent attention's projections), core attention, output
    projection, TP reduction, dropout + residual."""
    act = r.norm_tokens * r.h * r.elem  # one [tokens, h] activation as the norms see it
    mask = dropout_mask_bytes(model, act, r)
    return [
        elementwise("norm1", phase, 2 * act),
        *qkv_forward(model, r, phase),
        *cp_comm("cp_kv_gather", phase, r, Collective.ALL_GATHER),
        *attention_forward(model, r, flash, phase),
        *linear(Role.ATTN_PROJ, phase, layer_shapes(model, r)["attn_proj"], r),
        *tp_comm("tp_reduce_attn", phase, r, gather=False, linear=Role.ATTN_PROJ),
        elementwise("dropout_residual1", phase, 3 * act + mask),
    ]


def qkv_forward(model: ModelSpec, r: RankShapes, phase: Phase) -> list[Item]:
    """The fused Q/K/V projection after the SP gather of its input, or latent attention's projections
    (workload/mla.py)."""
    if model.mla is not None:
        from simulator.workload.mla import mla_projections_forward

        return mla_projections_forward(model, r, phase)
    return [
        *tp_comm("tp_gather_attn", phase, r, gather=True, linear=Role.QKV),
        *linear(Role.QKV, phase, layer_shapes(model, r)["qkv"], r),
    ]


def qkv_backward(model: ModelSpec, r: RankShapes) -> list[Item]:
    if model.mla is not None:
        from simulator.workload.mla import mla_projections_backward

        return mla_projections_backward(model, r)
    return [
        *linear_backward(Role.QKV, layer_shapes(model, r)["qkv"], r),
        *tp_backward("tp_attn_in_bwd", r, at_output=False),
    ]


def mlp_block_forward(model: ModelSpec, r: RankShapes, phase: Phase) -> list[Item]:
    """The layer's second half with a dense MLP: norm, up (+gate), activation, down, TP reduction,
    dropout + residual."""
    g = layer_shapes(model, r)
    act = r.norm_tokens * r.h * r.elem
    mlp_act = r.tokens * (r.f // r.tp) * r.elem
    act_bytes = mlp_act * (3 if model.gated_mlp else 2)  # SwiGLU reads gate and up, writes one
    mask = dropout_mask_bytes(model, act, r)
    return [
        elementwise("norm2", phase, 2 * act),
        *tp_comm("tp_gather_mlp", phase, r, gather=True, linear=Role.MLP_UP),
        *linear(Role.MLP_UP, phase, g["mlp_up"], r),
        elementwise("mlp_activation", phase, act_bytes),
        *linear(Role.MLP_DOWN, phase, g["mlp_down"], r),
        *tp_comm("tp_reduce_mlp", phase, r, gather=False, linear=Role.MLP_DOWN),
        elementwise("dropout_residual2", phase, 3 * act + mask),
    ]


def layer_forward(model: ModelSpec, r: RankShapes, flash: bool, phase: Phase = Phase.FORWARD) -> list[Item]:
    return attention_block_forward(model, r, flash, phase) + mlp_block_forward(model, r, phase)


def mlp_block_backward(model: ModelSpec, r: RankShapes) -> list[Item]:
    g = layer_shapes(model, r)
    bwd = Phase.BACKWARD
    act = r.norm_tokens * r.h * r.elem
    mlp_act = r.tokens * (r.f // r.tp) * r.elem
    act_bytes = mlp_act * (5 if model.gated_mlp else 3)
    mask = dropout_mask_bytes(model, act, r)
    return [
        elementwise("dropout_residual2_bwd", bwd, 2 * act + mask),
        *tp_backward("tp_mlp_out_bwd", r, at_output=True),
        *linear_backward(Role.MLP_DOWN, g["mlp_down"], r),
        elementwise("mlp_activation_bwd", bwd, act_bytes),
        *linear_backward(Role.MLP_UP, g["mlp_up"], r),
        *tp_backward("tp_mlp_in_bwd", r, at_output=False),
        elementwise("norm2_bwd", bwd, 3 * act),
    ]


def attention_block_backward(model: ModelSpec, r: RankShapes, flash: bool) -> list[Item]:
    g = layer_shapes(model, r)
    bwd = Phase.BACKWARD
    act = r.norm_tokens * r.h * r.elem
    mask = dropout_mask_bytes(model, act, r)
    return [
        elementwise("dropout_residual1_bwd", bwd, 2 * act + mask),
        *tp_backward("tp_attn_out_bwd", r, at_output=True),
        *linear_backward(Role.ATTN_PROJ, g["attn_proj"], r),
        *cp_comm("cp_kv_gather_bwd", bwd, r, Collective.ALL_GATHER),
        *attention_backward(model, r, flash),
        *cp_comm("cp_dkv_reduce", bwd, r, Collective.REDUCE_SCATTER),
        *qkv_backward(model, r),
        elementwise("norm1_bwd", bwd, 3 * act),
    ]


def layer_backward(model: ModelSpec, r: RankShapes, flash: bool) -> list[Item]:
    """Reverse of the forward; the conjugate TP collectives (all-reduce of input gradients at the
    'f' operators without SP; all-gather / reduce-scatter swapped with SP)."""
    return mlp_block_backward(model, r) + attention_block_backward(model, r, flash)


def tp_backward(name: str, r: RankShapes, at_output: bool, width: int = 0) -> list[CommOp]:
    """Backward of a forward reduction is a gather (SP) or nothing (no SP: the 'g' operator's
    backward is the identity); backward of a forward gather is a reduce-scatter (SP) or all-reduce.
    With TP comm overlap the gather feeds the dgrad GEMM after it by ring exchange and the
    reduce-scatter of the dgrad output hides behind the wgrad GEMM before it (bulk)."""
    if r.tp == 1:
        return []
    size = r.tokens * (width or r.h) * r.elem
    if at_output:
        if not r.sp:
            return []
        overlap = TpOverlap.RING_EXCHANGE if r.tp_overlap else TpOverlap.NONE
        return [CommOp(name, CommGroup.TP, Collective.ALL_GATHER, Phase.BACKWARD, size, r.tp, overlap=overlap)]
    if not r.sp:
        return [CommOp(name, CommGroup.TP, Collective.ALL_REDUCE, Phase.BACKWARD, size, r.tp)]
    overlap = TpOverlap.BULK if r.tp_overlap else TpOverlap.NONE
    return [CommOp(name, CommGroup.TP, Collective.REDUCE_SCATTER, Phase.BACKWARD, size, r.tp, overlap=overlap)]


def layer_recompute(model: ModelSpec, r: RankShapes, flash: bool, policy: Recompute) -> Sequence[Item]:
    """Full: the whole forward again (TP collectives included). Selective (Korthikanti et al. 2022
        sec. 5): only the core attention (scores, softmax, context); nothing with FlashAttention,
        which never stores the scores and recomputes them inside its own backward kernel. A latent-attention
    layer also rebuilds its input norm and Q, K, V from the kept latents (workload/mla.py)."""
    if policy is Recompute.FULL:
        return layer_forward(model, r, flash, Phase.RECOMPUTE)
    if policy is not Recompute.SELECTIVE:
        return []
    core = [] if flash else attention_forward(model, r, flash, Phase.RECOMPUTE)
    if model.mla is not None:
        from simulator.workload.mla import mla_selective_recompute

        act = r.norm_tokens * r.h * r.elem
        return [elementwise("norm1", Phase.RECOMPUTE, 2 * act), *mla_selective_recompute(model, r), *core]
    return core


def layer_work(model: ModelSpec, r: RankShapes, flash: bool, policy: Recompute) -> LayerWork:
    return LayerWork(
        forward=tuple(layer_forward(model, r, flash)),
        backward=tuple(layer_backward(model, r, flash)),
        recompute=tuple(layer_recompute(model, r, flash, policy)),
    )
