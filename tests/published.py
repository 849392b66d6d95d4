"""The published validation cases and their simulated results, computed once per test session."""

import json
from functools import cache
from typing import Any

import yaml

from simulator.scenario import setup_from_mapping
from simulator.simulate import simulate
from simulator.validation.cases import PUBLISHED_FILES, bundled_path

CASES: list[dict[str, Any]] = [
    case for name in PUBLISHED_FILES for case in yaml.safe_load(bundled_path(name).read_text())
]
BY_ID = {c["id"]: c for c in CASES}


@cache
def result_of(case_id: str) -> dict[str, Any]:
    """The contract JSON of one published case (round-tripped through json, as a user sees it)."""
    sc = BY_ID[case_id]["scenario"]
    return json.loads(json.dumps(simulate(setup_from_mapping(sc)).to_dict(), allow_nan=False))
