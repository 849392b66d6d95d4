"""Closed-form tests of the memory model against ZeRO (2020) and Korthikanti et al. (2022)."""

from typing import Any

import pytest

from simulator.catalog.models import ModelEntry, ModelSpec, model_catalogue
from simulator.enums import MemoryKind, Precision, Recompute, Schedule
from simulator.memory import (
    activation_bytes_per_stage,
    in_flight_micro_batches,
    layer_terms,
    memory_budget,
    model_state_bytes,
    stage_activation_bytes,
    stored_layer_bytes,
)
from simulator.memory.activations import attention_terms, mlp_terms
from simulator.scenario import Setup, setup_from_mapping
from simulator.workload.params import layer_params
from simulator.workload.partition import layers_per_chunk
from simulator.workload.placement import stage_params_on_rank


def model(name: str, **overrides: Any) -> ModelSpec:
    entry = model_catalogue()[name].overlay(ModelEntry(**overrides))
    return ModelSpec.from_entry(name, entry)


def setup(gpus: int, parallelism: dict[str, Any], training: dict[str, Any] | None = None) -> Setup:
    """GPT-3 175B on `gpus` A100 80GB, global batch 1536 (Brown et al. 2020)."""
    return setup_from_mapping(
        {
            "name": "t",
            "model": {"preset": "gpt3-175b"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": gpus},
            "parallelism": parallelism,
            "training": {"global_batch": 1536, "micro_batch": 1, **(training or {})},
        }
    )


# --- ZeRO: Rajbhandari et al. 2020 sec. 3.1 / Fig. 1 ---

PSI, N = 7.5e9, 64


@pytest.mark.parametrize(
    ("zero", "expected"),
    [(0, 16 * PSI), (1, 4 * PSI + 12 * PSI / N), (2, 2 * PSI + 14 * PSI / N), (3, 16 * PSI / N)],
)
def test_zero_stage_totals(zero: int, expected: float) -> None:
    assert model_state_bytes(PSI, Precision.BF16, zero, N).total_bytes == expected


def test_zero_fp32_is_4_4_8() -> None:
    s = model_state_bytes(PSI, Precision.FP32, 0, N)
    assert (s.weights_bytes, s.gradients_bytes, s.optimizer_bytes) == (4 * PSI, 4 * PSI, 8 * PSI)


# --- Activations: Korthikanti et al. 2022 Table 2, GPT-3 175B shapes ---

S, B, H, A, T = 2048, 1, 12288, 96, 8
SBH = S * B * H
GPT3 = model("gpt3-175b")

TABLE2 = {
    "no parallelism": (1, False, Recompute.NONE, SBH * (34 + 5 * A * S / H)),
    "TP": (T, False, Recompute.NONE, SBH * (10 + 24 / T + 5 * A * S / (H * T))),
    "TP+SP": (T, True, Recompute.NONE, SBH * (34 / T + 5 * A * S / (H * T))),
    "TP+selective": (T, False, Recompute.SELECTIVE, SBH * (10 + 24 / T)),
    "TP+SP+selective": (T, True, Recompute.SELECTIVE, SBH * 34 / T),
    "full": (T, False, Recompute.FULL, 2 * SBH),
    "full+SP": (T, True, Recompute.FULL, 2 * SBH / T),
}


@pytest.mark.parametrize("case", TABLE2)
def test_korthikanti_table2(case: str) -> None:
    t, sp, recompute, expected = TABLE2[case]
    assert stored_layer_bytes(layer_terms(GPT3, S, B), t, sp, recompute, flash=False) == expected


def test_generalisation_reduces_to_34_24_5() -> None:
    terms = layer_terms(GPT3, S, B)
    assert (terms.replicated, terms.sharded, terms.scores) == (10 * SBH, 24 * SBH, 5 * A * S * S * B)
    assert attention_terms(GPT3, S, B) == (3 * SBH, 8 * SBH, 5 * A * S * S * B)  # 11sbh + 5as^2b
    assert sum(mlp_terms(GPT3, S, B)) == 19 * SBH


def test_fp8_keeps_linear_inputs_as_fp8() -> None:
    """Transformer Engine saves the FP8 copy of each linear layer's input for its wgrad: QKV and MLP
    inputs (2sbh each) and projection and FC2 inputs (2sbh, 2sbf = 8sbh) at half the bytes."""
    fp8 = layer_terms(GPT3, S, B, elem=2, gemm_elem=1)
    assert (fp8.replicated, fp8.sharded) == (8 * SBH, 19 * SBH)
    assert fp8.scores == layer_terms(GPT3, S, B).scores  # attention stays in bf16
    assert layer_terms(GPT3, S, B, elem=2, gemm_elem=2) == layer_terms(GPT3, S, B)


def test_gqa_swiglu_shrinks_kv_terms() -> None:
    llama = model("llama2-70b")  # h 8192, 64 heads, 8 kv heads, ffn 28672, SwiGLU
    s, h, f = llama.seq_len, llama.hidden, llama.ffn_hidden
    sbh = s * h
    rep, shard, scores = attention_terms(llama, s, 1)
    assert shard == (2 + 2 + 2 * 2 * 8 / 64) * sbh  # Q + projection input + K, V at kv_heads/heads
    assert shard < 8 * sbh  # the GPT formula's Q, K, V, projection input
    # Llama trains without dropout: no 1-byte masks, no dropped softmax copy
    assert (rep, scores) == (2 * sbh, 2 * 64 * s * s)
    assert mlp_terms(llama, s, 1) == (2 * sbh, 3 * 2 * s * f)  # gate, up, product
    with_dropout = model("llama2-70b", dropout=True)
    assert attention_terms(with_dropout, s, 1)[0::2] == (3 * sbh, 5 * 64 * s * s)
    assert mlp_terms(with_dropout, s, 1)[0] == 3 * sbh
    mha = model("llama2-70b", kv_heads=64, ffn_hidden=4 * 8192, activation="gelu")
    assert layer_terms(mha, s, 1).sharded == 24 * sbh  # back to the paper with GPT shapes


def test_flash_attention_drops_scores_keeps_stats() -> None:
    terms = layer_terms(GPT3, S, B)
    flash = stored_layer_bytes(terms, T, True, Recompute.NONE, flash=True)
    assert flash == SBH * 34 / T + 4 * B * A * S / T


def test_fp32_activations_double() -> None:
    assert layer_terms(GPT3, S, B, elem=4).sharded == 2 * layer_terms(GPT3, S, B).sharded


# --- Pipeline in-flight micro-batches ---


def test_1f1b_in_flight_per_stage() -> None:
    assert [in_flight_micro_batches(Schedule.ONE_F_ONE_B, st, 4, 8, 1) for st in range(4)] == [4, 3, 2, 1]
    assert [in_flight_micro_batches(Schedule.ONE_F_ONE_B, st, 4, 2, 1) for st in range(4)] == [2, 2, 2, 1]
    assert in_flight_micro_batches(Schedule.GPIPE, 3, 4, 8, 1) == 8


@pytest.mark.parametrize(("pp", "v"), [(4, 2), (8, 2), (8, 3), (16, 4)])
def test_interleaved_factor(pp: int, v: int) -> None:
    got = in_flight_micro_batches(Schedule.INTERLEAVED, 0, pp, 64, v)
    assert got == pytest.approx(pp * (1 + (pp - 1) / (pp * v)), rel=1e-12)


def test_interleaved_stage0_activations() -> None:
    base = {"tp": 8, "pp": 8}
    plain = setup(1024, base)
    inter = setup(1024, {**base, "schedule": "interleaved", "virtual_stages": 2})
    ratio = stage_activation_bytes(inter, 0) / stage_activation_bytes(plain, 0)
    assert ratio == pytest.approx(1 + 7 / (8 * 2), rel=1e-12)


def test_1f1b_first_stage_holds_most() -> None:
    per_stage = activation_bytes_per_stage(setup(1024, {"tp": 8, "pp": 8, "recompute": "full"}))
    assert per_stage == sorted(per_stage, reverse=True)


# --- Whole budgets ---


def test_gpt3_on_one_gpu_does_not_fit() -> None:
    r = memory_budget(setup(1, {"tp": 1, "pp": 1}))
    assert not r.fits and r.stage == 0
    assert tuple(r.per_gpu_bytes) == tuple(MemoryKind)
    assert r.peak_bytes == sum(r.per_gpu_bytes.values()) > 16 * 174e9
    assert r.reason is not None and r.reason.startswith("needs ")
    assert "on stage 0, the a100-sxm-80gb has 80.0 GB (weights " in r.reason


def test_gpt3_tp8_pp8_dp16_full_recompute_fits() -> None:
    s = setup(1024, {"tp": 8, "pp": 8, "zero": 0, "recompute": "full"})
    r = memory_budget(s)
    assert r.fits and r.reason is None and r.stage == 0
    assert r.capacity_bytes == 80e9
    psi = stage_params_on_rank(s, 0, layers_per_chunk(96, 8))
    assert r.per_gpu_bytes["weights"] == 2 * psi
    assert r.per_gpu_bytes["optimizer"] == 12 * psi
    assert r.as_json()["fits"] is True


def test_gpt3_zero3_384_gpus_fits() -> None:
    s = setup(384, {"tp": 1, "pp": 1, "zero": 3, "recompute": "full"}, {"micro_batch": 4})
    r = memory_budget(s)
    assert r.fits
    psi = stage_params_on_rank(s, 0, [96])
    assert r.per_gpu_bytes["weights"] + r.per_gpu_bytes["gradients"] + r.per_gpu_bytes["optimizer"] == (
        pytest.approx(16 * psi / 384, rel=1e-12)
    )
    gathered = 2 * layer_params(s.model).total * 2  # two unsharded layers, bf16
    assert r.per_gpu_bytes["other"] > gathered
