"""The resolved scenario (`scenario.resolved.yaml`, scenario/canonical.py) holds every value the
catalogues supplied, in the scenario's own keys and units, so it runs on its own and gives the same
result whatever the catalogues say later."""

import json
from pathlib import Path

import pytest
import yaml

from simulator.cli import main
from simulator.scenario.canonical import resolved_scenario
from simulator.scenario.load import load_setup

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

# Keys whose defaults come from a catalogue (node, NIC, GPU, economics, reliability, software).
CATALOGUE_DEFAULTS = {
    "cluster": ("intra_node_GBps", "inter_node_Gbps", "nics_per_node", "node_overhead_W"),
    "energy": ("pue", "grid_kg_co2_per_kWh"),
    "cost": ("usd_per_gpu_hour", "usd_per_kWh"),
    "reliability": (
        "gpu_failures_per_hour",
        "node_failures_per_hour",
        "storage_write_GBps_per_node",
        "storage_read_GBps_per_node",
        "restart_s",
    ),
    "framework": ("host_time_per_op_us", "fused_cross_entropy"),
}


def run_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> str:
    assert main(["run", str(path), "--json", *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("scenario", "overrides"),
    [
        ("gpt3-125m-8xa100.yaml", ["reliability.enabled=true", "training.tokens=2e10"]),
        ("whatif-hypothetical-gpu.yaml", ["simulation.engine=analytical"]),
    ],
)
def test_resolved_scenario_runs_alone_to_the_same_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str, overrides: list[str]
) -> None:
    setup = load_setup(SCENARIOS / scenario, overrides)
    resolved = resolved_scenario(setup)
    for section, keys in CATALOGUE_DEFAULTS.items():
        assert set(keys) <= set(resolved[section]), section
    assert "files" not in resolved.get("catalogue", {})  # their entries are inline: the file stands alone
    path = tmp_path / "scenario.resolved.yaml"
    path.write_text(yaml.safe_dump(resolved, sort_keys=False))
    flags = [arg for item in overrides for arg in ("--set", item)]
    original = run_json(capsys, SCENARIOS / scenario, *flags)
    assert run_json(capsys, path) == original  # byte for byte
    assert json.loads(original)["name"] == resolved["name"]


def test_resolved_scenario_keeps_the_scenarios_own_values() -> None:
    setup = load_setup(SCENARIOS / "gpt3-125m-8xa100.yaml", ["energy.pue=1.3", "cluster.inter_node_Gbps=100"])
    resolved = resolved_scenario(setup)
    assert resolved["energy"]["pue"] == 1.3 and resolved["cluster"]["inter_node_Gbps"] == 100
    assert "checkpoint_interval_s" not in resolved["reliability"]  # unset means the Young/Daly optimum
