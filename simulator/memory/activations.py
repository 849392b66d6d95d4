"""Activation memory per GPU: Korthikanti et al. 2022 per-layer terms, pipeline in-flight counts.

Layers of a mixture-of-experts model (docs/contract.md section 1b) get the same kind of accounting:
the tensors each layer keeps for its backward (the inputs of its GEMMs, norms and activation
functions), grouped by how the parallel dimensions split them. The layer kinds and what they keep:

- multi-head latent attention (DeepSeek-V2 sec. 2.1; Megatron-Core `MLASelfAttention`): the input
  norm's input and output (the down-projections' input), the query latent before and after its norm
  (q_lora each), the key/value latent with the rotary key (kv_lora + rope) and its normed part
  (kv_lora), then per head Q and K (heads*(qk + rope) each), V and the attention output (heads*v each);
  the latents are whole on every TP rank (the down-projections are not split), the rest split by TP;
- an MoE MLP (Megatron-Core `MoELayer`, alltoall dispatcher, probabilities applied inside the experts'
  weighted activation): the pre-MLP norm's input and output (the router's, shared experts' and
  dispatch's input), the router's fp32 scores (tokens x experts), the shared experts' fc1 and activation
  outputs (split by TP), and per rank the routed experts' received rows: their fc1 input (h per row, the
  dispatch receive buffer), fc1 output (2 x expert_ffn/etp gated), activation output (fc2 input) and the
  fp32 probability of each row. Un-permutation is a scatter-add whose backward needs only the row map,
  and the combine receive buffer is freed once summed: neither is kept. Rows per rank, balanced routing:
  the s*b/tp tokens a rank holds (sequence-parallel split) times top_k, gathered over etp; with a
  capacity factor every expert's input is padded to ceil(tokens*top_k/experts*cf).

`recompute: selective` is Korthikanti's core-attention recompute (nothing more under FlashAttention)
and, in layers that have them, Megatron-Core's output-discarding recompute of `moe_act` (the routed
experts' activation output) and `layernorm` (the outputs of the norms that are not fused into a GEMM:
an MLA layer's input norm, an MoE layer's pre-MLP norm), and latent attention's `mla_up_proj` (Q, K
and V rebuilt from the kept latents; DeepSeek-V3 sec. 3.2.3 recomputes "all RMSNorm operations and MLA
up-projections"), as Megatron-Core's MoE recipes pair them;
dense layers with standard attention keep the paper's meaning. `full` keeps only each layer's input.
"""

import math
from dataclasses import dataclass

from simulator import dtypes
from simulator.catalog.models import ModelSpec
from simulator.enums import LayerKind, Recompute, Schedule
from simulator.scenario.setup import ParallelPlan, Setup
from simulator.workload.head import LOSS_ELEM_BYTES
from simulator.workload.partition import chunks_of_stage, layers_per_chunk

PAPER_ELEM_BYTES = 2  # Korthikanti et al. 2022 count 16-bit activations (and 1-byte dropout masks)
FLASH_STATS_BYTES = 4  # FlashAttention keeps the softmax log-sum-exp per query row in fp32
ROUTER_ELEM_BYTES = 4  # Megatron-Core's router scores and the rows' probabilities are kept in fp32


@dataclass(frozen=True)
class LayerTerms:
    """Bytes one transformer layer stores for one micro-batch before any model parallelism
    (Korthikanti et al. 2022 sec. 4.1), grouped by how tensor parallelism splits them."""

    replicated: float  # 10sbh for GPT: not split by TP, split by t with sequence parallelism
    sharded: float  # 24sbh for GPT: split by TP (heads / ffn columns)
    scores: float  # 5as^2b: softmax output, its dropout mask, dropout output; split by TP
    flash_stats: float  # FlashAttention's softmax statistics 4*b*a*s (replace `scores`); split by TP
    layer_input: float  # 2sbh: what full recomputation keeps; split by t with sequence parallelism
    expert: float = 0.0  # the routed experts' tensors on one rank, already per rank (EP, ETP, SP applied)
    # bytes selective recompute drops besides the scores: Megatron-Core `layernorm` (norm outputs, split
    # like `replicated`) and `moe_act` (the routed experts' activation output, per rank like `expert`)
    selective_replicated: float = 0.0
    selective_expert: float = 0.0
    selective_sharded: float = 0.0  # Megatron-Core `mla_up_proj`: latent attention's Q, K and V (split by TP)


def attention_terms(model: ModelSpec, s: int, b: int) -> tuple[float, float, float]:
    """(replicated, sharded, scores) bytes of the attention block, 11sbh + 5as^2b for GPT
    (Korthikanti et al. 2022 sec. 4.1): QKV input 2sbh, Q 2sbh and K 2sbh, softmax output 2as^2b,
    its dropout mask as^2b, dropout output 2as^2b, V 2sbh, projection input 2sbh, projection dropout
    mask sbh. GQA: K and V are 2*s*b*kv_dim each (kv_dim = h * kv_heads / heads); Q and the projection
    input are 2*s*b*q_dim (q_dim = heads * head_dim, h unless head_dim is set apart). Multi-head latent
    attention: `mla_attention_terms`. Units: bytes."""
    if model.mla is not None:
        return mla_attention_terms(model, s, b)
    sbh = s * b * model.hidden
    sbq = s * b * model.q_dim
    sbk = s * b * model.kv_dim
    mask = sbh if model.dropout else 0  # 1-byte dropout masks exist only with dropout
    replicated = 2 * sbh + mask  # QKV input, projection dropout mask
    sharded = 2 * sbq + 2 * sbk + 2 * sbk + 2 * sbq  # Q, K, V, projection input
    scores = (5 if model.dropout else 2) * model.heads * s * s * b  # softmax output (+ mask, dropped)
    return replicated, sharded, scores


def mla_attention_terms(model: ModelSpec, s: int, b: int) -> tuple[float, float, float]:
    """(replicated, sharded, scores) bytes of multi-head latent attention (module docstring): down-
    projection input 2sbh, query latent before and after its norm 2 * 2sb*q_lora (none when q_lora_rank
    is 0: the query projection reads the down-projection input), key/value latent with the rotary key
    2sb(kv_lora + rope) and its normed part 2sb*kv_lora, projection dropout mask sbh (replicated: the
    down-projections are whole on every TP rank); Q and K 2sb*heads*(qk + rope) each, V and the
    projection input 2sb*heads*v each (split by TP); scores as for standard attention. Units: bytes."""
    mla = model.mla
    assert mla is not None
    sb, a = s * b, model.heads
    sbh = sb * model.hidden
    mask = sbh if model.dropout else 0
    q_latent = 2 * 2 * sb * mla.q_lora_rank  # 0 when queries are not compressed
    kv_latent = 2 * sb * (mla.kv_lora_rank + mla.qk_rope_head_dim) + 2 * sb * mla.kv_lora_rank
    replicated = 2 * sbh + mask + q_latent + kv_latent
    sharded = 2 * 2 * sb * a * mla.qk_dim + 2 * 2 * sb * a * mla.v_head_dim  # Q, K; V, projection input
    scores = (5 if model.dropout else 2) * a * s * s * b
    return replicated, sharded, scores


def mlp_terms(model: ModelSpec, s: int, b: int) -> tuple[float, float]:
    """(replicated, sharded) bytes of the MLP block, 19sbh for GPT (Korthikanti et al. 2022 sec. 4.1):
    input 2sbh, fc1 output 2sbf, activation output 2sbf, dropout mask sbh (f = ffn_hidden = 4h for
    GPT). SwiGLU keeps the gate and up outputs (2 * 2sbf) and their product (2sbf). Units: bytes."""
    sbh = s * b * model.hidden
    sbf = s * b * model.ffn_hidden
    replicated = 2 * sbh + (sbh if model.dropout else 0)  # MLP input, dropout mask
    sharded = 3 * 2 * sbf if model.gated_mlp else 2 * 2 * sbf
    return replicated, sharded


def routed_rows(model: ModelSpec, plan: ParallelPlan, s: int, b: int) -> float:
    """Token copies (rows of h) one rank's routed experts take per micro-batch of s tokens (seq_len /
    cp) and b sequences, balanced routing: the s*b/tp tokens the rank holds (sequence-parallel split,
    which Megatron-Core requires for MoE with TP) sent to top_k experts each, on average as many rows
    received over EP as sent, gathered over the etp ranks that split each expert. With a capacity
    factor each of the experts takes exactly ceil(tokens*top_k/experts*cf) rows from every source rank
    (Megatron-Core's padding to capacity). Units: rows."""
    moe = model.moe
    assert moe is not None
    tokens = s * b / plan.tp
    if moe.capacity_factor is None:
        return tokens * moe.top_k * plan.etp
    capacity = math.ceil(tokens * moe.top_k / moe.experts * moe.capacity_factor)
    return moe.experts * capacity * plan.etp


def moe_terms(model: ModelSpec, s: int, b: int, rows: float, etp: int) -> tuple[float, float, float]:
    """(replicated, sharded, expert) bytes of an MoE MLP at 2 bytes per element (module docstring):
    MLP input 2sbh and dropout mask sbh; shared experts' fc1 and activation outputs (as `mlp_terms` with
    their summed width; split by TP); per rank, `rows` routed rows' fc1 input 2h, fc1 output
    2 * (2 gated) * expert_ffn/etp and activation output 2 * expert_ffn/etp. The fp32 router scores and
    row probabilities are added by `layer_terms`. Units: bytes."""
    moe = model.moe
    assert moe is not None
    sbh = s * b * model.hidden
    sbf = s * b * moe.shared_experts * moe.shared_ffn_hidden
    replicated = 2 * sbh + (sbh if model.dropout else 0)
    sharded = (3 * 2 * sbf if model.gated_mlp else 2 * 2 * sbf) if moe.shared_experts else 0
    f = moe.expert_ffn_hidden / etp
    expert = rows * (2 * model.hidden + (3 * 2 * f if model.gated_mlp else 2 * 2 * f))
    return replicated, sharded, expert


def gemm_input_terms(model: ModelSpec, s: int, b: int, kind: LayerKind = LayerKind.DENSE) -> tuple[float, float]:
    """(replicated, sharded) bytes, within the attention and MLP terms, that a linear layer keeps as
    its input for the weight-gradient GEMM: QKV input 2sbh and MLP input 2sbh (split by t only with
    SP), projection input 2sbh and FC2 input 2sbf (split by TP). MLA adds the up-projections' inputs
    (normed latents, replicated); an MoE layer's input also feeds the router, which keeps it in the
    activation precision, and its shared experts' FC2 input is split by TP (the routed experts':
    `layer_terms`). Units: bytes (2-byte)."""
    sb = s * b
    sbh = sb * model.hidden
    mla = model.mla
    if mla is None:
        att_rep, att_shard = 2 * sbh, 2 * sb * model.q_dim
    else:
        att_rep = 2 * sbh + 2 * sb * mla.q_lora_rank + 2 * sb * mla.kv_lora_rank
        att_shard = 2 * sb * model.heads * mla.v_head_dim
    if kind is LayerKind.MOE:
        moe = model.moe
        assert moe is not None
        return att_rep, att_shard + 2 * sb * moe.shared_experts * moe.shared_ffn_hidden
    return att_rep + 2 * sbh, att_shard + 2 * sb * model.ffn_hidden


def layer_terms(
    model: ModelSpec,
    s: int,
    b: int,
    elem: int = PAPER_ELEM_BYTES,
    gemm_elem: int | None = None,
    kind: LayerKind = LayerKind.DENSE,
    rows: float = 0.0,
    etp: int = 1,
) -> LayerTerms:
    """Per-layer, per-micro-batch activation terms for `s` tokens per sequence on this rank (seq_len
    / cp), micro-batch `b` and `elem`-byte activations. Korthikanti et al. 2022 sec. 4.1 plus the
    two LayerNorm inputs (4sbh); 34sbh + 5as^2b for GPT. The paper's 2-byte formulas are scaled by
    elem / 2 as a whole, masks included (an approximation: masks stay 1 byte in fp32). Under an FP8
    recipe (`gemm_elem` 1) the linear layers keep their inputs as the FP8 copy their GEMMs read
    (Transformer Engine saves the cast input, not the bf16 one): those terms at gemm_elem / 2.
    A layer of `kind` MoE takes `rows` routed rows per rank (`routed_rows`) over experts split by
    `etp`; the selective-recompute drops are those of the module docstring. Units: bytes."""
    a_rep, a_shard, scores = attention_terms(model, s, b)
    g_rep, g_shard = gemm_input_terms(model, s, b, kind)
    sb = s * b
    sbh = sb * model.hidden
    norms = 2 * 2 * sbh
    scale = elem / PAPER_ELEM_BYTES
    cheaper = (elem - (gemm_elem or elem)) / PAPER_ELEM_BYTES  # per 2-byte unit of a GEMM input
    fp32_rep = fp32_expert = expert = g_expert = 0.0
    sel_rep = sel_expert = 0.0
    if kind is LayerKind.MOE:
        moe = model.moe
        assert moe is not None
        m_rep, m_shard, expert = moe_terms(model, s, b, rows, etp)
        g_expert = rows * 2 * (model.hidden + moe.expert_ffn_hidden / etp)  # fc1 and fc2 inputs
        fp32_rep = ROUTER_ELEM_BYTES * sb * moe.experts
        fp32_expert = ROUTER_ELEM_BYTES * rows
        act = rows * 2 * moe.expert_ffn_hidden / etp  # `moe_act`: the routed fc2 input
        sel_expert = act * scale - act * cheaper
        sel_rep = 2 * sbh * scale  # `layernorm`: the pre-MLP norm's output (kept in bf16 for the router)
    else:
        m_rep, m_shard = mlp_terms(model, s, b)
    sel_shard = 0.0
    if model.mla is not None:
        sel_rep += 2 * sbh * (scale - cheaper)  # `layernorm`: the input norm's output (down-projections' input)
        mla = model.mla
        sel_shard = (2 * 2 * sb * model.heads * mla.qk_dim + 2 * sb * model.heads * mla.v_head_dim) * scale
    return LayerTerms(
        replicated=(a_rep + m_rep + norms) * scale - g_rep * cheaper + fp32_rep,
        sharded=(a_shard + m_shard) * scale - g_shard * cheaper,
        scores=scores * scale,
        flash_stats=FLASH_STATS_BYTES * b * model.heads * s,
        layer_input=2 * sbh * scale,
        expert=expert * scale - g_expert * cheaper + fp32_expert,
        selective_replicated=sel_rep,
        selective_expert=sel_expert,
        selective_sharded=sel_shard,
    )


def stored_layer_bytes(terms: LayerTerms, t: int, sp: bool, recompute: Recompute, flash: bool) -> float:
    """Bytes one layer keeps per micro-batch on one TP rank (Korthikanti et al. 2022 Table 2):
    TP sbh(10 + 24/t + 5as/(ht)); TP+SP sbh(34/t + 5as/(ht)); selective recompute drops the
    5as^2b score terms (and, in MoE / MLA layers, `moe_act` and `layernorm` outputs); full recompute
    keeps only the layer input 2sbh (/t with SP). FlashAttention never materialises the scores and
    keeps its softmax statistics instead. The routed experts' bytes are per rank already. Units: bytes."""
    sp_split = t if sp else 1
    if recompute is Recompute.FULL:
        return terms.layer_input / sp_split
    scores = 0.0 if recompute is Recompute.SELECTIVE or flash else terms.scores / t
    stats = terms.flash_stats / t if flash else 0.0
    stored = terms.replicated / sp_split + terms.sharded / t + scores + stats + terms.expert
    if recompute is Recompute.SELECTIVE:
        stored -= _selective_drops(terms, sp_split, t)
    return stored


def _selective_drops(terms: LayerTerms, sp_split: int, t: int) -> float:
    return terms.selective_replicated / sp_split + terms.selective_expert + terms.selective_sharded / t


def recompute_working_bytes(terms: LayerTerms, t: int, sp: bool, recompute: Recompute, flash: bool) -> float:
    """Transient bytes of recomputation during backward: full recompute rebuilds one layer's complete
    activations for one micro-batch (Chen et al. 2016; Korthikanti et al. 2022 sec. 5); selective
    recompute rebuilds that layer's attention scores (and its dropped `moe_act` / norm outputs).
    Units: bytes."""
    if recompute is Recompute.FULL:
        return stored_layer_bytes(terms, t, sp, Recompute.NONE, flash)
    if recompute is Recompute.SELECTIVE:
        scores = 0.0 if flash else terms.scores / t
        return scores + _selective_drops(terms, t if sp else 1, t)
    return 0.0


def in_flight_micro_batches(schedule: Schedule, stage: int, pp: int, m: int, v: int) -> float:
    """Micro-batches' worth of a stage's layers stored at its peak (Narayanan et al. 2021 sec. 2.2;
    Korthikanti et al. 2022 sec. 4.2.3). GPipe: all m. 1F1B: min(pp - stage, m). Interleaved with v
    chunks per GPU: Megatron-LM's warm-up of 2(pp - stage - 1) + (v - 1)pp chunk forwards plus the
    one in progress, each 1/v of the stage's layers, capped by the m*v chunk micro-batches; on
    stage 0 that is pp * (1 + (pp - 1)/(pp v)). Units: micro-batches (may be fractional)."""
    if schedule is Schedule.GPIPE:
        return float(m)
    if schedule is Schedule.ONE_F_ONE_B:
        return float(min(pp - stage, m))
    chunk_forwards = 2 * (pp - stage - 1) + (v - 1) * pp + 1
    return min(chunk_forwards, m * v) / v


def embedding_bytes(model: ModelSpec, s: int, b: int, t: int, sp: bool) -> float:
    """First stage, per micro-batch: the embedding dropout mask, s*b*h bytes (/t with SP; Korthikanti
    et al. 2022 sec. 4.3); none without dropout. Its output is the first layer's norm input, counted
    there. Units: bytes."""
    return s * b * model.hidden / (t if sp else 1) if model.dropout else 0.0


def head_bytes(model: ModelSpec, s: int, b: int, t: int, sp: bool, elem: int) -> float:
    """Last stage, per micro-batch (Korthikanti et al. 2022 sec. 4.3): final norm input 2sbh and
    output-layer input 2sbh (each /t with SP), and the logits s*b*V/t kept both in the activation
    precision and in fp32 for the cross-entropy (Megatron-LM). Units: bytes."""
    sbh = s * b * model.hidden * elem / PAPER_ELEM_BYTES
    logits = s * b * model.vocab / t * (elem + LOSS_ELEM_BYTES)
    return 2 * 2 * sbh / (t if sp else 1) + logits


def mtp_module_bytes(model: ModelSpec, s: int, b: int, t: int, sp: bool, elem: int) -> float:
    """A multi-token-prediction module's own tensors per micro-batch, besides its transformer layer
    and its head: the inputs of its two norms (the shifted tokens' embedding and the previous depth's
    hidden state, 2sbh each) and of its 2h -> h projection (their concatenation, 4sbh); /t with SP.
    Units: bytes."""
    return 8 * s * b * model.hidden * elem / PAPER_ELEM_BYTES / (t if sp else 1)


def setup_layer_terms(setup: Setup, kind: LayerKind) -> LayerTerms:
    """`layer_terms` of one layer of `kind` for the setup's shapes, precision and expert split."""
    m, p, tr = setup.model, setup.plan, setup.training
    s, b = m.seq_len // p.cp, tr.micro_batch  # context parallelism splits the sequence
    rows = routed_rows(m, p, s, b) if kind is LayerKind.MOE else 0.0
    elem, gemm_elem = dtypes.activation_bytes(tr.precision), dtypes.gemm_operand_bytes(tr.precision)
    return layer_terms(m, s, b, elem, gemm_elem, kind, rows, p.etp)


def _stage_layer_counts(
    setup: Setup, stage: int, counts: list[int]
) -> tuple[dict[LayerKind, int], dict[LayerKind, int]]:
    """(recomputed, kept) layers of each kind on one GPU of `stage`: the first `recomputed_layers` of
    each chunk recompute, the last chunk's MTP modules' layers counting after its own layers."""
    m, p = setup.model, setup.plan
    recomputed: dict[LayerKind, int] = {}
    kept: dict[LayerKind, int] = {}
    for c in chunks_of_stage(stage, p.pp, p.virtual_stages):
        start = sum(counts[:c])
        kinds = [m.layer_kind(i) for i in range(start, start + counts[c])]
        if c == p.chunks - 1:
            kinds += [m.mtp_kind] * m.mtp_layers
        n_recomputed = p.recomputed_layers(len(kinds))
        for i, kind in enumerate(kinds):
            recomputed[kind] = recomputed.get(kind, 0) + (i < n_recomputed)
            kept[kind] = kept.get(kind, 0) + (i >= n_recomputed)
    return recomputed, kept


def stage_activation_bytes(setup: Setup, stage: int) -> float:
    """Peak activation bytes on one GPU of pipeline `stage` (0-based): its layers times the
    micro-batches in flight, the recomputation working set, the embedding on the first stage and the
    head on the last. The head's activations count once (GPipe: m times): the loss and its backward
    follow the last chunk's forward immediately, so they never accumulate. A chunk whose first
    `recompute_layers` recompute (Megatron's block method) keeps those layers' inputs only and
    everything of the rest. Layers of each kind (dense, MoE) count with their own terms; the last
    chunk's MTP modules count as layers of the last layer's kind plus their own norm and projection
    inputs, and each module's head (its own logits) counts like the main head. Units: bytes."""
    m, p, tr = setup.model, setup.plan, setup.training
    s, b = m.seq_len // p.cp, tr.micro_batch  # context parallelism splits the sequence
    sp = p.sequence_parallel and p.tp > 1
    elem = dtypes.activation_bytes(tr.precision)
    counts = layers_per_chunk(m.layers, p.chunks)
    mine = chunks_of_stage(stage, p.pp, p.virtual_stages)
    in_flight = in_flight_micro_batches(p.schedule, stage, p.pp, setup.micro_batches, p.virtual_stages)
    recomputed, kept = _stage_layer_counts(setup, stage, counts)
    terms = {kind: setup_layer_terms(setup, kind) for kind in recomputed}
    flash = tr.flash_attention
    total = in_flight * sum(
        recomputed[k] * stored_layer_bytes(terms[k], p.tp, sp, p.recompute, flash)
        + kept[k] * stored_layer_bytes(terms[k], p.tp, sp, Recompute.NONE, flash)
        for k in terms
    )
    working = [recompute_working_bytes(terms[k], p.tp, sp, p.recompute, flash) for k in terms if recomputed[k]]
    if working:
        total += max(working)
    if 0 in mine:
        total += in_flight * embedding_bytes(m, s, b, p.tp, sp)
    if p.chunks - 1 in mine:
        head_in_flight = setup.micro_batches if p.schedule is Schedule.GPIPE else 1
        total += head_in_flight * head_bytes(m, s, b, p.tp, sp, elem)
        if m.mtp_layers:
            total += in_flight * m.mtp_layers * mtp_module_bytes(m, s, b, p.tp, sp, elem)
            total += head_in_flight * m.mtp_layers * head_bytes(m, s, b, p.tp, sp, elem)
    return total


def activation_bytes_per_stage(setup: Setup) -> list[float]:
    """`stage_activation_bytes` for every pipeline stage, in stage order. Units: bytes."""
    return [stage_activation_bytes(setup, st) for st in range(setup.plan.pp)]


def peak_activation_stage(setup: Setup) -> tuple[int, float]:
    """(stage, bytes) of the stage holding the most activations (usually stage 0). Units: bytes."""
    per_stage = activation_bytes_per_stage(setup)
    stage = max(range(len(per_stage)), key=per_stage.__getitem__)
    return stage, per_stage[stage]
