"""Average power of one GPU (and its share of the node) over a simulated step."""

from dataclasses import dataclass
from functools import cache

from simulator.catalog.hardware import GpuSpec
from simulator.catalog.loader import bundled
from simulator.enums import Category
from simulator.scenario.setup import ClusterSpec, Setup
from simulator.topology.builders import fabric_switches


@cache
def activity_fraction(profile: str | None = None) -> dict[Category, float]:
    """Each activity's share of the idle-to-TDP range (power.yaml), with a GPU generation's measured
    `profile` (power.yaml activity_fraction_by_profile) laid over the generic table."""
    spec = bundled("power")
    raw = {**spec["activity_fraction"], **(spec["activity_fraction_by_profile"][profile] if profile else {})}
    return {Category(k): float(v) for k, v in raw.items()}


def gpu_power_W(category: Category, idle_W: float, tdp_W: float, profile: str | None = None) -> float:
    """P = idle + f(category) * (TDP - idle); never above TDP since f <= 1."""
    return idle_W + activity_fraction(profile)[category] * (tdp_W - idle_W)


def activity_power_W(gpu: GpuSpec) -> dict[Category, float]:
    """`gpu`'s power while doing each activity (gpu_power_W with its generation's profile)."""
    return {c: gpu_power_W(c, gpu.idle_W, gpu.tdp_W, gpu.activity_power) for c in Category}


@dataclass(frozen=True)
class StepEnergy:
    """Energy of one step per GPU (J): GPU by category, the GPU's share of node and switch
    overhead, and the total at the facility meter (x PUE)."""

    gpu_J_by_category: dict[Category, float]
    node_share_J: float
    facility_J: float


def switches_W(cluster: ClusterSpec) -> float:
    """The fabric's switches: their count (topology/builders.fabric_switches) times one's power."""
    return fabric_switches(cluster) * bundled("network")["nics"][cluster.nic.name]["switch_power_W"]


def overhead_W_per_gpu(setup: Setup) -> float:
    """Each GPU's share of its node's overhead (CPUs, memory, fans, NICs) and of the fabric's switches."""
    c = setup.cluster
    return c.node_overhead_W / c.gpus_per_node + switches_W(c) / c.num_gpus


def facility_power_W(setup: Setup, category: Category) -> float:
    """What one GPU draws at the facility meter while doing `category`: its own power, its share of
    node and switch overhead, times PUE."""
    gpu = setup.cluster.gpu
    return (gpu_power_W(category, gpu.idle_W, gpu.tdp_W, gpu.activity_power) + overhead_W_per_gpu(setup)) * (
        setup.economics.pue
    )


def step_energy_per_gpu(setup: Setup, breakdown_s: dict[Category, float], time_s: float) -> StepEnergy:
    """The facility power of each category integrated over the step: sum_c t_c P_gpu(c) plus the
    overhead over the whole step, times PUE (the breakdown sums to the step time)."""
    watts = activity_power_W(setup.cluster.gpu)
    by_cat = {c: t * watts[c] for c, t in breakdown_s.items()}
    node_share = overhead_W_per_gpu(setup) * time_s
    facility = (sum(by_cat.values()) + node_share) * setup.economics.pue
    return StepEnergy(gpu_J_by_category=by_cat, node_share_J=node_share, facility_J=facility)


def node_over_rating(power: dict[str, float]) -> str | None:
    """A warning when one node's simulated peak IT draw (the result's `power.node_W_peak`) is above
    the node's rated maximum input power (`power.node_W_max`: the datasheet's, or cluster.node_max_W),
    else None. Not capped: a real node's power brake would slow the GPUs, which the step time does not
    model, so the figure stays as simulated and the mismatch is reported (the GPUs' TDP, the node's
    overhead or its rating in the scenario or catalogue disagree with each other)."""
    peak, rated = power.get("node_W_peak"), power.get("node_W_max")
    if peak is None or rated is None or peak <= rated:
        return None
    return (
        f"warning: one node's peak IT power, {peak:,.0f} W, is above its rated maximum of {rated:,.0f} W "
        f"(by {100 * (peak / rated - 1):.1f} %): the GPUs' TDP and cluster.node_overhead_W add up to more "
        "than cluster.node_max_W; the power figures are not capped"
    )
