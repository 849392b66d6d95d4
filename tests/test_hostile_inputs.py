"""Hostile and absurd input: out-of-range and mistyped numbers, alias bombs, deep nesting, devices,
FIFOs, control characters, failure rates no run survives. Each is exit 2 with one `error:` line naming
the key or file and no traceback, or a documented result (valid JSON, `feasible: false` with its
reason) -- never a hang, a crash or non-JSON output. Fast: simulations use the analytical engine
where the engine is not the point; subprocesses only where a regression could hang or eat memory."""

import json
import os
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from simulator.cli import main
from simulator.scenario.schema import Scenario
from simulator.scenario.yaml_input import MAX_DEPTH, MAX_FILE_BYTES

BASE: dict[str, Any] = {
    "name": "hostile-base",
    "model": {"preset": "gpt3-125m"},
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
    "training": {"global_batch": 256, "micro_batch": 8, "tokens": 1e9},
    "simulation": {"engine": "analytical"},
}
# A bomb of 342 bytes: 9^9 = 387 million strings once the aliases are expanded.
ALIAS_BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
)


def write(tmp_path: Path, data: Any, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_rejected(code: int, out: str, err: str, key: str) -> None:
    """Exit 2, nothing on stdout, no traceback, every stderr line an `error:` line, one naming `key`."""
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err
    assert any(key in line for line in lines), f"no error line names {key!r}:\n{err}"
    assert "\x1b" not in err


def strict_json(text: str) -> dict[str, Any]:
    """The result JSON, refusing Infinity and NaN (which json.loads would accept)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


# --- numbers ---------------------------------------------------------------------------------------


def numeric_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every number a scenario can set (catalogue entries aside), found in the schema itself, so that a
    key added later is checked too."""
    keys = []
    for name, field in model.model_fields.items():
        options = [a for a in typing.get_args(field.annotation) or (field.annotation,) if a is not type(None)]
        inner = options[0] if len(options) == 1 else field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys += numeric_keys(inner, f"{prefix}{name}.")
            continue
        core = typing.get_args(inner)[0] if typing.get_origin(inner) is typing.Annotated else inner
        literal = typing.get_origin(core) is typing.Literal
        if core in (int, float) or (literal and all(type(v) is int for v in typing.get_args(core))):
            keys.append(prefix + name)
    return keys


NUMERIC_KEYS = numeric_keys(Scenario)


def test_the_schema_walk_finds_the_numbers() -> None:
    for key in ("cluster.num_gpus", "training.tokens", "parallelism.zero", "seed", "reliability.restart_s"):
        assert key in NUMERIC_KEYS
    assert "parallelism.sequence_parallel" not in NUMERIC_KEYS and "name" not in NUMERIC_KEYS


@pytest.mark.parametrize("value", ["true", "1e308", "-1e308", ".nan", ".inf", "many"])
def test_every_numeric_key_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    """A boolean (YAML's `true` would count as 1), a number past any physical range, NaN, infinity or
    text: every numeric key says so, naming itself."""
    path = write(tmp_path, BASE)
    for key in NUMERIC_KEYS:
        assert_rejected(*run_cli(capsys, str(path), "--json", "--set", f"{key}={value}"), key)


REJECTED: list[tuple[str, str]] = [
    ("seed=-1", "seed"),  # was a numpy traceback
    ("seed=18446744073709551616", "seed"),
    ("cluster.num_gpus=true", "cluster.num_gpus"),  # simulated 1 GPU
    ("parallelism.tp=true", "parallelism.tp"),
    ("parallelism.zero=true", "parallelism.zero"),
    ("parallelism.zero=1.5", "parallelism.zero"),
    ("training.global_batch=256.5", "training.global_batch"),
    ("parallelism.dp=8.5", "parallelism.dp"),
    ("training.global_batch=1e30", "training.global_batch"),  # hung the engine
    ("cost.usd_per_gpu_hour=1e308", "cost.usd_per_gpu_hour"),  # inf in the JSON
    ("cluster.oversubscription=1e308", "cluster.oversubscription"),  # NaN-to-int crash
    ("training.tokens=1e308", "training.tokens"),  # no progress after 10M events
    ("cluster.intra_node_GBps=1e-300", "cluster.intra_node_GBps"),
    ("framework.host_time_per_op_us=1e308", "framework.host_time_per_op_us"),
    ("model.hidden=12000000000", "model.hidden"),  # hung the reliability model
    ("reliability.gpu_failures_per_hour=1000", "reliability.gpu_failures_per_hour"),
    ("energy.pue=0.5", "energy.pue"),
    ("cluster.num_gpus=100000000", "cluster.num_gpus"),
]


@pytest.mark.parametrize(("override", "key"), REJECTED, ids=[r[0] for r in REJECTED])
def test_absurd_number_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, key: str) -> None:
    assert_rejected(*run_cli(capsys, str(write(tmp_path, BASE)), "--json", "--set", override), key)


def test_whole_numbers_as_floats_and_strings_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README: numbers such as 300e9 are accepted; for a whole-number key that means 8e0, 8.0, "8e0"."""
    data = {**BASE, "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": "8e0"}, "training": {"global_batch": 256.0}}
    path = write(tmp_path, data)
    code, out, err = run_cli(capsys, str(path), "--json", "--set", "training.micro_batch=8e0")
    assert code == 0, err
    plan = strict_json(out)["plan"]
    assert (plan["dp"], plan["micro_batches"]) == (8, 4)


def test_step_too_long_to_simulate_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """300,000 micro-batches per step: more passes than the event engine may simulate (rules.py)."""
    args = ("--set", "training.global_batch=2400000", "--set", "training.micro_batch=1")
    assert_rejected(*run_cli(capsys, str(write(tmp_path, BASE)), "--json", *args), "training.global_batch")


GPU = {
    "peak_tflops": {"bf16": 500.0},
    "hbm_GB": 80,
    "hbm_GBps": 2000,
    "tdp_W": 500,
    "idle_W": 50,
    "scale_up_GBps": 300,
    "sm_count": 100,
    "gemm_efficiency_max": 0.7,
    "hbm_efficiency": 0.8,
    "flash_attention_efficiency": 0.5,
    "kernel_launch_us": 4,
}
BAD_GPUS: list[tuple[dict[str, Any], str]] = [
    ({"idle_W": 600}, "catalogue.gpus.x1.idle_W"),  # idles above its power limit
    ({"peak_tflops": {"bf16": 1e308}}, "catalogue.gpus.x1.peak_tflops.bf16"),
    ({"peak_tflops": {}}, "catalogue.gpus.x1.peak_tflops"),
    ({"hbm_GBps": True}, "catalogue.gpus.x1.hbm_GBps"),
    ({"gemm_efficiency_max": 1e-300}, "catalogue.gpus.x1.gemm_efficiency_max"),
    ({"sm_count": 10.5}, "catalogue.gpus.x1.sm_count"),
    ({"vendor": "evil\x1b[2J"}, "catalogue.gpus.x1.vendor"),
]


@pytest.mark.parametrize(
    ("change", "key"), BAD_GPUS, ids=[k.rsplit(".", 1)[1] + str(i) for i, (_, k) in enumerate(BAD_GPUS)]
)
def test_inline_gpu_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, key: str) -> None:
    data = {**BASE, "cluster": {"gpu": "x1", "num_gpus": 8}, "catalogue": {"gpus": {"x1": {**GPU, **change}}}}
    assert_rejected(*run_cli(capsys, str(write(tmp_path, data)), "--json"), key)


# --- hostile files ---------------------------------------------------------------------------------

BAD_TEXTS: list[tuple[str, str]] = [
    ("alias-bomb", ALIAS_BOMB),  # hung expanding the aliases
    ("nested-lists", "name: " + "[" * 20000 + "]" * 20000),  # RecursionError traceback
    ("nested-maps", "name: " + "{a: " * 20000 + "1" + "}" * 20000),
    ("just-too-deep", "name: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH),
    ("recursive-alias", "name: &x [*x]\n"),
    ("huge-integer", "name: x\ncluster: {num_gpus: " + "9" * 5000 + "}\n"),
    ("two-documents", "name: x\n---\nname: y\n"),
]


@pytest.mark.parametrize("text", [t for _, t in BAD_TEXTS], ids=[i for i, _ in BAD_TEXTS])
def test_hostile_yaml_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    start = time.monotonic()
    assert_rejected(*run_cli(capsys, str(write(tmp_path, text, "hostile.yaml")), "--json"), "hostile.yaml")
    assert time.monotonic() - start < 5


def test_oversized_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\n" + yaml.safe_dump(BASE))
    code, out, err = run_cli(capsys, str(path), "--json")
    assert_rejected(code, out, err, "big.yaml")
    assert "MiB" in err


def test_binary_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\x00\x01")
    assert_rejected(*run_cli(capsys, str(path), "--json"), "binary.yaml")


def test_hostile_catalogue_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    data = {**BASE, "catalogue": {"files": ["bomb.yaml"]}}
    assert_rejected(*run_cli(capsys, str(write(tmp_path, data)), "--json"), "catalogue.files: bomb.yaml")


def test_catalogue_file_with_a_list_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "list.yaml").write_text("gpus: [1, 2]\n")
    data = {**BASE, "catalogue": {"files": ["list.yaml"]}}
    assert_rejected(*run_cli(capsys, str(write(tmp_path, data)), "--json"), "catalogue.files: list.yaml")


def test_too_many_catalogue_files_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_text("models: {}\n")
    data = {**BASE, "catalogue": {"files": ["c.yaml"] * 1000}}
    assert_rejected(*run_cli(capsys, str(write(tmp_path, data)), "--json"), "catalogue.files")


HOSTILE_SETS: list[tuple[str, str]] = [
    ("name=" + "[" * 20000 + "]" * 20000, "--set name"),
    ("name={" + ALIAS_BOMB.replace("\n", ", ") + "}", "--set name"),
    (".".join(["a"] * 100) + "=1", "--set"),
    ("nam\x1b[2Je=1", "nam\\x1b[2Je"),  # the key is echoed with the escape code escaped
]


@pytest.mark.parametrize(("override", "key"), HOSTILE_SETS, ids=["deep", "bomb", "long-path", "escape-in-key"])
def test_hostile_set_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, key: str) -> None:
    assert_rejected(*run_cli(capsys, str(write(tmp_path, BASE)), "--json", "--set", override), key)


def run_process(*args: str) -> subprocess.CompletedProcess[str]:
    """A real process with a timeout: reading /dev/zero or opening a FIFO would hang or eat memory."""
    cmd = [sys.executable, "-m", "simulator", "run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(not Path("/dev/zero").exists() or not hasattr(os, "mkfifo"), reason="needs /dev/zero and FIFOs")
def test_devices_and_fifos_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "scenario.fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    write(tmp_path, {**BASE, "catalogue": {"files": ["/dev/zero"]}}, "zero-catalogue.yaml")
    for target, key in (
        ("/dev/zero", "/dev/zero"),
        (str(fifo), "scenario.fifo"),
        (str(tmp_path / "zero-catalogue.yaml"), "catalogue.files: /dev/zero"),
    ):
        proc = run_process(target, "--json")
        assert_rejected(proc.returncode, proc.stdout, proc.stderr, key)
        assert "not a regular file" in proc.stderr


# --- free text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("name=evil\x1b[31mred", "name"),
        ('name="line\\nbreak"', "name"),  # a YAML escape: a real line break
        ("name=abc\u202edcba", "name"),  # a bidirectional override reorders what the terminal shows
        ("name=" + "n" * 1000, "name"),
        ("cluster.gpu=a100\x07", "cluster.gpu"),
        ("model.preset=gpt3\x1b[0m", "model.preset"),
    ],
    ids=["escape", "newline", "bidi", "too-long", "bell-in-gpu", "escape-in-preset"],
)
def test_control_characters_in_text_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, key: str
) -> None:
    assert_rejected(*run_cli(capsys, str(write(tmp_path, BASE)), "--json", "--set", override), key)


def test_inline_model_named_like_a_preset_overlays_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """catalogue.models.gpt3-125m with only `layers` keeps the preset's other fields (it used to replace the
    preset, then complain that no preset was given)."""
    path = write(tmp_path, BASE)
    code, out, err = run_cli(capsys, str(path), "--json", "--set", "catalogue.models.gpt3-125m.layers=6")
    assert code == 0, err
    half = strict_json(out)["model"]["parameters"]
    code, out, _ = run_cli(capsys, str(path), "--json")
    full = strict_json(out)["model"]["parameters"]
    assert half < full
    code, out, err = run_cli(
        capsys, str(path), "--json", "--set", "catalogue.models.mine.layers=6", "--set", "model.preset=mine"
    )
    assert_rejected(code, out, err, "model")
    assert "neither model.preset 'mine' nor model: gives them" in err


# --- the run model ---------------------------------------------------------------------------------

HOPELESS = ("--set", "cluster.num_gpus=1024", "--set", "training.global_batch=1024", "--set", "training.micro_batch=1")
HOPELESS += ("--set", "reliability.gpu_failures_per_hour=1")  # a failure every 3.5 s, restarts of 15 min


def test_run_that_cannot_progress_is_a_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Failures faster than restarts: exit 0, `feasible: false` with the reason, no run figures (null),
    quickly (it used to run 10 million events, or hang)."""
    start = time.monotonic()
    code, out, err = run_cli(
        capsys, str(write(tmp_path, BASE)), "--json", *HOPELESS, "--set", "reliability.enabled=true"
    )
    assert code == 0, err
    result = strict_json(out)
    assert result["feasible"] is False and "cannot progress" in result["reason"]
    run = result["run"]
    assert run["days"] is None and run["cost_usd"] is None and run["goodput"] == 0.0
    assert run["failure_model"] == "no progress" and run["days_ideal"] > 0
    assert time.monotonic() - start < 10
    assert main(["run", str(tmp_path / "scenario.yaml"), *HOPELESS, "--set", "reliability.enabled=true"]) == 0
    assert "cannot progress" in capsys.readouterr().out


def test_what_if_that_cannot_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reliability off: the run is failure-free and feasible; only the what-if has no figure."""
    code, out, err = run_cli(capsys, str(write(tmp_path, BASE)), "--json", *HOPELESS)
    assert code == 0, err
    result = strict_json(out)
    assert result["feasible"] is True and result["run"]["days"] > 0
    assert result["run"]["days_with_failures"] is None and result["run"]["failure_model"] == "no progress"


def test_very_long_run_uses_the_closed_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1e16 tokens: ~1e6 failure-model events; the closed form answers, and the result says so."""
    start = time.monotonic()
    args = ("--set", "training.tokens=1e16", "--set", "reliability.enabled=true")
    code, out, err = run_cli(capsys, str(write(tmp_path, BASE)), "--json", *args)
    assert code == 0, err
    run = strict_json(out)["run"]
    assert run["failure_model"] == "expected" and "closed form" in run["failure_note"]
    assert run["days"] > run["days_ideal"] and 0.99 < run["goodput"] < 1.0
    assert time.monotonic() - start < 10


def test_extreme_but_valid_scenario_gives_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every number at the end of its range that makes the figures largest: finite JSON, no crash."""
    slow_gpu = {**GPU, "peak_tflops": {"fp32": 1e-3}, "hbm_GB": 1e-3, "hbm_GBps": 0.01, "tdp_W": 1e5, "idle_W": 1e5}
    slow_gpu |= {"scale_up_GBps": 0.01, "gemm_efficiency_max": 0.01, "hbm_efficiency": 0.01, "kernel_launch_us": 1e4}
    data = {
        "name": "extreme",
        "model": {"layers": 4096, "hidden": 2**20, "heads": 1, "vocab": 2**24, "seq_len": 2**24, "ffn_hidden": 2**23},
        "cluster": {"gpu": "slow", "num_gpus": 1, "intra_node_GBps": 0.01, "inter_node_Gbps": 0.1},
        "training": {"global_batch": 2**26, "micro_batch": 2**16, "tokens": 1e16, "precision": "fp32"},
        "energy": {"pue": 3, "grid_kg_co2_per_kWh": 2},
        "cost": {"usd_per_gpu_hour": 1000, "usd_per_kWh": 10},
        "reliability": {"gpu_failures_per_hour": 0, "node_failures_per_hour": 0, "checkpoint_interval_s": 1},
        "framework": {"host_time_per_op_us": 1e4},
        "catalogue": {"gpus": {"slow": slow_gpu}},
        "simulation": {"engine": "analytical"},
    }
    path = write(tmp_path, data)
    for enabled in ("true", "false"):
        code, out, err = run_cli(capsys, str(path), "--json", "--set", f"reliability.enabled={enabled}")
        assert code == 0, err
        result = strict_json(out)
        assert result["feasible"] is False and result["run"]["days"] > 0
