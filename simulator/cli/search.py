"""`simulator search` (contract section 4): options, the run of a search, the report and the files."""

import argparse
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import (
    add_outputs,
    add_progress,
    check,
    interrupt_status,
    out_dir_problems,
    print_then_fail,
    show_progress,
    shown,
    store_problems,
    write_failure,
)
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
    stores = p.add_mutually_exclusive_group()
    stores.add_argument(
        "--store",
        type=Path,
        metavar="PATH",
        help="SQLite result store (default: DIR/results.sqlite with --out, else "
        "$XDG_CACHE_HOME or ~/.cache, /llm-cluster-simulator/results.sqlite)",
    )
    stores.add_argument("--no-store", action="store_true", help="do not read or write a result store")
    add_progress(p)
    add_outputs(p, "print exactly one JSON object on stdout", "write search.json, search.md, the store and plots here")


def run(args: argparse.Namespace) -> int:
    from simulator.scenario.errors import ConfigError
    from simulator.search.driver import parse_sweep, search
    from simulator.search.report import report
    from simulator.search.space import parse_bounds

    problems = _option_problems(args)
    try:
        bounds = parse_bounds(args.fix, args.at_most, args.at_least)
    except ConfigError as exc:
        problems += exc.problems
    try:
        sweep = parse_sweep(args.sweep)
    except ConfigError as exc:
        problems += exc.problems
    check(problems)  # every bad option at once
    store = None if args.no_store else _open_store(args)
    try:
        outcome = search(
            args.scenario,
            args.overrides,
            bounds,
            args.objective,
            args.workers,
            args.scheduler,
            store,
            show_progress(args),
            sweep=sweep,
            refine=args.refine,
        )
    except KeyboardInterrupt as exc:
        kept = f"; the {store.count()} results in {store.path} are kept: rerun to resume" if store else ""
        print(f"search interrupted{kept}", file=sys.stderr)
        return interrupt_status(exc)
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
    failed = _write_files(outcome.as_json(), args.out) if args.out is not None else []
    if outcome.store_error and store:
        failed.append(f"result store {store.path}: cannot write ({outcome.store_error}); it keeps what it took before")
    data = outcome.as_json(args.top)
    return print_then_fail(shown(args, data, report(data)), failed)


def _option_problems(args: argparse.Namespace) -> list[str]:
    """The numeric options and --out, checked before the scenario is read."""
    problems = []
    if args.workers < 1:
        problems.append(f"--workers: must be at least 1, got {args.workers}")
    if args.top < 0:
        problems.append(f"--top: must be 0 (all) or more, got {args.top}")
    if args.refine is not None and args.refine < 1:
        problems.append(f"--refine: must be at least 1, got {args.refine}")
    if args.scheduler is not None and args.workers != 1:
        problems.append("--workers: not used with --scheduler (the Dask cluster has its own workers)")
    return problems + out_dir_problems(args.out)


def _open_store(args: argparse.Namespace) -> Any:
    """The result store, checked before the search: --store, or the default next to --out or in the
    user's cache (a cache that cannot be written is named, with the options that avoid it)."""
    import sqlite3

    from simulator.scenario.errors import ConfigError
    from simulator.search.store import ResultStore, default_store_path

    if args.store is not None:
        path, option, hint = args.store, "--store", ""
    else:
        try:
            path = default_store_path(args.out)
        except RuntimeError as exc:  # no HOME and no home directory in the password database
            raise ConfigError([f"result store: {exc} (choose one with --store PATH, or --no-store)"]) from None
        option, hint = "result store", " (choose another with --store PATH, or none with --no-store)"
    problems = store_problems(path, option)
    if problems:
        raise ConfigError([p + hint for p in problems])
    try:
        return ResultStore(path)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError([f"{option} {path}: cannot open ({exc}){hint}"]) from None


def _write_files(everything: dict[str, Any], out: Path) -> list[str]:
    """search.json, search.md and the plots; the problem line if the disk refuses them."""
    from analysis.search_plot import plot_search
    from simulator.search.report import write_search_files

    try:
        for path in write_search_files(everything, out) + plot_search(everything, out):
            print(f"wrote {path}", file=sys.stderr)
    except OSError as exc:
        return [write_failure("--out", out, exc)]
    return []
