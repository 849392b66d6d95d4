"""Validation against published training runs, with the tolerances we claim (README, "Accuracy").

Published cases come from ../shared/validation (copied into simulator/data/validation). The
tolerances are the accuracy the simulator has today with one catalogue for every case; a change
that makes a group worse fails here. The ZeRO-3 rows of Megatron-LM Table 2 are a known gap
(DeepSpeed-2021 ZeRO-3 ran far below what its communication volume explains) and are pinned as
a strict expected failure so a fix is noticed.
"""

from statistics import mean

import pytest
from published import CASES, result_of

from simulator.validation.cases import bundled_path, load_cases
from simulator.validation.runner import run_case

TIME = "iteration_time_s"


def errors(prefix: str, metric: str = TIME) -> dict[str, float]:
    out = {}
    for case in CASES:
        if case["id"].startswith(prefix) and metric in case["published"]:
            section, key = ("step", "time_s") if metric == TIME else ("run", metric)
            predicted = result_of(case["id"])[section][key]
            published = case["published"][metric]
            out[case["id"]] = 100 * (predicted - published) / published
    return out


@pytest.mark.parametrize(
    ("prefix", "mape_max", "worst_max"),
    [
        ("megatron2021_t1", 8.0, 12.0),  # Narayanan et al. 2021 Table 1
        ("megatron2021_t2_ptdp", 6.0, 10.0),  # Table 2, PTD-P rows
        ("nemo2407", 10.0, 18.0),  # NVIDIA NeMo 24.07 FP8 on H100
        ("seed_gpt3_175b_1024xa100", 8.0, 8.0),  # Megatron-LM's 34-day GPT-3 estimate
    ],
)
def test_step_time_within_stated_tolerance(prefix: str, mape_max: float, worst_max: float) -> None:
    errs = errors(prefix)
    assert errs, prefix
    assert mean(abs(e) for e in errs.values()) <= mape_max, errs
    assert max(abs(e) for e in errs.values()) <= worst_max, errs


def test_seed_runs_days_and_energy() -> None:
    """34 days on 1024 A100 (Narayanan et al.) within 10 %; the original GPT-3 run on ~10,000 V100
    (Patterson et al. 2021: 14.8 days, 1,287 MWh) within the validation file's +-25 %."""
    days = errors("seed_", "days")
    assert abs(days["seed_gpt3_175b_1024xa100"]) <= 10.0
    assert abs(days["seed_gpt3_175b_v100_patterson"]) <= 25.0
    assert abs(errors("seed_", "energy_mwh")["seed_gpt3_175b_v100_patterson"]) <= 25.0


def test_table2_ptdp_ranking_matches_published() -> None:
    """Within Megatron-LM Table 2, more GPUs for the same model and batch give shorter steps, in the
    published order."""
    for model in ("174.6B", "529.6B"):
        ids = [c["id"] for c in CASES if c["id"].startswith(f"megatron2021_t2_ptdp_{model}")]
        published = sorted(ids, key=lambda i: next(c for c in CASES if c["id"] == i)["published"][TIME])
        predicted = sorted(ids, key=lambda i: result_of(i)["step"]["time_s"])
        assert predicted == published


def test_table1_weak_scaling_order() -> None:
    """Table 1 grows model and GPUs together; the predicted hardware TFLOP/s per GPU rises with size as
    published (137 -> 163) within the spread the paper shows."""
    ids = [c["id"] for c in CASES if c["id"].startswith("megatron2021_t1")]
    tflops = [result_of(i)["step"]["hardware_flops"] / result_of(i)["step"]["time_s"] for i in ids]
    gpus = [next(c for c in CASES if c["id"] == i)["scenario"]["cluster"]["num_gpus"] for i in ids]
    per_gpu = [t / g / 1e12 for t, g in zip(tflops, gpus, strict=True)]
    assert per_gpu[-1] > per_gpu[0]
    assert all(120 <= x <= 185 for x in per_gpu), per_gpu


@pytest.mark.xfail(strict=True, reason="known gap: DeepSpeed-2021 ZeRO-3 overheads are not modelled (README)")
def test_zero3_rows_within_tolerance() -> None:
    errs = errors("megatron2021_t2_zero3")
    assert mean(abs(e) for e in errs.values()) <= 25.0, errs


def test_vtrain_multi_node() -> None:
    """vTrain's 109 multi-node measurements (Bang et al. 2024): MAPE <= 10 % (the issue's target;
    vTrain itself reports 14.7 %)."""
    rows = [r for c in load_cases(bundled_path("vtrain/ground_truth_multi.csv")) for r in run_case(c)]
    assert mean(abs(r.error_pct) for r in rows) <= 10.0


def test_vtrain_single_node_sample() -> None:
    """Every 12th of vTrain's 1,440 single-node measurements (the full set: `simulator validate`)."""
    cases = load_cases(bundled_path("vtrain/ground_truth_single.csv"))[::12]
    rows = [r for c in cases for r in run_case(c)]
    assert mean(abs(r.error_pct) for r in rows) <= 12.0
