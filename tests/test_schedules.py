"""Pipeline schedules: task coverage, exact orders, in-flight peaks and dependency feasibility."""

import pytest

from simulator.engine.schedules import SCHEDULES, Pass, Task, stage_order
from simulator.enums import Schedule
from simulator.workload.partition import chunks_of_stage

F, B = Pass.FORWARD, Pass.BACKWARD


def seq(text: str, chunk: int | None = None) -> list[Task]:
    """'F0 B0' -> tasks on `chunk`; 'F0c2 B1c3' -> tasks with explicit chunks."""
    tasks = []
    for word in text.split():
        mb, _, c = word[1:].partition("c")
        tasks.append(Task(Pass(word[0]), int(mb), int(c) if c else chunk))
    return tasks


def all_orders(schedule: Schedule, pp: int, m: int, v: int) -> list[list[Task]]:
    return [stage_order(schedule, s, pp, m, v) for s in range(pp)]


def peak_in_flight(tasks: list[Task]) -> int:
    """Most (micro-batch, chunk) forwards done whose backward is not done yet."""
    live, peak = 0, 0
    for t in tasks:
        live += 1 if t.pass_ is F else -1
        peak = max(peak, live)
    return peak


def makespan(orders: list[list[Task]], fwd_s: float, bwd_s: float) -> float:
    """Run every stage's list in order, each task as soon as its stage is free and its inputs exist:
    F(mb, c) after F(mb, c-1); B(mb, c) after B(mb, c+1), and B(mb, last) after F(mb, last).
    Zero communication time. Raises AssertionError on deadlock."""
    last = sum(len({t.chunk for t in o}) for o in orders) - 1
    done: dict[Task, float] = {}
    free = [0.0] * len(orders)
    nxt = [0] * len(orders)
    progress = True
    while progress:
        progress = False
        for s, order in enumerate(orders):
            while nxt[s] < len(order):
                t = order[nxt[s]]
                if t.pass_ is F:
                    dep = Task(F, t.micro_batch, t.chunk - 1) if t.chunk > 0 else None
                else:
                    dep = Task(B, t.micro_batch, t.chunk + 1) if t.chunk < last else Task(F, t.micro_batch, last)
                if dep is not None and dep not in done:
                    break
                start = max(free[s], done[dep] if dep is not None else 0.0)
                free[s] = done[t] = start + (fwd_s if t.pass_ is F else bwd_s)
                nxt[s] += 1
                progress = True
    assert all(n == len(o) for n, o in zip(nxt, orders, strict=True)), f"deadlock at {nxt}"
    return max(free)


FLUSH = (Schedule.GPIPE, Schedule.ONE_F_ONE_B)
CASES = [(s, pp, m, 1) for s in FLUSH for pp in (1, 2, 3, 4, 5) for m in (1, 2, 3, 4, 7, 8)]
CASES += [(Schedule.INTERLEAVED, pp, k * pp, v) for pp in (1, 2, 3, 4) for v in (1, 2, 3, 4) for k in (1, 2, 3, 5)]


def test_registry_covers_every_schedule() -> None:
    assert set(SCHEDULES) == set(Schedule)


@pytest.mark.parametrize(("schedule", "pp", "m", "v"), CASES)
def test_each_task_once_and_backward_after_forward(schedule: Schedule, pp: int, m: int, v: int) -> None:
    for stage, tasks in enumerate(all_orders(schedule, pp, m, v)):
        expected = {Task(p, mb, c) for p in (F, B) for mb in range(m) for c in chunks_of_stage(stage, pp, v)}
        assert len(tasks) == len(expected) and set(tasks) == expected
        where = {t: i for i, t in enumerate(tasks)}
        assert all(where[Task(F, t.micro_batch, t.chunk)] < i for i, t in enumerate(tasks) if t.pass_ is B)


def test_one_f_one_b_exact() -> None:
    order = [stage_order(Schedule.ONE_F_ONE_B, s, 4, 8, 1) for s in range(4)]
    assert order[0] == seq("F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7", 0)
    assert order[1] == seq("F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7", 1)
    assert order[3] == seq("F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7", 3)
    # Fewer micro-batches than the warm-up: all forwards, then all backwards in order.
    assert stage_order(Schedule.ONE_F_ONE_B, 0, 4, 2, 1) == seq("F0 F1 B0 B1", 0)


def test_gpipe_exact() -> None:
    assert stage_order(Schedule.GPIPE, 0, 2, 3, 1) == seq("F0 F1 F2 B2 B1 B0", 0)
    assert stage_order(Schedule.GPIPE, 1, 2, 3, 1) == seq("F0 F1 F2 B2 B1 B0", 1)


def test_interleaved_exact() -> None:
    # pp=2, v=2, m=4: m*v = 8 tasks per pass; stage 0 holds chunks 0, 2 and stage 1 chunks 1, 3.
    # k-th forward: vs = (k % 4) // 2, mb = (k // 4) * 2 + k % 2
    #   k: 0 1 2 3 4 5 6 7 -> (mb, vs) (0,0) (1,0) (0,1) (1,1) (2,0) (3,0) (2,1) (3,1)
    # k-th backward: vs = 1 - (k % 4) // 2, same mb
    #   k: 0 1 2 3 4 5 6 7 -> (mb, vs) (0,1) (1,1) (0,0) (1,0) (2,1) (3,1) (2,0) (3,0)
    # chunk = stage + 2 * vs. Warm-up = 2 * (2 - stage - 1) + (2 - 1) * 2: 4 on stage 0, 2 on stage 1.
    # Stage 0: F k=0..3; pairs (F4,B0) (F5,B1) (F6,B2) (F7,B3); cool-down B4..B7.
    assert stage_order(Schedule.INTERLEAVED, 0, 2, 4, 2) == seq(
        "F0c0 F1c0 F0c2 F1c2 F2c0 B0c2 F3c0 B1c2 F2c2 B0c0 F3c2 B1c0 B2c2 B3c2 B2c0 B3c0"
    )
    # Stage 1: F k=0,1; pairs (F2,B0) (F3,B1) (F4,B2) (F5,B3) (F6,B4) (F7,B5); cool-down B6, B7.
    assert stage_order(Schedule.INTERLEAVED, 1, 2, 4, 2) == seq(
        "F0c1 F1c1 F0c3 B0c3 F1c3 B1c3 F2c1 B0c1 F3c1 B1c1 F2c3 B2c3 F3c3 B3c3 B2c1 B3c1"
    )


@pytest.mark.parametrize(("pp", "m"), [(p, k * p) for p in (1, 2, 3, 4, 8) for k in (1, 2, 3)])
def test_interleaved_v1_is_one_f_one_b(pp: int, m: int) -> None:
    assert all_orders(Schedule.INTERLEAVED, pp, m, 1) == all_orders(Schedule.ONE_F_ONE_B, pp, m, 1)


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="divisible"):
        stage_order(Schedule.INTERLEAVED, 0, 4, 6, 2)
    with pytest.raises(ValueError, match="stage"):
        stage_order(Schedule.ONE_F_ONE_B, 4, 4, 8, 1)
    with pytest.raises(ValueError, match="interleaved"):
        stage_order(Schedule.GPIPE, 0, 4, 8, 2)


@pytest.mark.parametrize(("pp", "m"), [(p, m) for p in (1, 2, 4, 6) for m in (1, 3, 4, 8, 12)])
def test_peak_in_flight_gpipe_and_one_f_one_b(pp: int, m: int) -> None:
    for s in range(pp):
        assert peak_in_flight(stage_order(Schedule.GPIPE, s, pp, m, 1)) == m
        assert peak_in_flight(stage_order(Schedule.ONE_F_ONE_B, s, pp, m, 1)) == min(pp - s, m)


@pytest.mark.parametrize(("pp", "v", "m"), [(p, v, k * p) for p in (2, 4, 8) for v in (2, 3, 4) for k in (1, 2, 4, 8)])
def test_peak_in_flight_interleaved(pp: int, v: int, m: int) -> None:
    # Megatron-LM's warm-up plus the steady state's first forward, capped by all m*v chunk-forwards;
    # on stage 0 with enough micro-batches that is pp * v * (1 + (pp - 1) / (pp * v)) = 2(pp-1) + (v-1)pp + 1.
    for s in range(pp):
        expected = min(2 * (pp - s - 1) + (v - 1) * pp + 1, m * v)
        assert peak_in_flight(stage_order(Schedule.INTERLEAVED, s, pp, m, v)) == expected
    if m * v > 2 * (pp - 1) + (v - 1) * pp:
        assert peak_in_flight(stage_order(Schedule.INTERLEAVED, 0, pp, m, v)) / v == pytest.approx(
            pp * (1 + (pp - 1) / (pp * v))
        )


@pytest.mark.parametrize(("schedule", "pp", "m", "v"), CASES)
def test_no_deadlock(schedule: Schedule, pp: int, m: int, v: int) -> None:
    makespan(all_orders(schedule, pp, m, v), 1.0, 2.0)


@pytest.mark.parametrize("schedule", [Schedule.GPIPE, Schedule.ONE_F_ONE_B])
@pytest.mark.parametrize(("pp", "m"), [(p, m) for p in (1, 2, 4, 5) for m in (1, 2, 4, 8, 9)])
def test_flush_makespan(schedule: Schedule, pp: int, m: int) -> None:
    # Equal stages, forward 1, backward 2: (m + pp - 1)(t_f + t_b) (Narayanan et al. 2021 sec. 2.2.1).
    assert makespan(all_orders(schedule, pp, m, 1), 1.0, 2.0) == (m + pp - 1) * 3


@pytest.mark.parametrize("v", [2, 3, 4])
@pytest.mark.parametrize(("pp", "m"), [(p, k * p) for p in (2, 4, 8) for k in (1, 2, 4, 8)])
def test_interleaving_shrinks_the_bubble(pp: int, m: int, v: int) -> None:
    flat = makespan(all_orders(Schedule.ONE_F_ONE_B, pp, m, 1), 1.0, 2.0)
    interleaved = makespan(all_orders(Schedule.INTERLEAVED, pp, m, v), 1 / v, 2 / v)  # each chunk 1/v of the layers
    # Zero communication: exactly the paper's bubble (pp - 1)(t_f + t_b) / v (Narayanan et al. 2021 sec. 2.2.2).
    assert interleaved == pytest.approx((m + (pp - 1) / v) * 3)
    assert interleaved < flat
