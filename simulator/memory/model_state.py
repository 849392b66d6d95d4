"""Per-GPU model state: weights, gradients and optimizer state under ZeRO stages 0-3."""

from dataclasses import dataclass

from simulator import dtypes
from simulator.enums import Precision
from simulator.scenario.setup import Setup
from simulator.workload.params import layer_kind_counts
from simulator.workload.partition import layers_per_chunk
from simulator.workload.placement import layer_rank_params, stage_rank_params


@dataclass(frozen=True)
class ModelState:
    """Bytes of model state one GPU holds for its pipeline stage."""

    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes

    def __add__(self, other: "ModelState") -> "ModelState":
        return ModelState(
            self.weights_bytes + other.weights_bytes,
            self.gradients_bytes + other.gradients_bytes,
            self.optimizer_bytes + other.optimizer_bytes,
        )


def model_state_bytes(
    params: float, precision: Precision, zero: int, shards: int, fp32_gradients: bool = False
) -> ModelState:
    """Model state of `params` parameters (Psi) sharded over `shards` data-parallel ranks (N_d).

    Rajbhandari et al. 2020 ("ZeRO"), sec. 3.1 and Fig. 1: mixed-precision Adam keeps 2*Psi bytes
    of fp16/bf16 weights, 2*Psi of gradients and K*Psi (K = 12: fp32 master weights, momentum,
    variance) of optimizer state; pure fp32 training keeps 4 + 4 + 8 bytes (simulator.dtypes).
    Stage 1 shards the optimizer state, stage 2 also the gradients, stage 3 also the weights:
    totals 16Psi, 4Psi + 12Psi/N_d, 2Psi + 14Psi/N_d, 16Psi/N_d for bf16. With `fp32_gradients` the
    gradients take 4 bytes (Megatron's fp32 main grads). Units: bytes.
    """
    assert 0 <= zero <= 3 and shards >= 1, (zero, shards)
    weights = params * dtypes.weight_bytes(precision)
    grads = params * dtypes.gradient_bytes(precision, fp32_gradients)
    optimizer = params * dtypes.optimizer_bytes_per_param(precision)
    return ModelState(
        weights_bytes=weights / shards if zero >= 3 else weights,
        gradients_bytes=grads / shards if zero >= 2 else grads,
        optimizer_bytes=optimizer / shards if zero >= 1 else optimizer,
    )


def stage_model_state(setup: Setup, stage: int) -> ModelState:
    """Model state of one GPU of pipeline `stage` (0-based): its parameters Psi from
    `stage_rank_params`, each part sharded per the plan's ZeRO stage over the group that reduces its
    gradients: the dense parameters over DP x CP (plan.dp_group), the routed experts over expert-DP
    (plan.expert_dp; Megatron-Core's distributed optimizer does the same). Units: bytes."""
    counts = layers_per_chunk(setup.model.layers, setup.plan.chunks)
    params = stage_rank_params(setup, stage, counts)
    p, prec = setup.plan, setup.training.precision
    return model_state_bytes(params.dense, prec, p.zero, p.dp_group, p.fp32_gradients) + model_state_bytes(
        params.expert, prec, p.zero, p.expert_dp, p.fp32_gradients
    )


def zero3_gather_buffer_bytes(setup: Setup) -> float:
    """Transient unsharded weights under ZeRO-3 / FSDP: the gathered layer being computed plus one
    prefetched layer (Rajbhandari et al. 2020 sec. 5.3: each partition's weights are gathered
    before its forward and backward and discarded after; PyTorch FSDP's forward/backward prefetch
    keeps one more layer's all-gather in flight, Zhao et al. 2023 "PyTorch FSDP", sec. 3.4). A layer's
    part is gathered only where its group has more than one rank (dense: DP x CP, experts: expert-DP);
    with layers of several kinds, the largest. Units: bytes; 0 without ZeRO-3 or when there is nothing
    to gather.
    """
    p = setup.plan
    if p.zero < 3:
        return 0.0
    per_layer = 0.0
    for kind in layer_kind_counts(setup.model):
        params = layer_rank_params(setup, kind)
        gathered = (params.dense if p.dp_group > 1 else 0.0) + (params.expert if p.expert_dp > 1 else 0.0)
        per_layer = max(per_layer, gathered)
    return 2 * per_layer * dtypes.weight_bytes(setup.training.precision)
