"""A scenario's canonical form: the scenario as simulated, every default filled in (saved beside
results as `scenario.resolved.yaml`, the base of explain's what-if variants), and its hash, the key
of the search's result store."""

import hashlib
import json
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.scenario.setup import Setup


def resolved_scenario(setup: Setup) -> dict[str, Any]:
    """The scenario as simulated: every default filled in, the preset expanded, dp computed."""
    d = setup.scenario.model_dump(mode="json", exclude_none=True)
    model = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(setup.model).items() if k != "name"}
    d["model"] = {**({"preset": setup.scenario.model.preset} if setup.scenario.model.preset else {}), **model}
    d["parallelism"]["dp"] = setup.plan.dp
    d["parallelism"]["tp_comm_overlap"] = setup.plan.tp_comm_overlap
    framework = d.setdefault("framework", {})
    framework["fused_cross_entropy"] = setup.fused_cross_entropy
    framework["overlap_param_gather"] = setup.plan.param_gather_overlap
    framework["fp8_param_gather"] = setup.plan.fp8_param_gather
    framework["fp32_gradients"] = setup.plan.fp32_gradients
    d.get("catalogue", {}).pop("files", None)  # their entries are inline now: the copy stands alone
    return d


@cache
def code_fingerprint() -> str:
    """Hash of the simulator's own code and catalogues: a stored result is reused only by the same
    model of the hardware and software, not merely the same version number."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def scenario_key(setup: Setup) -> str:
    """Hash of the resolved scenario (every default filled in) and the simulator's code and
    catalogues: two scenarios with the same key simulate to the same result."""
    text = json.dumps({"scenario": resolved_scenario(setup), "model": code_fingerprint()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
