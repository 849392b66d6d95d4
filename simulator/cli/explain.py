"""`simulator explain`: which operations consume the time, the energy and the money."""

import argparse
import json
import sys
from typing import Any

from simulator.cli.common import add_outputs


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="which operations consume the time, the energy and the money")
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--no-variants", action="store_true", help="skip the what-if runs (flash, recompute, zero)")
    add_outputs(p, "print the report as one JSON object", "write explain.json and explain.png here")


def run(args: argparse.Namespace) -> int:
    from simulator.explain.report import explain, text
    from simulator.scenario.load import load_setup
    from simulator.simulate import simulate

    setup = load_setup(args.scenario, args.overrides)
    report = explain(setup, simulate(setup), with_variants=not args.no_variants)
    if args.out is not None:
        from analysis.explain_plot import plot_shares

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "explain.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        plot_shares(report, args.out / "explain.png")
        print(f"wrote {args.out / 'explain.json'} and {args.out / 'explain.png'}", file=sys.stderr)
    print(json.dumps(report, indent=2, allow_nan=False) if args.json else text(report))
    return 0
