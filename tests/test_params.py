"""Parameter counts of catalogue models against papers and released checkpoints."""

from typing import Any

import pytest

from simulator.catalog.hardware import gpu_catalogue
from simulator.catalog.models import ModelEntry, ModelSpec, model_catalogue
from simulator.workload.params import total_params

CONTRACT_MODELS = (
    "gpt3-125m",
    "gpt3-350m",
    "gpt3-760m",
    "gpt3-1.3b",
    "gpt3-2.7b",
    "gpt3-6.7b",
    "gpt3-13b",
    "gpt3-175b",
    "llama2-7b",
    "llama2-70b",
    "llama3-8b",
    "llama3-70b",
    "llama3-405b",
    "bloom-176b",
    "opt-175b",
)
CONTRACT_GPUS = ("v100-sxm-32gb", "a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "b200", "mi300x")

# Narayanan et al. 2021 (Megatron-LM, SC'21), Table 1: the name is the published size in billions.
MEGATRON_TABLE1 = {
    "megatron-1.7b": 1.7e9,
    "megatron-3.6b": 3.6e9,
    "megatron-7.5b": 7.5e9,
    "megatron-18.4b": 18.4e9,
    "megatron-39.1b": 39.1e9,
    "megatron-76.1b": 76.1e9,
    "megatron-145.6b": 145.6e9,
    "megatron-310.1b": 310.1e9,
    "megatron-529.6b": 529.6e9,
    "megatron-1008b": 1008e9,
}

# Brown et al. 2020, Table 2.1 (sizes as rounded in the model names).
GPT3_SIZES = {
    "gpt3-125m": 125e6,
    "gpt3-350m": 350e6,
    "gpt3-760m": 760e6,
    "gpt3-1.3b": 1.3e9,
    "gpt3-2.7b": 2.7e9,
    "gpt3-6.7b": 6.7e9,
    "gpt3-13b": 13e9,
    "gpt3-175b": 175e9,
}

# Parameter counts of the released checkpoints (sum of tensor sizes of the Hugging Face
# safetensors / model cards), or the paper where no exact count is published.
RELEASED = {
    "llama2-7b": 6_738_415_616,  # meta-llama/Llama-2-7b-hf (Touvron et al. 2023, "7B")
    "llama2-13b": 13_015_864_320,  # meta-llama/Llama-2-13b-hf
    "llama2-70b": 68_976_648_192,  # meta-llama/Llama-2-70b-hf
    "llama3-8b": 8_030_261_248,  # meta-llama/Meta-Llama-3-8B
    "llama3-70b": 70_553_706_496,  # meta-llama/Meta-Llama-3-70B
    "llama3-405b": 405_853_388_800,  # meta-llama/Llama-3.1-405B (Llama Team 2024, Table 3: 405B)
    "bloom-176b": 176_247_271_424,  # bigscience/bloom model card (BigScience 2022, arXiv 2211.05100)
    "opt-175b": 175e9,  # Zhang et al. 2022, Table 1 (the paper's rounded size)
}


def spec(name: str, **overrides: Any) -> ModelSpec:
    """A catalogue model with optional shape overrides."""
    entry = model_catalogue()[name].overlay(ModelEntry(**overrides))
    return ModelSpec.from_entry(name, entry)


def rel_err(got: float, want: float) -> float:
    return abs(got - want) / want


def narayanan_eq2(layers: int, hidden: int, vocab: int, seq: int) -> float:
    """Narayanan et al. 2021 eq. 2: P = 12*l*h^2 * (1 + 13/(12h) + (V+s)/(12*l*h))."""
    h = hidden
    return 12 * layers * h**2 * (1 + 13 / (12 * h) + (vocab + seq) / (12 * layers * h))


def test_gpt3_175b_matches_narayanan_eq2() -> None:
    m = spec("gpt3-175b", vocab=51200)
    want = narayanan_eq2(m.layers, m.hidden, m.vocab, m.seq_len)
    got = total_params(m)
    assert rel_err(got, want) < 1e-4
    # The only difference is the final LayerNorm (gain and bias), which eq. 2 leaves out.
    assert got - want == pytest.approx(2 * m.hidden, abs=1.0)


def test_eq2_holds_for_explicit_shapes_via_setup() -> None:
    """The same count for a model built through the scenario pipeline (preset + overrides)."""
    from simulator.scenario import setup_from_mapping

    setup = setup_from_mapping(
        {
            "name": "p",
            "model": {"preset": "megatron-39.1b"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
            "training": {"global_batch": 8},
        }
    )
    m = setup.model
    assert total_params(m) == pytest.approx(narayanan_eq2(m.layers, m.hidden, m.vocab, m.seq_len) + 2 * m.hidden)


@pytest.mark.parametrize(("name", "size"), sorted(MEGATRON_TABLE1.items()))
def test_megatron_table1_sizes(name: str, size: float) -> None:
    assert rel_err(total_params(spec(name)), size) < 0.03


@pytest.mark.parametrize(("name", "size"), sorted(GPT3_SIZES.items()))
def test_gpt3_family_sizes(name: str, size: float) -> None:
    assert rel_err(total_params(spec(name)), size) < 0.03


@pytest.mark.parametrize(("name", "count"), sorted(RELEASED.items()))
def test_released_checkpoint_sizes(name: str, count: float) -> None:
    assert rel_err(total_params(spec(name)), count) < 0.01


def test_llama_counts_are_exact() -> None:
    """Llama has no biases and RMSNorm: the count is exactly the checkpoint's, not just within 1 %."""
    for name in ("llama2-7b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3-405b"):
        assert total_params(spec(name)) == RELEASED[name], name


def test_gqa_shrinks_only_the_kv_projections() -> None:
    full, gqa = spec("llama2-70b", kv_heads=64), spec("llama2-70b")
    kv_saved = 2 * gqa.hidden * (full.kv_dim - gqa.kv_dim) * gqa.layers
    assert total_params(full) - total_params(gqa) == kv_saved


@pytest.mark.parametrize("name", CONTRACT_MODELS)
def test_contract_model_in_catalogue(name: str) -> None:
    assert name in model_catalogue()
    assert total_params(spec(name)) > 0


@pytest.mark.parametrize("name", CONTRACT_GPUS)
def test_contract_gpu_in_catalogue(name: str) -> None:
    gpus = gpu_catalogue()
    assert name in gpus
    assert gpus[name].hbm_bytes > 1e10
