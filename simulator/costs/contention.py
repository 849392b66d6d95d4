"""Compute slowed by collectives running beside it on the same GPU: while an overlapped data-parallel
or ZeRO-3 collective is in flight, NCCL's kernels hold `comm.overlap_sms` of the SMs (kernels.yaml),
and compute advances at the rate of the SMs left (a fluid model). The event engine applies the rate
whenever a collective starts or ends; the analytical estimate uses the closed form below."""

from functools import cache

from simulator.catalog.hardware import GpuSpec
from simulator.catalog.loader import bundled
from simulator.collectives.experts import dispatcher_sms
from simulator.scenario.setup import ParallelPlan


@cache
def overlap_sms() -> int:
    """SMs an NCCL collective occupies while it runs beside compute (kernels.yaml `comm.overlap_sms`)."""
    return int(bundled("kernels")["comm"]["overlap_sms"])


def contention_share(plan: ParallelPlan, gpu: GpuSpec) -> float:
    """Share of the SMs compute loses while a collective runs beside it. Zero where none ever does:
    without ZeRO-3 or overlapped gradient reduction the data-parallel collectives run after the
    stage's compute (and TP/CP collectives block the compute stream)."""
    if (plan.zero != 3 and not plan.dp_overlap) or plan.dp_group == 1:
        return 0.0
    return min(overlap_sms(), gpu.sm_count - 1) / gpu.sm_count


def contention_s(comm_s: float, compute_s: float, share: float) -> float:
    """Time a collective active for `comm_s` adds to `compute_s` of compute beside it when it holds
    `share` of the SMs: the fluid model's slowdown when the collective ends first (comm_s * share)
    or the compute does (compute_s * share / (1 - share))."""
    if share <= 0 or comm_s <= 0:
        return 0.0
    return min(comm_s * share, compute_s * share / (1.0 - share))


def exchange_share(plan: ParallelPlan, gpu: GpuSpec) -> float:
    """Share of the SMs compute loses while an expert-parallel exchange of another micro-batch runs
    beside it (`moe_overlap`): the SMs the dispatcher's kernels hold (collectives/experts.py). Zero without
    overlap: the exchanges then block the compute stream."""
    if not plan.moe_overlap or plan.ep == 1:
        return 0.0
    return min(dispatcher_sms(plan.moe_dispatcher), gpu.sm_count - 1) / gpu.sm_count
