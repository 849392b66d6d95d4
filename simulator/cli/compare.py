"""`simulator compare`: several scenarios side by side."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import add_outputs


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="run several scenarios and compare them side by side")
    p.add_argument("scenarios", nargs="+", type=Path, help="scenario YAML files")
    add_outputs(p, "print the list of results as one JSON array", "write compare.md, results.json and compare.png here")


def run(args: argparse.Namespace) -> int:
    from simulator.compare.table import comparison, simulate_all

    results = simulate_all(args.scenarios, args.overrides)
    if args.out is not None:
        from analysis.compare_plot import plot_comparison, plot_scaling

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.md").write_text(comparison(results).markdown() + "\n")
        (args.out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        scaling = plot_scaling(results, args.out / "compare_scaling.png")  # None: one cluster size only
        written = [plot_comparison(results, args.out / "compare.png"), scaling]
        names = ", ".join(["compare.md", "results.json", *(p.name for p in written if p is not None)])
        print(f"wrote {names} in {args.out}", file=sys.stderr)
    print(json.dumps(results, indent=2, allow_nan=False) if args.json else comparison(results).text())
    return 0
