"""Topology builders: servers (NVSwitch, PCIe, NICs) plus a leaf/spine(/core) fat-tree scale-out fabric, by name.

Both builders make a fat-tree of switches with the catalogue's radix R (network.yaml `switch_radix`;
NVIDIA Quantum-2 QM9700: 64 NDR 400 Gb/s ports). A leaf spends R * o / (1 + o) ports (rounded down)
on NICs and the rest on uplinks (o = oversubscription); the builders differ only in which leaf
each NIC plugs into. Above the leaves (`fabric_shape`):
- one leaf: no other switch; one server: no fabric (nor NICs) at all;
- up to R leaves, 2 tiers: as many spines as uplinks per leaf, every leaf one uplink to every spine
  (a spine takes one port per leaf, so R leaves fill it);
- more, 3 tiers (the k-ary fat-tree of Al-Fares, Loukissas & Vahdat, "A scalable, commodity data
  center network architecture", SIGCOMM 2008, with the leaf's own oversubscription kept): pods of
  R / 2 leaves, each pod with its own spines, one per leaf uplink (R / 2 ports down to the pod's
  leaves, R / 2 up); core group j holds R / 2 core switches, each joined once to spine j of every
  pod. Up to R pods fill the cores (R^2 / 2 leaves: 65,536 NDR ports at R = 64); beyond that the
  core stands for a non-blocking core of any size (a fourth tier is out of scope).
The tiers above the leaves are non-blocking, so a GPU keeps its NIC's bandwidth across the fabric
(less the leaf's oversubscription) whatever the cluster's size.
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
    """Per-direction usable capacity (bytes/s) and latency (s) of each link kind, the leaf split and the
    switches' radix (ports)."""

    nvlink_Bps: float
    nvlink_latency_s: float
    pcie_Bps: float
    pcie_latency_s: float
    nic_Bps: float
    nic_latency_s: float
    switch_latency_s: float
    leaf_down_ports: int
    leaf_up_ports: int
    switch_radix: int

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
            # each switch-to-switch edge (leaf<->spine, spine<->core) adds one more switch traversal
            switch_latency_s=units.us_to_s(switch["switch_latency_us"]),
            leaf_down_ports=down,
            leaf_up_ports=up,
            switch_radix=switch["switch_radix"],
        )


def leaf_ports(radix: int, oversubscription: float) -> tuple[int, int]:
    """(down, up) ports of a leaf: down = floor(radix * o / (1 + o)), up = the rest (o = 1: half each)."""
    down = int(radix * oversubscription // (1 + oversubscription))
    if not 0 < down < radix:
        raise ValueError(f"oversubscription {oversubscription} leaves no up or down port on a {radix}-port leaf")
    return down, radix - down


@dataclass(frozen=True)
class FabricShape:
    """The switches of a fat-tree above its NIC ports (module docstring): `leaves` leaves of `leaf_up`
    uplinks each, grouped in pods of `pod_leaves` (all leaves in one pod with 2 tiers); every pod has
    `leaf_up` spines, and with 3 tiers each spine has `spine_up` uplinks, one to each core of its group."""

    leaves: int
    leaf_up: int
    pod_leaves: int
    spine_up: int  # 0: 2 tiers (or fewer), no core
    radix: int

    @property
    def pods(self) -> int:
        return -(-self.leaves // self.pod_leaves)

    @property
    def spines(self) -> int:
        return 0 if self.leaves == 1 else self.pods * self.leaf_up

    @property
    def cores(self) -> int:
        return self.leaf_up * self.spine_up

    def pod_of(self, leaf: int) -> int:
        return leaf // self.pod_leaves

    def spine(self, pod: int, j: int) -> int:
        """Index of spine j (the one every leaf of the pod reaches over its uplink j) of a pod."""
        return pod * self.leaf_up + j

    def core(self, j: int, c: int) -> int:
        """Index of core c of group j (the group joined to spine j of every pod)."""
        return j * self.spine_up + c

    def switches(self) -> int:
        """Physical switches of `radix` ports: every leaf, then each upper tier's ports over the radix,
        rounded up, with the tiers sized to the leaves present (a partly filled pod or core shares boxes,
        its links bundled): with 2 tiers leaves x uplinks / radix spines; with 3 every leaf uplink
        continues, non-blocking, through a spine (a port down, a port up) to a core port."""
        if self.leaves <= 1:
            return self.leaves
        uplinks = self.leaves * self.leaf_up
        if not self.spine_up:
            return self.leaves + -(-uplinks // self.radix)
        return self.leaves + -(-2 * uplinks // self.radix) + -(-uplinks // self.radix)


def fabric_shape(leaves: int, leaf_up: int, radix: int) -> FabricShape:
    """The tiers above `leaves` leaves of `leaf_up` uplinks, for switches of `radix` ports: 2 tiers while
    a spine has a port for every leaf, else pods of radix // 2 leaves under a core (module docstring)."""
    if leaves <= radix:
        return FabricShape(leaves, leaf_up, max(leaves, 1), 0, radix)
    return FabricShape(leaves, leaf_up, radix // 2, radix - radix // 2, radix)


class ClosBuilder(ABC):
    """Servers plus a fat-tree; subclasses only decide which leaf each NIC port plugs into."""

    @abstractmethod
    def leaf_of_nics(self, num_nodes: int, nics_per_node: int, down_ports: int) -> list[int]:
        """Leaf index of every NIC, by global NIC index node * nics_per_node + j."""

    def shape(self, cluster: ClusterSpec, p: "LinkParams") -> FabricShape:
        leaves = max(self.leaf_of_nics(cluster.num_nodes, cluster.nics_per_node, p.leaf_down_ports)) + 1
        return fabric_shape(leaves, p.leaf_up_ports, p.switch_radix)

    def build(self, cluster: ClusterSpec) -> Topology:
        p = LinkParams.for_cluster(cluster)
        nodes: list[tuple[str, dict[str, Any]]] = []
        links: list[Link] = []
        multi_node = cluster.num_nodes > 1
        with paused_gc():
            _add_servers(cluster, p, multi_node, nodes, links)
            if multi_node:
                leaf_of = self.leaf_of_nics(cluster.num_nodes, cluster.nics_per_node, p.leaf_down_ports)
                shape = fabric_shape(max(leaf_of) + 1, p.leaf_up_ports, p.switch_radix)
                _add_leaves(cluster.nics_per_node, leaf_of, p, nodes, links)
                _add_upper_tiers(shape, p, nodes, links)
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
    (su, j) = su * nics_per_node + j connects NIC j (rail j) of every node in SU su. Pods are
    consecutive leaves (with 64-port switches and 8 rails: every rail of 4 SUs)."""

    def leaf_of_nics(self, num_nodes: int, nics_per_node: int, down_ports: int) -> list[int]:
        return [(n // down_ports) * nics_per_node + j for n in range(num_nodes) for j in range(nics_per_node)]


BUILDERS: dict[TopologyKind, ClosBuilder] = {
    TopologyKind.FAT_TREE: FatTreeBuilder(),
    TopologyKind.RAIL_OPTIMIZED: RailOptimizedBuilder(),
}


def fabric_switches(cluster: ClusterSpec) -> int:
    """Physical switches of the scale-out fabric (for power): FabricShape.switches of the fabric the
    cluster's builder makes; none for one server."""
    if cluster.num_nodes <= 1:
        return 0
    return BUILDERS[cluster.topology].shape(cluster, LinkParams.for_cluster(cluster)).switches()


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


def _add_leaves(
    nics_per_node: int, leaf_of: list[int], p: LinkParams, nodes: list[tuple[str, dict[str, Any]]], links: list[Link]
) -> None:
    """The leaves and their NIC ports."""
    nodes.extend((f"leaf{k}", {"kind": NodeKind.LEAF, "index": k}) for k in range(max(leaf_of) + 1))
    for port, leaf in enumerate(leaf_of):
        nic = f"nic{port // nics_per_node}.{port % nics_per_node}"
        links.append((nic, f"leaf{leaf}", p.nic_Bps, p.nic_latency_s, LinkKind.NIC))


def _add_upper_tiers(
    shape: FabricShape, p: LinkParams, nodes: list[tuple[str, dict[str, Any]]], links: list[Link]
) -> None:
    """The spines, each leaf's uplink j to spine j of its pod, and with 3 tiers the cores, spine j of
    every pod joined to each core of group j; every link at the NIC rate (module docstring)."""
    if shape.leaves == 1:
        return
    nodes.extend((f"spine{s}", {"kind": NodeKind.SPINE, "index": s}) for s in range(shape.spines))
    links.extend(
        (f"leaf{k}", f"spine{shape.spine(shape.pod_of(k), j)}", p.nic_Bps, p.switch_latency_s, LinkKind.UPLINK)
        for k in range(shape.leaves)
        for j in range(shape.leaf_up)
    )
    if not shape.spine_up:
        return
    nodes.extend((f"core{c}", {"kind": NodeKind.CORE, "index": c}) for c in range(shape.cores))
    links.extend(
        (f"spine{shape.spine(pod, j)}", f"core{shape.core(j, c)}", p.nic_Bps, p.switch_latency_s, LinkKind.CORE)
        for pod in range(shape.pods)
        for j in range(shape.leaf_up)
        for c in range(shape.spine_up)
    )
