"""A whole search: enumerate the plans, prune those that do not fit in memory, take what the store
already holds, simulate the rest (here, in local processes or on Dask), rank, find the Pareto front."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.scenario.errors import ConfigError
from simulator.search.evaluate import Candidate, load_base, screen
from simulator.search.executors import run_jobs
from simulator.search.progress import Progress
from simulator.search.rank import pareto_front, rank
from simulator.search.space import Bounds, enumerate_plans, frame_problem
from simulator.search.store import ResultStore


@dataclass(frozen=True)
class SearchOutcome:
    scenario: str
    objective: str
    candidates: int  # plans that pass the structural rules (each checked against the memory model)
    feasible: int  # of those, plans that fit in memory (all simulated or taken from the store)
    simulated: int  # simulated by this search
    reused: int  # found in the result store
    wall_s: float
    results: list[dict[str, Any]]  # every feasible plan, best first
    pareto: list[int]  # indices into results

    def as_json(self, top: int | None = None) -> dict[str, Any]:
        """Contract section 4, plus the objective, counts and the Pareto front (indices into the
        listed results). `top` keeps the first N results (None or 0: all)."""
        shown = self.results[:top] if top else self.results
        return {
            "candidates_evaluated": self.candidates,
            "feasible": self.feasible,
            "objective": self.objective,
            "simulated": self.simulated,
            "from_store": self.reused,
            "wall_s": self.wall_s,
            "pareto": [i for i in self.pareto if i < len(shown)],
            "results": shown,
        }


def search(
    path: str | Path,
    overrides: list[str],
    bounds: Bounds,
    objective: str = "time",
    workers: int = 1,
    scheduler: str | None = None,
    store: ResultStore | None = None,
    progress: bool = False,
    on_result: Callable[[int], None] | None = None,
) -> SearchOutcome:
    start_s = time.monotonic()
    raw, frame = load_base(path, overrides)
    problem = frame_problem(frame)
    if problem:
        raise ConfigError([problem])
    plans = list(enumerate_plans(frame, bounds))
    candidates = screen(raw, plans)
    if not candidates:
        raise ConfigError([f"{path}: no parallel plan satisfies the model, cluster, global batch and the bounds given"])
    fitting = _unique([c for c in candidates if c.fits])
    found = store.get_many(c.key for c in fitting) if store else {}
    todo = [c for c in fitting if c.key not in found]
    labels = {c.key: c.plan.label() for c in fitting}
    results = {k: _labelled(r, labels[k]) for k, r in found.items()}
    bar = Progress(len(todo), f"simulating {len(todo)} plans", progress)

    def arrived(key: str, result: dict[str, Any]) -> None:
        results[key] = _labelled(result, labels[key])
        if store:
            store.put(key, labels[key], results[key])
        bar.advance()
        if on_result:
            on_result(len(results))

    try:
        run_jobs([(c.key, c.raw) for c in todo], arrived, workers=workers, scheduler=scheduler)
    finally:
        bar.close()
    ranked = rank(list(results.values()), objective)
    wall_s = time.monotonic() - start_s
    outcome = SearchOutcome(
        scenario=str(raw.get("name", path)),
        objective=objective,
        candidates=len(candidates),
        feasible=sum(c.fits for c in candidates),
        simulated=len(todo),
        reused=len(found),
        wall_s=wall_s,
        results=ranked,
        pareto=pareto_front(ranked),
    )
    if store:
        counts = {"candidates": outcome.candidates, "feasible": outcome.feasible}
        counts |= {"simulated": len(todo), "reused": len(found)}
        store.record_search(outcome.scenario, objective, counts, wall_s)
    return outcome


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per store key (two plans that resolve to the same scenario are one plan)."""
    seen: dict[str, Candidate] = {}
    for c in candidates:
        seen.setdefault(c.key, c)
    return list(seen.values())


def _labelled(result: dict[str, Any], label: str) -> dict[str, Any]:
    return {**result, "label": label}
