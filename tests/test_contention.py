"""Compute slowed by collectives running beside it (NCCL's kernels hold SMs): where it applies, the
fluid model in the engine, its closed form in the analytical estimate, and the breakdown's books."""

import pytest
from conftest import BOOKS_REL

from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer
from simulator.costs.contention import contention_s, contention_share, overlap_sms
from simulator.engine.core import StepSimulation
from simulator.enums import Category
from simulator.estimate.analytical import estimate_step
from simulator.metrics.breakdown import step_breakdown
from simulator.program.compile import compile_program
from simulator.scenario import Setup, setup_from_mapping
from simulator.topology import build_topology
from simulator.workload import build_step


def setup(gpus: int = 16, **parallelism) -> Setup:
    return setup_from_mapping(
        {
            "name": "contention",
            "model": {"preset": "gpt3-1.3b"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": gpus},
            "parallelism": {"tp": 1, "pp": 1, **parallelism},
            "training": {"global_batch": 2 * gpus, "micro_batch": 1},
        }
    )


@pytest.mark.parametrize(
    ("parallelism", "gpus", "overlaps"),
    [
        ({"zero": 1}, 16, False),  # the reduction runs after the backward: nothing beside compute
        ({"zero": 3}, 16, True),  # per-layer gathers and reduce-scatters beside every layer
        ({"zero": 1, "dp_overlap": True}, 16, True),  # gradient buckets beside the last backward
        ({"zero": 3}, 1, False),  # no data-parallel group, no collective
    ],
)
def test_share_only_where_collectives_run_beside_compute(parallelism: dict, gpus: int, overlaps: bool) -> None:
    s = setup(gpus, **parallelism)
    expected = overlap_sms() / s.cluster.gpu.sm_count if overlaps else 0.0
    assert contention_share(s.plan, s.cluster.gpu) == pytest.approx(expected)


def test_closed_form() -> None:
    s = 0.25
    assert contention_s(2.0, 10.0, s) == pytest.approx(0.5)  # short collective: it costs C * s
    assert contention_s(100.0, 3.0, s) == pytest.approx(1.0)  # compute all at 3/4 speed: W / (1 - s) - W
    assert contention_s(2.0, 10.0, 0.0) == 0.0


def simulate(s: Setup, share: float | None = None):
    pricer = CommPricer(build_topology(s.cluster), Layout.of(s.plan), s.cluster.collective_algorithm)
    sim = StepSimulation(s, compile_program(build_step(s), pricer), pricer)
    if share is not None:
        sim.contention = share
    result = sim.run()
    return result, step_breakdown(result)


def test_zero3_compute_slows_by_what_the_spans_record_and_the_books_balance() -> None:
    s = setup(zero=3)
    with_contention, books = simulate(s)
    without, _ = simulate(s, share=0.0)
    extra = books.average_s[Category.COMM_CONTENTION]
    assert extra > 0
    assert with_contention.time_s > without.time_s
    # the step grows by the slowdown, less what it now hides of waits for the collectives
    assert without.time_s + 0.9 * extra <= with_contention.time_s <= without.time_s + extra + 1e-12
    assert sum(books.average_s.values()) == pytest.approx(with_contention.time_s, rel=BOOKS_REL)
    # never more than every compute second at the reduced rate
    share = contention_share(s.plan, s.cluster.gpu)
    compute = sum(v for c, v in books.average_s.items() if c is not Category.COMM_CONTENTION)
    assert extra <= compute * share / (1 - share) + 1e-12


def test_analytical_estimate_agrees_with_the_engine() -> None:
    s = setup(zero=3)
    engine, books = simulate(s)
    estimate = estimate_step(build_step(s))
    assert estimate.time_s == pytest.approx(engine.time_s, rel=0.02)
    assert estimate.breakdown_s[Category.COMM_CONTENTION] == pytest.approx(
        books.average_s[Category.COMM_CONTENTION], rel=0.25
    )


def test_no_contention_is_exactly_zero() -> None:
    """Without a collective beside compute the category is 0, not the rounding of env.now (it once
    printed as `comm_contention 0.000 s` in every report)."""
    _, books = simulate(setup(zero=1))
    assert books.average_s[Category.COMM_CONTENTION] == 0.0
