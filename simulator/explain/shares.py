"""Where one step's time, energy and money go, by operation: GEMMs by kind, attention, other compute,
recomputation, each kind of communication, bubbles, optimizer, host overhead and idle; plus the run's
failures and checkpoints when the reliability model is on.

Time: the average GPU of the simulated step (engine spans). Energy: GPU power by activity
(energy/power.py) plus the GPU's share of node overhead, times PUE. Money: GPU-hours are billed
by time, so an operation's share of the money is its share of the time, plus its energy at
`cost.usd_per_kWh` when energy is billed separately.
"""

from collections import defaultdict
from dataclasses import dataclass

from simulator import units
from simulator.energy.cost import cost_usd
from simulator.energy.power import facility_power_W
from simulator.engine.spans import Span, Stream
from simulator.enums import Category, Role
from simulator.program.segments import Composite, Segment
from simulator.results.result import SimulationResult
from simulator.scenario.setup import Setup
from simulator.workload.ops import Op

GEMM_KINDS: dict[Role | None, str] = {
    Role.QKV: "GEMM: Q/K/V projection",
    Role.ATTN_PROJ: "GEMM: attention output projection",
    Role.MLP_UP: "GEMM: MLP up (+gate)",
    Role.MLP_DOWN: "GEMM: MLP down",
    Role.LM_HEAD: "GEMM: LM head (logits)",
}
OTHER_GEMMS = "GEMM: other"
LABELS = {
    Category.ATTENTION: "attention core (QK^T, softmax, AV)",
    Category.OTHER_COMPUTE: "other compute (norms, activations, dropout, embedding, loss)",
    Category.RECOMPUTE: "recomputation (forward again)",
    Category.COMM_TP: "tensor-parallel communication",
    Category.COMM_CP: "context-parallel communication",
    Category.COMM_PP: "pipeline communication (exposed)",
    Category.COMM_DP: "data-parallel communication (exposed)",
    Category.COMM_EP: "expert-parallel all-to-all (exposed)",
    Category.EXPERT_IMBALANCE: "expert load imbalance (waiting for the busiest expert rank)",
    Category.COMM_CONTENTION: "compute slowed by overlapped collectives",
    Category.BUBBLE: "pipeline bubble",
    Category.OPTIMIZER: "optimizer step",
    Category.HOST_OVERHEAD: "host (CPU) overhead",
    Category.IDLE: "idle (waiting for slower stages)",
}


@dataclass(frozen=True)
class Share:
    label: str
    category: Category | None  # None for run-level rows (failures, checkpoints)
    time_s: float  # per step, average GPU (run-level rows: per step on average over the run)
    energy_J: float  # facility energy per GPU per step
    cost_usd: float  # per GPU per step


def _segment_gemm_split(seg: Segment, memo: dict[int, dict[str, float]]) -> dict[str, float]:
    """GEMM seconds of one segment by kind (its label; composites unrolled), memoised per segment."""
    if id(seg) in memo:
        return memo[id(seg)]
    out: dict[str, float] = defaultdict(float)
    if isinstance(seg, Composite):
        for part, n in seg.parts:
            for k, v in _segment_gemm_split(part, memo).items():
                out[k] += n * v
    else:
        for ti in seg.items:
            if ti.category is Category.GEMM and isinstance(ti.item, Op):
                out[GEMM_KINDS.get(ti.item.role, OTHER_GEMMS)] += ti.duration_s
    memo[id(seg)] = dict(out)
    return memo[id(seg)]


def gemm_by_kind(spans: list[Span], ranks: int) -> dict[str, float]:
    """Average-GPU GEMM seconds per step by kind (its label), from the engine's compute spans."""
    memo: dict[int, dict[str, float]] = {}
    total: dict[str, float] = defaultdict(float)
    for span in spans:
        seg = span.segment
        if span.stream is not Stream.COMPUTE or not isinstance(seg, Segment) or seg.duration_s <= 0:
            continue
        scale = span.duration_s / seg.duration_s
        for k, v in _segment_gemm_split(seg, memo).items():
            total[k] += v * scale / ranks
    return dict(total)


def _share(setup: Setup, label: str, category: Category | None, seconds: float, draw: Category) -> Share:
    """A row of `seconds` per step whose GPUs draw the power of `draw`; billed by time and energy."""
    energy_J = facility_power_W(setup, draw) * seconds
    cost = cost_usd(setup.economics, seconds / units.SECONDS_PER_HOUR, units.joules_to_kwh(energy_J))
    return Share(label, category, seconds, energy_J, cost)


def step_shares(setup: Setup, result: SimulationResult) -> list[Share]:
    """Rows that together make up the step (and the run's failure overheads, per step)."""
    breakdown = result.step.breakdown_s
    ranks = max(1, len({s.rank for s in result.spans}))
    rows: list[Share] = []
    gemms = gemm_by_kind(result.spans, ranks) if result.spans else {}
    split = sum(gemms.values())
    for label, seconds in sorted(gemms.items(), key=lambda kv: -kv[1]):
        t = seconds * breakdown[Category.GEMM] / split if split > 0 else 0.0
        rows.append(_share(setup, label, Category.GEMM, t, Category.GEMM))
    if not gemms and breakdown[Category.GEMM] > 0:
        t = breakdown[Category.GEMM]
        rows.append(_share(setup, "GEMMs", Category.GEMM, t, Category.GEMM))
    for cat, label in LABELS.items():
        t = breakdown.get(cat, 0.0)
        if t > 0:
            rows.append(_share(setup, label, cat, t, cat))
    run = result.run
    if run is not None and run.progresses and run.goodput < 1.0:  # a stalled run has no per-step share
        per_step = units.SECONDS_PER_HOUR / run.iterations
        for label, hours in (
            ("failures: lost work and restarts", run.lost_hours or 0.0),  # None only when the run stalls
            ("checkpoint writes", run.checkpoint_hours or 0.0),
        ):
            t = hours * per_step
            rows.append(_share(setup, label, None, t, Category.IDLE))
    return rows
