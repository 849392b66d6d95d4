"""Rank simulated plans by an objective and find the Pareto front over time, cost and energy."""

from typing import Any

OBJECTIVES = ("time", "cost", "energy")  # what a search may rank by (search.evaluate.objective_values)


def rank_key(result: dict[str, Any], objective: str) -> tuple:
    """Sort key: the objective, ties broken by the other objectives, then by the plan label, so the
    order does not depend on which worker finished first."""
    assert objective in OBJECTIVES, objective
    others = [o for o in OBJECTIVES if o != objective]
    return (result["objectives"][objective], *(result["objectives"][o] for o in others), result["label"])


def rank(results: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Best first by `objective` (see rank_key)."""
    return sorted(results, key=lambda r: rank_key(r, objective))


def pareto_front(results: list[dict[str, Any]]) -> list[int]:
    """Indices of the results no other result beats on every objective (time, cost and energy all
    at most, one strictly less). O(n^2) over a few thousand plans is instantaneous."""
    points = [tuple(r["objectives"][o] for o in OBJECTIVES) for r in results]
    front = []
    for i, p in enumerate(points):
        dominated = any(
            all(a <= b for a, b in zip(q, p, strict=True)) and q != p for j, q in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front
