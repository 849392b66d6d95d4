"""Metered power and energy (issue 14 items 2 and 5): the `energy` validation group against published
measurements (data/validation/energy_cases.yaml), the nodes' rated maxima, and air vs liquid cooling.

THE TARGETS ARE THE ISSUE'S: node power on the public references within 10 %; Patterson's GPT-3
energy within 10 % with the time validation unchanged. Do not loosen them or change a case to pass."""

import contextlib
import io
import json
from typing import Any

import pytest
import yaml

from simulator.catalog.hardware import gpu_catalogue, node_catalogue
from simulator.catalog.loader import bundled
from simulator.cli import main
from simulator.energy.power import node_over_rating
from simulator.scenario.load import setup_from_mapping
from simulator.simulate import simulate
from simulator.validation.cases import bundled_path, default_files, load_cases

ENERGY = bundled_path("energy_cases.yaml")
NODE_TARGET_PCT = 10.0  # issue 14, "Targets": node power on the public references within 10 %
ENERGY_TARGET_PCT = 10.0  # issue 14, "Targets": Patterson's GPT-3 energy within 10 %
LATIF_PEAK_W = 8480.0  # the campaign's maximum (GPU-burn stress), above any training step's peak
MORRISON_GPU_W = (600.0, 700.0)  # "over 600W" while training, under the H100's 700 W limit


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["validate", str(ENERGY), "--json", "--no-progress"])
    assert status == 0, "simulator validate refused the energy cases (see stderr)"
    return {(r["case"], r["metric"]): r for r in json.loads(out.getvalue())["rows"]}


def test_targets_are_the_issues() -> None:
    assert (NODE_TARGET_PCT, ENERGY_TARGET_PCT) == (10.0, 10.0)


def test_the_energy_group_is_bundled_and_runs_every_case(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert ENERGY in default_files()
    cases = load_cases(ENERGY)
    assert {c.group for c in cases} == {"energy"} and len(cases) == 3
    assert all(r["predicted"] is not None and not r["note"] for r in rows.values())


def test_latif_node_power_within_the_target(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """One air-cooled 8x H100 node training Llama2-13b: the mean within 10 % of the 7.92 kW median."""
    assert abs(rows[("energy_llama2_13b_8xh100_latif", "node_W_mean")]["error_pct"]) <= NODE_TARGET_PCT


def test_latif_peak_stays_under_the_campaigns_maximum() -> None:
    case = next(c for c in load_cases(ENERGY) if c.id == "energy_llama2_13b_8xh100_latif")
    power = simulate(setup_from_mapping(case.scenario)).power
    assert power["node_W_mean"] <= power["node_W_peak"] <= LATIF_PEAK_W < power["node_W_max"] == 10200.0


def test_morrison_gpu_power_is_in_the_published_range(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    low, high = MORRISON_GPU_W
    assert low < rows[("energy_olmo2_7b_1024xh100_morrison", "gpu_W_mean")]["predicted"] < high


@pytest.mark.xfail(
    strict=True,
    reason="known gap (issue 14): the assumed 9,984-V100 plan waits 39 % of the step (1F1B bubble of 11 stages "
    "over 15 micro-batches) at 40-66 W while Patterson's V100s averaged close to TDP; the days match because the "
    "simulated V100 computes faster than measured ones. Closing it is on the timing path (V100 efficiency, plan).",
)
def test_patterson_energy_within_the_target(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert abs(rows[("energy_gpt3_175b_v100_patterson", "energy_mwh")]["error_pct"]) <= ENERGY_TARGET_PCT


def test_no_catalogue_node_can_exceed_its_rating() -> None:
    """GPU power never exceeds TDP (energy/power.py), so a node of its default GPUs at TDP plus its typical
    overhead bounds every simulated node peak; that bound stays under each datasheet rating."""
    gpus = gpu_catalogue()
    nodes = node_catalogue()
    for gpu_name, node_name in bundled("network")["default_node_for_gpu"].items():
        node = nodes[node_name]
        if node.max_W is None:
            continue
        assert node.gpus * gpus[gpu_name].tdp_W + node.node_overhead_W <= node.max_W, (gpu_name, node_name)


def test_a_node_over_its_rating_is_a_warning_not_a_cap(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    raw = {
        "name": "over-rating",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8, "node_max_W": 6000},
        "parallelism": {"tp": 1, "pp": 1},
        "training": {"global_batch": 64, "micro_batch": 8},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    power = json.loads(out)["power"]
    assert power["node_W_max"] == 6000 < power["node_W_peak"]  # as simulated, not capped
    lines = [x for x in err.splitlines() if x.startswith("warning:")]
    assert len(lines) == 1 and "rated maximum of 6,000 W" in lines[0]
    assert node_over_rating({"node_W_peak": 5999.0, "node_W_max": 6000.0}) is None
    assert node_over_rating({"node_W_peak": 5999.0}) is None


def _power(**cluster: Any) -> dict[str, float]:
    raw = {
        "name": "cooling",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 16, **cluster},
        "parallelism": {"tp": 1, "pp": 1},
        "training": {"global_batch": 64, "micro_batch": 4},
    }
    return simulate(setup_from_mapping(raw)).power


def test_liquid_cooling_takes_the_fans_share_off_the_node() -> None:
    air, liquid = _power(), _power(cooling="liquid")
    saving = node_catalogue()["dgx-h100"].liquid_cooling_saving_W
    assert saving == 1000.0
    assert air["node_W_mean"] - liquid["node_W_mean"] == pytest.approx(saving, rel=1e-12)
    assert air["gpu_W_mean"] == liquid["gpu_W_mean"]
    assert _power(cooling="air") == air  # the DGX H100 is built air-cooled
    # an explicit overhead is the node's, whatever the cooling
    assert _power(cooling="liquid", node_overhead_W=2500)["node_W_mean"] == air["node_W_mean"]


@pytest.mark.parametrize(
    ("gpu", "cooling", "why"),
    [("gb200", "air", "liquid-cooled only"), ("a100-sxm-80gb", "liquid", "no measured liquid-cooled variant")],
)
def test_a_cooling_the_node_is_not_built_with_is_an_input_error(
    gpu: str, cooling: str, why: str, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    raw = {
        "name": "bad-cooling",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": gpu, "num_gpus": 8, "cooling": cooling},
        "parallelism": {"tp": 1, "pp": 1},
        "training": {"global_batch": 64, "micro_batch": 8},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cluster.cooling:") and why in lines[0]
