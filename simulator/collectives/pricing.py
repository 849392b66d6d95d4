"""Collectives on the real topology: decompose every concurrent group's collective into flows
over routed paths, aggregate identical flows (link -> how many of them cross it), and price
them. The aggregated flows feed the engine's bandwidth-shared network; `static_time_s` is the
same cost with no other traffic (used for in-node TP/CP collectives and for choosing the
algorithm as NCCL's tuner does: the fastest by its cost model)."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property

from simulator import units
from simulator.catalog.loader import bundled
from simulator.collectives.algorithms import Phase, candidates, decompose
from simulator.collectives.groups import Layout
from simulator.enums import Algorithm, Collective, CommGroup
from simulator.network import LinkSet
from simulator.topology import Topology


@dataclass(frozen=True)
class FlowSpec:
    """One aggregated flow: `links` maps a directed link id to how many constituent transfers
    cross it; each constituent carries `bytes_per_flow`; `latency_s` is paid once."""

    links: dict[int, float]
    bytes_per_flow: float
    latency_s: float

    @cached_property
    def linkset(self) -> LinkSet:
        """The links prepared once for the flow network."""
        return LinkSet.of(self.links)

    def scaled(self, factor: float) -> "FlowSpec":
        return FlowSpec(self.links, self.bytes_per_flow * factor, self.latency_s)


@cache
def step_overhead_s() -> float:
    return units.us_to_s(bundled("kernels")["comm"]["step_overhead_us"])


def aggregate(topo: Topology, phase_per_group: Sequence[Phase]) -> FlowSpec:
    """Merge the same phase of every concurrent group into one aggregated flow."""
    links: Counter[int] = Counter()
    latency = 0.0
    for ph in phase_per_group:
        for src, dst in ph.pairs:
            links.update(topo.route(src, dst))
            latency = max(latency, topo.path_latency_s(src, dst))
    steps = phase_per_group[0].steps
    return FlowSpec(dict(links), phase_per_group[0].bytes_per_flow, steps * (latency + step_overhead_s()))


def flows_for(
    topo: Topology, kind: Collective, algorithm: Algorithm, groups: Sequence[Sequence[int]]
) -> list[FlowSpec]:
    """Flows of one collective of 1 byte run by all `groups` at once (scale bytes linearly)."""
    per_group = [decompose(kind, algorithm, g, 1.0, topo.gpus_per_node) for g in groups]
    return [aggregate(topo, [phases[i] for phases in per_group]) for i in range(len(per_group[0]))]


def static_time_s(topo: Topology, flows: Sequence[FlowSpec]) -> float:
    """Phases run one after another; each ends when its most loaded link has carried its share."""
    total = 0.0
    for f in flows:
        rate = min(topo.capacities[link] / m for link, m in f.links.items()) if f.links else float("inf")
        total += f.bytes_per_flow / rate + f.latency_s
    return total


class CommPricer:
    """Per-scenario cache of aggregated flows for every (collective, group kind, stage)."""

    def __init__(self, topo: Topology, layout: Layout, forced: Algorithm = Algorithm.AUTO):
        self.topo = topo
        self.layout = layout
        self.forced = forced
        self._cache: dict[tuple, tuple[Algorithm, list[FlowSpec]]] = {}

    def _spans_nodes(self, group: Sequence[int]) -> bool:
        return len({r // self.topo.gpus_per_node for r in group}) > 1

    def unit_flows(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> list[FlowSpec]:
        """Flows for one collective of `size_bytes` on `group` at `stage` (all copies included)."""
        key = (kind, group, stage, size_bytes)
        if key not in self._cache:
            groups = self.layout.concurrent_groups(group, stage)
            options = candidates(kind, self._spans_nodes(groups[0]))
            if self.forced is not Algorithm.AUTO and self.forced in options:
                options = [self.forced]
            best: tuple[float, Algorithm, list[FlowSpec]] | None = None
            for algo in options:
                flows = [f.scaled(size_bytes) for f in self._unit(kind, algo, group, stage)]
                t = static_time_s(self.topo, flows)
                if best is None or t < best[0]:
                    best = (t, algo, flows)
            assert best is not None
            self._cache[key] = (best[1], best[2])
        return self._cache[key][1]

    @cache  # noqa: B019 - the pricer lives for one simulation
    def _unit(self, kind: Collective, algo: Algorithm, group: CommGroup, stage: int) -> list[FlowSpec]:
        return flows_for(self.topo, kind, algo, self.layout.concurrent_groups(group, stage))

    def algorithm(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> Algorithm:
        self.unit_flows(kind, group, stage, size_bytes)
        return self._cache[(kind, group, stage, size_bytes)][0]

    def time_s(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> float:
        return static_time_s(self.topo, self.unit_flows(kind, group, stage, size_bytes))

    @cache  # noqa: B019
    def p2p(self, src_stage: int, dst_stage: int, size_bytes: float) -> FlowSpec:
        """All replicas' sends of one pipeline hop as one aggregated flow."""
        pairs = tuple(self.layout.pipeline_pairs(src_stage, dst_stage))
        return aggregate(self.topo, [Phase(pairs, size_bytes, 1)])
