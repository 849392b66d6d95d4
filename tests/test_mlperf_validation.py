"""MLPerf Training v3.0 / v3.1 GPT-3 175B submissions (512 to 10,752 H100, FP8): the targets of issue 13,
checked with `simulator validate` on the bundled cases (data/validation/mlperf_cases.yaml, each naming its
software stack: specs/stacks.yaml).

THE TARGETS ARE THE ISSUE'S, NOT THIS CODE'S: step-time MAPE <= 6 % over the public MLPerf v3.x cases and
no case worse than 12 %. Do not loosen them, drop cases or change a case's stack to pass: a stack profile
describes what the release did, from its own files, whatever the validation says."""

import contextlib
import io
import json
from typing import Any

import pytest

from simulator.catalog.stacks import stack_profiles
from simulator.cli import main
from simulator.validation.cases import bundled_path, load_cases

MLPERF = bundled_path("mlperf_cases.yaml")
TIME = "iteration_time_s"
MAPE_MAX_PCT = 6.0  # issue 13, "Targets"
WORST_MAX_PCT = 12.0
CASES = 11


@pytest.fixture(scope="module")
def validated() -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["validate", str(MLPERF), "--json", "--no-progress"])
    assert status == 0, "simulator validate refused the MLPerf cases (see stderr)"
    return json.loads(out.getvalue())


def test_targets_are_the_issues() -> None:
    assert (MAPE_MAX_PCT, WORST_MAX_PCT, CASES) == (6.0, 12.0, 11)


def test_every_case_names_the_stack_of_its_round() -> None:
    cases = load_cases(MLPERF)
    assert len(cases) == CASES
    for case in cases:
        stack = case.scenario["framework"]["stack"]
        assert stack in stack_profiles()
        assert stack == ("mlperf-nemo-v3.0" if case.id.startswith("mlperf30") else "mlperf-nemo-v3.1"), case.id


def test_step_time_meets_the_issue_targets(validated: dict[str, Any]) -> None:
    rows = [r for r in validated["rows"] if r["metric"] == TIME]
    assert len(rows) == CASES and all(r["predicted"] is not None and not r["note"] for r in rows)
    errors = {r["case"]: round(r["error_pct"], 1) for r in rows}
    mape = sum(abs(e) for e in errors.values()) / len(errors)
    assert mape <= MAPE_MAX_PCT, errors
    assert max(abs(e) for e in errors.values()) <= WORST_MAX_PCT, errors


def test_same_plan_same_round_same_step_time_per_gpu_work(validated: dict[str, Any]) -> None:
    """v3.1 at 4,096, 6,144 and 8,192 GPUs runs the same per-GPU work (16 micro-batches per pipeline): the
    published step times agree to 1 %, and so must the simulated ones (no jump from the fabric's size)."""
    rows = {r["case"]: r for r in validated["rows"]}
    times = [rows[f"mlperf31_nvidia_gpt3_{n}xh100"]["predicted"] for n in (4096, 6144, 8192)]
    assert max(times) / min(times) - 1 < 0.01, times
