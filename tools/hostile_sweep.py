"""A sweep of hostile inputs over the whole command line: broken files and YAML, out-of-range numbers,
bad `--set` paths, unwritable outputs and stores, signals and closed pipes, bad plot and validation
files, bad search options. Each case runs `python -m simulator ...` in a fresh process and is clean
when it ends in time with exit 0 (valid JSON on stdout with --json), 2 (every stderr line an
`error:` line or argparse's usage), or the documented interrupt codes (130 SIGINT, 143 SIGTERM), and
never prints a Python traceback.

Usage: python tools/hostile_sweep.py [--only SUBSTRING] [--timeout S] [--tree PATH] [-v]
(--tree runs the `simulator` of another checkout, e.g. a git worktree of an older commit.)
The fast cases also live in the test suite (tests/test_hostile_inputs.py, tests/test_cli_edges.py).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = str(ROOT / "scenarios" / "gpt3-125m-8xa100.yaml")
INTERRUPT_CODES = {130, 143}


@dataclass
class Case:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    signal_after_s: float | None = None  # send SIGINT (or `sig`) after this many seconds
    sig: int = signal.SIGINT
    pipe_head: bool = False  # read one line of stdout, then close the pipe
    expect: set[int] = field(default_factory=lambda: {0, 2})


@dataclass
class Outcome:
    case: Case
    code: int | None
    seconds: float
    problem: str | None


def write(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def scenario_text(extra: str = "", name: str = "hostile") -> str:
    return (
        f"name: {name}\nmodel: {{preset: gpt3-125m}}\ncluster: {{gpu: a100-sxm-80gb, num_gpus: 8}}\n"
        f"parallelism: {{tp: 1, pp: 1}}\ntraining: {{global_batch: 256, micro_batch: 8, tokens: 2.6e9}}\n{extra}"
    )


def file_cases(tmp: Path) -> list[Case]:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    deep = "a: " + "[" * 20000 + "]" * 20000 + "\n"
    fifo = tmp / "fifo.yaml"
    if not fifo.exists():
        os.mkfifo(fifo)
    files = {
        "missing": str(tmp / "nope.yaml"),
        "directory": str(tmp),
        "empty": write(tmp, "empty.yaml", ""),
        "binary png": write(tmp, "x.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
        "not utf-8": write(tmp, "latin.yaml", "name: caf\xe9\n".encode("latin-1")),
        "dev zero": "/dev/zero",
        "dev null": "/dev/null",
        "fifo": str(fifo),
        "invalid yaml": write(tmp, "bad.yaml", "name: [unclosed\n"),
        "list at top": write(tmp, "list.yaml", "- a\n- b\n"),
        "scalar at top": write(tmp, "scalar.yaml", "42\n"),
        "duplicate key": write(tmp, "dup.yaml", scenario_text() + "name: again\n"),
        "alias bomb": write(tmp, "bomb.yaml", bomb),
        "deep nesting": write(tmp, "deep.yaml", deep),
        "python tag": write(tmp, "tag.yaml", "name: !!python/object/apply:os.system ['echo hi']\n"),
        "self alias": write(tmp, "self.yaml", "a: &x [*x]\n"),
        "tab indent": write(tmp, "tab.yaml", "name: x\nmodel:\n\tpreset: gpt3-125m\n"),
        "huge name": write(tmp, "long.yaml", scenario_text(name="x" * 5_000_000)),
        "escape codes in name": write(tmp, "esc.yaml", scenario_text(name='"\\e[31mred\\e[0m"')),
        "unknown section": write(tmp, "unknown.yaml", scenario_text("bogus: {a: 1}\n")),
        "catalogue file dev zero": write(tmp, "catz.yaml", scenario_text("catalogue: {files: [/dev/zero]}\n")),
        "catalogue file missing": write(tmp, "catm.yaml", scenario_text("catalogue: {files: [nope.yaml]}\n")),
        "inline model named like a preset": write(
            tmp, "inl.yaml", scenario_text("catalogue: {models: {gpt3-125m: {layers: 4}}}\n")
        ),
        "inline gpu idle above tdp": write(
            tmp,
            "gpu.yaml",
            scenario_text().replace("a100-sxm-80gb", "mine")
            + "catalogue: {gpus: {mine: {peak_tflops: {bf16: 312}, hbm_GB: 80, hbm_GBps: 2039, tdp_W: 400, "
            "idle_W: 900, scale_up_GBps: 300, sm_count: 108, gemm_efficiency_max: 0.8, hbm_efficiency: 0.9, "
            "flash_attention_efficiency: 0.6, kernel_launch_us: 4}}}\n",
        ),
    }
    hf = {
        "missing": "nope.json",
        "dev zero": "/dev/zero",
        "fifo": str(fifo),
        "directory": str(tmp),
        "broken json": write(tmp, "broken.json", '{"num_hidden_layers": 4'),
        "json list": write(tmp, "list.json", "[1, 2]"),
        "json NaN": write(tmp, "nan.json", '{"num_hidden_layers": NaN}'),
        "deep json": write(tmp, "deep.json", "[" * 100_000 + "]" * 100_000),
        "huge json integer": write(tmp, "bigint.json", '{"num_hidden_layers": ' + "9" * 100_000 + "}"),
        "oversized json": write(tmp, "big.json", '{"pad": "' + "x" * (2 * 2**20) + '"}'),
        "lacking fields": write(tmp, "lacks.json", '{"hidden_size": 4096}'),
        "absurd experts": write(
            tmp,
            "absurd.json",
            '{"num_hidden_layers": 4096, "hidden_size": 64, "num_attention_heads": 1, "vocab_size": 10, '
            '"max_position_embeddings": 8, "num_experts": 1000000000000, "num_experts_per_tok": 2, '
            '"moe_intermediate_size": 8, "moe_layers": [' + ", ".join(str(i) for i in range(0, 100_000, 3)) + "]}",
        ),
    }
    for k, v in hf.items():
        files[f"hf_config {k}"] = write(
            tmp, f"hf-{k.replace(' ', '-')}.yaml", scenario_text().replace("{preset: gpt3-125m}", f"{{hf_config: {v}}}")
        )
    cases = [Case(f"file: {k}", ["run", v, "--json"]) for k, v in files.items()]
    cases += [Case(f"file (compare): {k}", ["compare", SMALL, v]) for k, v in list(files.items())[:8]]
    return cases


NUMERIC_KEYS = [
    "cluster.num_gpus",
    "cluster.gpus_per_node",
    "cluster.intra_node_GBps",
    "cluster.inter_node_Gbps",
    "cluster.nics_per_node",
    "cluster.oversubscription",
    "cluster.node_overhead_W",
    "parallelism.tp",
    "parallelism.pp",
    "parallelism.dp",
    "parallelism.cp",
    "parallelism.virtual_stages",
    "parallelism.zero",
    "parallelism.recompute_layers",
    "training.global_batch",
    "training.micro_batch",
    "training.tokens",
    "model.layers",
    "model.hidden",
    "model.heads",
    "model.vocab",
    "model.seq_len",
    "model.head_dim",
    "model.mtp_layers",
    "model.moe.experts",
    "model.moe.top_k",
    "model.moe.capacity_factor",
    "model.mla.kv_lora_rank",
    "cluster.scale_up_domain",
    "parallelism.ep",
    "parallelism.etp",
    "energy.pue",
    "energy.grid_kg_co2_per_kWh",
    "cost.usd_per_gpu_hour",
    "cost.usd_per_kWh",
    "reliability.gpu_failures_per_hour",
    "reliability.checkpoint_interval_s",
    "framework.host_time_per_op_us",
    "simulation.compute_jitter",
    "seed",
]
BAD_VALUES = ["-1", "0", "true", "abc", "1e308", "1e-300", ".nan", ".inf", "8.5", "1e30"]
ALWAYS_WRONG = {"-1", "true", "abc", "1e308", ".nan", ".inf", "1e30"}  # no key takes these: exit 2
INTEGER_KEYS = {
    k
    for k in NUMERIC_KEYS
    if k.rsplit(".", 1)[-1]
    in {
        "num_gpus",
        "gpus_per_node",
        "nics_per_node",
        "tp",
        "pp",
        "dp",
        "cp",
        "virtual_stages",
        "zero",
        "recompute_layers",
        "global_batch",
        "micro_batch",
        "layers",
        "hidden",
        "heads",
        "vocab",
        "seq_len",
        "seed",
        "head_dim",
        "mtp_layers",
        "experts",
        "top_k",
        "kv_lora_rank",
        "scale_up_domain",
        "ep",
        "etp",
    }
}


def number_cases() -> list[Case]:
    cases = []
    for key in NUMERIC_KEYS:
        for value in BAD_VALUES:
            wrong = value in ALWAYS_WRONG or (value == "8.5" and key in INTEGER_KEYS)
            args = ["run", SMALL, "--json", "--set", f"{key}={value}"]
            cases.append(Case(f"number: {key}={value}", args, expect={2} if wrong else {0, 2}))
    cases += [
        Case(
            "number: integral float for an int key",
            ["run", SMALL, "--json", "--set", "cluster.num_gpus=8e0"],
            expect={0},
        ),
        Case(
            "number: reliability on, failures 1000/h",
            [
                "run",
                SMALL,
                "--json",
                "--set",
                "reliability.enabled=true",
                "--set",
                "reliability.gpu_failures_per_hour=1000",
            ],
        ),
        Case(
            "number: plan that plainly does not fit",
            ["run", SMALL, "--json", "--set", "reliability.enabled=true", "--set", "model.hidden=12000000000"],
        ),
        Case(
            "number: explain with huge price",
            ["explain", SMALL, "--json", "--no-variants", "--set", "cost.usd_per_gpu_hour=1e308"],
        ),
        Case("number: seed -1 in search", ["search", SMALL, "--json", "--no-store", "--set", "seed=-1"]),
    ]
    return cases


def set_cases() -> list[Case]:
    sets = [
        "noequals",
        "=3",
        "model=3",
        "model.preset.x=1",
        "nosuch.key=1",
        "model.nosuch=1",
        "cluster.gpu=nosuch",
        "training.precision=fp4",
        "parallelism.schedule=zigzag",
        "name=",
        "model.preset=",
        "parallelism={tp: 2}",
        "cluster.topology=torus",
        "training=5",
        "model.hidden=[1, 2]",
        "a" * 10_000 + "=1",
        "model.preset=[" + "[" * 5000,
        "model.moe.experts=many",
        "model.moe.bogus=1",
        "model.mla.bogus=1",
        "model.moe=3",
        "model.moe.top_k=4",
        "model.hf_config=/dev/zero",
        "model.hf_config=3",
        "model.hf_config=",
        "parallelism.ep=3",
        "parallelism.moe_dispatcher=nccl",
        "parallelism.moe_overlap=maybe",
        "cluster.scale_up_domain=12",
        "cluster.gpu=gb200",
        "framework.stack=nosuch",
        "framework.stack=3",
        "framework.stack=",
        "framework.overlap_param_gather=maybe",
        "framework.fp8_param_gather=true",
        "framework.flash_attention_version=3",
        "framework.flash_attention_version=1.5",
    ]
    return [Case(f"--set {s[:40]}", ["run", SMALL, "--json", "--set", s]) for s in sets]


def output_cases(tmp: Path) -> list[Case]:
    readme = str(ROOT / "README.md")
    ro = tmp / "readonly"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    cases = []
    for target in (readme, "/dev/full", str(ro / "out"), "/proc/nope"):
        cases += [
            Case(f"--out {target} (run)", ["run", SMALL, "--out", target]),
            Case(f"--out {target} (compare)", ["compare", SMALL, SMALL, "--out", target]),
            Case(f"--out {target} (explain)", ["explain", SMALL, "--no-variants", "--out", target]),
            Case(f"--out {target} (search)", ["search", SMALL, "--no-store", "--fix", "zero=1", "--out", target]),
        ]
    cases += [
        Case("--store README.md", ["search", SMALL, "--store", readme, "--fix", "zero=1"]),
        Case("--store a directory", ["search", SMALL, "--store", str(tmp), "--fix", "zero=1"]),
        Case("--store /dev/full", ["search", SMALL, "--store", "/dev/full", "--fix", "zero=1"]),
        Case("--store with --no-store", ["search", SMALL, "--store", str(tmp / "s.sqlite"), "--no-store"]),
        Case(
            "unwritable HOME for the store",
            ["search", SMALL, "--fix", "zero=1"],
            env={"HOME": "/nonexistent", "XDG_CACHE_HOME": ""},
        ),
        Case("read-only cache dir", ["search", SMALL, "--fix", "zero=1"], env={"XDG_CACHE_HOME": str(ro)}),
        Case("--trace-kernels -1", ["run", SMALL, "--trace-kernels", "-1"]),
    ]
    return cases


def signal_cases(tmp: Path) -> list[Case]:
    gpt3 = str(ROOT / "scenarios" / "gpt3-175b-1024xa100.yaml")
    store = str(tmp / "sig.sqlite")
    return [
        Case(
            "SIGINT search --workers 2",
            ["search", gpt3, "--workers", "2", "--store", store],
            signal_after_s=6,
            expect=INTERRUPT_CODES | {0},
        ),
        Case(
            "SIGTERM search --workers 2",
            ["search", gpt3, "--workers", "2", "--store", store],
            signal_after_s=6,
            sig=signal.SIGTERM,
            expect=INTERRUPT_CODES | {0},
        ),
        Case(
            "SIGINT run",
            ["run", gpt3, "--set", "simulation.fidelity=full"],
            signal_after_s=1.5,
            expect=INTERRUPT_CODES | {0},
        ),
        Case("SIGINT explain", ["explain", gpt3], signal_after_s=3, expect=INTERRUPT_CODES | {0}),
        Case("SIGINT validate", ["validate"], signal_after_s=3, expect=INTERRUPT_CODES | {0}),
        Case("run | head -1", ["run", SMALL], pipe_head=True, expect={0, 141}),
        Case("run --json | head -1", ["run", SMALL, "--json"], pipe_head=True, expect={0, 141}),
    ]


def plot_cases(tmp: Path) -> list[Case]:
    files = {
        "missing": str(tmp / "none.json"),
        "directory": str(tmp),
        "png": write(tmp, "p.png", b"\x89PNG\r\n\x1a\n\x00\x01"),
        "not json": write(tmp, "n.json", "{not json"),
        "json scalar": write(tmp, "s.json", "3"),
        "empty list": write(tmp, "e.json", "[]"),
        "junk list": write(tmp, "j.json", "[1, 2]"),
        "run without memory": write(tmp, "r.json", json.dumps({"step": {}, "name": "x"})),
        "run with bad types": write(
            tmp, "t.json", json.dumps({"name": 1, "feasible": "yes", "step": {"time_s": "a"}, "memory": {}})
        ),
        "search with bad pareto": write(
            tmp, "sp.json", json.dumps({"candidates_evaluated": 1, "results": [], "pareto": [5]})
        ),
        "infinite number": write(tmp, "inf.json", '{"step": {"time_s": Infinity}, "memory": {}}'),
    }
    cases = [Case(f"plot: {k}", ["plot", v]) for k, v in files.items()]
    cases.append(Case("plot --out a file", ["plot", files["png"], "--out", str(ROOT / "README.md")]))
    return cases


def validate_cases(tmp: Path) -> list[Case]:
    case = {
        "id": "x_1",
        "scenario": json.loads(
            json.dumps(
                {
                    "name": "v",
                    "model": {"preset": "gpt3-125m"},
                    "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
                    "training": {"global_batch": 256, "micro_batch": 8},
                }
            )
        ),
        "published": {"iteration_time_s": 1.0},
    }
    good = write(tmp, "good.yaml", json.dumps([case]))
    files = {
        "png": write(tmp, "v.png", b"\x89PNG\r\n\x1a\n\xff\xfe"),
        "directory": str(tmp),
        "missing": str(tmp / "nope.yaml"),
        "bad yaml": write(tmp, "vb.yaml", "- id: [\n"),
        "not a list": write(tmp, "vn.yaml", "id: x\n"),
        "unknown metric": write(tmp, "vu.yaml", json.dumps([{**case, "published": {"throughput": 3.0}}])),
        "negative figure": write(tmp, "vneg.yaml", json.dumps([{**case, "published": {"iteration_time_s": -1}}])),
        "invalid scenario": write(tmp, "vi.yaml", json.dumps([{**case, "scenario": {"name": "v"}}])),
        "csv bad header": write(tmp, "vh.csv", "a,b\n1,2\n"),
        "csv bad row": write(
            tmp,
            "vr.csv",
            "# GPUs,global batch,micro batch,hidden size,attention heads,# layers,"
            "sequence length,tensor parallelism,data parallelism,pipeline parallelism,"
            "iteration time (ms)\n8,x,1,1,1,1,1,1,1,1,1\n",
        ),
        "binary csv": write(tmp, "vbin.csv", b"\xff\xfe\x00\x01"),
    }
    cases = [Case(f"validate: {k}", ["validate", v]) for k, v in files.items()]
    cases += [
        Case("validate --csv /dev/full", ["validate", good, "--csv", "/dev/full"]),
        Case("validate --markdown a dir", ["validate", good, "--markdown", str(tmp)]),
        Case("validate --plot in a missing dir", ["validate", good, "--plot", str(tmp / "no" / "p.png")]),
        Case("validate --json good", ["validate", good, "--json"]),
    ]
    return cases


def search_cases() -> list[Case]:
    options = [
        ["--fix", "zero=5"],
        ["--fix", "tp=abc"],
        ["--fix", "nosuch=1"],
        ["--fix", "tp"],
        ["--max", "pp=0"],
        ["--min", "micro_batch=1000"],
        ["--max", "schedule=1"],
        ["--top", "-1"],
        ["--workers", "0"],
        ["--refine", "0"],
        ["--sweep", "cluster.num_gpus"],
        ["--sweep", "parallelism.tp=1,2"],
        ["--sweep", "cluster.num_gpus=8,8"],
        ["--sweep", "cluster.num_gpus=7"],
        ["--objective", "beauty"],
        ["--scheduler", "tcp://127.0.0.1:1"],
        ["--scheduler", "nonsense"],
        ["--workers", "2", "--scheduler", "x"],
        ["--fix", "tp=16"],
        ["--fix", "recompute=sometimes"],
        ["--fix", "sequence_parallel=maybe"],
    ]
    return [Case(f"search {' '.join(o)}", ["search", SMALL, "--no-store", *o]) for o in options]


def all_cases(tmp: Path) -> list[Case]:
    return (
        file_cases(tmp)
        + number_cases()
        + set_cases()
        + output_cases(tmp)
        + signal_cases(tmp)
        + plot_cases(tmp)
        + validate_cases(tmp)
        + search_cases()
    )


def judge(case: Case, code: int | None, out: str, err: str) -> str | None:
    """What is wrong with an outcome, or None when it is clean."""
    if code is None:
        return "hang (killed at the timeout)"
    if "Traceback (most recent call last)" in err:
        return "traceback: " + err.strip().splitlines()[-1][:160]
    if code not in case.expect:
        return f"exit {code}: " + (err.strip().splitlines() or [""])[-1][:160]
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        odd = [line for line in lines if not (line.startswith(("error:", "usage:", "simulator")) or line[:1] == " ")]
        if odd:
            return f"exit 2 with a stderr line that is not an error line: {odd[0][:160]}"
        if "\x1b" in err:
            return "raw terminal escape in the error message"
    if code == 0 and "--json" in case.args and not case.pipe_head:
        try:
            json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError as exc:
            return f"--json output is not valid JSON ({str(exc)[:80]})"
    return None


def _default_sigint() -> None:
    """A sweep started in the background inherits SIGINT ignored (POSIX shells do that to background
    jobs), and Python keeps an ignored SIGINT ignored: give each command the default, as at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_case(case: Case, timeout_s: float, tree: Path = ROOT) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(tree), **case.env}
    cmd = [sys.executable, "-m", "simulator", *case.args]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=tree,  # `python -m` puts the working folder first on sys.path: run the tree's own package
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        errors="replace",
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    out = err = ""
    try:
        if case.pipe_head:
            assert proc.stdout is not None
            proc.stdout.readline()
            proc.stdout.close()
            err = proc.stderr.read() if proc.stderr else ""
            proc.wait(timeout=timeout_s)
        else:
            if case.signal_after_s is not None:
                try:
                    out, err = proc.communicate(timeout=case.signal_after_s)
                except subprocess.TimeoutExpired:
                    proc.send_signal(case.sig)
            if proc.returncode is None:
                out, err = proc.communicate(timeout=timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        code = None
    if case.signal_after_s is not None:
        _reap_orphans(proc.pid)
    seconds = time.monotonic() - start
    return Outcome(case, code, seconds, judge(case, code, out, err))


def _reap_orphans(pgid: int) -> None:
    """Kill what an interrupted command left in its process group (and report it as a problem)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    os.killpg(pgid, signal.SIGKILL)
    print(f"    (process group {pgid} still had processes after exit: killed)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose simulator to run")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cases = [c for c in all_cases(tmp) if args.only in c.name]
        bad: list[Outcome] = []
        for case in cases:
            outcome = run_case(case, args.timeout, args.tree)
            if outcome.problem:
                bad.append(outcome)
            if args.verbose or outcome.problem:
                status = "ok " if not outcome.problem else "BAD"
                print(
                    f"{status} {outcome.seconds:5.1f} s  exit {outcome.code}  {case.name[:70]}  {outcome.problem or ''}"
                )
        (tmp / "readonly").chmod(0o755)
    print(f"{len(cases)} cases, {len(cases) - len(bad)} clean, {len(bad)} not")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
