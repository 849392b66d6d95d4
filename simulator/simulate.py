"""Top-level pipeline: Setup -> workload -> step time -> metrics -> whole run -> result."""

from dataclasses import asdict
from typing import Any

from simulator.energy.power import step_energy_per_gpu
from simulator.energy.timeline import PowerTimeline, power_block, power_timeline
from simulator.enums import Category, Engine
from simulator.gc_pause import paused_gc
from simulator.memory.budget import memory_budget
from simulator.metrics.breakdown import step_breakdown
from simulator.results.result import SimulationResult, StepResult
from simulator.scenario.setup import Setup
from simulator.training_run.totals import whole_run
from simulator.workload import StepWork, build_step
from simulator.workload.flops import step_flops
from simulator.workload.params import total_params


def time_step(
    work: StepWork,
) -> tuple[float, dict[Category, float], dict[str, Any], list, PowerTimeline | None]:
    """Step time, average-GPU breakdown, engine details, spans and power through the step, by the
    scenario's chosen engine (the analytical one has no time axis: no timeline)."""
    if work.setup.engine is Engine.ANALYTICAL:
        from simulator.estimate import estimate_step

        est = estimate_step(work)
        return est.time_s, est.breakdown_s, {"method": "analytical"}, [], None
    from simulator.engine.step import simulate_step

    r = simulate_step(work).result
    breakdown = step_breakdown(r)
    extra = {
        "method": "event",
        "stage_utilisation": breakdown.stage_utilisation(r.time_s),
        "events": r.events,
        "flows": r.flows,
    }
    with paused_gc():  # ~10^5 floats per stage: nothing cyclic to collect
        timeline = power_timeline(work.setup, r)
    return r.time_s, breakdown.average_s, extra, r.spans, timeline


def simulate(setup: Setup) -> SimulationResult:
    work = build_step(setup)
    t, breakdown, extra, spans, timeline = time_step(work)
    flops = step_flops(work)
    peak = setup.cluster.gpu.peak(setup.training.precision) * setup.cluster.num_gpus
    energy = step_energy_per_gpu(setup, breakdown, t)
    method = extra.pop("method")
    step = StepResult(
        time_s=t,
        tokens_per_s=setup.tokens_per_step / t,
        model_flops=flops.model,
        hardware_flops=flops.hardware,
        mfu=flops.model / (t * peak),
        hfu=flops.hardware / (t * peak),
        breakdown_s=breakdown,
        energy_J_per_gpu=energy.facility_J,
        method=method,
        extra=extra,
    )
    return SimulationResult(
        name=setup.name,
        step=step,
        memory=memory_budget(setup),
        run=whole_run(setup, t, energy),
        model={"name": setup.model.name, "parameters": total_params(setup.model)},
        plan={**{k: _plain(v) for k, v in asdict(setup.plan).items()}, "micro_batches": setup.micro_batches},
        spans=spans,
        power=power_block(setup, energy, t, timeline),
        timeline=timeline,
    )


def _plain(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v
