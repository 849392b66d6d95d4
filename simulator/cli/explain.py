"""`simulator explain`: which operations consume the time, the energy and the money."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import (
    add_outputs,
    add_progress,
    check,
    out_dir_problems,
    print_then_fail,
    show_progress,
    shown,
    write_failure,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="which operations consume the time, the energy and the money")
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--no-variants", action="store_true", help="skip the what-if runs (flash, recompute, zero)")
    add_progress(p)
    add_outputs(p, "print the report as one JSON object", "write explain.json and explain.png here")


def run(args: argparse.Namespace) -> int:
    from simulator.explain.report import VARIANT_RUNS, explain, text
    from simulator.scenario.load import load_setup
    from simulator.search.progress import Progress
    from simulator.simulate import simulate

    check(out_dir_problems(args.out))
    setup = load_setup(args.scenario, args.overrides)
    runs = 1 + (0 if args.no_variants else VARIANT_RUNS)
    bar = Progress(runs, "explaining", show_progress(args))
    try:
        result = simulate(setup)
        bar.advance()
        report = explain(setup, result, with_variants=not args.no_variants, done=bar.advance)
    finally:
        bar.close()
    failed = _write_files(report, args.out) if args.out is not None else []
    return print_then_fail(shown(args, report, text(report)), failed)


def _write_files(report: dict[str, Any], out: Path) -> list[str]:
    """explain.json and explain.png; the problem line if the disk refuses them."""
    from analysis.explain_plot import plot_shares

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "explain.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        plot_shares(report, out / "explain.png")
    except OSError as exc:
        return [write_failure("--out", out, exc)]
    print(f"wrote {out / 'explain.json'} and {out / 'explain.png'}", file=sys.stderr)
    return []
