"""Full fidelity (every data-parallel replica simulated) against the symmetric representative."""

import pytest
from conftest import BOOKS_REL

from simulator.engine.step import simulate_step
from simulator.metrics.breakdown import step_breakdown
from simulator.scenario import Setup, setup_from_mapping
from simulator.workload import build_step


def scenario(**simulation) -> Setup:
    return setup_from_mapping(
        {
            "name": "fidelity",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 32},
            "parallelism": {"tp": 2, "pp": 4, "zero": 1},
            "training": {"global_batch": 64, "micro_batch": 1},
            "simulation": simulation,
        }
    )


def test_full_fidelity_matches_symmetric_for_identical_gpus() -> None:
    sym = simulate_step(build_step(scenario()))
    full = simulate_step(build_step(scenario(fidelity="full")))
    assert full.result.ranks == 4 * 4 and sym.result.ranks == 4
    assert {s.rank for s in full.result.spans} == set(range(16))
    # Identical replicas reach every collective together: the same step, up to how per-replica
    # pipeline flows share links versus one aggregated flow.
    assert full.result.time_s == pytest.approx(sym.result.time_s, rel=1e-3)
    assert full.result.events > sym.result.events


def test_stragglers_slow_the_step_and_are_deterministic() -> None:
    base = simulate_step(build_step(scenario(fidelity="full"))).result.time_s
    a = simulate_step(build_step(scenario(fidelity="full", compute_jitter=0.05)))
    b = simulate_step(build_step(scenario(fidelity="full", compute_jitter=0.05)))
    assert a.result.time_s > base
    assert a.result.time_s == b.result.time_s
    for per_rank in step_breakdown(a.result).per_stage_s:
        assert sum(per_rank.values()) == pytest.approx(a.result.time_s, rel=BOOKS_REL)


def test_jitter_is_ignored_in_symmetric_mode() -> None:
    assert simulate_step(build_step(scenario(compute_jitter=0.1))).result.time_s == pytest.approx(
        simulate_step(build_step(scenario())).result.time_s, rel=1e-12
    )
