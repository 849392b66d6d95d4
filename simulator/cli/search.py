"""`simulator search` (contract section 4): options, the run of a search, the report and the files."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import add_outputs
from simulator.search.rank import OBJECTIVES
from simulator.search.space import KNOBS


def add_parser(sub: Any) -> None:
    knobs = ", ".join(KNOBS)
    p = sub.add_parser(
        "search",
        help="enumerate, prune and rank the parallel plans of a scenario",
        description="Enumerate every valid parallel plan for the scenario's model, cluster and global batch, drop "
        "those that do not fit in memory, simulate the rest and rank them. Plan knobs: " + knobs + ".",
    )
    p.add_argument("scenario", help="scenario YAML file (its own parallelism section is ignored)")
    p.add_argument("--objective", choices=OBJECTIVES, default="time", help="rank by step/run time, cost or energy")
    p.add_argument("--top", type=int, default=10, metavar="N", help="list the best N plans (0: all; default 10)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="simulate in N local processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="simulate on a Dask distributed cluster (tcp://host:port)")
    p.add_argument("--fix", action="append", default=[], metavar="KNOB=V[,V...]", help="allowed values of a knob")
    p.add_argument("--max", dest="at_most", action="append", default=[], metavar="KNOB=N", help="upper bound")
    p.add_argument("--min", dest="at_least", action="append", default=[], metavar="KNOB=N", help="lower bound")
    p.add_argument(
        "--refine",
        type=int,
        metavar="K",
        help="estimate every plan with the analytical engine first, then simulate only the best K event by event "
        "(for searches over thousands of plans)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY.PATH=V1,V2,...",
        help="also search over the values of a scenario key, e.g. cluster.num_gpus=256,512,1024 (repeatable)",
    )
    p.add_argument(
        "--store",
        type=Path,
        metavar="PATH",
        help="SQLite result store (default: DIR/results.sqlite with --out, else "
        "~/.cache/llm-cluster-simulator/results.sqlite)",
    )
    p.add_argument("--no-store", action="store_true", help="do not read or write a result store")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    add_outputs(p, "print exactly one JSON object on stdout", "write search.json, search.md, the store and plots here")


def run(args: argparse.Namespace) -> int:
    from simulator.scenario.errors import ConfigError
    from simulator.search.driver import parse_sweep, search
    from simulator.search.report import report, write_search_files
    from simulator.search.space import parse_bounds
    from simulator.search.store import ResultStore, default_store_path

    problems = []
    if args.workers < 1:
        problems.append(f"--workers: must be at least 1, got {args.workers}")
    if args.top < 0:
        problems.append(f"--top: must be 0 (all) or more, got {args.top}")
    if args.refine is not None and args.refine < 1:
        problems.append(f"--refine: must be at least 1, got {args.refine}")
    if args.scheduler is not None and args.workers != 1:
        problems.append("--workers: not used with --scheduler (the Dask cluster has its own workers)")
    if problems:
        raise ConfigError(problems)
    bounds = parse_bounds(args.fix, args.at_most, args.at_least)
    sweep = parse_sweep(args.sweep)
    store = None if args.no_store else ResultStore(args.store or default_store_path(args.out))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        outcome = search(
            args.scenario,
            args.overrides,
            bounds,
            args.objective,
            args.workers,
            args.scheduler,
            store,
            progress,
            sweep=sweep,
            refine=args.refine,
        )
    except KeyboardInterrupt:
        kept = f"; the {store.count()} results in {store.path} are kept: rerun to resume" if store else ""
        print(f"search interrupted{kept}", file=sys.stderr)
        return 130
    finally:
        if store:
            store.close()
    print(
        f"{outcome.candidates} candidate plans, {outcome.feasible} fit in memory; "
        + (f"estimated {outcome.estimated} analytically, " if outcome.estimated else "")
        + f"simulated {outcome.simulated}, "
        f"{outcome.reused} from the store, in {outcome.wall_s:.1f} s",
        file=sys.stderr,
    )
    if args.out is not None:
        from analysis.search_plot import plot_search

        everything = outcome.as_json()
        for path in write_search_files(everything, args.out) + plot_search(everything, args.out):
            print(f"wrote {path}", file=sys.stderr)
    data = outcome.as_json(args.top)
    print(json.dumps(data, indent=2, allow_nan=False) if args.json else report(data))
    return 0
