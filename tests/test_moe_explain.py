"""`simulator explain` for mixtures of experts: every MoE role has its row, role rows are split out of
their category's time (and priced in energy and money as the dense rows are), and the MoE parts of a
step add up. With the MoE engine merged, test_moe_validation.py checks them on DeepSeek-V3."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import BOOKS_REL, TINY_MOE_MODEL, scenario_file

from simulator.cli import main
from simulator.engine.spans import Span, Stream
from simulator.enums import Category, OpKind, Phase, Role
from simulator.explain.report import explain
from simulator.explain.shares import (
    GEMM_KINDS,
    LABELS,
    MOE_PARTS,
    OTHER_GEMMS,
    ROLE_SHARES,
    _role_rows,
    compute_by_role,
    gemm_by_kind,
    moe_parts,
)
from simulator.program.segments import SegmentBuilder
from simulator.scenario import load_setup
from simulator.simulate import simulate
from simulator.workload.ops import Op

MOE_ROLES = (
    Role.ROUTER,
    Role.TOKEN_PERMUTE,
    Role.EXPERT_UP,
    Role.EXPERT_DOWN,
    Role.SHARED_EXPERT_UP,
    Role.SHARED_EXPERT_DOWN,
    Role.EXPERT_IMBALANCE,
    Role.MLA_DOWN,
    Role.MLA_UP,
    Role.MTP_PROJ,
)
SMALL = scenario_file("gpt3-125m-8xa100")


def test_every_moe_role_has_a_label() -> None:
    """A GEMM kind, a row split out of other compute, or (imbalance) a category of the breakdown."""
    for role in MOE_ROLES:
        as_gemm = Op("x", OpKind.GEMM, Phase.FORWARD, role=role)
        labelled = role in GEMM_KINDS or role in ROLE_SHARES or as_gemm.category in LABELS
        assert labelled, role
    assert Op("x", OpKind.GEMM, Phase.FORWARD, role=Role.EXPERT_IMBALANCE).category in LABELS
    assert Category.COMM_EP in LABELS and Category.EXPERT_IMBALANCE in LABELS
    labels = [*GEMM_KINDS.values(), OTHER_GEMMS, *ROLE_SHARES.values(), *LABELS.values()]
    assert len(labels) == len(set(labels))  # no two rows share a label


def test_every_moe_role_is_in_a_part() -> None:
    """The MoE summary covers every MoE role (imbalance through its category) and the all-to-all."""
    roles = {r for which in MOE_PARTS.values() if not isinstance(which, Category) for r in which}
    assert roles == set(MOE_ROLES) - {Role.EXPERT_IMBALANCE}
    assert {w for w in MOE_PARTS.values() if isinstance(w, Category)} == {
        Category.COMM_EP,
        Category.EXPERT_IMBALANCE,
    }


def moe_segment_span() -> tuple[Span, dict[str, float]]:
    """One compute span of an MoE layer's ops with made-up durations (ms)."""
    ms = {
        "router_gemm": 1.0,
        "router_topk": 2.0,
        "permute": 3.0,
        "norm": 5.0,
        "expert_up": 7.0,
        "expert_down": 11.0,
        "shared_up": 13.0,
        "imbalance": 17.0,
        "recompute_up": 19.0,
        "attention": 23.0,
    }
    ops = [
        Op("router_gemm", OpKind.GEMM, Phase.FORWARD, role=Role.ROUTER),
        Op("router_topk", OpKind.ELEMENTWISE, Phase.FORWARD, role=Role.ROUTER),
        Op("permute", OpKind.ELEMENTWISE, Phase.FORWARD, role=Role.TOKEN_PERMUTE),
        Op("norm", OpKind.ELEMENTWISE, Phase.FORWARD),
        Op("expert_up", OpKind.GEMM, Phase.FORWARD, role=Role.EXPERT_UP),
        Op("expert_down", OpKind.GEMM, Phase.BACKWARD, role=Role.EXPERT_DOWN),
        Op("shared_up", OpKind.GEMM, Phase.FORWARD, role=Role.SHARED_EXPERT_UP),
        Op("imbalance", OpKind.GEMM, Phase.FORWARD, role=Role.EXPERT_IMBALANCE),
        Op("recompute_up", OpKind.GEMM, Phase.RECOMPUTE, role=Role.EXPERT_UP),
        Op("attention", OpKind.ATTENTION, Phase.FORWARD),
    ]
    builder = SegmentBuilder(timer=lambda op: ms[op.name] / 1e3, host_dispatch_s=0.0, sm_count=132)
    seg = builder.build("moe layer", ops)
    # the span ran twice as long as the segment's template (scaled, as a slowed-down span is)
    return Span(0, Stream.COMPUTE, seg.name, 0.0, 2 * seg.duration_s, segment=seg), ms


def test_compute_split_by_role() -> None:
    span, ms = moe_segment_span()
    split = {k: v * 1e3 / 2 for k, v in compute_by_role([span], ranks=1).items()}
    assert split == pytest.approx(
        {
            (Category.GEMM, Role.ROUTER): ms["router_gemm"],
            (Category.GEMM, Role.EXPERT_UP): ms["expert_up"],
            (Category.GEMM, Role.EXPERT_DOWN): ms["expert_down"],
            (Category.GEMM, Role.SHARED_EXPERT_UP): ms["shared_up"],
            (Category.OTHER_COMPUTE, Role.ROUTER): ms["router_topk"],
            (Category.OTHER_COMPUTE, Role.TOKEN_PERMUTE): ms["permute"],
            # every op of other compute, its roles included, to take their part of the category
            (Category.OTHER_COMPUTE, None): ms["router_topk"] + ms["permute"] + ms["norm"],
            (Category.ATTENTION, None): ms["attention"],
        }
    )
    # imbalance and recomputation are categories of their own, not split by role
    assert gemm_by_kind([span], 1)["GEMM: routed experts up (+gate)"] == pytest.approx(2 * ms["expert_up"] / 1e3)


def test_role_rows_share_their_category_and_are_priced() -> None:
    """The category's time split in proportion; energy and money follow each row's time."""
    setup = load_setup(SMALL)
    span, ms = moe_segment_span()
    split = compute_by_role([span], ranks=1)
    rows = _role_rows(setup, Category.OTHER_COMPUTE, LABELS[Category.OTHER_COMPUTE], 1.0, split)
    assert [r.label for r in rows] == [
        LABELS[Category.OTHER_COMPUTE],
        "MoE token permutation and un-permutation",
        "MoE router (softmax, top-k)",
    ]
    assert [r.time_s for r in rows] == pytest.approx([5 / 10, 3 / 10, 2 / 10])
    assert sum(r.time_s for r in rows) == pytest.approx(1.0, rel=BOOKS_REL)
    watts = {r.energy_J / r.time_s for r in rows}
    assert max(watts) == pytest.approx(min(watts))  # one category, one power draw
    assert [r.role for r in rows] == [None, Role.TOKEN_PERMUTE, Role.ROUTER]
    # no role in the category: one row, as for a dense model
    (only,) = _role_rows(setup, Category.ATTENTION, LABELS[Category.ATTENTION], 1.0, split)
    assert (only.label, only.time_s, only.role) == (LABELS[Category.ATTENTION], 1.0, None)
    # the parts: the router's GEMM and its top-k would be one part; here only its top-k ran
    parts = moe_parts(rows)
    assert parts["router"].time_s == pytest.approx(0.2) and parts["token permutation"].time_s == pytest.approx(0.3)
    assert parts["router"].energy_J == rows[2].energy_J and parts["router"].cost_usd == rows[2].cost_usd
    assert parts["routed expert GEMMs"].time_s == 0.0


def tiny_moe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-moe.yaml"
    sc = {
        "name": "tiny-moe",
        "model": TINY_MOE_MODEL,
        "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8},
        "parallelism": {"tp": 1, "pp": 1, "ep": 8},
        "training": {"global_batch": 16, "micro_batch": 1},
    }
    path.write_text(yaml.safe_dump(sc))
    return path


def test_moe_report_has_its_parts_and_claim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An MoE scenario's report: the `moe` parts (time, energy, money) and the GEMM-share claim of the
    Megatron-Core MoE report, in JSON and text; the shares still close to the step."""
    path = tiny_moe(tmp_path)
    setup = load_setup(path)
    result = simulate(setup)
    report = explain(setup, result, with_variants=False)
    assert list(report["moe"]) == list(MOE_PARTS)
    assert all(set(v) == {"time_s", "energy_J", "cost_usd"} for v in report["moe"].values())
    assert sum(v["time_s"] for v in report["moe"].values()) <= report["totals"]["time_s"]
    assert report["totals"]["time_s"] == pytest.approx(result.step.time_s, rel=BOOKS_REL)
    claim = report["claims"]["moe_gemm_share_of_step_time"]
    assert 0 < claim["measured"] < 1 and "50 %" in claim["claim"]
    assert main(["explain", str(path), "--no-variants"]) == 0
    out = capsys.readouterr().out
    assert "mixture of experts (share of time, energy, money):" in out
    assert "expert all-to-all (exposed)" in out and "MoE GEMMs are under 50 % of the step" in out


def test_dense_report_has_no_moe_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(SMALL), "--no-variants", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "moe" not in report and "moe_gemm_share_of_step_time" not in report["claims"]
    gemm_roles = {s["role"] for s in report["shares"] if s["category"] == "gemm"}
    assert gemm_roles == {"qkv", "attn_proj", "mlp_up", "mlp_down", "lm_head"}
