"""`simulator validate`: run validation files, print the summary, write the tables."""

import argparse
import csv
import json
import sys
from dataclasses import asdict

from simulator.validation.cases import Case, default_files, load_cases
from simulator.validation.ranking import rank_agreement, ranking_table
from simulator.validation.runner import Row, markdown_table, run_case, summarise, summary_table


def run_validation(args: argparse.Namespace) -> int:
    rows: list[Row] = []
    cases: list[Case] = []
    for path in args.files or default_files():
        for case in load_cases(path):
            cases.append(case)
            rows.extend(run_case(case))
    summaries = summarise(rows)
    ranking = rank_agreement(cases, rows)
    if args.markdown:
        tables = [summary_table(summaries), ranking_table(ranking), markdown_table(rows)]
        args.markdown.write_text("\n\n".join(tables) + "\n")
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["case", "group", "metric", "published", "predicted", "error_pct", "note"])
            for r in rows:
                w.writerow([r.case, r.group, r.metric, r.published, r.predicted, r.error_pct, r.note])
    if args.json:
        out = {
            "rows": [asdict(r) | {"error_pct": r.error_pct} for r in rows],
            "summary": [asdict(s) for s in summaries],
            "ranking": [asdict(s) for s in ranking],
        }
        print(json.dumps(out, indent=2))
    else:
        print(summary_table(summaries))
        print("\nplans of one study (same model, GPUs and batch) in the published order:\n")
        print(ranking_table(ranking))
        failed = [r for r in rows if r.predicted is None]
        for r in failed:
            print(f"not simulated: {r.case}: {r.note}", file=sys.stderr)
    return 0
