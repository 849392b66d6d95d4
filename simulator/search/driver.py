"""A whole search: enumerate the plans, prune those that do not fit in memory, take what the store
already holds, simulate the rest (here, in local processes or on Dask), rank, find the Pareto front.

A sweep (`--sweep cluster.num_gpus=256,512,1024`) searches the plans of every value of one or more
scenario keys at once: all candidates go to the same workers, and the outcome names the best plan
of each sweep point."""

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

from simulator.scenario.errors import ConfigError, printable
from simulator.scenario.load import parse_value
from simulator.scenario.rules import node_problem
from simulator.scenario.yaml_input import InputLimitError, describe_yaml_error
from simulator.search.evaluate import Candidate, load_base, screen, with_engine
from simulator.search.executors import run_jobs
from simulator.search.progress import Progress
from simulator.search.rank import pareto_front, rank, rank_key
from simulator.search.space import Bounds, bound_problems, empty_reasons, enumerate_plans
from simulator.search.store import ResultStore

# The README's accuracy table: published ZeRO-3 runs are predicted with larger errors than any other
# kind of plan (the simulator's gathers come out better hidden than 2021 DeepSpeed's were), so a
# ZeRO-3 plan ranked near the top says so in the table, the report and its JSON entry.
ZERO3_CAVEAT = "ZeRO-3/FSDP step times are less validated than other plans' (docs/accuracy.md, known gaps)"


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
    sweep: list[dict[str, Any]] = field(default_factory=list)  # per sweep point: its values, best result index
    leanest: dict[str, Any] | None = None  # when nothing fits: the plan that needs the least memory
    estimated: int = 0  # with refine: plans estimated analytically by this search
    store_error: str | None = None  # why the store stopped taking results (a full disk); the search went on

    def as_json(self, top: int | None = None) -> dict[str, Any]:
        """Contract section 4, plus the objective, counts and the Pareto front (indices into the
        listed results). `top` keeps the first N results (None or 0: all)."""
        shown = self.results[:top] if top else self.results
        return {
            "candidates_evaluated": self.candidates,
            "feasible": self.feasible,
            "objective": self.objective,
            "simulated": self.simulated,
            **({"estimated": self.estimated} if self.estimated else {}),
            "from_store": self.reused,
            "wall_s": self.wall_s,
            "pareto": [i for i in self.pareto if i < len(shown)],
            **({"sweep": self.sweep} if self.sweep else {}),
            **({"leanest": self.leanest} if self.leanest else {}),
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
    sweep: list[tuple[str, list[Any]]] | None = None,
    refine: int | None = None,
) -> SearchOutcome:
    """`refine` K: estimate every plan with the analytical engine first (same compiled program,
    pipeline bubble by formula, ~5x cheaper), then simulate only the best K event by event; the
    other plans keep their estimate (`step.method` says which) and are listed after the K."""
    start_s = time.monotonic()
    points = sweep_points(sweep or [])
    candidates: list[Candidate] = []
    point_of: dict[str, dict[str, Any]] = {}  # store key -> its sweep point
    name = str(path)
    for point in points:
        raw, frame = load_base(path, overrides + [f"{k}={v}" for k, v in point.items()])
        name = str(raw.get("name", path))
        problem = node_problem(frame.num_gpus, frame.gpus_per_node)
        if problem:
            raise ConfigError([f"{problem}{_at(point)}"])
        if problems := bound_problems(frame, bounds):
            raise ConfigError([f"{p}{_at(point)}" for p in problems])
        plans = list(enumerate_plans(frame, bounds))
        found_here = screen(raw, plans)
        if not found_here:
            why = "no parallel plan satisfies the model, cluster, global batch and the bounds given"
            reasons = "; ".join(empty_reasons(frame, bounds) if not plans else [])
            raise ConfigError([f"{path}: {why}{_at(point)}" + (f": {reasons}" if reasons else "")])
        candidates += found_here
        point_of.update({c.key: point for c in found_here})
    fitting = _unique([c for c in candidates if c.fits])
    labels = {c.key: c.plan.label() for c in fitting}
    run = _Runner(store, workers, scheduler, progress, on_result)
    if refine is None:
        results = run(fitting, labels, point_of, "simulating")
        ranked = rank(list(results.values()), objective)
    else:
        ranked = _refined(fitting, labels, point_of, run, objective, refine)
    wall_s = time.monotonic() - start_s
    outcome = SearchOutcome(
        scenario=name,
        objective=objective,
        candidates=len(candidates),
        feasible=sum(c.fits for c in candidates),
        simulated=run.simulated,
        estimated=run.estimated,
        reused=run.reused,
        wall_s=wall_s,
        results=ranked,
        pareto=pareto_front(ranked),
        sweep=_best_per_point(points, ranked) if sweep else [],
        leanest=None if fitting else _leanest(candidates),
    )
    if run.store:
        counts = {"candidates": outcome.candidates, "feasible": outcome.feasible}
        counts |= {"simulated": run.simulated, "reused": run.reused}
        run.stored(lambda s: s.record_search(outcome.scenario, objective, counts, wall_s))
    return replace(outcome, store_error=run.store_error)


class _Runner:
    """Simulates candidates (in this process, local processes or on Dask), taking what the store
    already holds and recording each new result in it as it arrives; counts both."""

    def __init__(
        self,
        store: ResultStore | None,
        workers: int,
        scheduler: str | None,
        progress: bool,
        on_result: Callable[[int], None] | None,
    ) -> None:
        self.store, self.workers, self.scheduler = store, workers, scheduler
        self.progress, self.on_result = progress, on_result
        self.simulated = self.estimated = self.reused = 0  # event simulations, analytical estimates, from the store
        self.store_error: str | None = None

    def stored(self, write: Callable[[ResultStore], None]) -> None:
        """Write to the store; if it fails (a full disk), go on without it and keep the reason: the
        results are still in memory and are printed, and what the store holds so far stays valid."""
        if self.store is None:
            return
        try:
            write(self.store)
        except sqlite3.Error as exc:
            self.store_error, self.store = str(exc), None

    def __call__(
        self, cands: list[Candidate], labels: dict[str, str], point_of: dict[str, dict[str, Any]], what: str
    ) -> dict[str, dict[str, Any]]:
        found = self.store.get_many(c.key for c in cands) if self.store else {}
        todo = [c for c in cands if c.key not in found]
        results = {k: _labelled(r, labels[k], point_of[k]) for k, r in found.items()}
        bar = Progress(len(todo), f"{what} {len(todo)} plans", self.progress)

        def arrived(key: str, result: dict[str, Any]) -> None:
            self.stored(lambda s: s.put(key, labels[key], result))
            results[key] = _labelled(result, labels[key], point_of[key])
            bar.advance()
            if self.on_result:
                self.on_result(len(results))

        try:
            run_jobs([(c.key, c.raw) for c in todo], arrived, workers=self.workers, scheduler=self.scheduler)
        finally:
            bar.close()
        if what == "estimating":
            self.estimated += len(todo)
        else:
            self.simulated += len(todo)
        self.reused += len(found)
        return results


def _refined(
    fitting: list[Candidate],
    labels: dict[str, str],
    point_of: dict[str, dict[str, Any]],
    run: _Runner,
    objective: str,
    k: int,
) -> list[dict[str, Any]]:
    """Analytical estimates of every plan, then the best k simulated event by event."""
    pairs = [(c, with_engine(c, "analytical")) for c in fitting]
    original = {e.key: c for c, e in pairs}
    e_labels = {e.key: labels[c.key] for c, e in pairs}
    e_points = {e.key: point_of[c.key] for c, e in pairs}
    estimated = run([e for _, e in pairs], e_labels, e_points, "estimating")
    order = sorted(estimated, key=lambda key: rank_key(estimated[key], objective))
    simulated = run([original[key] for key in order[:k]], labels, point_of, "simulating")
    return rank(list(simulated.values()), objective) + [estimated[key] for key in order[k:]]


def parse_sweep(items: list[str]) -> list[tuple[str, list[Any]]]:
    """`cluster.num_gpus=256,512` -> [("cluster.num_gpus", [256, 512])]; values parsed as YAML."""
    problems: list[str] = []
    out: list[tuple[str, list[Any]]] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or not key or not values:
            problems.append(f"--sweep {item}: expected KEY.PATH=V1,V2,...")
        elif key.startswith("parallelism.") or key == "training.micro_batch":
            problems.append(f"--sweep {item}: the search chooses {key} itself (bound it with --fix/--max/--min)")
        elif any(key == k for k, _ in out):
            problems.append(f"--sweep {item}: {key} is swept twice")
        else:
            try:
                out.append((key, [parse_value(v) for v in values]))
            except InputLimitError as exc:
                problems.append(f"--sweep {printable(item)}: {describe_yaml_error(exc)}")
    if problems:
        raise ConfigError(problems)
    return out


def sweep_points(sweep: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the swept keys' values ([{}] without a sweep: one plain search)."""
    keys = [k for k, _ in sweep]
    return [dict(zip(keys, values, strict=True)) for values in product(*(v for _, v in sweep))]


def _best_per_point(points: list[dict[str, Any]], ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each sweep point: its values, how many of its plans fit, and its best plan (the full
    result, with its 1-based `rank` among all plans; both None when none fits)."""
    out = []
    for point in points:
        mine = [i for i, r in enumerate(ranked) if r.get("sweep") == point]
        best = ranked[mine[0]] if mine else None
        out.append({"values": point, "feasible": len(mine), "rank": mine[0] + 1 if mine else None, "best": best})
    return out


def _leanest(candidates: list[Candidate]) -> dict[str, Any]:
    """The candidate with the smallest peak memory: how far the search is from any plan fitting."""
    c = min(candidates, key=lambda c: (c.peak_bytes, c.plan))
    return {"label": c.plan.label(), "peak_bytes": c.peak_bytes, "capacity_bytes": c.capacity_bytes}


def _at(point: dict[str, Any]) -> str:
    return f" (at {', '.join(f'{k}={v}' for k, v in point.items())})" if point else ""


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per store key (two plans that resolve to the same scenario are one plan)."""
    seen: dict[str, Candidate] = {}
    for c in candidates:
        seen.setdefault(c.key, c)
    return list(seen.values())


def _labelled(result: dict[str, Any], label: str, point: dict[str, Any]) -> dict[str, Any]:
    """The result as listed: with its plan label, the ZeRO-3 caveat where it applies and, in a sweep,
    the sweep point it belongs to."""
    plain = {k: v for k, v in result.items() if k not in ("label", "caveat", "sweep")}
    caveat = {"caveat": ZERO3_CAVEAT} if (plain.get("parallelism") or {}).get("zero") == 3 else {}
    return {**plain, "label": label, **caveat, **({"sweep": point} if point else {})}
