"""Analytical collective times (alpha-beta model) for a parallel group placed on the cluster.

Ring algorithms (Patarasuk & Yuan 2009; Thakur et al. 2005): all-reduce moves 2(n-1)/n of the
buffer through every rank's slowest link in 2(n-1) steps; reduce-scatter and all-gather move
(n-1)/n in n-1 steps. The event engine prices the same steps on the topology; this module is
the closed form it is checked against and the first step-time estimate uses.
"""

from dataclasses import dataclass
from functools import cache

from simulator import units
from simulator.catalog.hardware import nvswitch_latency_s
from simulator.catalog.loader import bundled
from simulator.enums import Collective, CommGroup
from simulator.scenario.setup import Setup


@dataclass(frozen=True)
class GroupPlacement:
    """Where the ranks of one parallel group sit: `per_node` of its `ranks` share a node."""

    ranks: int
    per_node: int

    @property
    def intra_node(self) -> bool:
        return self.per_node >= self.ranks


@dataclass(frozen=True)
class LinkModel:
    """Bandwidth (bytes/s) one rank of the group gets on its slowest hop, and per-step latency (s)."""

    bytes_per_s: float
    step_latency_s: float


def group_stride(setup: Setup, group: CommGroup) -> int:
    """Megatron-LM rank order: TP fastest, then CP, then DP, then PP (pipeline outermost)."""
    p = setup.plan
    return {CommGroup.TP: 1, CommGroup.CP: p.tp, CommGroup.DP: p.tp * p.cp, CommGroup.PP: p.tp * p.cp * p.dp}[group]


def group_size(setup: Setup, group: CommGroup) -> int:
    p = setup.plan
    return {CommGroup.TP: p.tp, CommGroup.CP: p.cp, CommGroup.DP: p.dp * p.cp, CommGroup.PP: p.pp}[group]


def placement(setup: Setup, group: CommGroup, ranks: int | None = None) -> GroupPlacement:
    n = ranks if ranks is not None else group_size(setup, group)
    # The DP gradient group spans DP x CP with CP's stride.
    stride = group_stride(setup, CommGroup.CP if group is CommGroup.DP else group)
    gpn = setup.cluster.gpus_per_node
    per_node = 1 if stride >= gpn else max(1, min(n, gpn // stride))
    return GroupPlacement(ranks=n, per_node=per_node)


@cache
def _comm_constants() -> tuple[float, float, float]:
    c = bundled("kernels")["comm"]
    return c["nvlink_efficiency"], c["nic_efficiency"], units.us_to_s(c["step_overhead_us"])


def link_model(setup: Setup, where: GroupPlacement) -> LinkModel:
    """Intra-node groups ride NVLink; others are limited by the node's NICs, shared by the
    gpus_per_node / per_node groups of the same kind that communicate at the same time."""
    nvl_eff, nic_eff, overhead = _comm_constants()
    c = setup.cluster
    nvlink = c.intra_node_bytes_per_s * nvl_eff
    if where.intra_node:
        return LinkModel(nvlink, nvswitch_latency_s() + overhead)
    nic = c.inter_node_bytes_per_s_per_gpu * nic_eff * where.per_node
    return LinkModel(min(nvlink, nic), c.nic.latency_s + overhead)


def ring_time_s(kind: Collective, size_bytes: float, n: int, link: LinkModel) -> float:
    """Ring collective time for a buffer of `size_bytes` over `n` ranks (alpha-beta)."""
    if n <= 1:
        return 0.0
    if kind is Collective.SEND_RECV:
        return size_bytes / link.bytes_per_s + link.step_latency_s
    steps = 2 * (n - 1) if kind is Collective.ALL_REDUCE else n - 1
    return steps * (size_bytes / n / link.bytes_per_s + link.step_latency_s)


def collective_time_s(setup: Setup, group: CommGroup, kind: Collective, size_bytes: float, ranks: int) -> float:
    where = placement(setup, group, ranks)
    return ring_time_s(kind, size_bytes, ranks, link_model(setup, where))


def p2p_time_s(setup: Setup, size_bytes: float) -> float:
    """One pipeline send between neighbouring stages (different nodes unless the whole model
    parallel group fits in a node)."""
    where = placement(setup, CommGroup.PP, 2)
    return ring_time_s(Collective.SEND_RECV, size_bytes, 2, link_model(setup, where))
