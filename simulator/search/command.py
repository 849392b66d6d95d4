"""`simulator search` (contract.md section 4): options, the report and the files it writes."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.compare.table import cell
from simulator.search.evaluate import OBJECTIVES
from simulator.search.space import KNOBS

STEP_COLUMNS = (
    ("step s", "step.time_s", "{:.3f}"),
    ("tokens/s", "step.tokens_per_s", "{:,.0f}"),
    ("MFU %", "step.mfu", "{:.1%}"),
    ("GB/GPU", "memory.peak_bytes", "{:.1f}"),
)
RUN_COLUMNS = (
    ("days", "run.days", "{:.1f}"),
    ("MWh", "run.energy_mwh", "{:,.0f}"),
    ("cost $", "run.cost_usd", "{:,.0f}"),
)
# without training.tokens the objectives are per step
PER_STEP_COLUMNS = (("$/step", "objectives.cost", "{:.3g}"), ("kJ/step", "objectives.energy", "{:,.0f}"))


def add_search_parser(sub: Any, outputs: Callable[..., None]) -> None:
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
    outputs(p, "print exactly one JSON object on stdout", "write search.json, search.md, the store and plots here")


def run_search(args: argparse.Namespace) -> int:
    from simulator.scenario.errors import ConfigError
    from simulator.search.driver import search
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
        for path in write_search(outcome.as_json(), args.out):
            print(f"wrote {path}", file=sys.stderr)
    data = outcome.as_json(args.top)
    print(json.dumps(data, indent=2, allow_nan=False) if args.json else report(data))
    return 0


def parse_sweep(items: list[str]) -> list[tuple[str, list[Any]]]:
    """`cluster.num_gpus=256,512` -> [("cluster.num_gpus", [256, 512])]; values parsed as YAML."""
    import yaml

    from simulator.scenario.errors import ConfigError

    problems, out = [], []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or not key or not values:
            problems.append(f"--sweep {item}: expected KEY.PATH=V1,V2,...")
        elif key.startswith("parallelism.") or key == "training.micro_batch":
            problems.append(f"--sweep {item}: the search chooses {key} itself (bound it with --fix/--max/--min)")
        elif any(key == k for k, _ in out):
            problems.append(f"--sweep {item}: {key} is swept twice")
        else:
            out.append((key, [yaml.safe_load(v) for v in values]))
    if problems:
        raise ConfigError(problems)
    return out


def _rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    per_run = all(r.get("run") for r in data["results"])
    columns = STEP_COLUMNS + (RUN_COLUMNS if per_run else PER_STEP_COLUMNS)
    swept = any("sweep" in r for r in data["results"])
    head = ["#", *(["sweep"] if swept else []), "plan", *(h for h, _, _ in columns), "Pareto"]
    pareto = set(data["pareto"])
    rows = [
        [
            str(i + 1),
            *([_point(r.get("sweep", {}))] if swept else []),
            r["label"] + (" (estimate)" if r["step"].get("method") == "analytical" and data.get("estimated") else ""),
            *(cell(r, k, f) for _, k, f in columns),
            "*" if i in pareto else "",
        ]
        for i, r in enumerate(data["results"])
    ]
    return head, rows


def _point(values: dict[str, Any]) -> str:
    """'num_gpus=512' for {'cluster.num_gpus': 512}."""
    return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items())


def _title(data: dict[str, Any]) -> str:
    return (
        f"{data['candidates_evaluated']} candidate plans, {data['feasible']} fit in memory; "
        f"best {len(data['results'])} by {data['objective']} (* = on the time/cost/energy Pareto front)"
    )


def report(data: dict[str, Any]) -> str:
    """The ranked plans as an aligned text table, with the counts above it."""
    head, rows = _rows(data)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    text_columns = {i for i, h in enumerate(head) if h in ("plan", "sweep", "Pareto")}

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    lines = [_title(data), "", line(head), "  ".join("-" * w for w in widths), *map(line, rows)]
    if data.get("leanest"):
        lean = data["leanest"]
        lines += [
            "",
            f"no plan fits: the leanest, {lean['label']}, needs {lean['peak_bytes'] / 1e9:.1f} GB per GPU "
            f"of {lean['capacity_bytes'] / 1e9:.1f} GB",
        ]
    if data.get("sweep"):
        lines += ["", "best plan of each sweep point:"]
        for point in data["sweep"]:
            best = point["best"]
            what = (
                "no plan fits" if best is None else f"#{point['rank']} {best['label']}, {best['step']['time_s']:.3f} s"
            )
            lines.append(f"  {_point(point['values'])}: {point['feasible']} plans fit; {what}")
    return "\n".join(lines)


def markdown(data: dict[str, Any]) -> str:
    head, rows = _rows(data)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i == 1 else "---:" for i in range(len(head))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_search(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """search.json (every feasible plan, best first), search.md and the search plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "search.json", out_dir / "search.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    title = f"# Search: {data['results'][0]['name'] if data['results'] else ''}\n\n"
    paths[1].write_text(title + _title(data) + "\n\n" + markdown(data) + "\n")
    from analysis.search_plot import plot_search  # matplotlib lives in analysis/ only

    paths.extend(plot_search(data, out_dir))
    return paths
