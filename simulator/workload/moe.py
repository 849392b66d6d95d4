"""The mixture-of-experts half of a transformer layer on one rank, for one micro-batch.

Forward (Megatron-Core MoELayer with its token dispatchers): norm, router GEMM and top-k, token
permutation (tokens gathered per expert), dispatch to the experts' EP ranks (all-to-all, or an
all-gather), the ETP gather, the routed experts as grouped GEMMs, the ETP reduce-scatter, combine back
(all-to-all, or a reduce-scatter), un-permutation (the weighted sum of a token's expert outputs), the
shared experts (a TP-split dense MLP every token passes through), dropout + residual. The backward
runs it in reverse: two more all-to-alls; four per MoE layer and micro-batch, six when it is recomputed.

Rows per expert (parallel folding, Liu et al. 2025 "MoE Parallel Folding" sec. 3): a rank routes its
T_r tokens (its sequence shard under SP); the EP group's ep * T_r tokens make ep * T_r * top_k
assignments over `experts`, so each of a rank's experts / ep local experts receives
T_r * top_k * ep / experts rows (times etp after the ETP gather), balanced; with a capacity factor each
expert is padded to (or cut at) ceil(T_r * top_k / experts * cf) rows from each source rank
(Megatron-Core `--moe-expert-capacity-factor` with `--moe-pad-expert-input-to-capacity`). The grouped
GEMM is priced as `experts / ep` GEMMs of those rows by the shape-aware GEMM model, so small rows per
expert cost what they cost. Uneven load (expert_load.py): the busiest rank's extra time is an op of its
own (Role.EXPERT_IMBALANCE) in the breakdown's `moe_imbalance`.

Dispatch bytes: the permuted tokens, top_k x hidden per routed token, in FP8 (one byte plus a 4-byte
scale per 128 values, DeepEP's FP8 dispatch) where the precision is FP8 and the dispatcher is DeepEP;
combine and all backward traffic in the activation precision (BF16)."""

import math
from dataclasses import dataclass, replace

from simulator.catalog.models import ModelSpec, MoeSpec
from simulator.enums import Collective, CommGroup, Dispatcher, OpKind, Phase, Precision, Recompute, Role
from simulator.scenario.setup import Setup
from simulator.workload.expert_load import busiest_rank_factor
from simulator.workload.layer import (
    FP8_CAST_TRANSPOSE_BYTES_PER_ELEM,
    attention_block_backward,
    attention_block_forward,
    backward_gemms,
    dropout_mask_bytes,
    elementwise,
    gemm_op,
    layer_recompute,
    linear,
    linear_backward,
    tp_backward,
    tp_comm,
)
from simulator.workload.ops import CommOp, GemmShape, Item, Op
from simulator.workload.shapes import RankShapes

FP8_DISPATCH_BYTES_PER_ELEM = 1 + 4 / 128  # e4m3 value + an fp32 scale per 128 (DeepEP's FP8 dispatch)
ROUTER_LOGIT_BYTES = 4  # the router's logits and probabilities in fp32 (Megatron-Core --moe-router-dtype fp32)


@dataclass(frozen=True)
class MoeShapes:
    """One rank's share of an MoE layer for one micro-batch."""

    spec: MoeSpec
    routed_tokens: int  # tokens this rank routes (its sequence shard under SP)
    experts_local: int  # experts / ep
    rows_per_expert: int  # balanced (or capacity-padded) rows per local expert, after the ETP gather
    busiest_rows_per_expert: int  # the same on the busiest EP rank (uneven load)
    ffn_local: int  # expert_ffn_hidden / etp
    shared_local: int  # shared_experts x shared_ffn_hidden / tp
    ep: int
    etp: int
    etp_gather: int  # ranks whose tokens one expert shard computes (etp under SP, else 1)
    dispatcher: Dispatcher
    dispatch_elem: float  # bytes per dispatched value
    load_factor: float  # busiest rank's tokens over the mean (1.0 balanced)

    @property
    def assignments(self) -> int:
        """Token-to-expert assignments this rank sends: routed tokens x top_k."""
        return self.routed_tokens * self.spec.top_k

    @property
    def rows(self) -> int:
        """Rows through this rank's experts (balanced)."""
        return self.rows_per_expert * self.experts_local


def moe_shapes(setup: Setup, r: RankShapes) -> MoeShapes:
    moe = setup.model.moe
    assert moe is not None, "an MoE layer needs model.moe"
    p = setup.plan
    routed = r.tokens // r.tp if r.sp else r.tokens
    etp_gather = p.etp if r.sp else 1
    local = moe.experts // p.ep
    per_source = routed * moe.top_k / moe.experts  # rows one source rank sends each expert, balanced
    load = busiest_rank_factor(moe.experts, p.ep, routed * moe.top_k * p.ep, moe.load_skew, setup.seed)
    if moe.capacity_factor is not None:
        per_source = float(math.ceil(per_source * moe.capacity_factor))
        load = 1.0  # every expert padded to capacity, the excess dropped: every rank computes the same
    rows = math.ceil(per_source * p.ep * etp_gather)
    fp8_dispatch = setup.training.precision is Precision.FP8 and p.moe_dispatcher is Dispatcher.DEEPEP
    return MoeShapes(
        spec=moe,
        routed_tokens=routed,
        experts_local=local,
        rows_per_expert=rows,
        busiest_rows_per_expert=math.ceil(rows * load),
        ffn_local=moe.expert_ffn_hidden // p.etp,
        shared_local=moe.shared_experts * moe.shared_ffn_hidden // p.tp,
        ep=p.ep,
        etp=p.etp,
        etp_gather=etp_gather,
        dispatcher=p.moe_dispatcher,
        dispatch_elem=FP8_DISPATCH_BYTES_PER_ELEM if fp8_dispatch else float(r.elem),
        load_factor=load,
    )


def _expert_shapes(model: ModelSpec, ms: MoeShapes, rows: int) -> dict[str, GemmShape]:
    up = 2 * ms.ffn_local if model.gated_mlp else ms.ffn_local
    return {
        "up": GemmShape(m=rows, n=up, k=model.hidden, batch=ms.experts_local),
        "down": GemmShape(m=rows, n=model.hidden, k=ms.ffn_local, batch=ms.experts_local),
    }


def _shared_shapes(model: ModelSpec, ms: MoeShapes, r: RankShapes) -> dict[str, GemmShape]:
    up = 2 * ms.shared_local if model.gated_mlp else ms.shared_local
    return {
        "up": GemmShape(m=r.tokens, n=up, k=r.h),
        "down": GemmShape(m=r.tokens, n=r.h, k=ms.shared_local),
    }


# Host calls Transformer Engine's GroupedLinear issues per local expert, besides the module call the op's own
# dispatch stands for (counted from NVIDIA/TransformerEngine@v2.8; derivation with file:line in
# docs/research/host-overhead.md, Q5). Keys: (FP8, BF16). Forward (grouped_linear.py:62-260): FP8 = input and
# weight quantizer set_usage (97-112), split_quantize's three allocations (quantizer.cpp:335,344,352) and three
# current-scaling kernels, amax / scale / cast (quantizer.cpp:516-535), the weight workspace (137-145), the
# cuBLASLt GEMM (cublaslt_gemm.cu:929-954), two update_usage (202-210), the main_grad closure (230-232): 13;
# BF16 = the split view (129), cast_if_needed of the weight (148), the GEMM, the closure: 4. Backward dgrad
# (262-357): main_grad_func (272), the output gradient's split_quantize (306: 3 + 3) or split (314), the
# weight's update_usage (340-345, FP8), the dgrad GEMM: 9 / 3. Backward wgrad (359-451): the wgrad GEMM,
# handle_custom_ddp_from_mcore and its torch.empty (436): 3 / 3.
GROUPED_HOST_CALLS_PER_EXPERT = {"forward": (13, 4), "dgrad": (9, 3), "wgrad": (3, 3)}


def grouped_host_calls(part: str, experts_local: int, fp8: bool) -> int:
    """Host calls of one grouped expert GEMM (`part`: forward, dgrad or wgrad) beyond the one modelled op:
    the per-expert calls of every local expert but the first, whose work a dense linear's dispatch already
    covers (GROUPED_HOST_CALLS_PER_EXPERT)."""
    fp8_calls, bf16_calls = GROUPED_HOST_CALLS_PER_EXPERT[part]
    return (experts_local - 1) * (fp8_calls if fp8 else bf16_calls)


def _grouped(
    name: str, phase: Phase, role: Role, bal: GemmShape, busy: GemmShape, r: RankShapes, ms: "MoeShapes"
) -> list[Op]:
    """A grouped expert GEMM at the balanced load (FP8 input cast first under an FP8 recipe) and, under
    uneven load, the busiest rank's extra time as an op of its own."""
    ops: list[Op] = []
    fp8 = r.gemm_elem == 1
    if fp8:
        cast = bal.m * bal.k * bal.batch * FP8_CAST_TRANSPOSE_BYTES_PER_ELEM
        ops.append(elementwise(f"{name}_fp8_cast", phase, cast, Role.FP8_CAST))
    gemm = gemm_op(name, phase, bal, r.gemm_elem, role, fp8_capable=True)
    ops.append(replace(gemm, host_calls=grouped_host_calls("forward", ms.experts_local, fp8)))
    ops += _imbalance(name, phase, bal, busy)
    return ops


def _imbalance(name: str, phase: Phase, bal: GemmShape, busy: GemmShape) -> list[Op]:
    if busy == bal:
        return []
    return [
        Op(
            f"{name}_imbalance",
            OpKind.GEMM,
            phase,
            gemm=busy,
            baseline=bal,
            fp8_capable=True,
            role=Role.EXPERT_IMBALANCE,
            counted=False,
        )
    ]


def _grouped_backward(
    name: str, role: Role, bal: GemmShape, busy: GemmShape, r: RankShapes, ms: "MoeShapes"
) -> list[Op]:
    bwd = Phase.BACKWARD
    ops: list[Op] = []
    fp8 = r.gemm_elem == 1
    if fp8:
        cast = bal.m * bal.n * bal.batch * FP8_CAST_TRANSPOSE_BYTES_PER_ELEM
        ops.append(elementwise(f"{name}_grad_fp8_cast", bwd, cast, Role.FP8_CAST))
    dgrad, wgrad = backward_gemms(name, bal, r.gemm_elem, role, fp8_capable=True)
    ops += [
        replace(dgrad, host_calls=grouped_host_calls("dgrad", ms.experts_local, fp8)),
        replace(wgrad, host_calls=grouped_host_calls("wgrad", ms.experts_local, fp8)),
    ]
    for b, u in zip(_backward_shapes(bal), _backward_shapes(busy), strict=True):
        ops += _imbalance(f"{name}_{'dgrad' if b.m == bal.m else 'wgrad'}", bwd, b, u)
    return ops


def _backward_shapes(fwd: GemmShape) -> tuple[GemmShape, GemmShape]:
    return (
        GemmShape(m=fwd.m, n=fwd.k, k=fwd.n, batch=fwd.batch),
        GemmShape(m=fwd.k, n=fwd.n, k=fwd.m, batch=fwd.batch),
    )


def _router_gate(model: ModelSpec, ms: MoeShapes) -> GemmShape:
    """The gating GEMM: the rank's routed tokens against one logit per expert."""
    return GemmShape(m=ms.routed_tokens, n=ms.spec.experts, k=model.hidden)


def _permute_bytes(ms: MoeShapes, r: RankShapes) -> float:
    """HBM bytes of a token (un-)permutation: the routed tokens on one side, top_k copies on the other."""
    return (ms.assignments + ms.routed_tokens) * r.h * r.elem


def _router_ops(model: ModelSpec, ms: MoeShapes, r: RankShapes, phase: Phase) -> list[Op]:
    """Gating GEMM (not model FLOPs, as Megatron-LM counts) and the fp32 softmax / top-k over its logits."""
    router = replace(gemm_op("router", phase, _router_gate(model, ms), r.elem, Role.ROUTER), counted=False)
    logits = ms.routed_tokens * ms.spec.experts * ROUTER_LOGIT_BYTES
    return [router, elementwise("router_topk", phase, 3 * logits, Role.ROUTER)]


def _token_permute(ms: MoeShapes, r: RankShapes, phase: Phase) -> Op:
    """The forward permutation; dropless, the host then waits for the device: Megatron-Core's dispatchers size
    the exchange and the grouped GEMMs from token counts copied to the host (alltoall: the D2H copy and
    `d2h_event.synchronize()` in `_maybe_dtoh_and_synchronize`, token_dispatcher.py:822-861 at core_v0.15.0,
    synced before the all-to-all, or after the permutation when EP = 1; allgather: `.cpu()`; DeepEP: `.item()`;
    docs/research/host-overhead.md, Q3). Padded to capacity the sizes are static: no wait."""
    op = elementwise("token_permute", phase, _permute_bytes(ms, r), Role.TOKEN_PERMUTE)
    return replace(op, host_sync=ms.spec.dropless)


def _dispatch(name: str, phase: Phase, ms: MoeShapes, r: RankShapes, forward_dispatch: bool) -> list[CommOp]:
    """Tokens to their experts (dispatch) or back (combine); the backward of one is the other's traffic."""
    if ms.ep == 1:
        return []
    if ms.dispatcher is Dispatcher.ALLGATHER:
        gathered = ms.routed_tokens * r.h * r.elem * ms.ep  # every rank's tokens on every rank
        kind = Collective.ALL_GATHER if forward_dispatch else Collective.REDUCE_SCATTER
        return [CommOp(name, CommGroup.EP, kind, phase, gathered, ms.ep)]
    elem = ms.dispatch_elem if (forward_dispatch and phase is not Phase.BACKWARD) else r.elem
    size = ms.assignments * r.h * elem * ms.load_factor
    return [CommOp(name, CommGroup.EP, Collective.ALL_TO_ALL, phase, size, ms.ep)]


def _etp(name: str, phase: Phase, ms: MoeShapes, r: RankShapes, gather: bool) -> list[CommOp]:
    if ms.etp_gather == 1:
        return []
    size = ms.assignments * ms.etp_gather * r.h * r.elem
    kind = Collective.ALL_GATHER if gather else Collective.REDUCE_SCATTER
    return [CommOp(name, CommGroup.ETP, kind, phase, size, ms.etp)]


def moe_block_forward(model: ModelSpec, r: RankShapes, ms: MoeShapes, phase: Phase) -> list[Item]:
    act = r.norm_tokens * r.h * r.elem
    mask = dropout_mask_bytes(model, act, r)
    bal, busy = _expert_shapes(model, ms, ms.rows_per_expert), _expert_shapes(model, ms, ms.busiest_rows_per_expert)
    act_bytes = ms.rows * ms.ffn_local * r.elem * (3 if model.gated_mlp else 2)
    return [
        elementwise("norm2", phase, 2 * act),
        *_router_ops(model, ms, r, phase),
        _token_permute(ms, r, phase),
        *_dispatch("ep_dispatch", phase, ms, r, forward_dispatch=True),
        *_etp("etp_gather", phase, ms, r, gather=True),
        *_grouped("expert_up", phase, Role.EXPERT_UP, bal["up"], busy["up"], r, ms),
        elementwise("expert_activation", phase, act_bytes),
        *_grouped("expert_down", phase, Role.EXPERT_DOWN, bal["down"], busy["down"], r, ms),
        *_etp("etp_reduce_scatter", phase, ms, r, gather=False),
        *_dispatch("ep_combine", phase, ms, r, forward_dispatch=False),
        elementwise("token_unpermute", phase, _permute_bytes(ms, r), Role.TOKEN_PERMUTE),
        *_shared_forward(model, ms, r, phase),
        elementwise("dropout_residual2", phase, 3 * act + mask),
    ]


def _shared_forward(model: ModelSpec, ms: MoeShapes, r: RankShapes, phase: Phase) -> list[Item]:
    if not ms.shared_local:
        return []
    g = _shared_shapes(model, ms, r)
    act = r.tokens * ms.shared_local * r.elem * (3 if model.gated_mlp else 2)
    return [
        *tp_comm("tp_gather_shared", phase, r, gather=True),
        *linear(Role.SHARED_EXPERT_UP, phase, g["up"], r),
        elementwise("shared_activation", phase, act),
        *linear(Role.SHARED_EXPERT_DOWN, phase, g["down"], r),
        *tp_comm("tp_reduce_shared", phase, r, gather=False),
    ]


def _shared_backward(model: ModelSpec, ms: MoeShapes, r: RankShapes) -> list[Item]:
    if not ms.shared_local:
        return []
    g = _shared_shapes(model, ms, r)
    act = r.tokens * ms.shared_local * r.elem * (5 if model.gated_mlp else 3)
    return [
        *tp_backward("tp_shared_out_bwd", r, at_output=True),
        *linear_backward(Role.SHARED_EXPERT_DOWN, g["down"], r),
        elementwise("shared_activation_bwd", Phase.BACKWARD, act),
        *linear_backward(Role.SHARED_EXPERT_UP, g["up"], r),
        *tp_backward("tp_shared_in_bwd", r, at_output=False),
    ]


def moe_block_backward(model: ModelSpec, r: RankShapes, ms: MoeShapes) -> list[Item]:
    bwd = Phase.BACKWARD
    act = r.norm_tokens * r.h * r.elem
    mask = dropout_mask_bytes(model, act, r)
    bal, busy = _expert_shapes(model, ms, ms.rows_per_expert), _expert_shapes(model, ms, ms.busiest_rows_per_expert)
    act_bytes = ms.rows * ms.ffn_local * r.elem * (5 if model.gated_mlp else 3)
    router = [replace(o, counted=False) for o in backward_gemms("router", _router_gate(model, ms), r.elem, Role.ROUTER)]
    return [
        elementwise("dropout_residual2_bwd", bwd, 2 * act + mask),
        *_shared_backward(model, ms, r),
        elementwise("token_unpermute_bwd", bwd, _permute_bytes(ms, r), Role.TOKEN_PERMUTE),
        *_dispatch("ep_combine_bwd", bwd, ms, r, forward_dispatch=True),
        *_etp("etp_reduce_scatter_bwd", bwd, ms, r, gather=True),
        *_grouped_backward("expert_down", Role.EXPERT_DOWN, bal["down"], busy["down"], r, ms),
        elementwise("expert_activation_bwd", bwd, act_bytes),
        *_grouped_backward("expert_up", Role.EXPERT_UP, bal["up"], busy["up"], r, ms),
        *_etp("etp_gather_bwd", bwd, ms, r, gather=False),
        *_dispatch("ep_dispatch_bwd", bwd, ms, r, forward_dispatch=False),
        elementwise("token_permute_bwd", bwd, _permute_bytes(ms, r), Role.TOKEN_PERMUTE),
        elementwise("router_topk_bwd", bwd, 2 * ms.routed_tokens * ms.spec.experts * ROUTER_LOGIT_BYTES, Role.ROUTER),
        *router,
        elementwise("norm2_bwd", bwd, 3 * act),
    ]


def moe_layer_forward(model: ModelSpec, r: RankShapes, ms: MoeShapes, flash: bool, phase: Phase) -> list[Item]:
    return attention_block_forward(model, r, flash, phase) + moe_block_forward(model, r, ms, phase)


def moe_layer_backward(model: ModelSpec, r: RankShapes, ms: MoeShapes, flash: bool) -> list[Item]:
    return moe_block_backward(model, r, ms) + attention_block_backward(model, r, flash)


def moe_layer_recompute(model: ModelSpec, r: RankShapes, ms: MoeShapes, flash: bool, policy: Recompute) -> list[Item]:
    """Full: the whole layer forward again, its two all-to-alls included. Selective: as for a dense layer
    (the core attention, nothing under FlashAttention), plus the element-wise modules Megatron-Core's MoE
    recipes recompute (`--recompute-modules moe_act layernorm`): the norms and the expert activation
    (memory/activations.py keeps neither), and a latent-attention layer's norms and up-projections."""
    if policy is Recompute.FULL:
        return moe_layer_forward(model, r, ms, flash, Phase.RECOMPUTE)
    if policy is not Recompute.SELECTIVE:
        return []
    rc = Phase.RECOMPUTE
    act = r.norm_tokens * r.h * r.elem
    expert_act = ms.rows * ms.ffn_local * r.elem * (3 if model.gated_mlp else 2)
    return [
        *layer_recompute(model, r, flash, policy),
        elementwise("norm2", rc, 2 * act),
        elementwise("expert_activation", rc, expert_act),
    ]
