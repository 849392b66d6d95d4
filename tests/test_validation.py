"""Validation against published training runs, with the tolerances we claim (docs/accuracy.md).

Published cases are bundled in simulator/data/validation (its README gives their sources). The
tolerances are the accuracy the simulator has today with one catalogue for every case; a change
that makes a group worse fails here. The ZeRO-3 rows of Megatron-LM Table 2 are a known gap
(DeepSpeed-2021 ZeRO-3 ran far below what its communication volume explains) and are pinned as
a strict expected failure so a fix is noticed.
"""

import csv
import dataclasses
import json
from pathlib import Path
from statistics import mean

import pytest
import yaml
from published import CASES, result_of

from simulator.cli import main
from simulator.validation.cases import Case, bundled_path, load_cases
from simulator.validation.ranking import rank_agreement
from simulator.validation.runner import Row, simulate_case

TIME = "iteration_time_s"


def errors(prefix: str, metric: str = TIME) -> dict[str, float]:
    out = {}
    for case in CASES:
        if case["id"].startswith(prefix) and metric in case["published"]:
            section, key = ("step", "time_s") if metric == TIME else ("run", metric)
            predicted = result_of(case["id"])[section][key]
            published = case["published"][metric]
            out[case["id"]] = 100 * (predicted - published) / published
    return out


@pytest.mark.parametrize(
    ("prefix", "mape_max", "worst_max"),
    [
        ("megatron2021_t1", 8.0, 12.0),  # Narayanan et al. 2021 Table 1
        ("megatron2021_t2_ptdp", 6.0, 10.0),  # Table 2, PTD-P rows
        ("nemo2407", 5.0, 10.0),  # NVIDIA NeMo 24.07 FP8 on H100
        ("nemo2502", 8.0, 12.0),  # NVIDIA NeMo 25.02 FP8 on B200 (added_cases.yaml)
        ("automodel", 14.0, 14.0),  # NeMo AutoModel FSDP2, H100 BF16: a known gap (-13 %)
        ("mbridge2511", 7.0, 10.0),  # Megatron-Bridge 25.11 FP8 on H100 and B200: a check, not calibrated on
        ("llama3paper", 7.0, 10.0),  # Llama 3 405B on 8k-16k H100 (Meta), schedule assumed; bounds H100 BF16
        ("seed_gpt3_175b_1024xa100", 8.0, 8.0),  # Megatron-LM's 34-day GPT-3 estimate
    ],
)
def test_step_time_within_stated_tolerance(prefix: str, mape_max: float, worst_max: float) -> None:
    errs = errors(prefix)
    assert errs, prefix
    assert mean(abs(e) for e in errs.values()) <= mape_max, errs
    assert max(abs(e) for e in errs.values()) <= worst_max, errs


def test_seed_runs_days_and_energy() -> None:
    """34 days on 1024 A100 (Narayanan et al.) within 10 %; the original GPT-3 run on ~10,000 V100
    (Patterson et al. 2021: 14.8 days, 1,287 MWh) within the validation file's +-25 %."""
    days = errors("seed_", "days")
    assert abs(days["seed_gpt3_175b_1024xa100"]) <= 10.0
    assert abs(days["seed_gpt3_175b_v100_patterson"]) <= 25.0
    assert abs(errors("seed_", "energy_mwh")["seed_gpt3_175b_v100_patterson"]) <= 25.0


def test_table2_ptdp_ranking_matches_published() -> None:
    """Within Megatron-LM Table 2, more GPUs for the same model and batch give shorter steps, in the
    published order."""
    for model in ("174.6B", "529.6B"):
        ids = [c["id"] for c in CASES if c["id"].startswith(f"megatron2021_t2_ptdp_{model}")]
        published = sorted(ids, key=lambda i: next(c for c in CASES if c["id"] == i)["published"][TIME])
        predicted = sorted(ids, key=lambda i: result_of(i)["step"]["time_s"])
        assert predicted == published


def test_table1_weak_scaling_order() -> None:
    """Table 1 grows model and GPUs together; the predicted hardware TFLOP/s per GPU rises with size as
    published (137 -> 163) within the spread the paper shows."""
    ids = [c["id"] for c in CASES if c["id"].startswith("megatron2021_t1")]
    tflops = [result_of(i)["step"]["hardware_flops"] / result_of(i)["step"]["time_s"] for i in ids]
    gpus = [next(c for c in CASES if c["id"] == i)["scenario"]["cluster"]["num_gpus"] for i in ids]
    per_gpu = [t / g / 1e12 for t, g in zip(tflops, gpus, strict=True)]
    assert per_gpu[-1] > per_gpu[0]
    assert all(120 <= x <= 185 for x in per_gpu), per_gpu


@pytest.mark.xfail(strict=True, reason="known gap: DeepSpeed-2021 ZeRO-3 overheads are not modelled (docs/accuracy.md)")
def test_zero3_rows_within_tolerance() -> None:
    errs = errors("megatron2021_t2_zero3")
    assert mean(abs(e) for e in errs.values()) <= 25.0, errs


def test_vtrain_multi_node() -> None:
    """vTrain's 109 multi-node measurements (Bang et al. 2024): MAPE <= 10 % (the issue's target;
    vTrain itself reports 14.7 %)."""
    cases = load_cases(bundled_path("vtrain/ground_truth_multi.csv"))
    rows = [r for c in cases for r in simulate_case(c)]
    assert mean(abs(r.error_pct) for r in rows) <= 10.0
    # within each study (same model, cluster and batch), plan pairs in the measured order: 82.2 %
    # measured (a coin would give 50 %)
    (ranking,) = rank_agreement(cases, rows)
    assert ranking.studies == 4 and ranking.agreement_pct >= 80.0


def test_vtrain_single_node_sample() -> None:
    """Every 12th of vTrain's 1,440 single-node measurements (the full set: `simulator validate`)."""
    cases = load_cases(bundled_path("vtrain/ground_truth_single.csv"))[::12]
    rows = [r for c in cases for r in simulate_case(c)]
    assert mean(abs(r.error_pct) for r in rows) <= 12.0


def _case(cid: str, group: str, gpus: int) -> Case:
    scenario = {"model": {"preset": "m"}, "cluster": {"gpu": "g", "num_gpus": gpus}, "training": {"global_batch": 8}}
    return Case(id=cid, group=group, scenario=scenario, published={"iteration_time_s": 1.0})


def test_rank_agreement_counts_pairs_within_studies() -> None:
    """Two studies (8 and 16 GPUs): pairs compare only inside a study; a study spanning two groups
    is reported under both names."""
    cases = [_case("a", "x", 8), _case("b", "x", 8), _case("c", "y", 8), _case("d", "x", 16), _case("e", "x", 16)]
    times = {"a": (1.0, 1.1), "b": (2.0, 1.9), "c": (3.0, 1.5), "d": (1.0, 2.0), "e": (2.0, 1.0)}
    rows = [Row(k, "x", "iteration_time_s", p, s) for k, (p, s) in times.items()]
    by = {s.group: s for s in rank_agreement(cases, rows)}
    assert set(by) == {"x+y", "x"}
    # 8 GPUs: a<b agrees, a<c agrees, b<c disagrees (1.9 > 1.5); fastest a found
    assert (by["x+y"].pairs, round(by["x+y"].agreement_pct, 1), by["x+y"].fastest_found) == (3, 66.7, 1)
    # 16 GPUs: d<e published, e<d predicted
    assert (by["x"].pairs, by["x"].agreement_pct, by["x"].fastest_found) == (1, 0.0, 0)


def test_studies_do_not_span_publications() -> None:
    """The same plan measured by two software releases is two measurements, not two plans."""
    a, b = _case("a", "x", 8), dataclasses.replace(_case("b", "y", 8), source="a later release")
    rows = [Row("a", "x", "iteration_time_s", 1.0, 1.0), Row("b", "y", "iteration_time_s", 2.0, 1.0)]
    assert rank_agreement([a, b], rows) == []


@pytest.mark.xfail(strict=True, reason="known gap: DeepSpeed-2021 ZeRO-3 overheads are not modelled (docs/accuracy.md)")
def test_table2_ptdp_faster_than_zero3_as_published() -> None:
    """Megatron-LM Table 2: at the same model, GPU count and batch, PTD-P beats ZeRO-3 (6-70 %)."""
    cases = [c for c in load_cases(bundled_path("published_cases.yaml")) if c.id.startswith("megatron2021_t2")]
    rows = [Row(c.id, c.group, TIME, c.published[TIME], result_of(c.id)["step"]["time_s"]) for c in cases]
    (ranking,) = rank_agreement(cases, rows)
    assert ranking.studies == 5 and ranking.agreement_pct == 100.0


def test_validate_command_writes_json_csv_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`simulator validate FILE --json` prints one JSON object (ranking counts included: they once
    came out as numpy integers and broke the encoder); --csv and --markdown write the per-case table."""
    picked = [c for c in CASES if c["id"].startswith("megatron2021_t2") and c["id"].endswith("_174.6B_384")]
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(picked))
    csv_path, md_path = tmp_path / "t.csv", tmp_path / "t.md"
    assert main(["validate", str(path), "--json", "--csv", str(csv_path), "--markdown", str(md_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["case"] for r in data["rows"]] == [c["id"] for c in picked]
    assert sorted(s["group"] for s in data["summary"]) == ["megatron2021_t2_ptdp", "megatron2021_t2_zero3"]
    # PTD-P and ZeRO-3 at 384 GPUs are one study: one pair
    assert [(r["studies"], r["pairs"]) for r in data["ranking"]] == [(1, 1)]
    assert len(csv_path.read_text().splitlines()) == 1 + 2
    assert "megatron2021_t2_ptdp_174.6B_384" in md_path.read_text()


def test_validate_plot_writes_a_png(tmp_path: Path) -> None:
    """`--plot`: predicted against published per case and the error spread per group, as one PNG."""
    picked = [c for c in CASES if c["id"].startswith("megatron2021_t1")][:3]
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(picked))
    assert main(["validate", str(path), "--plot", str(tmp_path / "v.png")]) == 0
    data = (tmp_path / "v.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000


LLMFOUNDRY = bundled_path("llmfoundry/mpt_benchmarks.csv")
LLMFOUNDRY_PEAK_FLOPS = {"h100_80gb": 989e12, "a100_80gb": 312e12, "a100_40gb": 312e12}


def test_llmfoundry_table_transcribed_faithfully() -> None:
    """Every row of the MPT benchmark table as copied: micro-batch x accumulation x GPUs is the global
    batch, and the table's own MFU formula (README: (6 N s + 12 l d s^2) per sequence, N counted
    from the shape as 12 l d^2 + 13 l d + 2 d + V d + s d) turns its tokens/s back into its MFU."""
    with LLMFOUNDRY.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 191
    for r in rows:
        d, layers, s, vocab, gpus = (int(r[k]) for k in ("hidden", "layers", "seq_len", "vocab", "gpus"))
        assert int(r["micro_batch"]) * int(r["grad_accum"]) * gpus == int(r["global_batch"]), r
        params = 12 * layers * d * d + 13 * layers * d + 2 * d + vocab * d + s * d
        flops_per_seq = 6 * params * s + 12 * layers * d * s * s
        mfu_pct = 100 * flops_per_seq * float(r["tokens_per_s"]) / s / (gpus * LLMFOUNDRY_PEAK_FLOPS[r["gpu"]])
        assert mfu_pct == pytest.approx(float(r["mfu_pct"]), rel=1e-3), r


def test_llmfoundry_fsdp_runs() -> None:
    """MosaicML LLM Foundry's MPT runs under PyTorch FSDP (2023), a check not calibrated on. On A100,
    7B-70B models at sequences up to 4,096 come within MAPE 6.9 %. The rest is a known gap, pinned
    so that a change is noticed: long sequences and small models run slower than predicted (up to
    41 % on A100), and the H100 rows are predicted 9-54 % too fast (docs/accuracy.md)."""
    cases = {c.id: c for c in load_cases(LLMFOUNDRY)}
    rows = [r for c in cases.values() for r in simulate_case(c)]
    by_group: dict[str, list[float]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(abs(r.error_pct))
    assert set(by_group) == {"llmfoundry_h100_80gb", "llmfoundry_a100_80gb", "llmfoundry_a100_40gb"}
    assert mean(by_group["llmfoundry_a100_80gb"]) <= 18.0
    assert mean(by_group["llmfoundry_a100_40gb"]) <= 14.5
    assert mean(by_group["llmfoundry_h100_80gb"]) <= 31.5
    in_domain = [
        abs(r.error_pct)
        for r in rows
        if r.group != "llmfoundry_h100_80gb"
        and cases[r.case].scenario["model"]["seq_len"] <= 4096
        and cases[r.case].scenario["model"]["hidden"] >= 4096
    ]
    assert len(in_domain) == 32 and mean(in_domain) <= 8.0
    # the gap is one-sided: predictions are too fast, never too slow by more than the A100 spread
    assert max(r.error_pct for r in rows) <= 12.0


VTRAIN_HEADER = "# GPUs,global batch,micro batch,hidden size,attention heads,# layers,sequence length,"
VTRAIN_HEADER += "tensor parallelism,data parallelism,pipeline parallelism,iteration time (ms)"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("missing.yaml", None, ["missing.yaml: no such file"]),
        ("broken.yaml", "[1, 2", ["broken.yaml: not valid YAML (line 1, column 6)"]),
        ("mapping.yaml", "id: x\n", ["mapping.yaml: expected a list of cases (id, scenario, published)"]),
        (
            "cases.yaml",
            "- id: x\n  scenario: 3\n  published: {iteration_time_s: fast}\n- scenario: {}\n",
            [
                "cases.yaml: case 1 (x): scenario: expected a mapping",
                "cases.yaml: case 1 (x): published.iteration_time_s: expected a positive number, got 'fast'",
                "cases.yaml: case 2: missing 'id'",
                "cases.yaml: case 2: missing 'published'",
            ],
        ),
        ("other.csv", "a,b\n1,2\n", ["other.csv: not a known table of measured runs"]),
        (
            "vtrain.csv",
            "# GPUs,iteration time (ms)\n8,100\n",
            ["vtrain.csv: missing column 'global batch'", "vtrain.csv: missing column 'pipeline parallelism'"],
        ),
        (
            "foundry.csv",
            "gpu,model,hidden,heads,layers,vocab,seq_len,gpus,micro_batch,grad_accum,global_batch,"
            "fsdp_mixed_precision,activation_checkpointing,tokens_per_s,mfu_pct\n"
            "v100,mpt-7b,4096,32,32,50368,2048,8,6,1,48,DEFAULT,false,85144,46.44\n"
            "h100_80gb,mpt-7b,4096,32,32,50368,2048,8,6,1,48,DEFAULT,yes,85144,46.44\n",
            [
                "foundry.csv: line 2: gpu: 'v100' is not one of h100_80gb, a100_80gb, a100_40gb",
                "foundry.csv: line 3: activation_checkpointing: expected true or false, got 'yes'",
            ],
        ),
        (
            "vtrain_rows.csv",
            VTRAIN_HEADER + "\n8,16,2,1024,16,24,1024,2,2,2,219.7\n8,16,2,1024,16,24,1024,two,2,2,219.7\n",
            ["vtrain_rows.csv: line 3: tensor parallelism: expected a positive number, got 'two'"],
        ),
    ],
)
def test_validate_rejects_broken_files_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str | None, expected: list[str]
) -> None:
    """A broken validation file is exit code 2 and one `error:` line per problem naming the file, the
    case or line, and the key; nothing is simulated and no traceback is printed."""
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert all(line.startswith(f"error: {path.parent}") for line in lines), lines
    for want in expected:
        assert any(want in line for line in lines), (want, lines)


def test_validate_checks_output_folders_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --csv or --markdown path in a folder that does not exist fails at once, not after the run."""
    out = tmp_path / "no" / "t.csv"
    assert main(["validate", str(bundled_path("published_cases.yaml")), "--csv", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --csv {out}: no such folder {out.parent}"
