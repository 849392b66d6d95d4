"""A short human-readable report of one result (what `simulator run` prints without --json)."""

from collections.abc import Sequence

from simulator.enums import Category
from simulator.results.result import SimulationResult
from simulator.training_run.totals import RunResult
from simulator.units import GIGA

CATEGORY_WIDTH = max(len(c.value) for c in Category)  # the breakdown's name column fits the longest name


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:5.1f} %" if whole > 0 else "   - "


def human_report(r: SimulationResult, overrides: Sequence[str] = ()) -> str:
    """`overrides`: the --set items applied to the file; listed, since the name is still the file's."""
    s, m, p = r.step, r.memory, r.plan
    recompute = p["recompute"]
    if n := p.get("recompute_layers"):
        recompute += f" (first {n} layer{'s' if n > 1 else ''} of each chunk)"
    flags = ("sequence_parallel", "tp_comm_overlap", "dp_overlap", "param_gather_overlap", "fp8_param_gather")
    extras = "".join(f" {flag}" for flag in flags if p.get(flag))
    lines = [
        f"{r.name}: {r.model['name']} ({r.model['parameters'] / 1e9:.1f} B parameters)",
        *([f"  overrides  {', '.join(overrides)} (--set; the name is the file's)"] if overrides else []),
        f"  plan       tp={p['tp']} pp={p['pp']} dp={p['dp']} cp={p['cp']} "
        f"schedule={p['schedule']} zero={p['zero']} recompute={recompute}{extras}, "
        f"{p['micro_batches']} micro-batches per step",
        f"  step       {s.time_s:.3f} s   {s.tokens_per_s:,.0f} tokens/s   MFU {100 * s.mfu:.1f} %   "
        f"HFU {100 * s.hfu:.1f} %   ({s.method})",
        "  where the step goes (average GPU):",
    ]
    for cat, t in sorted(s.breakdown_s.items(), key=lambda kv: -kv[1]):
        if t > 0:
            lines.append(f"    {cat.value:<{CATEGORY_WIDTH}} {t:10.3f} s  {_share(t, s.time_s)}")
    per = ", ".join(f"{k} {v / GIGA:.1f}" for k, v in m.per_gpu_bytes.items())
    verdict = "fits" if m.fits else "DOES NOT FIT"
    lines.append(
        f"  memory     {m.peak_bytes / GIGA:.1f} GB of {m.capacity_bytes / GIGA:.1f} GB per GPU: {verdict}  ({per} GB)"
    )
    if not r.feasible:
        lines.append(f"  infeasible: {r.reason}")
    if r.run is not None:
        lines += _run_lines(r.run)
    return "\n".join(lines)


def _run_lines(u: RunResult) -> list[str]:
    if not u.progresses:
        return [f"  run        {u.iterations:,} steps, {u.days_ideal:.1f} days without failures; none with them"]
    lines = [
        f"  run        {u.iterations:,} steps, {u.days:.1f} days, {u.gpu_hours:,.0f} GPU-hours, "
        f"{u.energy_mwh:,.0f} MWh, ${u.cost_usd:,.0f}, {u.co2_tonnes:,.0f} t CO2e"
    ]
    if u.goodput == 1.0:
        if u.days_with_failures is None:
            lines.append(f"  failures   off; with the reliability model on, {u.failure_note}")
        elif u.days is not None and u.days_with_failures > u.days:
            lines.append(
                f"  failures   off; with the reliability model the run would take {u.days_with_failures:.1f} days"
            )
    elif u.failure_note:
        lines.append(f"  failures   {u.failure_note}")
    if u.goodput < 1.0:
        lines.append(
            f"  failures   {u.interruptions:,.0f} interruptions, goodput {100 * u.goodput:.1f} %, "
            f"checkpoint every {u.checkpoint_interval_s:,.0f} s; {u.days_ideal:.1f} days without failures"
        )
    return lines
