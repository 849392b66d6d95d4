"""Model architectures: catalogue entries and scenario overrides -> a frozen ModelSpec."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict

from simulator.bounds import (
    MAX_FFN_HIDDEN,
    MAX_HEADS,
    MAX_HIDDEN,
    MAX_LAYERS,
    MAX_SEQ_LEN,
    MAX_VOCAB,
    WholeNumber,
    within,
)
from simulator.catalog.loader import bundled
from simulator.enums import Activation, Norm, Position


class ModelEntry(BaseModel):
    """One model as written in a catalogue file; every field optional so it can overlay a preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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

    def overlay(self, other: "ModelEntry") -> "ModelEntry":
        """`other`'s explicit fields on top of this entry's."""
        return self.model_copy(update=other.model_dump(exclude_none=True))


REQUIRED_FIELDS = ("layers", "hidden", "heads", "vocab", "seq_len")


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

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of the K (or V) projection: kv_heads * head_dim (GQA/MQA when kv_heads < heads)."""
        return self.kv_heads * self.head_dim

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
        )


def model_catalogue(extra: Mapping[str, ModelEntry] | None = None) -> dict[str, ModelEntry]:
    """Every bundled model preset, as (partial-able) entries, plus `extra` entries (user files or inline
    definitions). An extra entry named like a bundled preset overlays it: the fields it gives replace
    the preset's, the others stay the preset's (a variant of a preset needs only what differs)."""
    entries = {name: ModelEntry.model_validate(raw) for name, raw in bundled("models").items()}
    for name, entry in (extra or {}).items():
        entries[name] = entries[name].overlay(entry) if name in entries else entry
    return entries
