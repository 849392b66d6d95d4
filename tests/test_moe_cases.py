"""The published mixture-of-experts runs (data/validation/moe_cases.yaml): bundled as groups of their own,
found by `simulator validate` by default, with the Parallel Folding paper's plan-only studies declared for
ranking. Their accuracy is checked in test_moe_validation.py (it needs the MoE engine and catalogue)."""

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from published import CASES

from simulator.cli import main
from simulator.validation.case import METRICS, REFERENCE_FIGURES
from simulator.validation.cases import MOE_FILES, PUBLISHED_FILES, Case, bundled_path, default_files, load_cases
from simulator.validation.ranking import rank_agreement, study_of
from simulator.validation.runner import Row

MOE = bundled_path("moe_cases.yaml")
SHARED_COPY = ROOT.parent / "shared" / "validation" / "moe_cases.yaml"
GROUPS = {"moe_mcore_t11": 6, "moe_folding": 22, "moe_mbridge": 10, "moe_automodel": 4}
TIME = "iteration_time_s"


@pytest.fixture(scope="module")
def moe_cases() -> list[Case]:
    return load_cases(MOE)


def test_moe_groups_by_source(moe_cases: list[Case]) -> None:
    """42 runs in four groups, one per source; every case has a step time to compare."""
    assert Counter(c.group for c in moe_cases) == GROUPS
    assert all(TIME in c.published for c in moe_cases)
    sources = {
        "moe_mcore_t11": "Megatron-Core MoE tech report",
        "moe_folding": "MoE Parallel Folding",
        "moe_mbridge": "Megatron-Bridge",
        "moe_automodel": "NeMo/Automodel",
    }
    for c in moe_cases:
        assert sources[c.group] in c.source, (c.id, c.source)


def test_moe_file_is_a_default_file_apart_from_the_dense_ones(moe_cases: list[Case]) -> None:
    """`simulator validate` runs it by default; the dense groups (and tests/published.py's cases, whose
    figures must not move) hold no MoE case."""
    assert MOE in default_files() and MOE_FILES == ("moe_cases.yaml",)
    assert "moe_cases.yaml" not in PUBLISHED_FILES
    dense_groups = {c.group for name in PUBLISHED_FILES for c in load_cases(bundled_path(name))}
    assert not dense_groups & set(GROUPS)
    assert not {c["id"] for c in CASES} & {c.id for c in moe_cases}


def test_bundled_copy_keeps_the_shared_content() -> None:
    """Only `group` and `study` were added to the shared copy (and a header comment)."""
    if not SHARED_COPY.is_file():
        pytest.skip(f"the shared copy is not beside this checkout ({SHARED_COPY})")
    shared = yaml.safe_load(SHARED_COPY.read_text())
    bundled = yaml.safe_load(MOE.read_text())
    assert [{k: v for k, v in c.items() if k not in ("group", "study")} for c in bundled] == shared


def test_folding_studies_are_declared_and_ranked(moe_cases: list[Case]) -> None:
    """Ten studies of two plans (folding vs mcore at one GPU count and batch), all in moe_folding; the
    published order of each pair is what rank_agreement compares."""
    declared = [c for c in moe_cases if c.study]
    studies = Counter(c.study for c in declared)
    assert len(studies) == 10 and set(studies.values()) == {2}
    assert {c.group for c in declared} == {"moe_folding"}
    for study in studies:
        pair = sorted(c.id.rsplit("_", 1)[1] for c in declared if c.study == study)
        assert pair == ["folding", "mcore"], study
    # no other case of the file falls into a study with another (sources name each row apart)
    assert Counter(study_of(c) for c in moe_cases if not c.study).most_common(1)[0][1] == 1
    # predictions in the published order: every pair agrees, every fastest plan found
    rows = [Row(c.id, c.group, TIME, c.published[TIME], c.published[TIME]) for c in moe_cases]
    (summary,) = rank_agreement(moe_cases, rows)
    assert (summary.group, summary.studies, summary.pairs, summary.agreement_pct) == ("moe_folding", 10, 10, 100.0)
    assert summary.fastest_found == 10
    # and reversed: none agrees
    flipped = [Row(c.id, c.group, TIME, c.published[TIME], 1.0 / c.published[TIME]) for c in moe_cases]
    assert rank_agreement(moe_cases, flipped)[0].agreement_pct == 0.0


def test_published_folding_is_faster(moe_cases: list[Case]) -> None:
    """The data the ranking checks: in every study the folded plan (ETP 1, larger EP) is the faster one."""
    by_study: dict[str, dict[str, float]] = {}
    for c in moe_cases:
        if c.study:
            by_study.setdefault(c.study, {})[c.id.rsplit("_", 1)[1]] = c.published[TIME]
    assert all(t["folding"] < t["mcore"] for t in by_study.values())


def test_moe_scenarios_use_contract_keys(moe_cases: list[Case]) -> None:
    """Every case's scenario passes the schema (the keys of docs/contract.md section 1b); what cannot be
    resolved yet is only the catalogue (presets and GPUs come with the MoE catalogue)."""
    from simulator.scenario.load import validate

    for c in moe_cases:
        sc = validate(c.scenario)
        assert sc.model.moe is not None, c.id
        assert set(c.published) <= {*METRICS, *REFERENCE_FIGURES}, c.id


def _two_cases(tmp_path: Path, extra: dict, second: dict | None = None) -> Path:
    """Megatron-LM Table 2's PTD-P and ZeRO-3 rows at 384 GPUs (one study), with `extra` keys added."""
    picked = [c for c in CASES if c["id"].startswith("megatron2021_t2") and c["id"].endswith("_174.6B_384")]
    cases = [{**picked[0], **extra}, {**picked[1], **extra, **(second or {})}]
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(cases))
    return path


def test_group_and_study_keys_drive_summary_and_ranking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file's own `group` replaces the one read from the id; its `study` makes the ranking pair."""
    path = _two_cases(tmp_path, {"group": "mine", "study": "ptdp_vs_zero3"})
    assert main(["validate", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["group"] for s in data["summary"]] == ["mine"]
    assert [(r["group"], r["studies"], r["pairs"]) for r in data["ranking"]] == [("mine", 1, 1)]


@pytest.mark.parametrize(
    ("extra", "second", "needle"),
    [
        ({"group": 3}, None, "group: expected a name, got 3"),
        ({"study": ""}, None, "study: expected a name, got ''"),
        ({"study": "s"}, {"study": "t"}, "study s: only one case"),
        (
            {"study": "s"},
            {"scenario": {"name": "x", "model": {"preset": "gpt3-175b"}, "cluster": {"gpu": "b200", "num_gpus": 8}}},
            "differs from megatron2021_t2_ptdp_174.6B_384 in more than the parallel plan",
        ),
    ],
)
def test_bad_group_or_study_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict, second: dict | None, needle: str
) -> None:
    path = _two_cases(tmp_path, extra, second)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in err, err
