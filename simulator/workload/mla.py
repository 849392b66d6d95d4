"""Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 sec. 2.1; DeepSeek-V3): queries and
keys/values pass through low-rank latents. Per token: q = W_uq norm(W_dq x) (or W_q x without a query
latent), [c_kv, k_rope] = W_dkv x, [k_nope, v] = W_ukv norm(c_kv); scores over qk_head_dim +
qk_rope_head_dim per head, values of v_head_dim.

Tensor parallelism as Megatron-Core's MLASelfAttention: the up-projections split by heads
(column-parallel); the down-projections are not split: with sequence parallelism each rank projects
its own sequence shard and the latents (not the hidden states) are all-gathered; without it every
rank projects every token (duplicated work, counted once in model FLOPs)."""

import dataclasses

from simulator.catalog.models import MlaSpec, ModelSpec
from simulator.enums import Collective, CommGroup, Phase, Role
from simulator.workload.layer import backward_gemms, elementwise, gemm_op, tp_comm
from simulator.workload.ops import CommOp, GemmShape, Item, Op
from simulator.workload.shapes import RankShapes


def _mla(model: ModelSpec) -> MlaSpec:
    assert model.mla is not None, "latent attention needs model.mla"
    return model.mla


def _down_rows(r: RankShapes) -> int:
    """Tokens a rank's down-projections see: its sequence shard with SP, every token without."""
    return r.tokens // r.tp if r.sp else r.tokens


def _duplicates(r: RankShapes) -> int:
    return 1 if r.sp else r.tp


def _latent_width(m: MlaSpec) -> int:
    """What the down-projections write per token: the query latent, the KV latent and the shared rotary key."""
    return m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim


def mla_shapes(model: ModelSpec, r: RankShapes) -> dict[str, GemmShape]:
    m = _mla(model)
    down, t = _down_rows(r), r.tokens
    shapes = {
        "kv_down": GemmShape(m=down, n=m.kv_lora_rank + m.qk_rope_head_dim, k=r.h),
        "kv_up": GemmShape(m=t, n=r.heads * (m.qk_head_dim + m.v_head_dim), k=m.kv_lora_rank),
    }
    if m.q_lora_rank:
        shapes["q_down"] = GemmShape(m=down, n=m.q_lora_rank, k=r.h)
        shapes["q_up"] = GemmShape(m=t, n=r.heads * m.qk_dim, k=m.q_lora_rank)
    else:  # queries straight from the (gathered) hidden states, split by heads
        shapes["q_proj"] = GemmShape(m=t, n=r.heads * m.qk_dim, k=r.h)
    return shapes


def _gemm(name: str, phase: Phase, shape: GemmShape, r: RankShapes, role: Role, dup: int = 1) -> Op:
    op = gemm_op(name, phase, shape, r.gemm_elem, role, fp8_capable=True)
    return op if dup == 1 else _with_duplicates(op, dup)


def _with_duplicates(op: Op, dup: int) -> Op:
    return dataclasses.replace(op, duplicates=dup)


def mla_projections_forward(model: ModelSpec, r: RankShapes, phase: Phase) -> list[Item]:
    """Down-projections, latent gather (SP), latent norms, up-projections."""
    m = _mla(model)
    g = mla_shapes(model, r)
    dup = _duplicates(r)
    latents = r.tokens * (m.q_lora_rank + m.kv_lora_rank) * r.elem
    items: list[Item] = []
    if m.q_lora_rank:
        items.append(_gemm("q_down", phase, g["q_down"], r, Role.MLA_DOWN, dup))
    items.append(_gemm("kv_down", phase, g["kv_down"], r, Role.MLA_DOWN, dup))
    if r.sp:
        items += tp_comm("tp_gather_latents", phase, r, gather=True, width=_latent_width(m))
    if not m.q_lora_rank:
        items += tp_comm("tp_gather_attn", phase, r, gather=True)
    items.append(elementwise("latent_norms", phase, 2 * latents))
    if m.q_lora_rank:
        items.append(_gemm("q_up", phase, g["q_up"], r, Role.MLA_UP))
    else:
        items.append(_gemm("q_proj", phase, g["q_proj"], r, Role.MLA_UP))
    items.append(_gemm("kv_up", phase, g["kv_up"], r, Role.MLA_UP))
    return items


def mla_projections_backward(model: ModelSpec, r: RankShapes) -> list[Item]:
    """Reverse: up-projections' gradients, latent norms, the latent gradients combined over TP
    (reduce-scatter with SP; all-reduce without, the duplicated down-projections needing all of them),
    down-projections' gradients."""
    m = _mla(model)
    g = mla_shapes(model, r)
    dup = _duplicates(r)
    bwd = Phase.BACKWARD
    latents = r.tokens * (m.q_lora_rank + m.kv_lora_rank) * r.elem
    items: list[Item] = [*_backward("kv_up", g["kv_up"], r, Role.MLA_UP)]
    if m.q_lora_rank:
        items += _backward("q_up", g["q_up"], r, Role.MLA_UP)
    else:
        items += _backward("q_proj", g["q_proj"], r, Role.MLA_UP)
        items += tp_comm("tp_attn_in_bwd", bwd, r, gather=False)
    items.append(elementwise("latent_norms_bwd", bwd, 3 * latents))
    if r.tp > 1:
        width = _latent_width(m)
        if r.sp:
            items += tp_comm("tp_latents_bwd", bwd, r, gather=False, width=width)
        else:
            size = r.tokens * width * r.elem
            items.append(CommOp("tp_latents_bwd", CommGroup.TP, Collective.ALL_REDUCE, bwd, size, r.tp))
    items += _backward("kv_down", g["kv_down"], r, Role.MLA_DOWN, dup)
    if m.q_lora_rank:
        items += _backward("q_down", g["q_down"], r, Role.MLA_DOWN, dup)
    return items


def _backward(name: str, shape: GemmShape, r: RankShapes, role: Role, dup: int = 1) -> list[Op]:
    ops = backward_gemms(name, shape, r.gemm_elem, role, fp8_capable=True)
    return ops if dup == 1 else [_with_duplicates(op, dup) for op in ops]


def mla_selective_recompute(model: ModelSpec, r: RankShapes) -> list[Item]:
    """What selective recompute runs again in a latent-attention layer before its backward: the latent
    norms and the up-projections (Megatron-Core `--recompute-modules layernorm mla_up_proj`; DeepSeek-V3
    sec. 3.2.3), so that Q, K and V need not be kept (memory/activations.py)."""
    m = _mla(model)
    g = mla_shapes(model, r)
    rc = Phase.RECOMPUTE
    latents = r.tokens * (m.q_lora_rank + m.kv_lora_rank) * r.elem
    up = g["q_up"] if m.q_lora_rank else g["q_proj"]
    return [
        elementwise("latent_norms", rc, 2 * latents),
        _gemm("q_up" if m.q_lora_rank else "q_proj", rc, up, r, Role.MLA_UP),
        _gemm("kv_up", rc, g["kv_up"], r, Role.MLA_UP),
    ]
