"""`simulator validate`: run validation files, print the summary, write the tables."""

import argparse
import csv
import json
import sys
from dataclasses import asdict

from simulator.validation.cases import default_files, load_cases
from simulator.validation.runner import Row, markdown_table, run_case, summarise, summary_table


def run_validation(args: argparse.Namespace) -> int:
    rows: list[Row] = []
    for path in args.files or default_files():
        for case in load_cases(path):
            rows.extend(run_case(case))
    summaries = summarise(rows)
    if args.markdown:
        args.markdown.write_text(summary_table(summaries) + "\n\n" + markdown_table(rows) + "\n")
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
        }
        print(json.dumps(out, indent=2))
    else:
        print(summary_table(summaries))
        failed = [r for r in rows if r.predicted is None]
        for r in failed:
            print(f"not simulated: {r.case}: {r.note}", file=sys.stderr)
    return 0
