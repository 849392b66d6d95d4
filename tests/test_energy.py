"""Energy accounting: GPU power by activity, node and switch overheads, PUE; the run's failure what-if."""

import pytest
from conftest import scenario_file

from simulator.energy.power import gpu_power_W, overhead_W_per_gpu
from simulator.scenario import load_setup, setup_from_mapping
from simulator.simulate import simulate
from simulator.topology.builders import fabric_switches

GPT3 = scenario_file("gpt3-175b-1024xa100")


def cluster(num_gpus: int):
    return setup_from_mapping(
        {
            "name": "e",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": num_gpus},
            "training": {"global_batch": num_gpus},
        }
    ).cluster


def test_fabric_switch_count() -> None:
    assert fabric_switches(cluster(8)) == 0  # one node: no fabric
    assert fabric_switches(cluster(16)) == 1  # 16 HDR ports fit one 20-down-port leaf
    # 1024 GPUs: 1024 NIC ports / 20 per leaf = 52 leaves, more than a 40-port spine joins: 3 tiers,
    # the 52 x 20 leaf uplinks through 2 x 1040 / 40 = 52 spines to 1040 / 40 = 26 cores
    assert fabric_switches(load_setup(GPT3).cluster) == 130
    assert fabric_switches(cluster(800)) == 40 + 20  # 40 leaves: 2 tiers, 40 x 20 uplinks / 40 ports


def test_step_energy_closes() -> None:
    setup = load_setup(GPT3)
    r = simulate(setup)
    gpu = setup.cluster.gpu
    gpu_J = sum(t * gpu_power_W(c, gpu.idle_W, gpu.tdp_W) for c, t in r.step.breakdown_s.items())
    expected = (gpu_J + overhead_W_per_gpu(setup) * r.step.time_s) * setup.economics.pue
    assert r.step.energy_J_per_gpu == pytest.approx(expected, rel=1e-12)
    # the run: every GPU, every step
    assert r.run.energy_mwh == pytest.approx(expected * setup.cluster.num_gpus * r.run.iterations / 3.6e9, rel=1e-9)
    assert r.run.co2_tonnes == pytest.approx(r.run.energy_mwh * 1000 * setup.economics.grid_kg_co2_per_kWh / 1000)


def test_failure_what_if_is_reported_beside_the_ideal_run() -> None:
    r = simulate(load_setup(GPT3)).run
    assert r.goodput == 1.0 and r.days == r.days_ideal
    assert r.days_with_failures > r.days


def test_hopper_gpus_use_their_measured_activity_power() -> None:
    """power.yaml's Hopper profile (this project's H200 measurements, docs/research/activity-power.md)
    replaces the generic fractions it measured and keeps the others (collectives moving data)."""
    from simulator.catalog.hardware import gpu_catalogue
    from simulator.enums import Category

    gpus = gpu_catalogue()
    for name in ("h100-sxm-80gb", "h200-sxm-141gb", "h800-sxm-80gb"):
        gpu = gpus[name]
        assert gpu.activity_power == "hopper"
        span = gpu.tdp_W - gpu.idle_W
        assert gpu_power_W(Category.OTHER_COMPUTE, gpu.idle_W, gpu.tdp_W, "hopper") == pytest.approx(
            gpu.idle_W + 0.86 * span
        )
        assert gpu_power_W(Category.BUBBLE, gpu.idle_W, gpu.tdp_W, "hopper") == pytest.approx(gpu.idle_W + 0.07 * span)
        assert gpu_power_W(Category.COMM_DP, gpu.idle_W, gpu.tdp_W, "hopper") == gpu_power_W(
            Category.COMM_DP, gpu.idle_W, gpu.tdp_W
        )
    assert gpus["a100-sxm-80gb"].activity_power is None


def test_an_unknown_power_profile_is_an_input_error() -> None:
    from simulator.catalog.loader import bundled
    from simulator.scenario.errors import ConfigError

    entry = {k: v for k, v in bundled("gpus")["a100-sxm-80gb"].items()}
    raw = {
        "name": "bad-profile",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
        "training": {"global_batch": 8},
        "catalogue": {"gpus": {"a100-sxm-80gb": {**entry, "activity_power": "nosuch"}}},
    }
    with pytest.raises(ConfigError) as err:
        setup_from_mapping(raw)
    want = "catalogue.gpus.a100-sxm-80gb.activity_power: unknown power profile (known: hopper) (got 'nosuch')"
    assert want in err.value.problems, err.value
