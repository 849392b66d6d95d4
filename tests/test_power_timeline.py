"""Power through the step (energy/timeline.py, the result's `power` block of docs/contract.md): it
conserves the step's energy exactly, its mean, peak and minimum are ordered, and it is what the spans
say it is."""

import pytest
from conftest import scenario_file
from test_engine_exact import dp_heavy, small_real

from simulator.energy.power import gpu_power_W, switches_W
from simulator.engine.spans import Stream
from simulator.metrics.breakdown import span_shares
from simulator.scenario import Setup, load_setup, setup_from_mapping
from simulator.simulate import simulate

REL = 1e-9


def _full(setup: Setup) -> Setup:
    raw = setup.scenario.model_dump(mode="json", exclude_none=True)
    raw["simulation"] = {"fidelity": "full", "compute_jitter": 0.05}
    return setup_from_mapping(raw)


CASES = {
    "dp16": lambda: dp_heavy(zero=1),
    "pp2-interleaved": lambda: small_real(schedule="interleaved", virtual_stages=2, dp_overlap=True),
    "full-fidelity": lambda: _full(small_real()),
    "moe-overlap": lambda: load_setup(scenario_file("mixtral-8x22b-128xh100")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_power_integrates_to_the_step_energy(case: str) -> None:
    """Issue 14's conservation target: the cluster's power integrated over the step equals the step
    energy reported elsewhere (energy_J_per_gpu, at the facility meter: x PUE) to 1e-9."""
    setup = CASES[case]()
    r = simulate(setup)
    n = setup.cluster.num_gpus
    facility_J = r.step.energy_J_per_gpu * n
    assert r.timeline is not None
    assert r.timeline.times_s[0] == 0.0 and r.timeline.times_s[-1] == pytest.approx(r.step.time_s, rel=REL)
    assert r.timeline.energy_J() * setup.economics.pue == pytest.approx(facility_J, rel=REL)
    assert r.power["facility_W_mean"] * r.step.time_s == pytest.approx(facility_J, rel=REL)
    p = r.power
    assert p["cluster_W_min"] <= p["cluster_W_mean"] <= p["cluster_W_peak"]
    assert p["node_W_mean"] <= p["node_W_peak"]
    gpu = setup.cluster.gpu
    assert p["node_W_peak"] <= setup.cluster.gpus_per_node * gpu.tdp_W + setup.cluster.node_overhead_W
    c = setup.cluster
    nodes_W = c.node_overhead_W * n / c.gpus_per_node
    assert p["gpu_W_mean"] * n + nodes_W + switches_W(c) == pytest.approx(p["cluster_W_mean"], rel=REL)
    assert p["node_W_mean"] == pytest.approx(p["gpu_W_mean"] * c.gpus_per_node + c.node_overhead_W, rel=REL)


def test_power_follows_the_spans() -> None:
    """Pure data parallelism: every GPU does the same, so the cluster draws num_gpus x the first
    segment's power (its categories priced per activity) plus nodes and switches while it runs."""
    setup = dp_heavy(zero=1)
    r = simulate(setup)
    first = min((s for s in r.spans if s.stream is Stream.COMPUTE), key=lambda s: s.start_s)
    gpu = setup.cluster.gpu
    from simulator.engine.core import EngineResult

    engine = EngineResult(r.step.time_s, [], r.spans, {}, 0, 0, setup.plan.pp)
    joules = sum(v * gpu_power_W(c, gpu.idle_W, gpu.tdp_W) for c, v in span_shares(first, engine))
    c = setup.cluster
    want = c.num_gpus * joules / first.duration_s + c.node_overhead_W * c.num_gpus / c.gpus_per_node + switches_W(c)
    assert r.timeline.times_s[0] == first.start_s == 0.0
    assert r.timeline.cluster_W[0] == pytest.approx(want, rel=REL)
    assert r.power[
        "cluster_W_peak"
    ] <= c.num_gpus * gpu.tdp_W + c.node_overhead_W * c.num_gpus / c.gpus_per_node + switches_W(c)


def test_the_analytical_engine_reports_means_only() -> None:
    raw = small_real().scenario.model_dump(mode="json", exclude_none=True)
    raw["simulation"] = {"engine": "analytical"}
    r = simulate(setup_from_mapping(raw))
    p = r.power
    assert r.timeline is None
    assert p["cluster_W_peak"] == p["cluster_W_min"] == p["cluster_W_mean"]
    assert p["node_W_peak"] == p["node_W_mean"]
    assert p["cluster_W_swing"] == 0.0 and p["cluster_ramp_W_per_s"] == 0.0  # no time axis: no swing to see
    assert p["cluster_W_stop_swing"] > 0.0  # a job stop is the run model's, which needs no time axis
    assert set(r.to_dict()["power"]) == {
        "gpu_W_mean",
        "node_W_mean",
        "node_W_peak",
        "cluster_W_mean",
        "cluster_W_peak",
        "cluster_W_min",
        "facility_W_mean",
        "node_W_max",  # added: the node's rating (the contract allows more keys)
        "cluster_W_swing",
        "cluster_ramp_W_per_s",
        "cluster_ramp_window_s",
        "cluster_W_idle",
        "cluster_W_checkpoint",
        "cluster_W_stop_swing",
    }


def test_trace_counters_and_power_plot(tmp_path) -> None:
    """`run --out` writes the power counters into the Perfetto trace (each stage's GPU, the cluster) and
    power.png from them; the cluster counter integrates to the step's IT energy."""
    from analysis.plots import plot_power, power_series, step_phases
    from simulator.results.trace import CLUSTER_PID, GPU_POWER, chrome_trace

    setup = small_real(schedule="interleaved", virtual_stages=2)
    r = simulate(setup)
    trace = chrome_trace(r.spans, setup.plan.pp, 1, r.timeline)
    counters = [e for e in trace["traceEvents"] if e.get("ph") == "C"]
    assert {e["pid"] for e in counters if e["name"] == GPU_POWER} == set(range(setup.plan.pp))
    times, mw = power_series(trace)
    assert times[0] == 0.0 and times[-1] == pytest.approx(r.step.time_s, rel=1e-6)
    joules = sum((b - a) * v * 1e6 for a, b, v in zip(times, times[1:], mw, strict=False))
    assert joules == pytest.approx(r.timeline.energy_J(), rel=1e-6)  # microsecond timestamps
    assert [p for p, _, _ in step_phases(trace)][:2] == ["warm-up", "steady 1F1B"]
    assert any(e.get("pid") == CLUSTER_PID and e.get("ph") == "M" for e in trace["traceEvents"])
    path = plot_power(setup.name, trace, r.step.time_s, tmp_path / "power.png")
    assert path is not None and path.stat().st_size > 10_000
