"""Average power of one GPU (and its share of the node) over a simulated step."""

from collections.abc import Sequence
from dataclasses import dataclass

from simulator.catalog.hardware import GpuSpec
from simulator.catalog.loader import bundled
from simulator.costs.clocks import activity_fraction, activity_power_at_W, gpu_power_W
from simulator.enums import Category
from simulator.scenario.setup import ClockSetting, ClusterSpec, Setup
from simulator.topology.builders import fabric_switches

__all__ = ["activity_fraction", "activity_power_W", "gpu_power_W"]  # the per-activity formula: costs/clocks.py


DEFAULT_CLOCK = ClockSetting()  # boost freely under the GPU's default power limit


def activity_power_W(gpu: GpuSpec, clock: ClockSetting = DEFAULT_CLOCK) -> dict[Category, float]:
    """`gpu`'s power while doing each activity under `clock` (its generation's profile, moved along the
    DVFS curve to each activity's clock: costs/clocks.activity_power_at_W)."""
    return {c: activity_power_at_W(gpu, c, clock) for c in Category}


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


def facility_power_W(setup: Setup, category: Category | None) -> float:
    """What one GPU draws at the facility meter while doing `category` (None: no process holds it, its
    catalogued idle_W): its own power, its share of node and switch overhead, times PUE."""
    gpu = setup.cluster.gpu
    own_W = gpu.idle_W if category is None else activity_power_at_W(gpu, category, setup.cluster.clock)
    return (own_W + overhead_W_per_gpu(setup)) * setup.economics.pue


def step_energy_per_gpu(
    setup: Setup,
    breakdown_s: dict[Category, float],
    time_s: float,
    per_stage_s: Sequence[dict[Category, float]] = (),
) -> StepEnergy:
    """The facility power of each category integrated over the step: sum_c t_c P_gpu(c) plus the
    overhead over the whole step, times PUE (the breakdown sums to the step time). With per-stage clocks
    (`cluster.stage_clocks_MHz`) each simulated rank's breakdown (`per_stage_s`, rank r being stage
    r mod pp) is priced at its stage's clock and averaged."""
    c = setup.cluster
    if c.stage_clocks_MHz and per_stage_s:
        pp = setup.plan.pp
        tables = [activity_power_W(c.gpu, c.stage_clock(s)) for s in range(pp)]
        by_cat = {k: 0.0 for k in breakdown_s}
        for rank, stage_s in enumerate(per_stage_s):
            watts = tables[rank % pp]
            for k, t in stage_s.items():
                by_cat[k] = by_cat.get(k, 0.0) + t * watts[k] / len(per_stage_s)
    else:
        watts = activity_power_W(c.gpu, c.clock)
        by_cat = {k: t * watts[k] for k, t in breakdown_s.items()}
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
