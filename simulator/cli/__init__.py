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
from types import ModuleType
from typing import NoReturn

from simulator import __version__
from simulator.cli.common import EXIT_BROKEN_PIPE, interrupt_status, silence_stdout, terminate_as_interrupt
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


def _module(name: str) -> ModuleType:  # a subcommand module of this package
    return import_module(f"simulator.cli.{name}")


class _Parser(argparse.ArgumentParser):
    """argparse's own usage errors (exit 2), with what the user typed escaped like our error lines."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `command`, that subcommand's options only (the others are bare
    names), so that `simulator run` does not import what `search` needs to describe its options."""
    parser = _Parser(prog="simulator", description="Simulate LLM pretraining on a GPU cluster.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subparsers are _Parser too
    for name in SUBCOMMANDS:
        if command in (None, name):
            _module(name).add_parser(sub)
        else:
            sub.add_parser(name)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand the arguments name, when they start with one (else the full parser is built)."""
    return argv[0] if argv and argv[0] in SUBCOMMANDS else None


def printable(text: str) -> str:
    """`text` with control characters escaped (\\x1b, \\n): a file name or value echoed in an error
    line must not move the cursor, recolour or clear the user's terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done; 2 invalid input or an output that could not be written, stdout included (one
    `error:` line per problem); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); 141 stdout closed early (a pipe)."""
    parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if args.command is None:  # `simulator` alone: the help, not a usage error
        parser.print_help()
        return 0
    if argv is None and args.command in BOUNDED:  # the process's own command line: this is the process
        gc.disable()
    try:
        with terminate_as_interrupt():
            code = _module(args.command).run(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {printable(line)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Terminated
        print("interrupted", file=sys.stderr)
        return interrupt_status(exc)
    except BrokenPipeError:  # the reader went away (`| head -1`): nothing left to say, and nobody to say it to
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # stdout itself failed (`> /dev/full`); files the commands write report their own
        silence_stdout()
        print(f"error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return 2
