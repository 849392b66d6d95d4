"""Model architectures: catalogue entries and scenario overrides -> a frozen ModelSpec."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict

from simulator.bounds import (
    MAX_CAPACITY_FACTOR,
    MAX_EXPERTS,
    MAX_FFN_HIDDEN,
    MAX_HEADS,
    MAX_HIDDEN,
    MAX_LAYERS,
    MAX_SEQ_LEN,
    MAX_VOCAB,
    RealNumber,
    WholeNumber,
    within,
)
from simulator.catalog.loader import bundled
from simulator.enums import Activation, LayerKind, Norm, Position


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MoeEntry(_Entry):
    """`model.moe`: the MLP of (some) layers is a mixture of experts (docs/contract.md section 1b).
    Written partially it overlays a preset's (`--set model.moe.top_k=4`); `experts`, `top_k` and
    `expert_ffn_hidden` must be there once the overlays are done (resolve.py reports those missing)."""

    experts: Annotated[WholeNumber, within(1, MAX_EXPERTS)] | None = None
    top_k: Annotated[WholeNumber, within(1, MAX_EXPERTS)] | None = None  # at most `experts` (rules.py)
    expert_ffn_hidden: Annotated[WholeNumber, within(1, MAX_FFN_HIDDEN)] | None = None
    shared_experts: Annotated[WholeNumber, within(0, MAX_EXPERTS)] = 0
    shared_ffn_hidden: Annotated[WholeNumber, within(1, MAX_FFN_HIDDEN)] | None = None  # default expert_ffn_hidden
    dense_layers: Annotated[WholeNumber, within(0, MAX_LAYERS)] = 0  # the first N layers keep a dense MLP
    layer_freq: Annotated[WholeNumber, within(1, MAX_LAYERS)] = 1  # every Nth remaining layer is MoE
    # None: dropless; a number: each expert's input padded to / cut at ceil(tokens * top_k / experts * cf)
    capacity_factor: Annotated[RealNumber, within(0.0, MAX_CAPACITY_FACTOR, low_open=True)] | None = None
    # Uneven expert load (extension): 0 = perfectly balanced routing (as published benchmarks force it);
    # s > 0 = each micro-batch's tokens go to experts with Zipf(s) popularity over a random order of the
    # experts, drawn with the scenario's seed (workload/expert_load.py).
    load_skew: Annotated[RealNumber, within(0.0, 8.0)] = 0.0


class MlaEntry(_Entry):
    """`model.mla`: multi-head latent attention (DeepSeek-V2 sec. 2.1; DeepSeek-V3). Partial entries
    overlay a preset's, as for `moe`; every key must be there once the overlays are done."""

    q_lora_rank: Annotated[WholeNumber, within(0, MAX_HIDDEN)] | None = None  # 0: queries not compressed
    kv_lora_rank: Annotated[WholeNumber, within(1, MAX_HIDDEN)] | None = None
    qk_head_dim: Annotated[WholeNumber, within(1, MAX_HIDDEN)] | None = None  # per head, without the rotary part
    qk_rope_head_dim: Annotated[WholeNumber, within(0, MAX_HIDDEN)] | None = None
    v_head_dim: Annotated[WholeNumber, within(1, MAX_HIDDEN)] | None = None


MOE_REQUIRED = ("experts", "top_k", "expert_ffn_hidden")
MLA_REQUIRED = tuple(MlaEntry.model_fields)


def missing_fields(entry: BaseModel, required: tuple[str, ...]) -> list[str]:
    """The required fields an (overlaid) entry still leaves unset."""
    return [f for f in required if getattr(entry, f) is None]


class ModelEntry(_Entry):
    """One model as written in a catalogue file; every field optional so it can overlay a preset."""

    # Ranges: simulator/bounds.py (each bound with its reason).
    layers: Annotated[WholeNumber, within(1, MAX_LAYERS)] | None = None
    hidden: Annotated[WholeNumber, within(1, MAX_HIDDEN)] | None = None
    heads: Annotated[WholeNumber, within(1, MAX_HEADS)] | None = None
    kv_heads: Annotated[WholeNumber, within(1, MAX_HEADS)] | None = None
    ffn_hidden: Annotated[WholeNumber, within(1, MAX_FFN_HIDDEN)] | None = None
    vocab: Annotated[WholeNumber, within(1, MAX_VOCAB)] | None = None
    seq_len: Annotated[WholeNumber, within(1, MAX_SEQ_LEN)] | None = None
    activation: Activation | None = None
    norm: Norm | None = None
    bias: bool | None = None
    position: Position | None = None
    tied_embeddings: bool | None = None
    dropout: bool | None = None
    head_dim: Annotated[WholeNumber, within(1, MAX_HIDDEN)] | None = None  # default hidden / heads
    moe: MoeEntry | None = None
    mla: MlaEntry | None = None
    mtp_layers: Annotated[WholeNumber, within(0, MAX_LAYERS)] | None = None  # multi-token-prediction modules

    def overlay(self, other: "ModelEntry") -> "ModelEntry":
        """`other`'s explicit fields on top of this entry's; `moe` and `mla` merge key by key (a variant
        of a preset may change only `moe.top_k`). Only the fields each entry was given count: a
        partial `moe` does not bring its defaults (dense_layers 0, ...) over the preset's values."""
        mine = self.model_dump(exclude_unset=True, exclude_none=True)
        theirs = other.model_dump(exclude_unset=True, exclude_none=True)
        for nested in ("moe", "mla"):
            if nested in mine and nested in theirs:
                theirs[nested] = {**mine[nested], **theirs[nested]}
        return type(self).model_validate({**mine, **theirs})


REQUIRED_FIELDS = ("layers", "hidden", "heads", "vocab", "seq_len")


@dataclass(frozen=True)
class MoeSpec:
    """A mixture-of-experts MLP (docs/contract.md section 1b)."""

    experts: int
    top_k: int
    expert_ffn_hidden: int
    shared_experts: int
    shared_ffn_hidden: int
    dense_layers: int
    layer_freq: int
    capacity_factor: float | None
    load_skew: float

    @property
    def dropless(self) -> bool:
        """No capacity factor: every routed token reaches its experts, so the per-expert token counts are
        known only on the device (Megatron-Core's dropless routing; padded to capacity they are static)."""
        return self.capacity_factor is None

    @classmethod
    def from_entry(cls, e: MoeEntry) -> "MoeSpec":
        experts, top_k, expert_ffn_hidden = e.experts, e.top_k, e.expert_ffn_hidden
        if experts is None or top_k is None or expert_ffn_hidden is None:
            raise ValueError(f"moe: missing {', '.join(missing_fields(e, MOE_REQUIRED))}")
        return cls(
            experts=experts,
            top_k=top_k,
            expert_ffn_hidden=expert_ffn_hidden,
            shared_experts=e.shared_experts,
            shared_ffn_hidden=e.shared_ffn_hidden or expert_ffn_hidden,
            dense_layers=e.dense_layers,
            layer_freq=e.layer_freq,
            capacity_factor=e.capacity_factor,
            load_skew=e.load_skew,
        )


@dataclass(frozen=True)
class MlaSpec:
    """Multi-head latent attention's ranks and per-head sizes (DeepSeek-V2 sec. 2.1)."""

    q_lora_rank: int
    kv_lora_rank: int
    qk_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    @classmethod
    def from_entry(cls, e: MlaEntry) -> "MlaSpec":
        if missing := missing_fields(e, MLA_REQUIRED):
            raise ValueError(f"mla: missing {', '.join(missing)}")
        return cls(**e.model_dump())

    @property
    def qk_dim(self) -> int:
        """Per-head query/key size the scores are computed over: the compressed part plus the rotary part."""
        return self.qk_head_dim + self.qk_rope_head_dim


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer. Sizes are counts (not bytes)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn_hidden: int
    vocab: int
    seq_len: int
    activation: Activation
    norm: Norm
    bias: bool
    position: Position
    tied_embeddings: bool
    dropout: bool = True  # hidden and attention dropout in training (GPT-3: 0.1; Llama: none)
    head_dim: int = 0  # per attention head; 0 in the constructor = hidden // heads
    moe: MoeSpec | None = None
    mla: MlaSpec | None = None
    mtp_layers: int = 0  # multi-token-prediction modules after the last layer (DeepSeek-V3: 1)

    def __post_init__(self) -> None:
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden // self.heads)

    @property
    def q_dim(self) -> int:
        """Width of the query projection: heads * head_dim (= hidden unless head_dim is set apart: Qwen3)."""
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the K (or V) projection: kv_heads * head_dim (GQA/MQA when kv_heads < heads)."""
        return self.kv_heads * self.head_dim

    def layer_kind(self, index: int) -> LayerKind:
        """Whether layer `index` (0-based) has a dense MLP or a mixture of experts: the first
        `dense_layers` are dense, then every `layer_freq`-th layer is MoE (Megatron-LM `--moe-layer-freq`)."""
        moe = self.moe
        if moe is None or index < moe.dense_layers or (index - moe.dense_layers) % moe.layer_freq:
            return LayerKind.DENSE
        return LayerKind.MOE

    @property
    def layer_kinds(self) -> tuple[LayerKind, ...]:
        return tuple(self.layer_kind(i) for i in range(self.layers))

    @property
    def mtp_kind(self) -> LayerKind:
        """The layer kind of a multi-token-prediction module: that of the model's last layer (Megatron-LM)."""
        return self.layer_kind(self.layers - 1)

    @property
    def gated_mlp(self) -> bool:
        """SwiGLU has three MLP matrices (gate, up, down) instead of two."""
        return self.activation is Activation.SWIGLU

    @classmethod
    def from_entry(cls, name: str, e: ModelEntry) -> "ModelSpec":
        """Fill defaults: kv_heads = heads, ffn 4h, style from the activation (see models.yaml)."""
        layers, hidden, heads, vocab, seq_len = e.layers, e.hidden, e.heads, e.vocab, e.seq_len
        if layers is None or hidden is None or heads is None or vocab is None or seq_len is None:
            raise ValueError(f"missing {', '.join(f for f in REQUIRED_FIELDS if getattr(e, f) is None)}")
        activation = e.activation or Activation.GELU
        llama_style = activation is Activation.SWIGLU
        return cls(
            name=name,
            layers=layers,
            hidden=hidden,
            heads=heads,
            kv_heads=e.kv_heads or heads,
            ffn_hidden=e.ffn_hidden or 4 * hidden,
            vocab=vocab,
            seq_len=seq_len,
            activation=activation,
            norm=e.norm or (Norm.RMSNORM if llama_style else Norm.LAYERNORM),
            bias=(not llama_style) if e.bias is None else e.bias,
            position=e.position or (Position.ROPE if llama_style else Position.LEARNED),
            tied_embeddings=(not llama_style) if e.tied_embeddings is None else e.tied_embeddings,
            dropout=(not llama_style) if e.dropout is None else e.dropout,
            head_dim=e.head_dim or hidden // heads,
            moe=MoeSpec.from_entry(e.moe) if e.moe is not None else None,
            mla=MlaSpec.from_entry(e.mla) if e.mla is not None else None,
            mtp_layers=e.mtp_layers or 0,
        )


def model_catalogue(extra: Mapping[str, ModelEntry] | None = None) -> dict[str, ModelEntry]:
    """Every bundled model preset, as (partial-able) entries, plus `extra` entries (user files or inline
    definitions). An extra entry named like a bundled preset overlays it: the fields it gives replace
    the preset's, the others stay the preset's (a variant of a preset needs only what differs)."""
    entries = {name: ModelEntry.model_validate(raw) for name, raw in bundled("models").items()}
    for name, entry in (extra or {}).items():
        entries[name] = entries[name].overlay(entry) if name in entries else entry
    return entries
