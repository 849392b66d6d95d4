"""The command line at its edges: output paths that cannot be written (checked before the work, and
a write that fails after it never loses the result), interrupts and closed pipes, error messages
that name what is wrong, and the small report fixes. In-process through `main` where possible;
subprocesses only for signals and pipes, each with a timeout so a hang fails instead of hanging."""

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "scenarios" / "gpt3-125m-8xa100.yaml"
TINY_SEARCH = ["--fix", "tp=1", "--fix", "pp=1", "--fix", "micro_batch=8", "--fix", "recompute=none"]
SCENARIO = yaml.safe_load(SMALL.read_text())


def errors(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    """stdout, and the stderr lines; no traceback ever."""
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return out, err.strip().splitlines()


def only_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    """Nothing on stdout and exactly one `error:` line holding every needle."""
    out, lines = errors(capsys)
    assert out == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(n in lines[0] for n in needles), lines


# --- output paths, before the work ---


@pytest.mark.parametrize("command", [["run"], ["explain"], ["compare"], ["search", "--no-store", *TINY_SEARCH]])
def test_out_naming_a_file_fails_before_the_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    import simulator.compare.table
    import simulator.simulate

    monkeypatch.setattr(simulator.simulate, "simulate", _never)
    monkeypatch.setattr(simulator.compare.table, "simulate", _never)  # bound at its import
    target = tmp_path / "notes.md"
    target.write_text("a file")
    assert main([command[0], str(SMALL), *command[1:], "--out", str(target)]) == 2
    only_error(capsys, f"--out {target}", "not a folder")


def _never(*args: Any, **kw: Any) -> Any:
    raise AssertionError("simulated despite an unusable output path")


@pytest.mark.parametrize(
    ("out", "needle"),
    [("/dev/full", "not a folder"), ("{tmp}/file/sub", "cannot create the folder: {tmp}/file is not a folder")],
)
def test_run_out_that_cannot_be_a_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, out: str, needle: str
) -> None:
    (tmp_path / "file").write_text("")
    out = out.format(tmp=tmp_path)
    assert main(["run", str(SMALL), "--out", out]) == 2
    only_error(capsys, f"--out {out}", needle.format(tmp=tmp_path))


def test_run_out_that_does_not_exist_yet_is_created(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", str(SMALL), "--json", "--out", str(tmp_path / "a" / "b")]) == 0
    assert (tmp_path / "a" / "b" / "result.json").is_file()


@pytest.mark.parametrize("command", ["run", "explain", "compare"])
def test_a_write_failing_after_the_work_keeps_the_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    """A full disk: the result is still printed whole on stdout, then one error line, exit 2."""

    def full(self: Path, *args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # no filename: as at flush or close

    monkeypatch.setattr(Path, "write_text", full)
    extra = ["--no-variants"] if command == "explain" else []
    assert main([command, str(SMALL), *extra, "--json", "--out", str(tmp_path)]) == 2
    out, lines = errors(capsys)
    assert json.loads(out)  # the whole result, one JSON document
    assert lines[-1] == f"error: --out {tmp_path}: cannot write: No space left on device"


def test_search_out_write_failure_keeps_the_ranking(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import simulator.search.report as report

    def full(data: Any, out_dir: Path) -> list[Path]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir / "search.json"))

    monkeypatch.setattr(report, "write_search_files", full)
    assert main(["search", str(SMALL), *TINY_SEARCH, "--no-store", "--json", "--out", str(tmp_path)]) == 2
    out, lines = errors(capsys)
    assert json.loads(out)["results"]
    assert lines[-1] == f"error: --out {tmp_path}: cannot write {tmp_path / 'search.json'}: No space left on device"


# --- the result store ---


def test_store_that_is_not_a_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = tmp_path / "README.md"
    text.write_text("# not a database\n")
    assert main(["search", str(SMALL), *TINY_SEARCH, "--store", str(text)]) == 2
    only_error(capsys, f"--store {text}", "not an SQLite database")
    assert text.read_text() == "# not a database\n"


def test_store_that_is_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["search", str(SMALL), *TINY_SEARCH, "--store", str(tmp_path)]) == 2
    only_error(capsys, f"--store {tmp_path}", "is a folder")


@pytest.mark.parametrize("variable", ["HOME", "XDG_CACHE_HOME"])
def test_default_store_in_an_unusable_cache(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, variable: str
) -> None:
    """A cache folder that cannot be created (a file stands in its way; root ignores permission bits)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(variable, str(blocker))
    assert main(["search", str(SMALL), *TINY_SEARCH]) == 2
    only_error(capsys, f"result store {blocker}/", "cannot create the store", "--no-store")


def test_store_and_no_store_exclude_each_other(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["search", str(SMALL), "--store", str(tmp_path / "s.sqlite"), "--no-store"])
    assert exc.value.code == 2
    assert "not allowed with argument --store" in capsys.readouterr().err


def test_store_full_mid_search_keeps_the_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from simulator.search.store import ResultStore

    real, calls = ResultStore.put, []

    def put(self: ResultStore, *args: Any) -> None:
        calls.append(1)
        if len(calls) > 2:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, *args)

    monkeypatch.setattr(ResultStore, "put", put)
    db = tmp_path / "s.sqlite"
    assert main(["search", str(SMALL), *TINY_SEARCH, "--store", str(db), "--json", "--top", "0"]) == 2
    out, lines = errors(capsys)
    assert len(json.loads(out)["results"]) == 4  # every plan, though the store took only two
    assert lines[-1].startswith(f"error: result store {db}: cannot write (database or disk is full)")
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2


# --- interrupts and pipes ---


@pytest.mark.parametrize(
    "command",
    [
        ["run", str(SMALL)],
        ["explain", str(SMALL), "--no-variants"],
        ["validate", str(ROOT / "simulator" / "data" / "validation" / "added_cases.yaml")],
    ],
)
@pytest.mark.parametrize(("raised", "code"), [("KeyboardInterrupt", 130), ("Terminated", 143)])
def test_interrupt_exits_quietly(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    raised: str,
    code: int,
) -> None:
    """Ctrl-C (130) or SIGTERM (143) mid-simulation: one line, no traceback."""
    import simulator.simulate
    import simulator.validation.runner
    from simulator.cli.common import Terminated

    exc = KeyboardInterrupt if raised == "KeyboardInterrupt" else Terminated

    def stop(*args: Any, **kw: Any) -> None:
        raise exc()

    monkeypatch.setattr(simulator.simulate, "simulate", stop)
    monkeypatch.setattr(simulator.validation.runner, "simulate", stop)
    assert main(command) == code
    out, lines = errors(capsys)
    assert out == "" and lines == ["interrupted"]


def _children(pid: int) -> list[int]:
    psutil = pytest.importorskip("psutil")
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _alive(pids: list[int]) -> list[int]:
    psutil = pytest.importorskip("psutil")
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test run in the background inherits SIGINT ignored


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and fork workers as on Linux")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_a_parallel_search_and_its_workers(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    """Ctrl-C at a terminal (SIGINT to the whole process group) or SIGTERM to the command: it exits at
    once without waiting for running jobs, leaves no worker behind, and the store keeps what it took."""
    db = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "simulator", "search", str(SMALL), "--workers", "2", "--store", str(db)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not _stored(db):
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert workers and proc.poll() is None, "the search ended before it could be interrupted"
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, err
    assert out == "" and "Traceback" not in err and "search interrupted" in err
    assert not _alive(workers)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 1


def _stored(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0] > 0
    except sqlite3.OperationalError:  # the table is not there yet
        return False


def test_closed_stdout_pipe_exits_quietly() -> None:
    """`simulator run X --json | head -0`: the reader is gone; exit 141 without a BrokenPipeError."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "simulator", "run", str(SMALL), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes anything
    try:
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 141
    assert err == ""


# --- messages ---


def test_compare_names_every_bad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SCENARIO, "parallelism": {"tp": 5, "pp": 1}}))
    missing = tmp_path / "missing.yaml"
    assert main(["compare", str(bad), str(SMALL), str(missing)]) == 2
    out, lines = errors(capsys)
    assert out == ""
    assert any(line.startswith(f"error: {bad}: parallelism.tp") for line in lines), lines
    assert f"error: {missing}: no such file" in lines
    assert all(line.startswith((f"error: {bad}: ", f"error: {missing}: ")) for line in lines), lines


def _cases_file(tmp_path: Path, *cases: dict[str, Any]) -> Path:
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(list(cases)))
    return path


def _case(case_id: str, published: dict[str, float] | None = None, **parallelism: int) -> dict[str, Any]:
    scenario = {**SCENARIO, "parallelism": {"tp": 1, "pp": 1, **parallelism}}
    return {"id": case_id, "scenario": scenario, "published": published or {"iteration_time_s": 0.5}}


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "picture.png", "not a text file"),
        (lambda d: d, "is a folder"),
    ],
)
def test_validate_names_what_the_file_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any, needle: str
) -> None:
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    path = make(tmp_path)
    assert main(["validate", str(path)]) == 2
    only_error(capsys, f"{path}: {needle}")


def test_validate_rejects_unknown_figures_and_broken_scenarios(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every problem of every case, before any case is simulated."""
    import simulator.validation.runner

    monkeypatch.setattr(simulator.validation.runner, "simulate", _never)
    path = _cases_file(tmp_path, _case("ok", {"iteration_time_s": 0.5, "step_tme_s": 1.0}))
    assert main(["validate", str(path)]) == 2
    only_error(capsys, f"{path}: case 1 (ok): published.step_tme_s: unknown figure")
    path = _cases_file(tmp_path, _case("ok"), _case("five", tp=5), _case("three", tp=3))
    assert main(["validate", str(path)]) == 2
    _, lines = errors(capsys)
    assert any(line.startswith(f"error: {path}: case 2 (five): scenario: ") for line in lines), lines
    assert any(line.startswith(f"error: {path}: case 3 (three): scenario: ") for line in lines), lines
    assert not any("case 1" in line for line in lines)


def test_validate_csv_to_a_full_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    path = _cases_file(tmp_path, _case("ok"))
    assert main(["validate", str(path), "--csv", "/dev/full", "--json"]) == 2
    out, lines = errors(capsys)
    assert json.loads(out)["rows"]  # the validation is printed before the error
    assert lines[-1] == "error: --csv /dev/full: cannot write: No space left on device"


def test_validate_output_that_is_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _cases_file(tmp_path, _case("ok"))
    assert main(["validate", str(path), "--markdown", str(tmp_path)]) == 2
    only_error(capsys, f"--markdown {tmp_path}: is a folder")


@pytest.mark.parametrize(
    ("fix", "needle"),
    [
        (["--fix", "zero=5"], "--fix zero=5: zero is 0, 1, 2 or 3, got 5"),
        (["--fix", "tp=3"], "--fix tp=3: tp is 1, 2 or 4 in the valid plans"),
        (["--min", "micro_batch=64"], "--min micro_batch=64: micro_batch is "),
    ],
)
def test_search_names_the_bound_without_a_valid_value(
    capsys: pytest.CaptureFixture[str], fix: list[str], needle: str
) -> None:
    assert main(["search", str(SMALL), *fix, "--no-store"]) == 2
    only_error(capsys, needle)


def test_error_lines_escape_control_characters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    name = str(tmp_path / "evil\x1b[2J\rname.yaml")
    assert main(["run", name]) == 2
    _, lines = errors(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}/evil\\x1b[2J\\rname.yaml: ")


def test_usage_errors_escape_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", str(SMALL), "--fast\x1b[31m"])  # argparse echoes unrecognised arguments as typed
    err = capsys.readouterr().err
    assert "\x1b" not in err and "--fast\\x1b[31m" in err


# --- reports ---


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0123, "$0.0123"),
        (9.51, "$9.51"),
        (512, "$512"),
        (999.6, "$1.0k"),
        (9_512, "$9.5k"),
        (999_512, "$999.5k"),
        (999_960, "$1.0M"),
        (1_000_000, "$1.0M"),
        (4_512_000_000, "$4.5B"),
    ],
)
def test_money_labels_of_the_search_plots(value: float, text: str) -> None:
    from analysis.search_plot import _usd

    assert _usd(value) == text


def test_human_report_lists_overrides_and_aligns_categories(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SMALL), "--set", "parallelism.zero=3", "--set", "cluster.num_gpus=16"]) == 0
    out, _ = errors(capsys)
    assert "  overrides  parallelism.zero=3, cluster.num_gpus=16" in out
    rows = [line for line in out.splitlines() if line.startswith("    ") and line.rstrip().endswith("%")]
    assert any("comm_contention" in line for line in rows)
    assert len({line.index(" s ") for line in rows}) == 1, rows  # every seconds column lines up
    assert main(["run", str(SMALL), "--set", "parallelism.zero=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == SCENARIO["name"]


def test_search_marks_zero3_plans_with_a_caveat(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", str(SMALL), *TINY_SEARCH, "--no-store", "--top", "0"]
    assert main([*args, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert {r["parallelism"]["zero"] for r in results} == {0, 1, 2, 3}
    assert all(("caveat" in r) == (r["parallelism"]["zero"] == 3) for r in results)
    assert main(args) == 0
    out = capsys.readouterr().out
    z3 = [line for line in out.splitlines() if " Z3 " in line]
    assert z3 and all(line.split("Z3 mb8")[1].startswith(" !") for line in z3)
    assert "! ZeRO-3/FSDP step times are less validated" in out


@pytest.mark.parametrize("flag", ["--progress", "--no-progress"])
def test_explain_and_validate_progress(capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str) -> None:
    assert main(["explain", str(SMALL), "--no-variants", flag]) == 0
    explain_err = capsys.readouterr().err
    assert main(["validate", str(_cases_file(tmp_path, _case("ok"))), flag]) == 0
    validate_err = capsys.readouterr().err
    shown = flag == "--progress"
    assert ("explaining [" in explain_err) == shown
    assert ("validating [" in validate_err) == shown


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_stdout_on_a_full_disk_is_one_error_line(json_flag: list[str]) -> None:
    """`simulator run X > /dev/full`: the write fails; one `error:` line and exit 2, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "simulator", "run", str(SMALL), *json_flag]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: cannot write the output: No space left on device"]


def test_a_subcommand_builds_only_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`simulator run` parses without describing search's options (whose module loads the plan space),
    yet every command stays a valid choice, and `simulator --help` lists them all with their help."""
    from simulator.cli import SUBCOMMANDS, build_parser

    only_run = build_parser("run")
    assert only_run.parse_args(["run", "x.yaml", "--json"]).json is True
    assert only_run.parse_args(["search"]).command == "search"  # the other names stay valid choices
    full = build_parser().format_help()
    assert all(name in full for name in SUBCOMMANDS) and "enumerate, prune and rank" in full
    with pytest.raises(SystemExit) as done:  # a subcommand's own help still has every option
        main(["search", "--help"])
    assert done.value.code == 0 and "--refine" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "message"),
    [("[", "cluster.num_gpus: input should be a valid integer"), ("[" * 40, "nested deeper than 32 levels")],
)
def test_sweep_values_are_read_like_set_values(value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--sweep` values are parsed as `--set` values are: text that is not YAML stays text (and is then
    an input error of its key), YAML past the file limits is refused; neither is a traceback."""
    assert main(["search", str(SMALL), "--no-store", "--sweep", f"cluster.num_gpus={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
