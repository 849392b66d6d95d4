"""Pipeline schedules: the order in which one pipeline stage runs its forward and backward passes.

A schedule only orders a stage's own tasks; the data dependencies between stages (a chunk's
forward waits for the previous chunk's output, its backward for the next chunk's gradient) are
enforced by the engine. Chunks use the global index of `simulator.workload.partition`:
chunk `stage + vs * pp` is virtual stage `vs` of pipeline stage `stage`.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from simulator.enums import Schedule


class Pass(StrEnum):
    FORWARD = "F"
    BACKWARD = "B"


@dataclass(frozen=True, slots=True)
class Task:
    """One pass of one micro-batch through one model chunk."""

    pass_: Pass
    micro_batch: int  # 0-based
    chunk: int  # global chunk index 0..pp*v-1 (chunk = stage + vstage*pp)

    def __str__(self) -> str:
        return f"{self.pass_}{self.micro_batch}c{self.chunk}"


def _check(stage: int, pp: int, micro_batches: int, virtual_stages: int) -> None:
    if pp < 1 or micro_batches < 1 or virtual_stages < 1:
        raise ValueError(f"pp ({pp}), micro_batches ({micro_batches}), virtual_stages ({virtual_stages}) must be >= 1")
    if not 0 <= stage < pp:
        raise ValueError(f"stage {stage} outside 0..{pp - 1}")


def _check_single_chunk(virtual_stages: int) -> None:
    if virtual_stages != 1:
        raise ValueError(f"virtual_stages = {virtual_stages} needs the interleaved schedule")


def _one_f_one_b(forwards: list[Task], backwards: list[Task], warmup: int) -> list[Task]:
    """Megatron-LM's three phases: `warmup` forwards, then forward/backward pairs while forwards
    remain, then the remaining backwards (cool-down)."""
    steady = len(forwards) - warmup
    order = forwards[:warmup]
    for i in range(steady):
        order += [forwards[warmup + i], backwards[i]]
    return order + backwards[steady:]


class PipelineSchedule(ABC):
    """Orders one stage's tasks; one subclass per `Schedule` value, registered in `SCHEDULES`."""

    @abstractmethod
    def stage_tasks(self, stage: int, pp: int, micro_batches: int, virtual_stages: int) -> list[Task]:
        """All forward and backward tasks of `stage` (0-based) in execution order."""


class GPipe(PipelineSchedule):
    """GPipe (Huang et al. 2019, fig. 2c): all m forwards of the stage's chunk, then all m backwards.

    Backwards run in reverse micro-batch order m-1..0, as drawn in the GPipe paper (the last
    micro-batch's gradient is the first to arrive). Megatron-LM's flush order (backwards 0..m-1)
    has the same makespan with equal stages but a different per-stage order.
    """

    def stage_tasks(self, stage: int, pp: int, micro_batches: int, virtual_stages: int) -> list[Task]:
        _check(stage, pp, micro_batches, virtual_stages)
        _check_single_chunk(virtual_stages)
        forwards = [Task(Pass.FORWARD, mb, stage) for mb in range(micro_batches)]
        backwards = [Task(Pass.BACKWARD, mb, stage) for mb in reversed(range(micro_batches))]
        return forwards + backwards


class OneFOneB(PipelineSchedule):
    """1F1B / PipeDream-Flush (Narayanan et al. 2021 sec. 2.2.1; Megatron-LM
    `forward_backward_pipelining_without_interleaving`): min(pp - stage - 1, m) warm-up forwards,
    then one forward + one backward while forwards remain, then the cool-down backwards; micro-batches
    in order. At most min(pp - stage, m) micro-batches are in flight on a stage."""

    def stage_tasks(self, stage: int, pp: int, micro_batches: int, virtual_stages: int) -> list[Task]:
        _check(stage, pp, micro_batches, virtual_stages)
        _check_single_chunk(virtual_stages)
        forwards = [Task(Pass.FORWARD, mb, stage) for mb in range(micro_batches)]
        backwards = [Task(Pass.BACKWARD, mb, stage) for mb in range(micro_batches)]
        return _one_f_one_b(forwards, backwards, min(pp - stage - 1, micro_batches))


class Interleaved(PipelineSchedule):
    """Interleaved 1F1B (Narayanan et al. 2021 sec. 2.2.2; Megatron-LM
    `forward_backward_pipelining_with_interleaving`, `get_pp_rank_microbatches` with the default
    micro-batch group of pp): each stage holds v chunks and runs m*v tasks per pass.

    Warm-up: 2(pp - stage - 1) + (v - 1)pp forwards, capped at all m*v (then every forward runs
    before every backward). The k-th forward (0-based) runs virtual stage (k mod pp*v) // pp, the
    k-th backward virtual stage v - 1 - (k mod pp*v) // pp, both on micro-batch
    (k // (pp*v)) * pp + k mod pp. Older Megatron-LM also ran all forwards first whenever m == pp;
    current Megatron-core dropped that special case and so does this class (as does
    `simulator.memory.activations.in_flight_micro_batches`).

    With v = 1 Megatron-LM runs the non-interleaved schedule (its interleaved warm-up would be
    2(pp - stage - 1), twice 1F1B's), so v = 1 returns exactly the 1F1B order.
    Requires m % pp == 0 when v > 1, as Megatron-LM's interleaved schedule does.
    """

    def stage_tasks(self, stage: int, pp: int, micro_batches: int, virtual_stages: int) -> list[Task]:
        _check(stage, pp, micro_batches, virtual_stages)
        if virtual_stages == 1:
            return OneFOneB().stage_tasks(stage, pp, micro_batches, 1)
        if micro_batches % pp:
            raise ValueError(f"interleaved schedule needs micro_batches ({micro_batches}) divisible by pp ({pp})")
        total = micro_batches * virtual_stages
        forwards = [self._task(Pass.FORWARD, k, stage, pp, virtual_stages) for k in range(total)]
        backwards = [self._task(Pass.BACKWARD, k, stage, pp, virtual_stages) for k in range(total)]
        warmup = min(2 * (pp - stage - 1) + (virtual_stages - 1) * pp, total)
        return _one_f_one_b(forwards, backwards, warmup)

    @staticmethod
    def _task(pass_: Pass, k: int, stage: int, pp: int, v: int) -> Task:
        """The k-th forward or backward of `stage`, from Megatron-LM's `get_model_chunk_id`."""
        in_group = k % (pp * v)
        vstage = in_group // pp
        if pass_ is Pass.BACKWARD:
            vstage = v - 1 - vstage
        micro_batch = (k // (pp * v)) * pp + in_group % pp
        return Task(pass_, micro_batch, stage + vstage * pp)


SCHEDULES: dict[Schedule, PipelineSchedule] = {
    Schedule.GPIPE: GPipe(),
    Schedule.ONE_F_ONE_B: OneFOneB(),
    Schedule.INTERLEAVED: Interleaved(),
}


def stage_order(schedule: Schedule, stage: int, pp: int, micro_batches: int, virtual_stages: int) -> list[Task]:
    """The tasks `stage` runs under `schedule`, in execution order."""
    return SCHEDULES[schedule].stage_tasks(stage, pp, micro_batches, virtual_stages)
