"""Collective algorithms as point-to-point flows: each algorithm turns one collective on one
group into rounds; a round is a set of (src, dst) transfers that run concurrently, each
carrying `bytes_per_flow`, plus the number of sequential steps whose latency it pays.

- ring (Patarasuk & Yuan 2009): all-reduce = reduce-scatter + all-gather, every rank sends
  2(n-1)/n of the buffer to its successor over 2(n-1) steps; RS / AG send (n-1)/n in n-1 steps.
- double binary tree (Sanders, Speck & Traeff 2009; NCCL >= 2.4): two complementary binary trees
  each reduce and broadcast half of the buffer, pipelined: every tree edge carries S/2 each way,
  with 2 log2(n) steps of latency.
- hierarchical (2-level): reduce-scatter inside each node, all-reduce of 1/k of the buffer among
  the GPUs with the same local index across nodes, all-gather inside each node.
- direct: all-to-all (every rank sends S/n to every other) and point-to-point send/recv.

A "node" here is an NVLink domain (`domain_size` GPUs, cluster.scale_up_domain): a server, or the
compute trays of a rack-scale NVLink fabric (GB200 NVL72), which NCCL's multi-node NVLink support
(MNNVL, NCCL 2.20+) treats as one node when it builds rings and trees; with one server per domain
the two are the same.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from simulator.enums import Algorithm, Collective


@dataclass(frozen=True)
class TransferRound:
    """One round of a collective: concurrent (src, dst) transfers of `bytes_per_flow` each, paying the
    latency of `steps` sequential algorithm steps (a ring round is n - 1 steps of the same pairs)."""

    pairs: tuple[tuple[int, int], ...]
    bytes_per_flow: float
    steps: int
    tree: bool = False  # tree steps have their own latency in NCCL's model


def ring_pairs(ranks: Sequence[int]) -> tuple[tuple[int, int], ...]:
    n = len(ranks)
    return tuple((ranks[i], ranks[(i + 1) % n]) for i in range(n))


def by_domain(ranks: Sequence[int], domain_size: int) -> dict[int, list[int]]:
    """The ranks of each NVLink domain (rank // domain_size), domains and ranks in order of appearance."""
    domains: dict[int, list[int]] = {}
    for r in ranks:
        domains.setdefault(r // domain_size, []).append(r)
    return domains


def channel_orders(ranks: Sequence[int], domain_size: int) -> list[list[int]]:
    """NCCL's rings: one per GPU of a node (its channels), each visiting the nodes in the same order
    but entering and leaving every node through a different local GPU, so the rings together use
    every NIC of the node (a single flat ring would leave through one NIC only)."""
    nodes = by_domain(ranks, domain_size)
    k = min(len(v) for v in nodes.values())
    if len(nodes) == 1 or k == 1 or any(len(v) != k for v in nodes.values()):
        return [list(ranks)]
    members = list(nodes.values())
    return [[m[(i + c) % k] for m in members for i in range(k)] for c in range(k)]


def ring(kind: Collective, ranks: Sequence[int], size_bytes: float, domain_size: int = 1 << 30) -> list[TransferRound]:
    n = len(ranks)
    orders = channel_orders(ranks, domain_size)
    pairs = tuple(p for order in orders for p in ring_pairs(order))
    share = size_bytes / len(orders)
    if kind is Collective.ALL_REDUCE:
        return [TransferRound(pairs, 2 * (n - 1) / n * share, 2 * (n - 1))]
    return [TransferRound(pairs, (n - 1) / n * share, n - 1)]


def _binary_tree_edges(order: Sequence[int]) -> list[tuple[int, int]]:
    """(child, parent) edges of a heap-ordered binary tree over `order`."""
    return [(order[i], order[(i - 1) // 2]) for i in range(1, len(order))]


def double_binary_tree(ranks: Sequence[int], size_bytes: float) -> list[TransferRound]:
    """All-reduce only. The second tree is the first mirrored (rank order reversed) so that most
    interior ranks of one tree are leaves of the other (Sanders et al. 2009's construction)."""
    n = len(ranks)
    edges = _binary_tree_edges(ranks) + _binary_tree_edges(list(reversed(ranks)))
    up_and_down = tuple(edges) + tuple((p, c) for c, p in edges)
    return [TransferRound(up_and_down, size_bytes / 2, 2 * math.ceil(math.log2(n)), tree=True)]


def hierarchical(kind: Collective, ranks: Sequence[int], size_bytes: float, domain_size: int) -> list[TransferRound]:
    """Two-level all-reduce (and RS/AG): intra-node first, inter-node on 1/k of the data."""
    nodes = by_domain(ranks, domain_size)
    k = min(len(v) for v in nodes.values())
    if k == 1 or len(nodes) == 1 or any(len(v) != k for v in nodes.values()):
        return ring(kind, ranks, size_bytes, domain_size)
    intra = [tuple(v) for v in nodes.values()]
    inter = [tuple(v[i] for v in nodes.values()) for i in range(k)]
    n_nodes = len(nodes)

    def merged(groups: list[tuple[int, ...]], fraction: float, steps: int) -> TransferRound:
        pairs = tuple(p for g in groups for p in ring_pairs(g))
        return TransferRound(pairs, fraction * size_bytes, steps)

    rs_intra = merged(intra, (k - 1) / k, k - 1)
    ag_intra = merged(intra, (k - 1) / k, k - 1)
    if kind is Collective.ALL_REDUCE:
        middle = merged(inter, 2 * (n_nodes - 1) / n_nodes / k, 2 * (n_nodes - 1))
        return [rs_intra, middle, ag_intra]
    middle = merged(inter, (n_nodes - 1) / n_nodes / k, n_nodes - 1)
    return [rs_intra, middle] if kind is Collective.REDUCE_SCATTER else [middle, ag_intra]


def direct(kind: Collective, ranks: Sequence[int], size_bytes: float) -> list[TransferRound]:
    if kind is Collective.SEND_RECV:
        return [TransferRound(((ranks[0], ranks[1]),), size_bytes, 1)]
    n = len(ranks)
    pairs = tuple((a, b) for a in ranks for b in ranks if a != b)
    return [TransferRound(pairs, size_bytes / n, 1)]


def candidates(kind: Collective, spans_nodes: bool) -> list[Algorithm]:
    """Algorithms NCCL chooses among (NCCL 2.18+ without SHARP/NVLS): ring, and the double binary
    tree for all-reduce across nodes; reduce-scatter and all-gather are ring-only; all-to-all and
    send/recv are direct. The hierarchical composition is available when forced (DeepSpeed hpZ/MiCS
    style frameworks do it), not picked automatically."""
    if kind in (Collective.ALL_TO_ALL, Collective.SEND_RECV):
        return [Algorithm.DIRECT]
    if spans_nodes and kind is Collective.ALL_REDUCE:
        return [Algorithm.RING, Algorithm.TREE]
    return [Algorithm.RING]


def applicable(kind: Collective, algorithm: Algorithm) -> bool:
    """Whether a forced algorithm can run this collective."""
    if kind in (Collective.ALL_TO_ALL, Collective.SEND_RECV):
        return algorithm is Algorithm.DIRECT
    if algorithm is Algorithm.TREE:
        return kind is Collective.ALL_REDUCE
    return algorithm in (Algorithm.RING, Algorithm.HIERARCHICAL)


def decompose(
    kind: Collective, algorithm: Algorithm, ranks: Sequence[int], size_bytes: float, domain_size: int
) -> list[TransferRound]:
    """The rounds of one collective of `size_bytes` on `ranks`; `domain_size` GPUs per NVLink domain."""
    if len(ranks) <= 1:
        return []
    if algorithm is Algorithm.DIRECT or kind in (Collective.ALL_TO_ALL, Collective.SEND_RECV):
        return direct(kind, ranks, size_bytes)
    if algorithm is Algorithm.TREE and kind is Collective.ALL_REDUCE:
        return double_binary_tree(ranks, size_bytes)
    if algorithm is Algorithm.HIERARCHICAL:
        return hierarchical(kind, ranks, size_bytes, domain_size)
    return ring(kind, ranks, size_bytes, domain_size)
