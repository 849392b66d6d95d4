"""Invalid input is rejected by `simulator run` with exit 2, one readable line per problem naming
the key path on stderr, no traceback and nothing on stdout (docs/contract.md section 2)."""

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.cli import main

BASE: dict[str, Any] = {
    "name": "errors-base",
    "model": {"preset": "gpt3-125m"},
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
    "parallelism": {"tp": 1, "pp": 1},
    "training": {"global_batch": 256, "micro_batch": 8, "precision": "bf16"},
}

LLAMA2_70B: dict[str, Any] = {
    "name": "llama2-70b-tp16",
    "model": {"preset": "llama2-70b"},
    "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 16},
    "parallelism": {"tp": 16, "pp": 1},
    "training": {"global_batch": 16, "micro_batch": 1},
}


def scenario(base: dict[str, Any] = BASE, **sections: dict[str, Any]) -> dict[str, Any]:
    """`base` with keys merged into its sections (a non-dict value replaces the key outright)."""
    data = copy.deepcopy(base)
    for section, keys in sections.items():
        if isinstance(keys, dict) and isinstance(data.get(section), dict):
            data[section].update(keys)
        else:
            data[section] = keys
    return data


def write(tmp_path: Path, data: Any, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_main(capsys: pytest.CaptureFixture[str], path: Path | str, *extra: str) -> tuple[int, str, str]:
    code = main(["run", str(path), "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_rejected(code: int, out: str, err: str, key: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no error line on stderr"
    assert any(key in line for line in lines), f"no stderr line names {key!r}:\n{err}"


# (case id, scenario mapping, key path that an error line must name)
BAD_SCENARIOS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-top-level", {**BASE, "nmae": "x"}, "nmae"),
    ("unknown-model-key", scenario(model={"hiddn": 768}), "model.hiddn"),
    ("unknown-cluster-key", scenario(cluster={"gpus": 8}), "cluster.gpus"),
    ("unknown-parallelism-key", scenario(parallelism={"tpp": 2}), "parallelism.tpp"),
    ("unknown-training-key", scenario(training={"global_bacth": 256}), "training.global_bacth"),
    ("unknown-energy-key", scenario(energy={"pué": 1.1}), "energy.pué"),
    ("unknown-cost-key", scenario(cost={"usd_per_hour": 2.0}), "cost.usd_per_hour"),
    ("wrong-type-tp", scenario(parallelism={"tp": "eight"}), "parallelism.tp"),
    ("wrong-type-flash", scenario(training={"flash_attention": "maybe"}), "training.flash_attention"),
    ("section-not-mapping", scenario(parallelism=4), "parallelism"),
    ("negative-hidden", scenario(model={"hidden": -1}), "model.hidden"),
    ("zero-global-batch", scenario(training={"global_batch": 0}), "training.global_batch"),
    ("zero-gpus", scenario(cluster={"num_gpus": 0}), "cluster.num_gpus"),
    ("bad-schedule", scenario(parallelism={"schedule": "zigzag"}), "parallelism.schedule"),
    ("clock-above-max", scenario(cluster={"gpu_clock_MHz": 1500}), "cluster.gpu_clock_MHz"),
    ("clock-below-min", scenario(cluster={"gpu_clock_MHz": 100}), "cluster.gpu_clock_MHz"),
    ("clock-not-number", scenario(cluster={"gpu_clock_MHz": "fast"}), "cluster.gpu_clock_MHz"),
    ("power-limit-above-tdp", scenario(cluster={"gpu_power_limit_W": 450}), "cluster.gpu_power_limit_W"),
    ("power-limit-below-min", scenario(cluster={"gpu_power_limit_W": 60}), "cluster.gpu_power_limit_W"),
    ("power-limit-zero", scenario(cluster={"gpu_power_limit_W": 0}), "cluster.gpu_power_limit_W"),
    ("clock-no-clock-data", scenario(cluster={"gpu": "b200", "gpu_clock_MHz": 1000}), "cluster.gpu_clock_MHz"),
    ("bad-zero-stage", scenario(parallelism={"zero": 4}), "parallelism.zero"),
    ("bad-recompute", scenario(parallelism={"recompute": "some"}), "parallelism.recompute"),
    ("missing-training", {k: v for k, v in BASE.items() if k != "training"}, "training"),
    ("model-without-preset-or-shape", scenario(model={"preset": None, "hidden": 768}), "model"),
    ("unknown-gpu", scenario(cluster={"gpu": "a100-sxm-96gb"}), "cluster.gpu"),
    ("unknown-preset", scenario(model={"preset": "gpt5"}), "model.preset"),
    ("heads-not-dividing-hidden", scenario(model={"heads": 7}), "model.heads"),
    ("tp-not-dividing-heads", scenario(parallelism={"tp": 8}), "parallelism.tp"),
    ("tp-not-dividing-kv-heads", LLAMA2_70B, "parallelism.tp"),
    ("chunks-exceed-layers", scenario(parallelism={"pp": 8, "schedule": "interleaved", "virtual_stages": 2}), "pp"),
    ("pp-exceeds-layers", scenario(cluster={"num_gpus": 16}, parallelism={"pp": 16}), "model.layers"),
    ("batch-not-divisible", scenario(training={"global_batch": 100}), "training.global_batch"),
    ("dp-wrong", scenario(parallelism={"dp": 4}), "parallelism.dp"),
    ("model-parallel-not-dividing-gpus", scenario(parallelism={"tp": 3}), "cluster.num_gpus"),
    ("virtual-stages-with-1f1b", scenario(parallelism={"pp": 2, "virtual_stages": 2}), "parallelism.virtual_stages"),
    ("fp8-on-a100", scenario(training={"precision": "fp8"}), "training.precision"),
    ("unknown-precision", scenario(training={"precision": "fp4"}), "training.precision"),
    ("recompute-layers-without-full", scenario(parallelism={"recompute_layers": 2}), "parallelism.recompute_layers"),
    ("zero-recompute-layers", scenario(parallelism={"recompute": "full", "recompute_layers": 0}), "recompute_layers"),
    ("tp-overlap-without-sp", scenario(parallelism={"tp_comm_overlap": True}), "parallelism.tp_comm_overlap"),
    ("cp-not-dividing-seq", scenario(model={"seq_len": 2047}, parallelism={"cp": 2}), "parallelism.cp"),
    # infinities used to crash later (int(inf) in the run model, inf in the JSON)
    ("infinite-tokens", scenario(training={"tokens": float("inf")}), "training.tokens"),
    ("overflowing-tokens", scenario(training={"tokens": "1e400"}), "training.tokens"),
    ("infinite-pue", scenario(energy={"pue": float("inf")}), "energy.pue"),
]


@pytest.mark.parametrize(("data", "key"), [c[1:] for c in BAD_SCENARIOS], ids=[c[0] for c in BAD_SCENARIOS])
def test_bad_scenario_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any], key: str
) -> None:
    assert_rejected(*run_main(capsys, write(tmp_path, data)), key)


def test_kv_heads_message_names_kv_heads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 2 70B: 64 heads divide by tp 16 but its 8 KV heads do not; the message must say which."""
    code, _, err = run_main(capsys, write(tmp_path, LLAMA2_70B))
    assert code == 2
    assert "kv_heads" in err


def test_every_problem_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several schema problems at once: one line each, not just the first."""
    data = scenario(model={"hiddn": 1}, parallelism={"tpp": 2}, training={"global_batch": 0})
    code, out, err = run_main(capsys, write(tmp_path, data))
    assert_rejected(code, out, err, "model.hiddn")
    for key in ("parallelism.tpp", "training.global_batch"):
        assert key in err


FILE_PROBLEMS: list[tuple[str, str]] = [
    ("broken-yaml", "name: x\nmodel: {preset: gpt3-125m\ncluster: [\n"),
    ("bad-indentation", "name: x\n  model:\n preset: y\n"),
    ("empty", ""),
    ("only-comments", "# nothing here\n"),
    ("list", "- name: x\n- model: y\n"),
    ("scalar", "just a string\n"),
]


@pytest.mark.parametrize("text", [t for _, t in FILE_PROBLEMS], ids=[i for i, _ in FILE_PROBLEMS])
def test_unusable_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    path = tmp_path / "unusable.yaml"
    path.write_text(text)
    assert_rejected(*run_main(capsys, path), "unusable.yaml")


def test_duplicate_section_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A repeated key must not silently drop the first value (here a whole section)."""
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False) + "parallelism: {tp: 2}\n")
    code, out, err = run_main(capsys, path)
    assert_rejected(code, out, err, "parallelism")
    assert "duplicate" in err


def test_yaml_merge_keys_still_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A `<<:` merge key then an explicit key is an override by design, not a duplicate."""
    text = yaml.safe_dump({k: v for k, v in BASE.items() if k != "parallelism"}, sort_keys=False)
    path = tmp_path / "merge.yaml"
    path.write_text(text + "parallelism:\n  <<: {tp: 1, pp: 1}\n  tp: 2\n")
    code, out, err = run_main(capsys, path)
    assert code == 0, err
    assert json.loads(out)["plan"]["tp"] == 2


def test_recursive_alias_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("name: &x [*x]\n")
    assert_rejected(*run_main(capsys, path), "loop.yaml")


def test_missing_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_rejected(*run_main(capsys, tmp_path / "nope.yaml"), "nope.yaml")


def test_directory_instead_of_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_rejected(*run_main(capsys, tmp_path), str(tmp_path))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("parallelism.tp", "--set"),
        ("=4", "--set"),
        ("model.hiddn=3", "model.hiddn"),
        ("parallelism.tpp=2", "parallelism.tpp"),
        ("parallelism.tp=eight", "parallelism.tp"),
        ("parallelism.tp=7", "parallelism"),
        ("model.preset.x=1", "model.preset"),
    ],
)
def test_bad_override_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, key: str) -> None:
    assert_rejected(*run_main(capsys, write(tmp_path, BASE), "--set", override), key)


def run_process(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator", "run", str(path), "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: x\nmodel: {preset: gpt3-125m\n", "broken.yaml"),
        (yaml.safe_dump(scenario(model={"hiddn": 768})), "model.hiddn"),
        (yaml.safe_dump(scenario(parallelism={"tp": "eight"})), "parallelism.tp"),
        (yaml.safe_dump(scenario(parallelism={"tp": 8})), "parallelism.tp"),
    ],
    ids=["broken-yaml", "unknown-key", "wrong-type", "tp-not-dividing-heads"],
)
def test_process_level_rejection(tmp_path: Path, text: str, key: str) -> None:
    """A real process: exit 2, no traceback anywhere, stdout empty."""
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    proc = run_process(path)
    assert_rejected(proc.returncode, proc.stdout, proc.stderr, key)


def test_process_level_missing_file(tmp_path: Path) -> None:
    proc = run_process(tmp_path / "missing.yaml")
    assert_rejected(proc.returncode, proc.stdout, proc.stderr, "missing.yaml")


# --- accepted input ---


def run_ok(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> dict[str, Any]:
    code, out, err = run_main(capsys, path, *extra)
    assert code == 0, err
    return json.loads(out)


def test_tokens_written_as_300e9_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        yaml.safe_dump(BASE, sort_keys=False).replace("precision: bf16", "precision: bf16\n  tokens: 300e9")
    )
    assert yaml.safe_load(path.read_text())["training"]["tokens"] == "300e9"  # YAML 1.1 reads a string
    result = run_ok(capsys, path)
    tokens_per_step = BASE["training"]["global_batch"] * 2048
    assert result["run"]["iterations"] == pytest.approx(300e9 / tokens_per_step, rel=1e-3)


def test_set_changes_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    assert run_ok(capsys, path)["plan"]["tp"] == 1
    result = run_ok(capsys, path, "--set", "parallelism.tp=4")
    assert result["plan"]["tp"] == 4
    assert result["plan"]["dp"] == 2


def test_repeated_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_ok(capsys, write(tmp_path, BASE), "--set", "parallelism.tp=2", "--set", "parallelism.pp=2")
    assert (result["plan"]["tp"], result["plan"]["pp"], result["plan"]["dp"]) == (2, 2, 2)


def test_set_tokens_as_string_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_ok(capsys, write(tmp_path, BASE), "--set", "training.tokens=300e9")
    assert result["run"]["iterations"] > 0


def test_126_layers_on_16_stages_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3 405B: 126 layers on 16 pipeline stages is a real plan (Llama Team 2024, sec. 3.3.2)."""
    data = {
        "name": "llama3-405b-pp16",
        "model": {"preset": "llama3-405b"},
        "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 256},
        "parallelism": {"tp": 8, "pp": 16, "dp": 2},
        "training": {"global_batch": 32, "micro_batch": 1},
    }
    result = run_ok(capsys, write(tmp_path, data))
    assert result["plan"]["pp"] == 16
    assert result["model"]["parameters"] > 400e9
