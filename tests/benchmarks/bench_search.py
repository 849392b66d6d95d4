"""Search benchmark (issue 5 targets): `simulator search` for GPT-3 175B on 1024 A100 with
`--workers 2` evaluates >= 100 plans in <= 120 s, returns only plans that fit, and its best plan
is at least as fast as Megatron-LM's TP 8 / PP 8 plan (the scenario file's own plan).
Optionally (--dask) the same search on a 2-worker Dask cluster on loopback gives the same ranking.

Runs the command in a fresh process with an empty store, as a user would. Usage:
    python tests/benchmarks/bench_search.py [--dask] [--workers 2]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "gpt3-175b-1024xa100.yaml"


def search(*extra: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "simulator", "search", str(SCENARIO), "--json", "--top", "0"]
        start = time.perf_counter()
        out = subprocess.run([*cmd, "--store", f"{tmp}/s.sqlite", *extra], check=True, capture_output=True, text=True)
        return time.perf_counter() - start, json.loads(out.stdout)


def megatron_step_s() -> float:
    out = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(SCENARIO), "--json"], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)["step"]["time_s"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dask", action="store_true", help="also run on a 2-worker Dask cluster on loopback")
    args = parser.parse_args()
    wall_s, data = search("--workers", str(args.workers))
    results = data["results"]
    reference_s = megatron_step_s()
    print(f"candidates {data['candidates_evaluated']}, feasible {data['feasible']}, simulated {data['simulated']}")
    print(f"wall {wall_s:.1f} s with --workers {args.workers} ({data['simulated'] / wall_s:.1f} plans/s)")
    print(f"Megatron TP8/PP8 interleaved v2, full recompute: {reference_s:.3f} s per step")
    for i, r in enumerate(results[:10]):
        print(
            f"{i + 1:3d}  {r['label']:45s} {r['step']['time_s']:8.3f} s  MFU {r['step']['mfu']:.1%}  "
            f"{r['memory']['peak_bytes'] / 1e9:5.1f} GB  {r['run']['days']:5.1f} days  ${r['run']['cost_usd']:,.0f}"
        )
    checks = {
        ">= 100 plans simulated": data["simulated"] >= 100,
        "<= 120 s": wall_s <= 120,
        "only plans that fit": all(r["feasible"] and r["memory"]["fits"] for r in results),
        "best at least as fast as TP8/PP8": results[0]["step"]["time_s"] <= reference_s,
    }
    if args.dask:
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
            dask_wall_s, dask_data = search("--scheduler", cluster.scheduler_address)
        print(f"dask: wall {dask_wall_s:.1f} s on 2 loopback workers")
        checks["dask gives the same ranking"] = [r["label"] for r in dask_data["results"]] == [
            r["label"] for r in results
        ]
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
