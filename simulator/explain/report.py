"""The explain report: shares table, memory per GPU, what-if variants and the seed's claims checked."""

import copy
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from simulator.enums import Category, MemoryKind
from simulator.explain.clocks import CLOCK_RUNS, clock_tradeoff, energy_bloat, text_lines
from simulator.explain.shares import moe_parts, step_shares
from simulator.results.result import SimulationResult
from simulator.scenario.canonical import resolved_scenario
from simulator.scenario.load import setup_from_mapping
from simulator.scenario.setup import Setup
from simulator.simulate import simulate
from simulator.units import GIGA
from simulator.workload.params import total_params

VARIANTS: dict[str, tuple[str, str, list[Any]]] = {
    "flash_attention": ("training", "flash_attention", [False, True]),
    "recompute": ("parallelism", "recompute", ["none", "selective", "full"]),
    "zero": ("parallelism", "zero", [0, 1, 2, 3]),
}
# simulations `variants` runs, with the clock trade-off's and the energy-bloat plan (counted once)
VARIANT_RUNS = sum(len(values) for _, _, values in VARIANTS.values()) + CLOCK_RUNS + 1
COMPUTE = (Category.GEMM, Category.ATTENTION, Category.OTHER_COMPUTE, Category.OPTIMIZER)


def variants(setup: Setup, done: Callable[[], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Step time and memory of the same scenario with one setting changed at a time; `done` is called
    after each of the VARIANT_RUNS simulations (a progress bar: they take most of explain's time)."""
    base = resolved_scenario(setup)
    base.pop("reliability", None)
    base["training"].pop("tokens", None)  # the variants compare steps: no whole-run model to run
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (section, key, values) in VARIANTS.items():
        rows = []
        for value in values:
            sc = copy.deepcopy(base)
            sc[section][key] = value
            if key == "recompute":
                sc[section].pop("recompute_layers", None)  # each variant recomputes every layer or none
            if key == "zero" and value not in (1, 2):  # no weight all-gather after the optimizer to overlap
                sc.get("framework", {})["overlap_param_gather"] = False
            r = simulate(setup_from_mapping(sc))
            if done:
                done()
            rows.append(
                {
                    "value": value,
                    "step_time_s": r.step.time_s,
                    "mfu": r.step.mfu,
                    "peak_memory_GB": r.memory.peak_bytes / GIGA,
                    "fits": r.memory.fits,
                }
            )
        out[name] = rows
    return out


def claims(setup: Setup, result: SimulationResult) -> dict[str, Any]:
    """The seed answer's claims next to this scenario's measured figures."""
    b = result.step.breakdown_s
    compute = sum(b[c] for c in COMPUTE)
    matmul = b[Category.GEMM] + b[Category.ATTENTION]
    m = result.memory.per_gpu_bytes
    replica = setup.plan.model_parallel  # GPUs holding one copy of the model
    params = total_params(setup.model)
    state = m[MemoryKind.WEIGHTS] + m[MemoryKind.GRADIENTS] + m[MemoryKind.OPTIMIZER]
    moe = {}
    if setup.model.moe is not None:
        # Megatron-Core's MoE report, as issue 12 quotes it: GEMMs are under 50 % of DeepSeek-V3's step
        # against about 70 % of Llama 3 405B's (all-to-all, permutation, router and small expert GEMMs)
        moe["moe_gemm_share_of_step_time"] = {
            "claim": "under 50 % (DeepSeek-V3; about 70 % for dense Llama 3 405B)",
            "measured": b[Category.GEMM] / result.step.time_s,
        }
    return {
        "gemm_share_of_compute": {"claim": "90-95 %", "measured": matmul / compute if compute else 0.0},
        "gemm_share_of_step_time": {"claim": "90-95 %", "measured": matmul / result.step.time_s},
        "model_state_bytes_per_parameter": {
            "claim": "3-6 bytes",
            "unsharded": 16.0,  # mixed-precision Adam: 2 weights + 2 gradients + 12 optimizer (ZeRO paper)
            "per_replica_after_zero": state * replica / params,
            "peak_memory_per_replica": result.memory.peak_bytes * replica / params,
        },
        **moe,
    }


def explain(
    setup: Setup, result: SimulationResult, with_variants: bool = True, done: Callable[[], None] | None = None
) -> dict[str, Any]:
    """The report as data; an MoE model's also has `moe`: its parts of the step (router, permutation,
    routed and shared expert GEMMs, MLA and MTP projections, all-to-all, imbalance) in time, energy, money."""
    shares = step_shares(setup, result)
    fields = ("time_s", "energy_J", "cost_usd")
    total = [sum(getattr(s, f) for s in shares) for f in fields]
    moe = {}
    if setup.model.moe is not None:
        moe["moe"] = {part: {f: getattr(s, f) for f in fields} for part, s in moe_parts(shares).items()}
    return {
        "name": setup.name,
        "step_time_s": result.step.time_s,
        "shares": [
            asdict(s) | {"category": s.category.value if s.category else None, "role": s.role.value if s.role else None}
            for s in shares
        ],
        "totals": {"time_s": total[0], "energy_J": total[1], "cost_usd": total[2]},
        **moe,
        "memory_per_gpu_bytes": result.memory.per_gpu_bytes,
        "variants": variants(setup, done) if with_variants else {},
        "clocks": clock_tradeoff(setup, done) if with_variants else [],
        "energy_bloat": _bloat(setup, done) if with_variants else None,
        "claims": claims(setup, result),
        "run": result.run.to_dict() if result.run else None,
    }


def _bloat(setup: Setup, done: Callable[[], None] | None) -> dict[str, Any] | None:
    plan = energy_bloat(setup)
    if done:
        done()
    return plan


def _pct(x: float, total: float) -> str:
    return f"{100 * x / total:5.1f} %" if total > 0 else "    -"


def text(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [
        f"{report['name']}: where one step's time, energy and money go (average GPU)",
        f"  {'operation':62s} {'time':>8s} {'energy':>8s} {'money':>8s}",
    ]
    for s in report["shares"]:
        lines.append(
            f"  {s['label']:62s} {_pct(s['time_s'], t['time_s'])} {_pct(s['energy_J'], t['energy_J'])} "
            f"{_pct(s['cost_usd'], t['cost_usd'])}"
        )
    if moe := report.get("moe"):
        lines.append("  mixture of experts (share of time, energy, money):")
        for part, v in moe.items():
            lines.append(
                f"    {part:60s} {_pct(v['time_s'], t['time_s'])} {_pct(v['energy_J'], t['energy_J'])} "
                f"{_pct(v['cost_usd'], t['cost_usd'])}"
            )
    mem = ", ".join(f"{k} {v / GIGA:.1f}" for k, v in report["memory_per_gpu_bytes"].items())
    lines.append(f"  memory per GPU (GB): {mem}")
    c = report["claims"]
    lines.append("  claims checked:")
    lines.append(
        f"    GEMMs are 90-95 % of compute: measured {100 * c['gemm_share_of_compute']['measured']:.1f} % "
        f"of compute, {100 * c['gemm_share_of_step_time']['measured']:.1f} % of the step"
    )
    if "moe_gemm_share_of_step_time" in c:
        lines.append(
            f"    MoE GEMMs are under 50 % of the step (Megatron-Core MoE report, DeepSeek-V3): measured "
            f"{100 * c['moe_gemm_share_of_step_time']['measured']:.1f} %"
        )
    b = c["model_state_bytes_per_parameter"]
    lines.append(
        f"    3-6 bytes per parameter: mixed-precision Adam keeps {b['unsharded']:.0f} bytes per parameter; "
        f"this plan's GPUs hold {b['per_replica_after_zero']:.1f} per parameter of model state after ZeRO "
        f"sharding and {b['peak_memory_per_replica']:.1f} with activations and overheads (per model copy)"
    )
    for name, rows in report["variants"].items():
        cells = "; ".join(
            f"{r['value']}: {r['step_time_s']:.2f} s, {r['peak_memory_GB']:.0f} GB"
            f"{'' if r['fits'] else ' (does not fit)'}"
            for r in rows
        )
        lines.append(f"  what if {name}: {cells}")
    lines += text_lines(report)
    return "\n".join(lines)
