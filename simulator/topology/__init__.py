"""Cluster network topology: a networkx graph of GPUs, NVSwitches, NICs and switches, with routing."""

from simulator.enums import TopologyKind
from simulator.topology.builders import BUILDERS, ClosBuilder, build_topology
from simulator.topology.graph import LinkKind, NodeKind, Topology

__all__ = ["BUILDERS", "ClosBuilder", "LinkKind", "NodeKind", "Topology", "TopologyKind", "build_topology"]
