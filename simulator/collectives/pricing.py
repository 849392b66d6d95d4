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
from simulator.collectives.experts import (
    ExpertRouting,
    all_to_all_transfers,
    deepep_link_factor,
    deepep_transfers,
)
from simulator.collectives.groups import Layout
from simulator.enums import Algorithm, Collective, CommGroup, Dispatcher
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


def all_to_all_pattern(topo: Topology, groups: Sequence[Sequence[int]], routing: ExpertRouting | None) -> Pattern:
    """An all-to-all on all `groups` at once, per byte of one rank's buffer: each rank sends 1/n of it
    to each of the n - 1 others in one step (NCCL's grouped send/recv), or DeepEP's deduplicated,
    forwarded exchange when `routing` says so (experts.deepep_transfers; each link's load times
    DeepEP's wire factor for its kind, experts.deepep_link_factor). DeepEP's combine is the dispatch
    the other way round, which loads the same links equally by the groups' symmetry."""
    n = len(groups[0])
    domain = topo.scale_up_domain
    if routing is not None and routing.dispatcher is Dispatcher.DEEPEP:
        parts = [deepep_transfers(g, domain, routing.experts, routing.top_k) for g in groups]
        src, dst, weight = (np.concatenate(p) for p in zip(*parts, strict=True))
        loads = topo.link_loads(src, dst, weight)
        links = {link: load * deepep_link_factor(topo.link_kind(link)) for link, load in loads.items()}
    else:
        src, dst = all_to_all_transfers(groups)
        links = topo.link_loads(src, dst)
    first = np.asarray(groups[0]) // domain
    inter = float((first[:, None] != first[None, :]).sum()) / (n * (n - 1))
    return Pattern(links, 1.0 / n, 1, False, inter)


@cache
def deepep_protocol() -> Protocol:
    """DeepEP's kernels priced with NCCL's Simple-protocol latencies (the same hops: a base, then
    NVLink or network steps) and no wire overhead of their own: their achieved bandwidth is in the
    links' factors (kernels.yaml moe.deepep)."""
    simple = next(p for p in protocols() if p.name == "Simple")
    return Protocol("DeepEP", simple.base_s, 1.0, simple.ring_step_s, simple.tree_step_s)


def bottleneck_Bps(topo: Topology, links: Mapping[int, float]) -> float:
    """Rate each constituent gets on its most loaded link when nothing else competes."""
    if not links:
        return float("inf")
    ids = np.fromiter(links.keys(), dtype=np.intp, count=len(links))
    mults = np.fromiter(links.values(), dtype=float, count=len(links))
    return float(np.min(topo.capacities[ids] / mults))


def realise(
    topo: Topology, patterns: Sequence[Pattern], size_bytes: float, choices: Sequence[Protocol] | None = None
) -> list[FlowSpec]:
    """Flows for a collective of `size_bytes`: each round with its fastest NCCL protocol (wire bytes
    inflated by the protocol's overhead; latency = steps x per-step latency, plus the base once);
    `choices` instead of NCCL's protocols for other transports (DeepEP)."""
    flows = []
    for i, pat in enumerate(patterns):
        rate = bottleneck_Bps(topo, pat.links)
        best = None
        for proto in protocols() if choices is None else choices:
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
    """Per-scenario cache of aggregated flows for every (collective, group kind, stage, size).

    `routing` (an MoE model's experts, top_k and dispatcher; None for a dense model) decides how the
    all-to-all of an EP group travels: NCCL's all-to-all, or DeepEP's deduplicated forwarding."""

    def __init__(
        self,
        topo: Topology,
        layout: Layout,
        forced: Algorithm = Algorithm.AUTO,
        routing: ExpertRouting | None = None,
    ):
        self.topo = topo
        self.layout = layout
        self.forced = forced
        self.routing = routing
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

    def _deepep(self, kind: Collective, group: CommGroup) -> bool:
        """Whether this collective is DeepEP's token exchange rather than an NCCL collective."""
        r = self.routing
        return (
            r is not None
            and r.dispatcher is Dispatcher.DEEPEP
            and kind is Collective.ALL_TO_ALL
            and group is CommGroup.EP
        )

    def patterns(self, kind: Collective, algo: Algorithm, group: CommGroup, stage: int) -> list[Pattern]:
        key = (kind, algo, group, stage)
        if key not in self._patterns:
            groups = self.groups(group, stage)
            if kind is Collective.ALL_TO_ALL and len(groups[0]) > 1:
                routing = self.routing if self._deepep(kind, group) else None
                self._patterns[key] = [all_to_all_pattern(self.topo, groups, routing)]
            else:
                self._patterns[key] = patterns_for(self.topo, kind, algo, groups)
        return self._patterns[key]

    def unit_flows(self, kind: Collective, group: CommGroup, stage: int, size_bytes: float) -> list[FlowSpec]:
        """Flows for one collective of `size_bytes` on `group` at `stage`, every concurrent group of the
        stage included. `size_bytes` is the buffer of one rank as the collective defines it: the whole
        buffer for all-reduce, the gathered (full) buffer for all-gather and reduce-scatter, and for
        all-to-all what one rank holds before the exchange (a dispatch: its tokens x top_k x hidden x
        bytes per element, the permuted tokens), of which it sends size / n to each other rank."""
        key = (kind, group, stage, size_bytes)
        if key not in self._cache:
            members = self.groups(group, stage)[0]
            choices = (deepep_protocol(),) if self._deepep(kind, group) else None
            best: tuple[float, Algorithm, list[FlowSpec]] | None = None
            for algo in self._options(kind, members):
                flows = realise(self.topo, self.patterns(kind, algo, group, stage), size_bytes, choices)
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
