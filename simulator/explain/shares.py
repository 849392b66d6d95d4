"""Where one step's time, energy and money go, by operation: GEMMs by kind, attention, other compute,
recomputation, each kind of communication, bubbles, optimizer, host overhead and idle; plus the run's
failures and checkpoints when the reliability model is on.

A mixture-of-experts model's rows by role (enums.Role): its GEMMs by kind (router, routed and shared
experts, MLA projections, the MTP projection) and, split out of the compute they belong to, the
router's softmax/top-k and the token permutation; the exposed all-to-all (comm_ep) and the wait for
the busiest expert-parallel rank (moe_imbalance) are categories of the breakdown. Recomputed work
stays one row (recomputation), whatever its role.

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
    # mixture of experts, latent attention, multi-token prediction
    Role.ROUTER: "GEMM: MoE router (gating)",
    Role.EXPERT_UP: "GEMM: routed experts up (+gate)",
    Role.EXPERT_DOWN: "GEMM: routed experts down",
    Role.SHARED_EXPERT_UP: "GEMM: shared experts up (+gate)",
    Role.SHARED_EXPERT_DOWN: "GEMM: shared experts down",
    Role.MLA_DOWN: "GEMM: MLA down-projections (latent)",
    Role.MLA_UP: "GEMM: MLA up-projections",
    Role.MTP_PROJ: "GEMM: MTP input projection",
}
OTHER_GEMMS = "GEMM: other"
# Non-GEMM ops singled out of the compute category they run in (attention core, other compute), by role
ROLE_SHARES: dict[Role, str] = {
    Role.ROUTER: "MoE router (softmax, top-k)",
    Role.TOKEN_PERMUTE: "MoE token permutation and un-permutation",
}
SPLIT_CATEGORIES = (Category.ATTENTION, Category.OTHER_COMPUTE)
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
    role: Role | None = None  # the role the row singles out (GEMM kinds, MoE router, permutation)


# A row of the split: (category, role); role None = the category's ops without a singled-out role
# (for GEMMs: "GEMM: other"; for the split categories: the category's total, every role included).
Key = tuple[Category, Role | None]


def _key(category: Category, role: Role | None) -> Key | None:
    """Where an op's seconds go in the split, or None when the split does not follow them."""
    if category is Category.GEMM:
        return category, role if role in GEMM_KINDS else None
    if category in SPLIT_CATEGORIES:
        return category, role if role in ROLE_SHARES else None
    return None


def _segment_split(seg: Segment, memo: dict[int, dict[Key, float]]) -> dict[Key, float]:
    """Compute seconds of one segment by (category, role) (composites unrolled), memoised per segment.
    The split categories also count every op under (category, None), so a role's part can be taken."""
    if id(seg) in memo:
        return memo[id(seg)]
    out: dict[Key, float] = defaultdict(float)
    if isinstance(seg, Composite):
        for part, n in seg.parts:
            for k, v in _segment_split(part, memo).items():
                out[k] += n * v
    else:
        for ti in seg.items:
            if not isinstance(ti.item, Op) or (key := _key(ti.category, ti.item.role)) is None:
                continue
            out[key] += ti.duration_s
            if key[1] is not None and key[0] in SPLIT_CATEGORIES:
                out[(key[0], None)] += ti.duration_s
    memo[id(seg)] = dict(out)
    return memo[id(seg)]


def compute_by_role(spans: list[Span], ranks: int) -> dict[Key, float]:
    """Average-GPU compute seconds per step by (category, role), from the engine's compute spans."""
    memo: dict[int, dict[Key, float]] = {}
    total: dict[Key, float] = defaultdict(float)
    for span in spans:
        seg = span.segment
        if span.stream is not Stream.COMPUTE or not isinstance(seg, Segment) or seg.duration_s <= 0:
            continue
        scale = span.duration_s / seg.duration_s
        for k, v in _segment_split(seg, memo).items():
            total[k] += v * scale / ranks
    return dict(total)


def gemm_by_kind(spans: list[Span], ranks: int) -> dict[str, float]:
    """Average-GPU GEMM seconds per step by kind (its label), from the engine's compute spans."""
    return _gemm_labels(compute_by_role(spans, ranks))


def _gemm_labels(split: dict[Key, float]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (category, role), seconds in split.items():
        if category is Category.GEMM:
            out[GEMM_KINDS.get(role, OTHER_GEMMS)] += seconds
    return dict(out)


def _share(
    setup: Setup, label: str, category: Category | None, seconds: float, draw: Category, role: Role | None = None
) -> Share:
    """A row of `seconds` per step whose GPUs draw the power of `draw`; billed by time and energy."""
    energy_J = facility_power_W(setup, draw) * seconds
    cost = cost_usd(setup.economics, seconds / units.SECONDS_PER_HOUR, units.joules_to_kwh(energy_J))
    return Share(label, category, seconds, energy_J, cost, role)


def _role_rows(setup: Setup, cat: Category, label: str, t: float, split: dict[Key, float]) -> list[Share]:
    """Category `cat`'s `t` seconds: the roles singled out of it (their part of the category's compute
    spans), then the rest under the category's own label. One row when no role ran in it."""
    total = split.get((cat, None), 0.0)
    parts = {role: s for (c, role), s in split.items() if c is cat and role is not None and s > 0}
    if total <= 0 or not parts:
        return [_share(setup, label, cat, t, cat)]
    roles = [_share(setup, ROLE_SHARES[r], cat, t * s / total, cat, r) for r, s in parts.items()]
    rest = t * max(0.0, 1.0 - sum(parts.values()) / total)
    return [_share(setup, label, cat, rest, cat), *sorted(roles, key=lambda r: -r.time_s)]


def step_shares(setup: Setup, result: SimulationResult) -> list[Share]:
    """Rows that together make up the step (and the run's failure overheads, per step)."""
    breakdown = result.step.breakdown_s
    ranks = max(1, len({s.rank for s in result.spans}))
    rows: list[Share] = []
    by_role = compute_by_role(result.spans, ranks) if result.spans else {}
    gemm_roles = {role: s for (c, role), s in by_role.items() if c is Category.GEMM}
    split = sum(gemm_roles.values())
    for role, seconds in sorted(gemm_roles.items(), key=lambda kv: -kv[1]):
        t = seconds * breakdown[Category.GEMM] / split if split > 0 else 0.0
        label = GEMM_KINDS.get(role, OTHER_GEMMS)
        rows.append(_share(setup, label, Category.GEMM, t, Category.GEMM, role))
    if not gemm_roles and breakdown[Category.GEMM] > 0:
        t = breakdown[Category.GEMM]
        rows.append(_share(setup, "GEMMs", Category.GEMM, t, Category.GEMM))
    for cat, label in LABELS.items():
        t = breakdown.get(cat, 0.0)
        if t > 0:
            rows += _role_rows(setup, cat, label, t, by_role)
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


# An MoE model's parts of the step, each a set of roles (rows singled out by role) or a category.
MOE_PARTS: dict[str, tuple[Role, ...] | Category] = {
    "router": (Role.ROUTER,),
    "token permutation": (Role.TOKEN_PERMUTE,),
    "routed expert GEMMs": (Role.EXPERT_UP, Role.EXPERT_DOWN),
    "shared expert GEMMs": (Role.SHARED_EXPERT_UP, Role.SHARED_EXPERT_DOWN),
    "MLA projections": (Role.MLA_DOWN, Role.MLA_UP),
    "MTP projection": (Role.MTP_PROJ,),
    "expert all-to-all (exposed)": Category.COMM_EP,
    "expert load imbalance": Category.EXPERT_IMBALANCE,
}


def moe_parts(shares: list[Share]) -> dict[str, Share]:
    """The rows of `shares` summed into MOE_PARTS (time, energy and money), each part named by its key
    (category: that of its rows when they share one, else None)."""
    out = {}
    for part, which in MOE_PARTS.items():
        rows = [
            s
            for s in shares
            if (s.category is which if isinstance(which, Category) else s.role is not None and s.role in which)
        ]
        categories = {s.category for s in rows}
        out[part] = Share(
            part,
            categories.pop() if len(categories) == 1 else None,
            sum(s.time_s for s in rows),
            sum(s.energy_J for s in rows),
            sum(s.cost_usd for s in rows),
        )
    return out
