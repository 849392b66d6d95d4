"""`simulator search` end to end: contract JSON, memory pruning, ranking, the result store (resume
after an interruption or a kill), local processes and a Dask cluster on loopback."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.cli import main
from simulator.memory.budget import memory_budget
from simulator.scenario import canonical, setup_from_mapping
from simulator.scenario.canonical import scenario_key
from simulator.search.driver import search
from simulator.search.evaluate import load_base, resolve_plan, with_plan
from simulator.search.space import enumerate_plans, parse_bounds
from simulator.search.store import ResultStore, default_store_path

# GPT-3 6.7B on one node of A100 40GB: small enough to search in seconds, big enough that many
# plans do not fit (no recompute and no model parallelism needs ~120 GB per GPU).
SCENARIO = {
    "name": "gpt3-6.7b-8xa100-40",
    "model": {"preset": "gpt3-6.7b"},
    "cluster": {"gpu": "a100-sxm-40gb", "num_gpus": 8},
    "training": {"global_batch": 32, "precision": "bf16"},
}
BOUNDS = ["--fix", "zero=0,1", "--fix", "recompute=none,full", "--max", "micro_batch=2", "--max", "pp=4"]


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "g67.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    return path


def run_search(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["search", *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def full(scenario_path: Path) -> dict[str, Any]:
    """The reference search: all results, no store, in this process."""
    bounds = parse_bounds(["zero=0,1", "recompute=none,full"], ["micro_batch=2", "pp=4"], [])
    return search(scenario_path, [], bounds).as_json()


def test_contract_shape_and_pruning(full: dict[str, Any]) -> None:
    assert {"candidates_evaluated", "feasible", "results"} <= set(full)
    assert 0 < full["feasible"] < full["candidates_evaluated"]  # the memory model pruned some
    assert len(full["results"]) == full["feasible"]
    for r in full["results"]:
        assert r["feasible"] is True and r["memory"]["fits"] is True
        assert r["memory"]["peak_bytes"] <= r["memory"]["capacity_bytes"]
        assert {"parallelism", "training", "step", "memory", "plan", "label", "objectives"} <= set(r)
        assert r["parallelism"]["tp"] * r["parallelism"]["pp"] * r["parallelism"]["dp"] == 8
        assert r["plan"]["tp"] == r["parallelism"]["tp"]
    times = [r["step"]["time_s"] for r in full["results"]]
    assert times == sorted(times)  # no training.tokens: the time objective is the step time


def test_pruned_plans_really_do_not_fit(scenario_path: Path, full: dict[str, Any]) -> None:
    raw, frame = load_base(scenario_path, [])
    kept = {r["label"] for r in full["results"]}
    bounds = parse_bounds(["zero=0,1", "recompute=none,full"], ["micro_batch=2", "pp=4"], [])
    pruned = [p for p in enumerate_plans(frame, bounds) if p.label() not in kept]
    assert len(pruned) == full["candidates_evaluated"] - full["feasible"]
    for plan in pruned[::7]:
        setup = resolve_plan(with_plan(raw, plan))
        assert setup is not None and not memory_budget(setup).fits


def test_best_plan_simulates_the_same_with_simulator_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], full: dict[str, Any]
) -> None:
    best = full["results"][0]
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, "parallelism": best["parallelism"], "training": best["training"]}))
    assert main(["run", str(path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["step"] == best["step"]
    assert again["memory"] == best["memory"]


def test_pareto_front_is_non_dominated(full: dict[str, Any]) -> None:
    results, front = full["results"], set(full["pareto"])
    assert 0 in front  # the fastest plan is never dominated
    keys = ("time", "cost", "energy")
    for i in front:
        mine = [results[i]["objectives"][k] for k in keys]
        for other in results:
            theirs = [other["objectives"][k] for k in keys]
            assert not (all(a <= b for a, b in zip(theirs, mine, strict=True)) and theirs != mine)


@pytest.mark.parametrize("objective", ["cost", "energy"])
def test_other_objectives_rank_by_their_value(
    capsys: pytest.CaptureFixture[str], scenario_path: Path, objective: str
) -> None:
    data = run_search(capsys, str(scenario_path), *BOUNDS, "--objective", objective, "--top", "5", "--no-store")
    values = [r["objectives"][objective] for r in data["results"]]
    assert len(values) == 5 and values == sorted(values)
    assert data["objective"] == objective


def test_workers_give_the_same_ranking(
    capsys: pytest.CaptureFixture[str], scenario_path: Path, full: dict[str, Any]
) -> None:
    data = run_search(capsys, str(scenario_path), *BOUNDS, "--workers", "2", "--top", "0", "--no-store")
    assert [r["label"] for r in data["results"]] == [r["label"] for r in full["results"]]
    assert [r["step"] for r in data["results"]] == [r["step"] for r in full["results"]]


def test_dask_cluster_on_loopback_gives_the_same_ranking(
    capsys: pytest.CaptureFixture[str], scenario_path: Path, full: dict[str, Any]
) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        data = run_search(capsys, str(scenario_path), *BOUNDS, "--scheduler", address, "--top", "0", "--no-store")
    assert [r["label"] for r in data["results"]] == [r["label"] for r in full["results"]]
    assert [r["step"] for r in data["results"]] == [r["step"] for r in full["results"]]


def test_interrupted_search_resumes_without_recomputing(tmp_path: Path, scenario_path: Path, full: dict) -> None:
    bounds = parse_bounds(["zero=0,1", "recompute=none,full"], ["micro_batch=2", "pp=4"], [])
    store = ResultStore(tmp_path / "results.sqlite")

    def stop_after_five(done: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(scenario_path, [], bounds, store=store, on_result=stop_after_five)
    assert store.count() == 5
    again = search(scenario_path, [], bounds, store=store).as_json()
    assert again["from_store"] == 5
    assert again["simulated"] == full["feasible"] - 5
    assert again["results"] == full["results"]
    third = search(scenario_path, [], bounds, store=store).as_json()
    assert third["simulated"] == 0 and third["from_store"] == full["feasible"]
    assert third["results"] == full["results"]
    store.close()


def test_killed_search_loses_nothing_it_finished(tmp_path: Path, scenario_path: Path, full: dict) -> None:
    """SIGKILL a search process halfway; the rerun takes every stored result and simulates only the rest."""
    db = tmp_path / "killed.sqlite"
    cmd = [sys.executable, "-m", "simulator", "search", str(scenario_path), *BOUNDS, "--store", str(db), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stored = 0
    deadline = time.monotonic() + 60
    try:
        while stored < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=1) as con:
                        stored = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:  # the table is not created yet
                    pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 3 <= stored < full["feasible"], "the search finished before it could be killed"
    store = ResultStore(db)
    kept = store.count()
    assert kept >= stored  # everything committed before the kill survived it
    bounds = parse_bounds(["zero=0,1", "recompute=none,full"], ["micro_batch=2", "pp=4"], [])
    again = search(scenario_path, [], bounds, store=store).as_json()
    store.close()
    assert again["from_store"] == kept
    assert again["simulated"] == full["feasible"] - kept
    assert again["results"] == full["results"]


def test_store_key_changes_with_the_scenario(tmp_path: Path, scenario_path: Path) -> None:
    """A result is reused only for the same resolved scenario: another GPU price is another key."""
    store = ResultStore(tmp_path / "s.sqlite")
    bounds = parse_bounds(["tp=8", "zero=1", "recompute=none", "micro_batch=1"], [], [])
    first = search(scenario_path, [], bounds, store=store)
    other = search(scenario_path, ["cost.usd_per_gpu_hour=9.0"], bounds, store=store)
    assert first.simulated == first.feasible > 0
    assert other.simulated == other.feasible and other.reused == 0
    store.close()


def test_store_key_changes_with_the_simulators_model(monkeypatch: pytest.MonkeyPatch, scenario_path: Path) -> None:
    """A recalibrated catalogue or changed code must not reuse stored results of the old model."""
    raw, _ = load_base(scenario_path, [])
    plan = next(iter(enumerate_plans(load_base(scenario_path, [])[1], parse_bounds(["tp=8"], [], []))))
    setup = resolve_plan(with_plan(raw, plan))
    assert setup is not None
    before = scenario_key(setup)
    assert scenario_key(setup) == before  # deterministic
    monkeypatch.setattr(canonical, "code_fingerprint", lambda: "another model")
    assert scenario_key(setup) != before


@pytest.mark.parametrize(("sp", "kept"), [(True, True), (False, False)])
def test_plans_keep_the_scenarios_other_parallelism_settings(tmp_path: Path, sp: bool, kept: bool) -> None:
    """tp_comm_overlap is not a search knob: the scenario's choice stays wherever it still applies
    (with sequence parallelism), and is dropped where it would make the plan invalid."""
    path = tmp_path / "overlap.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, "parallelism": {"tp_comm_overlap": True, "sequence_parallel": sp}}))
    raw, frame = load_base(path, [])
    plan = next(iter(enumerate_plans(frame, parse_bounds(["tp=2", "pp=1", "zero=1", "recompute=full"], [], []))))
    assert ("tp_comm_overlap" in with_plan(raw, plan)["parallelism"]) is kept
    setup = resolve_plan(with_plan(raw, plan))
    assert setup is not None and setup.plan.tp_comm_overlap is kept


def test_out_dir_writes_report_store_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario_path: Path
) -> None:
    out = tmp_path / "out"
    data = run_search(capsys, str(scenario_path), *BOUNDS, "--top", "3", "--out", str(out))
    assert len(data["results"]) == 3
    written = json.loads((out / "search.json").read_text())
    assert len(written["results"]) == written["feasible"]  # the file keeps every plan
    assert written["results"][:3] == data["results"]
    assert (out / "results.sqlite").is_file()  # the store sits next to the outputs by default
    assert "| plan |" in (out / "search.md").read_text()
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_default_store_in_the_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_store_path(None).is_relative_to(tmp_path)
    assert default_store_path(tmp_path / "o") == tmp_path / "o" / "results.sqlite"


def test_human_report(capsys: pytest.CaptureFixture[str], scenario_path: Path) -> None:
    assert main(["search", str(scenario_path), *BOUNDS, "--top", "4", "--no-store"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "fit in memory" in lines[0]
    table = lines[lines.index(next(x for x in lines if x.startswith("-"))) + 1 :]
    assert [line.split()[0] for line in table] == ["1", "2", "3", "4"]
    assert "candidate plans" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "0"], "--workers"),
        (["--top", "-1"], "--top"),
        (["--fix", "tpp=2"], "--fix tpp=2"),
        (["--fix", "tp=3"], "no parallel plan"),
        (["--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "--workers"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], scenario_path: Path, args: list[str], needle: str
) -> None:
    assert main(["search", str(scenario_path), *args, "--no-store"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_unreachable_scheduler_is_a_clear_error(capsys: pytest.CaptureFixture[str], scenario_path: Path) -> None:
    pytest.importorskip("distributed")
    args = ["search", str(scenario_path), "--fix", "tp=8", "--fix", "zero=1", "--no-store"]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scheduler" in err[0]


def test_search_ignores_the_files_own_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The scenario's parallelism section may be any plan, even an invalid one: the search replaces it."""
    path = tmp_path / "bad-plan.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, "parallelism": {"tp": 3, "pp": 5}}))
    data = run_search(capsys, str(path), "--fix", "tp=8", "--fix", "zero=1", "--fix", "recompute=full", "--no-store")
    assert data["results"] and all(r["parallelism"]["tp"] == 8 for r in data["results"])
    with pytest.raises(Exception):  # noqa: B017 (the same file is not a valid `run`)
        setup_from_mapping(yaml.safe_load(path.read_text()))


def test_sweep_over_cluster_sizes(capsys: pytest.CaptureFixture[str], scenario_path: Path) -> None:
    """One search over two cluster sizes: every plan tagged with its sweep point, the best of each
    point named, and per point the same plans as a search of that size alone."""
    bounds = ["--fix", "zero=1", "--fix", "recompute=full", "--fix", "micro_batch=1", "--no-store", "--top", "0"]
    data = run_search(capsys, str(scenario_path), *bounds, "--sweep", "cluster.num_gpus=8,16")
    assert [p["values"] for p in data["sweep"]] == [{"cluster.num_gpus": 8}, {"cluster.num_gpus": 16}]
    for point in data["sweep"]:
        mine = [r for r in data["results"] if r["sweep"] == point["values"]]
        assert point["feasible"] == len(mine) > 0
        assert point["best"] == mine[0] == data["results"][point["rank"] - 1]
        gpus = point["values"]["cluster.num_gpus"]
        assert all(r["parallelism"]["tp"] * r["parallelism"]["pp"] * r["parallelism"]["dp"] == gpus for r in mine)
        alone = run_search(capsys, str(scenario_path), *bounds, "--set", f"cluster.num_gpus={gpus}")
        assert [r["label"] for r in alone["results"]] == [r["label"] for r in mine]
    assert data["feasible"] == sum(p["feasible"] for p in data["sweep"])


@pytest.mark.parametrize(
    ("sweep", "needle"),
    [
        ("parallelism.tp=2,4", "chooses parallelism.tp"),
        ("cluster.num_gpus", "KEY.PATH=V1"),
        ("cluster.num_gpus=12", "12"),
    ],
)
def test_bad_sweep_exits_2(capsys: pytest.CaptureFixture[str], scenario_path: Path, sweep: str, needle: str) -> None:
    assert main(["search", str(scenario_path), "--sweep", sweep, "--no-store"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_ctrl_c_keeps_the_store_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, scenario_path: Path
) -> None:
    import simulator.search.driver as driver

    real = driver.run_jobs

    def interrupted(jobs, on_result, **kw):  # noqa: ANN001, ANN003, ANN202
        real(jobs[:3], on_result, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run_jobs", interrupted)
    db = tmp_path / "s.sqlite"
    assert main(["search", str(scenario_path), *BOUNDS, "--store", str(db)]) == 130
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "interrupted" in err and "3 results" in err and "resume" in err


def test_nothing_fits_is_a_result_with_the_leanest_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "oom.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "gpt3-175b-8",
                "model": {"preset": "gpt3-175b"},
                "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
                "training": {"global_batch": 8},
            }
        )
    )
    data = run_search(capsys, str(path), "--no-store", "--fix", "micro_batch=1")
    assert data["feasible"] == 0 and data["results"] == [] and data["candidates_evaluated"] > 0
    assert data["leanest"]["peak_bytes"] > data["leanest"]["capacity_bytes"]
    assert main(["search", str(path), "--no-store", "--fix", "micro_batch=1"]) == 0
    assert "no plan fits" in capsys.readouterr().out


def test_refine_estimates_everything_then_simulates_the_best_k(
    capsys: pytest.CaptureFixture[str], scenario_path: Path, full: dict[str, Any]
) -> None:
    data = run_search(capsys, str(scenario_path), *BOUNDS, "--refine", "5", "--top", "0", "--no-store")
    assert data["estimated"] == data["feasible"] == full["feasible"]
    assert data["simulated"] == 5
    methods = [r["step"]["method"] for r in data["results"]]
    assert methods == ["event"] * 5 + ["analytical"] * (data["feasible"] - 5)
    top = data["results"][:5]
    assert [r["objectives"]["time"] for r in top] == sorted(r["objectives"]["time"] for r in top)
    # the refined plans simulate exactly as in the full event-by-event search
    by_label = {r["label"]: r for r in full["results"]}
    assert all(r["step"] == by_label[r["label"]]["step"] for r in top)
    # and the analytical pre-ranking keeps the event search's best plan among them
    assert full["results"][0]["label"] in {r["label"] for r in top}


def test_refine_must_be_positive(capsys: pytest.CaptureFixture[str], scenario_path: Path) -> None:
    assert main(["search", str(scenario_path), "--refine", "0", "--no-store"]) == 2
    assert "--refine" in capsys.readouterr().err
