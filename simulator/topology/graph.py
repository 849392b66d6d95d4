"""The cluster network as dense link tables with deterministic GPU-to-GPU routing, and as a networkx
directed graph built on first use."""

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.gc_pause import paused_gc
from simulator.topology.kinds import Link, LinkKind, NodeKind
from simulator.topology.routing import Router

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Link", "LinkKind", "NodeKind", "Topology"]


class Topology:
    """A cluster network: nodes and full-duplex links, each link two directed links with dense ids.

    Physical link i is ids 2i (u->v) and 2i+1 (v->u), so `id ^ 1` is the reverse direction.
    `graph` holds every directed link as an edge with attributes `capacity_Bps` (usable bytes/s in
    that direction), `latency_s`, `kind` (LinkKind) and `link_id`; node attributes: `kind` (NodeKind)
    and `index` (GPU rank, NVLink domain of an NVSwitch, leaf, spine or core number; for NIC j of server n the
    global NIC index n * nics_per_node + j). The simulator itself routes on the link tables and never builds the graph:
    importing networkx and filling it took longer than simulating a small scenario.
    """

    def __init__(
        self,
        nodes: Sequence[tuple[str, dict[str, Any]]],
        links: Sequence[Link],
        *,
        gpus_per_node: int,
        num_gpus: int,
        scale_up_domain: int | None = None,
    ):
        """Use `from_links`."""
        self.gpus_per_node = gpus_per_node
        self.num_gpus = num_gpus
        # GPUs that reach each other over one NVLink fabric (a whole number of nodes): NCCL (MNNVL)
        # treats such a domain as one node for its algorithms, and so do the collectives here.
        self.scale_up_domain = scale_up_domain or gpus_per_node
        self._nodes = nodes
        self._links = links
        self.capacities = np.repeat(np.fromiter((link[2] for link in links), float, len(links)), 2)
        self.latencies_s = np.repeat(np.fromiter((link[3] for link in links), float, len(links)), 2)
        self._routes: dict[tuple[int, int], tuple[int, ...]] = {}

    @classmethod
    def from_links(
        cls,
        nodes: Iterable[tuple[str, dict[str, Any]]],
        links: Sequence[Link],
        *,
        gpus_per_node: int,
        num_gpus: int,
        scale_up_domain: int | None = None,
    ) -> "Topology":
        """From nodes (name, attributes) and distinct full-duplex links (no two between the same nodes);
        `scale_up_domain` GPUs per NVLink fabric (default gpus_per_node)."""
        with paused_gc():
            return cls(
                list(nodes), links, gpus_per_node=gpus_per_node, num_gpus=num_gpus, scale_up_domain=scale_up_domain
            )

    def domain_of(self, gpu: int) -> int:
        """The NVLink domain (scale-up fabric) GPU `gpu` belongs to."""
        return gpu // self.scale_up_domain

    @cached_property
    def graph(self) -> "nx.DiGraph":
        """The network as a networkx DiGraph (built on first access, edges added in link id order)."""
        import networkx as nx

        with paused_gc():
            edges: list[tuple[str, str, dict[str, Any]]] = []
            for i, (u, v, cap, lat, kind) in enumerate(self._links):
                edges.append((u, v, {"capacity_Bps": cap, "latency_s": lat, "kind": kind, "link_id": 2 * i}))
                edges.append((v, u, {"capacity_Bps": cap, "latency_s": lat, "kind": kind, "link_id": 2 * i + 1}))
            graph = nx.DiGraph()
            graph.add_nodes_from(self._nodes)
            graph.add_edges_from(edges)
            return graph

    @cached_property
    def _router(self) -> Router:
        with paused_gc():
            return Router(self._nodes, self._links, self.num_gpus)

    @cached_property
    def _ends(self) -> list[tuple[str, str]]:
        """(u, v) of every directed link: for names and ids, which the simulation itself never asks for."""
        return [end for u, v, *_ in self._links for end in ((u, v), (v, u))]

    @cached_property
    def _kinds(self) -> list[LinkKind]:
        return [link[4] for link in self._links for _ in range(2)]

    @cached_property
    def _link_ids(self) -> dict[tuple[str, str], int]:
        return {end: i for i, end in enumerate(self._ends)}

    @property
    def num_links(self) -> int:
        """Number of directed links (twice the number of physical cables)."""
        return 2 * len(self._links)

    def link_id(self, u: str, v: str) -> int:
        """Id of the directed link u -> v (KeyError when there is none)."""
        return self._link_ids[(u, v)]

    def link_kind(self, link: int) -> LinkKind:
        return self._kinds[link]

    def link_name(self, link: int) -> str:
        u, v = self._ends[link]
        return f"{u}->{v}"

    def route(self, src_gpu: int, dst_gpu: int) -> tuple[int, ...]:
        """Directed link ids from one GPU to another (empty for a GPU to itself): the D-mod-K path, one of
        the minimal paths the traffic spreads over (routing.py), all of the same hops and latency; cached."""
        key = (src_gpu, dst_gpu)
        path = self._routes.get(key)
        if path is None:
            hops = self._router.routes(np.array([src_gpu], dtype=np.intp), np.array([dst_gpu], dtype=np.intp))[0]
            path = self._routes[key] = tuple(hops[hops >= 0].tolist())
        return path

    def link_counts(self, pairs: Sequence[tuple[int, int]]) -> dict[int, float]:
        """How many of the transfers `pairs` cross each link, links in id order: whole transfers on the
        access links, fractions spread over the minimal paths across the switch tiers (adaptive
        routing, routing.py); link_loads with a weight of 1 per pair."""
        if not pairs:
            return {}
        ends = np.array(pairs, dtype=np.intp).reshape(-1, 2)
        return self.link_loads(ends[:, 0], ends[:, 1])

    def link_loads(self, src: np.ndarray, dst: np.ndarray, weights: np.ndarray | float = 1.0) -> dict[int, float]:
        """Sum of the weights of the transfers (src[i] -> dst[i]) on each link, links in id order, each
        transfer spread over its minimal paths across the switch tiers (routing.py), for millions of
        pairs (an all-to-all of a large EP group)."""
        src = np.asarray(src, dtype=np.intp)
        dst = np.asarray(dst, dtype=np.intp)
        w = np.broadcast_to(np.asarray(weights, dtype=float), src.shape)
        loads = self._router.loads(src, dst, w, self.num_links)
        ids = np.flatnonzero(loads)
        return dict(zip(ids.tolist(), loads[ids].tolist(), strict=True))

    def path_latency_s(self, src_gpu: int, dst_gpu: int) -> float:
        """Sum of the link latencies on the route (no queuing, no serialisation)."""
        return float(sum(self.latencies_s[i] for i in self.route(src_gpu, dst_gpu)))

    def hops(self, src_gpu: int, dst_gpu: int) -> int:
        """Number of links on the route."""
        return len(self.route(src_gpu, dst_gpu))
