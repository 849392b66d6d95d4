"""The energy-bloat saving (issue 14 item 4) of every bundled scenario: the per-stage clock plan that
keeps the step time and what it saves, as `simulator explain` reports it one scenario at a time.

    python tools/energy_bloat_table.py [scenarios/*.yaml]
"""

import sys
import time
from pathlib import Path

from simulator.energy.bloat import plan_energy_bloat
from simulator.scenario.load import load_setup

ROOT = Path(__file__).resolve().parent.parent


def main(paths: list[str]) -> None:
    files = [Path(p) for p in paths] or sorted((ROOT / "scenarios").glob("*.yaml"))
    print("| scenario | stage clocks MHz | saving per step | % | over the run | step change | planner s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path in files:
        t0 = time.perf_counter()
        plan = plan_energy_bloat(load_setup(path))
        took = time.perf_counter() - t0
        if plan is None:
            print(f"| {path.stem} | no clock data or one stage | - | - | - | - | {took:.1f} |")
            continue
        d = plan.to_dict()
        run = "-" if plan.run_saving_MWh is None else f"{plan.run_saving_MWh:,.1f} MWh"
        clocks = sorted(set(plan.stage_clocks_MHz))
        print(
            f"| {path.stem} | {min(clocks):.0f}-{max(clocks):.0f} | {plan.saving_J / 1e3:,.1f} kJ | "
            f"{plan.saving_pct:.2f} | {run} | {d['step_time_change_pct']:+.3f} % | {took:.1f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
