"""Top-level pipeline: Setup -> workload -> step time -> metrics -> whole run -> result."""

from dataclasses import asdict

from simulator.energy.power import step_energy_per_gpu
from simulator.estimate import estimate_step
from simulator.memory.budget import memory_budget
from simulator.results.result import SimulationResult, StepResult
from simulator.run.whole_run import whole_run
from simulator.scenario.setup import Setup
from simulator.workload import build_step
from simulator.workload.flops import step_flops
from simulator.workload.params import total_params


def simulate(setup: Setup) -> SimulationResult:
    work = build_step(setup)
    estimate = estimate_step(work)
    flops = step_flops(work)
    peak = setup.cluster.gpu.peak(setup.training.precision) * setup.cluster.num_gpus
    t = estimate.time_s
    energy = step_energy_per_gpu(setup, estimate.breakdown_s, t)
    step = StepResult(
        time_s=t,
        tokens_per_s=setup.tokens_per_step / t,
        model_flops=flops.model,
        hardware_flops=flops.hardware,
        mfu=flops.model / (t * peak),
        hfu=flops.hardware / (t * peak),
        breakdown_s=estimate.breakdown_s,
        energy_J_per_gpu=energy.facility_J,
        method="analytical",
    )
    return SimulationResult(
        name=setup.name,
        step=step,
        memory=memory_budget(setup),
        run=whole_run(setup, t, energy),
        model={"name": setup.model.name, "parameters": total_params(setup.model)},
        plan={**{k: _plain(v) for k, v in asdict(setup.plan).items()}, "micro_batches": setup.micro_batches},
    )


def _plain(v):
    return v.value if hasattr(v, "value") else v
