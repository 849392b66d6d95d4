"""Cluster network topology: GPUs, NVSwitches, NICs and switches as link tables (and a networkx graph), with routing."""

from simulator.enums import TopologyKind
from simulator.topology.builders import BUILDERS, ClosBuilder, build_topology
from simulator.topology.graph import LinkKind, NodeKind, Topology

__all__ = ["BUILDERS", "ClosBuilder", "LinkKind", "NodeKind", "Topology", "TopologyKind", "build_topology"]
