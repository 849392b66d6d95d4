"""The software stack of each bundled validation case (data/validation/case_stacks.yaml): its group's
stack profile (framework.stack, specs/stacks.yaml) and the settings its own recipe gives, written
into its scenario as it loads. The case's own keys win; the shared case files stay as delivered."""

from functools import cache
from typing import Any

import yaml

from simulator.validation.case import Case, bundled_path

STACKS_FILE = "case_stacks.yaml"


@cache
def _case_stacks() -> dict[str, Any]:
    return yaml.safe_load(bundled_path(STACKS_FILE).read_text())


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top` laid over it section by section (top's keys win)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_stacks(cases: list[Case]) -> list[Case]:
    """`cases` with the stacks and recipe settings case_stacks.yaml names for them."""
    table = _case_stacks()
    groups, recipes = table.get("groups", {}), table.get("cases", {})
    out = []
    for case in cases:
        overlay: dict[str, Any] = {}
        if case.group in groups:
            overlay["framework"] = {"stack": groups[case.group]}
        overlay = _merged(overlay, recipes.get(case.id, {}))
        if overlay:
            case = Case(case.id, case.group, _merged(overlay, case.scenario), case.published, case.source, case.study)
        out.append(case)
    return out
