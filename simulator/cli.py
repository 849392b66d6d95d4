"""The `simulator` command (contract.md section 2)."""

import argparse
import sys
from pathlib import Path

from simulator.scenario.errors import ConfigError


def _outputs(p: argparse.ArgumentParser, json_help: str, out_help: str) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simulator", description="Simulate LLM pretraining on a GPU cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate one scenario")
    run.add_argument("scenario", help="scenario YAML file")
    _outputs(
        run,
        "print exactly one JSON object on stdout",
        "write result.json, the resolved scenario, the trace and plots here",
    )
    run.add_argument(
        "--trace-kernels",
        type=int,
        default=1,
        metavar="N",
        help="with --out: every kernel and TP collective of the first N micro-batches in the trace "
        "(default 1; 0: of every micro-batch, a much larger file)",
    )
    cmp_ = sub.add_parser("compare", help="run several scenarios and compare them side by side")
    cmp_.add_argument("scenarios", nargs="+", type=Path, help="scenario YAML files")
    _outputs(cmp_, "print the list of results as one JSON array", "write compare.md, results.json and compare.png here")
    exp = sub.add_parser("explain", help="which operations consume the time, the energy and the money")
    exp.add_argument("scenario", help="scenario YAML file")
    exp.add_argument("--no-variants", action="store_true", help="skip the what-if runs (flash, recompute, zero)")
    _outputs(exp, "print the report as one JSON object", "write explain.json and explain.png here")
    from simulator.search.command import add_search_parser

    add_search_parser(sub, _outputs)
    plot = sub.add_parser("plot", help="regenerate the plots of a result.json (run), a search or a compare JSON")
    plot.add_argument("result", type=Path, help="result JSON written by run --out, search --out or compare --out")
    plot.add_argument("--out", type=Path, help="write the PNGs here (default: next to the JSON)")
    val = sub.add_parser("validate", help="compare predictions with published training runs")
    val.add_argument(
        "files", nargs="*", type=Path, help="published-cases YAML, vTrain or LLM Foundry CSV (default: bundled)"
    )
    val.add_argument("--markdown", type=Path, help="write the per-case table as Markdown here")
    val.add_argument("--csv", type=Path, help="write the per-case table as CSV here")
    val.add_argument("--plot", type=Path, help="write predicted vs published and the error per group as a PNG here")
    val.add_argument("--json", action="store_true", help="print rows and summaries as one JSON object")
    return parser


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from simulator.compare.table import markdown, run_all, table

    results = run_all(args.scenarios, args.overrides)
    if args.out is not None:
        from analysis.compare_plot import plot_comparison, plot_scaling

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.md").write_text(markdown(results) + "\n")
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        scaling = plot_scaling(results, args.out / "compare_scaling.png")  # None: one cluster size only
        written = [plot_comparison(results, args.out / "compare.png"), scaling]
        names = ", ".join(["compare.md", "results.json", *(p.name for p in written if p is not None)])
        print(f"wrote {names} in {args.out}", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    import json

    from simulator.explain.report import explain, text
    from simulator.scenario import load_setup
    from simulator.simulate import simulate

    setup = load_setup(args.scenario, args.overrides)
    report = explain(setup, simulate(setup), with_variants=not args.no_variants)
    if args.out is not None:
        from analysis.explain_plot import plot_shares

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "explain.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_shares(report, args.out / "explain.png")
        print(f"wrote {args.out / 'explain.json'} and {args.out / 'explain.png'}", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else text(report))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from simulator.validation.command import run_validation

    return run_validation(args)


def cmd_search(args: argparse.Namespace) -> int:
    from simulator.search.command import run_search

    return run_search(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from simulator.results.replot import run_plot

    return run_plot(args)


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.results.report import human_report
    from simulator.results.writer import result_json, write_outputs
    from simulator.scenario import load_setup
    from simulator.simulate import simulate

    if args.trace_kernels < 0:
        raise ConfigError([f"--trace-kernels: must be 0 (all) or more, got {args.trace_kernels}"])
    setup = load_setup(args.scenario, args.overrides)
    result = simulate(setup)
    if args.out is not None:
        for path in write_outputs(result, setup, args.out, args.trace_kernels or None):
            print(f"wrote {path}", file=sys.stderr)
    print(result_json(result) if args.json else human_report(result))
    return 0


COMMANDS = {
    "run": cmd_run,
    "compare": cmd_compare,
    "explain": cmd_explain,
    "search": cmd_search,
    "plot": cmd_plot,
    "validate": cmd_validate,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
