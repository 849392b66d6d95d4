"""Collectives on the real topology: decompose every concurrent group's collective into flows
over routed paths, aggregate identical flows (link -> how many of them cross it), and price
them with NCCL's protocol latencies. The aggregated flows feed the engine's bandwidth-shared
network; `static_time_s` is the same cost with no other traffic (used for TP/CP collectives
inside a segment and for choosing algorithm and protocol, as NCCL's tuner does: the fastest by
its cost model)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from simulator import units
from simulator.catalog.loader import bundled
from simulator.collectives.algorithms import TransferRound, applicable, candidates, decompose
from simulator.collectives.groups import Layout
from simulator.enums import Algorithm, Collective, CommGroup
from simulator.network import LinkSet
from simulator.topology import Topology


@dataclass(frozen=True)
class FlowSpec:
    """One aggregated flow: `links` maps a directed link id to how many constituent transfers
    cross it; each constituent carries `bytes_per_flow` (wire bytes, protocol overhead included);
    `latency_s` is paid once."""

    links: Mapping[int, float]
    bytes_per_flow: float
    latency_s: float

    @cached_property
    def linkset(self) -> LinkSet:
        """The links prepared once for the flow network."""
        return LinkSet.of(self.links)


@dataclass(frozen=True)
class Pattern:
    """One round of a collective for all concurrent groups, per byte of the collective's buffer."""

    links: Mapping[int, float]
    bytes_per_unit: float
    steps: int
    tree: bool
    inter_node_share: float  # share of the transfers that leave their NVLink domain (NCCL's inter-node steps)


@dataclass(frozen=True)
class Protocol:
    """One NCCL protocol's cost model: base and per-step latencies, and the share of bandwidth it uses."""

    name: str
    base_s: float
    bandwidth_fraction: float
    ring_step_s: dict[str, float]
    tree_step_s: dict[str, float]

    def step_s(self, pattern: Pattern) -> float:
        """Mean per-step latency: NCCL charges inter-node steps the network latency and the rest the
        NVLink latency (tuning.cc: (nsteps - nInterSteps) * intraLat + nInterSteps * interLat)."""
        table = self.tree_step_s if pattern.tree else self.ring_step_s
        f = pattern.inter_node_share
        return (1.0 - f) * table["nvlink"] + f * table["net"]


@cache
def protocols() -> tuple[Protocol, ...]:
    raw = bundled("kernels")["comm"]["protocols"]
    us = units.us_to_s
    return tuple(
        Protocol(
            name,
            us(p["base_us"]),
            p["bandwidth_fraction"],
            {k: us(v) for k, v in p["ring_step_us"].items()},
            {k: us(v) for k, v in p["tree_step_us"].items()},
        )
        for name, p in raw.items()
    )


def aggregate(topo: Topology, round_per_group: Sequence[TransferRound]) -> Pattern:
    """Merge the same round of every concurrent group into one aggregated pattern."""
    links = topo.link_counts([pair for rnd in round_per_group for pair in rnd.pairs])
    domain = topo.scale_up_domain  # NCCL's "node" for its latencies: the NVLink domain (MNNVL)
    first = round_per_group[0]
    inter = sum(src // domain != dst // domain for src, dst in first.pairs) / len(first.pairs)
    if first.tree and inter > 0:
        inter = 1.0  # trees span nodes: every tree step waits on a network hop
    return Pattern(links, first.bytes_per_flow, first.steps, first.tree, inter)


def patterns_for(
    topo: Topology, kind: Collective, algorithm: Algorithm, groups: Sequence[Sequence[int]]
) -> list[Pattern]:
    """Patterns of one collective of 1 byte run by all `groups` at once (bytes scale linearly)."""
    per_group = [decompose(kind, algorithm, g, 1.0, topo.scale_up_domain) for g in groups]
    return [aggregate(topo, [rounds[i] for rounds in per_group]) for i in range(len(per_group[0]))]


def bottleneck_Bps(topo: Topology, links: Mapping[int, float]) -> float:
    """Rate each constituent gets on its most loaded link when nothing else competes."""
    if not links:
        return float("inf")
    ids = np.fromiter(links.keys(), dtype=np.intp, count=len(links))
    mults = np.fromiter(links.values(), dtype=float, count=len(links))
    return float(np.min(topo.capacities[ids] / mults))


def realise(topo: Topology, patterns: Sequence[Pattern], size_bytes: float) -> list[FlowSpec]:
    """Flows for a collective of `size_bytes`: each round with its fastest NCCL protocol (wire bytes
    inflated by the protocol's overhead; latency = steps x per-step latency, plus the base once)."""
    flows = []
    for i, pat in enumerate(patterns):
        rate = bottleneck_Bps(topo, pat.links)
        best = None
        for proto in protocols():
            wire = pat.bytes_per_unit * size_bytes / proto.bandwidth_fraction
            latency = pat.steps * proto.step_s(pat) + (proto.base_s if i == 0 else 0.0)
            t = wire / rate + latency
            if best is None or t < best[0]:
                best = (t, FlowSpec(pat.links, wire, latency))
        assert best is not None
        flows.append(best[1])
    return flows


def static_time_s(topo: Topology, flows: Sequence[FlowSpec]) -> float:
    """Phases run one after another; each ends when its most loaded link has carried its share."""
    return sum(f.bytes_per_flow / bottleneck_Bps(topo, f.links) + f.latency_s for f in flows)


class CommPricer:
    """Per-scenario cache of aggregated flows for every (collective, group kind, stage, size)."""

    def __init__(self, topo: Topology, layout: Layout, forced: Algorithm = Algorithm.AUTO):
        self.topo = topo
        self.layout = layout
        self.forced = forced
        self._cache: dict[tuple, tuple[Algorithm, list[FlowSpec]]] = {}
        self._patterns: dict[tuple, list[Pattern]] = {}
        self._groups: dict[tuple[CommGroup, int], list[tuple[int, ...]]] = {}
        self._p2p: dict[tuple[int, int, float, int | None], FlowSpec] = {}

    def groups(self, group: CommGroup, stage: int) -> list[tuple[int, ...]]:
        """The layout's concurrent groups of a kind on a stage (cached: every collective size asks)."""
        key = (group, stage)
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = self.layout.concurrent_groups(group, stage)
        return found

    def _spans_nodes(self, group: Sequence[int]) -> bool:
        """Whether the group leaves its NVLink domain (NCCL's nNodes > 1: trees become candidates)."""
        return len({self.topo.domain_of(r) for r in group}) > 1

    def _options(self, kind: Collective, group: Sequence[int]) -> list[Algorithm]:
        if self.forced is not Algorithm.AUTO and applicable(kind, self.forced):
            return [self.forced]
        return candidates(kind, self._spans_nodes(group))

    def patterns(self, kind: Collective, algo: Algorithm, group: CommGroup, stage: int) -> list[Pattern]:
        key = (kind, algo, group, stage)
        if key not in self._patterns:
            self._patterns[key] = patterns_for(self.topo, kind, algo, self.groups(group, stage))
        return self._patterns[key]

    def unit_flows(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> list[FlowSpec]:
        """Flows for one collective of `size_bytes` on `group` at `stage` (all copies included)."""
        key = (kind, group, stage, size_bytes)
        if key not in self._cache:
            members = self.groups(group, stage)[0]
            best: tuple[float, Algorithm, list[FlowSpec]] | None = None
            for algo in self._options(kind, members):
                flows = realise(self.topo, self.patterns(kind, algo, group, stage), size_bytes)
                t = static_time_s(self.topo, flows)
                if best is None or t < best[0]:
                    best = (t, algo, flows)
            assert best is not None
            self._cache[key] = (best[1], best[2])
        return self._cache[key][1]

    def algorithm(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> Algorithm:
        self.unit_flows(kind, group, stage, size_bytes)
        return self._cache[(kind, group, stage, size_bytes)][0]

    def time_s(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> float:
        return static_time_s(self.topo, self.unit_flows(kind, group, stage, size_bytes))

    def p2p(self, src_stage: int, dst_stage: int, size_bytes: float, replica: int | None = None) -> FlowSpec:
        """The sends of one pipeline hop as one aggregated flow: of all replicas, or of one (cached per
        pricer: a functools.cache on the method kept every pricer, and its topology, alive for good)."""
        key = (src_stage, dst_stage, size_bytes, replica)
        flow = self._p2p.get(key)
        if flow is None:
            pairs = tuple(self.layout.pipeline_pairs(src_stage, dst_stage, replica))
            pattern = aggregate(self.topo, [TransferRound(pairs, 1.0, 1)])
            flow = self._p2p[key] = realise(self.topo, [pattern], size_bytes)[0]
        return flow
