"""`simulator run` over every bundled scenario and every published case: one contract JSON object
(docs/contract.md section 3), the human report, --out, `python -m simulator`, determinism."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BOOKS_REL, ROOT, SCENARIO_FILES, scenario_file
from published import CASES, result_of

from simulator.cli import main

STEP_KEYS = {"time_s", "tokens_per_s", "model_flops", "hardware_flops", "mfu", "hfu", "breakdown_s"}
BREAKDOWN_KEYS = {"gemm", "attention", "other_compute", "comm_tp", "comm_pp", "comm_dp", "bubble", "optimizer", "idle"}
MEMORY_KEYS = {"per_gpu_bytes", "peak_bytes", "capacity_bytes", "fits"}
PER_GPU_KEYS = {"weights", "gradients", "optimizer", "activations", "other"}
RUN_KEYS = {
    "iterations",
    "days",
    "gpu_hours",
    "energy_mwh",
    "cost_usd",
    "co2_tonnes",
    "interruptions",
    "goodput",
    "checkpoint_interval_s",
}


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def check_contract(result: dict[str, Any], name: str, has_tokens: bool) -> None:
    """Every key of contract section 3, with sane types and a breakdown that sums to the step time."""
    assert result["name"] == name
    assert isinstance(result["feasible"], bool)
    if result["feasible"]:
        assert result["reason"] is None
    else:
        assert isinstance(result["reason"], str) and result["reason"]
    step = result["step"]
    assert STEP_KEYS <= step.keys()
    assert all(is_number(step[k]) for k in STEP_KEYS - {"breakdown_s"})
    assert step["time_s"] > 0 and step["tokens_per_s"] > 0
    assert 0 < step["model_flops"] <= step["hardware_flops"]
    assert 0 < step["mfu"] <= step["hfu"] < 1
    breakdown = step["breakdown_s"]
    assert BREAKDOWN_KEYS <= breakdown.keys()
    # no negative time beyond float round-off (idle = time - busy can come out as -1e-17)
    assert all(is_number(v) and v >= -1e-9 * step["time_s"] for v in breakdown.values()), breakdown
    assert sum(breakdown.values()) == pytest.approx(step["time_s"], rel=BOOKS_REL)
    memory = result["memory"]
    assert MEMORY_KEYS <= memory.keys()
    assert PER_GPU_KEYS <= memory["per_gpu_bytes"].keys()
    assert all(is_number(v) and v >= 0 for v in memory["per_gpu_bytes"].values())
    assert memory["peak_bytes"] > 0 and memory["capacity_bytes"] > 0
    assert memory["fits"] == (memory["peak_bytes"] <= memory["capacity_bytes"])
    assert memory["fits"] == result["feasible"]
    if has_tokens:
        run = result["run"]
        assert RUN_KEYS <= run.keys()
        assert all(is_number(run[k]) for k in RUN_KEYS)
        assert run["iterations"] > 0 and run["days"] > 0 and run["gpu_hours"] > 0
        assert 0 < run["goodput"] <= 1
    else:
        assert "run" not in result


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, Any], str]:
    """main(['run', ..., '--json']): exit 0 and exactly one JSON object on stdout."""
    code = main(["run", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)  # raises if stdout holds anything besides one JSON document
    assert isinstance(result, dict)
    return result, out


def test_bundled_scenarios_exist() -> None:
    assert len(SCENARIO_FILES) >= 3


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_bundled_scenario_json(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    result, _ = run_json(capsys, str(path))
    check_contract(result, raw["name"], "tokens" in raw["training"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_published_case_result(case: dict[str, Any]) -> None:
    sc = case["scenario"]
    check_contract(result_of(case["id"]), sc["name"], "tokens" in sc["training"])


@pytest.mark.parametrize("case", CASES[::8], ids=[c["id"] for c in CASES[::8]])
def test_published_case_through_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: dict[str, Any]) -> None:
    sc = case["scenario"]
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(sc, sort_keys=False))
    result, _ = run_json(capsys, str(path))
    check_contract(result, sc["name"], "tokens" in sc["training"])
    assert result == result_of(case["id"])


def test_human_report(capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-125m-8xa100")
    assert main(["run", str(path)]) == 0
    out, _ = capsys.readouterr()
    assert "gpt3-125m-8xa100" in out
    assert "step" in out.lower()
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-175b-1024xa100")
    out_dir = tmp_path / "out"
    result, stdout = run_json(capsys, str(path), "--out", str(out_dir))
    written = out_dir / "result.json"
    assert written.is_file()
    assert json.loads(written.read_text()) == result
    assert written.read_text().strip() == stdout.strip()
    resolved = [p for p in out_dir.iterdir() if p.suffix in (".yaml", ".yml")]
    assert len(resolved) == 1, sorted(p.name for p in out_dir.iterdir())
    # the resolved scenario is itself a valid scenario that simulates to the same result
    again, _ = run_json(capsys, str(resolved[0]))
    assert again == result


def test_out_dir_resolved_scenario_fills_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-125m-8xa100")
    run_json(capsys, str(path), "--out", str(tmp_path))
    resolved = yaml.safe_load(next(tmp_path.glob("*.y*ml")).read_text())
    assert resolved["parallelism"]["dp"] == 8
    assert resolved["model"]["hidden"] == 768  # the preset expanded


def test_out_dir_with_set_keeps_the_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-125m-8xa100")
    result, _ = run_json(capsys, str(path), "--set", "parallelism.tp=2", "--out", str(tmp_path))
    again, _ = run_json(capsys, str(next(tmp_path.glob("*.y*ml"))))
    assert again == result
    assert again["plan"]["tp"] == 2


def test_python_dash_m_matches_main(capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-125m-8xa100")
    _, in_process = run_json(capsys, str(path))
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == in_process


def test_same_input_gives_byte_identical_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-175b-1024xa100")
    _, first = run_json(capsys, str(path))
    _, second = run_json(capsys, str(path))
    assert first == second


def test_does_not_fit_is_a_result_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GPT-3 175B with no model parallelism on 8 A100 80GB: ~2.8 TB of model state per GPU."""
    data = {
        "name": "gpt3-175b-dp8",
        "model": {"preset": "gpt3-175b"},
        "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
        "parallelism": {"tp": 1, "pp": 1},
        "training": {"global_batch": 8, "micro_batch": 1},
    }
    path = tmp_path / "oom.yaml"
    path.write_text(yaml.safe_dump(data))
    result, _ = run_json(capsys, str(path))
    assert result["plan"]["dp"] == 8
    assert result["feasible"] is False
    assert isinstance(result["reason"], str) and result["reason"].strip()
    assert result["memory"]["fits"] is False
    assert result["memory"]["peak_bytes"] > result["memory"]["capacity_bytes"]
    check_contract(result, "gpt3-175b-dp8", has_tokens=False)


def test_analytical_run_into_an_old_out_dir_drops_the_old_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trace (and its Gantt) left by an earlier event-engine run would not belong to the new result."""
    path = scenario_file("gpt3-125m-8xa100")
    run_json(capsys, str(path), "--out", str(tmp_path))
    assert (tmp_path / "trace.json.gz").is_file() and (tmp_path / "timeline.png").is_file()
    run_json(capsys, str(path), "--set", "simulation.engine=analytical", "--out", str(tmp_path))
    assert not (tmp_path / "trace.json.gz").exists()
    assert not (tmp_path / "timeline.png").exists()
    assert (tmp_path / "breakdown.png").is_file()


def test_readme_example_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's first screen shows `simulator run scenarios/gpt3-175b-1024xa100.yaml` as it prints."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```\ngpt3-175b-1024xa100:") + len("```\n")
    shown = readme[start : readme.index("```", start)]
    assert main(["run", str(scenario_file("gpt3-175b-1024xa100"))]) == 0
    assert capsys.readouterr().out == shown
