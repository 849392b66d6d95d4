"""`simulator run`: simulate one scenario; the report or the contract JSON, and with --out the files."""

import argparse
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import add_outputs, check, out_dir_problems, print_then_fail, write_failure


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="simulate one scenario")
    p.add_argument("scenario", help="scenario YAML file")
    add_outputs(
        p,
        "print exactly one JSON object on stdout",
        "write result.json, the resolved scenario, the trace and plots here",
    )
    p.add_argument(
        "--trace-kernels",
        type=int,
        default=1,
        metavar="N",
        help="with --out: every kernel and TP collective of the first N micro-batches in the trace "
        "(default 1; 0: of every micro-batch, a much larger file)",
    )


def run(args: argparse.Namespace) -> int:
    from simulator.energy.power import node_over_rating
    from simulator.results.report import human_report
    from simulator.results.writer import result_json
    from simulator.scenario.load import load_setup
    from simulator.simulate import simulate

    problems = out_dir_problems(args.out)
    if args.trace_kernels < 0:
        problems.append(f"--trace-kernels: must be 0 (all) or more, got {args.trace_kernels}")
    check(problems)
    setup = load_setup(args.scenario, args.overrides)
    result = simulate(setup)
    if warning := node_over_rating(result.power):
        print(warning, file=sys.stderr)
    failed = _write_files(result, setup, args.out, args.trace_kernels or None) if args.out is not None else []
    return print_then_fail(result_json(result) if args.json else human_report(result, args.overrides), failed)


def _write_files(result: Any, setup: Any, out: Path, kernels: int | None) -> list[str]:
    """result.json, the resolved scenario, the trace and the plots; the problem line if the disk refuses."""
    from analysis.plots import write_step_plots
    from simulator.results.writer import write_outputs

    try:
        paths, trace = write_outputs(result, setup, out, kernels)
        paths += write_step_plots(result.to_dict(), trace, out)
    except OSError as exc:
        return [write_failure("--out", out, exc)]
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return []
