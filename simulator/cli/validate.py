"""`simulator validate`: run validation files, print the summary, write the tables."""

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

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


def run(args: argparse.Namespace) -> int:
    from simulator.validation.cases import Case, default_files, load_cases
    from simulator.validation.ranking import rank_agreement, ranking_table
    from simulator.validation.runner import Row, case_table, simulate_case, summarise, summary_table

    for flag, out in (("--markdown", args.markdown), ("--csv", args.csv), ("--plot", args.plot)):
        if out is not None and not out.parent.is_dir():
            raise ConfigError([f"{flag} {out}: no such folder {out.parent}"])
    cases: list[Case] = []
    problems: list[str] = []
    for path in args.files or default_files():  # read every file before running any case
        try:
            cases.extend(load_cases(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    rows: list[Row] = [r for case in cases for r in simulate_case(case)]
    summaries = summarise(rows)
    ranking = rank_agreement(cases, rows)
    try:
        if args.markdown:
            tables = [
                summary_table(summaries).markdown(),
                ranking_table(ranking).markdown(),
                case_table(rows).markdown(),
            ]
            args.markdown.write_text("\n\n".join(tables) + "\n")
        if args.csv:
            with args.csv.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["case", "group", "metric", "published", "predicted", "error_pct", "note"])
                for r in rows:
                    w.writerow([r.case, r.group, r.metric, r.published, r.predicted, r.error_pct, r.note])
        if args.plot:
            from analysis.validation_plot import plot_validation

            plot_validation(rows, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
    except OSError as exc:
        raise ConfigError([f"{exc.filename}: cannot write: {exc.strerror}"]) from None
    if args.json:
        out = {
            "rows": [asdict(r) | {"error_pct": r.error_pct} for r in rows],
            "summary": [asdict(s) for s in summaries],
            "ranking": [asdict(s) for s in ranking],
        }
        print(json.dumps(out, indent=2))
    else:
        print(summary_table(summaries).markdown())
        print("\nplans of one study (same model, GPUs and batch) in the published order:\n")
        print(ranking_table(ranking).markdown())
        failed = [r for r in rows if r.predicted is None]
        for r in failed:
            print(f"not simulated: {r.case}: {r.note}", file=sys.stderr)
    return 0
