"""Cost of the power timeline (energy/timeline.py) against the event simulation of the step it reads
(issue 14's target: at most 10 %). Best of N for each, per bundled scenario. Usage:
    python tests/benchmarks/bench_power.py [--repeat N]
"""

import argparse
import time
from pathlib import Path

from simulator.energy.timeline import power_timeline
from simulator.engine.step import simulate_step
from simulator.scenario import load_setup
from simulator.workload import build_step

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["gpt3-175b-1024xa100", "llama3-405b-16384xh100", "deepseek-v3-2048xh800", "gpt3-175b-10752xh100-mlperf"]
TARGET = 0.10


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'scenario':32} {'step sim s':>10} {'power s':>8} {'share':>7}")
    worst = 0.0
    for name in SCENARIOS:
        setup = load_setup(ROOT / "scenarios" / f"{name}.yaml")
        work = build_step(setup)
        sim_s, result = best_of(args.repeat, lambda w=work: simulate_step(w).result)
        power_s, _ = best_of(args.repeat, lambda s=setup, r=result: power_timeline(s, r))
        worst = max(worst, power_s / sim_s)
        print(f"{name:32} {sim_s:10.3f} {power_s:8.3f} {100 * power_s / sim_s:6.1f} %")
    print(f"worst share {100 * worst:.1f} % (target <= {100 * TARGET:.0f} %)")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
