"""`simulator plot`: the PNGs of a run, a search and a compare, redrawn from the JSON files alone."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import scenario_file

from simulator.cli import main
from simulator.results.labels import gpu_count, plan_label
from simulator.scenario import load_setup
from simulator.simulate import simulate

SMALL = scenario_file("gpt3-125m-8xa100")
STEP_PLOTS = ("breakdown.png", "memory.png", "timeline.png", "utilisation.png", "run_power.png")


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000, path


def plan_result(overrides: list[str]) -> dict[str, Any]:
    """One search entry: a full result plus the plan's parallelism and training settings (contract section 4)."""
    setup = load_setup(SMALL, overrides)
    r = simulate(setup).to_dict()
    r["parallelism"] = {k: r["plan"][k] for k in ("tp", "pp", "dp", "cp", "virtual_stages", "zero", "recompute")}
    r["training"] = {"micro_batch": setup.scenario.training.micro_batch}
    return r


@pytest.fixture(scope="module")
def search() -> dict[str, Any]:
    plans = [
        ["parallelism.tp=1"],
        ["parallelism.tp=2"],
        ["parallelism.tp=4"],
        ["parallelism.tp=2", "parallelism.pp=2", "parallelism.recompute=full"],
    ]
    results = sorted((plan_result(o) for o in plans), key=lambda r: r["step"]["time_s"])
    return {"candidates_evaluated": 7, "feasible": len(results), "objective": "time", "results": results}


def test_plot_redraws_the_step_plots_of_run_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SMALL), "--json", "--out", str(tmp_path)]) == 0
    first = {name: (tmp_path / name).read_bytes() for name in STEP_PLOTS}
    for name in STEP_PLOTS:
        (tmp_path / name).unlink()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "result.json")]) == 0
    err = capsys.readouterr().err
    for name in STEP_PLOTS:
        assert_png(tmp_path / name)
        assert f"wrote {tmp_path / name}" in err
        # one code path from the JSON and the trace: the same picture as `run --out`
        assert (tmp_path / name).read_bytes() == first[name], name


def test_result_json_has_the_memory_of_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SMALL), "--json", "--set", "parallelism.pp=2"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    stages = memory["per_stage_bytes"]
    assert len(stages) == 2 and all(s.keys() == memory["per_gpu_bytes"].keys() for s in stages)
    assert max(sum(s.values()) for s in stages) == pytest.approx(memory["peak_bytes"])


def test_plot_without_trace_skips_the_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SMALL), "--json", "--out", str(tmp_path / "run")]) == 0
    (tmp_path / "run" / "trace.json.gz").unlink()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run" / "result.json"), "--out", str(tmp_path / "png")]) == 0
    err = capsys.readouterr().err
    assert "timeline.png skipped" in err
    # run_power.png is drawn from the JSON alone (run.power_window)
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["breakdown.png", "memory.png", "run_power.png", "utilisation.png"]


def test_plot_skips_a_trace_of_another_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SMALL), "--json", "--out", str(tmp_path)]) == 0
    path = tmp_path / "trace.json.gz"
    trace = json.loads(gzip.open(path, "rt").read())
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            e["ts"] *= 2
    with gzip.open(path, "wt") as fh:
        json.dump(trace, fh)
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "result.json"), "--out", str(tmp_path / "png")]) == 0
    assert "timeline.png skipped" in capsys.readouterr().err
    assert not (tmp_path / "png" / "timeline.png").exists()


def test_plot_of_a_search(tmp_path: Path, search: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "search.json").write_text(json.dumps(search))
    assert main(["plot", str(tmp_path / "search.json")]) == 0
    err = capsys.readouterr().err
    for name in ("search_pareto.png", "search_top.png"):
        assert_png(tmp_path / name)
        assert f"wrote {tmp_path / name}" in err


def test_plot_of_a_search_without_run_and_with_its_pareto(
    tmp_path: Path, search: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """No training.tokens: energy per step instead of the run's cost; the search's own Pareto indices."""
    results = [{k: v for k, v in r.items() if k != "run"} for r in search["results"]]
    (tmp_path / "search.json").write_text(json.dumps({**search, "results": results, "pareto": [0, 2]}))
    assert main(["plot", str(tmp_path / "search.json"), "--out", str(tmp_path / "png")]) == 0
    assert_png(tmp_path / "png" / "search_pareto.png")


def test_plot_of_a_compare_list_with_scaling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = [simulate(load_setup(SMALL, [f"cluster.num_gpus={n}"])).to_dict() for n in (8, 16, 32)]
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["plot", str(tmp_path / "results.json")]) == 0
    for name in ("compare.png", "compare_scaling.png"):
        assert_png(tmp_path / name)


@pytest.mark.parametrize(
    "content",
    [None, "not json {", '{"hello": 1}', "[]", '{"name": "x", "step": {}, "memory": {}}'],
    ids=["missing", "not-json", "unknown-object", "empty-list", "run-without-keys"],
)
def test_bad_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None) -> None:
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    assert main(["plot", str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_plan_label_and_gpu_count() -> None:
    r = {
        "parallelism": {"tp": 8, "pp": 8, "dp": 16, "cp": 1, "virtual_stages": 2, "zero": 1, "recompute": "full"},
        "training": {"micro_batch": 1},
    }
    assert plan_label(r) == "TP8 PP8 DP16 v2 Z1 mb1 full"
    assert gpu_count(r) == 1024
    assert gpu_count({"plan": {"tp": 2, "pp": 1, "dp": 4, "cp": 2}}) == 16
    assert gpu_count({}) is None
