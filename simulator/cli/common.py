"""What the subcommands share: the --json / --out / --set options."""

import argparse
from pathlib import Path


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
