"""`model.hf_config`: a Hugging Face `config.json` read into the scenario's model keys.

`fold_hf_config` runs where a scenario is loaded (load.py), after `--set` and beside the catalogue
files: it reads the file (relative to the scenario file), maps its fields to model keys, lays the
scenario's own `model:` keys over them (explicit keys win, `moe` and `mla` key by key) and drops
`hf_config`, so that the mapping passed on stands alone (a search worker does not have the file).

The mapping (transformers' field names; Llama, Mistral, Mixtral, Qwen2/3 and their MoE variants,
DeepSeek-V2/V3, Kimi K2, Llama 4 and Grok-1 ports name their fields this way):

    num_hidden_layers -> layers            hidden_size -> hidden          num_attention_heads -> heads
    num_key_value_heads -> kv_heads        vocab_size -> vocab            head_dim -> head_dim
    intermediate_size -> ffn_hidden        (Llama 4: intermediate_size_mlp)
    hidden_act: silu/swish -> swiglu, gelu* -> gelu, relu -> relu (absent, as in Grok-1's port:
      model.activation is the scenario's, default gelu; give `activation: swiglu` for a gated MLP)
    tie_word_embeddings -> tied_embeddings num_nextn_predict_layers -> mtp_layers
    seq_len: the scenario's model.seq_len when given (a training choice), else max_position_embeddings
    MoE, when num_experts / n_routed_experts / num_local_experts is above 0:
      num_experts_per_tok -> moe.top_k     moe_intermediate_size -> moe.expert_ffn_hidden (Mixtral,
      Grok-1, Llama 4 have none: their experts are intermediate_size wide)
      n_shared_experts -> moe.shared_experts; shared_expert_intermediate_size (Qwen2-MoE, one shared
      MLP) -> 1 shared expert of that width; Llama 4: one shared expert of intermediate_size
      which layers are MoE, as transformers places them (first_k_dense_replace and moe_layer_freq,
      decoder_sparse_step and mlp_only_layers, interleave_moe_layer_step or moe_layers) ->
      moe.dense_layers and moe.layer_freq, when the pattern is one model.moe can hold
    MLA, when kv_lora_rank is given: q_lora_rank (null = 0), kv_lora_rank, qk_nope_head_dim ->
      mla.qk_head_dim, qk_rope_head_dim, v_head_dim (head_dim is not read: transformers writes the
      rotary size there)

A multimodal config (Llama 4) keeps the language model's fields under `text_config`: they are read
from there. A field the mapping needs that the file lacks (and the scenario does not give) is an
input error naming it, as is a file that cannot be read or is not a JSON object.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.bounds import MAX_LAYERS
from simulator.catalog.models import ModelEntry
from simulator.scenario.errors import ConfigError, printable
from simulator.scenario.yaml_input import read_text_bounded

MAX_CONFIG_BYTES = 2**20  # released config.json files are 1-10 kB (quantised ones list modules: ~100 kB)
MAX_PATH_SHOWN = 1024  # characters of the file path echoed in a message
KEY = "model.hf_config"

EXPERT_COUNT_FIELDS = ("num_experts", "n_routed_experts", "num_local_experts")
TOP_K_FIELDS = ("num_experts_per_tok", "num_experts_per_token")
SHARED_COUNT_FIELDS = ("n_shared_experts", "num_shared_experts")
ACTIVATIONS = {
    "silu": "swiglu",
    "swish": "swiglu",
    "gelu": "gelu",
    "gelu_new": "gelu",
    "gelu_fast": "gelu",
    "gelu_python": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "relu": "relu",
}
LLAMA4_TYPES = ("llama4", "llama4_text")  # every Llama 4 MoE layer has one shared expert (no config field)
# Model key -> the config fields it may come from (the first present is named in a message about
# its value); keys derived from several fields are named by what they stand for.
SOURCE: dict[str, tuple[str, ...]] = {
    "layers": ("num_hidden_layers",),
    "hidden": ("hidden_size",),
    "heads": ("num_attention_heads",),
    "kv_heads": ("num_key_value_heads",),
    "vocab": ("vocab_size",),
    "seq_len": ("max_position_embeddings",),
    "head_dim": ("head_dim",),
    "mtp_layers": ("num_nextn_predict_layers",),
    "ffn_hidden": ("intermediate_size_mlp", "intermediate_size"),
    "moe.experts": EXPERT_COUNT_FIELDS,
    "moe.top_k": TOP_K_FIELDS,
    "moe.expert_ffn_hidden": ("moe_intermediate_size", "intermediate_size"),
    "moe.shared_experts": SHARED_COUNT_FIELDS,
    "moe.shared_ffn_hidden": ("shared_expert_intermediate_size",),
    "mla.q_lora_rank": ("q_lora_rank",),
    "mla.kv_lora_rank": ("kv_lora_rank",),
    "mla.qk_head_dim": ("qk_nope_head_dim",),
    "mla.qk_rope_head_dim": ("qk_rope_head_dim",),
    "mla.v_head_dim": ("v_head_dim",),
}


class _Reader:
    """The config's fields, read with their types checked; each problem is collected as one line."""

    def __init__(self, cfg: Mapping[str, Any], label: str) -> None:
        self.cfg, self.label = cfg, label
        self.problems: list[str] = []

    def has(self, field: str) -> bool:
        return self.cfg.get(field) is not None

    def lacks(self, field: str, hint: str = "") -> None:
        self.problems.append(f"{KEY}: {self.label} lacks {field}{hint}")

    def whole(self, field: str, required: bool = False, hint: str = "") -> int | None:
        """A whole-number field (JSON integer, or an integral float); None when absent or null."""
        value = self.cfg.get(field)
        if value is None:
            if required:
                self.lacks(field, hint)
            return None
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{KEY}: {self.label}: {field} must be a whole number, got {_shown(value)}")
            return None
        return value

    def first(self, fields: tuple[str, ...], required: bool = False) -> int | None:
        """The first of several names a field goes by (num_experts / n_routed_experts / ...)."""
        for field in fields:
            if self.has(field):
                return self.whole(field)
        if required:
            self.lacks(fields[0])
        return None


def fold_hf_config(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """`raw` with `model.hf_config` (a path relative to `base`) read into the model keys and removed;
    `raw` itself when the scenario names no config. ConfigError naming `model.hf_config` otherwise."""
    model = raw.get("model")
    if not isinstance(model, dict) or "hf_config" not in model:
        return raw
    name = model["hf_config"]
    rest = {k: v for k, v in model.items() if k != "hf_config"}
    if name is None:  # `hf_config:` left empty: nothing to read
        return {**raw, "model": rest}
    if not isinstance(name, str) or not name.strip():
        raise ConfigError([f"{KEY}: expected the path of a config.json file, got {_shown(name)}"])
    label = printable(name, MAX_PATH_SHOWN)
    cfg = read_hf_config(base / name, label)
    mapped = model_keys(cfg, rest, label)
    return {**raw, "model": overlay(mapped, rest)}


def read_hf_config(path: Path, label: str) -> dict[str, Any]:
    """The JSON object in a config.json; ConfigError naming `model.hf_config` and the file otherwise."""
    text = read_text_bounded(path, f"{KEY}: {label}", MAX_CONFIG_BYTES, "a Hugging Face config.json")
    try:
        cfg = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ConfigError([f"{KEY}: {label}: nested too deeply to be a config.json"]) from None
    except ValueError as exc:  # JSONDecodeError, NaN / Infinity, integers past Python's digit limit
        raise ConfigError([f"{KEY}: {label}: not valid JSON ({printable(str(exc))})"]) from None
    if not isinstance(cfg, dict):
        raise ConfigError([f"{KEY}: {label}: a config.json holds a JSON object, got {type(cfg).__name__}"])
    return cfg


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a model shape can have")


def model_keys(cfg: Mapping[str, Any], explicit: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The model keys a config.json gives (those the scenario's `explicit` model keys set need not be in
    the file). ConfigError with one line per missing or mistyped field."""
    text = cfg.get("text_config")
    if not _has(cfg, "num_hidden_layers") and isinstance(text, dict):
        cfg = text  # a multimodal model (Llama 4): the language model's fields
    r = _Reader(cfg, label)
    out: dict[str, Any] = {}
    for key, field in (("layers", "num_hidden_layers"), ("hidden", "hidden_size"), ("heads", "num_attention_heads")):
        _put(out, key, r.whole(field, required=key not in explicit))
    _put(out, "vocab", r.whole("vocab_size", required="vocab" not in explicit))
    _put(out, "kv_heads", r.whole("num_key_value_heads"))
    if "seq_len" not in explicit:
        hint = " (give model.seq_len: the sequence length trained on)"
        _put(out, "seq_len", r.whole("max_position_embeddings", required=True, hint=hint))
    _read_style(r, out, explicit)
    mla = _read_mla(r)
    if mla is not None:
        out["mla"] = mla
    elif (head_dim := r.whole("head_dim")) is not None:
        out["head_dim"] = head_dim
    _put(out, "mtp_layers", r.whole("num_nextn_predict_layers"))
    has_dense_layer = _read_moe(r, out, explicit, cfg)
    dense_width = r.whole("intermediate_size_mlp") if r.has("intermediate_size_mlp") else r.whole("intermediate_size")
    if has_dense_layer and "ffn_hidden" not in explicit and not r.has("intermediate_size"):
        r.lacks("intermediate_size")
    _put(out, "ffn_hidden", dense_width)
    if r.problems:
        raise ConfigError(list(dict.fromkeys(r.problems)))  # a field read twice is reported once
    _check_ranges(out, cfg, label)
    return out


def _read_style(r: _Reader, out: dict[str, Any], explicit: Mapping[str, Any]) -> None:
    if "activation" not in explicit and r.has("hidden_act"):
        act = r.cfg["hidden_act"]
        if not isinstance(act, str) or act not in ACTIVATIONS:
            r.problems.append(
                f"{KEY}: {r.label}: hidden_act {_shown(act)} is none the simulator models "
                f"({', '.join(sorted(ACTIVATIONS))}); give model.activation"
            )
        else:
            out["activation"] = ACTIVATIONS[act]
    if r.has("tie_word_embeddings"):
        tied = r.cfg["tie_word_embeddings"]
        if not isinstance(tied, bool):
            r.problems.append(f"{KEY}: {r.label}: tie_word_embeddings must be true or false, got {_shown(tied)}")
        else:
            out["tied_embeddings"] = tied


def _read_mla(r: _Reader) -> dict[str, Any] | None:
    """Multi-head latent attention's sizes, when the config has a compressed KV (kv_lora_rank)."""
    if not r.has("kv_lora_rank"):
        return None
    mla = {
        "q_lora_rank": r.whole("q_lora_rank") or 0,  # null: queries not compressed (DeepSeek-V2-Lite)
        "kv_lora_rank": r.whole("kv_lora_rank"),
        "qk_head_dim": r.whole("qk_nope_head_dim", required=True),
        "qk_rope_head_dim": r.whole("qk_rope_head_dim", required=True),
        "v_head_dim": r.whole("v_head_dim", required=True),
    }
    return {k: v for k, v in mla.items() if v is not None}


def _read_moe(r: _Reader, out: dict[str, Any], explicit: Mapping[str, Any], cfg: Mapping[str, Any]) -> bool:
    """The mixture of experts into out["moe"]; whether the model keeps any dense-MLP layer."""
    experts = r.first(EXPERT_COUNT_FIELDS)
    if not experts:  # absent, null or 0 (a dense Qwen2-MoE variant): no experts
        return True
    explicit_moe = explicit.get("moe")
    given: Mapping[str, Any] = explicit_moe if isinstance(explicit_moe, dict) else {}
    moe: dict[str, Any] = {"experts": experts}
    _put(moe, "top_k", r.first(TOP_K_FIELDS, required="top_k" not in given))
    llama4 = cfg.get("model_type") in LLAMA4_TYPES
    if r.has("moe_intermediate_size"):
        moe["expert_ffn_hidden"] = r.whole("moe_intermediate_size")
    elif r.has("intermediate_size"):  # Mixtral, Grok-1, Llama 4: each expert is intermediate_size wide
        moe["expert_ffn_hidden"] = r.whole("intermediate_size")
    elif "expert_ffn_hidden" not in given:
        r.lacks("moe_intermediate_size")
    shared_width = r.whole("shared_expert_intermediate_size")
    shared = r.first(SHARED_COUNT_FIELDS)
    if shared is None and shared_width:  # Qwen2-MoE: one shared MLP of that width
        shared = 1
    if shared is None and llama4:
        shared = 1
    if shared:
        moe["shared_experts"] = shared
        if shared_width:
            moe["shared_ffn_hidden"] = shared_width
    layers = r.whole("num_hidden_layers")
    if layers is None or not 1 <= layers <= MAX_LAYERS:
        out["moe"] = moe  # the layer count itself is reported (missing, or out of range below)
        return True
    moe_layers = _moe_layers(r, layers)
    if moe_layers is None:
        out["moe"] = moe
        return True
    if not moe_layers:
        r.problems.append(f"{KEY}: {r.label}: has {experts} experts but places them in none of its {layers} layers")
        return True
    pattern = _fit_pattern(moe_layers, layers)
    if pattern is None:
        shown = ", ".join(str(i) for i in sorted(moe_layers)[:8]) + (", ..." if len(moe_layers) > 8 else "")
        r.problems.append(
            f"{KEY}: {r.label}: its MoE layers ({shown}) follow no pattern model.moe can hold (the first N "
            "layers dense, then every Nth layer MoE)"
        )
        return True
    moe["dense_layers"], moe["layer_freq"] = pattern
    out["moe"] = moe
    return pattern != (0, 1)


def _moe_layers(r: _Reader, layers: int) -> set[int] | None:
    """The indices of the MoE layers, as transformers places them for each family's fields."""
    dense_only = r.cfg.get("mlp_only_layers") or []
    listed = r.cfg.get("moe_layers")
    if not isinstance(dense_only, list) or not all(_is_whole(i) for i in dense_only):
        r.problems.append(f"{KEY}: {r.label}: mlp_only_layers must be a list of layer indices")
        return None
    if listed is not None:  # Llama 4 as newer transformers save it
        if not isinstance(listed, list) or not all(_is_whole(i) for i in listed):
            r.problems.append(f"{KEY}: {r.label}: moe_layers must be a list of layer indices")
            return None
        return {int(i) for i in listed if 0 <= i < layers}
    if r.has("first_k_dense_replace") or r.has("moe_layer_freq"):  # DeepSeek, Kimi K2
        first = r.whole("first_k_dense_replace") or 0
        freq = r.whole("moe_layer_freq") or 1
        if freq < 1:
            r.problems.append(f"{KEY}: {r.label}: moe_layer_freq must be at least 1, got {freq}")
            return None
        moe = {i for i in range(layers) if i >= first and i % freq == 0}
    elif r.has("decoder_sparse_step") or r.has("interleave_moe_layer_step"):  # Qwen2/3-MoE, Llama 4
        field = "decoder_sparse_step" if r.has("decoder_sparse_step") else "interleave_moe_layer_step"
        step = r.whole(field)
        if step is None or step < 1:
            if step is not None:
                r.problems.append(f"{KEY}: {r.label}: {field} must be at least 1, got {step}")
            return None
        moe = {i for i in range(layers) if (i + 1) % step == 0}
    else:  # Mixtral, Grok-1: every layer
        moe = set(range(layers))
    return moe - {int(i) for i in dense_only}


def _fit_pattern(moe_layers: set[int], layers: int) -> tuple[int, int] | None:
    """(dense_layers, layer_freq) that place MoE layers exactly at `moe_layers`, or None."""
    if not moe_layers:
        return None
    ordered = sorted(moe_layers)
    first = ordered[0]
    freq = ordered[1] - first if len(ordered) > 1 else max(1, layers - first)
    return (first, freq) if set(range(first, layers, freq)) == moe_layers else None


def _check_ranges(out: dict[str, Any], cfg: Mapping[str, Any], label: str) -> None:
    """The mapped keys within the model keys' ranges, each problem naming the config field."""
    try:
        ModelEntry.model_validate(out)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
            fields = SOURCE.get(path, ())
            field = next((f for f in fields if _has(cfg, f)), f"its MoE layer pattern (model.{path})")
            msg = err["msg"]
            lines.append(f"{KEY}: {label}: {field}: {msg[:1].lower()}{msg[1:]} (got {_shown(err.get('input'))})")
        raise ConfigError(lines) from None


def overlay(mapped: dict[str, Any], explicit: dict[str, Any]) -> dict[str, Any]:
    """The scenario's model keys over those from the config; `moe` and `mla` merge key by key."""
    out = {**mapped, **explicit}
    for nested in ("moe", "mla"):
        if isinstance(mapped.get(nested), dict) and isinstance(explicit.get(nested), dict):
            out[nested] = {**mapped[nested], **explicit[nested]}
    return out


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        d[key] = value


def _has(cfg: Mapping[str, Any], field: str) -> bool:
    return cfg.get(field) is not None


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return printable(repr(value))
