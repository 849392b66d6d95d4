"""What the subcommands share: the --json / --out / --set / --progress options, the checks of output
paths made before any work, the wording of a write that failed after it, and signal handling.

Only the standard library (and the light error type) is imported here: every subcommand module imports
this one at load time,
and `simulator --help` must stay fast."""

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from simulator.scenario.errors import ConfigError

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a program killed by a closed pipe


def add_outputs(p: argparse.ArgumentParser, json_help: str, out_help: str) -> None:
    """The options every simulating subcommand shares: --json, --out, --set."""
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--out", type=Path, help=out_help)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override one scenario key (repeatable; applies to every scenario given)",
    )


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """--progress / --no-progress, else a bar only where a person watches (stderr is a terminal)."""
    return sys.stderr.isatty() if args.progress is None else args.progress


def overrides_note(overrides: list[str]) -> str | None:
    """A line above a human report saying it is not the file as written: the names in it are the
    scenario files' own, which --set does not change (`--set cluster.num_gpus=2048` on a "...-4096xh100")."""
    if not overrides:
        return None
    return "with " + " ".join(f"--set {o}" for o in overrides) + " (scenario names are the files' own)"


def shown(args: argparse.Namespace, data: Any, report: str) -> str:
    """What a command prints: `data` as one JSON value with --json (no NaN or infinity, which JSON does
    not have), else the human report under the note about --set overrides."""
    if args.json:
        return json.dumps(data, indent=2, allow_nan=False)
    note = overrides_note(args.overrides)
    return f"{note}\n{report}" if note else report


def print_then_fail(text: str, failed: list[str]) -> int:
    """Print a finished result, then report the outputs that could not be written (exit 2): a result is
    printed before any such error, so a full disk never loses it."""
    print(text)
    if failed:
        raise ConfigError(failed)
    return 0


def check(problems: list[str]) -> None:
    """Stop before any work when an option or output path is unusable (one error line per problem)."""
    if problems:
        raise ConfigError(problems)


# --- output paths, checked before the work so a long run never ends in an unwritable folder ---


def _nearest_existing(path: Path) -> Path:
    """`path` or the closest of its parents that exists (a folder to be created goes there)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _cannot_create(path: Path) -> str | None:
    """Why `path` (a file or folder that does not exist yet) cannot be created, or None: its closest
    existing parent must be a writable folder."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        return f"{base} is not a folder"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"{base} is not writable"
    return None


def out_dir_problems(path: Path | None, option: str = "--out") -> list[str]:
    """DIR is a writable folder, or is created now: before the work, so that a folder the system refuses
    (permissions, a read-only or virtual file system such as /proc) is found before a long run, not after."""
    if path is None:
        return []
    if path.exists():
        if not path.is_dir():
            return [f"{option} {path}: not a folder (a file of that name exists)"]
        if not os.access(path, os.W_OK | os.X_OK):
            return [f"{option} {path}: folder not writable"]
        return []
    why = _cannot_create(path)
    if why is None:
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            why = exc.strerror or str(exc)
    return [f"{option} {path}: cannot create the folder: {why}"] if why else []


def out_file_problems(path: Path | None, option: str) -> list[str]:
    """FILE can be written: its folder exists and is writable, and it is not a folder itself."""
    if path is None:
        return []
    if path.is_dir():
        return [f"{option} {path}: is a folder (name a file)"]
    if not path.parent.is_dir():
        return [f"{option} {path}: no such folder {path.parent}"]
    if path.exists() and not os.access(path, os.W_OK):
        return [f"{option} {path}: not writable"]
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        return [f"{option} {path}: folder {path.parent} is not writable"]
    return []


def store_problems(path: Path, option: str) -> list[str]:
    """A result store is an SQLite database that can be written, or a file that can be created; its
    folder must be writable too (WAL mode keeps PATH-wal and PATH-shm beside it)."""
    if path.is_dir():
        return [f"{option} {path}: is a folder (name the store's .sqlite file)"]
    if not path.exists():
        why = _cannot_create(path)
        return [f"{option} {path}: cannot create the store: {why}"] if why else []
    if not path.is_file():
        return [f"{option} {path}: not a regular file"]
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        return [f"{option} {path}: cannot read ({exc.strerror or exc})"]
    if head and head != SQLITE_MAGIC:  # an empty file is a new database to SQLite
        return [f"{option} {path}: not an SQLite database (name a new file to create a store)"]
    if not os.access(path, os.R_OK | os.W_OK):
        return [f"{option} {path}: not writable"]
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return [f"{option} {path}: folder {path.parent} is not writable (SQLite writes {path.name}-wal there)"]
    return []


def write_failure(option: str, target: Path, exc: OSError) -> str:
    """One line for a write that failed after the work: the option, the file and the system's reason.
    `exc.filename` is None when the failure comes at flush or close (a full disk): name `target` then."""
    written = exc.filename if exc.filename not in (None, str(target)) else None
    what = f" {written}" if written else ""
    return f"{option} {target}: cannot write{what}: {exc.strerror or exc}"


# --- signals ---


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C's KeyboardInterrupt, so the same cleanup
    runs (worker processes terminated, the store closed) and the exit status tells them apart."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated while the block runs (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_status(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def silence_stdout() -> None:
    """After a closed pipe (`simulator run X | head -1`): point stdout at /dev/null so the interpreter's
    final flush does not raise again (the recipe of Python's `signal` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured in tests)
        pass
