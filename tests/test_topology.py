"""Exact small cases of the topology builders (fat-tree, rail-optimized; 2 and 3 tiers), of D-mod-K routes
and of the adaptive routing's spread loads."""

from collections import Counter

import pytest

from simulator.catalog.hardware import nvswitch_latency_s
from simulator.catalog.loader import bundled
from simulator.scenario import setup_from_mapping
from simulator.scenario.setup import ClusterSpec
from simulator.topology import BUILDERS, LinkKind, NodeKind, Topology, build_topology
from simulator.topology.builders import leaf_ports

NIC_EFF = bundled("kernels")["comm"]["nic_efficiency"]
NVLINK_EFF = bundled("kernels")["comm"]["nvlink_efficiency"]
A100 = "a100-sxm-80gb"  # DGX A100: 8 HDR 200 Gb/s NICs, 40-port QM8700 leaves (20 down, 20 up)


def cluster(num_gpus: int, gpu: str = A100, topology: str = "fat-tree", oversubscription: float = 1.0) -> ClusterSpec:
    return setup_from_mapping(
        {
            "name": "t",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": gpu, "num_gpus": num_gpus, "topology": topology, "oversubscription": oversubscription},
            "parallelism": {"tp": 1, "pp": 1},
            "training": {"global_batch": num_gpus, "precision": "fp16"},  # fp16: V100 has no bf16
        }
    ).cluster


def names(topo: Topology, src: int, dst: int) -> list[str]:
    return [topo.link_name(i) for i in topo.route(src, dst)]


def kinds(topo: Topology, src: int, dst: int) -> list[LinkKind]:
    return [topo.link_kind(i) for i in topo.route(src, dst)]


def count(topo: Topology, kind: NodeKind) -> int:
    return sum(1 for _, k in topo.graph.nodes(data="kind") if k == kind)


def test_registry_holds_both_builders() -> None:
    assert set(BUILDERS) == {"fat-tree", "rail-optimized"}


def test_intra_node_route_is_two_nvlink_edges() -> None:
    c = cluster(16)
    topo = build_topology(c)
    assert names(topo, 0, 7) == ["gpu0->nvs0", "nvs0->gpu7"]
    assert kinds(topo, 0, 7) == [LinkKind.NVLINK] * 2
    assert [topo.capacities[i] for i in topo.route(0, 7)] == [300e9 * NVLINK_EFF] * 2
    assert topo.path_latency_s(0, 7) == pytest.approx(nvswitch_latency_s())
    assert topo.route(3, 3) == () and topo.hops(3, 3) == 0


def test_two_nodes_share_one_leaf() -> None:
    topo = build_topology(cluster(16))
    assert names(topo, 0, 8) == ["gpu0->nic0.0", "nic0.0->leaf0", "leaf0->nic1.0", "nic1.0->gpu8"]
    assert kinds(topo, 0, 8) == [LinkKind.PCIE, LinkKind.NIC, LinkKind.NIC, LinkKind.PCIE]
    # PCIe gen4 x16 (DGX A100) and a 200 Gb/s HDR port at NCCL's efficiency
    assert [topo.capacities[i] for i in topo.route(0, 8)] == [31.5e9, 25e9 * NIC_EFF, 25e9 * NIC_EFF, 31.5e9]
    pcie_s = bundled("network")["host"]["pcie_latency_us"] * 1e-6
    assert topo.path_latency_s(0, 8) == pytest.approx(2 * pcie_s + 1e-6)  # ConnectX-6: 1 us NIC to NIC
    assert count(topo, NodeKind.LEAF) == 1 and count(topo, NodeKind.SPINE) == 0  # one leaf needs no spine
    # 16 NVLink + 16 PCIe + 16 NIC cables, each two directed links
    assert topo.num_links == topo.graph.number_of_edges() == 96


def test_cross_leaf_route_goes_through_a_spine() -> None:
    topo = build_topology(cluster(64))  # 64 NIC ports, 20 per leaf: 4 leaves, 20 spines
    assert count(topo, NodeKind.LEAF) == 4 and count(topo, NodeKind.SPINE) == 20
    route = names(topo, 0, 40)  # nic5.0 is NIC port 40: leaf 2
    assert route == [
        "gpu0->nic0.0",
        "nic0.0->leaf0",
        "leaf0->spine0",  # D-mod-K: destination NIC 40 mod 20 spines
        "spine0->leaf2",
        "leaf2->nic5.0",
        "nic5.0->gpu40",
    ]
    assert kinds(topo, 0, 40)[2:4] == [LinkKind.UPLINK] * 2
    switch_s = bundled("network")["nics"]["ib-hdr"]["switch_latency_us"] * 1e-6
    assert topo.path_latency_s(0, 40) == pytest.approx(topo.path_latency_s(0, 8) + 2 * switch_s)
    assert topo.hops(0, 40) == 6


def test_d_mod_k_spreads_flows_to_different_destinations_over_spines() -> None:
    topo = build_topology(cluster(64))
    spines = [names(topo, j, 40 + j)[2].split("->")[1] for j in range(8)]
    assert spines == [f"spine{j}" for j in range(8)]
    assert topo.route(0, 40) == topo.route(0, 40)  # deterministic (and cached)


def test_link_numbering_matches_the_graph() -> None:
    topo = build_topology(cluster(64))
    assert topo.num_links == 2 * (64 * 3 + 4 * 20) == len(topo.capacities)
    for u, v, d in topo.graph.edges(data=True):
        i = d["link_id"]
        assert topo.link_id(u, v) == i and topo.link_name(i) == f"{u}->{v}" and topo.link_kind(i) == d["kind"]
        assert topo.capacities[i] == d["capacity_Bps"] > 0 and topo.latencies_s[i] == d["latency_s"] > 0
        assert topo.link_name(i ^ 1) == f"{v}->{u}"


def test_rail_optimized_same_rail_stays_on_its_leaf() -> None:
    topo = build_topology(cluster(16, topology="rail-optimized"))
    assert count(topo, NodeKind.LEAF) == 8 and count(topo, NodeKind.SPINE) == 20
    assert names(topo, 3, 11) == ["gpu3->nic0.3", "nic0.3->leaf3", "leaf3->nic1.3", "nic1.3->gpu11"]
    assert names(topo, 0, 9) == [
        "gpu0->nic0.0",
        "nic0.0->leaf0",
        "leaf0->spine9",  # destination nic1.1 has global index 9
        "spine9->leaf1",
        "leaf1->nic1.1",
        "nic1.1->gpu9",
    ]


def test_rail_optimized_scalable_units() -> None:
    topo = build_topology(cluster(40 * 8, topology="rail-optimized"))  # 2 SUs of 20 nodes, 8 rails each
    assert count(topo, NodeKind.LEAF) == 16
    assert topo.hops(0, 19 * 8) == 4  # node 19: last node of SU 0, same rail leaf
    assert names(topo, 0, 20 * 8)[1:5] == ["nic0.0->leaf0", "leaf0->spine0", "spine0->leaf8", "leaf8->nic20.0"]


def test_oversubscription_halves_the_uplinks() -> None:
    assert leaf_ports(40, 1.0) == (20, 20)
    assert leaf_ports(64, 1.0) == (32, 32)
    assert leaf_ports(40, 2.0) == (26, 14)  # floor(40 * 2/3); within a port of down / 2
    assert leaf_ports(64, 3.0) == (48, 16)
    blocking = build_topology(cluster(64, oversubscription=2.0))
    assert count(blocking, NodeKind.SPINE) == 14 and count(blocking, NodeKind.LEAF) == 3  # 64 ports / 26
    uplinks = [v for _, v, k in blocking.graph.out_edges("leaf0", data="kind") if k == LinkKind.UPLINK]
    down = [v for _, v, k in blocking.graph.out_edges("leaf0", data="kind") if k == LinkKind.NIC]
    assert len(down) == 26 and len(uplinks) == 14


def test_dgx1_pairs_of_gpus_share_a_nic() -> None:
    topo = build_topology(cluster(16, gpu="v100-sxm-32gb"))  # DGX-1: 4 EDR NICs for 8 GPUs
    first_hops = [names(topo, g, 8 + g)[0] for g in range(8)]
    assert first_hops == [f"gpu{g}->nic0.{g // 2}" for g in range(8)]
    assert topo.capacities[topo.route(0, 8)[1]] == pytest.approx(12.5e9 * NIC_EFF)


def test_single_and_partial_node_have_no_fabric() -> None:
    for gpus in (8, 4):
        topo = build_topology(cluster(gpus))
        assert topo.graph.number_of_nodes() == gpus + 1  # GPUs and one NVSwitch node
        assert topo.num_links == 2 * gpus
        assert names(topo, 0, gpus - 1) == ["gpu0->nvs0", f"nvs0->gpu{gpus - 1}"]


def test_invalid_inputs() -> None:
    topo = build_topology(cluster(16))
    with pytest.raises(ValueError, match="GPU 16"):
        topo.route(0, 16)
    bad = ClusterSpec(**{**cluster(16).__dict__, "topology": "torus"})
    with pytest.raises(ValueError, match="torus"):
        build_topology(bad)


def test_16k_h100_cluster_builds_three_tiers() -> None:
    """2,048 DGX H100 on 64-port NDR switches (QM9700): 512 leaves of 32 NICs are more than a 64-port
    spine can join, so pods of 32 leaves with 32 spines each (16 pods) under 32 groups of 32 cores."""
    topo = build_topology(cluster(16384, gpu="h100-sxm-80gb"))
    assert count(topo, NodeKind.LEAF) == 512 and count(topo, NodeKind.SPINE) == 16 * 32
    assert count(topo, NodeKind.CORE) == 32 * 32
    assert topo.num_links == 2 * (3 * 16384 + 512 * 32 + 512 * 32)
    pcie, nic, up, core = LinkKind.PCIE, LinkKind.NIC, LinkKind.UPLINK, LinkKind.CORE
    assert kinds(topo, 0, 16383) == [pcie, nic, up, core, core, up, nic, pcie]
    # D-mod-K: NIC 16383 -> spine 16383 mod 32 = 31 of pod 0, core (16383 // 32) mod 32 = 31 of group 31
    assert names(topo, 0, 16383)[2:6] == [
        "leaf0->spine31",
        "spine31->core1023",
        "core1023->spine511",
        "spine511->leaf511",
    ]
    assert kinds(topo, 0, 1023) == [pcie, nic, up, up, nic, pcie]  # same pod (1,024 GPUs): no core


def test_three_tier_fat_tree_past_the_spine_radix() -> None:
    """840 A100 (105 DGX, 840 HDR NICs) on 40-port switches: 42 leaves of 20 NICs, more than a spine's
    40 ports, so pods of 20 leaves (20, 20, 2), 20 spines each, and 20 groups of 20 cores."""
    topo = build_topology(cluster(840))
    assert count(topo, NodeKind.LEAF) == 42 and count(topo, NodeKind.SPINE) == 60 and count(topo, NodeKind.CORE) == 400
    assert names(topo, 0, 800) == [  # NIC 800 is on leaf 40, pod 2
        "gpu0->nic0.0",
        "nic0.0->leaf0",
        "leaf0->spine0",  # 800 mod 20
        "spine0->core0",  # group 0, core (800 // 20) mod 20 = 0
        "core0->spine40",  # spine 0 of pod 2
        "spine40->leaf40",
        "leaf40->nic100.0",
        "nic100.0->gpu800",
    ]
    switch_s = bundled("network")["nics"]["ib-hdr"]["switch_latency_us"] * 1e-6
    assert topo.path_latency_s(0, 800) == pytest.approx(topo.path_latency_s(0, 8) + 4 * switch_s)
    assert names(topo, 0, 41)[2:4] == ["leaf0->spine1", "spine1->leaf2"]  # same pod: through a spine only


def test_two_tiers_up_to_the_spine_radix() -> None:
    """A spine has a port per leaf: 40 leaves of 20 HDR NICs (800 GPUs) still make 2 tiers."""
    topo = build_topology(cluster(800))
    assert count(topo, NodeKind.LEAF) == 40 and count(topo, NodeKind.SPINE) == 20 and count(topo, NodeKind.CORE) == 0


def test_adaptive_routing_spreads_over_the_uplinks() -> None:
    """Two transfers out of leaf 0 to NICs at the same port position of two other leaves: D-mod-K sends
    both up one spine (the route), adaptive routing spreads each over all 20 uplinks of the leaf."""
    topo = build_topology(cluster(64))  # 4 leaves of 20 NIC ports, 20 spines
    assert names(topo, 0, 20)[2] == names(topo, 8, 40)[2] == "leaf0->spine0"  # NICs 20 and 40: 0 mod 20
    loads = topo.link_counts([(0, 20), (8, 40)])
    uplinks = [topo.link_id("leaf0", f"spine{s}") for s in range(20)]
    assert [loads[i] for i in uplinks] == pytest.approx([2 / 20] * 20)
    assert loads[topo.link_id("spine7", "leaf1")] == pytest.approx(1 / 20)
    assert loads[topo.link_id("nic0.0", "leaf0")] == 1.0  # access links carry whole transfers


@pytest.mark.parametrize("num_gpus", [320, 840, 2048])
@pytest.mark.parametrize("topology", ["fat-tree", "rail-optimized"])
def test_rings_of_blocks_that_straddle_leaves_are_non_blocking(num_gpus: int, topology: str) -> None:
    """Blocks of GPUs (pipeline stages) that do not line up with the leaves, each a ring to the next node
    and back round to its first: with 1:1 leaves no switch link carries more than one NIC's worth, in
    2 or 3 tiers."""
    topo = build_topology(cluster(num_gpus, topology=topology))
    switch_links = (LinkKind.UPLINK, LinkKind.CORE)
    for block in (8 * 3, 8 * 7, num_gpus // 2, num_gpus):
        pairs = [(g, g - g % block + (g % block + 8) % block) for g in range(num_gpus - num_gpus % block)]
        loads = topo.link_counts(pairs)
        assert max((m for i, m in loads.items() if topo.link_kind(i) in switch_links), default=0.0) <= 1.0 + 1e-9


def test_d_mod_k_alone_would_queue_the_rings_of_two_blocks_on_one_uplink() -> None:
    """The same rings over blocks of 7 nodes, summed route by route (static D-mod-K): the exits of two
    blocks sharing a leaf, towards NICs at the same port position of their leaves, take one uplink
    while others idle (issue 13: the DP rings of two pipeline stages); adaptive routing levels them."""
    topo = build_topology(cluster(320))
    pairs = [(g, g - g % 56 + (g % 56 + 8) % 56) for g in range(320 - 320 % 56)]
    static = Counter(link for s, d in pairs for link in topo.route(s, d))
    assert max(m for i, m in static.items() if topo.link_kind(i) is LinkKind.UPLINK) == 2
    assert max(m for i, m in topo.link_counts(pairs).items() if topo.link_kind(i) is LinkKind.UPLINK) < 1


@pytest.mark.parametrize("num_gpus", [320, 840])
@pytest.mark.parametrize("topology", ["fat-tree", "rail-optimized"])
def test_routes_on_the_link_tables_are_shortest_paths_of_the_networkx_graph(topology: str, num_gpus: int) -> None:
    """The simulator routes on the link tables; every route is a path of the networkx graph from the
    source GPU to the destination GPU, as short as the graph's own shortest path (320 GPUs: 5 leaves,
    2 tiers; 840 GPUs: 42 leaves, 3 tiers)."""
    import networkx as nx

    topo = build_topology(cluster(num_gpus, topology=topology))
    graph = topo.graph
    by_id = {d["link_id"]: (u, v) for u, v, d in graph.edges(data=True)}
    for src, dst in [(0, 1), (0, 8), (3, 163), (17, 318), (319, 2), (100, 101), (42, 250), (5, num_gpus - 1)]:
        hops = [by_id[i] for i in topo.route(src, dst)]
        assert hops[0][0] == f"gpu{src}" and hops[-1][1] == f"gpu{dst}"
        assert all(a[1] == b[0] for a, b in zip(hops, hops[1:], strict=False))
        assert len(hops) == nx.shortest_path_length(graph, f"gpu{src}", f"gpu{dst}")
