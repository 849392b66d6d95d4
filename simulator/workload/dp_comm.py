"""The data-parallel collectives of a step: gradient reduction and parameter gathers under each ZeRO
stage, over the DP x CP group (context-parallel ranks hold the same weights)."""

from simulator import dtypes
from simulator.enums import Collective, CommGroup, Phase
from simulator.scenario.setup import Setup
from simulator.workload.ops import CommOp
from simulator.workload.params import layer_params


def gradient_reduction(setup: Setup, params: float) -> CommOp | None:
    """The once-per-step reduction of `params` parameters' gradients over DP x CP (CP ranks hold the
    same weights): all-reduce with ZeRO-0, reduce-scatter with ZeRO-1/2; ZeRO-3 reduces per layer."""
    group = setup.plan.dp_group
    if group == 1 or setup.plan.zero == 3 or params <= 0:
        return None
    grads = params * dtypes.gradient_bytes(setup.training.precision)
    if setup.plan.zero == 0:
        return CommOp("dp_grad_allreduce", CommGroup.DP, Collective.ALL_REDUCE, Phase.BACKWARD, grads, group)
    return CommOp("dp_grad_reduce_scatter", CommGroup.DP, Collective.REDUCE_SCATTER, Phase.BACKWARD, grads, group)


def weight_gather(setup: Setup, params: float) -> CommOp | None:
    """ZeRO-1/2: all-gather of the updated working weights after the sharded optimizer step."""
    group = setup.plan.dp_group
    if group == 1 or setup.plan.zero not in (1, 2) or params <= 0:
        return None
    weights = params * dtypes.weight_bytes(setup.training.precision)
    return CommOp("dp_param_allgather", CommGroup.DP, Collective.ALL_GATHER, Phase.OPTIMIZER, weights, group)


def zero3_layer_comm(setup: Setup) -> tuple[tuple[CommOp, ...], tuple[CommOp, ...]]:
    """ZeRO-3 / FSDP per layer and micro-batch: gather the layer's weights before its forward and
    again before its backward, reduce-scatter its gradients after (Rajbhandari et al. 2020 sec. 7.2.2:
    3x the data-parallel volume of plain DP, 1.5x its bytes-on-wire)."""
    prec = setup.training.precision
    group = setup.plan.dp_group
    if group == 1:
        return (), ()
    params = layer_params(setup.model).per_rank(setup.plan.tp)
    w = params * dtypes.weight_bytes(prec)
    g = params * dtypes.gradient_bytes(prec)
    fwd = (CommOp("zero3_param_gather", CommGroup.DP, Collective.ALL_GATHER, Phase.FORWARD, w, group),)
    bwd = (
        CommOp("zero3_param_gather_bwd", CommGroup.DP, Collective.ALL_GATHER, Phase.BACKWARD, w, group),
        CommOp("zero3_grad_reduce_scatter", CommGroup.DP, Collective.REDUCE_SCATTER, Phase.BACKWARD, g, group),
    )
    return fwd, bwd
