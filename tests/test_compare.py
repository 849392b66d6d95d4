"""`simulator compare`: several scenarios side by side (table, JSON list, Markdown, plot)."""

import json
from pathlib import Path

import pytest
from conftest import scenario_file

from simulator.cli import main

SMALL = str(scenario_file("gpt3-125m-8xa100"))


def test_compare_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", SMALL, SMALL, "--set", "parallelism.zero=0", "--json", "--out", str(tmp_path)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in results] == ["gpt3-125m-8xa100"] * 2
    assert all(r["plan"]["zero"] == 0 for r in results)
    assert "| scenario |" in (tmp_path / "compare.md").read_text()
    assert (tmp_path / "compare.png").read_bytes().startswith(b"\x89PNG")


def test_compare_table_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", SMALL]) == 0
    out = capsys.readouterr().out
    assert "MFU %" in out and "gpt3-125m-8xa100" in out
    assert main(["compare", SMALL, str(tmp_path / "missing.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no such file" in err
