"""Speed of this checkout against a reference commit, side by side, and byte-identity of their JSON.

The speed issue's targets, measured in one run (this machine's speed drifts, so only a comparison
made at the same time means anything): `--help` and a tiny scenario's run start >= 3x faster; one
step of GPT-3 175B on 1024 A100 and of Llama 3 405B on 16,384 H100 (whole process) >= 2x faster;
with --search, the GPT-3 1024 search with 2 workers >= 2x faster.

A git worktree of the reference commit is created in the temp folder (`git worktree add --detach`;
an existing one at that commit is reused) and removed at the end unless --keep or reused. Each case
runs the reference and this checkout alternately, each time in a fresh process
(`python -m simulator ...` with PYTHONPATH and the working folder on that tree), and the table
gives the median wall time of each. Python's bytecode cache is warmed first and kept in a temp
folder per tree, as an installed package's is (so PYTHONDONTWRITEBYTECODE in the caller's
environment does not make every run recompile the package); --cold keeps the caller's setting.

--check-json runs `simulator run --json` (event engine, and with `--set simulation.engine=analytical`)
on every file in scenarios/ in both trees and reports any byte difference.

Usage:
    python tests/benchmarks/bench_against.py [--ref 42a16ff] [--repeat 3] [--search] [--search-repeat 1]
        [--check-json] [--only-check] [--cold] [--keep]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = "scenarios/gpt3-125m-8xa100.yaml"
GPT3 = "scenarios/gpt3-175b-1024xa100.yaml"
LLAMA = "scenarios/llama3-405b-16384xh100.yaml"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # after `python -m simulator`; scenario paths relative to each tree
    target: float  # speed-up the issue asks for


CASES = [
    Case("--help", ("--help",), 3.0),
    Case("run tiny (gpt3-125m-8xa100)", ("run", TINY), 3.0),
    Case("run --json GPT-3 175B 1024 A100", ("run", GPT3, "--json"), 2.0),
    Case("run --json Llama 3 405B 16k H100", ("run", LLAMA, "--json"), 2.0),
]
SEARCH_ARGS = ("search", GPT3, "--workers", "2", "--no-store", "--json", "--top", "0")
SEARCH = Case("search GPT-3 1024 --workers 2", SEARCH_ARGS, 2.0)


@dataclass(frozen=True)
class Tree:
    label: str
    path: Path
    env: dict[str, str]

    def run(self, args: tuple[str, ...]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "simulator", *args], cwd=self.path, env=self.env, capture_output=True, check=False
        )

    def time_s(self, args: tuple[str, ...]) -> float:
        start = time.perf_counter()
        out = self.run(args)
        elapsed = time.perf_counter() - start
        if out.returncode != 0:
            raise SystemExit(f"{self.label}: simulator {' '.join(args)} failed:\n{out.stderr.decode()}")
        return elapsed


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def reference_worktree(ref: str) -> tuple[Path, bool]:
    """(path of a worktree at `ref`, whether this run created it)."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = Path(tempfile.gettempdir()) / f"bench-against-{sha[:12]}"
    if path.exists():
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        if head.strip() == sha:
            return path, False
        raise SystemExit(f"{path} exists but is not a worktree at {sha}; remove it or pass another --ref")
    git("worktree", "add", "--detach", str(path), sha)
    return path, True


def tree_env(path: Path, cache: Path | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(path))
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def measure(case: Case, trees: list[Tree], repeat: int) -> list[list[float]]:
    """Wall seconds per tree, the trees alternating run by run."""
    times: list[list[float]] = [[] for _ in trees]
    for _ in range(repeat):
        for i, tree in enumerate(trees):
            times[i].append(tree.time_s(case.args))
    return times


def print_table(rows: list[tuple[Case, list[list[float]]]]) -> None:
    print(f"{'case':36s} {'baseline s':>10s} {'current s':>10s} {'speed-up':>8s} {'target':>7s}  met?")
    for case, (ref_s, cur_s) in rows:
        base, cur = statistics.median(ref_s), statistics.median(cur_s)
        ratio = base / cur
        met = "yes" if ratio >= case.target else "no"
        print(f"{case.name:36s} {base:10.3f} {cur:10.3f} {ratio:7.2f}x {case.target:6.1f}x  {met}")


def check_json(trees: list[Tree]) -> int:
    """Byte-compare `run --json` of both engines on every bundled scenario; returns the differences."""
    differences = 0
    for scenario in sorted((ROOT / "scenarios").glob("*.yaml")):
        rel = str(scenario.relative_to(ROOT))
        for extra in ((), ("--set", "simulation.engine=analytical")):
            args = ("run", rel, "--json", *extra)
            outs = [tree.run(args) for tree in trees]
            same = all(o.stdout == outs[0].stdout and o.returncode == outs[0].returncode for o in outs)
            differences += not same
            engine = "analytical" if extra else "event"
            print(f"{'same' if same else 'DIFFERENT':9s} {scenario.name} ({engine})")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="42a16ff", help="reference commit (default 42a16ff)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tree and case (default 3)")
    parser.add_argument("--search", action="store_true", help="also time the GPT-3 1024 search (minutes)")
    parser.add_argument("--search-repeat", type=int, default=1, help="runs per tree of the search (default 1)")
    parser.add_argument("--check-json", action="store_true", help="byte-compare run --json on every scenario")
    parser.add_argument("--only-check", action="store_true", help="--check-json without the timings")
    parser.add_argument("--cold", action="store_true", help="keep the caller's bytecode cache settings")
    parser.add_argument("--keep", action="store_true", help="keep the reference worktree")
    args = parser.parse_args()
    ref_path, created = reference_worktree(args.ref)
    caches = Path(tempfile.mkdtemp(prefix="bench-against-pycache-"))
    try:
        trees = [
            Tree("baseline", ref_path, tree_env(ref_path, None if args.cold else caches / "baseline")),
            Tree("current", ROOT, tree_env(ROOT, None if args.cold else caches / "current")),
        ]
        print(f"baseline: {args.ref} at {ref_path}\ncurrent:  {ROOT} ({git('rev-parse', '--short', 'HEAD')})")
        differences = 0
        if args.check_json or args.only_check:
            differences = check_json(trees)
            print(f"JSON: {differences} difference(s)\n")
        if not args.only_check:
            for tree in trees:  # warm the bytecode cache (and the OS file cache) of both trees
                tree.time_s(CASES[1].args)
            rows = [(case, measure(case, trees, args.repeat)) for case in CASES]
            if args.search:
                rows.append((SEARCH, measure(SEARCH, trees, args.search_repeat)))
            print(f"median wall time of {args.repeat} alternating runs per tree (search: {args.search_repeat})")
            print_table(rows)
        return 1 if differences else 0
    finally:
        shutil.rmtree(caches, ignore_errors=True)
        if created and not args.keep:
            git("worktree", "remove", "--force", str(ref_path))


if __name__ == "__main__":
    sys.exit(main())
