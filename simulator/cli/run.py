"""`simulator run`: simulate one scenario; the report or the contract JSON, and with --out the files."""

import argparse
import sys
from typing import Any

from simulator.cli.common import add_outputs


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
    from simulator.results.report import human_report
    from simulator.results.writer import result_json, write_outputs
    from simulator.scenario.errors import ConfigError
    from simulator.scenario.load import load_setup
    from simulator.simulate import simulate

    if args.trace_kernels < 0:
        raise ConfigError([f"--trace-kernels: must be 0 (all) or more, got {args.trace_kernels}"])
    setup = load_setup(args.scenario, args.overrides)
    result = simulate(setup)
    if args.out is not None:
        from analysis.plots import write_step_plots

        paths, trace = write_outputs(result, setup, args.out, args.trace_kernels or None)
        paths += write_step_plots(result.to_dict(), trace, args.out)
        for path in paths:
            print(f"wrote {path}", file=sys.stderr)
    print(result_json(result) if args.json else human_report(result))
    return 0
