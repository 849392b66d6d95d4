"""Parameter counts: whole model, per layer, and what one rank holds under TP/PP/EP.

For GPT-style models (LayerNorm, biases, learned positions, tied embeddings) the total is
Narayanan et al. 2021 eq. 2, P = 12*l*h^2 * (1 + 13/(12h) + (V+s)/(12*l*h)), plus the final
LayerNorm (2h); the same pieces generalise to GQA (kv_heads < heads), a query width heads*head_dim
apart from h (Qwen3), SwiGLU (three MLP matrices), RMSNorm, no biases and untied embeddings.

Mixtures of experts, multi-head latent attention and multi-token prediction (docs/contract.md 1b):

- MLA (DeepSeek-V2 sec. 2.1, Megatron-Core `MLASelfAttention`): the query down-projection
  h x q_lora, its norm and the up-projection q_lora x heads*(qk + rope) (or h x heads*(qk + rope)
  directly when q_lora_rank is 0); the key/value down-projection h x (kv_lora + rope), its norm and
  the up-projection kv_lora x heads*(qk + v); the output projection heads*v x h. Megatron-Core
  keeps the down-projections and latent norms whole on every TP rank (plain `linear`), splits the
  up- and output projections by TP.
- An MoE MLP (Megatron-Core `MoELayer`): the router h x experts (replicated over TP), the shared
  experts as one MLP of shared_experts*shared_ffn_hidden split by TP, and the routed experts, each a
  (gated) MLP of expert_ffn_hidden, split over ep x etp ranks instead of TP.
- A multi-token-prediction module (DeepSeek-V3 sec. 2.2, Megatron-Core `MultiTokenPredictionLayer`):
  two norms, the 2h -> h projection (split by TP), one transformer layer of the last layer's kind and a
  final norm; it shares the embedding and the LM head with the main model.

Conventions of the totals: `total_params` counts everything trained once (embedding, LM head unless
tied, final norm, MTP modules with their shared embedding/head not counted again); `active_params`
counts what one token passes through (top_k routed experts of each MoE layer plus the shared
ones), embedding and LM head included, as DeepSeek-V3's "37B activated" does.
"""

from dataclasses import dataclass

from simulator.catalog.models import ModelSpec
from simulator.enums import LayerKind, Norm, Position


@dataclass(frozen=True)
class LayerParams:
    """One transformer layer's (or block's) parameters, split by how the model-parallel dimensions
    treat them."""

    sharded: int  # split over TP ranks: QKV/proj/MLP weights and column-parallel biases
    replicated: int  # copied on every TP rank: row-parallel biases, norms, router, MLA down-projections
    expert: int = 0  # routed experts: split over ep x etp ranks (not TP); reduced over expert-DP

    def __add__(self, other: "LayerParams") -> "LayerParams":
        return LayerParams(self.sharded + other.sharded, self.replicated + other.replicated, self.expert + other.expert)

    @property
    def dense(self) -> int:
        """What data parallelism (DP x CP) reduces and ZeRO shards: all but the routed experts."""
        return self.sharded + self.replicated

    @property
    def total(self) -> int:
        return self.sharded + self.replicated + self.expert

    def dense_per_rank(self, tp: int) -> float:
        return self.sharded / tp + self.replicated

    def expert_per_rank(self, ep: int, etp: int) -> float:
        return self.expert / (ep * etp)

    def per_rank(self, tp: int, ep: int = 1, etp: int = 1) -> float:
        return self.dense_per_rank(tp) + self.expert_per_rank(ep, etp)


def norm_width_params(model: ModelSpec, width: int) -> int:
    """One norm over `width` features: LayerNorm has gain and bias, RMSNorm gain only."""
    return 2 * width if model.norm is Norm.LAYERNORM else width


def norm_params(model: ModelSpec) -> int:
    """One norm over the hidden size."""
    return norm_width_params(model, model.hidden)


def attention_params(model: ModelSpec) -> LayerParams:
    """The attention block's projections (norms not included): standard (GQA) or latent (MLA)."""
    if model.mla is not None:
        return _mla_params(model)
    h, q, kv = model.hidden, model.q_dim, model.kv_dim
    weights = h * (q + 2 * kv) + q * h  # QKV and output projection
    col_bias = q + 2 * kv if model.bias else 0
    row_bias = h if model.bias else 0
    return LayerParams(sharded=weights + col_bias, replicated=row_bias)


def _mla_params(model: ModelSpec) -> LayerParams:
    mla = model.mla
    assert mla is not None
    h, a, bias = model.hidden, model.heads, model.bias
    q_out = a * mla.qk_dim  # queries: heads * (qk + rope)
    kv_latent = mla.kv_lora_rank + mla.qk_rope_head_dim  # compressed KV plus the shared rotary key
    kv_out = a * (mla.qk_head_dim + mla.v_head_dim)  # per-head keys (no rope part) and values
    if mla.q_lora_rank:
        q_rep = h * mla.q_lora_rank + norm_width_params(model, mla.q_lora_rank) + (mla.q_lora_rank if bias else 0)
        q_shard = mla.q_lora_rank * q_out
    else:
        q_rep, q_shard = 0, h * q_out
    kv_rep = h * kv_latent + norm_width_params(model, mla.kv_lora_rank) + (kv_latent if bias else 0)
    kv_shard = mla.kv_lora_rank * kv_out
    proj = a * mla.v_head_dim * h
    col_bias = q_out + kv_out if bias else 0
    return LayerParams(sharded=q_shard + kv_shard + proj + col_bias, replicated=q_rep + kv_rep + (h if bias else 0))


def mlp_params(model: ModelSpec, ffn: int) -> LayerParams:
    """One MLP of hidden width `ffn`: up (and gate for SwiGLU) column-parallel, down row-parallel."""
    h = model.hidden
    mlp_in = 2 * ffn if model.gated_mlp else ffn  # gate and up projections for SwiGLU
    col_bias = mlp_in if model.bias else 0
    row_bias = h if model.bias else 0
    return LayerParams(sharded=h * mlp_in + ffn * h + col_bias, replicated=row_bias)


def moe_params(model: ModelSpec) -> LayerParams:
    """An MoE MLP: router (replicated over TP), shared experts (one MLP of their summed width, split by
    TP) and routed experts (split over ep x etp)."""
    moe = model.moe
    assert moe is not None, "moe_params of a model without model.moe"
    router = model.hidden * moe.experts
    shared = mlp_params(model, moe.shared_experts * moe.shared_ffn_hidden) if moe.shared_experts else None
    routed = mlp_params(model, moe.expert_ffn_hidden)
    return LayerParams(
        sharded=shared.sharded if shared else 0,
        replicated=router + (shared.replicated if shared else 0),
        expert=moe.experts * routed.total,
    )


def _uniform_kind(model: ModelSpec) -> LayerKind:
    kinds = set(model.layer_kinds)
    if len(kinds) != 1:
        raise ValueError(f"model {model.name!r} mixes dense and MoE layers: pass the layer kind (ModelSpec.layer_kind)")
    return kinds.pop()


def layer_params(model: ModelSpec, kind: LayerKind | None = None) -> LayerParams:
    """One transformer layer of `kind`: attention, MLP (dense of ffn_hidden, or MoE) and its two norms.
    Without `kind`, the kind every layer of the model shares (a ValueError for a model that mixes
    them, DeepSeek-V3's first dense layers)."""
    kind = kind or _uniform_kind(model)
    mlp = moe_params(model) if kind is LayerKind.MOE else mlp_params(model, model.ffn_hidden)
    return attention_params(model) + mlp + LayerParams(sharded=0, replicated=2 * norm_params(model))


def mtp_module_params(model: ModelSpec) -> LayerParams:
    """One multi-token-prediction module (DeepSeek-V3 sec. 2.2; Megatron-Core): the embedding's and the
    previous hidden state's norms, the 2h -> h projection (column-parallel), one transformer layer of
    the last layer's kind and the module's final norm; embedding and LM head are the main model's."""
    h = model.hidden
    proj = LayerParams(sharded=2 * h * h + (h if model.bias else 0), replicated=3 * norm_params(model))
    return proj + layer_params(model, model.mtp_kind)


def embedding_params(model: ModelSpec) -> int:
    """Token embedding (vocab-parallel under TP) plus learned positions when the model has them."""
    return model.vocab * model.hidden + position_params(model)


def position_params(model: ModelSpec) -> int:
    return model.seq_len * model.hidden if model.position is Position.LEARNED else 0


def head_params(model: ModelSpec) -> int:
    """Final norm plus the LM head matrix when it is not tied to the embedding."""
    untied = 0 if model.tied_embeddings else model.vocab * model.hidden
    return norm_params(model) + untied


def layer_kind_counts(model: ModelSpec) -> dict[LayerKind, int]:
    """How many of the main model's layers are of each kind (kinds absent from the model left out)."""
    counts: dict[LayerKind, int] = {}
    for kind in model.layer_kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def active_layer_params(model: ModelSpec, kind: LayerKind) -> int:
    """Parameters one token passes through in a layer of `kind`: all but the routed experts it is not
    sent to (top_k of them; Megatron-LM / DeepSeek-V3 "activated parameters")."""
    p = layer_params(model, kind)
    if kind is LayerKind.MOE:
        assert model.moe is not None
        return p.dense + p.expert // model.moe.experts * model.moe.top_k
    return p.total


def mtp_params(model: ModelSpec) -> int:
    """All multi-token-prediction modules (0 without them)."""
    return model.mtp_layers * mtp_module_params(model).total if model.mtp_layers else 0


def total_params(model: ModelSpec, mtp: bool = True) -> int:
    """Every trained parameter: layers, embedding, head and (with `mtp`) the MTP modules."""
    layers = sum(n * layer_params(model, k).total for k, n in layer_kind_counts(model).items())
    return layers + embedding_params(model) + head_params(model) + (mtp_params(model) if mtp else 0)


def active_params(model: ModelSpec, mtp: bool = True) -> int:
    """Parameters one token passes through (embedding and LM head included); = total_params for a
    dense model."""
    layers = sum(n * active_layer_params(model, k) for k, n in layer_kind_counts(model).items())
    extra = 0
    if mtp and model.mtp_layers:
        module = mtp_module_params(model)
        extra = model.mtp_layers * (module.total - layer_params(model, model.mtp_kind).total)
        extra += model.mtp_layers * active_layer_params(model, model.mtp_kind)
    return layers + embedding_params(model) + head_params(model) + extra
