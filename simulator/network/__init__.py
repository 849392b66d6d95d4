"""Flow-level network model: links as bandwidth-shared SimPy resources under max-min fairness."""

from simulator.network.flows import FlowNetwork, FlowRecord, LinkSet
from simulator.network.maxmin import max_min_rates

__all__ = ["FlowNetwork", "FlowRecord", "LinkSet", "max_min_rates"]
