"""Energy bloat (Chung et al., "Reducing Energy Bloat in Large Model Training", SOSP 2024, arXiv 2312.06902):
pipeline stages off the critical path (uneven layer splits, the embedding and LM-head stages) finish their
work early and wait; locked at a lower SM clock they would do the same work more slowly and more frugally
without lengthening the step. This finds a per-stage clock plan that keeps the step time within
`tolerance` and lowers the step's energy, verified by simulating the step with it.

The planner (cheap, then checked): every stage's busy time (its compute stream's work, metrics/breakdown)
is split into compute-bound time, which stretches as 1/clock (costs/clocks.py), and the rest. A stage may
grow its busy time by its slack (the busiest stage's busy time minus its own), but no more than its share
(in proportion to its slack) of the fill-and-drain budget: in the pipeline's warm-up and cool-down every
stage is on the critical path, so a stage d seconds busier lengthens the step by about d / micro-batches,
and all of them together may lengthen it by `tolerance`. For a share `alpha` of that, each stage takes,
among the settable clocks (`CLOCK_STEP_MHZ` apart, as nvidia-smi's supported clocks are) at which its
busy time stays within it, the one with the lowest estimated energy (its activities at that clock's
power, the time it no longer waits at the waiting power). The plan is simulated; if the step is more than
`tolerance` longer, or the energy not lower, a smaller `alpha` is tried; else no plan
(saving 0). A perfectly balanced pipeline has no slack: every stage keeps its clock, nothing is simulated.
Per-stage clocks only: Perseus also lowers clocks per forward/backward instruction inside the warm-up and
cool-down bubbles, which this does not."""

import math
from dataclasses import dataclass, replace
from typing import Any

from simulator.costs.clocks import CLOCK_STEP_MHZ, activity_clock_MHz, activity_power_at_W, dvfs
from simulator.energy.power import step_energy_per_gpu
from simulator.engine.step import simulate_step
from simulator.enums import Category
from simulator.metrics.breakdown import WAITING, empty_breakdown, step_breakdown
from simulator.scenario.setup import ClockSetting, Setup
from simulator.units import joules_to_mwh
from simulator.workload import build_step

ALPHAS = (1.0, 0.5, 0.25)  # shares of each stage's slack tried, in order


@dataclass(frozen=True)
class Priced:
    """One simulated step: its time, each stage's breakdown (averaged over replicas) and the cluster's
    facility energy (J)."""

    time_s: float
    stages_s: list[dict[Category, float]]
    facility_J: float


@dataclass(frozen=True)
class BloatPlan:
    """A per-stage clock plan and what it saves per step (and over the run when training.tokens is set)."""

    stage_clocks_MHz: tuple[float, ...]  # the clock each stage's compute-bound work runs at
    base_clock_MHz: float
    base_time_s: float
    time_s: float
    base_J: float  # the cluster's facility energy per step
    J: float
    simulations: int
    tolerance: float
    run_saving_MWh: float | None

    @property
    def saving_J(self) -> float:
        return self.base_J - self.J

    @property
    def saving_pct(self) -> float:
        return 100.0 * self.saving_J / self.base_J if self.base_J > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage_clocks_MHz": list(self.stage_clocks_MHz),
            "base_clock_MHz": self.base_clock_MHz,
            "base_step_time_s": self.base_time_s,
            "step_time_s": self.time_s,
            "step_time_change_pct": 100.0 * (self.time_s / self.base_time_s - 1.0),
            "tolerance_pct": 100.0 * self.tolerance,
            "base_energy_J_per_step": self.base_J,
            "energy_J_per_step": self.J,
            "saving_J_per_step": self.saving_J,
            "saving_pct": self.saving_pct,
            "run_saving_MWh": self.run_saving_MWh,
            "simulations": self.simulations,
        }


def _price(setup: Setup) -> Priced:
    """Simulate one step with the event engine and price its energy stage by stage."""
    r = simulate_step(build_step(setup)).result
    b = step_breakdown(r)
    energy = step_energy_per_gpu(setup, b.average_s, r.time_s, b.per_stage_s)
    pp = setup.plan.pp
    stages = [empty_breakdown() for _ in range(pp)]
    replicas = len(b.per_stage_s) // pp
    for rank, acc in enumerate(b.per_stage_s):
        for c, v in acc.items():
            stages[rank % pp][c] += v / replicas
    return Priced(r.time_s, stages, energy.facility_J * setup.cluster.num_gpus)


def _estimated_J(setup: Setup, stage_s: dict[Category, float], f_MHz: float, base_MHz: float) -> tuple[float, float]:
    """A stage's busy time and GPU energy (J, one GPU) with its clock locked at `f_MHz`: compute-bound time
    stretched by base/f, the waiting time shortened as much, every activity at its power at that clock."""
    gpu = setup.cluster.gpu
    clock = ClockSetting(f_MHz, setup.cluster.clock.power_limit_W)
    stretch = base_MHz / f_MHz
    bound = dvfs().compute_bound
    times = {c: t * (stretch if c in bound else 1.0) for c, t in stage_s.items()}
    longer = sum(times[c] - stage_s[c] for c in bound if c in stage_s)
    times[Category.BUBBLE] = times.get(Category.BUBBLE, 0.0) - longer  # may go below 0: then it is late
    busy = sum(t for c, t in times.items() if c not in WAITING)
    return busy, sum(t * activity_power_at_W(gpu, c, clock) for c, t in times.items())


def _candidates(low_MHz: float, high_MHz: float) -> list[float]:
    n = int((high_MHz - low_MHz) // CLOCK_STEP_MHZ)
    return [high_MHz - i * CLOCK_STEP_MHZ for i in range(n + 1)]


def _stage_clock(setup: Setup, stage_s: dict[Category, float], budget_s: float, base_MHz: float) -> float:
    """The candidate clock of least estimated energy at which the stage's busy time stays within `budget_s`."""
    clocks = setup.cluster.gpu.clocks
    assert clocks is not None
    best_f, best_J = base_MHz, _estimated_J(setup, stage_s, base_MHz, base_MHz)[1]
    for f in _candidates(clocks.min_MHz, base_MHz)[1:]:
        busy, joules = _estimated_J(setup, stage_s, f, base_MHz)
        if busy > budget_s:
            break  # busy time only grows as the clock falls
        if joules < best_J:
            best_f, best_J = f, joules
    return best_f


def plan_energy_bloat(setup: Setup, tolerance: float = 1e-3) -> BloatPlan | None:
    """The per-stage clock plan (module docstring); None for a GPU without clock data."""
    if setup.cluster.gpu.clocks is None:
        return None
    base_MHz = activity_clock_MHz(setup.cluster.gpu, Category.GEMM, setup.cluster.clock)
    assert base_MHz is not None
    base = _price(setup)
    busy = [sum(t for c, t in s.items() if c not in WAITING) for s in base.stages_s]
    critical = max(busy)
    best: tuple[tuple[float, ...], Priced] = (tuple(base_MHz for _ in busy), base)
    simulations = 1
    slack = [critical - b for b in busy]
    budget = _fill_drain_budget_s(setup, base.time_s, tolerance) / max(sum(slack), 1e-300)
    for alpha in ALPHAS:
        plan = tuple(
            _stage_clock(setup, s, b + alpha * x * min(1.0, budget), base_MHz)
            for s, b, x in zip(base.stages_s, busy, slack, strict=True)
        )
        if all(f == base_MHz for f in plan):
            break  # no slack anywhere: nothing to lower
        planned = replace(setup, cluster=replace(setup.cluster, stage_clocks_MHz=_locks(plan, base_MHz)))
        priced = _price(planned)
        simulations += 1
        if priced.time_s <= base.time_s * (1.0 + tolerance) and priced.facility_J < base.facility_J:
            best = (plan, priced)
            break
    tokens = setup.training.tokens
    iterations = math.ceil(tokens / setup.tokens_per_step) if tokens else None
    plan, priced = best
    return BloatPlan(
        stage_clocks_MHz=plan,
        base_clock_MHz=base_MHz,
        base_time_s=base.time_s,
        time_s=priced.time_s,
        base_J=base.facility_J,
        J=priced.facility_J,
        simulations=simulations,
        tolerance=tolerance,
        run_saving_MWh=joules_to_mwh((base.facility_J - priced.facility_J) * iterations) if iterations else None,
    )


def _fill_drain_budget_s(setup: Setup, time_s: float, tolerance: float) -> float:
    """How much longer the stages' busy time may grow in all, for the step to grow by at most `tolerance`: in
    the pipeline's fill and drain every stage's passes of the first and last micro-batches lie on the
    critical path, so a stage's busy time stretched by d lengthens the step by about d / micro-batches."""
    return tolerance * time_s * setup.micro_batches


def _locks(plan: tuple[float, ...], base_MHz: float) -> tuple[float | None, ...]:
    """Stage locks: None for a stage kept at the cluster's clock (its other activities keep boosting)."""
    return tuple(None if f == base_MHz else f for f in plan)
