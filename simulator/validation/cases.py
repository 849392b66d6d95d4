"""Validation cases: the published-cases YAML format (and, through `tables`, the CSV tables of
measured runs), and the bundled files `simulator validate` runs by default."""

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from simulator.validation.case import METRICS, REFERENCE_FIGURES, Case, bundled_path, file_error
from simulator.validation.stacks import with_stacks
from simulator.validation.tables import load_table

__all__ = [
    "Case",
    "ENERGY_FILES",
    "MOE_FILES",
    "PUBLISHED_FILES",
    "bundled_path",
    "default_files",
    "load_cases",
    "load_published_cases",
]


def load_published_cases(path: Path) -> list[Case]:
    """A list of cases, each with `id`, `scenario` and `published`, and optionally `group` (default:
    from the id) and `study` (see data/validation/README.md). The scenarios themselves are checked
    when they run: a bad one is a row with a note, not an error of the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise file_error(path, [f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"]) from None
    if not isinstance(raw, list):
        raise file_error(path, ["expected a list of cases (id, scenario, published)"])
    problems = [p for i, c in enumerate(raw) for p in _case_problems(i, c)]
    if problems:
        raise file_error(path, problems)
    cases = [
        Case(
            id=str(c["id"]),
            group=c.get("group") or _group_of(str(c["id"])),
            scenario=c["scenario"],
            published={k: float(v) for k, v in c["published"].items()},
            source=c.get("source", ""),
            study=c.get("study", ""),
        )
        for c in raw
    ]
    if problems := _study_problems(cases):
        raise file_error(path, problems)
    return cases


def _case_problems(i: int, case: Any) -> list[str]:
    if not isinstance(case, dict):
        return [f"case {i + 1}: expected a mapping with id, scenario and published"]
    name = f"case {i + 1} ({case['id']})" if "id" in case else f"case {i + 1}"
    problems = [f"{name}: missing {key!r}" for key in ("id", "scenario", "published") if key not in case]
    if "scenario" in case and not isinstance(case["scenario"], dict):
        problems.append(f"{name}: scenario: expected a mapping")
    for key in ("group", "study"):
        if key in case and (not isinstance(case[key], str) or not case[key].strip()):
            problems.append(f"{name}: {key}: expected a name, got {case[key]!r}")
    published = case.get("published")
    if "published" in case and not isinstance(published, dict):
        problems.append(f"{name}: published: expected a mapping of figures")
    elif isinstance(published, dict):
        for key, value in published.items():
            if key not in METRICS and key not in REFERENCE_FIGURES:
                known = ", ".join([*METRICS, *REFERENCE_FIGURES])
                problems.append(f"{name}: published.{key}: unknown figure (one of {known})")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(f"{name}: published.{key}: expected a positive number, got {value!r}")
    return problems


# What the cases of one declared study may differ in: the parallel plan, the scenario's name, and the
# vocabulary (Megatron pads it to a multiple of 128 * tp, so it follows the plan). None: the whole section.
PLAN_KEYS: dict[str, tuple[str, ...] | None] = {
    "name": None,
    "parallelism": None,
    "training": ("micro_batch",),
    "model": ("vocab",),
}


def _setting(case: Case) -> str:
    """The case's scenario without its plan: what every case of its study must share."""
    out = {}
    for section, value in case.scenario.items():
        dropped = PLAN_KEYS.get(section, ())
        if dropped is None:
            continue
        out[section] = {k: v for k, v in value.items() if k not in dropped} if isinstance(value, dict) else value
    return json.dumps(out, sort_keys=True, default=str)


def _study_problems(cases: list[Case]) -> list[str]:
    """A declared study ranks plans: its cases share everything but the plan (parallelism, micro-batch,
    the vocabulary's padding), and there are at least two of them. They may come from two groups (a
    study is then reported under both: validation/ranking.py)."""
    studies: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        if c.study:
            studies[c.study].append(c)
    problems = []
    for study, members in studies.items():
        first = members[0]
        if len(members) < 2:
            problems.append(f"study {study}: only one case ({first.id}); a study ranks two plans or more")
        for other in members[1:]:
            if _setting(other) != _setting(first):
                problems.append(
                    f"study {study}: {other.id} differs from {first.id} in more than the parallel plan "
                    "(parallelism, training.micro_batch, model.vocab)"
                )
    return problems


def _group_of(case_id: str) -> str:
    """'megatron2021_t1_1.7B' -> 'megatron2021_t1'; 'nemo2407_...' -> 'nemo2407'; 'seed_...' -> 'seed'."""
    parts = case_id.split("_")
    if parts[0].startswith("megatron") and len(parts) > 2:
        return "_".join(parts[:3]) if parts[1] == "t2" else "_".join(parts[:2])
    return parts[0]


def load_cases(path: Path) -> list[Case]:
    """Any supported validation file: published-cases YAML, a vTrain CSV or the LLM Foundry table."""
    if path.is_dir():
        raise file_error(path, ["is a folder (name a published-cases YAML or a CSV table of measured runs)"])
    if not path.is_file():
        raise file_error(path, ["no such file"])
    try:
        cases = load_table(path) if path.suffix == ".csv" else load_published_cases(path)
    except (UnicodeDecodeError, csv.Error):  # a picture, an archive: bytes that are not text
        raise file_error(path, ["not a text file (a published-cases YAML or a CSV table of measured runs)"]) from None
    except OSError as exc:
        raise file_error(path, [f"cannot read ({exc.strerror or exc})"]) from None
    # the bundled cases run the software their sources ran (validation/stacks.py)
    return with_stacks(cases) if path.resolve().parent == bundled_path("").resolve() else cases


# The bundled published-case files: the shared copy, then the runs this project added.
PUBLISHED_FILES = ("published_cases.yaml", "added_cases.yaml")
# Published mixture-of-experts runs (the shared copy with `group` and `study` keys added): groups of
# their own (moe_*), by source.
MOE_FILES = ("moe_cases.yaml",)
# MLPerf Training v3.0 / v3.1 GPT-3 175B submissions (the shared copy with each case's software stack
# named: framework.stack, specs/stacks.yaml): groups mlperf30 and mlperf31, from the ids.
MLPERF_FILES = ("mlperf_cases.yaml",)
# Metered power and energy of published runs (group `energy`): Patterson et al. 2021 (GPT-3 on V100),
# Latif et al. 2024 (one 8x H100 node), Morrison et al. 2025 (OLMo 2 on H100); sources in the file.
ENERGY_FILES = ("energy_cases.yaml",)


def default_files() -> list[Path]:
    return [
        *(bundled_path(name) for name in (*PUBLISHED_FILES, *MOE_FILES, *MLPERF_FILES, *ENERGY_FILES)),
        bundled_path("vtrain/ground_truth_multi.csv"),
        bundled_path("vtrain/ground_truth_single.csv"),
        bundled_path("llmfoundry/mpt_benchmarks.csv"),
    ]
