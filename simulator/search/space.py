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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from enum import StrEnum
from itertools import product
from typing import TYPE_CHECKING, Any

from simulator.enums import Recompute, Schedule
from simulator.scenario.errors import ConfigError
from simulator.scenario.rules import chunks_problem, cp_problem, interleave_problem, tp_problems

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

    def sections(self) -> dict[str, dict[str, Any]]:
        """The scenario keys this plan sets, as plain data: `parallelism` and `training.micro_batch`."""
        skip = ("micro_batch", "recompute_layers")
        par = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in skip}
        if self.tp == 1:
            par["sequence_parallel"] = False  # nothing to split without TP: keeps one store key per plan
        if self.recompute_layers:
            par["recompute_layers"] = self.recompute_layers
        return {"parallelism": par, "training": {"micro_batch": self.micro_batch}}

    def label(self) -> str:
        """Short human label, e.g. 'TP8 PP8 DP16 v2 Z1 mb1 full' (the one used by plots and tables)."""
        from simulator.results.labels import plan_label

        return plan_label(self.sections())


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
}
NUMERIC = tuple(k for k, t in KNOBS.items() if t is int)


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
    enum = Schedule if kind is Schedule else Recompute
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
                        yield PlanKnobs(tp, pp, cp, dp, schedule, v, zero, mb, rc, sp, overlap, limit)


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
