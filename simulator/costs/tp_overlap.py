"""Exposed time of tensor-parallel collectives that overlap GEMMs (Transformer Engine userbuffers,
Megatron-Core --tp-comm-overlap; methods and SM budgets in specs/kernels.yaml `tp_comm_overlap`).

An overlapped collective hides behind one neighbouring GEMM of its linear layer (an FP8 cast kernel
between them is skipped). With T_c the collective alone and T_g the GEMM alone:

- ring exchange (all-gather, then the GEMM): the gather runs in n = tp steps, each delivering the
  shard the next GEMM chunk needs, and the chunk of the local shard starts at once, so
  exposed = max(0, T_c - T_g (n-1)/n).
- pipeline (the GEMM, then reduce-scatter): the GEMM runs in n = `pipeline_splits` chunks on the SMs
  the communication kernels leave it, T_g' = T_g * SMs / (SMs - num_sm); each chunk's reduce-scatter
  runs behind the next chunk and the last one is exposed: exposed = max(T_c / n, T_c - T_g' (n-1)/n).
- bulk (backward: the dgrad output's reduce-scatter behind the independent wgrad GEMM):
  exposed = max(0, T_c - T_g).
"""

from collections.abc import Sequence
from functools import cache

from simulator.catalog.loader import bundled
from simulator.enums import OpKind, Role, TpOverlap
from simulator.workload.ops import CommOp, Item, Op


@cache
def pipeline_splits() -> int:
    return int(bundled("kernels")["tp_comm_overlap"]["pipeline_splits"])


def overlapped_durations(items: Sequence[Item], durations: Sequence[float], sm_count: int) -> list[float]:
    """`durations` with every overlapped collective reduced to its exposed time and the GEMMs that
    lend SMs to a pipelined reduce-scatter slowed accordingly."""
    out = list(durations)
    for i, item in enumerate(items):
        if not isinstance(item, CommOp) or item.overlap is TpOverlap.NONE:
            continue
        j = _neighbour_gemm(items, i, step=1 if item.overlap is TpOverlap.RING_EXCHANGE else -1)
        if j is None:
            continue
        comm_s = out[i]
        if item.overlap is TpOverlap.RING_EXCHANGE:
            n = item.ranks
            out[i] = max(0.0, comm_s - out[j] * (n - 1) / n)
        elif item.overlap is TpOverlap.PIPELINE:
            out[j] *= sm_count / (sm_count - item.overlap_sms)
            n = pipeline_splits()
            out[i] = max(comm_s / n, comm_s - out[j] * (n - 1) / n)
        else:
            out[i] = max(0.0, comm_s - out[j])
    return out


def _neighbour_gemm(items: Sequence[Item], i: int, step: int) -> int | None:
    j = i + step
    while 0 <= j < len(items):
        item = items[j]
        if isinstance(item, Op) and item.kind is OpKind.GEMM:
            return j
        if not (isinstance(item, Op) and item.role is Role.FP8_CAST):
            return None
        j += step
    return None
