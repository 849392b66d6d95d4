"""Parameter counts, placement and data-parallel collectives of mixture-of-experts models (MoE, MLA,
MTP; docs/contract.md section 1b) against published sizes."""

from typing import Any

import pytest
from conftest import DEEPSEEK_V3

from simulator.catalog.models import ModelEntry, ModelSpec
from simulator.enums import Collective, CommGroup, LayerKind
from simulator.scenario import Setup, setup_from_mapping
from simulator.workload.dp_comm import (
    gradient_reduction,
    gradient_reductions,
    weight_gather,
    weight_gathers,
    zero3_layer_comm,
    zero3_layer_comms,
)
from simulator.workload.params import (
    active_params,
    attention_params,
    layer_params,
    mtp_module_params,
    mtp_params,
    total_params,
)
from simulator.workload.partition import layers_per_chunk
from simulator.workload.placement import (
    chunk_layer_kinds,
    chunk_params_on_rank,
    chunk_rank_params,
    layer_rank_params,
    stage_params_on_rank,
    stage_rank_params,
)

# Shapes from the Hugging Face config.json of each release (DeepSeek-V3: conftest.py).
QWEN3_235B: dict[str, Any] = {  # Qwen/Qwen3-235B-A22B: head_dim 128 with hidden 4096 and 64 heads
    "layers": 94,
    "hidden": 4096,
    "heads": 64,
    "kv_heads": 4,
    "head_dim": 128,
    "ffn_hidden": 12288,
    "vocab": 151936,
    "seq_len": 4096,
    "activation": "swiglu",
    "moe": {"experts": 128, "top_k": 8, "expert_ffn_hidden": 1536},
}
MIXTRAL_8X7B: dict[str, Any] = {  # mistralai/Mixtral-8x7B-v0.1 (Jiang et al. 2024, arXiv 2401.04088)
    "layers": 32,
    "hidden": 4096,
    "heads": 32,
    "kv_heads": 8,
    "ffn_hidden": 14336,
    "vocab": 32000,
    "seq_len": 4096,
    "activation": "swiglu",
    "moe": {"experts": 8, "top_k": 2, "expert_ffn_hidden": 14336},
}
MIXTRAL_8X22B: dict[str, Any] = {  # mistralai/Mixtral-8x22B-v0.1
    "layers": 56,
    "hidden": 6144,
    "heads": 48,
    "kv_heads": 8,
    "ffn_hidden": 16384,
    "vocab": 32768,
    "seq_len": 4096,
    "activation": "swiglu",
    "moe": {"experts": 8, "top_k": 2, "expert_ffn_hidden": 16384},
}


def spec(fields: dict[str, Any], **overrides: Any) -> ModelSpec:
    return ModelSpec.from_entry("m", ModelEntry(**{**fields, **overrides}))


def rel_err(got: float, want: float) -> float:
    return abs(got - want) / want


# Published sizes. Our convention: total = every trained parameter, embedding and (untied) LM head
# included, MTP modules sharing the main model's embedding and head; active = what one token passes
# through, embedding and LM head included.
#   DeepSeek-V3: 671B main model, 37B activated (arXiv 2412.19437 abstract); the Hugging Face card's
#     685B adds 14B of MTP module, which stores its own copy of the embedding and head (2 x 0.93B):
#     our 682.6B shares them (Megatron-Core), 685B - 1.85B = 683B.
#   Qwen3-235B-A22B: 235B total, 22B activated (Qwen3 technical report, arXiv 2505.09388, Table 2).
#   Mixtral 8x7B: 46.7B total, 12.9B active; 8x22B: 141B, 39B (Mistral AI release notes).
PUBLISHED = {
    "deepseek-v3": (DEEPSEEK_V3, 671e9, 37e9),
    "qwen3-235b-a22b": (QWEN3_235B, 235e9, 22e9),
    "mixtral-8x7b": (MIXTRAL_8X7B, 46.7e9, 12.9e9),
    "mixtral-8x22b": (MIXTRAL_8X22B, 141e9, 39e9),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_total_and_active(name: str) -> None:
    fields, total, active = PUBLISHED[name]
    m = spec(fields)
    assert rel_err(total_params(m, mtp=False), total) < 0.005
    assert rel_err(active_params(m, mtp=False), active) < 0.02  # DeepSeek-V3: 37.55B against "37B"


def test_deepseek_v3_mtp_module() -> None:
    m = spec(DEEPSEEK_V3)
    module = mtp_module_params(m)
    # two norms, the 2h -> h projection, one MoE layer (the last layer's kind), the final norm
    assert module.total == 3 * m.hidden + 2 * m.hidden**2 + layer_params(m, LayerKind.MOE).total
    assert mtp_params(m) == module.total and rel_err(mtp_params(m), 11.6e9) < 0.01
    with_copies = total_params(m) + 2 * m.vocab * m.hidden  # the HF checkpoint's own embedding and head
    assert rel_err(with_copies, 685e9) < 0.002


def test_mla_layer_pieces() -> None:
    m = spec(DEEPSEEK_V3)
    h, a = m.hidden, m.heads
    att = attention_params(m)
    q = h * 1536 + 1536 + 1536 * a * 192  # q_down, q norm, q_up
    kv = h * (512 + 64) + 512 + 512 * a * (128 + 128)  # kv_down, kv norm, kv_up
    assert att.total == q + kv + a * 128 * h
    # the down-projections and latent norms are whole on every TP rank (Megatron-Core `linear`)
    assert att.replicated == h * 1536 + 1536 + h * 576 + 512
    no_lora = attention_params(spec(DEEPSEEK_V3, mla={**DEEPSEEK_V3["mla"], "q_lora_rank": 0}))
    assert no_lora.total == h * a * 192 + kv + a * 128 * h


def test_moe_layer_split() -> None:
    m = spec(DEEPSEEK_V3)
    h = m.hidden
    moe = layer_params(m, LayerKind.MOE)
    expert_mlp = 3 * h * 2048
    assert moe.expert == 256 * expert_mlp
    assert moe.replicated == h * 256 + 2 * h + 512 + 1536 + h * 1536 + h * 576  # router, norms, MLA down
    dense = layer_params(m, LayerKind.DENSE)
    assert dense.expert == 0 and dense.total - attention_params(m).total - 2 * h == 3 * h * 18432
    with pytest.raises(ValueError, match="mixes dense and MoE"):
        layer_params(m)
    assert layer_params(spec(MIXTRAL_8X7B)) == layer_params(spec(MIXTRAL_8X7B), LayerKind.MOE)


def test_head_dim_apart_from_hidden() -> None:
    """Qwen3: the query is heads*head_dim = 8192 wide with h = 4096; Q and output projection use it."""
    m = spec(QWEN3_235B)
    h = m.hidden
    assert attention_params(m).total == h * (8192 + 2 * 4 * 128) + 8192 * h
    assert attention_params(spec(QWEN3_235B, head_dim=64)).total == h * (h + 2 * 4 * 64) + h * h


def test_active_of_dense_model_is_total() -> None:
    m = spec({k: v for k, v in MIXTRAL_8X7B.items() if k != "moe"})
    assert active_params(m) == total_params(m)


# --- placement: DeepSeek-V3 on 256 GPUs, TP1 PP4 VPP4 EP64 (Megatron-Core MoE report, Table 3) ---


def deepseek_setup(**parallelism: Any) -> Setup:
    return setup_from_mapping(
        {
            "name": "dsv3",
            "model": DEEPSEEK_V3,
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 256},
            "parallelism": {"tp": 1, "pp": 4, "schedule": "interleaved", "virtual_stages": 4, "ep": 64, "zero": 1}
            | parallelism,
            "training": {"global_batch": 1024, "micro_batch": 1, "flash_attention": True},
        }
    )


def test_layers_follow_their_global_index() -> None:
    s = deepseek_setup()
    counts = layers_per_chunk(61, 16)
    assert chunk_layer_kinds(s, 0) == [LayerKind.DENSE] * 3  # the first chunk holds the 3 dense layers
    assert chunk_layer_kinds(s, 1) == [LayerKind.MOE] * counts[1]
    assert sum(len(chunk_layer_kinds(s, c)) for c in range(16)) == 61


def test_deepseek_v3_stage_params() -> None:
    s = deepseek_setup()
    m = s.model
    moe = layer_rank_params(s, LayerKind.MOE)
    assert moe.expert == layer_params(m, LayerKind.MOE).expert / 64  # 4 of the 256 experts
    assert moe.dense == layer_params(m, LayerKind.MOE).dense  # tp 1
    stage1 = stage_rank_params(s, 1)  # chunks 1, 5, 9, 13: 16 MoE layers, no embedding or head
    assert stage1.dense == pytest.approx(16 * moe.dense) and stage1.expert == pytest.approx(16 * moe.expert)
    last = chunk_rank_params(s, 15)  # 3 MoE layers, the head, the MTP module and an embedding copy
    mtp = mtp_module_params(m)
    want_dense = 3 * moe.dense + m.hidden + 2 * m.vocab * m.hidden + mtp.dense
    assert last.dense == pytest.approx(want_dense) and last.expert == pytest.approx(4 * moe.expert)
    counts = layers_per_chunk(61, 16)
    assert stage_params_on_rank(s, 3, counts) == pytest.approx(stage_rank_params(s, 3).total)
    assert chunk_params_on_rank(s, 15, counts[15]) == last.total


def test_etp_splits_experts_not_tp() -> None:
    s = deepseek_setup(tp=2, ep=32, etp=1, sequence_parallel=True)  # tp 2 x dp 32 per stage
    m = s.model
    moe = layer_rank_params(s, LayerKind.MOE)
    p = layer_params(m, LayerKind.MOE)
    assert moe.expert == p.expert / 32 and moe.dense == p.sharded / 2 + p.replicated
    assert s.plan.expert_dp == 2 * 32 // 32  # tp*cp*dp / (ep*etp)


# --- data-parallel collectives ---


def test_dense_model_keeps_single_dp_ops() -> None:
    s = setup_from_mapping(
        {
            "name": "d",
            "model": {"preset": "gpt3-1.3b"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 16},
            "parallelism": {"tp": 2, "zero": 1},
            "training": {"global_batch": 64},
        }
    )
    assert gradient_reductions(s, 1e9) == [gradient_reduction(s, 1e9)]
    assert weight_gathers(s, 1e9) == [weight_gather(s, 1e9)]
    z3 = setup_from_mapping(
        {
            "name": "d",
            "model": {"preset": "gpt3-1.3b"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 16},
            "parallelism": {"zero": 3},
            "training": {"global_batch": 64},
        }
    )
    fwd, bwd = zero3_layer_comm(z3)
    assert (fwd, bwd) == zero3_layer_comms(z3, LayerKind.DENSE)
    assert [op.name for op in fwd + bwd] == [
        "zero3_param_gather",
        "zero3_param_gather_bwd",
        "zero3_grad_reduce_scatter",
    ]


def test_expert_gradients_over_expert_dp() -> None:
    s = deepseek_setup(ep=16, zero=1)  # expert-DP = 64 / 16 = 4
    assert s.plan.expert_dp == 4
    ops = gradient_reductions(s, 3e9, 2e9)
    assert [(op.group, op.ranks, op.collective) for op in ops] == [
        (CommGroup.DP, 64, Collective.REDUCE_SCATTER),
        (CommGroup.EDP, 4, Collective.REDUCE_SCATTER),
    ]
    assert ops[1].bytes == 2e9 * 2
    gathers = weight_gathers(s, 3e9, 2e9)
    assert [(op.group, op.ranks) for op in gathers] == [(CommGroup.DP, 64), (CommGroup.EDP, 4)]
    # EP 64 on 64 DP ranks: every expert lives on one rank, nothing to reduce
    assert [op.group for op in gradient_reductions(deepseek_setup(), 3e9, 2e9)] == [CommGroup.DP]
    assert [op.collective for op in gradient_reductions(deepseek_setup(ep=16, zero=0), 3e9, 2e9)] == [
        Collective.ALL_REDUCE
    ] * 2


def test_zero3_moe_layer_gathers_each_part_over_its_group() -> None:
    s = deepseek_setup(ep=16, zero=3)
    moe = layer_rank_params(s, LayerKind.MOE)
    fwd, bwd = zero3_layer_comms(s, LayerKind.MOE)
    assert [(op.group, op.ranks, op.bytes) for op in fwd] == [
        (CommGroup.DP, 64, 2 * moe.dense),
        (CommGroup.EDP, 4, 2 * moe.expert),
    ]
    assert [(op.group, op.collective) for op in bwd] == [
        (CommGroup.DP, Collective.ALL_GATHER),
        (CommGroup.EDP, Collective.ALL_GATHER),
        (CommGroup.DP, Collective.REDUCE_SCATTER),
        (CommGroup.EDP, Collective.REDUCE_SCATTER),
    ]
    dense_fwd, _ = zero3_layer_comms(s, LayerKind.DENSE)
    assert [op.group for op in dense_fwd] == [CommGroup.DP]
    with pytest.raises(ValueError, match="mixes dense and MoE"):
        zero3_layer_comm(s)
