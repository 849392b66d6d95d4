"""Rack-scale NVLink domains, expert-parallel groups, all-to-all flows and the MoE dispatchers' transport
(simulator/topology, simulator/collectives): exact small cases."""

from typing import Any

import numpy as np
import pytest

from simulator.catalog.loader import bundled
from simulator.collectives.experts import (
    Exchange,
    ExpertRouting,
    dedup_factor,
    deepep_transfers,
    dispatcher_sms,
    hit_probability,
    token_exchange,
)
from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer, FlowSpec, all_to_all_pattern, patterns_for, protocols
from simulator.enums import Algorithm, Collective, CommGroup, Dispatcher, Recompute, Schedule
from simulator.scenario import setup_from_mapping
from simulator.scenario.setup import ClusterSpec, ParallelPlan, Setup
from simulator.topology import LinkKind, NodeKind, Topology, build_topology

NVLINK_EFF = bundled("kernels")["comm"]["nvlink_efficiency"]


def cluster(num_gpus: int, gpu: str = "h100-sxm-80gb", **extra: Any) -> ClusterSpec:
    """A cluster as a scenario resolves it (the smallest model: only the cluster is used)."""
    return setup_from_mapping(
        {
            "name": "t",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": gpu, "num_gpus": num_gpus, **extra},
            "parallelism": {"tp": 1, "pp": 1},
            "training": {"global_batch": num_gpus, "precision": "fp16"},  # fp16: V100 has no bf16
        }
    ).cluster


def nvl72(num_gpus: int = 144) -> ClusterSpec:
    """GB200 NVL72-like racks: Blackwell GPUs, 18 compute trays of 4 GPUs with a NIC per GPU, one
    NVLink fabric per 72 GPUs at 900 GB/s per GPU per direction (NVLink 5)."""
    return cluster(num_gpus, "b200", gpus_per_node=4, nics_per_node=4, scale_up_domain=72)


def kinds(topo: Topology, src: int, dst: int) -> list[LinkKind]:
    return [topo.link_kind(i) for i in topo.route(src, dst)]


def names(topo: Topology, src: int, dst: int) -> list[str]:
    return [topo.link_name(i) for i in topo.route(src, dst)]


# --- rack-scale NVLink ---------------------------------------------------------------------------


def test_nvl72_racks_route_over_nvlink_inside_and_nics_between() -> None:
    c = nvl72()
    assert c.num_nodes == 36 and c.scale_up_domain == 72
    topo = build_topology(c)
    assert topo.scale_up_domain == 72 and topo.domain_of(71) == 0 and topo.domain_of(72) == 1
    # GPU 40 is in compute tray 10 of rack 0: NVLink through the rack's fabric, no NIC
    assert names(topo, 0, 40) == ["gpu0->nvs0", "nvs0->gpu40"]
    assert [topo.capacities[i] for i in topo.route(0, 40)] == [900e9 * NVLINK_EFF] * 2
    # GPU 100 is in rack 1: its own tray's NIC, the scale-out fabric (32 NICs per 64-port leaf: a
    # spine between the leaves), the other tray's NIC
    pcie, nic, up = LinkKind.PCIE, LinkKind.NIC, LinkKind.UPLINK
    assert kinds(topo, 0, 100) == [pcie, nic, up, up, nic, pcie]
    assert names(topo, 0, 100)[0] == "gpu0->nic0.0" and names(topo, 0, 100)[-1] == "nic25.0->gpu100"
    assert names(topo, 3, 7)[0] == "gpu3->nvs0" and names(topo, 73, 143) == ["gpu73->nvs1", "nvs1->gpu143"]
    nvswitches = [n for n, k in topo.graph.nodes(data="kind") if k == NodeKind.NVSWITCH]
    assert nvswitches == ["nvs0", "nvs1"]
    assert sum(1 for _, k in topo.graph.nodes(data="kind") if k == NodeKind.NIC) == 144  # one per GPU


def test_one_node_domains_build_the_same_topology_as_before() -> None:
    """scale_up_domain == gpus_per_node (every server its own NVLink domain) is the server topology:
    the same node names and links in the same order."""
    c = cluster(64)
    assert c.scale_up_domain == 8
    topo = build_topology(c)
    assert names(topo, 0, 7) == ["gpu0->nvs0", "nvs0->gpu7"]
    assert kinds(topo, 0, 8)[0] is LinkKind.PCIE
    nvswitches = [n for n, k in topo.graph.nodes(data="kind") if k == NodeKind.NVSWITCH]
    assert nvswitches == [f"nvs{i}" for i in range(8)]


def test_a_partial_last_rack_is_its_own_domain() -> None:
    topo = build_topology(nvl72(100))  # rack 0: GPUs 0-71, rack 1: GPUs 72-99
    assert names(topo, 72, 99) == ["gpu72->nvs1", "nvs1->gpu99"]
    assert kinds(topo, 71, 72)[0] is LinkKind.PCIE


def test_nvl72_routes_are_shortest_paths_of_the_graph() -> None:
    import networkx as nx

    topo = build_topology(nvl72())
    by_id = {d["link_id"]: (u, v) for u, v, d in topo.graph.edges(data=True)}
    for src, dst in [(0, 40), (0, 100), (5, 71), (71, 72), (143, 1), (36, 108)]:
        hops = [by_id[i] for i in topo.route(src, dst)]
        assert hops[0][0] == f"gpu{src}" and hops[-1][1] == f"gpu{dst}"
        assert all(a[1] == b[0] for a, b in zip(hops, hops[1:], strict=False))
        assert len(hops) == nx.shortest_path_length(topo.graph, f"gpu{src}", f"gpu{dst}")


# --- expert groups (Megatron-Core parallel folding) ----------------------------------------------


def test_expert_groups_of_tp2_dp8_ep4() -> None:
    """tp 2, cp 1, dp 8 on 16 GPUs per stage, ep 4, etp 1: the expert grid is etp fastest, then ep,
    then expert-dp (4 = 16 / 4), whatever the dense grid's tp and dp."""
    layout = Layout(tp=2, cp=1, dp=8, pp=2, ep=4, etp=1)
    assert layout.edp == 4 and layout.stage_size == 16
    assert layout.concurrent_groups(CommGroup.EP, 0) == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15)]
    assert layout.concurrent_groups(CommGroup.EDP, 0) == [(0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)]
    assert layout.concurrent_groups(CommGroup.ETP, 0) == [(r,) for r in range(16)]
    assert layout.concurrent_groups(CommGroup.EP, 1)[0] == (16, 17, 18, 19)  # the stage's offset
    # the group of the GPU at dense coordinates (t 1, d 2) of stage 1: GPU 16 + 1 + 2 * 2 = 21
    assert layout.group(CommGroup.EP, 1, t=1, d=2) == (20, 21, 22, 23)
    assert layout.group(CommGroup.EDP, 1, t=1, d=2) == (17, 21, 25, 29)


def test_expert_groups_with_expert_tensor_parallelism() -> None:
    layout = Layout(tp=2, cp=1, dp=8, pp=1, ep=4, etp=2)
    assert layout.edp == 2
    assert layout.group(CommGroup.EP, 0) == (0, 2, 4, 6) and layout.group(CommGroup.ETP, 0) == (0, 1)
    assert layout.group(CommGroup.EDP, 0) == (0, 8)
    assert layout.concurrent_groups(CommGroup.EP, 0) == [(0, 2, 4, 6), (1, 3, 5, 7), (8, 10, 12, 14), (9, 11, 13, 15)]
    assert len(layout.concurrent_groups(CommGroup.ETP, 0)) == 8 and len(layout.concurrent_groups(CommGroup.EDP, 0)) == 8
    # etp defaults to tp, and a dense plan's layout has ep 1: every GPU its own EP group
    assert Layout(tp=4, cp=1, dp=2, pp=1).etp == 4 and Layout(tp=4, cp=1, dp=2, pp=1).group(CommGroup.EP, 0) == (0,)
    with pytest.raises(ValueError, match="must divide"):
        Layout(tp=1, cp=1, dp=6, pp=1, ep=4, etp=1).group(CommGroup.EP, 0)


def test_expert_groups_fold_over_context_parallel_ranks() -> None:
    """cp ranks are part of the stage's GPUs the expert grid covers (Megatron-Core: cp = 1 in the
    expert grid, its ranks folded into ep / expert-dp)."""
    layout = Layout(tp=1, cp=2, dp=4, pp=1, ep=8, etp=1)
    assert layout.edp == 1 and layout.group(CommGroup.EP, 0) == tuple(range(8))
    assert layout.group(CommGroup.EDP, 0, c=1, d=3) == (7,)


def test_layout_of_a_plan_carries_ep_and_etp() -> None:
    plan = ParallelPlan(
        tp=2,
        pp=1,
        dp=8,
        cp=1,
        schedule=Schedule.ONE_F_ONE_B,
        virtual_stages=1,
        sequence_parallel=True,
        zero=1,
        recompute=Recompute.NONE,
        dp_overlap=True,
        ep=4,
        etp=1,
    )
    assert Layout.of(plan) == Layout(tp=2, cp=1, dp=8, pp=1, ep=4, etp=1)


# --- all-to-all ----------------------------------------------------------------------------------

SIZE = float(2**30)  # large enough that NCCL's Simple protocol (no wire overhead) is the fastest
NIC_EFF = bundled("kernels")["comm"]["nic_efficiency"]
DEEPEP = bundled("kernels")["moe"]["deepep"]


def pricer_for(num_gpus: int, layout: Layout, routing: ExpertRouting | None = None, **extra: Any) -> CommPricer:
    return CommPricer(build_topology(cluster(num_gpus, **extra)), layout, routing=routing)


def link_bytes(pricer: CommPricer, flow: FlowSpec) -> dict[str, float]:
    return {pricer.topo.link_name(link): mult * flow.bytes_per_flow for link, mult in flow.links.items()}


def test_all_to_all_over_two_nodes_loads_each_link_with_its_peers_shares() -> None:
    """EP 16 over two DGX H100: every GPU sends SIZE / 16 to each of the 15 others, 7 over NVLink and 8
    through its NIC (one leaf: GPU -> NIC -> leaf -> NIC -> GPU)."""
    pricer = pricer_for(16, Layout(tp=1, cp=1, dp=16, pp=1, ep=16, etp=1))
    (flow,) = pricer.unit_flows(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE)
    assert pricer.algorithm(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE) is Algorithm.DIRECT
    loads = link_bytes(pricer, flow)
    share = SIZE / 16
    assert flow.bytes_per_flow == share
    for g in range(16):
        node, nic = divmod(g, 8)
        assert loads[f"gpu{g}->nvs{node}"] == loads[f"nvs{node}->gpu{g}"] == 7 * share
        assert loads[f"gpu{g}->nic{node}.{nic}"] == loads[f"nic{node}.{nic}->gpu{g}"] == 8 * share
        assert loads[f"nic{node}.{nic}->leaf0"] == loads[f"leaf0->nic{node}.{nic}"] == 8 * share
    assert len(loads) == 16 * 6  # nothing else is used
    # half the transfers leave the node: NCCL's step latency is the mean of NVLink's and the network's
    simple = next(p for p in protocols() if p.name == "Simple")
    step = (7 * simple.ring_step_s["nvlink"] + 8 * simple.ring_step_s["net"]) / 15
    assert flow.latency_s == pytest.approx(simple.base_s + step)


def test_all_to_all_inside_one_node_takes_its_bytes_over_nvlink() -> None:
    """Static time of an all-to-all of S bytes per rank among the n = 8 GPUs of one DGX H100:
        t = S (n - 1) / n / (NVLink rate x comm.nvlink_efficiency) + base + one NVLink step
    (NCCL's Simple protocol at this size: each GPU's NVLink port carries its n - 1 shares of S / n)."""
    pricer = pricer_for(8, Layout(tp=1, cp=1, dp=8, pp=1, ep=8, etp=1))
    simple = next(p for p in protocols() if p.name == "Simple")
    expected = SIZE * 7 / 8 / (450e9 * NVLINK_EFF) + simple.base_s + simple.ring_step_s["nvlink"]
    assert pricer.time_s(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE) == pytest.approx(expected, rel=1e-12)


def test_concurrent_ep_groups_share_the_stage() -> None:
    """tp 2 x dp 8 with ep 4 on 16 GPUs: four EP groups of consecutive GPUs, two per node, all at once."""
    pricer = pricer_for(16, Layout(tp=2, cp=1, dp=8, pp=1, ep=4, etp=1))
    (flow,) = pricer.unit_flows(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE)
    loads = link_bytes(pricer, flow)
    assert set(loads) == {f"gpu{g}->nvs{g // 8}" for g in range(16)} | {f"nvs{g // 8}->gpu{g}" for g in range(16)}
    assert all(v == 3 * SIZE / 4 for v in loads.values())


@pytest.mark.parametrize("kind", [Collective.ALL_GATHER, Collective.REDUCE_SCATTER])
@pytest.mark.parametrize("group", [CommGroup.EP, CommGroup.ETP, CommGroup.EDP])
def test_gathers_and_reductions_run_on_the_expert_groups(kind: Collective, group: CommGroup) -> None:
    """tp 2, dp 8, ep 4, etp 2 on two nodes: EP (0, 2, 4, 6) and ETP (0, 1) stay in a node, EDP (0, 8)
    crosses to the other one; each is a ring of its own ranks."""
    layout = Layout(tp=2, cp=1, dp=8, pp=1, ep=4, etp=2)
    pricer = pricer_for(16, layout)
    flows = pricer.unit_flows(kind, group, 0, SIZE)
    n = len(layout.group(group, 0))
    assert pricer.algorithm(kind, group, 0, SIZE) is Algorithm.RING
    kinds_used = {pricer.topo.link_kind(link) for f in flows for link in f.links}
    assert kinds_used == ({LinkKind.PCIE, LinkKind.NIC} if group is CommGroup.EDP else {LinkKind.NVLINK})
    assert sum(f.bytes_per_flow for f in flows) == pytest.approx(SIZE * (n - 1) / n)


# --- DeepEP --------------------------------------------------------------------------------------


def monte_carlo_dedup(experts: int, top_k: int, ep: int, ranks_per_domain: int, tokens: int = 200_000) -> float:
    """Tokens of a rank in domain 0 routed to top_k distinct random experts: distinct other domains
    reached over copies that leave domain 0."""
    rng = np.random.default_rng(7)
    picks = np.argsort(rng.random((tokens, experts)), axis=1)[:, :top_k]
    domain = picks // (experts // ep) // ranks_per_domain
    leaving = (domain != 0).sum()
    reached = sum(((domain == d).any(axis=1)).sum() for d in range(1, ep // ranks_per_domain))
    return float(reached / leaving)


@pytest.mark.parametrize(
    ("experts", "top_k", "ep", "per_domain"),
    [(64, 6, 16, 4), (256, 8, 64, 8), (16, 2, 16, 8), (128, 8, 32, 4), (8, 2, 8, 1)],
)
def test_deepep_dedup_closed_form_matches_monte_carlo(experts: int, top_k: int, ep: int, per_domain: int) -> None:
    exact = dedup_factor(experts, top_k, ep, per_domain)
    assert exact == pytest.approx(monte_carlo_dedup(experts, top_k, ep, per_domain), rel=0.01)
    assert 0 < exact <= 1


def test_deepep_dedup_closed_form_by_hand() -> None:
    # 16 experts, top-2, two domains of 8: P(reach the other domain) = 1 - C(8, 2) / C(16, 2) = 92/120;
    # copies leaving = 2 x 1/2 = 1 -> factor 92/120
    assert dedup_factor(16, 2, 16, 8) == pytest.approx(92 / 120)
    assert hit_probability(16, 2, 8) == pytest.approx(92 / 120)
    assert dedup_factor(256, 8, 64, 64) == 1.0  # one domain: nothing to deduplicate
    assert hit_probability(10, 3, 8) == 1.0  # fewer experts outside than picks


def test_deepep_over_two_nodes_sends_each_token_once_per_node_and_forwards_it_over_nvlink() -> None:
    """EP 16 over two DGX H100, 16 experts, top-2. GPU g sends to its own node's 7 GPUs their plain
    shares (S / 16 each), to GPU g + 8 (same local index, other node) one copy of each token that
    reaches that node (S / 2 x 92/120 = S / 16 x 16 x (92/120) / 2), which forwards the 7 shares of
    its node's other GPUs over NVLink. Link bytes carry DeepEP's wire factors."""
    layout = Layout(tp=1, cp=1, dp=16, pp=1, ep=16, etp=1)
    pricer = pricer_for(16, layout, ExpertRouting(16, 2, Dispatcher.DEEPEP))
    (flow,) = pricer.unit_flows(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE)
    loads = link_bytes(pricer, flow)
    share, nvlink, rdma = SIZE / 16, 1 / DEEPEP["nvlink_fraction"], NIC_EFF / DEEPEP["rdma_fraction"]
    scale_out = 16 * (92 / 120) / 2
    for g in range(16):
        node, nic = divmod(g, 8)
        assert loads[f"gpu{g}->nvs{node}"] == pytest.approx((7 + 7) * share * nvlink)  # own + forwarded
        assert loads[f"nvs{node}->gpu{g}"] == pytest.approx((7 + 7) * share * nvlink)
        assert loads[f"gpu{g}->nic{node}.{nic}"] == pytest.approx(scale_out * share)  # PCIe: factor 1
        assert loads[f"nic{node}.{nic}->leaf0"] == pytest.approx(scale_out * share * rdma)
    # against NCCL's all-to-all: 8 shares through each NIC become 7.67 (the token reaches the other
    # node 92/120 of the time, once instead of its 1 expected copy there)
    nccl = pricer_for(16, layout)
    plain = link_bytes(nccl, nccl.unit_flows(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE)[0])
    assert loads["gpu0->nic0.0"] / plain["gpu0->nic0.0"] == pytest.approx(dedup_factor(16, 2, 16, 8))


def test_deepep_inside_one_nvlink_domain_is_the_all_to_all_at_its_nvlink_fraction() -> None:
    layout = Layout(tp=1, cp=1, dp=8, pp=1, ep=8, etp=1)
    deepep = pricer_for(8, layout, ExpertRouting(64, 8, Dispatcher.DEEPEP))
    nccl = pricer_for(8, layout, ExpertRouting(64, 8, Dispatcher.ALLTOALL))
    (d,), (a,) = (p.unit_flows(Collective.ALL_TO_ALL, CommGroup.EP, 0, SIZE) for p in (deepep, nccl))
    assert link_bytes(deepep, d) == pytest.approx(
        {k: v / DEEPEP["nvlink_fraction"] for k, v in link_bytes(nccl, a).items()}
    )
    # routing only changes the EP all-to-all: other collectives price as without it
    assert deepep.unit_flows(Collective.ALL_GATHER, CommGroup.EP, 0, SIZE) == nccl.unit_flows(
        Collective.ALL_GATHER, CommGroup.EP, 0, SIZE
    )


def test_dispatcher_sms() -> None:
    assert dispatcher_sms(Dispatcher.DEEPEP) == DEEPEP["sms"] == 20
    assert (
        dispatcher_sms(Dispatcher.ALLTOALL)
        == dispatcher_sms(Dispatcher.ALLGATHER)
        == bundled("kernels")["comm"]["overlap_sms"]
    )


def moe_setup(**parallelism: Any) -> Setup:
    return setup_from_mapping(
        {
            "name": "t",
            "model": {"preset": "gpt3-125m", "moe": {"experts": 8, "top_k": 2, "expert_ffn_hidden": 768}},
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8},
            "parallelism": {"tp": 1, "pp": 1, **parallelism},
            "training": {"global_batch": 8, "precision": "bf16"},
        }
    )


def test_expert_routing_of_a_model() -> None:
    setup = moe_setup(ep=8, moe_dispatcher="deepep")
    assert ExpertRouting.of(setup.model, setup.plan) == ExpertRouting(8, 2, Dispatcher.DEEPEP)
    assert ExpertRouting.of(moe_setup().model, moe_setup().plan) == ExpertRouting(8, 2, Dispatcher.ALLTOALL)
    dense = setup_from_mapping(
        {
            "name": "t",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8},
            "parallelism": {"tp": 1, "pp": 1},
            "training": {"global_batch": 8, "precision": "bf16"},
        }
    )
    assert ExpertRouting.of(dense.model, dense.plan) is None


# --- the fast paths against the plain ones -------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"num_gpus": 320},
        {"num_gpus": 320, "topology": "rail-optimized"},
        {"num_gpus": 840, "gpu": "a100-sxm-80gb"},  # 42 HDR leaves: 3 tiers
        {"num_gpus": 64, "gpu": "v100-sxm-32gb"},  # DGX-1: two GPUs per NIC
        {"num_gpus": 144, "gpu": "b200", "gpus_per_node": 4, "nics_per_node": 4, "scale_up_domain": 72},
    ],
)
def test_weighted_link_loads_equal_the_routes_summed_pair_by_pair(spec: dict[str, Any]) -> None:
    """Oracle: each pair's route, pair by pair, with its switch hops replaced by an even share of every
    minimal path between the two leaves in the networkx graph (adaptive routing's fluid limit)."""
    import networkx as nx

    topo = build_topology(cluster(**spec))
    switches = topo.graph.subgraph(
        n for n, k in topo.graph.nodes(data="kind") if k in (NodeKind.LEAF, NodeKind.SPINE, NodeKind.CORE)
    )
    rng = np.random.default_rng(3)
    n = spec["num_gpus"]
    src, dst = rng.integers(0, n, 600), rng.integers(0, n, 600)
    weights = rng.random(600)
    expected: dict[int, float] = {}
    paths_between: dict[tuple[str, str], list[list[str]]] = {}
    for s, d, w in zip(src.tolist(), dst.tolist(), weights.tolist(), strict=True):
        route = topo.route(s, d)
        access = [i for i in route if topo.link_kind(i) not in (LinkKind.UPLINK, LinkKind.CORE)]
        shares = [(i, w) for i in access]
        if len(access) < len(route):
            leaves = topo.link_name(access[1]).split("->")[1], topo.link_name(access[2]).split("->")[0]
            if leaves not in paths_between:
                paths_between[leaves] = list(nx.all_shortest_paths(switches, *leaves))
            paths = paths_between[leaves]
            shares += [(topo.link_id(u, v), w / len(paths)) for p in paths for u, v in zip(p, p[1:], strict=False)]
        for link, share in shares:
            expected[link] = expected.get(link, 0.0) + share
    assert topo.link_loads(src, dst, weights) == pytest.approx(expected)
    counts = topo.link_counts(list(zip(src.tolist(), dst.tolist(), strict=True)))
    assert topo.link_loads(src, dst) == pytest.approx(counts)


def test_all_to_all_pattern_equals_the_direct_decomposition() -> None:
    """The vectorised all-to-all is algorithms.direct aggregated as the other collectives are."""
    topo = build_topology(cluster(320, topology="rail-optimized"))
    layout = Layout(tp=2, cp=1, dp=80, pp=2, ep=16, etp=2)
    groups = layout.concurrent_groups(CommGroup.EP, 1)
    fast = all_to_all_pattern(topo, groups, None)
    plain = patterns_for(topo, Collective.ALL_TO_ALL, Algorithm.DIRECT, groups)[0]
    assert fast.links == pytest.approx({k: float(v) for k, v in plain.links.items()})
    assert (fast.bytes_per_unit, fast.steps, fast.tree) == (plain.bytes_per_unit, plain.steps, plain.tree)
    assert fast.inter_node_share == pytest.approx(plain.inter_node_share)


def reference_deepep(group: list[int], domain: int, experts: int, top_k: int) -> list[tuple[int, int, float]]:
    """deepep_transfers' docstring, literally, one transfer at a time."""
    n = len(group)
    domains: dict[int, list[int]] = {}
    for r in group:
        domains.setdefault(r // domain, []).append(r)
    out = []
    for own, members in domains.items():
        for j, src in enumerate(members):
            out += [(src, dst, 1.0) for dst in members if dst != src]
            for other, remote in domains.items():
                if other != own:
                    peer = remote[j % len(remote)]
                    out.append((src, peer, n * hit_probability(experts, top_k, len(remote) * experts // n) / top_k))
                    out += [(peer, dst, 1.0) for dst in remote if dst != peer]
    return out


@pytest.mark.parametrize(
    ("group", "domain"),
    [
        (list(range(64, 128)), 72),  # 8 GPUs in rack 0, 56 in rack 1: unequal domains
        (list(range(0, 32, 2)), 8),  # every other GPU (etp 2) of four servers
        (list(range(16)), 8),
        (list(range(8)), 8),  # one domain: NVLink only
    ],
)
def test_deepep_transfers_follow_their_description(group: list[int], domain: int) -> None:
    experts = 4 * len(group)
    src, dst, weight = deepep_transfers(group, domain, experts, 6)
    got: dict[tuple[int, int], float] = {}
    for s, d, w in zip(src.tolist(), dst.tolist(), weight.tolist(), strict=True):
        got[(s, d)] = got.get((s, d), 0.0) + w
    want: dict[tuple[int, int], float] = {}
    for s, d, w in reference_deepep(group, domain, experts, 6):
        want[(s, d)] = want.get((s, d), 0.0) + w
    assert got == pytest.approx(want)


def test_token_exchange_sizes() -> None:
    dispatch, combine = token_exchange(
        Dispatcher.ALLTOALL, tokens=4096, top_k=8, hidden=7168, ep=64, bytes_per_element=2
    )
    assert dispatch == combine == Exchange(Collective.ALL_TO_ALL, 4096 * 8 * 7168 * 2)
    gather, scatter = token_exchange(Dispatcher.ALLGATHER, tokens=4096, top_k=8, hidden=7168, ep=8, bytes_per_element=2)
    assert gather == Exchange(Collective.ALL_GATHER, 8 * 4096 * 7168 * 2)
    assert scatter == Exchange(Collective.REDUCE_SCATTER, 8 * 4096 * 7168 * 2)
