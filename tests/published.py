"""The published validation cases and their simulated results, computed once per test session."""

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import simulator
from simulator.scenario import setup_from_mapping
from simulator.simulate import simulate

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(simulator.__file__).parent / "data" / "validation" / "published_cases.yaml").read_text()
)
BY_ID = {c["id"]: c for c in CASES}


@cache
def result_of(case_id: str) -> dict[str, Any]:
    """The contract JSON of one published case (round-tripped through json, as a user sees it)."""
    sc = BY_ID[case_id]["scenario"]
    return json.loads(json.dumps(simulate(setup_from_mapping(sc)).to_dict(), allow_nan=False))
