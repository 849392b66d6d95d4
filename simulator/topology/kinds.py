"""What the nodes and links of a cluster network are, and the plain form of a link."""

from enum import StrEnum


class LinkKind(StrEnum):
    """What a directed link is physically."""

    NVLINK = "nvlink"  # GPU <-> its server's NVSwitch fabric
    PCIE = "pcie"  # GPU <-> its own NIC (GPUDirect RDMA)
    NIC = "nic"  # NIC <-> leaf switch port
    UPLINK = "uplink"  # leaf <-> spine
    CORE = "core"  # spine <-> core (3-tier fat-tree)


class NodeKind(StrEnum):
    GPU = "gpu"
    NVSWITCH = "nvswitch"
    NIC = "nic"
    LEAF = "leaf"
    SPINE = "spine"
    CORE = "core"


# One full-duplex physical link: (u, v, capacity_Bps per direction, latency_s per direction, kind).
Link = tuple[str, str, float, float, LinkKind]
