"""The Chrome/Perfetto trace written by `simulator run --out` (contract section 5)."""

import gzip
import json
from pathlib import Path

from conftest import scenario_file

from simulator.cli import main


def test_trace_is_valid_trace_event_json(tmp_path: Path) -> None:
    assert main(["run", str(scenario_file("gpt3-175b-1024xa100")), "--out", str(tmp_path), "--json"]) == 0
    trace = json.loads(gzip.open(tmp_path / "trace.json.gz", "rt").read())
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) >= 100
    assert all(e["dur"] >= 0 and e["ts"] >= 0 and isinstance(e["pid"], int) for e in complete)
    # one process per pipeline stage, named; kernels of the first micro-batch carry FLOPs
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {f"stage {s}" for s in range(8)} | {"cluster"}  # the cluster's power counters
    gemms = [e for e in complete if e["cat"] == "gemm"]
    assert gemms and all(e["args"]["flops"] > 0 for e in gemms)
    # the last compute event ends at the step time
    step_s = json.loads((tmp_path / "result.json").read_text())["step"]["time_s"]
    end_us = max(e["ts"] + e["dur"] for e in complete if e["tid"] == 0)
    assert abs(end_us - step_s * 1e6) <= 1e-6 * step_s * 1e6


def test_out_writes_the_step_plots(tmp_path: Path) -> None:
    assert main(["run", str(scenario_file("gpt3-125m-8xa100")), "--out", str(tmp_path), "--json"]) == 0
    for name in ("breakdown.png", "memory.png", "timeline.png", "utilisation.png"):
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000, name


def _gemm_events(out: Path, *extra: str) -> int:
    scenario = str(scenario_file("gpt3-125m-8xa100"))
    assert main(["run", scenario, "--out", str(out), "--json", *extra]) == 0
    events = json.loads(gzip.open(out / "trace.json.gz", "rt").read())["traceEvents"]
    return sum(1 for e in events if e.get("cat") == "gemm")


def test_trace_kernels_expands_more_micro_batches(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """4 micro-batches per step: --trace-kernels 2 doubles the kernel events of the default, 0 gives all 4."""
    one = _gemm_events(tmp_path / "one")
    assert one > 0
    assert _gemm_events(tmp_path / "two", "--trace-kernels", "2") == 2 * one
    assert _gemm_events(tmp_path / "all", "--trace-kernels", "0") == 4 * one
    capsys.readouterr()
    assert main(["run", str(scenario_file("gpt3-125m-8xa100")), "--trace-kernels", "-1"]) == 2
    assert "--trace-kernels" in capsys.readouterr().err
