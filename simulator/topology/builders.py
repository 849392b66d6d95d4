"""Topology builders: servers (NVSwitch, PCIe, NICs) plus a 2-tier Clos scale-out fabric, by name.

Both builders make a 2-tier leaf/spine Clos with a leaf radix from the catalogue. A leaf spends
radix * o / (1 + o) ports (rounded down) on NICs and the rest on uplinks (o = oversubscription);
there are as many spines as uplinks per leaf and every leaf has one uplink to every spine. The
spine radix is not enforced: a spine takes one port per leaf, which stands for a non-blocking
core of any size (a 3-tier core is out of scope). One leaf needs no spines; one server needs no
fabric (nor NICs) at all.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from simulator import units
from simulator.catalog.hardware import default_node_for, nvswitch_latency_s
from simulator.catalog.loader import bundled
from simulator.enums import TopologyKind
from simulator.gc_pause import paused_gc
from simulator.scenario.setup import ClusterSpec
from simulator.topology.graph import Link, LinkKind, NodeKind, Topology


@dataclass(frozen=True)
class LinkParams:
    """Per-direction usable capacity (bytes/s) and latency (s) of each link kind, plus the leaf split."""

    nvlink_Bps: float
    nvlink_latency_s: float
    pcie_Bps: float
    pcie_latency_s: float
    nic_Bps: float
    nic_latency_s: float
    switch_latency_s: float
    leaf_down_ports: int
    leaf_up_ports: int

    @classmethod
    def for_cluster(cls, cluster: ClusterSpec) -> "LinkParams":
        comm = bundled("kernels")["comm"]
        network = bundled("network")
        switch = network["nics"].get(cluster.nic.name)
        if switch is None:
            raise ValueError(f"no switch catalogued for NIC {cluster.nic.name!r} (network.yaml nics)")
        nic_Bps = cluster.nic.line_rate_bytes_per_s * comm["nic_efficiency"]
        # A node type without a catalogued PCIe rate: PCIe is sized not to throttle its NIC.
        pcie_Bps = default_node_for(cluster.gpu.name).pcie_bytes_per_s or nic_Bps
        down, up = leaf_ports(switch["switch_radix"], cluster.oversubscription)
        return cls(
            nvlink_Bps=cluster.intra_node_bytes_per_s * comm["nvlink_efficiency"],
            nvlink_latency_s=nvswitch_latency_s() / 2,  # GPU -> NVSwitch -> GPU is two edges
            pcie_Bps=pcie_Bps,
            pcie_latency_s=units.us_to_s(network["host"]["pcie_latency_us"]),
            nic_Bps=nic_Bps,
            # NIC-to-NIC latency (one leaf included) split over the two NIC<->leaf edges
            nic_latency_s=cluster.nic.latency_s / 2,
            # each leaf<->spine edge adds one more switch traversal
            switch_latency_s=units.us_to_s(switch["switch_latency_us"]),
            leaf_down_ports=down,
            leaf_up_ports=up,
        )


def leaf_ports(radix: int, oversubscription: float) -> tuple[int, int]:
    """(down, up) ports of a leaf: down = floor(radix * o / (1 + o)), up = the rest (o = 1: half each)."""
    down = int(radix * oversubscription // (1 + oversubscription))
    if not 0 < down < radix:
        raise ValueError(f"oversubscription {oversubscription} leaves no up or down port on a {radix}-port leaf")
    return down, radix - down


class ClosBuilder(ABC):
    """Servers plus a 2-tier Clos; subclasses only decide which leaf each NIC port plugs into."""

    @abstractmethod
    def leaf_of_nics(self, num_nodes: int, nics_per_node: int, down_ports: int) -> list[int]:
        """Leaf index of every NIC, by global NIC index node * nics_per_node + j."""

    def build(self, cluster: ClusterSpec) -> Topology:
        p = LinkParams.for_cluster(cluster)
        nodes: list[tuple[str, dict[str, Any]]] = []
        links: list[Link] = []
        multi_node = cluster.num_nodes > 1
        with paused_gc():
            _add_servers(cluster, p, multi_node, nodes, links)
            if multi_node:
                leaf_of = self.leaf_of_nics(cluster.num_nodes, cluster.nics_per_node, p.leaf_down_ports)
                _add_fabric(cluster.nics_per_node, leaf_of, p, nodes, links)
            return Topology.from_links(
                nodes,
                links,
                gpus_per_node=cluster.gpus_per_node,
                num_gpus=cluster.num_gpus,
                scale_up_domain=cluster.scale_up_domain,
            )


class FatTreeBuilder(ClosBuilder):
    """NIC ports packed into leaves in order (node 0's NICs first): a node shares a leaf when it fits."""

    def leaf_of_nics(self, num_nodes: int, nics_per_node: int, down_ports: int) -> list[int]:
        return [port // down_ports for port in range(num_nodes * nics_per_node)]


class RailOptimizedBuilder(ClosBuilder):
    """NVIDIA DGX SuperPOD rail-optimized design: a scalable unit (SU) is `down` nodes, and leaf
    (su, j) = su * nics_per_node + j connects NIC j (rail j) of every node in SU su."""

    def leaf_of_nics(self, num_nodes: int, nics_per_node: int, down_ports: int) -> list[int]:
        return [(n // down_ports) * nics_per_node + j for n in range(num_nodes) for j in range(nics_per_node)]


BUILDERS: dict[TopologyKind, ClosBuilder] = {
    TopologyKind.FAT_TREE: FatTreeBuilder(),
    TopologyKind.RAIL_OPTIMIZED: RailOptimizedBuilder(),
}


def fabric_switches(cluster: ClusterSpec) -> int:
    """Physical switches of the scale-out fabric (for power): the leaves the builder would create,
    plus the spine switches their uplinks fill (radix ports each)."""
    if cluster.num_nodes <= 1:
        return 0
    p = LinkParams.for_cluster(cluster)
    builder = BUILDERS[cluster.topology]
    leaves = max(builder.leaf_of_nics(cluster.num_nodes, cluster.nics_per_node, p.leaf_down_ports)) + 1
    if leaves == 1:
        return 1
    radix = p.leaf_down_ports + p.leaf_up_ports
    return leaves + -(-leaves * p.leaf_up_ports // radix)


def build_topology(cluster: ClusterSpec) -> Topology:
    """The network of `cluster`, made by the builder its `topology` names."""
    builder = BUILDERS.get(cluster.topology)
    if builder is None:
        raise ValueError(f"unknown topology {cluster.topology!r} (known: {', '.join(BUILDERS)})")
    return builder.build(cluster)


def _add_servers(
    cluster: ClusterSpec, p: LinkParams, with_nics: bool, nodes: list[tuple[str, dict[str, Any]]], links: list[Link]
) -> None:
    """GPUs and one NVSwitch fabric per scale-up domain; with NICs, each GPU's PCIe link to NIC
    l * nics // gpus_per_node of its own node (a compute tray of a rack-scale domain has its own NICs).

    The NVSwitch node `nvs{d}` stands for the whole NVLink fabric of domain d (the scale_up_domain /
    gpus_per_node nodes from node d * nodes_per_domain on): one server's NVSwitches, or the switch trays
    of a GB200 NVL72 rack, which join its 18 compute trays non-blocking (NVIDIA GB200 NVL72 datasheet:
    every GPU at its full NVLink rate to any other of the 72). A domain of one node is the same node
    numbering as a server: nvs{node}.
    """
    gpn, nics = cluster.gpus_per_node, cluster.nics_per_node
    nodes_per_domain = max(1, cluster.scale_up_domain // gpn)
    for node in range(cluster.num_nodes):
        domain, first = divmod(node, nodes_per_domain)
        nvs = f"nvs{domain}"
        if first == 0:
            nodes.append((nvs, {"kind": NodeKind.NVSWITCH, "index": domain}))
        if with_nics:
            nodes.extend((f"nic{node}.{j}", {"kind": NodeKind.NIC, "index": node * nics + j}) for j in range(nics))
        for gpu in range(node * gpn, min((node + 1) * gpn, cluster.num_gpus)):
            name = f"gpu{gpu}"
            nodes.append((name, {"kind": NodeKind.GPU, "index": gpu}))
            links.append((name, nvs, p.nvlink_Bps, p.nvlink_latency_s, LinkKind.NVLINK))
            if with_nics:
                nic = f"nic{node}.{(gpu - node * gpn) * nics // gpn}"
                links.append((name, nic, p.pcie_Bps, p.pcie_latency_s, LinkKind.PCIE))


def _add_fabric(
    nics_per_node: int, leaf_of: list[int], p: LinkParams, nodes: list[tuple[str, dict[str, Any]]], links: list[Link]
) -> None:
    """Leaves, their NIC ports and, with more than one leaf, the spines with one uplink per leaf."""
    num_leaves = max(leaf_of) + 1
    nodes.extend((f"leaf{k}", {"kind": NodeKind.LEAF, "index": k}) for k in range(num_leaves))
    for port, leaf in enumerate(leaf_of):
        nic = f"nic{port // nics_per_node}.{port % nics_per_node}"
        links.append((nic, f"leaf{leaf}", p.nic_Bps, p.nic_latency_s, LinkKind.NIC))
    if num_leaves == 1:
        return
    nodes.extend((f"spine{s}", {"kind": NodeKind.SPINE, "index": s}) for s in range(p.leaf_up_ports))
    links.extend(
        (f"leaf{k}", f"spine{s}", p.nic_Bps, p.switch_latency_s, LinkKind.UPLINK)
        for k in range(num_leaves)
        for s in range(p.leaf_up_ports)
    )
