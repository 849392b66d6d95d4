"""The plan space a search enumerates: the structural rules, the default bounds and the user's
--fix/--max/--min options."""

import pytest
from conftest import scenario_file

from simulator.scenario.errors import ConfigError
from simulator.search.evaluate import load_base
from simulator.search.rank import pareto_front, rank
from simulator.search.space import Bounds, enumerate_plans, parse_bounds

NONE = Bounds({}, {}, {})


@pytest.fixture(scope="module")
def gpt3():
    return load_base(scenario_file("gpt3-175b-1024xa100"), [])[1]


@pytest.fixture(scope="module")
def gpt3_plans(gpt3):
    return list(enumerate_plans(gpt3, NONE))


def test_every_plan_uses_every_gpu_and_the_global_batch(gpt3, gpt3_plans) -> None:
    assert len(gpt3_plans) > 1000
    for p in gpt3_plans:
        assert p.tp * p.pp * p.cp * p.dp == 1024
        assert 1536 % (p.dp * p.micro_batch) == 0


def test_structural_rules(gpt3, gpt3_plans) -> None:
    assert {p.tp for p in gpt3_plans} == {1, 2, 4, 8}  # divides 96 heads, stays within an 8-GPU node
    assert {p.pp for p in gpt3_plans} == {1, 2, 4, 8, 16, 32}  # divides 96 layers and 1024/tp
    assert {p.cp for p in gpt3_plans} == {1}  # 2,048 tokens: below 4,096 per CP rank
    assert max(p.micro_batch for p in gpt3_plans) == 8
    for p in gpt3_plans:
        if p.schedule == "interleaved":
            assert p.virtual_stages >= 2 and 96 % (p.pp * p.virtual_stages) == 0
            assert (1536 // (p.dp * p.micro_batch)) % p.pp == 0  # Megatron's interleaving rule
        else:
            assert p.virtual_stages == 1
        if p.pp == 1:
            assert p.schedule == "1f1b"
        if p.zero >= 2:
            assert p.pp == 1  # no ZeRO-2/3 with pipelines unless asked for


def test_megatron_plan_is_a_candidate(gpt3_plans) -> None:
    labels = {p.label() for p in gpt3_plans}
    assert "TP8 PP8 DP16 v2 Z1 mb1 full" in labels


def test_plans_are_unique_and_ordered(gpt3) -> None:
    first, again = list(enumerate_plans(gpt3, NONE)), list(enumerate_plans(gpt3, NONE))
    assert first == again
    assert len(set(first)) == len(first)


def test_llama3_405b_uneven_pipeline_split() -> None:
    """126 layers on 16 stages (first and last stage one layer short) is in the space."""
    frame = load_base(scenario_file("llama3-405b-16384xh100"), [])[1]
    bounds = parse_bounds(["tp=8", "zero=1", "recompute=full", "micro_batch=1", "schedule=1f1b"], [], [])
    plans = list(enumerate_plans(frame, bounds))
    assert 16 in {p.pp for p in plans}
    assert {p.cp for p in plans} <= {1, 2}  # 8,192 tokens: at least 4,096 per CP rank
    # interleaved too: 32 chunks of 4 layers with the first and last holding 3 (the bundled plan)
    interleaved = parse_bounds(["tp=8", "pp=16", "cp=1", "zero=1", "recompute=full", "micro_batch=1"], [], [])
    assert {p.virtual_stages for p in enumerate_plans(frame, interleaved) if p.schedule == "interleaved"} == {2, 4}


def test_recompute_layers_knob() -> None:
    """The scenario's limit (405B: the first layer of each chunk) is kept for full-recompute plans;
    --fix tries others, and a limit covering a whole chunk is plain full recompute (0)."""
    frame = load_base(scenario_file("llama3-405b-16384xh100"), [])[1]
    assert frame.recompute_layers == 1
    base = ["tp=8", "pp=16", "cp=1", "zero=1", "micro_batch=1", "schedule=1f1b"]
    kept = list(enumerate_plans(frame, parse_bounds([*base, "recompute=full,none"], [], [])))
    assert {(p.recompute, p.recompute_layers) for p in kept} == {("full", 1), ("none", 0)}
    tried = list(enumerate_plans(frame, parse_bounds([*base, "recompute=full", "recompute_layers=0,2,4,9"], [], [])))
    assert sorted(p.recompute_layers for p in tried) == [0, 2, 4]  # 126 layers on 16 stages: at most 8 each
    sections = {p.recompute_layers: p.sections()["parallelism"] for p in tried}
    assert sections[2]["recompute_layers"] == 2 and "recompute_layers" not in sections[0]
    assert next(p for p in tried if p.recompute_layers == 2).label().endswith("full(2) overlap")


def test_flash_attention_drops_selective_recompute() -> None:
    frame = load_base(scenario_file("gpt3-125m-8xa100"), [])[1]
    assert frame.flash_attention
    assert {p.recompute for p in enumerate_plans(frame, NONE)} == {"none", "full"}
    asked = parse_bounds(["recompute=selective"], [], [])
    assert {p.recompute for p in enumerate_plans(frame, asked)} == {"selective"}


def test_bounds_fix_max_min(gpt3) -> None:
    bounds = parse_bounds(["tp=4,8", "parallelism.zero=1", "recompute=full"], ["pp=8"], ["training.micro_batch=2"])
    plans = list(enumerate_plans(gpt3, bounds))
    assert plans
    assert {p.tp for p in plans} == {4, 8}
    assert {p.zero for p in plans} == {1}
    assert max(p.pp for p in plans) == 8
    assert min(p.micro_batch for p in plans) == 2


def test_fixing_zero3_allows_it_with_pipelines(gpt3) -> None:
    plans = list(enumerate_plans(gpt3, parse_bounds(["zero=3", "tp=8", "micro_batch=1", "recompute=full"], [], [])))
    assert {p.zero for p in plans} == {3}
    assert max(p.pp for p in plans) > 1


def test_raising_a_default_bound(gpt3) -> None:
    plans = list(enumerate_plans(gpt3, parse_bounds(["tp=16", "zero=1", "recompute=full", "micro_batch=1"], [], [])))
    assert {p.tp for p in plans} == {16}


@pytest.mark.parametrize(
    ("fix", "at_most", "needle"),
    [
        (["tpp=4"], [], "--fix tpp=4"),
        (["tp"], [], "--fix tp"),
        (["tp=four"], [], "whole numbers"),
        (["tp=0"], [], "positive"),
        (["schedule=zigzag"], [], "schedule is one of"),
        (["sequence_parallel=maybe"], [], "true or false"),
        ([], ["schedule=1f1b"], "--max schedule"),
        ([], ["pp=2,4"], "one number"),
    ],
)
def test_bad_bounds_name_the_option(fix: list[str], at_most: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_bounds(fix, at_most, [])
    assert len(err.value.problems) == 1
    assert needle in err.value.problems[0]


def _r(label: str, time: float, cost: float, energy: float) -> dict:
    return {"label": label, "objectives": {"time": time, "cost": cost, "energy": energy}}


def test_rank_and_ties() -> None:
    results = [_r("b", 2, 1, 1), _r("a", 1, 3, 3), _r("d", 2, 1, 1), _r("c", 2, 0.5, 1)]
    assert [r["label"] for r in rank(results, "time")] == ["a", "c", "b", "d"]
    assert [r["label"] for r in rank(results, "cost")] == ["c", "b", "d", "a"]
    assert [r["label"] for r in rank(results, "energy")][-1] == "a"


def test_pareto_front() -> None:
    results = [_r("fast", 1, 3, 3), _r("cheap", 3, 1, 2), _r("dominated", 3, 3, 3), _r("green", 2, 2, 1)]
    assert pareto_front(results) == [0, 1, 3]
