"""Write a result to disk: result.json, the resolved scenario, the trace and the plots (contract section 5)."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from simulator.results.result import SimulationResult
from simulator.results.trace import chrome_trace, write_trace
from simulator.scenario.setup import Setup


def result_json(result: SimulationResult) -> str:
    """The contract JSON, deterministic (same input, byte-identical output)."""
    return json.dumps(result.to_dict(), indent=2, allow_nan=False)


def resolved_scenario(setup: Setup) -> dict[str, Any]:
    """The scenario as simulated: every default filled in, the preset expanded, dp computed."""
    d = setup.scenario.model_dump(mode="json", exclude_none=True)
    model = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(setup.model).items() if k != "name"}
    d["model"] = {**({"preset": setup.scenario.model.preset} if setup.scenario.model.preset else {}), **model}
    d["parallelism"]["dp"] = setup.plan.dp
    d["parallelism"]["tp_comm_overlap"] = setup.plan.tp_comm_overlap
    d.setdefault("framework", {})["fused_cross_entropy"] = setup.fused_cross_entropy
    d.get("catalogue", {}).pop("files", None)  # their entries are inline now: the copy stands alone
    return d


def write_outputs(
    result: SimulationResult, setup: Setup, out_dir: Path, kernel_micro_batches: int | None = 1
) -> list[Path]:
    """result.json, the resolved scenario, (event engine) the Perfetto trace of the step, and the plots.
    The trace details every kernel of the first `kernel_micro_batches` micro-batches (None: all).

    The plots are drawn from the result JSON and the trace alone, as `simulator plot` redraws them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "result.json", out_dir / "scenario.resolved.yaml"]
    paths[0].write_text(result_json(result) + "\n")
    paths[1].write_text(yaml.safe_dump(resolved_scenario(setup), sort_keys=False))
    kernels = kernel_micro_batches if kernel_micro_batches is not None else setup.micro_batches
    trace = chrome_trace(result.spans, setup.plan.pp, kernels) if result.spans else None
    if trace is not None:
        paths.append(write_trace(trace, out_dir / "trace.json.gz"))
    else:  # analytical engine: no trace; one left by an earlier run here would not belong to this result
        (out_dir / "trace.json.gz").unlink(missing_ok=True)
        for stale in ("timeline.png", "utilisation.png"):
            (out_dir / stale).unlink(missing_ok=True)
    from analysis.plots import write_step_plots  # matplotlib lives in analysis/ only

    paths.extend(write_step_plots(result.to_dict(), trace, out_dir))
    return paths
