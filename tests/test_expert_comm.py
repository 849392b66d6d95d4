"""Rack-scale NVLink domains, expert-parallel groups, all-to-all flows and the MoE dispatchers' transport
(simulator/topology, simulator/collectives): exact small cases."""

from typing import Any

import pytest

from simulator.catalog.loader import bundled
from simulator.collectives.groups import Layout
from simulator.enums import CommGroup, Recompute, Schedule
from simulator.scenario import setup_from_mapping
from simulator.scenario.setup import ClusterSpec, ParallelPlan
from simulator.topology import LinkKind, NodeKind, Topology, build_topology

NVLINK_EFF = bundled("kernels")["comm"]["nvlink_efficiency"]


def cluster(num_gpus: int, gpu: str = "h100-sxm-80gb", **extra: Any) -> ClusterSpec:
    return setup_from_mapping(
        {
            "name": "t",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": gpu, "num_gpus": num_gpus, **extra},
            "parallelism": {"tp": 1, "pp": 1},
            "training": {"global_batch": num_gpus, "precision": "bf16"},
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
