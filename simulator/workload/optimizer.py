"""The optimizer step of one rank (Adam), a memory-bound pass over its shard of the model state."""

from simulator.enums import OpKind, Phase
from simulator.workload.ops import Op


def optimizer_op(params_on_rank: float, weight_bytes: int, grad_bytes: int, state_bytes: int) -> Op:
    """Adam update, memory bound: read fp32 master, m, v and the gradient; write them back and
    the working-precision weight copy (Rajbhandari et al. 2020's K=12 state)."""
    per_param = (state_bytes + grad_bytes) + (state_bytes + weight_bytes)
    return Op("adam_step", OpKind.OPTIMIZER, Phase.OPTIMIZER, bytes=params_on_rank * per_param)
