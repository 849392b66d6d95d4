"""Power through the whole run (energy/run_power.py, training_run/window.py) and the step's swing and
ramp (energy/timeline.py): the window's intervals against hand arithmetic, its energy against the run
energy's formula over the same intervals, the run energy against hand arithmetic, the ramp against
hand-built step functions, and what `run --out` writes."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.cli import main
from simulator.energy.power import activity_power_W, overhead_W_per_gpu, step_energy_per_gpu
from simulator.energy.run_power import phase_facility_W, run_energy_J
from simulator.energy.timeline import RAMP_WINDOW_S, PowerTimeline, ramp_W_per_s
from simulator.enums import Category, RunPhase
from simulator.scenario import Setup, setup_from_mapping
from simulator.simulate import simulate
from simulator.training_run.reliability import run_with_failures
from simulator.training_run.totals import run_phases_s
from simulator.workload.params import total_params

EXACT = 1e-12  # sums of a dozen products: float round-off only
TAU_S, RESTART_S, WRITE_GBPS, READ_GBPS = 100.0, 60.0, 1.0, 2.0
GPU_RATE = 0.01  # per GPU-hour: 16 GPUs fail every 3600 / 0.16 = 22,500 s


def tiny_raw(engine: str = "event", enabled: bool = True, tokens: float | None = 2e10) -> dict:
    """GPT-3 125M on two DGX A100 nodes (16 GPUs) with a reliability model whose figures are set here."""
    raw: dict = {
        "name": "tiny-run-power",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 16, "gpus_per_node": 8},
        "parallelism": {"tp": 2, "pp": 2},
        "training": {"global_batch": 32, "micro_batch": 1},
        "simulation": {"engine": engine},
        "reliability": {
            "enabled": enabled,
            "gpu_failures_per_hour": GPU_RATE,
            "node_failures_per_hour": 0.0,
            "checkpoint_interval_s": TAU_S,
            "storage_write_GBps_per_node": WRITE_GBPS,
            "storage_read_GBps_per_node": READ_GBPS,
            "restart_s": RESTART_S,
        },
    }
    if tokens is not None:
        raw["training"]["tokens"] = tokens
    return raw


def tiny(**kw: object) -> Setup:
    return setup_from_mapping(tiny_raw(**kw))  # type: ignore[arg-type]


def _ckpt_bytes(setup: Setup) -> float:
    return total_params(setup.model) * setup.reliability.checkpoint_bytes_per_param


def test_window_intervals_by_hand() -> None:
    """Two checkpoint intervals, the failure halfway through the third, the job stopped for restart_s,
    the checkpoint read back, the lost half interval done again, the rest, one more interval: each
    phase's length from the scenario's figures, back to back from 0."""
    setup = tiny()
    r = simulate(setup)
    assert r.run is not None and r.run.power_window is not None
    w = r.run.power_window
    delta = _ckpt_bytes(setup) / (2 * WRITE_GBPS * 1e9)  # 2 nodes writing
    load = _ckpt_bytes(setup) / (2 * READ_GBPS * 1e9)
    T, C, S, R, X = RunPhase.TRAINING, RunPhase.CHECKPOINT, RunPhase.STOPPED, RunPhase.RESTART, RunPhase.REDO
    expected = [
        (T, TAU_S), (C, delta), (T, TAU_S), (C, delta),
        (T, TAU_S / 2), (S, RESTART_S), (R, load), (X, TAU_S / 2), (T, TAU_S / 2), (C, delta),
        (T, TAU_S), (C, delta),
    ]  # fmt: skip
    assert [iv.phase for iv in w.intervals] == [p for p, _ in expected]
    for iv, (_, d) in zip(w.intervals, expected, strict=True):
        assert iv.end_s - iv.start_s == pytest.approx(d, rel=EXACT)
    assert w.intervals[0].start_s == 0.0
    assert all(a.end_s == b.start_s for a, b in zip(w.intervals, w.intervals[1:], strict=False))
    assert w.mtbf_s == pytest.approx(3600.0 / (16 * GPU_RATE), rel=EXACT)
    assert not w.what_if and w.pue == setup.economics.pue
    # each phase's cluster IT power: 16 GPUs at the phase's activity plus nodes and switches
    watts, over = activity_power_W(setup.cluster.gpu), overhead_W_per_gpu(setup)
    mean_W = r.power["cluster_W_mean"]
    by_phase = {iv.phase: iv.cluster_W for iv in w.intervals}
    assert by_phase[T] == by_phase[X] == pytest.approx(mean_W, rel=EXACT)
    assert by_phase[C] == by_phase[R] == pytest.approx(16 * (watts[Category.HOST_OVERHEAD] + over), rel=EXACT)
    assert by_phase[S] == pytest.approx(16 * (setup.cluster.gpu.idle_W + over), rel=EXACT)  # no process
    assert by_phase[C] == pytest.approx(r.power["cluster_W_checkpoint"], rel=EXACT)
    assert by_phase[S] == pytest.approx(r.power["cluster_W_idle"], rel=EXACT)
    assert r.power["cluster_W_stop_swing"] == pytest.approx(mean_W - by_phase[S], rel=EXACT)


@pytest.mark.parametrize("engine", ["event", "analytical"])
def test_window_energy_is_the_run_energy_formula(engine: str) -> None:
    """The window integrated is what the run's energy formula (run_energy_J at phase_facility_W) gives for
    its phase durations; and the run's energy_mwh is that formula over the run's own phase totals,
    which hand arithmetic confirms. The analytical engine (no time axis) has its window too."""
    setup = tiny(engine=engine)
    r = simulate(setup)
    assert r.run is not None and r.run.power_window is not None
    w = r.run.power_window
    t, e = r.step.time_s, r.step.energy_J_per_gpu
    energy = step_energy_per_gpu(setup, r.step.breakdown_s, t)
    powers = phase_facility_W(setup, energy, t)
    assert w.energy_J() == pytest.approx(run_energy_J(setup, powers, w.durations_s()), rel=EXACT)
    # the run: the same formula over the reliability model's totals
    useful = r.run.iterations * t
    rel = run_with_failures(setup, useful)
    assert r.run.energy_mwh == pytest.approx(run_energy_J(setup, powers, run_phases_s(setup, useful, rel)) / 3.6e9)
    # by hand: training and re-done training at the step's energy per second, checkpoint writes at the
    # host_overhead power, the recovery at restart_s idle + load host_overhead, all per GPU x 16 x PUE
    pue, over = setup.economics.pue, overhead_W_per_gpu(setup)
    watts = activity_power_W(setup.cluster.gpu)
    host = (watts[Category.HOST_OVERHEAD] + over) * pue
    idle = (setup.cluster.gpu.idle_W + over) * pue  # a stopped job: no process on the GPUs
    load = _ckpt_bytes(setup) / (2 * READ_GBPS * 1e9)
    recovery_W = (RESTART_S * idle + load * host) / (RESTART_S + load)
    by_hand = 16 * ((useful + rel.redo_s) * e / t + rel.checkpoint_s * host + rel.recovery_s * recovery_W)
    assert r.run.energy_mwh == pytest.approx(by_hand / 3.6e9, rel=EXACT)
    assert rel.redo_s > 0 and rel.checkpoint_s > 0 and rel.recovery_s > 0  # every term counted
    if engine == "analytical":
        assert r.power["cluster_W_swing"] == 0.0 and r.power["cluster_ramp_W_per_s"] == 0.0


def test_window_without_failures_or_checkpoints() -> None:
    """No failure rate: checkpoints only (three intervals); no rate and no interval: no window. A run
    shorter than the interval has it as its one segment."""
    raw = tiny_raw(engine="analytical")
    raw["reliability"]["gpu_failures_per_hour"] = 0.0
    r = simulate(setup_from_mapping(raw))
    assert r.run is not None and r.run.power_window is not None
    assert [iv.phase for iv in r.run.power_window.intervals] == [RunPhase.TRAINING, RunPhase.CHECKPOINT] * 3
    del raw["reliability"]["checkpoint_interval_s"]
    r = simulate(setup_from_mapping(raw))
    assert r.run is not None and r.run.power_window is None and "power_window" not in r.run.to_dict()
    short = simulate(tiny(engine="analytical", tokens=1e6))  # 16 steps of 32 x 2048 tokens
    assert short.run is not None and short.run.power_window is not None
    intervals = short.run.power_window.intervals
    useful = short.run.iterations * short.step.time_s
    assert useful < TAU_S
    # the whole run, failing halfway; no checkpoint: the model writes none in a run within one interval
    assert [iv.phase for iv in intervals] == [
        RunPhase.TRAINING, RunPhase.STOPPED, RunPhase.RESTART, RunPhase.REDO, RunPhase.TRAINING
    ]  # fmt: skip
    assert intervals[0].end_s == pytest.approx(useful / 2, rel=EXACT)
    assert intervals[-1].end_s - intervals[-1].start_s == pytest.approx(useful / 2, rel=EXACT)


def test_reliability_off_window_is_a_what_if() -> None:
    setup = tiny(engine="analytical", enabled=False)
    r = simulate(setup)
    assert r.run is not None and r.run.power_window is not None and r.run.power_window.what_if
    # off: the run's energy counts training only, the window is what the model would add
    assert r.run.energy_mwh == pytest.approx(16 * r.run.iterations * r.step.energy_J_per_gpu / 3.6e9, rel=EXACT)


def timeline(times: list[float], watts: list[float]) -> PowerTimeline:
    return PowerTimeline(np.asarray(times), np.asarray(watts), np.zeros((1, len(watts))))


def test_ramp_by_hand() -> None:
    """The fastest slope of the cluster power's 50 ms moving average, the step repeated: a 200 W jump
    (and the fall back at the step's end) is 200 / 0.05 = 4,000 W/s; a 1 kW pulse of 20 ms moves the
    average at 1 kW / 50 ms = 20,000 W/s while it enters the window; a step shorter than the window,
    0 W then 10 W for 10 ms each: |P(t + 50 ms) - P(t)| = 10 W, so 200 W/s."""
    assert RAMP_WINDOW_S == 0.05
    assert ramp_W_per_s(timeline([0.0, 1.0, 2.0], [100.0, 300.0])) == pytest.approx(4000.0, rel=EXACT)
    assert ramp_W_per_s(timeline([0.0, 0.02, 1.0], [1000.0, 0.0])) == pytest.approx(20000.0, rel=EXACT)
    assert ramp_W_per_s(timeline([0.0, 0.01, 0.02], [0.0, 10.0])) == pytest.approx(200.0, rel=EXACT)
    assert ramp_W_per_s(timeline([0.0, 1.0], [5.0])) == 0.0
    assert ramp_W_per_s(timeline([0.0, 0.5, 1.0], [7.0, 7.0])) == 0.0


def test_swing_and_ramp_of_a_simulated_step() -> None:
    """The event engine's step: the swing is peak minus minimum, and no 50 ms average can move faster
    than the whole swing in one window."""
    r = simulate(tiny())
    p = r.power
    assert p["cluster_W_swing"] == pytest.approx(p["cluster_W_peak"] - p["cluster_W_min"], rel=EXACT)
    assert p["cluster_W_swing"] > 0
    assert 0 < p["cluster_ramp_W_per_s"] <= p["cluster_W_swing"] / RAMP_WINDOW_S * (1 + EXACT)
    assert p["cluster_ramp_W_per_s"] == pytest.approx(ramp_W_per_s(r.timeline), rel=EXACT)
    assert p["cluster_W_idle"] < p["cluster_W_checkpoint"] < p["cluster_W_mean"]


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_run_out_writes_run_power_and_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run --out` writes run_power.png when the run model is on (training.tokens), the JSON carries the
    window and the power keys, `plot` redraws it from the JSON; a run without tokens drops an old one."""
    out = tmp_path / "out"
    assert main(["run", str(_write(tmp_path, tiny_raw())), "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    png = out / "run_power.png"
    assert png.is_file() and png.stat().st_size > 10_000
    window = result["run"]["power_window"]
    assert {"what_if", "mtbf_s", "pue", "intervals"} <= set(window)
    assert [iv["phase"] for iv in window["intervals"]][4:8] == ["training", "stopped", "restart", "redo"]
    for key in ("cluster_W_swing", "cluster_ramp_W_per_s", "cluster_W_idle", "cluster_W_checkpoint"):
        assert result["power"][key] > 0
    assert result["power"]["cluster_W_stop_swing"] > 0
    png.unlink()
    assert main(["plot", str(out / "result.json")]) == 0
    capsys.readouterr()
    assert png.is_file()
    assert main(["run", str(_write(tmp_path, tiny_raw(tokens=None))), "--json", "--out", str(out)]) == 0
    capsys.readouterr()
    assert not png.exists()


def test_ramp_against_brute_force() -> None:
    """A random step of 200 intervals, some shorter than the window: the ramp equals the largest
    |P(t + w) - P(t)| / w found by trying t just after every breakpoint and every breakpoint minus w."""
    rng = np.random.default_rng(7)
    times = np.concatenate([[0.0], np.cumsum(rng.exponential(0.03, 200))])
    watts = rng.uniform(1e3, 5e3, 200)
    period, w = times[-1], RAMP_WINDOW_S

    def p(t: float) -> float:
        return float(watts[np.searchsorted(times, t % period, side="right") - 1])

    eps = 1e-9
    trials = [b + eps for b in times[:-1]] + [(b - w) % period + eps for b in times[:-1]]
    brute = max(abs(p(t + w) - p(t)) for t in trials) / w
    assert ramp_W_per_s(timeline(list(times), list(watts))) == pytest.approx(brute, rel=EXACT)
