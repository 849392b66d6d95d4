"""What the tests share: where the bundled scenarios are, and how exactly the books must balance."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.yaml"))  # every bundled scenario, for parametrised tests

# The breakdown's categories sum to the step time up to float round-off: at most 1e-15 of it over
# every bundled scenario (both engines) and the 333 plans of the GPT-3 search space.
BOOKS_REL = 1e-13


def scenario_file(name: str) -> Path:
    """A bundled scenario by its stem, e.g. "gpt3-125m-8xa100"."""
    path = SCENARIO_DIR / f"{name}.yaml"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def small_scenario() -> Path:
    """GPT-3 125M on one DGX A100: simulates in a fraction of a second."""
    return scenario_file("gpt3-125m-8xa100")


@pytest.fixture(scope="session")
def gpt3_scenario() -> Path:
    """GPT-3 175B on 1024 A100 with Megatron-LM's plan."""
    return scenario_file("gpt3-175b-1024xa100")


# Mixture-of-experts shapes shared by the MoE tests. DeepSeek-V3 from its Hugging Face config.json
# (deepseek-ai/DeepSeek-V3; DeepSeek-AI 2024, arXiv 2412.19437, sec. 4.2).
DEEPSEEK_V3: dict = {
    "layers": 61,
    "hidden": 7168,
    "heads": 128,
    "kv_heads": 128,
    "ffn_hidden": 18432,
    "vocab": 129280,
    "seq_len": 4096,
    "activation": "swiglu",
    "moe": {"experts": 256, "top_k": 8, "expert_ffn_hidden": 2048, "shared_experts": 1, "dense_layers": 3},
    "mla": {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128},
    "mtp_layers": 1,
}
# A small MoE model: 8 routed experts of width 1024 plus a shared one, the first layer dense.
TINY_MOE_MODEL: dict = {
    "layers": 4,
    "hidden": 512,
    "heads": 8,
    "ffn_hidden": 2048,
    "vocab": 32000,
    "seq_len": 1024,
    "activation": "swiglu",
    "moe": {"experts": 8, "top_k": 2, "expert_ffn_hidden": 1024, "shared_experts": 1, "dense_layers": 1},
}
