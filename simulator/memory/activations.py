"""Activation memory per GPU: Korthikanti et al. 2022 per-layer terms, pipeline in-flight counts."""

from dataclasses import dataclass

from simulator import dtypes
from simulator.catalog.models import ModelSpec
from simulator.enums import Recompute, Schedule
from simulator.scenario.setup import Setup
from simulator.workload.head import LOSS_ELEM_BYTES
from simulator.workload.partition import chunks_of_stage, layers_per_chunk

PAPER_ELEM_BYTES = 2  # Korthikanti et al. 2022 count 16-bit activations (and 1-byte dropout masks)
FLASH_STATS_BYTES = 4  # FlashAttention keeps the softmax log-sum-exp per query row in fp32


@dataclass(frozen=True)
class LayerTerms:
    """Bytes one transformer layer stores for one micro-batch before any model parallelism
    (Korthikanti et al. 2022 sec. 4.1), grouped by how tensor parallelism splits them."""

    replicated: float  # 10sbh for GPT: not split by TP, split by t with sequence parallelism
    sharded: float  # 24sbh for GPT: split by TP (heads / ffn columns)
    scores: float  # 5as^2b: softmax output, its dropout mask, dropout output; split by TP
    flash_stats: float  # FlashAttention's softmax statistics 4*b*a*s (replace `scores`); split by TP
    layer_input: float  # 2sbh: what full recomputation keeps; split by t with sequence parallelism


def attention_terms(model: ModelSpec, s: int, b: int) -> tuple[float, float, float]:
    """(replicated, sharded, scores) bytes of the attention block, 11sbh + 5as^2b for GPT
    (Korthikanti et al. 2022 sec. 4.1): QKV input 2sbh, Q 2sbh and K 2sbh, softmax output 2as^2b,
    its dropout mask as^2b, dropout output 2as^2b, V 2sbh, projection input 2sbh, projection dropout
    mask sbh. GQA: K and V are 2*s*b*kv_dim each (kv_dim = h * kv_heads / heads). Units: bytes."""
    sbh = s * b * model.hidden
    sbk = s * b * model.kv_dim
    mask = sbh if model.dropout else 0  # 1-byte dropout masks exist only with dropout
    replicated = 2 * sbh + mask  # QKV input, projection dropout mask
    sharded = 2 * sbh + 2 * sbk + 2 * sbk + 2 * sbh  # Q, K, V, projection input
    scores = (5 if model.dropout else 2) * model.heads * s * s * b  # softmax output (+ mask, dropped)
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


def gemm_input_terms(model: ModelSpec, s: int, b: int) -> tuple[float, float]:
    """(replicated, sharded) bytes, within `attention_terms` and `mlp_terms`, that a linear layer
    keeps as its input for the weight-gradient GEMM: QKV input 2sbh and MLP input 2sbh (split by t
    only with SP), projection input 2sbh and FC2 input 2sbf (split by TP). Units: bytes (2-byte)."""
    sbh = s * b * model.hidden
    sbf = s * b * model.ffn_hidden
    return 2 * sbh + 2 * sbh, 2 * sbh + 2 * sbf


def layer_terms(
    model: ModelSpec, s: int, b: int, elem: int = PAPER_ELEM_BYTES, gemm_elem: int | None = None
) -> LayerTerms:
    """Per-layer, per-micro-batch activation terms for `s` tokens per sequence on this rank (seq_len
    / cp), micro-batch `b` and `elem`-byte activations. Korthikanti et al. 2022 sec. 4.1 plus the
    two LayerNorm inputs (4sbh); 34sbh + 5as^2b for GPT. The paper's 2-byte formulas are scaled by
    elem / 2 as a whole, masks included (an approximation: masks stay 1 byte in fp32). Under an FP8
    recipe (`gemm_elem` 1) the linear layers keep their inputs as the FP8 copy their GEMMs read
    (Transformer Engine saves the cast input, not the bf16 one): those terms at gemm_elem / 2.
    Units: bytes."""
    a_rep, a_shard, scores = attention_terms(model, s, b)
    m_rep, m_shard = mlp_terms(model, s, b)
    g_rep, g_shard = gemm_input_terms(model, s, b)
    sbh = s * b * model.hidden
    norms = 2 * 2 * sbh
    scale = elem / PAPER_ELEM_BYTES
    cheaper = (elem - (gemm_elem or elem)) / PAPER_ELEM_BYTES  # per 2-byte unit of a GEMM input
    return LayerTerms(
        replicated=(a_rep + m_rep + norms) * scale - g_rep * cheaper,
        sharded=(a_shard + m_shard) * scale - g_shard * cheaper,
        scores=scores * scale,
        flash_stats=FLASH_STATS_BYTES * b * model.heads * s,
        layer_input=2 * sbh * scale,
    )


def stored_layer_bytes(terms: LayerTerms, t: int, sp: bool, recompute: Recompute, flash: bool) -> float:
    """Bytes one layer keeps per micro-batch on one TP rank (Korthikanti et al. 2022 Table 2):
    TP sbh(10 + 24/t + 5as/(ht)); TP+SP sbh(34/t + 5as/(ht)); selective recompute drops the
    5as^2b score terms; full recompute keeps only the layer input 2sbh (/t with SP). FlashAttention
    never materialises the scores and keeps its softmax statistics instead. Units: bytes."""
    sp_split = t if sp else 1
    if recompute is Recompute.FULL:
        return terms.layer_input / sp_split
    scores = 0.0 if recompute is Recompute.SELECTIVE or flash else terms.scores / t
    stats = terms.flash_stats / t if flash else 0.0
    return terms.replicated / sp_split + terms.sharded / t + scores + stats


def recompute_working_bytes(terms: LayerTerms, t: int, sp: bool, recompute: Recompute, flash: bool) -> float:
    """Transient bytes of recomputation during backward: full recompute rebuilds one layer's complete
    activations for one micro-batch (Chen et al. 2016; Korthikanti et al. 2022 sec. 5); selective
    recompute rebuilds that layer's attention scores. Units: bytes."""
    if recompute is Recompute.FULL:
        return stored_layer_bytes(terms, t, sp, Recompute.NONE, flash)
    if recompute is Recompute.SELECTIVE and not flash:
        return terms.scores / t
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


def stage_activation_bytes(setup: Setup, stage: int) -> float:
    """Peak activation bytes on one GPU of pipeline `stage` (0-based): its layers times the
    micro-batches in flight, the recomputation working set, the embedding on the first stage and the
    head on the last. The head's activations count once (GPipe: m times): the loss and its backward
    follow the last chunk's forward immediately, so they never accumulate. A chunk whose first
    `recompute_layers` recompute (Megatron's block method) keeps those layers' inputs only and
    everything of the rest. Units: bytes."""
    m, p, tr = setup.model, setup.plan, setup.training
    s, b = m.seq_len // p.cp, tr.micro_batch  # context parallelism splits the sequence
    sp = p.sequence_parallel and p.tp > 1
    elem = dtypes.activation_bytes(tr.precision)
    terms = layer_terms(m, s, b, elem, dtypes.gemm_operand_bytes(tr.precision))
    counts = layers_per_chunk(m.layers, p.chunks)
    mine = chunks_of_stage(stage, p.pp, p.virtual_stages)
    in_flight = in_flight_micro_batches(p.schedule, stage, p.pp, setup.micro_batches, p.virtual_stages)
    recomputed = sum(p.recomputed_layers(counts[c]) for c in mine)
    kept = sum(counts[c] for c in mine) - recomputed
    total = in_flight * (
        recomputed * stored_layer_bytes(terms, p.tp, sp, p.recompute, tr.flash_attention)
        + kept * stored_layer_bytes(terms, p.tp, sp, Recompute.NONE, tr.flash_attention)
    )
    if recomputed:
        total += recompute_working_bytes(terms, p.tp, sp, p.recompute, tr.flash_attention)
    if 0 in mine:
        total += in_flight * embedding_bytes(m, s, b, p.tp, sp)
    if p.chunks - 1 in mine:
        head_in_flight = setup.micro_batches if p.schedule is Schedule.GPIPE else 1
        total += head_in_flight * head_bytes(m, s, b, p.tp, sp, elem)
    return total


def activation_bytes_per_stage(setup: Setup) -> list[float]:
    """`stage_activation_bytes` for every pipeline stage, in stage order. Units: bytes."""
    return [stage_activation_bytes(setup, st) for st in range(setup.plan.pp)]


def peak_activation_stage(setup: Setup) -> tuple[int, float]:
    """(stage, bytes) of the stage holding the most activations (usually stage 0). Units: bytes."""
    per_stage = activation_bytes_per_stage(setup)
    stage = max(range(len(per_stage)), key=per_stage.__getitem__)
    return stage, per_stage[stage]
