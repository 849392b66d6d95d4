"""Dispatch: the standalone duration of any work item (op or message) for a scenario."""

from simulator.costs.collectives import collective_time_s
from simulator.costs.compute import op_time_s
from simulator.scenario.setup import Setup
from simulator.workload.layer import Item
from simulator.workload.ops import CommOp


def item_time_s(setup: Setup, item: Item) -> float:
    """Seconds the item takes when nothing else competes for its resources."""
    if isinstance(item, CommOp):
        return collective_time_s(setup, item.group, item.collective, item.bytes, item.ranks)
    return op_time_s(item, setup.cluster.gpu, setup.training.precision)
