"""Write a result to disk: result.json, the resolved scenario and the trace (contract section 5; the plots
are drawn from these by the command line)."""

import json
from pathlib import Path
from typing import Any

import yaml

from simulator.results.result import SimulationResult
from simulator.scenario.canonical import resolved_scenario
from simulator.scenario.setup import Setup


def result_json(result: SimulationResult) -> str:
    """The contract JSON, deterministic (same input, byte-identical output)."""
    return json.dumps(result.to_dict(), indent=2, allow_nan=False)


def write_outputs(
    result: SimulationResult, setup: Setup, out_dir: Path, kernel_micro_batches: int | None = 1
) -> tuple[list[Path], dict[str, Any] | None]:
    """result.json, the resolved scenario and (event engine) the Perfetto trace of the step; returns the
    paths written and the trace, from which (with the result JSON) the plots are drawn. The trace
    details every kernel of the first `kernel_micro_batches` micro-batches (None: all)."""
    from simulator.results.trace import chrome_trace, write_trace  # only with --out: not for --json

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "result.json", out_dir / "scenario.resolved.yaml"]
    paths[0].write_text(result_json(result) + "\n")
    paths[1].write_text(yaml.safe_dump(resolved_scenario(setup), sort_keys=False))
    kernels = kernel_micro_batches if kernel_micro_batches is not None else setup.micro_batches
    trace = chrome_trace(result.spans, setup.plan.pp, kernels, result.timeline) if result.spans else None
    if trace is not None:
        paths.append(write_trace(trace, out_dir / "trace.json.gz"))
    else:  # analytical engine: no trace; one left by an earlier run here would not belong to this result
        (out_dir / "trace.json.gz").unlink(missing_ok=True)
        for stale in ("timeline.png", "utilisation.png", "power.png"):
            (out_dir / stale).unlink(missing_ok=True)
    if result.run is None or result.run.power_window is None:  # no run_power.png: not one of an earlier run's
        (out_dir / "run_power.png").unlink(missing_ok=True)
    return paths, trace
