"""Speed benchmark of `simulator run` (issue targets: GPT-3 175B on 1024 A100 <= 2 s, Llama 3 405B on
16,384 H100 <= 5 s, peak memory <= 1 GiB, wall time including interpreter start-up; issue 12: DeepSeek-V3
on 2,048 H800 in at most 3x GPT-3's time, peak memory <= 1 GiB).

Each scenario runs in a fresh process, as a user would run it. Usage:
    python tests/benchmarks/bench_speed.py [--repeat N]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [
    "gpt3-175b-1024xa100.yaml",
    "llama3-405b-16384xh100.yaml",
    "gpt3-125m-8xa100.yaml",
    "deepseek-v3-2048xh800.yaml",
]
RATIO = ("deepseek-v3-2048xh800.yaml", "gpt3-175b-1024xa100.yaml")  # issue 12: at most 3x


# The child reports its own peak resident memory on stderr after the command finished.
CHILD = (
    "import resource, sys; from simulator.cli import main; code = main(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def run_once(scenario: Path) -> tuple[float, float, dict]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "run", str(scenario), "--json"], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    peak_kib = int(out.stderr.strip().splitlines()[-1])
    return wall, peak_kib / 1024, json.loads(out.stdout)["step"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'scenario':34s} {'best wall s':>11s} {'peak MiB':>9s} {'events':>8s} {'events/s':>9s} {'flows':>6s}")
    best = {}
    for name in SCENARIOS:
        runs = [run_once(ROOT / "scenarios" / name) for _ in range(args.repeat)]
        wall = best[name] = min(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        step = runs[0][2]
        events = step.get("events", 0)
        print(f"{name:34s} {wall:11.2f} {peak:9.0f} {events:8d} {events / wall:9.0f} {step.get('flows', 0):6d}")
    print(f"{RATIO[0]} / {RATIO[1]}: {best[RATIO[0]] / best[RATIO[1]]:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
