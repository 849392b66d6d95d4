"""Mixture-of-experts accuracy against published runs: the targets of issue 12, checked with
`simulator validate` on the bundled MoE cases (data/validation/moe_cases.yaml), and the bundled MoE
scenarios run end to end.

Needs the MoE engine, memory model and catalogue (models deepseek-v3, qwen3-235b-a22b, qwen3-30b-a3b,
mixtral-8x22b; GPUs h800-sxm-80gb, gb200, gb300): run it once they are merged.

THE TARGETS ARE THE ISSUE'S, NOT THIS CODE'S: step-time MAPE <= 10 % in every public MoE group and no
case worse than 25 %, over every case of every group. Do not loosen them, drop cases, or move a case to
another group to pass: `test_targets_are_the_issues` and `test_every_case_is_simulated` fail when
someone does. A group that misses its target is a finding to report (docs/accuracy.md), fixed only by
physical constants that are cited and shared by every case (data/validation/README.md)."""

import contextlib
import io
import json
from collections import Counter
from typing import Any

import pytest
from conftest import BOOKS_REL, scenario_file

from simulator.cli import main
from simulator.explain.report import explain
from simulator.scenario import load_setup
from simulator.search.evaluate import load_base, resolve_plan, with_plan
from simulator.search.space import enumerate_plans, parse_bounds
from simulator.simulate import simulate
from simulator.validation.cases import bundled_path, load_cases

MOE = bundled_path("moe_cases.yaml")
TIME = "iteration_time_s"

# Issue 12, "Targets": public MoE cases.
MAPE_MAX_PCT = 10.0
WORST_MAX_PCT = 25.0
# Every public MoE group and its case count (data/validation/README.md).
GROUPS = {"moe_mcore_t11": 6, "moe_folding": 22, "moe_mbridge": 10, "moe_automodel": 4}
MOE_SCENARIOS = ("deepseek-v3-2048xh800", "mixtral-8x22b-128xh100", "qwen3-235b-a22b-256xh100", "deepseek-v3-256xgb200")


@pytest.fixture(scope="module")
def validated() -> dict[str, Any]:
    """`simulator validate moe_cases.yaml --json`, run once."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["validate", str(MOE), "--json", "--no-progress"])
    assert status == 0, "simulator validate refused the MoE cases (see stderr)"
    return json.loads(out.getvalue())


def test_targets_are_the_issues() -> None:
    """A guard: these numbers are issue 12's targets. Changing them is changing the issue."""
    assert (MAPE_MAX_PCT, WORST_MAX_PCT) == (10.0, 25.0)
    assert sum(GROUPS.values()) == 42


def test_every_case_is_simulated(validated: dict[str, Any]) -> None:
    """All 42 cases give a step time, fit in memory, and sit in their source's group: none is left out
    of the averages below."""
    rows = [r for r in validated["rows"] if r["metric"] == TIME]
    assert Counter(r["group"] for r in rows) == GROUPS
    assert {r["case"] for r in rows} == {c.id for c in load_cases(MOE)}
    assert [r["case"] for r in rows if r["predicted"] is None] == []
    # e.g. "predicted out of memory": only where the published run used what the contract cannot express
    assert {r["case"]: r["note"] for r in rows if r["note"]} == KNOWN_OUT_OF_MEMORY


# Published runs that fit only with memory savings the contract cannot express, named in their notes:
# Qwen3-235B on 256 GB200 MXFP8 offloads expert_fc1 and moe_act activations to the host ("required" in
# its recipe); Qwen3-30B on 8 H100 (AutoModel FSDP2, micro-batch 4) keeps 15 GB of logits in bf16 and
# fp32 on the last stage (memory/activations.head_bytes: the loss's fp32 copy, which fused loss kernels
# avoid; see docs/accuracy.md).
KNOWN_OUT_OF_MEMORY = {
    "mcm_qwen3_235b_256xgb200_mxfp8": "predicted out of memory",
    "automodel_qwen3_30b_8xh100_bf16": "predicted out of memory",
}

# Groups that miss the issue's targets today, each for a reason docs/accuracy.md gives: strict, so a
# group that starts meeting them fails here until it is taken off this list.
MISSES = {
    "moe_mbridge": "Qwen3-30B-A3B on 16 H100 runs at 6 % MFU (published 24.9 s, simulated 7.9 s): a host-bound "
    "small MoE the per-op host model does not capture (issue 13)",
    "moe_automodel": "DeepSeek-V3 with FSDP2 + full recompute comes out 20-25 % slow: AutoModel's per-GA-round "
    "pipelines and FSDP2 prefetching are not expressible",
}


@pytest.mark.parametrize(
    "group",
    [pytest.param(g, marks=pytest.mark.xfail(strict=True, reason=MISSES[g])) if g in MISSES else g for g in GROUPS],
)
def test_step_time_meets_the_issue_targets(validated: dict[str, Any], group: str) -> None:
    (summary,) = [s for s in validated["summary"] if s["group"] == group and s["metric"] == TIME]
    errors = {r["case"]: round(r["error_pct"], 1) for r in validated["rows"] if r["group"] == group}
    assert summary["cases"] == GROUPS[group]
    assert summary["mape"] <= MAPE_MAX_PCT, errors
    assert abs(summary["worst_pct"]) <= WORST_MAX_PCT, errors


def test_folding_plans_in_the_published_order(validated: dict[str, Any]) -> None:
    """MoE Parallel Folding: at every GPU count the folded plan is faster than plain MCore's (5-12 %
    apart in the paper); the simulator should order all ten pairs the same way (issue 12: "the published
    order of plans within a study")."""
    (ranking,) = [r for r in validated["ranking"] if r["group"] == "moe_folding"]
    assert (ranking["studies"], ranking["pairs"]) == (10, 10)
    assert ranking["agreement_pct"] == 100.0, ranking


@pytest.mark.parametrize("name", MOE_SCENARIOS)
def test_bundled_moe_scenario_runs_and_fits(name: str) -> None:
    """The published plans fit in memory and give a whole run (days, energy)."""
    setup = load_setup(scenario_file(name))
    result = simulate(setup).to_dict()
    assert result["feasible"], result["reason"]
    assert result["run"]["days"] > 0 and result["run"]["energy_mwh"] > 0
    breakdown = result["step"]["breakdown_s"]
    assert sum(breakdown.values()) == pytest.approx(result["step"]["time_s"], rel=0.01)
    assert breakdown.get("moe_imbalance", 0.0) == 0.0  # balanced routing by default


@pytest.mark.xfail(
    strict=True,
    reason="3.6M simulated vs 2.664M published GPU-hours (+37 %): DualPipe's balanced stages are not expressible; "
    "1F1B leaves the last stage (3 layers, the MTP module and two LM heads) the slowest",
)
def test_deepseek_v3_gpu_hours_near_the_published() -> None:
    """DeepSeek-V3 report Table 1: 2.664M H800 GPU-hours of pre-training (14.8T tokens). Judged loosely
    (+-25 %, as the seed's GPT-3 V100 run): the batch ramp, DualPipe (simulated as 1F1B with all-to-all
    overlap) and DeepSeek's own kernels are not modelled exactly."""
    result = simulate(load_setup(scenario_file("deepseek-v3-2048xh800"))).to_dict()
    assert result["run"]["gpu_hours"] == pytest.approx(2.664e6, rel=0.25)


def test_deepseek_v3_explain_by_role() -> None:
    """Every MoE part of DeepSeek-V3's step is there (router, permutation, routed and shared experts,
    MLA, MTP, all-to-all), the shares close to the step, and the Megatron-Core report's claim is measured."""
    setup = load_setup(scenario_file("deepseek-v3-256xgb200"))
    result = simulate(setup)
    report = explain(setup, result, with_variants=False)
    assert report["totals"]["time_s"] == pytest.approx(result.step.time_s, rel=BOOKS_REL)
    parts = report["moe"]
    for part in (
        "router",
        "token permutation",
        "routed expert GEMMs",
        "shared expert GEMMs",
        "MLA projections",
        "MTP projection",
    ):
        assert parts[part]["time_s"] > 0 and parts[part]["energy_J"] > 0 and parts[part]["cost_usd"] > 0, part
    assert 0 < report["claims"]["moe_gemm_share_of_step_time"]["measured"] < 1


def test_search_finds_the_published_qwen3_plan() -> None:
    """Around Megatron-Core's Qwen3-235B plan on 256 H100, the search's MoE knobs include it (EP32 ETP1
    with TP2 PP8, sequence parallelism on), and the resolver accepts it."""
    raw, frame = load_base(scenario_file("qwen3-235b-a22b-256xh100"), [])
    bounds = parse_bounds(
        ["tp=2", "pp=8", "cp=1", "zero=1", "micro_batch=1", "recompute=selective", "schedule=interleaved"], [], []
    )
    plans = list(enumerate_plans(frame, bounds))
    published = [p for p in plans if (p.ep, p.etp, p.virtual_stages) == (32, 1, 4)]
    assert published and all(p.sequence_parallel for p in published)
    assert {p.ep for p in plans} <= {1, 2, 4, 8, 16, 32}  # ep*etp divides tp*cp*dp = 32
    assert all(resolve_plan(with_plan(raw, p)) is not None for p in published)
