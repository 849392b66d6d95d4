"""Power through the step (the result's `power` block, docs/contract.md section 3): each simulated
rank's GPU power at every instant from what its compute stream does (metrics/breakdown.span_shares:
the same attribution as the time breakdown, priced per category by energy/power.activity_power_W), summed
over the GPUs each rank stands for, plus the nodes' overhead and the fabric's switches (constant).

Within a span the power is the span's energy over its length (a wait for a pipeline message that was
partly on the wire draws comm_pp's power for that part and the bubble's for the rest: averaged over
the wait). Integrated over the step, the cluster's power gives exactly the step energy the breakdown
gives (conservation, tested); the analytical engine has no time axis, so its peak and minimum are
its mean."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.energy.power import StepEnergy, activity_power_W, overhead_W_per_gpu
from simulator.energy.run_power import cluster_phase_W
from simulator.engine.spans import Stream, WaitReason
from simulator.enums import Category, RunPhase
from simulator.metrics.breakdown import span_shares
from simulator.scenario.setup import Setup

if TYPE_CHECKING:
    from simulator.engine.core import EngineResult


# The window over which `cluster_ramp_W_per_s` averages the cluster's power: 50 ms, the fastest period
# of the 0.1-20 Hz band in which Choukse et al. 2025 ("Power Stabilization for AI Training
# Datacenters", arXiv:2508.14318) state the grid's limits on a training job's power swings
# (docs/research/metered-power.md, sec. 6), and a reading of nvidia-smi's board power (50 ms here).
RAMP_WINDOW_S = 0.05


@dataclass(frozen=True)
class PowerTimeline:
    """Piecewise-constant power over the step: `times_s` are the n + 1 breakpoints, `cluster_W` the
    cluster's IT power (GPUs, node overhead, switches) in each of the n intervals, `rank_W` each
    simulated rank's GPU power (one GPU) in them."""

    times_s: np.ndarray
    cluster_W: np.ndarray
    rank_W: np.ndarray  # shape (ranks, n)

    def energy_J(self) -> float:
        return float(np.dot(self.cluster_W, np.diff(self.times_s)))


def power_timeline(setup: Setup, result: "EngineResult") -> PowerTimeline:
    """The cluster's and each rank's power through the simulated step (module docstring)."""
    watts = activity_power_W(setup.cluster.gpu, setup.cluster.clock)
    ranks = result.ranks
    # span_shares' attribution priced per span, with its common cases taken without building the shares
    # (~10^5 spans): a compute span's segment power summed once per segment, waits whose one category
    # is fixed by their reason (the conservation test holds both paths to the breakdown's energy)
    segment_W: dict[int, float] = {}
    contention_W = watts[Category.COMM_CONTENTION]
    wait_W = {WaitReason.DP_COMM: watts[Category.COMM_DP], WaitReason.EP_COMM: watts[Category.COMM_EP]}
    idle_W, pp_W, bubble_W = watts[Category.IDLE], watts[Category.COMM_PP], watts[Category.BUBBLE]
    messages = result.messages
    compute, pp_recv = Stream.COMPUTE, WaitReason.PP_RECV
    rank_of: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    power: list[float] = []
    add_rank, add_start, add_end, add_power = rank_of.append, starts.append, ends.append, power.append
    for span in [sp for sp in result.spans if sp.stream is compute]:
        rank, _, _, t0, t1, _, _, _, _, _, seg, wait, awaited, contention_s = span
        if t1 <= t0:
            continue
        d = t1 - t0
        if wait is None and seg is not None and seg.duration_s > 0:
            w = segment_W.get(id(seg))
            if w is None:
                w = segment_W[id(seg)] = sum(v * watts[c] for c, v in seg.by_category.items()) / seg.duration_s
            watt = ((d - contention_s) * w + contention_s * contention_W) / d
        elif wait is pp_recv:  # on the wire: comm_pp, else bubble
            assert isinstance(awaited, tuple), "a pipeline wait names its message"
            sent, arrived = messages.get(awaited, (t1, t1))
            on_wire = max(0.0, min(t1, arrived) - max(t0, sent))
            watt = (on_wire * pp_W + (d - on_wire) * bubble_W) / d
        elif wait is not None:
            watt = wait_W.get(wait, idle_W)
        else:
            watt = sum(v * watts[c] for c, v in span_shares(span, result)) / d
        add_rank(rank)
        add_start(t0)
        add_end(t1)
        add_power(watt)
    rank_a = np.asarray(rank_of, dtype=np.int64)
    start_a, end_a, power_a = (np.asarray(x, dtype=float) for x in (starts, ends, power))
    edges = np.unique(np.concatenate([start_a, end_a, np.zeros(1)]))
    edges = edges[edges <= result.time_s]
    if edges[-1] < result.time_s:
        edges = np.append(edges, result.time_s)
    mids = (edges[:-1] + edges[1:]) / 2
    rank_W = np.zeros((ranks, len(mids)))
    for r in range(ranks):
        mine = rank_a == r
        s, e, w = start_a[mine], end_a[mine], power_a[mine]
        if not len(s):
            continue
        order = np.argsort(s)
        s, e, w = s[order], e[order], w[order]
        k = np.searchsorted(s, mids, side="right") - 1  # the span that starts last before each midpoint
        inside = (k >= 0) & (mids < e[np.maximum(k, 0)])
        rank_W[r, inside] = w[k[inside]]
    gpus_per_rank = setup.cluster.num_gpus / ranks
    cluster_W = rank_W.sum(axis=0) * gpus_per_rank + overhead_W_per_gpu(setup) * setup.cluster.num_gpus
    return PowerTimeline(edges, cluster_W, rank_W)


def ramp_W_per_s(timeline: PowerTimeline, window_s: float = RAMP_WINDOW_S) -> float:
    """The fastest rise or fall of the cluster's IT power averaged over `window_s`: the largest slope of
    its moving average, max over t of |P(t + w) - P(t)| / w (the average over [t, t + w] of a
    piecewise-constant P changes at that rate), with the step repeated (the run is steps back to back,
    so the jump from one step's end to the next one's start counts). It is constant between the t where
    t or t + w is a breakpoint, so it is evaluated once between each two of those. W/s; 0 for a
    constant power."""
    times, values = timeline.times_s, timeline.cluster_W
    period = float(times[-1] - times[0])
    if period <= 0 or len(values) < 2:
        return 0.0
    rel = times[:-1] - times[0]  # each interval's start, from the step's start, sorted
    back = np.mod(rel - window_s, period)  # a rotation of a sorted array: two sorted runs, merged below
    back = np.roll(back, -int(np.argmin(back)))
    cuts = np.sort(np.concatenate([rel, back]), kind="stable")
    t = (cuts + np.append(cuts[1:], cuts[0] + period)) / 2
    now = values[np.searchsorted(rel, t, side="right") - 1]
    later = values[np.searchsorted(rel, np.mod(t + window_s, period), side="right") - 1]
    return float(np.max(np.abs(later - now))) / window_s


def _node_W(setup: Setup, timeline: PowerTimeline) -> np.ndarray:
    """One node's IT power through the step, for every node kind the simulated ranks stand for: a node
    holds gpus_per_node GPUs of one rank, or of consecutive ranks (pipeline stages) when a rank stands
    for fewer GPUs than a node has (Megatron's order puts the pipeline dimension outermost)."""
    c = setup.cluster
    ranks, n = timeline.rank_W.shape
    per_rank = c.num_gpus / ranks
    if per_rank >= c.gpus_per_node:
        return timeline.rank_W * c.gpus_per_node + c.node_overhead_W
    group = max(1, int(c.gpus_per_node // per_rank))
    pp = setup.plan.pp
    # full fidelity: rank = replica * pp + stage, and a node holds replicas of one stage
    order = sorted(range(ranks), key=lambda r: (r % pp, r // pp)) if ranks > pp else list(range(ranks))
    padded = np.zeros((-(-ranks // group) * group, n))
    padded[:ranks] = timeline.rank_W[order]
    return padded.reshape(-1, group, n).sum(axis=1) * per_rank + c.node_overhead_W


def power_block(setup: Setup, energy: StepEnergy, time_s: float, timeline: PowerTimeline | None) -> dict[str, float]:
    """The contract's `power` block (W): the average GPU and node, one node's peak, the cluster's mean,
    peak and minimum IT power, and the facility's mean (x PUE). Means come from the step energy; the
    peaks and minimum from the timeline (equal to the means without one: the analytical engine).
    Added keys: the step's swing (peak - minimum) and fastest ramp (ramp_W_per_s over RAMP_WINDOW_S; 0
    without a timeline); the cluster's IT power with every GPU idle (the job stopped) and while the
    job writes a checkpoint (energy/run_power.py), and the swing of a job stop or start (mean - idle)."""
    c = setup.cluster
    gpu_W = sum(energy.gpu_J_by_category.values()) / time_s
    node_W = gpu_W * c.gpus_per_node + c.node_overhead_W
    cluster_W = (gpu_W + overhead_W_per_gpu(setup)) * c.num_gpus
    peak = low = cluster_W
    node_peak = node_W
    ramp = 0.0
    if timeline is not None and len(timeline.cluster_W):
        live = np.diff(timeline.times_s) > 0
        peak, low = float(timeline.cluster_W[live].max()), float(timeline.cluster_W[live].min())
        node_peak = float(_node_W(setup, timeline)[:, live].max())
        ramp = ramp_W_per_s(timeline)
    idle = cluster_phase_W(setup, RunPhase.STOPPED)
    block = {
        "gpu_W_mean": gpu_W,
        "node_W_mean": node_W,
        "node_W_peak": node_peak,
        "cluster_W_mean": cluster_W,
        "cluster_W_peak": peak,
        "cluster_W_min": low,
        "facility_W_mean": cluster_W * setup.economics.pue,
        "cluster_W_swing": peak - low,
        "cluster_ramp_W_per_s": ramp,
        "cluster_ramp_window_s": RAMP_WINDOW_S,
        "cluster_W_idle": idle,
        "cluster_W_checkpoint": cluster_phase_W(setup, RunPhase.CHECKPOINT),
        "cluster_W_stop_swing": cluster_W - idle,
    }
    if c.node_max_W is not None:
        block["node_W_max"] = c.node_max_W  # the node's rating (energy/power.node_over_rating)
    return block
