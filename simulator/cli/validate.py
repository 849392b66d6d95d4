"""`simulator validate`: run validation files, print the summary, write the tables."""

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulator.cli.common import add_progress, check, out_file_problems, print_then_fail, show_progress, write_failure
from simulator.scenario.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("validate", help="compare predictions with published training runs")
    p.add_argument(
        "files", nargs="*", type=Path, help="published-cases YAML, vTrain or LLM Foundry CSV (default: bundled)"
    )
    p.add_argument("--markdown", type=Path, help="write the per-case table as Markdown here")
    p.add_argument("--csv", type=Path, help="write the per-case table as CSV here")
    p.add_argument("--plot", type=Path, help="write predicted vs published and the error per group as a PNG here")
    p.add_argument("--json", action="store_true", help="print rows and summaries as one JSON object")
    add_progress(p)


def run(args: argparse.Namespace) -> int:
    from simulator.search.progress import Progress
    from simulator.validation.ranking import rank_agreement
    from simulator.validation.runner import Row, simulate_case, summarise

    check([p for flag, path in _outputs(args) for p in out_file_problems(path, flag)])
    resolved = _resolved_cases(args.files)
    bar = Progress(len(resolved), "validating", show_progress(args))
    rows: list[Row] = []
    try:
        for case, setup in resolved:
            rows += simulate_case(case, setup)
            bar.advance()
    finally:
        bar.close()
    summaries = summarise(rows)
    ranking = rank_agreement([case for case, _ in resolved], rows)
    failed = _write_files(args, rows, summaries, ranking)
    for r in rows:
        if r.predicted is None:
            print(f"not simulated: {r.case}: {r.note}", file=sys.stderr)
    return print_then_fail(_report(args, rows, summaries, ranking), failed)


def _outputs(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    return [("--markdown", args.markdown), ("--csv", args.csv), ("--plot", args.plot)]


def _resolved_cases(files: list[Path]) -> list[tuple[Any, Any]]:
    """Every file read, then every case's scenario resolved, before any case runs: a broken file or
    case is one problem line each (all of them at once), naming the file and the case."""
    from simulator.validation.cases import Case, default_files, load_cases
    from simulator.validation.runner import resolve_cases

    loaded: list[tuple[Path, list[Case]]] = []
    problems: list[str] = []
    for path in files or default_files():
        try:
            loaded.append((path, load_cases(path)))
        except ConfigError as exc:
            problems.extend(exc.problems)
    check(problems)
    resolved = []
    for path, cases in loaded:
        ok, bad = resolve_cases(path, cases)
        resolved += ok
        problems += bad
    check(problems)
    return resolved


def _write_files(args: argparse.Namespace, rows: list[Any], summaries: list[Any], ranking: list[Any]) -> list[str]:
    """Each file asked for, independently: one that cannot be written is a problem line, not the end."""
    from simulator.validation.ranking import ranking_table
    from simulator.validation.runner import case_table, summary_table

    def markdown(path: Path) -> None:
        tables = [summary_table(summaries).markdown(), ranking_table(ranking).markdown(), case_table(rows).markdown()]
        path.write_text("\n\n".join(tables) + "\n")

    def table(path: Path) -> None:
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["case", "group", "metric", "published", "predicted", "error_pct", "note"])
            for r in rows:
                w.writerow([r.case, r.group, r.metric, r.published, r.predicted, r.error_pct, r.note])

    def plot(path: Path) -> None:
        from analysis.validation_plot import plot_validation

        plot_validation(rows, path)
        print(f"wrote {path}", file=sys.stderr)

    failed = []
    for (flag, path), write in zip(_outputs(args), (markdown, table, plot), strict=True):
        if path is None:
            continue
        try:
            write(path)
        except OSError as exc:
            failed.append(write_failure(flag, path, exc))
    return failed


def _report(args: argparse.Namespace, rows: list[Any], summaries: list[Any], ranking: list[Any]) -> str:
    """The summary and ranking tables, or with --json the rows, summaries and ranking as one object."""
    from simulator.validation.ranking import ranking_table
    from simulator.validation.runner import summary_table

    if args.json:
        out = {
            "rows": [asdict(r) | {"error_pct": r.error_pct} for r in rows],
            "summary": [asdict(s) for s in summaries],
            "ranking": [asdict(s) for s in ranking],
        }
        return json.dumps(out, indent=2)
    heading = "plans of one study (same model, GPUs and batch) in the published order:"
    return f"{summary_table(summaries).markdown()}\n\n{heading}\n\n{ranking_table(ranking).markdown()}"
