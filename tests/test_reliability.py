"""The reliability model (simulator/training_training_run/reliability.py): Young/Daly intervals, failure rates
calibrated on Llama 3 (419 interruptions in 54 days on 16,384 H100), and its effect on the run."""

import dataclasses
import math

import pytest
from conftest import scenario_file

from simulator.energy.power import StepEnergy
from simulator.scenario.load import load_setup
from simulator.scenario.setup import Setup
from simulator.simulate import simulate
from simulator.training_run.reliability import daly_interval, simulate_run, system_mtbf_s, young_interval
from simulator.training_run.totals import whole_run

LLAMA = scenario_file("llama3-405b-16384xh100")
DAY = 86400.0


@pytest.fixture(scope="module")
def llama() -> Setup:
    return load_setup(LLAMA)


def with_reliability(setup: Setup, **changes: object) -> Setup:
    return dataclasses.replace(setup, reliability=dataclasses.replace(setup.reliability, **changes))


def test_young_and_daly_against_hand_values() -> None:
    # delta = 10 s, M = 1 h: Young sqrt(2 * 10 * 3600) = 268.328 s; Daly with x = 10/7200:
    # 268.328 * (1 + sqrt(x)/3 + x/9) - 10 = 261.703 s
    assert young_interval(10.0, 3600.0) == pytest.approx(268.328, abs=1e-3)
    assert daly_interval(10.0, 3600.0) == pytest.approx(261.703, abs=1e-3)
    assert daly_interval(8000.0, 3600.0) == 3600.0  # delta >= 2M: checkpoint every M


def test_default_rates_reproduce_llama3_interruptions(llama: Setup) -> None:
    expected = 54 * DAY / system_mtbf_s(llama)
    assert expected == pytest.approx(419, rel=0.10)
    rel = simulate_run(llama, 54 * DAY * 0.9)
    assert rel.interruptions_expected == pytest.approx(rel.wall_s / system_mtbf_s(llama))
    assert rel.interruptions == pytest.approx(rel.interruptions_expected, rel=0.2)


def test_llama3_405b_goodput_above_90_percent(llama: Setup) -> None:
    run = simulate(llama).run
    assert run is not None
    assert 0.90 < run.goodput < 1.0  # Llama 3 reports > 90 % effective training time
    assert run.days > run.days_ideal
    assert run.days == pytest.approx(run.days_ideal / run.goodput)
    assert run.interruptions > 0 and run.interruptions_simulated > 0
    assert run.checkpoint_interval_s > 0 and run.lost_hours > 0 and run.checkpoint_hours > 0


def _energy(step_s: float) -> StepEnergy:
    return StepEnergy(gpu_J_by_category={}, node_share_J=0.0, facility_J=600.0 * step_s)


def test_failures_off_is_the_ideal_run(llama: Setup) -> None:
    run = whole_run(with_reliability(llama, enabled=False), 10.0, _energy(10.0))
    assert run is not None
    assert run.days == run.days_ideal
    assert (run.goodput, run.interruptions, run.checkpoint_interval_s, run.lost_hours) == (1.0, 0.0, 0.0, 0.0)


def test_zero_rates_no_checkpoints(llama: Setup) -> None:
    s = with_reliability(llama, gpu_failures_per_hour=0.0, node_failures_per_hour=0.0)
    rel = simulate_run(s, 1e6)
    assert (rel.wall_s, rel.goodput, rel.interruptions, rel.checkpoint_s) == (1e6, 1.0, 0, 0.0)
    assert math.isinf(rel.mtbf_s)


def test_same_seed_same_result_other_seed_differs(llama: Setup) -> None:
    a = simulate_run(llama, 30 * DAY)
    assert simulate_run(llama, 30 * DAY) == a
    assert simulate_run(dataclasses.replace(llama, seed=1), 30 * DAY) != a


def test_more_failures_lower_goodput(llama: Setup) -> None:
    r = llama.reliability
    base = simulate_run(llama, 30 * DAY)
    worse = simulate_run(
        with_reliability(
            llama,
            gpu_failures_per_hour=10 * r.gpu_failures_per_hour,
            node_failures_per_hour=10 * r.node_failures_per_hour,
        ),
        30 * DAY,
    )
    assert worse.goodput < base.goodput
    assert worse.checkpoint_interval_s < base.checkpoint_interval_s


def test_fixed_checkpoint_interval(llama: Setup) -> None:
    rel = simulate_run(with_reliability(llama, checkpoint_interval_s=600.0), 10 * DAY)
    assert rel.checkpoint_interval_s == 600.0


def test_energy_and_cost_with_failures_at_least_without(llama: Setup) -> None:
    on = whole_run(llama, 10.0, _energy(10.0))
    off = whole_run(with_reliability(llama, enabled=False), 10.0, _energy(10.0))
    assert on is not None and off is not None
    assert on.energy_mwh >= off.energy_mwh
    assert on.gpu_hours > off.gpu_hours and on.cost_usd > off.cost_usd
    assert on.days_ideal == off.days_ideal == off.days


def test_scenario_section_overrides_and_typos() -> None:
    from simulator.scenario.errors import ConfigError

    s = load_setup(LLAMA, ["reliability.restart_s=60", "reliability.storage_write_GBps_per_node=4"])
    assert s.reliability.enabled and s.reliability.restart_s == 60.0
    assert s.reliability.write_bytes_per_s_per_node == 4e9
    assert not load_setup(scenario_file("gpt3-175b-1024xa100")).reliability.enabled
    with pytest.raises(ConfigError):
        load_setup(LLAMA, ["reliability.restart_minutes=5"])


def test_closed_form_matches_the_simulated_mean(llama: Setup) -> None:
    """The closed form (training_run/expected.py) is the expectation of what simulate_run draws."""
    from simulator.training_run.expected import expected_run
    from simulator.training_run.reliability import failure_model

    s = with_reliability(llama, gpu_failures_per_hour=2e-4, restart_s=600.0)  # ~1 failure per 1,000 s
    m = failure_model(s)
    useful = 0.5 * DAY
    draws = [simulate_run(dataclasses.replace(s, seed=seed), useful) for seed in range(200)]
    exp = expected_run(useful, m.tau, m.delta, m.recovery, m.mtbf)
    mean = {f: sum(getattr(d, f) for d in draws) / len(draws) for f in ("wall_s", "redo_s", "recovery_s")}
    assert exp.wall_s == pytest.approx(mean["wall_s"], rel=0.03)
    assert exp.redo_s == pytest.approx(mean["redo_s"], rel=0.1)
    assert exp.recovery_s == pytest.approx(mean["recovery_s"], rel=0.1)
    assert exp.wall_s == pytest.approx(useful + exp.redo_s + exp.recovery_s + exp.checkpoint_s, rel=1e-9)
    assert exp.interruptions == pytest.approx(exp.wall_s / m.mtbf, rel=1e-9)  # Daly 2006: wall / M


def test_event_budget_switches_to_the_closed_form(llama: Setup) -> None:
    from simulator.training_run.reliability import EVENT_BUDGET, run_with_failures

    short = run_with_failures(llama, 30 * DAY)
    assert short == simulate_run(llama, 30 * DAY) and short.method == "simulated"
    long = run_with_failures(llama, EVENT_BUDGET * DAY)  # ~1e8 checkpoint intervals
    assert long.method == "expected" and long.note and 0.8 < long.goodput < 1.0


def test_no_progress_when_failures_outpace_restarts(llama: Setup) -> None:
    from simulator.training_run.reliability import run_with_failures

    rel = run_with_failures(with_reliability(llama, gpu_failures_per_hour=1.0), 30 * DAY)
    assert not rel.progresses and rel.method == "no progress" and "cannot progress" in (rel.note or "")
    assert rel.goodput == 0.0
