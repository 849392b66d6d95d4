"""The search's mixture-of-experts knobs (ep, etp, moe_dispatcher, moe_overlap): only for MoE models, only
plans that MoE parallel folding allows, each one a scenario the resolver accepts; dense searches
unchanged."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_MOE_MODEL, scenario_file

from simulator.cli import main
from simulator.scenario.errors import ConfigError
from simulator.search.driver import search
from simulator.search.evaluate import load_base, resolve_plan, screen, with_plan
from simulator.search.space import MOE_KNOBS, Bounds, Frame, PlanKnobs, enumerate_plans, parse_bounds

NONE = Bounds({}, {}, {})

# A small MoE model (its shape inline, no preset): 8 routed experts of width 1024 plus a shared one,
# the first layer dense; 16 GPUs in two nodes.
TINY_MOE: dict[str, Any] = {
    "name": "tiny-moe",
    "model": TINY_MOE_MODEL,
    "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 16, "gpus_per_node": 8},
    "parallelism": {"tp": 1, "pp": 1},
    "training": {"global_batch": 64, "micro_batch": 1},
}
SMALL = ["zero=1", "recompute=none", "micro_batch=1,2"]  # keeps the space to a few hundred plans


def write(tmp_path: Path, scenario: dict[str, Any], name: str = "moe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(scenario))
    return path


def variant(**changes: Any) -> dict[str, Any]:
    """TINY_MOE with some of `model.moe` / `parallelism` replaced."""
    sc = json.loads(json.dumps(TINY_MOE))
    sc["model"]["moe"].update(changes.pop("moe", {}))
    sc["parallelism"].update(changes.pop("parallelism", {}))
    sc["model"].update(changes)
    return sc


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[dict[str, Any], Frame]:
    return load_base(write(tmp_path, TINY_MOE), [])


def legal(model_moe: dict[str, Any], tp: int, cp: int, dp: int, ep: int, etp: int) -> bool:
    """The folding rules written out independently of scenario/rules.py (Liu et al. 2025, sec. 3)."""
    shared = model_moe.get("shared_experts", 0) * model_moe.get("shared_ffn_hidden", model_moe["expert_ffn_hidden"])
    return (
        model_moe["experts"] % ep == 0
        and (tp * cp * dp) % (ep * etp) == 0
        and model_moe["expert_ffn_hidden"] % etp == 0
        and shared % tp == 0
    )


def test_enumerates_exactly_the_legal_expert_layouts(tiny: tuple[dict[str, Any], Frame]) -> None:
    raw, frame = tiny
    plans = list(enumerate_plans(frame, parse_bounds(SMALL, [], [])))
    assert plans and len(set(plans)) == len(plans)
    moe = TINY_MOE["model"]["moe"]
    seen: dict[tuple[int, int, int], set[tuple[int, int]]] = {}
    for p in plans:
        assert p.ep >= 1 and p.etp in {1, p.tp}, p
        assert legal(moe, p.tp, p.cp, p.dp, p.ep, p.etp), p
        if p.tp > 1 and p.ep > 1:
            assert p.sequence_parallel, p  # Megatron-Core requires SP there; the scenario has it off
        seen.setdefault((p.tp, p.cp, p.dp), set()).add((p.ep, p.etp))
    # every legal (ep, etp) of each layout is there, not just some
    for (tp, cp, dp), layouts in seen.items():
        expected = {(ep, etp) for ep in (1, 2, 4, 8) for etp in {1, tp} if legal(moe, tp, cp, dp, ep, etp)}
        assert layouts == expected, (tp, cp, dp)
    assert {p.ep for p in plans} == {1, 2, 4, 8}
    assert {p.tp for p in plans} == {1, 2, 4, 8}


def test_every_moe_plan_resolves_and_is_screened(tiny: tuple[dict[str, Any], Frame]) -> None:
    """The resolver (scenario/rules.py) accepts every plan; the memory model screens each one."""
    raw, frame = tiny
    plans = list(enumerate_plans(frame, parse_bounds(SMALL, [], [])))
    for p in plans:
        scenario = with_plan(raw, p)
        par = scenario["parallelism"]
        assert {k: par[k] for k in MOE_KNOBS} == {
            "ep": p.ep,
            "etp": p.etp,
            "moe_dispatcher": "alltoall",
            "moe_overlap": False,
        }
        setup = resolve_plan(scenario)
        assert setup is not None, p.label()
        assert (setup.plan.ep, setup.plan.etp) == (p.ep, p.etp)
    assert len(screen(raw, plans)) == len(plans)


def test_experts_that_do_not_fold_limit_ep(tmp_path: Path) -> None:
    """6 experts on 16 GPUs: ep 3 and 6 divide the experts but not tp*cp*dp (a power of two)."""
    frame = load_base(write(tmp_path, variant(moe={"experts": 6})), [])[1]
    assert {p.ep for p in enumerate_plans(frame, parse_bounds(SMALL, [], []))} == {1, 2}


def test_etp_must_divide_the_expert_width(tmp_path: Path) -> None:
    """Experts 1,020 wide: etp 8 does not divide them, so tp 8 plans keep etp 1 only."""
    frame = load_base(write(tmp_path, variant(moe={"expert_ffn_hidden": 1020, "shared_ffn_hidden": 1024})), [])[1]
    plans = list(enumerate_plans(frame, parse_bounds(SMALL, [], [])))
    assert {p.etp for p in plans if p.tp == 8} == {1}
    assert {p.etp for p in plans if p.tp == 4} == {1, 4}


def test_fixing_moe_knobs(tiny: tuple[dict[str, Any], Frame]) -> None:
    _, frame = tiny
    fixed = list(enumerate_plans(frame, parse_bounds([*SMALL, "ep=2,4", "etp=1"], [], [])))
    assert {(p.ep, p.etp) for p in fixed} == {(2, 1), (4, 1)}
    bounded = list(enumerate_plans(frame, parse_bounds(SMALL, ["ep=2"], ["ep=2"])))
    assert {p.ep for p in bounded} == {2}
    no_sp = list(enumerate_plans(frame, parse_bounds([*SMALL, "sequence_parallel=false"], [], [])))
    assert no_sp and not any(p.tp > 1 and p.ep > 1 for p in no_sp)
    # dispatcher and overlap: the scenario's by default; --fix tries several, never overlap with GPipe
    both = list(enumerate_plans(frame, parse_bounds([*SMALL, "moe_dispatcher=alltoall,deepep"], [], [])))
    assert len(both) == 2 * len(list(enumerate_plans(frame, parse_bounds(SMALL, [], []))))
    overlapped = list(enumerate_plans(frame, parse_bounds([*SMALL, "moe_overlap=true"], [], [])))
    assert overlapped and all(p.moe_overlap and p.schedule != "gpipe" for p in overlapped)


def test_scenario_dispatcher_and_overlap_are_kept(tmp_path: Path) -> None:
    sc = variant(parallelism={"moe_dispatcher": "deepep", "moe_overlap": True})
    frame = load_base(write(tmp_path, sc), [])[1]
    plans = list(enumerate_plans(frame, parse_bounds(SMALL, [], [])))
    assert {(p.moe_dispatcher, p.moe_overlap) for p in plans} == {("deepep", True)}
    assert all(p.schedule != "gpipe" for p in plans)


def test_moe_plan_label() -> None:
    plan = PlanKnobs(2, 8, 1, 8, "interleaved", 7, 1, 1, "none", True, False, 0, 8, 1, "alltoall", False)
    assert plan.label() == "TP2 PP8 DP8 v7 SP Z1 mb1 EP8 ETP1"
    deepep = PlanKnobs(1, 4, 1, 64, "interleaved", 4, 1, 1, "none", False, False, 0, 64, 1, "deepep", True)
    assert deepep.label() == "TP1 PP4 DP64 v4 Z1 mb1 EP64 deepep a2a-overlap"


def test_dense_plans_set_no_moe_key() -> None:
    frame = load_base(scenario_file("gpt3-125m-8xa100"), [])[1]
    for p in enumerate_plans(frame, NONE):
        assert p.ep == 0 and not set(p.sections()["parallelism"]) & set(MOE_KNOBS)
        assert "EP" not in p.label()


def test_moe_knobs_for_a_dense_model_are_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file("gpt3-125m-8xa100")
    with pytest.raises(ConfigError, match="ep is a mixture-of-experts knob"):
        search(path, [], parse_bounds(["ep=2"], [], []))
    assert main(["search", str(path), "--no-store", "--fix", "moe_overlap=true", "--max", "etp=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --max etp=2: etp is a mixture-of-experts knob and the model has no model.moe",
        "error: --fix moe_overlap=true: moe_overlap is a mixture-of-experts knob and the model has no model.moe",
    ]


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("moe_dispatcher=nccl", "moe_dispatcher is one of alltoall, deepep, allgather, got 'nccl'"),
        ("moe_overlap=maybe", "moe_overlap takes true or false, got 'maybe'"),
        ("ep=0", "ep must be positive, got 0"),
    ],
)
def test_bad_moe_knob_values(option: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_bounds([option], [], [])


def test_search_help_names_the_moe_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "ep, etp, moe_dispatcher, moe_overlap" in out
