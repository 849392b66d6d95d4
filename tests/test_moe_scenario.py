"""The mixture-of-experts scenario keys (docs/contract.md section 1b) up to the resolved Setup: the
catalogue entries, `model.hf_config` import, the folding rules and every new key's input errors
(exit 2, one line naming the key, no traceback). MoE simulation itself is tested with the workload."""

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

from simulator.catalog.hardware import default_node_for, gpu_catalogue
from simulator.catalog.models import ModelSpec, model_catalogue
from simulator.cli import main
from simulator.enums import LayerKind
from simulator.scenario.canonical import resolved_scenario
from simulator.scenario.errors import ConfigError
from simulator.scenario.load import load_raw, load_setup, setup_from_mapping, validate
from simulator.scenario.resolve import resolve

HF_DIR = ROOT / "tests" / "data" / "hf"
CONTRACT_MOE_MODELS = [
    "deepseek-v3",
    "deepseek-v2",
    "qwen3-235b-a22b",
    "qwen3-30b-a3b",
    "mixtral-8x7b",
    "mixtral-8x22b",
    "grok-1",
    "llama4-maverick",
]
MORE_MOE_MODELS = ["kimi-k2", "qwen2-57b-a14b"]
NEW_GPUS = ["h800-sxm-80gb", "gb200", "gb300"]

# A valid MoE plan: Qwen3-30B-A3B (128 experts, top-8) on 16 H100, EP 8 over the 16 data-parallel ranks.
BASE: dict[str, Any] = {
    "name": "moe-base",
    "model": {"preset": "qwen3-30b-a3b"},
    "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 16},
    "parallelism": {"ep": 8},
    "training": {"global_batch": 16},
}


def write(tmp_path: Path, data: Any, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def run_main(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["run", str(path), "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, out: str, err: str, key: str) -> None:
    """Exit 2, nothing on stdout, no traceback, and exactly one `error:` line, naming `key`."""
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and key in lines[0], err


def preset_spec(name: str) -> ModelSpec:
    return ModelSpec.from_entry(name, model_catalogue()[name])


# --- catalogue ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONTRACT_MOE_MODELS + MORE_MOE_MODELS)
def test_moe_presets_resolve(name: str) -> None:
    spec = preset_spec(name)
    assert spec.moe is not None and spec.moe.top_k <= spec.moe.experts
    assert spec.gated_mlp  # every one has a gated MLP (three matrices)
    assert LayerKind.MOE in spec.layer_kinds
    setup = setup_from_mapping({**BASE, "model": {"preset": name}, "parallelism": {}})
    assert setup.model == spec


def test_published_layer_patterns() -> None:
    """DeepSeek-V3: 3 dense layers then 58 MoE; Llama 4 Maverick: MoE in the odd layers, as
    transformers places them (interleave_moe_layer_step 2); DeepSeek-V3 and V2 have latent attention."""
    v3 = preset_spec("deepseek-v3")
    assert v3.layer_kinds[:3] == (LayerKind.DENSE,) * 3 and set(v3.layer_kinds[3:]) == {LayerKind.MOE}
    assert v3.mla is not None and v3.mla.qk_dim == 192 and v3.mtp_layers == 1
    maverick = preset_spec("llama4-maverick")
    assert [i for i, k in enumerate(maverick.layer_kinds) if k is LayerKind.MOE] == list(range(1, 48, 2))
    assert maverick.moe is not None and maverick.moe.shared_experts == 1
    assert preset_spec("qwen3-235b-a22b").q_dim == 64 * 128  # head_dim 128 set apart from 4096 / 64
    assert preset_spec("grok-1").tied_embeddings


@pytest.mark.parametrize("name", NEW_GPUS)
def test_new_gpus(name: str) -> None:
    gpu = gpu_catalogue()[name]
    assert gpu.hbm_bytes > 7e10 and gpu.tdp_W > gpu.idle_W > 0


def test_rack_scale_gpus_default_to_their_tray_and_rack() -> None:
    """The contract's default node is 8 GPUs: for a GB200/GB300 NVL72 rack two 4-GPU compute trays, with
    both trays' NICs and overhead; the NVLink domain is the 72-GPU rack. An explicit gpus_per_node of 4
    is one tray; the H800's node is an 8-GPU HGX server with its NVLink at 200 GB/s."""
    for gpu, nic_gbit in (("gb200", 400), ("gb300", 800)):
        setup = setup_from_mapping(
            {**BASE, "model": {"preset": "llama3-8b"}, "parallelism": {}}, [f"cluster.gpu={gpu}"]
        )
        c = setup.cluster
        assert (c.gpus_per_node, c.nics_per_node, c.scale_up_domain) == (8, 8, 16)  # min(72, num_gpus)
        assert c.node_overhead_W == 2 * default_node_for(gpu).node_overhead_W
        assert c.nic.line_rate_bytes_per_s == nic_gbit * 1e9 / 8
        assert resolved_scenario(setup)["cluster"]["gpus_per_node"] == 8
        tray = setup_from_mapping(
            {**BASE, "model": {"preset": "llama3-8b"}, "parallelism": {}},
            [f"cluster.gpu={gpu}", "cluster.gpus_per_node=4"],
        ).cluster
        assert (tray.gpus_per_node, tray.nics_per_node) == (4, 4)
        big = setup_from_mapping(
            {**BASE, "model": {"preset": "llama3-8b"}, "parallelism": {}},
            [f"cluster.gpu={gpu}", "cluster.num_gpus=144", "training.global_batch=144"],
        )
        assert big.cluster.scale_up_domain == 72 and big.cluster.num_nodes == 18
    explicit = setup_from_mapping(BASE, ["cluster.gpu=gb200", "cluster.gpus_per_node=8"])
    assert explicit.cluster.gpus_per_node == 8
    h800 = setup_from_mapping(BASE, ["cluster.gpu=h800-sxm-80gb"])
    assert h800.cluster.gpus_per_node == 8 and h800.cluster.intra_node_bytes_per_s == 200e9
    assert default_node_for("h800-sxm-80gb").nics == 8
    assert h800.economics.usd_per_gpu_hour > 0


def test_dense_defaults_unchanged() -> None:
    """Every GPU of the dense era still gets 8-GPU nodes and a one-node NVLink domain."""
    for gpu in ("v100-sxm-32gb", "a100-sxm-80gb", "h100-sxm-80gb", "b200", "mi300x", "unknown-to-the-catalogue"):
        assert default_node_for(gpu).gpus == 8
    setup = setup_from_mapping({**BASE, "model": {"preset": "llama3-8b"}, "parallelism": {}})
    assert setup.cluster.gpus_per_node == 8 and setup.cluster.scale_up_domain == 8


# --- overlays -------------------------------------------------------------------------------------


def test_set_one_moe_key_on_a_preset(tmp_path: Path) -> None:
    """`--set model.moe.top_k=4` changes top_k alone: the preset's other MoE keys stay."""
    path = write(tmp_path, {**BASE, "model": {"preset": "deepseek-v3"}, "parallelism": {}})
    setup = load_setup(path, ["model.moe.top_k=4", "model.mla.kv_lora_rank=256"])
    preset = preset_spec("deepseek-v3")
    assert preset.moe is not None and preset.mla is not None
    assert setup.model.moe == dataclasses.replace(preset.moe, top_k=4)
    assert setup.model.mla == dataclasses.replace(preset.mla, kv_lora_rank=256)


def test_catalogue_variant_of_a_preset_overlays_moe_keys() -> None:
    data = {
        **BASE,
        "model": {"preset": "mixtral-8x7b"},
        "catalogue": {"models": {"mixtral-8x7b": {"moe": {"top_k": 1}}}},
    }
    moe = setup_from_mapping(data).model.moe
    assert moe is not None and (moe.experts, moe.top_k, moe.expert_ffn_hidden) == (8, 1, 14336)


def test_resolved_moe_scenario_runs_on_its_own() -> None:
    """The resolved scenario of an MoE model (every default written in) resolves to the same Setup."""
    setup = setup_from_mapping(BASE, ["model.moe.load_skew=0.5"])
    again = resolve(validate(resolved_scenario(setup)))
    assert again.model == dataclasses.replace(setup.model, name=again.model.name)
    assert again.plan == setup.plan and again.cluster == setup.cluster


# --- model.hf_config --------------------------------------------------------------------------------

HF_MODELS = ["deepseek-v3", "qwen3-30b-a3b", "mixtral-8x7b", "llama3-8b", "llama4-maverick", "qwen2-57b-a14b"]


@pytest.mark.parametrize("name", HF_MODELS)
def test_hf_config_resolves_as_the_preset(tmp_path: Path, name: str) -> None:
    """Each config.json (tests/data/hf, written from the published shapes) gives the preset's model;
    seq_len is the scenario's (a training choice)."""
    preset = preset_spec(name)
    config = HF_DIR / name / "config.json"
    data = {**BASE, "name": name, "model": {"hf_config": str(config), "seq_len": preset.seq_len}, "parallelism": {}}
    setup = load_setup(write(tmp_path, data))
    assert setup.model == dataclasses.replace(preset, name=name)


def test_hf_config_relative_to_the_scenario_and_folded_away(tmp_path: Path) -> None:
    """The path is relative to the scenario file; the mapping passed on holds the model keys and no
    `hf_config`, so it resolves without the file (a search worker has not got it)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "config.json").write_text((HF_DIR / "mixtral-8x7b" / "config.json").read_text())
    sub = tmp_path / "scenarios"
    sub.mkdir()
    path = write(sub, {**BASE, "model": {"hf_config": "../models/config.json"}, "parallelism": {}})
    raw = load_raw(path)
    assert "hf_config" not in raw["model"]
    assert raw["model"]["layers"] == 32 and raw["model"]["moe"]["experts"] == 8
    (tmp_path / "models" / "config.json").unlink()
    setup = resolve(validate(raw))
    assert setup.model.seq_len == 32768  # max_position_embeddings: no seq_len in the scenario
    assert setup.model.moe is not None and setup.model.moe.top_k == 2


def test_explicit_keys_win_over_the_config(tmp_path: Path) -> None:
    config = HF_DIR / "deepseek-v3" / "config.json"
    data = {**BASE, "model": {"hf_config": str(config), "seq_len": 4096, "layers": 8, "moe": {"top_k": 2}}}
    path = write(tmp_path, data)
    setup = load_setup(path, ["parallelism.ep=8"])
    assert setup.model.layers == 8 and setup.model.seq_len == 4096
    assert setup.model.moe is not None
    assert (setup.model.moe.experts, setup.model.moe.top_k, setup.model.moe.dense_layers) == (256, 2, 3)


def test_hf_config_in_a_mapping_is_relative_to_the_given_base() -> None:
    data = {**BASE, "model": {"hf_config": "qwen3-30b-a3b/config.json", "seq_len": 4096}}
    assert setup_from_mapping(data, base=HF_DIR).model == dataclasses.replace(
        preset_spec("qwen3-30b-a3b"), name="moe-base"
    )


def test_unfolded_hf_config_is_an_input_error() -> None:
    """A Scenario validated straight from a mapping that still names a file: an error, not a crash."""
    sc = validate({**BASE, "model": {"hf_config": "config.json"}})
    with pytest.raises(ConfigError, match=r"model\.hf_config"):
        resolve(sc)


def _config(model: str = "deepseek-v3", **changes: Any) -> dict[str, Any]:
    """A test config.json with fields changed (or removed: `...`)."""
    cfg = json.loads((HF_DIR / model / "config.json").read_text())
    for key, value in changes.items():
        if value is ...:
            cfg.pop(key)
        else:
            cfg[key] = value
    return cfg


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("lacks layers", _config(num_hidden_layers=...), "c.json lacks num_hidden_layers"),
    ("lacks hidden", _config(hidden_size=...), "c.json lacks hidden_size"),
    ("lacks vocab", _config(vocab_size=...), "c.json lacks vocab_size"),
    ("lacks top-k", _config(num_experts_per_tok=...), "c.json lacks num_experts_per_tok"),
    ("lacks dense width", _config(intermediate_size=...), "c.json lacks intermediate_size"),
    ("lacks expert width", _config("mixtral-8x7b", intermediate_size=...), "c.json lacks moe_intermediate_size"),
    ("lacks MLA size", _config(v_head_dim=...), "c.json lacks v_head_dim"),
    ("lacks context", _config(max_position_embeddings=...), "c.json lacks max_position_embeddings"),
    ("text for a number", _config(hidden_size="big"), "hidden_size must be a whole number"),
    ("boolean for a number", _config(num_attention_heads=True), "num_attention_heads must be a whole number"),
    ("out of range", _config(num_hidden_layers=10**9), "num_hidden_layers"),
    ("negative experts", _config(n_routed_experts=-4), "n_routed_experts: input should be greater"),
    ("unknown activation", _config(hidden_act="tanh"), "hidden_act 'tanh'"),
    ("bad tie flag", _config(tie_word_embeddings="yes"), "tie_word_embeddings"),
    ("no layer pattern", _config(first_k_dense_replace=0, moe_layer_freq=1, mlp_only_layers=[5]), "no pattern"),
    ("no MoE layer", _config(first_k_dense_replace=61), "in none of its 61 layers"),
    ("pattern of Qwen's fields", _config("qwen3-30b-a3b", mlp_only_layers=[0, 2]), "no pattern"),
    ("a list", [1, 2], "JSON object"),
    ("a string", "config", "JSON object"),
]


@pytest.mark.parametrize(("case", "cfg", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, cfg: Any, message: str) -> None:
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    path = write(tmp_path, {**BASE, "model": {"hf_config": "c.json"}})
    code, out, err = run_main(capsys, path)
    assert_one_line(code, out, err, "model.hf_config")
    assert message in err


BROKEN_FILES: list[tuple[str, str | bytes]] = [
    ("broken JSON", '{"num_hidden_layers": 4'),
    ("NaN", '{"num_hidden_layers": NaN}'),
    ("empty", ""),
    ("deep nesting", "[" * 100_000 + "]" * 100_000),
    ("huge integer", '{"num_hidden_layers": ' + "9" * 10_000 + "}"),
    ("not UTF-8", b'{"a": "\xff\xfe"}'),
    ("over 1 MiB", '{"pad": "' + "x" * (2**20 + 10) + '"}'),
]


@pytest.mark.parametrize(("case", "text"), BROKEN_FILES, ids=[c[0] for c in BROKEN_FILES])
def test_broken_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, text: str | bytes) -> None:
    target = tmp_path / "c.json"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    path = write(tmp_path, {**BASE, "model": {"hf_config": "c.json"}})
    assert_one_line(*run_main(capsys, path), "model.hf_config: c.json")


@pytest.mark.parametrize("target", ["missing.json", ".", "/dev/zero", 3, ""])
def test_unreadable_config_path(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: Any) -> None:
    path = write(tmp_path, {**BASE, "model": {"hf_config": target}})
    assert_one_line(*run_main(capsys, path), "model.hf_config")


def test_config_error_through_the_command_line(tmp_path: Path) -> None:
    """`python -m simulator run` on a config.json that lacks a field: exit 2, one line, no traceback."""
    (tmp_path / "c.json").write_text(json.dumps(_config(num_hidden_layers=...)))
    path = write(tmp_path, {**BASE, "model": {"hf_config": "c.json"}})
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: model.hf_config: c.json lacks num_hidden_layers"


# --- the folding rules and the new keys' input errors -----------------------------------------------

# (case id, --set overrides on BASE, the key the one error line names)
BAD_PLANS: list[tuple[str, list[str], str]] = [
    ("ep does not divide experts", ["model.moe.experts=12"], "parallelism.ep"),
    ("ep*etp does not divide tp*cp*dp", ["parallelism.etp=4"], "ep*etp"),
    (
        "etp does not divide the expert width",
        ["model.moe.expert_ffn_hidden=100", "parallelism.etp=8", "parallelism.ep=2"],
        "parallelism.etp",
    ),
    ("tp and ep without sequence parallelism", ["parallelism.tp=2"], "parallelism.sequence_parallel"),
    ("ep without experts", ["model.preset=llama3-8b"], "parallelism.ep"),
    ("etp without experts", ["model.preset=llama3-8b", "parallelism.ep=1", "parallelism.etp=2"], "parallelism.etp"),
    (
        "dispatcher without experts",
        ["model.preset=llama3-8b", "parallelism.ep=1", "parallelism.moe_dispatcher=deepep"],
        "parallelism.moe_dispatcher",
    ),
    ("top_k above experts", ["model.moe.top_k=200"], "model.moe.top_k"),
    ("dense layers beyond the model", ["model.moe.dense_layers=49"], "model.moe.dense_layers"),
    (
        "moe_overlap with gpipe",
        ["parallelism.schedule=gpipe", "parallelism.moe_overlap=true"],
        "parallelism.moe_overlap",
    ),
    ("scale-up domain not whole nodes", ["cluster.scale_up_domain=12"], "cluster.scale_up_domain"),
    ("scale-up domain of 0", ["cluster.scale_up_domain=0"], "cluster.scale_up_domain"),
    (
        "gb200 GPUs not whole trays",
        ["cluster.gpu=gb200", "cluster.num_gpus=18", "training.global_batch=18", "parallelism.ep=2"],
        "cluster.num_gpus",
    ),
    ("experts as text", ["model.moe.experts=many"], "model.moe.experts"),
    ("experts as a boolean", ["model.moe.experts=true"], "model.moe.experts"),
    ("capacity factor of 0", ["model.moe.capacity_factor=0"], "model.moe.capacity_factor"),
    ("unknown key under moe", ["model.moe.bogus=1"], "model.moe.bogus"),
    ("unknown key under mla", ["model.mla.bogus=1"], "model.mla.bogus"),
    ("moe not a mapping", ["model.moe=3"], "model.moe"),
    ("incomplete mla", ["model.mla.kv_lora_rank=512"], "model.mla"),
    ("incomplete moe", ["model.preset=llama3-8b", "parallelism.ep=1", "model.moe.top_k=2"], "model.moe"),
    (
        "mla with grouped KV heads",
        ["model.preset=deepseek-v3", "model.kv_heads=8", "parallelism.ep=1"],
        "model.kv_heads",
    ),
    ("unknown dispatcher", ["parallelism.moe_dispatcher=nccl"], "parallelism.moe_dispatcher"),
    ("head_dim of 0", ["model.head_dim=0"], "model.head_dim"),
    ("negative MTP layers", ["model.mtp_layers=-1"], "model.mtp_layers"),
    ("ep of 8.5", ["parallelism.ep=8.5"], "parallelism.ep"),
]


@pytest.mark.parametrize(("case", "overrides", "key"), BAD_PLANS, ids=[c[0] for c in BAD_PLANS])
def test_bad_moe_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, overrides: list[str], key: str
) -> None:
    args = [a for o in overrides for a in ("--set", o)]
    assert_one_line(*run_main(capsys, write(tmp_path, copy.deepcopy(BASE)), *args), key)


def test_the_base_plan_is_valid() -> None:
    """The cases above each break one rule of an otherwise valid plan."""
    plan = setup_from_mapping(BASE).plan
    assert (plan.ep, plan.etp, plan.dp, plan.expert_dp) == (8, 1, 16, 2)
    folded = setup_from_mapping(BASE, ["parallelism.tp=2", "parallelism.sequence_parallel=true"]).plan
    assert (folded.tp, folded.etp, folded.dp, folded.expert_dp) == (2, 2, 8, 1)
