"""Timed segments: runs of ops and blocking collectives executed back to back on a compute
stream, priced once and replayed by the engine as one event (docs/design.md: simulate the step event
by event, without one SimPy event per kernel; the trace expands segments back into kernels).

Host overhead: the CPU dispatches each op in `host_dispatch_s`; while kernels are longer the GPU
never waits, otherwise the segment is host-bound (duration = max(GPU time, host time); the
difference is reported as the `host_overhead` pseudo-op). A segment built `graphed` (the framework's
CUDA graphs cover it) costs the host one graph replay, `graph_replay_s`, for all its capturable items;
a dropless MoE layer's routing and expert path stay eager, as Megatron-Core cannot capture them (its
token dispatcher syncs device counts to the host: docs/research/host-overhead.md, Q3); padded to capacity
(model.moe.capacity_factor) they are static and captured ("drop-and-pad only", Megatron-Core's CUDA-graph
doc for its `moe` scope)."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simulator.costs.tp_overlap import overlapped_durations
from simulator.enums import Category, CudaGraphs, Role, TpOverlap
from simulator.workload.ops import CommOp, Item, Op


@dataclass(frozen=True, slots=True)
class TimedItem:
    """An item of a segment with its start offset, duration and breakdown category."""

    item: Item
    offset_s: float
    duration_s: float
    category: Category


@dataclass(frozen=True)
class Segment:
    """A timed run of items on the compute stream, with its totals by category."""

    name: str
    items: tuple[TimedItem, ...]
    duration_s: float
    by_category: dict[Category, float]
    flops: float
    bytes: float
    host_gap_s: float = 0.0


# A dropless MoE layer's router, token permutation and experts: eager under CUDA graphs (module docstring)
EAGER_ROLES = frozenset(
    {
        Role.ROUTER,
        Role.TOKEN_PERMUTE,
        Role.EXPERT_UP,
        Role.EXPERT_DOWN,
        Role.EXPERT_IMBALANCE,
        Role.SHARED_EXPERT_UP,
        Role.SHARED_EXPERT_DOWN,
    }
)
EXPERT_ROLES = frozenset({Role.EXPERT_UP, Role.EXPERT_DOWN})


def host_time_s(
    items: list[Item], dispatch_s: float, graphed: bool, replay_s: float, call_s: float = 0.0, moe_eager: bool = True
) -> float:
    """CPU time to issue `items`: `dispatch_s` per eagerly launched item, plus `call_s` per framework call an op
    issues besides its dispatch (Op.host_calls: a grouped GEMM's per-expert loop, always eager); when
    `graphed`, one replay (`replay_s`) for the items the graph captures: all but, when `moe_eager` (dropless
    routing), a MoE layer's routing and expert path (EAGER_ROLES, and whatever runs between its first and
    last expert GEMM). Padded to capacity, a MoE layer's shapes are static and the graph takes it whole."""
    calls = sum(it.host_calls for it in items if isinstance(it, Op)) * call_s
    if not graphed:
        return len(items) * dispatch_s + calls
    eager = 0
    if moe_eager:
        experts = [i for i, it in enumerate(items) if isinstance(it, Op) and it.role in EXPERT_ROLES]
        first, last = (experts[0], experts[-1]) if experts else (len(items), -1)
        eager = sum(
            1 for i, it in enumerate(items) if first <= i <= last or (isinstance(it, Op) and it.role in EAGER_ROLES)
        )
    return eager * dispatch_s + calls + (replay_s if eager < len(items) else 0.0)


@dataclass(frozen=True)
class GraphScope:
    """Which segments a framework's CUDA graphs cover: the transformer layers (`layers`), and also the
    embedding and head (`ends`: the whole forward-backward), with the host's cost per replay."""

    layers: bool
    ends: bool
    replay_s: float
    moe_eager: bool = True  # dropless MoE routing: its router and expert path stay out of the graphs

    @classmethod
    def of(cls, graphs: CudaGraphs, replay_s: float, moe_eager: bool = True) -> "GraphScope":
        """Per-layer graphs replay once per layer pass; a full-iteration graph once per step (~0 per segment)."""
        full = graphs is CudaGraphs.FULL_ITERATION
        return cls(graphs is not CudaGraphs.NONE, full, 0.0 if full else replay_s, moe_eager)


@dataclass
class SegmentBuilder:
    """Prices items through `timer` (cached per distinct item) and builds segments."""

    timer: Callable[[Item], float]
    host_dispatch_s: float
    sm_count: int  # SMs of the GPU, for the GEMMs that lend some to overlapped TP collectives
    graphs: GraphScope = GraphScope(False, False, 0.0)  # what the framework's CUDA graphs cover
    host_call_s: float = 0.0  # one framework call below an op's dispatch (software.yaml host_call_us)
    _times: dict[int, float] = field(default_factory=dict)

    def time(self, item: Item) -> float:
        key = id(item)
        if key not in self._times:
            self._times[key] = self.timer(item)
        return self._times[key]

    def build(self, name: str, items: Iterable[Item], graphed: bool = False) -> Segment:
        """The segment of `items` run back to back; `graphed`: the framework's CUDA graphs cover it."""
        items = list(items)
        durations = [self.time(item) for item in items]
        if any(isinstance(item, CommOp) and item.overlap is not TpOverlap.NONE for item in items):
            durations = overlapped_durations(items, durations, self.sm_count)
        timed: list[TimedItem] = []
        by_cat: dict[Category, float] = {}
        t = flops = moved = 0.0
        for item, d in zip(items, durations, strict=True):
            cat = item.category
            timed.append(TimedItem(item, t, d, cat))
            by_cat[cat] = by_cat.get(cat, 0.0) + d
            t += d
            moved += item.bytes
            if isinstance(item, Op):
                flops += item.flops
        host = host_time_s(
            items, self.host_dispatch_s, graphed, self.graphs.replay_s, self.host_call_s, self.graphs.moe_eager
        )
        gap = max(0.0, host - t)
        if gap > 0:
            by_cat[Category.HOST_OVERHEAD] = by_cat.get(Category.HOST_OVERHEAD, 0.0) + gap
        return Segment(name, tuple(timed), t + gap, by_cat, flops, moved, gap)


def concat(name: str, parts: list[Segment], repeats: list[int]) -> Segment:
    """A segment that runs `parts[i]` `repeats[i]` times in order (items kept by reference once
    per part; the trace writer unrolls repeats)."""
    by_cat: dict[Category, float] = {}
    duration = flops = moved = gap = 0.0
    for seg, n in zip(parts, repeats, strict=True):
        duration += n * seg.duration_s
        flops += n * seg.flops
        moved += n * seg.bytes
        gap += n * seg.host_gap_s
        for c, v in seg.by_category.items():
            by_cat[c] = by_cat.get(c, 0.0) + n * v
    return Composite(name, (), duration, by_cat, flops, moved, gap, tuple(zip(parts, repeats, strict=True)))


@dataclass(frozen=True)
class Composite(Segment):
    """A segment that concatenates other segments, each repeated n times (`unrolled` lists them in order)."""

    parts: tuple[tuple[Segment, int], ...] = ()

    def unrolled(self) -> Iterable[Segment]:
        for seg, n in self.parts:
            for _ in range(n):
                yield seg
