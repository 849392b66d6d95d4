"""The parallel plans a search may try: every combination of the knobs that the scenario's model,
cluster and global batch allow, within bounds the user can fix or narrow.

The structural rules mirror what Megatron-LM accepts (and `scenario/resolve.py` checks again for
each candidate): tp divides the attention heads, the KV heads and the FFN width; tp*pp*cp divides
the GPU count and dp is what is left; dp*micro_batch divides the global batch; interleaving needs
micro-batches a multiple of pp; the layers split evenly over the pp (or pp*virtual_stages) chunks,
or with the first and last chunk one layer short.

Default bounds (each overridable with `--fix`/`--max`/`--min`):
- tp <= GPUs per node: tensor parallelism stays on NVLink (Narayanan et al. 2021, sec. 3.2
  takeaway 1).
- cp <= seq_len / 4096: every context-parallel rank keeps at least 4,096 tokens of the sequence;
  below that the attention work split off is too small to pay for its ring (Llama 3 uses cp=16 at
  131k tokens, i.e. 8k per rank; Llama Team 2024, sec. 3.3.2).
- micro_batch <= 8 and virtual_stages <= 4: beyond these the activation memory or the p2p count
  grows with no published run using them at scale.
- zero 2 and 3 only without a pipeline (pp=1): DeepSpeed's pipeline engine refuses ZeRO stages 2
  and 3, and Megatron-core pairs pipelines with its distributed optimizer (ZeRO-1). Naming them in
  `--fix zero=...` tries them with pipelines too.
- with FlashAttention, selective recompute is not tried: what it recomputes (the attention scores
  and softmax; Korthikanti et al. 2022, sec. 5) is never stored by the fused kernel, so it is the
  same plan as no recompute.
- sequence_parallel and dp_overlap keep the scenario's setting (fix them to try both), and so does
  recompute_layers for plans with full recomputation (`--fix recompute_layers=1,2,0` tries partial
  recomputation of the first 1 or 2 layers of each chunk, and all of them).

Mixtures of experts (only when the model has `model.moe`; docs/contract.md section 1b):
- ep runs over the divisors of the expert count and etp over {1, tp} (Megatron-Core practice: experts
  either unsplit, as in every published DeepSeek-V3 and Qwen3 plan, or split like the dense layers),
  keeping the pairs that satisfy MoE parallel folding (`scenario.rules.moe_problems`: ep*etp divides
  tp*cp*dp, etp divides the expert width, ...). `--fix etp=...` tries other widths.
- sequence parallelism is on wherever tp > 1 and ep > 1 (Megatron-Core requires it there), unless
  `--fix sequence_parallel=false` rules such plans out.
- moe_dispatcher and moe_overlap keep the scenario's setting (`--fix moe_dispatcher=alltoall,deepep`,
  `--fix moe_overlap=false,true` try several); overlap needs a 1F1B or interleaved schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from enum import StrEnum
from itertools import product
from typing import TYPE_CHECKING, Any

from simulator.enums import Dispatcher, Recompute, Schedule
from simulator.scenario.errors import ConfigError
from simulator.scenario.rules import chunks_problem, cp_problem, interleave_problem, moe_problems, tp_problems

if TYPE_CHECKING:  # the catalogue loads pydantic; `simulator search --help` needs only the knobs
    from simulator.catalog.models import ModelSpec

MIN_TOKENS_PER_CP_RANK = 4096
ZERO_STAGES = (0, 1, 2, 3)  # 3 = FSDP full sharding (contract: parallelism.zero)
DEFAULT_MAX = {"micro_batch": 8, "virtual_stages": 4}


@dataclass(frozen=True, order=True)
class PlanKnobs:
    """One candidate: the parallelism and training settings a search varies."""

    tp: int
    pp: int
    cp: int
    dp: int
    schedule: Schedule
    virtual_stages: int
    zero: int
    micro_batch: int
    recompute: Recompute
    sequence_parallel: bool
    dp_overlap: bool
    recompute_layers: int = 0  # with full recompute: its first N layers per chunk; 0 = all
    # Mixture-of-experts knobs; ep 0 = a dense model's plan, which sets none of them
    ep: int = 0
    etp: int = 0
    moe_dispatcher: str = ""  # a Dispatcher (a str) in an MoE plan
    moe_overlap: bool = False

    def sections(self) -> dict[str, dict[str, Any]]:
        """The scenario keys this plan sets, as plain data: `parallelism` and `training.micro_batch`."""
        skip = ("micro_batch", "recompute_layers", *MOE_KNOBS)
        par = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in skip}
        if self.tp == 1:
            par["sequence_parallel"] = False  # nothing to split without TP: keeps one store key per plan
        if self.recompute_layers:
            par["recompute_layers"] = self.recompute_layers
        if self.ep:
            par |= {knob: _plain(getattr(self, knob)) for knob in MOE_KNOBS}
        return {"parallelism": par, "training": {"micro_batch": self.micro_batch}}

    def label(self) -> str:
        """Short human label, e.g. 'TP8 PP8 DP16 v2 Z1 mb1 full' (the one used by plots and tables); an
        MoE plan adds its expert layout, e.g. '... EP8 ETP1 deepep a2a-overlap' (ETP when it is not
        tp, the dispatcher when it is not the default all-to-all)."""
        from simulator.results.labels import plan_label

        text = plan_label(self.sections())
        if not self.ep:
            return text
        parts = [text, f"EP{self.ep}"]
        if self.etp != self.tp:
            parts.append(f"ETP{self.etp}")
        if self.moe_dispatcher != Dispatcher.ALLTOALL:
            parts.append(str(self.moe_dispatcher))
        if self.moe_overlap:
            parts.append("a2a-overlap")
        return " ".join(parts)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


# knob -> how a --fix value string is parsed
KNOBS: dict[str, type] = {
    "tp": int,
    "pp": int,
    "cp": int,
    "dp": int,
    "virtual_stages": int,
    "zero": int,
    "micro_batch": int,
    "schedule": Schedule,
    "recompute": Recompute,
    "sequence_parallel": bool,
    "dp_overlap": bool,
    "recompute_layers": int,
    "ep": int,
    "etp": int,
    "moe_dispatcher": Dispatcher,
    "moe_overlap": bool,
}
NUMERIC = tuple(k for k, t in KNOBS.items() if t is int)
MOE_KNOBS = ("ep", "etp", "moe_dispatcher", "moe_overlap")  # knobs of mixture-of-experts models only


@dataclass(frozen=True)
class Bounds:
    """User limits: `fixed[knob]` is the set of allowed values; `low`/`high` bound numeric knobs."""

    fixed: dict[str, tuple[Any, ...]]
    low: dict[str, int]
    high: dict[str, int]

    def allows(self, knob: str, value: Any) -> bool:
        if knob in self.fixed and value not in self.fixed[knob]:
            return False
        if knob in self.low and value < self.low[knob]:
            return False
        return not (knob in self.high and value > self.high[knob])


def parse_bounds(fix: Iterable[str], at_most: Iterable[str], at_least: Iterable[str]) -> Bounds:
    """`--fix tp=4,8 --max pp=16 --min micro_batch=2` -> Bounds; ConfigError names each bad option."""
    problems: list[str] = []
    fixed: dict[str, tuple[Any, ...]] = {}
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for option, items, numeric_only in (("--fix", fix, False), ("--max", at_most, True), ("--min", at_least, True)):
        for item in items:
            knob, sep, text = item.partition("=")
            knob = knob.strip().removeprefix("parallelism.").removeprefix("training.")
            allowed = NUMERIC if numeric_only else tuple(KNOBS)
            if not sep or knob not in allowed:
                problems.append(f"{option} {item}: expected KNOB=VALUE with KNOB one of {', '.join(allowed)}")
                continue
            try:
                values = tuple(_parse(knob, v.strip()) for v in text.split(","))
            except ValueError as exc:
                problems.append(f"{option} {item}: {exc}")
                continue
            if option == "--fix":
                fixed[knob] = values
            elif len(values) != 1:
                problems.append(f"{option} {item}: give one number")
            else:
                (high if option == "--max" else low)[knob] = values[0]
    if problems:
        raise ConfigError(problems)
    return Bounds(fixed, low, high)


def _parse(knob: str, text: str) -> Any:
    kind = KNOBS[knob]
    if kind is bool:
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{knob} takes true or false, got {text!r}")
    if kind is int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{knob} takes whole numbers, got {text!r}") from None
        if knob == "zero":
            if value not in ZERO_STAGES:
                raise ValueError(f"zero is {_one_of(ZERO_STAGES)}, got {value}")
        elif value < (0 if knob == "recompute_layers" else 1):
            raise ValueError(f"{knob} must be positive, got {value}")
        return value
    enum: type[StrEnum] = kind
    if text not in {e.value for e in enum}:
        raise ValueError(f"{knob} is one of {', '.join(e.value for e in enum)}, got {text!r}")
    return enum(text)


def _text(value: Any) -> str:
    """A knob's value as typed on the command line (true, not True; 1f1b, not Schedule.ONE_F_ONE_B)."""
    return str(value).lower() if isinstance(value, bool) else str(_plain(value))


def _one_of(values: Iterable[Any]) -> str:
    """'0, 1, 2 or 3'."""
    text = [_text(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " or " + text[-1]


def _bound_text(bounds: Bounds, knob: str) -> str:
    """The options that bound `knob`, as the user typed them: '--fix tp=3', '--min pp=4 --max pp=8'."""
    parts = []
    if knob in bounds.fixed:
        parts.append(f"--fix {knob}={','.join(_text(v) for v in bounds.fixed[knob])}")
    if knob in bounds.low:
        parts.append(f"--min {knob}={bounds.low[knob]}")
    if knob in bounds.high:
        parts.append(f"--max {knob}={bounds.high[knob]}")
    return " ".join(parts)


def empty_reasons(frame: Frame, bounds: Bounds) -> list[str]:
    """Why no plan is left, when one bound is to blame: for each bounded knob, the values it takes in the
    plans the other bounds allow; a bound that none of them passes is named with them. Empty when
    only a combination of bounds (or the model, cluster and batch alone) leaves nothing."""
    reasons = []
    for knob in dict.fromkeys([*bounds.fixed, *bounds.low, *bounds.high]):
        others = Bounds(
            {k: v for k, v in bounds.fixed.items() if k != knob},
            {k: v for k, v in bounds.low.items() if k != knob},
            {k: v for k, v in bounds.high.items() if k != knob},
        )
        seen = sorted({getattr(p, knob) for p in enumerate_plans(frame, others)})
        if seen:
            reasons.append(f"{_bound_text(bounds, knob)}: {knob} is {_one_of(seen)} in the valid plans")
    return reasons


def bound_problems(frame: Frame, bounds: Bounds) -> list[str]:
    """Options that cannot apply to the frame's model: MoE knobs bound for a dense model."""
    if frame.model.moe is not None:
        return []
    return [
        f"{_bound_text(bounds, knob)}: {knob} is a mixture-of-experts knob and the model has no model.moe"
        for knob in MOE_KNOBS
        if knob in bounds.fixed or knob in bounds.low or knob in bounds.high
    ]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class Frame:
    """What the plans are enumerated against: the model, the cluster size and the global batch."""

    model: ModelSpec
    num_gpus: int
    gpus_per_node: int
    global_batch: int
    sequence_parallel: bool
    dp_overlap: bool
    flash_attention: bool = False
    recompute_layers: int = 0  # the scenario's limit on fully recomputed layers per chunk (0: all)
    moe_dispatcher: Dispatcher = Dispatcher.ALLTOALL  # the scenario's (MoE models)
    moe_overlap: bool = False


def enumerate_plans(frame: Frame, bounds: Bounds) -> Iterator[PlanKnobs]:
    """Every structurally valid plan within the bounds, in a fixed order (tp, cp, pp, ... ascending)."""
    m = frame.model
    default_high = {"tp": frame.gpus_per_node, "cp": max(1, m.seq_len // MIN_TOKENS_PER_CP_RANK), **DEFAULT_MAX}

    def ok(knob: str, value: Any) -> bool:
        if knob not in bounds.fixed and knob not in bounds.high and value > default_high.get(knob, value):
            return False
        return bounds.allows(knob, value)

    zeros = [z for z in ZERO_STAGES if ok("zero", z)]
    recomputes = [r for r in Recompute if ok("recompute", r)]
    if frame.flash_attention and "recompute" not in bounds.fixed and Recompute.SELECTIVE in recomputes:
        recomputes.remove(Recompute.SELECTIVE)
    sps = sorted(set(bounds.fixed.get("sequence_parallel", (frame.sequence_parallel,))))
    overlaps = sorted(set(bounds.fixed.get("dp_overlap", (frame.dp_overlap,))))
    limits = sorted(set(bounds.fixed.get("recompute_layers", (frame.recompute_layers,))))
    experts = _ExpertChoices(frame, bounds, ok)
    for tp, cp, pp, dp in _layouts(frame, ok):
        for mb in _divisors(frame.global_batch // dp):
            if not ok("micro_batch", mb):
                continue
            for schedule, v in _schedules(m.layers, pp, frame.global_batch // (dp * mb)):
                if not ok("schedule", schedule) or not ok("virtual_stages", v):
                    continue
                for zero, rc, sp, overlap in product(zeros, recomputes, sps, overlaps):
                    if zero >= 2 and pp > 1 and "zero" not in bounds.fixed:
                        continue
                    if sp and tp == 1 and len(sps) > 1:
                        continue  # sequence parallelism is a no-op without TP
                    chunk_layers = -(-m.layers // (pp * v))
                    for limit in _recompute_limits(rc, limits, chunk_layers):
                        for sp_moe, moe in experts(tp, cp, dp, sp, schedule):
                            yield PlanKnobs(tp, pp, cp, dp, schedule, v, zero, mb, rc, sp_moe, overlap, limit, *moe)


class _ExpertChoices:
    """The expert layouts (ep, etp, dispatcher, overlap) of a mixture-of-experts model for one plan of
    the other knobs, each with the sequence parallelism it runs with; one empty layout for a dense model."""

    def __init__(self, frame: Frame, bounds: Bounds, ok: Callable[[str, Any], bool]) -> None:
        self.model, self.bounds, self.ok = frame.model, bounds, ok
        self.sp_fixed = "sequence_parallel" in bounds.fixed
        self.dispatchers = sorted(set(bounds.fixed.get("moe_dispatcher", (frame.moe_dispatcher,))))
        self.overlaps = sorted(set(bounds.fixed.get("moe_overlap", (frame.moe_overlap,))))
        self._memo: dict[tuple[int, int, int, bool], list[tuple[int, int, bool]]] = {}

    def __call__(
        self, tp: int, cp: int, dp: int, sp: bool, schedule: Schedule
    ) -> Iterator[tuple[bool, tuple[Any, ...]]]:
        if self.model.moe is None:
            yield sp, ()
            return
        for ep, etp, sp_used in self._layouts(tp, cp, dp, sp):
            for dispatcher, overlap in product(self.dispatchers, self.overlaps):
                if overlap and schedule is Schedule.GPIPE:
                    continue  # resolve.py: moe_overlap pairs one micro-batch's forward with another's backward
                yield sp_used, (ep, etp, dispatcher, overlap)

    def _layouts(self, tp: int, cp: int, dp: int, sp: bool) -> list[tuple[int, int, bool]]:
        """(ep, etp, sequence_parallel) that fold onto tp x cp x dp by `scenario.rules.moe_problems`,
        within the bounds. A layout the rules accept only with sequence parallelism (tp > 1 and ep > 1)
        takes it on, unless the user fixed sequence_parallel."""
        key = (tp, cp, dp, sp)
        if key not in self._memo:
            moe = self.model.moe
            assert moe is not None
            etps = sorted(set(self.bounds.fixed.get("etp", (1, tp))))
            out = []
            for ep, etp in product(_divisors(moe.experts), etps):
                if not self.ok("ep", ep) or not self.ok("etp", etp):
                    continue
                if not moe_problems(self.model, tp, cp, dp, ep, etp, sp):
                    out.append((ep, etp, sp))
                elif not sp and not self.sp_fixed and not moe_problems(self.model, tp, cp, dp, ep, etp, True):
                    out.append((ep, etp, True))
            self._memo[key] = out
        return self._memo[key]


def _recompute_limits(recompute: Recompute, limits: list[int], chunk_layers: int) -> list[int]:
    """The layer limits worth trying: only full recompute has one, and a limit at or above the
    chunk's layers is the same plan as recomputing all of them (0)."""
    if recompute is not Recompute.FULL:
        return [0]
    return sorted({0 if n >= chunk_layers else n for n in limits})


def _layouts(frame: Frame, ok: Callable[[str, Any], bool]) -> Iterator[tuple[int, int, int, int]]:
    """(tp, cp, pp, dp) with tp*cp*pp*dp = GPUs that break no rule of `scenario.rules`, pp splitting
    the layers evenly (or the ends one short), and dp dividing the global batch."""
    m, n = frame.model, frame.num_gpus
    for tp in _divisors(n):
        if tp_problems(m, tp) or not ok("tp", tp):
            continue
        for cp in _divisors(n // tp):
            if cp_problem(m, cp) or not ok("cp", cp):
                continue
            for pp in _divisors(n // (tp * cp)):
                if chunks_problem(m, pp, 1) or not _splits_layers(m.layers, pp) or not ok("pp", pp):
                    continue
                dp = n // (tp * cp * pp)
                if frame.global_batch % dp == 0 and ok("dp", dp):
                    yield tp, cp, pp, dp


def _splits_layers(layers: int, chunks: int) -> bool:
    """The chunks (pipeline stages, or pp * virtual_stages) divide the layers, or the first and last
    hold one layer fewer (Llama 3 405B: 126 layers on 16 stages, or on 32 chunks of 4 and 3)."""
    return layers % chunks == 0 or (chunks > 2 and (layers + 2) % chunks == 0)


def _schedules(layers: int, pp: int, micro_batches: int) -> Iterator[tuple[Schedule, int]]:
    """(schedule, virtual_stages) pairs for a pipeline depth. Without a pipeline the schedule has no
    meaning: one entry, 1F1B."""
    if pp == 1:
        yield Schedule.ONE_F_ONE_B, 1
        return
    yield Schedule.GPIPE, 1
    yield Schedule.ONE_F_ONE_B, 1
    if interleave_problem(micro_batches, pp):
        return
    for v in range(2, layers // pp + 1):
        if _splits_layers(layers, pp * v):
            yield Schedule.INTERLEAVED, v
