"""Parameter counts: whole model, per layer, and what one rank holds under TP/PP.

For GPT-style models (LayerNorm, biases, learned positions, tied embeddings) the total is
Narayanan et al. 2021 eq. 2, P = 12*l*h^2 * (1 + 13/(12h) + (V+s)/(12*l*h)), plus the final
LayerNorm (2h); the same pieces generalise to GQA (kv_heads < heads), SwiGLU (three MLP
matrices), RMSNorm, no biases and untied embeddings.
"""

from dataclasses import dataclass

from simulator.catalog.models import ModelSpec
from simulator.enums import Norm, Position


@dataclass(frozen=True)
class LayerParams:
    """One transformer layer's parameters, split by how tensor parallelism treats them."""

    sharded: int  # split over TP ranks: QKV/proj/MLP weights and column-parallel biases
    replicated: int  # copied on every TP rank: row-parallel biases and norms

    @property
    def total(self) -> int:
        return self.sharded + self.replicated

    def per_rank(self, tp: int) -> float:
        return self.sharded / tp + self.replicated


def norm_params(model: ModelSpec) -> int:
    """One norm: LayerNorm has gain and bias, RMSNorm gain only."""
    return 2 * model.hidden if model.norm is Norm.LAYERNORM else model.hidden


def layer_params(model: ModelSpec) -> LayerParams:
    h, f, kv = model.hidden, model.ffn_hidden, model.kv_dim
    mlp_in = 2 * f if model.gated_mlp else f  # gate and up projections for SwiGLU
    weights = h * (h + 2 * kv) + h * h + h * mlp_in + f * h
    col_bias = (h + 2 * kv) + mlp_in if model.bias else 0
    row_bias = 2 * h if model.bias else 0
    return LayerParams(sharded=weights + col_bias, replicated=row_bias + 2 * norm_params(model))


def embedding_params(model: ModelSpec) -> int:
    """Token embedding (vocab-parallel under TP) plus learned positions when the model has them."""
    return model.vocab * model.hidden + position_params(model)


def position_params(model: ModelSpec) -> int:
    return model.seq_len * model.hidden if model.position is Position.LEARNED else 0


def head_params(model: ModelSpec) -> int:
    """Final norm plus the LM head matrix when it is not tied to the embedding."""
    untied = 0 if model.tied_embeddings else model.vocab * model.hidden
    return norm_params(model) + untied


def total_params(model: ModelSpec) -> int:
    return model.layers * layer_params(model).total + embedding_params(model) + head_params(model)
