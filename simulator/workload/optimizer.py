"""The optimizer step of one rank (Adam), a memory-bound pass over its shard of the model state."""

from simulator.enums import OpKind, Phase
from simulator.scenario.setup import Setup
from simulator.workload.ops import Op
from simulator.workload.placement import RankParams


def optimizer_op(params_on_rank: float, weight_bytes: int, grad_bytes: int, state_bytes: int) -> Op:
    """Adam update, memory bound: read fp32 master, m, v and the gradient; write them back and
    the working-precision weight copy (Rajbhandari et al. 2020's K=12 state)."""
    per_param = (state_bytes + grad_bytes) + (state_bytes + weight_bytes)
    return Op("adam_step", OpKind.OPTIMIZER, Phase.OPTIMIZER, bytes=params_on_rank * per_param)


def optimizer_shard_params(setup: Setup, params: RankParams) -> float:
    """Parameters whose optimizer state one rank updates: all it holds without ZeRO; with ZeRO >= 1
    its shard of each part, the dense parameters over DP x CP (plan.dp_group) and the routed experts
    over expert-DP (plan.expert_dp; Megatron-Core's distributed optimizer shards each over the group
    that reduces its gradients)."""
    plan = setup.plan
    if plan.zero < 1:
        return params.total
    return params.dense / plan.dp_group + params.expert / plan.expert_dp
