"""GPU clocks and power limits (issue 14 item 3) and the energy-bloat planner (item 4): compute-bound
time scales with 1/clock and memory-bound time does not, against hand-computed values; a power limit's
clock; the DVFS power curve; the per-stage clock plan keeps the step time and saves energy only where
the pipeline is uneven."""

import copy
import math
from typing import Any

import pytest

from simulator.catalog.hardware import gpu_catalogue
from simulator.costs.clocks import (
    activity_clock_MHz,
    activity_power_at_W,
    compute_clock_scale,
    dvfs,
    dynamic_power_ratio,
    gpu_power_W,
)
from simulator.costs.compute import memory_time_s, op_time_s
from simulator.energy.bloat import plan_energy_bloat
from simulator.enums import Category, OpKind, Phase, Precision
from simulator.scenario.load import setup_from_mapping
from simulator.scenario.setup import ClockSetting
from simulator.simulate import simulate
from simulator.workload.ops import GemmShape, Op

A100 = gpu_catalogue()["a100-sxm-80gb"]
H100 = gpu_catalogue()["h100-sxm-80gb"]
BF16 = Precision.BF16


def gemm_op() -> Op:
    shape = GemmShape(8192, 8192, 8192)
    return Op("gemm", OpKind.GEMM, Phase.FORWARD, flops=shape.flops, bytes=3 * 8192 * 8192 * 2, gemm=shape)


def copy_op() -> Op:
    """An elementwise op over 1 GB: HBM-bound (the workload models them without FLOPs, workload/layer.py)."""
    return Op("add", OpKind.ELEMENTWISE, Phase.FORWARD, bytes=1e9)


@pytest.mark.parametrize("clock_MHz", [1300.0, 1040.0, 650.0, 260.0])
def test_gemm_time_scales_with_one_over_clock(clock_MHz: float) -> None:
    """A compute-bound GEMM: (t - launch) = FLOPs / rate(f0) x f0 / f, exactly."""
    op = gemm_op()
    scale = compute_clock_scale(A100, ClockSetting(clock_MHz))
    assert scale == pytest.approx(clock_MHz / 1300.0, rel=1e-12)  # a100 sustained_clock_MHz: 1300
    base = op_time_s(op, A100, BF16) - A100.kernel_launch_s
    t = op_time_s(op, A100, BF16, scale) - A100.kernel_launch_s
    assert base > memory_time_s(op.bytes, A100)  # compute-bound at the sustained clock
    assert t == pytest.approx(base * 1300.0 / clock_MHz, rel=1e-12)


def test_memory_bound_time_barely_moves() -> None:
    """An HBM-bound op keeps bytes / (HBM x efficiency) + launch at every clock."""
    op = copy_op()
    hand = 1e9 / (2039e9 * 0.88) + 4e-6  # a100-sxm-80gb: 2,039 GB/s, hbm_efficiency 0.88, 4 us launch
    for f in (1300.0, 650.0, 210.0):
        assert op_time_s(op, A100, BF16, compute_clock_scale(A100, ClockSetting(f))) == pytest.approx(hand, rel=1e-12)


def test_defaults_are_the_catalogue() -> None:
    """No clock keys, or a clock at/above the sustained one under the default limit: the catalogue's rates
    and powers exactly (the bundled scenarios' results do not move)."""
    for gpu in (A100, H100):
        for setting in (ClockSetting(), ClockSetting(gpu.clocks.max_MHz), ClockSetting(power_limit_W=gpu.tdp_W)):
            assert compute_clock_scale(gpu, setting) == 1.0
            for c in Category:
                assert activity_power_at_W(gpu, c, setting) == gpu_power_W(c, gpu.idle_W, gpu.tdp_W, gpu.activity_power)


def test_power_limit_settles_where_gemms_fit() -> None:
    """A100 under 300 W: the GEMM's power idle + (TDP - idle) x (0.05 + 0.95 r) meets the limit, r the
    f V^2 ratio to the sustained clock, so r = ((300 - 55) / 345 - 0.05) / 0.95; everything compute-bound
    runs at that clock, and a locked clock above it is clipped to it."""
    setting = ClockSetting(power_limit_W=300.0)
    f = activity_clock_MHz(A100, Category.GEMM, setting)
    assert f is not None and 210.0 < f < 1300.0
    assert dynamic_power_ratio(f, 1300.0, A100.clocks) == pytest.approx(((300 - 55) / 345 - 0.05) / 0.95, rel=1e-9)
    assert activity_power_at_W(A100, Category.GEMM, setting) == pytest.approx(300.0, rel=1e-9)
    assert activity_clock_MHz(A100, Category.ATTENTION, setting) == f  # the compute-bound group shares it
    assert compute_clock_scale(A100, setting) == pytest.approx(f / 1300.0)
    clipped = ClockSetting(sm_clock_MHz=1410.0, power_limit_W=300.0)
    assert activity_clock_MHz(A100, Category.GEMM, clipped) == f
    # memory-bound work at 0.6 of the range draws 262 W at full boost: under 300 W it keeps 1410 MHz
    assert activity_clock_MHz(A100, Category.OTHER_COMPUTE, setting) == 1410.0


def test_dvfs_curve() -> None:
    """f V(f)^2 with V linear from voltage_at_min_clock at the lowest clock to 1 at the highest."""
    v0 = dvfs().voltage_at_min_clock
    c = H100.clocks
    v = lambda f: v0 + (1 - v0) * (f - c.min_MHz) / (c.max_MHz - c.min_MHz)  # noqa: E731
    assert dynamic_power_ratio(1000.0, 1430.0, c) == pytest.approx(1000 * v(1000) ** 2 / (1430 * v(1430) ** 2))
    # lower clocks, lower power, for every activity; never above the catalogue's at the defaults
    for cat in Category:
        watts = [activity_power_at_W(H100, cat, ClockSetting(f)) for f in (1430.0, 1100.0, 700.0, 345.0)]
        assert watts == sorted(watts, reverse=True)
        assert watts[-1] >= H100.idle_W


TOY: dict[str, Any] = {
    "name": "bloat-toy",
    "model": {"layers": 16, "hidden": 2048, "heads": 16, "vocab": 256, "seq_len": 2048},
    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
    "parallelism": {"tp": 2, "pp": 4},
    "training": {"global_batch": 256, "micro_batch": 1, "tokens": 1e9},
}


def toy(**model: Any) -> Any:
    sc = copy.deepcopy(TOY)
    sc["model"].update(model)
    return setup_from_mapping(sc)


def test_locked_clock_slows_the_step() -> None:
    """The whole step at half the sustained clock: longer, but less than twice (HBM-bound work, communication
    and launch gaps keep their time), and each GPU draws less."""
    base = simulate(toy())
    sc = copy.deepcopy(TOY)
    sc["cluster"]["gpu_clock_MHz"] = 650
    slow = simulate(setup_from_mapping(sc))
    assert base.step.time_s < slow.step.time_s < 2 * base.step.time_s
    assert slow.step.breakdown_s[Category.GEMM] == pytest.approx(2 * base.step.breakdown_s[Category.GEMM], rel=0.02)
    assert slow.power["gpu_W_mean"] < base.power["gpu_W_mean"]


def test_balanced_pipeline_saves_about_nothing() -> None:
    """16 layers on 4 stages, a 256-token vocabulary: the stages differ only by the embedding, the head and
    their host time (~1 % of a stage's work): at most one clock step (15 MHz) lower, well under 1 % saved."""
    plan = plan_energy_bloat(toy())
    assert plan is not None
    assert all(1300.0 - 15.0 <= f <= 1300.0 for f in plan.stage_clocks_MHz)
    assert 0.0 <= plan.saving_pct < 1.0
    assert plan.time_s <= plan.base_time_s * (1 + plan.tolerance)


def test_one_stage_pipeline_saves_nothing() -> None:
    """No pipeline: the one stage is the critical path; nothing is lowered or re-simulated."""
    sc = copy.deepcopy(TOY)
    sc["parallelism"] = {"tp": 8, "pp": 1}
    plan = plan_energy_bloat(setup_from_mapping(sc))
    assert plan is not None
    assert plan.stage_clocks_MHz == (1300.0,) and plan.saving_J == 0.0 and plan.simulations == 1


def test_uneven_pipeline_saves_and_keeps_the_step() -> None:
    """13 layers on 4 stages: three 3-layer stages wait for the 4-layer one; lowered, they save energy,
    verified by simulation with the step time within the 0.1 % tolerance, several times what the
    balanced split saves."""
    setup = toy(layers=13)
    plan = plan_energy_bloat(setup)
    balanced = plan_energy_bloat(toy())
    assert plan is not None and balanced is not None
    assert sorted(plan.stage_clocks_MHz)[-1] == 1300.0  # the critical stage keeps its clock
    assert sum(f < 1300.0 - 15.0 for f in plan.stage_clocks_MHz) >= 2
    assert plan.saving_J > 0 and plan.saving_pct > 3 * balanced.saving_pct
    assert plan.time_s <= plan.base_time_s * (1 + plan.tolerance)
    iterations = math.ceil(1e9 / (256 * 2048))
    assert plan.run_saving_MWh == pytest.approx(plan.saving_J * iterations / 3.6e9)
    assert plan.base_time_s == simulate(setup).step.time_s  # the baseline is the run's own step
