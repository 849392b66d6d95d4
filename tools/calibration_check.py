"""Quick accuracy check while calibrating catalogue constants: MAPE per validation group, with the
large vTrain single-node file sampled (every Nth case). `simulator validate` is the full run."""

import sys
from collections import defaultdict

from simulator.validation.cases import default_files, load_cases
from simulator.validation.runner import simulate_case, summarise, summary_table


def main(stride: int = 10) -> None:
    rows = []
    for path in default_files():
        step = stride if path.name == "ground_truth_single.csv" else 1
        for case in load_cases(path)[::step]:
            rows.extend(simulate_case(case))
    print(summary_table(summarise(rows)).markdown())
    signed = defaultdict(list)
    for r in rows:
        if r.error_pct is not None and r.metric == "iteration_time_s":
            signed[r.group].append(r.error_pct)
    for g, v in signed.items():
        print(f"{g:24s} mean signed error {sum(v) / len(v):+6.1f} %")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
