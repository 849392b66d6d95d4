"""explain's time-energy trade-off of GPU clocks and power limits, and its energy-bloat plan (issue 14
items 3 and 4): the same step simulated at a few locked SM clocks and power limits."""

import copy
from collections.abc import Callable
from typing import Any

from simulator.costs.clocks import CLOCK_STEP_MHZ, activity_clock_MHz
from simulator.energy.bloat import plan_energy_bloat
from simulator.enums import Category
from simulator.scenario.canonical import resolved_scenario
from simulator.scenario.load import setup_from_mapping
from simulator.scenario.setup import Setup
from simulator.simulate import simulate

CLOCK_FRACTIONS = (0.9, 0.8, 0.7)  # locked clocks tried, as shares of the GEMMs' sustained clock
LIMIT_FRACTIONS = (0.8, 0.6)  # power limits tried, as shares of the GPU's default limit (tdp_W)
CLOCK_RUNS = 1 + len(CLOCK_FRACTIONS) + len(LIMIT_FRACTIONS)  # simulations clock_tradeoff runs


def _settings(setup: Setup) -> list[tuple[str, dict[str, float]]]:
    gpu = setup.cluster.gpu
    assert gpu.clocks is not None
    rows: list[tuple[str, dict[str, float]]] = [("as set", {})]
    for x in CLOCK_FRACTIONS:
        f = max(gpu.clocks.min_MHz, CLOCK_STEP_MHZ * round(x * gpu.clocks.sustained_MHz / CLOCK_STEP_MHZ))
        rows.append((f"clock {f:.0f} MHz", {"gpu_clock_MHz": f}))
    for x in LIMIT_FRACTIONS:
        w = max(gpu.clocks.min_power_limit_W, round(x * gpu.tdp_W))
        rows.append((f"limit {w:.0f} W", {"gpu_power_limit_W": w}))
    return rows


def clock_tradeoff(setup: Setup, done: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Step time, energy per step and per token, and mean GPU power at the scenario's own clock setting,
    a few locked clocks and a few power limits (an explicit key of the scenario is replaced); [] for a GPU
    without clock data."""
    if setup.cluster.gpu.clocks is None:
        return []
    base = resolved_scenario(setup)
    base.pop("reliability", None)
    base["training"].pop("tokens", None)
    rows = []
    for label, keys in _settings(setup):
        sc = copy.deepcopy(base)
        if keys:
            sc["cluster"].pop("gpu_clock_MHz", None)
            sc["cluster"].pop("gpu_power_limit_W", None)
            sc["cluster"].update(keys)
        s = setup_from_mapping(sc)
        r = simulate(s)
        if done:
            done()
        joules = r.step.energy_J_per_gpu * s.cluster.num_gpus
        gpu_W = r.power["gpu_W_mean"] if r.power else 0.0
        rows.append(
            {
                "setting": label,
                "sm_clock_MHz": activity_clock_MHz(s.cluster.gpu, Category.GEMM, s.cluster.clock),
                "step_time_s": r.step.time_s,
                "energy_J_per_step": joules,
                "energy_J_per_token": joules / s.tokens_per_step,
                "gpu_W_mean": gpu_W,
                "gpu_energy_J_per_step": gpu_W * r.step.time_s * s.cluster.num_gpus,  # the GPUs alone
            }
        )
    return rows


def energy_bloat(setup: Setup) -> dict[str, Any] | None:
    """The per-stage clock plan that keeps the step time (energy/bloat.py), as data; None without clock data."""
    plan = plan_energy_bloat(setup)
    return plan.to_dict() if plan else None


def text_lines(report: dict[str, Any]) -> list[str]:
    """The explain report's lines for the clock table and the energy-bloat plan."""
    lines = []
    if rows := report.get("clocks"):
        lines.append(
            "  GPU clocks and power limits (energy per step: the cluster at the facility meter, and its GPUs):"
        )
        lines.append(
            f"    {'setting':18s} {'GEMM clock':>10s} {'step':>9s} {'facility':>12s} {'J/token':>9s} "
            f"{'GPUs':>12s} {'GPU W':>6s}"
        )
        for r in rows:
            lines.append(
                f"    {r['setting']:18s} {r['sm_clock_MHz']:6.0f} MHz {r['step_time_s']:8.3f}s "
                f"{r['energy_J_per_step'] / 1e6:9.3f} MJ {r['energy_J_per_token']:9.3f} "
                f"{r['gpu_energy_J_per_step'] / 1e6:9.3f} MJ {r['gpu_W_mean']:6.0f}"
            )
    if b := report.get("energy_bloat"):
        clocks = ", ".join(f"{f:.0f}" for f in b["stage_clocks_MHz"])
        run = f", {b['run_saving_MWh']:.2f} MWh over the run" if b["run_saving_MWh"] is not None else ""
        lines.append(
            f"  energy bloat: per-stage clocks [{clocks}] MHz save {b['saving_J_per_step'] / 1e3:.1f} kJ per step "
            f"({b['saving_pct']:.2f} %){run}; step {b['step_time_s']:.3f} s against {b['base_step_time_s']:.3f} s "
            f"({b['step_time_change_pct']:+.3f} %, tolerance {b['tolerance_pct']:.1f} %; "
            f"{b['simulations']} simulations)"
        )
    return lines
