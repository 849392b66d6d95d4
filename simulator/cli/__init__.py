"""The `simulator` command (docs/contract.md section 2): one module per subcommand, each with
`add_parser(subparsers)` and `run(args) -> int`. Subcommand modules import only argparse at load
time, so `simulator --help` and a subcommand start without the simulator behind the others.
This package is the only importer of `analysis/` (the plots)."""

import argparse
import atexit
import gc
import os
import sys
from importlib import import_module

from simulator import __version__
from simulator.scenario.errors import ConfigError

# The simulator does no linear algebra, yet numpy's OpenBLAS starts a thread per core when numpy is
# imported (20-50 ms of a 0.3 s run on 2 cores, more on big machines); numpy is imported after this.
# Whoever wants the threads sets the variable: setdefault keeps it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# When the interpreter exits it runs one last full collection over every object still alive (~10^6
# after numpy, pydantic and a simulation: ~40 ms). Frozen objects are left out, and the OS frees
# their memory anyway; Python does not promise to finalize objects alive at exit (the result store
# closes itself, files are closed or flushed).
atexit.register(gc.freeze)

SUBCOMMANDS = ("run", "compare", "explain", "search", "plot", "validate")

# Commands that run a bounded number of simulations (not search, whose workers run thousands). In a
# process of their own they leave the cyclic collector off: reference counting frees what they drop
# (a simulation leaves ~200 objects in cycles), and the collector only re-scanned what numpy, pydantic
# and the simulator built at start-up (~5 % of a run).
BOUNDED = frozenset({"run", "compare", "explain", "plot", "validate"})


def _module(name: str):  # noqa: ANN202 - a subcommand module
    return import_module(f"simulator.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simulator", description="Simulate LLM pretraining on a GPU cluster.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        _module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `simulator` alone: the help, not a usage error
        parser.print_help()
        return 0
    if argv is None and args.command in BOUNDED:  # the process's own command line: this is the process
        gc.disable()
    try:
        return _module(args.command).run(args)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
