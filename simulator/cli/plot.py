"""`simulator plot RESULT.json`: regenerate the plots of a run, a search or a compare from files alone."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.cli.common import out_dir_problems
from simulator.scenario.errors import ConfigError

TRACE_NAMES = ("trace.json.gz", "trace.json")  # what `run --out` writes next to result.json
STALE_TOLERANCE = 1e-6  # relative: the trace's last compute event ends at the step time (float round-off)
NUMBER = (int, float)
RUN_KEYS = {"name": str, "feasible": bool, "step": dict, "memory": dict}
STEP_KEYS = {"time_s": NUMBER, "tokens_per_s": NUMBER, "mfu": NUMBER, "breakdown_s": dict}
MEMORY_KEYS = {"peak_bytes": NUMBER, "capacity_bytes": NUMBER, "per_gpu_bytes": dict}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="regenerate the plots of a result.json (run), a search or a compare JSON")
    p.add_argument("result", type=Path, help="result JSON written by run --out, search --out or compare --out")
    p.add_argument("--out", type=Path, help="write the PNGs here (default: next to the JSON)")


def run(args: argparse.Namespace) -> int:
    """Read the JSON, draw the plots of its shape next to it (or in --out), print `wrote PATH` lines."""
    path: Path = args.result
    problems = out_dir_problems(args.out)
    if problems:
        raise ConfigError(problems)
    data = _read_json(path)
    out_dir: Path = args.out if args.out is not None else path.parent
    plotter = _dispatch(path, data)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = plotter(path, data, out_dir)
    except OSError as exc:
        raise ConfigError([f"{out_dir}: cannot write the plots there ({_first_line(exc)})"]) from None
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise ConfigError([f"{path}: not a readable JSON file ({_first_line(exc)})"]) from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


Plotter = Callable[[Path, Any, Path], list[Path]]


def _dispatch(path: Path, data: Any) -> Plotter:
    """Which plots a JSON gets, by its shape; a shape it does not know is an input error."""
    if isinstance(data, dict) and "step" in data and "memory" in data:
        _check_run(path, data, "")
        return _plot_run
    if isinstance(data, dict) and "candidates_evaluated" in data and "results" in data:
        _check_search(path, data)
        return _plot_search
    if isinstance(data, list) and data and all(isinstance(r, dict) and "step" in r and "memory" in r for r in data):
        for i, r in enumerate(data):
            _check_run(path, r, f"[{i}].")
        return _plot_compare
    raise ConfigError(
        [
            f"{path}: not a run result (object with step and memory), a search result (object with "
            "candidates_evaluated and results) or a compare list (array of run results)"
        ]
    )


def _check_keys(path: Path, d: Any, keys: dict[str, Any], where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError([f"{path}: {where.rstrip('.')}: must be an object"])
    for key, kind in keys.items():
        value = d.get(key)
        if not isinstance(value, kind) or (kind is NUMBER and isinstance(value, bool)):
            raise ConfigError([f"{path}: {where}{key}: missing or of the wrong type"])


def _check_run(path: Path, r: Any, where: str) -> None:
    """The keys the step plots read (contract section 3); infeasible results still have them."""
    _check_keys(path, r, RUN_KEYS, where)
    _check_keys(path, r["step"], STEP_KEYS, f"{where}step.")
    _check_keys(path, r["memory"], MEMORY_KEYS, f"{where}memory.")


def _check_search(path: Path, data: dict[str, Any]) -> None:
    results = data["results"]
    if not isinstance(results, list):
        raise ConfigError([f"{path}: results: must be a list of run results"])
    for i, r in enumerate(results):
        _check_run(path, r, f"results[{i}].")
    pareto = data.get("pareto")
    if pareto is not None and not (
        isinstance(pareto, list) and all(isinstance(i, int) and 0 <= i < len(results) for i in pareto)
    ):
        raise ConfigError([f"{path}: pareto: must be a list of indices into results"])


def _plot_run(path: Path, result: dict[str, Any], out_dir: Path) -> list[Path]:
    from analysis.plots import write_step_plots

    trace = _trace_next_to(path, result["step"]["time_s"])
    return write_step_plots(result, trace, out_dir)


def _trace_next_to(path: Path, time_s: float) -> dict[str, Any] | None:
    """The trace `run --out` wrote beside the result, if any and if it is the trace of this step."""
    found = [path.parent / name for name in TRACE_NAMES if (path.parent / name).is_file()]
    if not found:
        print(f"note: no {TRACE_NAMES[0]} next to {path}: timeline.png skipped", file=sys.stderr)
        return None
    from simulator.results.trace import read_trace, trace_end_s

    try:
        trace = read_trace(found[0])
        end_s = trace_end_s(trace)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError([f"{found[0]}: not a readable Chrome trace ({_first_line(exc)})"]) from None
    # a trace left from an earlier run in the same folder: its compute ends elsewhere than this step
    if abs(end_s - time_s) > STALE_TOLERANCE * time_s:
        print(
            f"note: {found[0]} ends at {end_s:.6g} s, not at this step's {time_s:.6g} s (another run?): "
            "timeline.png skipped",
            file=sys.stderr,
        )
        return None
    return trace


def _plot_search(path: Path, search: dict[str, Any], out_dir: Path) -> list[Path]:
    from analysis.search_plot import plot_search

    return plot_search(search, out_dir)


def _plot_compare(path: Path, results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    from analysis.compare_plot import plot_comparison, plot_scaling

    paths = [plot_comparison(results, out_dir / "compare.png")]
    scaling = plot_scaling(results, out_dir / "compare_scaling.png")
    if scaling is not None:
        paths.append(scaling)
    return paths
