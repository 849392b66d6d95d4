"""`simulator compare`: several scenarios side by side."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.cli.common import add_outputs, check, out_dir_problems, print_then_fail, shown, write_failure


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="run several scenarios and compare them side by side")
    p.add_argument("scenarios", nargs="+", type=Path, help="scenario YAML files")
    add_outputs(p, "print the list of results as one JSON array", "write compare.md, results.json and compare.png here")


def run(args: argparse.Namespace) -> int:
    from simulator.compare.table import comparison, simulate_all

    check(out_dir_problems(args.out))
    results = simulate_all(args.scenarios, args.overrides)
    failed = _write_files(results, args.out) if args.out is not None else []
    return print_then_fail(shown(args, results, comparison(results).text()), failed)


def _write_files(results: list[dict[str, Any]], out: Path) -> list[str]:
    """compare.md, results.json and the plots; the problem line if the disk refuses them."""
    from analysis.compare_plot import plot_comparison, plot_scaling
    from simulator.compare.table import comparison

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(comparison(results).markdown() + "\n")
        (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        scaling = plot_scaling(results, out / "compare_scaling.png")  # None: one cluster size only
        written = [plot_comparison(results, out / "compare.png"), scaling]
    except OSError as exc:
        return [write_failure("--out", out, exc)]
    names = ", ".join(["compare.md", "results.json", *(p.name for p in written if p is not None)])
    print(f"wrote {names} in {out}", file=sys.stderr)
    return []
