"""The published validation cases and their simulated results, computed once per test session."""

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import simulator
from simulator.scenario import setup_from_mapping
from simulator.simulate import simulate

VALIDATION = Path(simulator.__file__).parent / "data" / "validation"
CASES: list[dict[str, Any]] = [
    case
    for name in ("published_cases.yaml", "added_cases.yaml")
    for case in yaml.safe_load((VALIDATION / name).read_text())
]
BY_ID = {c["id"]: c for c in CASES}


@cache
def result_of(case_id: str) -> dict[str, Any]:
    """The contract JSON of one published case (round-tripped through json, as a user sees it)."""
    sc = BY_ID[case_id]["scenario"]
    return json.loads(json.dumps(simulate(setup_from_mapping(sc)).to_dict(), allow_nan=False))
