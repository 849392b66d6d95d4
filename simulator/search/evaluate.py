"""One candidate plan: its scenario, its memory check, its simulation and its objective values.

`evaluate` is the unit of work sent to a local process or a Dask worker: it takes a plain mapping
(the scenario with the plan applied, catalogue files already folded in) so that a worker on
another machine needs nothing but the installed package.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator import units
from simulator.energy.cost import cost_usd
from simulator.memory.budget import memory_budget
from simulator.scenario.canonical import scenario_key
from simulator.scenario.errors import ConfigError
from simulator.scenario.load import load_raw, validate
from simulator.scenario.resolve import node_size, resolve, resolve_model_and_gpu, with_stack
from simulator.scenario.setup import Setup
from simulator.search.space import Frame, PlanKnobs


def load_base(path: str | Path, overrides: list[str]) -> tuple[dict[str, Any], Frame]:
    """The scenario mapping (overrides applied, catalogue files folded in) and the frame its plans
    are enumerated in. The file's own parallelism section need not be a valid plan."""
    raw = load_raw(path, overrides)
    sc = validate(raw)
    model, gpu = resolve_model_and_gpu(sc)
    frame = Frame(
        model=model,
        num_gpus=sc.cluster.num_gpus,
        gpus_per_node=min(node_size(sc.cluster), sc.cluster.num_gpus),
        global_batch=sc.training.global_batch,
        sequence_parallel=sc.parallelism.sequence_parallel,
        dp_overlap=bool(with_stack(sc).parallelism.dp_overlap),  # the scenario's, else its stack's
        recompute_layers=sc.parallelism.recompute_layers or 0,
        flash_attention=sc.training.flash_attention,
        moe_dispatcher=sc.parallelism.moe_dispatcher,
        moe_overlap=sc.parallelism.moe_overlap,
    )
    return raw, frame


# Parallelism keys a plan does not vary that the scenario may set, and when they still apply.
KEPT_WITH_PLAN = {
    "tp_comm_overlap": lambda par: par["sequence_parallel"],  # needs sequence parallelism
}


def with_plan(raw: dict[str, Any], plan: PlanKnobs) -> dict[str, Any]:
    """The scenario mapping with `plan` in place of its parallelism and micro-batch; the scenario's
    other parallelism settings stay where the plan leaves them meaningful."""
    sections = plan.sections()
    par = sections["parallelism"]
    own = raw.get("parallelism") or {}
    out = dict(raw)
    out["parallelism"] = {**{k: own[k] for k, ok in KEPT_WITH_PLAN.items() if k in own and ok(par)}, **par}
    out["training"] = {**raw["training"], **sections["training"]}
    return out


def resolve_plan(raw: dict[str, Any]) -> Setup | None:
    """The resolved Setup, or None when the resolver rejects the plan (a rule the enumeration does
    not know about, e.g. a GPU without the scenario's precision)."""
    try:
        return resolve(validate(raw))
    except ConfigError:
        return None


@dataclass(frozen=True)
class Candidate:
    """A plan that passed the structural rules: its scenario mapping, store key and memory verdict."""

    plan: PlanKnobs
    raw: dict[str, Any]
    key: str
    fits: bool
    peak_bytes: float  # of the most loaded stage (memory model)
    capacity_bytes: float


def screen(raw: dict[str, Any], plans: list[PlanKnobs]) -> list[Candidate]:
    """Resolve each plan and check its memory (cheap, no simulation); drop what the resolver rejects."""
    out = []
    for plan in plans:
        scenario = with_plan(raw, plan)
        setup = resolve_plan(scenario)
        if setup is None:
            continue
        memory = memory_budget(setup)
        out.append(
            Candidate(plan, scenario, scenario_key(setup), memory.fits, memory.peak_bytes, memory.capacity_bytes)
        )
    return out


def with_engine(c: Candidate, engine: str) -> Candidate:
    """The same plan timed by another engine ("analytical" or "event"): another store key."""
    raw = {**c.raw, "simulation": {**(c.raw.get("simulation") or {}), "engine": engine}}
    return Candidate(c.plan, raw, scenario_key(resolve(validate(raw))), c.fits, c.peak_bytes, c.capacity_bytes)


def objective_values(setup: Setup, result: dict[str, Any]) -> dict[str, float]:
    """What the objectives rank by: the whole run when `training.tokens` is given, else one step.
    time: seconds; cost: USD (GPU-hours plus billed energy); energy: facility joules. A run that cannot
    progress (reliability on, failures faster than restarts) has no run figures: its step ranks it."""
    run = result.get("run")
    if run is not None and run["days"] is not None:
        return {
            "time": run["days"] * units.SECONDS_PER_DAY,
            "cost": run["cost_usd"],
            "energy": units.mwh_to_joules(run["energy_mwh"]),
        }
    n, step = setup.cluster.num_gpus, result["step"]
    energy_J = n * step["energy_J_per_gpu"]
    gpu_hours = n * step["time_s"] / units.SECONDS_PER_HOUR
    return {
        "time": step["time_s"],
        "cost": cost_usd(setup.economics, gpu_hours, units.joules_to_kwh(energy_J)),
        "energy": energy_J,
    }


def evaluate(raw: dict[str, Any]) -> dict[str, Any]:
    """Simulate one candidate: the contract's run JSON plus its `parallelism` and `training`
    settings and the `objectives` it is ranked by. Runs in a worker process."""
    from simulator.simulate import simulate

    setup = resolve(validate(raw))
    result = simulate(setup).to_dict()
    result["parallelism"] = setup.scenario.parallelism.model_dump(mode="json") | {"dp": setup.plan.dp}
    result["training"] = setup.scenario.training.model_dump(mode="json")
    result["objectives"] = objective_values(setup, result)
    return result
