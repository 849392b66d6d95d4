"""The data-parallel collectives of a step: gradient reduction and parameter gathers under each ZeRO
stage. Dense parameters go over the DP x CP group (context-parallel ranks hold the same weights); the
routed experts' over the expert-data-parallel group (CommGroup.EDP, plan.expert_dp ranks: those of the
stage's tp x cp x dp that hold the same experts, Megatron-Core parallel folding). A dense model has
no expert parameters and gets exactly the single DP collective of each kind."""

from simulator import dtypes
from simulator.enums import Collective, CommGroup, LayerKind, Phase
from simulator.scenario.setup import Setup
from simulator.workload.ops import CommOp
from simulator.workload.placement import layer_rank_params


def gradient_reduction(setup: Setup, params: float) -> CommOp | None:
    """The once-per-step reduction of `params` dense parameters' gradients over DP x CP (CP ranks hold
    the same weights): all-reduce with ZeRO-0, reduce-scatter with ZeRO-1/2; ZeRO-3 reduces per layer."""
    return _reduction(setup, params, CommGroup.DP, setup.plan.dp_group, "dp")


def expert_gradient_reduction(setup: Setup, params: float) -> CommOp | None:
    """The same for `params` routed-expert parameters, over the expert-data-parallel group."""
    return _reduction(setup, params, CommGroup.EDP, setup.plan.expert_dp, "edp")


def _reduction(setup: Setup, params: float, kind: CommGroup, group: int, prefix: str) -> CommOp | None:
    if group == 1 or setup.plan.zero == 3 or params <= 0:
        return None
    grads = params * dtypes.gradient_bytes(setup.training.precision, setup.plan.fp32_gradients)
    if setup.plan.zero == 0:
        return CommOp(f"{prefix}_grad_allreduce", kind, Collective.ALL_REDUCE, Phase.BACKWARD, grads, group)
    return CommOp(f"{prefix}_grad_reduce_scatter", kind, Collective.REDUCE_SCATTER, Phase.BACKWARD, grads, group)


def gradient_reductions(setup: Setup, dense_params: float, expert_params: float = 0.0) -> list[CommOp]:
    """Gradient reductions of a bucket holding `dense_params` dense and `expert_params` routed-expert
    parameters (per rank, e.g. placement.chunk_rank_params): the dense one over DP x CP, the expert one
    over expert-DP; either left out when its group has one rank or nothing to reduce."""
    ops = (gradient_reduction(setup, dense_params), expert_gradient_reduction(setup, expert_params))
    return [op for op in ops if op is not None]


def weight_gather(setup: Setup, params: float) -> CommOp | None:
    """ZeRO-1/2: all-gather of the updated working weights of `params` dense parameters after the
    sharded optimizer step."""
    return _gather(setup, params, CommGroup.DP, setup.plan.dp_group, "dp")


def expert_weight_gather(setup: Setup, params: float) -> CommOp | None:
    """The same for `params` routed-expert parameters, over the expert-data-parallel group."""
    return _gather(setup, params, CommGroup.EDP, setup.plan.expert_dp, "edp")


def _gather(setup: Setup, params: float, kind: CommGroup, group: int, prefix: str) -> CommOp | None:
    if group == 1 or setup.plan.zero not in (1, 2) or params <= 0:
        return None
    weights = params * dtypes.gathered_weight_bytes(setup.training.precision, setup.plan.fp8_param_gather)
    return CommOp(f"{prefix}_param_allgather", kind, Collective.ALL_GATHER, Phase.OPTIMIZER, weights, group)


def weight_gathers(setup: Setup, dense_params: float, expert_params: float = 0.0) -> list[CommOp]:
    """ZeRO-1/2 weight all-gathers after the optimizer step: dense over DP x CP, experts over expert-DP."""
    ops = (weight_gather(setup, dense_params), expert_weight_gather(setup, expert_params))
    return [op for op in ops if op is not None]


def zero3_layer_comms(setup: Setup, kind: LayerKind) -> tuple[tuple[CommOp, ...], tuple[CommOp, ...]]:
    """ZeRO-3 / FSDP per layer of `kind` and micro-batch: gather the layer's weights before its forward
    and again before its backward, reduce-scatter its gradients after (Rajbhandari et al. 2020 sec.
    7.2.2: 3x the data-parallel volume of plain DP, 1.5x its bytes-on-wire). An MoE layer gathers and
    reduces its dense part over DP x CP and its experts over expert-DP. Returns (forward, backward)."""
    prec = setup.training.precision
    params = layer_rank_params(setup, kind)
    fwd: list[CommOp] = []
    bwd: list[CommOp] = []
    parts = (
        (CommGroup.DP, setup.plan.dp_group, params.dense, "zero3"),
        (CommGroup.EDP, setup.plan.expert_dp, params.expert, "zero3_expert"),
    )
    for group, ranks, n, prefix in parts:
        if ranks == 1 or n <= 0:
            continue
        w = n * dtypes.gathered_weight_bytes(prec, setup.plan.fp8_param_gather)
        fwd.append(CommOp(f"{prefix}_param_gather", group, Collective.ALL_GATHER, Phase.FORWARD, w, ranks))
        bwd.append(CommOp(f"{prefix}_param_gather_bwd", group, Collective.ALL_GATHER, Phase.BACKWARD, w, ranks))
    for group, ranks, n, prefix in parts:
        if ranks == 1 or n <= 0:
            continue
        g = n * dtypes.gradient_bytes(prec, setup.plan.fp32_gradients)
        bwd.append(CommOp(f"{prefix}_grad_reduce_scatter", group, Collective.REDUCE_SCATTER, Phase.BACKWARD, g, ranks))
    return tuple(fwd), tuple(bwd)


def zero3_layer_comm(setup: Setup) -> tuple[tuple[CommOp, ...], tuple[CommOp, ...]]:
    """`zero3_layer_comms` of a model whose layers are all of one kind (every dense model); a model that
    mixes dense and MoE layers must ask per kind."""
    kinds = set(setup.model.layer_kinds)
    if len(kinds) != 1:
        raise ValueError(f"model {setup.model.name!r} mixes dense and MoE layers: use zero3_layer_comms(setup, kind)")
    return zero3_layer_comms(setup, kinds.pop())
