"""FLOPs of one optimizer step, summed from the very ops the engine executes.

model FLOPs: forward + backward, no recomputation (Korthikanti et al. 2022 eq. 7 for GPT;
generalised to GQA and SwiGLU by construction); for mixtures of experts the experts a token visits
(top_k routed + shared), the router excluded, each computation counted once however many TP ranks
duplicate it, as Megatron-LM's `num_floating_point_operations` counts (with the full attention score
matrix, as eq. 7 does); hardware FLOPs: what the GPUs execute, recomputation included
(Narayanan et al. 2021 eq. 3 with full recompute). Tests check both against the closed forms.
"""

from dataclasses import dataclass

from simulator.enums import Phase
from simulator.workload.ops import Op
from simulator.workload.step import StepWork


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one step on the whole cluster: model FLOPs and hardware FLOPs (recompute included)."""

    model: float
    hardware: float


def step_flops(work: StepWork) -> StepFlops:
    """Whole-cluster FLOPs of one step: per-rank op FLOPs x micro-batches x (tp * cp * dp) ranks
    per pipeline stage (every chunk of the pipeline is visited once)."""
    model = hardware = 0.0
    for _, item in work.rank_items():
        if isinstance(item, Op):
            hardware += item.flops
            if item.phase is not Phase.RECOMPUTE and item.counted:
                model += item.flops / item.duplicates
    p = work.setup.plan
    scale = work.micro_batches * p.tp * p.cp * p.dp
    return StepFlops(model=model * scale, hardware=hardware * scale)
