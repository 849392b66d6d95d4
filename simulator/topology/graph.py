"""The cluster network as a directed graph with dense link ids, and deterministic GPU-to-GPU routing."""

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NamedTuple

import networkx as nx
import numpy as np


class LinkKind(StrEnum):
    """What a directed link is physically."""

    NVLINK = "nvlink"  # GPU <-> its server's NVSwitch fabric
    PCIE = "pcie"  # GPU <-> its own NIC (GPUDirect RDMA)
    NIC = "nic"  # NIC <-> leaf switch port
    UPLINK = "uplink"  # leaf <-> spine


class NodeKind(StrEnum):
    GPU = "gpu"
    NVSWITCH = "nvswitch"
    NIC = "nic"
    LEAF = "leaf"
    SPINE = "spine"


class _Access(NamedTuple):
    """How one GPU reaches the scale-out fabric: link ids GPU->NIC->leaf and back, its leaf and NIC index."""

    up: tuple[int, ...]
    down: tuple[int, ...]
    leaf: str
    nic_index: int


# One full-duplex physical link: (u, v, capacity_Bps per direction, latency_s per direction, kind).
Link = tuple[str, str, float, float, LinkKind]


class Topology:
    """A cluster network: `graph` holds every full-duplex link as two directed edges.

    Edge attributes: `capacity_Bps` (usable bytes/s in that direction), `latency_s`, `kind` (LinkKind)
    and `link_id`. Ids are dense: physical link i is ids 2i (u->v) and 2i+1 (v->u), so `id ^ 1` is
    the reverse direction. Node attributes: `kind` (NodeKind) and `index` (GPU rank, server, leaf or
    spine number; for NIC j of server n the global NIC index n * nics_per_node + j).
    """

    def __init__(self, graph: nx.DiGraph, links: Sequence[Link], *, gpus_per_node: int, num_gpus: int):
        """Use `from_links`: `graph` must hold physical link i of `links` as edges with link_id 2i and 2i+1."""
        self.graph = graph
        self.gpus_per_node = gpus_per_node
        self.num_gpus = num_gpus
        self._ends = [end for u, v, *_ in links for end in ((u, v), (v, u))]
        self._kinds = [link[4] for link in links for _ in range(2)]
        self.capacities = np.repeat(np.fromiter((link[2] for link in links), float, len(links)), 2)
        self.latencies_s = np.repeat(np.fromiter((link[3] for link in links), float, len(links)), 2)
        self._routes: dict[tuple[int, int], tuple[int, ...]] = {}
        self._up_cache: dict[int, tuple[str, tuple[int, ...], tuple[int, ...]]] = {}
        self._out_cache: dict[int, _Access] = {}
        self._spines: dict[tuple[str, str], tuple[str, ...]] = {}
        self._leaf_spines: dict[tuple[str, bool], tuple[str, ...]] = {}

    @classmethod
    def from_links(
        cls, nodes: Iterable[tuple[str, dict[str, Any]]], links: Sequence[Link], *, gpus_per_node: int, num_gpus: int
    ) -> "Topology":
        """Build from nodes (name, attributes) and full-duplex links, adding edges in bulk."""
        with paused_gc():
            edges: list[tuple[str, str, dict[str, Any]]] = []
            for i, (u, v, cap, lat, kind) in enumerate(links):
                edges.append((u, v, {"capacity_Bps": cap, "latency_s": lat, "kind": kind, "link_id": 2 * i}))
                edges.append((v, u, {"capacity_Bps": cap, "latency_s": lat, "kind": kind, "link_id": 2 * i + 1}))
            graph = nx.DiGraph()
            graph.add_nodes_from(nodes)
            graph.add_edges_from(edges)
            return cls(graph, links, gpus_per_node=gpus_per_node, num_gpus=num_gpus)

    @property
    def num_links(self) -> int:
        """Number of directed links (twice the number of physical cables)."""
        return len(self._ends)

    def link_id(self, u: str, v: str) -> int:
        """Id of the directed link u -> v (KeyError when there is none)."""
        return self.graph.edges[u, v]["link_id"]

    def link_kind(self, link: int) -> LinkKind:
        return self._kinds[link]

    def link_name(self, link: int) -> str:
        u, v = self._ends[link]
        return f"{u}->{v}"

    def route(self, src_gpu: int, dst_gpu: int) -> tuple[int, ...]:
        """Directed link ids from one GPU to another (empty for a GPU to itself); cached."""
        key = (src_gpu, dst_gpu)
        path = self._routes.get(key)
        if path is None:
            path = self._routes[key] = self._compute_route(src_gpu, dst_gpu)
        return path

    def path_latency_s(self, src_gpu: int, dst_gpu: int) -> float:
        """Sum of the link latencies on the route (no queuing, no serialisation)."""
        return float(sum(self.latencies_s[i] for i in self.route(src_gpu, dst_gpu)))

    def hops(self, src_gpu: int, dst_gpu: int) -> int:
        """Number of links on the route."""
        return len(self.route(src_gpu, dst_gpu))

    def _compute_route(self, src: int, dst: int) -> tuple[int, ...]:
        for gpu in (src, dst):
            if not 0 <= gpu < self.num_gpus:
                raise ValueError(f"GPU {gpu} is not in this {self.num_gpus}-GPU topology")
        if src == dst:
            return ()
        (nvs_s, to_nvs, _), (nvs_d, _, from_nvs) = self._scale_up(src), self._scale_up(dst)
        if nvs_s == nvs_d:  # same server
            return to_nvs + from_nvs
        s, d = self._scale_out(src), self._scale_out(dst)
        if s.leaf == d.leaf:
            return s.up + d.down
        return s.up + self._ids((s.leaf, self._spine(s.leaf, d.leaf, d.nic_index), d.leaf)) + d.down

    def _scale_up(self, gpu: int) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
        """The GPU's NVSwitch node and the link ids GPU -> NVSwitch and back, from the graph (cached per GPU)."""
        found = self._up_cache.get(gpu)
        if found is None:
            name = f"gpu{gpu}"
            nvs = self._neighbour(name, LinkKind.NVLINK)
            found = self._up_cache[gpu] = (nvs, self._ids((name, nvs)), self._ids((nvs, name)))
        return found

    def _scale_out(self, gpu: int) -> "_Access":
        """The GPU's NIC and leaf and the link ids up to and down from the leaf (cached per GPU)."""
        access = self._out_cache.get(gpu)
        if access is None:
            name = f"gpu{gpu}"
            nic = self._neighbour(name, LinkKind.PCIE)
            leaf = self._neighbour(nic, LinkKind.NIC)
            index = self.graph.nodes[nic]["index"]
            access = _Access(self._ids((name, nic, leaf)), self._ids((leaf, nic, name)), leaf, index)
            self._out_cache[gpu] = access
        return access

    def _ids(self, nodes: Sequence[str]) -> tuple[int, ...]:
        edge = self.graph.get_edge_data  # plain dict access: graph.succ[u][v] builds two views per call
        return tuple(edge(u, v)["link_id"] for u, v in zip(nodes, nodes[1:], strict=False))

    def _neighbour(self, node: str, kind: LinkKind) -> str:
        """The successor of `node` over a link of `kind` (the builders give each node at most one)."""
        found = next((v for v, d in self.graph.succ[node].items() if d["kind"] == kind), None)
        if found is None:
            raise ValueError(f"{node} has no {kind} link: the topology cannot route from it")
        return found

    def _spine(self, leaf_s: str, leaf_d: str, nic_index: int) -> str:
        """D-mod-K (Zahavi; OpenSM ftree): the destination NIC's global index mod the candidate spines."""
        spines = self._spines.get((leaf_s, leaf_d))
        if spines is None:
            spines = self._spines[(leaf_s, leaf_d)] = self._common_spines(leaf_s, leaf_d)
        return spines[nic_index % len(spines)]

    def _common_spines(self, leaf_s: str, leaf_d: str) -> tuple[str, ...]:
        """Spines that are successors of `leaf_s` and predecessors of `leaf_d` over uplinks, in index order."""
        down = frozenset(self._spines_of(leaf_d, up=False))
        found = tuple(w for w in self._spines_of(leaf_s, up=True) if w in down)
        if not found:
            raise ValueError(f"no spine connects {leaf_s} to {leaf_d}")
        return found

    def _spines_of(self, leaf: str, *, up: bool) -> tuple[str, ...]:
        """Spines with an uplink from (`up`) or to the leaf, in index order; cached per leaf and direction."""
        key = (leaf, up)
        spines = self._leaf_spines.get(key)
        if spines is None:
            nodes = self.graph.nodes
            adjacent = (self.graph.succ if up else self.graph.pred)[leaf].items()
            found = [w for w, d in adjacent if d["kind"] == LinkKind.UPLINK]
            spines = self._leaf_spines[key] = tuple(sorted(found, key=lambda w: nodes[w]["index"]))
        return spines


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector while building ~10^5 small acyclic containers: otherwise it runs
    repeated full collections over them and the build of a 16k-GPU cluster takes ~3x longer."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
