"""A user's own GPU and model in a catalogue file, without touching code (issue 2, item 2)."""

from pathlib import Path

import pytest
from conftest import scenario_file

from simulator.cli import main
from simulator.scenario import load_setup


def test_scenario_uses_gpu_and_model_from_its_catalogue_file() -> None:
    setup = load_setup(scenario_file("whatif-hypothetical-gpu"))
    assert setup.cluster.gpu.name == "x200-hypothetical"
    assert setup.cluster.gpu.hbm_bytes_per_s == 6700e9
    assert setup.model.name == "gpt-30b-demo" and setup.model.layers == 48


def test_missing_catalogue_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = tmp_path / "s.yaml"
    sc.write_text(
        "name: t\ncatalogue: {files: [nope.yaml]}\nmodel: {preset: gpt3-125m}\n"
        "cluster: {gpu: a100-sxm-80gb, num_gpus: 8}\ntraining: {global_batch: 8}\n"
    )
    assert main(["run", str(sc), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "catalogue.files" in err and "Traceback" not in err
