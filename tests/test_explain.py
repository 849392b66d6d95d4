"""`simulator explain`: shares of time, energy and money that close, and the seed's claims checked."""

import json
from pathlib import Path

import pytest
from conftest import BOOKS_REL, scenario_file

from simulator.cli import main
from simulator.energy.power import gpu_power_W
from simulator.enums import Category
from simulator.explain.report import explain
from simulator.scenario import load_setup
from simulator.simulate import simulate

GPT3 = scenario_file("gpt3-175b-1024xa100")
SMALL = scenario_file("gpt3-125m-8xa100")


@pytest.fixture(scope="module")
def gpt3_report() -> dict:
    setup = load_setup(GPT3)
    result = simulate(setup)
    return {"report": explain(setup, result, with_variants=False), "result": result}


def test_shares_close_to_the_step(gpt3_report: dict) -> None:
    report, result = gpt3_report["report"], gpt3_report["result"]
    assert report["totals"]["time_s"] == pytest.approx(result.step.time_s, rel=BOOKS_REL)
    # energy per category sums to the step's facility energy per GPU
    assert report["totals"]["energy_J"] == pytest.approx(result.step.energy_J_per_gpu, rel=1e-9)
    gemm_rows = [s for s in report["shares"] if s["category"] == "gemm"]
    assert {s["label"] for s in gemm_rows} >= {"GEMM: Q/K/V projection", "GEMM: MLP up (+gate)", "GEMM: MLP down"}
    assert sum(s["time_s"] for s in gemm_rows) == pytest.approx(result.step.breakdown_s[Category.GEMM], rel=1e-9)


def test_power_never_exceeds_tdp() -> None:
    gpu = load_setup(GPT3).cluster.gpu
    assert all(gpu.idle_W <= gpu_power_W(c, gpu.idle_W, gpu.tdp_W) <= gpu.tdp_W for c in Category)


def test_claims_are_measured(gpt3_report: dict) -> None:
    claims = gpt3_report["report"]["claims"]
    share = claims["gemm_share_of_compute"]["measured"]
    assert 0.85 < share < 0.99  # GEMM-dominated compute, as the seed answer says ...
    assert claims["gemm_share_of_step_time"]["measured"] < 0.7  # ... but not of the step: comm, recompute, bubbles
    assert claims["model_state_bytes_per_parameter"]["unsharded"] == 16.0


def test_explain_cli_with_variants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(SMALL), "--json", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (tmp_path / "explain.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "explain.json").read_text()) == report
    recompute = {r["value"]: r["step_time_s"] for r in report["variants"]["recompute"]}
    assert recompute["full"] > recompute["none"]  # recomputation is real extra work
    flash = {r["value"]: r["peak_memory_GB"] for r in report["variants"]["flash_attention"]}
    assert flash[True] < flash[False]  # FlashAttention drops the score activations


def test_variants_of_a_partial_recompute_plan(capsys: pytest.CaptureFixture[str]) -> None:
    """A plan recomputing only some layers still gets its what-ifs: each recompute variant applies to
    every layer (the layer limit only means something with full recompute)."""
    args = ["--set", "parallelism.recompute=full", "--set", "parallelism.recompute_layers=2"]
    assert main(["explain", str(SMALL), "--json", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    recompute = {r["value"]: r["step_time_s"] for r in report["variants"]["recompute"]}
    assert recompute["none"] < report["totals"]["time_s"] < recompute["full"]


def test_variants_of_a_stack_that_overlaps_the_weight_gathers(capsys: pytest.CaptureFixture[str]) -> None:
    """A stack that overlaps ZeRO-1/2 weight gathers (framework.stack) still gets its ZeRO what-ifs:
    ZeRO 0 and 3 have no such gather, so those variants simply do without it."""
    args = ["--set", "cluster.gpu=h100-sxm-80gb", "--set", "framework.stack=megatron-bridge-25.11"]
    assert main(["explain", str(SMALL), "--json", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    zero = {r["value"]: r["step_time_s"] for r in report["variants"]["zero"]}
    assert sorted(zero) == [0, 1, 2, 3] and all(t > 0 for t in zero.values())
