"""Data-parallel overlap as Megatron-Core / NeMo run it: weight all-gathers per bucket behind the first
forward of each chunk (overlap_param_gather), FP8 weight gathers, and the software-stack profiles that
set these defaults (specs/stacks.yaml)."""

import pytest
from test_engine_exact import REL, make_setup, step

from simulator.catalog.loader import bundled
from simulator.catalog.stacks import GENERIC, StackProfile, stack_profiles
from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer, static_time_s
from simulator.engine.spans import Stream, WaitReason
from simulator.enums import Category
from simulator.program.compile import compile_program
from simulator.scenario import setup_from_mapping
from simulator.scenario.canonical import resolved_scenario
from simulator.scenario.errors import ConfigError
from simulator.topology import build_topology
from simulator.workload import build_step
from simulator.workload.dp_comm import weight_gather


def dp16(**parallelism):
    """gpt3-125m, pure data parallelism over 2 DGX A100 nodes (dp 16, m = 4): the gathers cross the fabric."""
    plan = {"tp": 1, "pp": 1, "zero": 1, **parallelism}
    return make_setup({"num_gpus": 16, "gpus_per_node": 8}, plan, global_batch=64)


def with_framework(setup_fn, framework: dict, **parallelism):
    base = setup_fn(**parallelism).scenario.model_dump(mode="json", exclude_none=True)
    base["framework"] = {**base.get("framework", {}), **framework}
    return setup_from_mapping(base)


def test_first_bucket_waits_at_the_start_and_the_next_goes_out_when_it_is_reached() -> None:
    setup = with_framework(dp16, {"overlap_param_gather": True}, dp_overlap=True)
    assert setup.plan.param_gather_overlap
    work = build_step(setup)
    pricer = CommPricer(build_topology(setup.cluster), Layout.of(setup.plan), setup.cluster.collective_algorithm)
    chunk = compile_program(work, pricer).stages[0].chunks[0]
    chain = [b.param_sync for b in chunk.forward_first if b.param_sync]
    # one chunk on one stage: the embedding's bucket (with the final norm and the tied head), then one per layer
    assert len(chain) == 1 + setup.model.layers
    assert chunk.param_gather == ()  # nothing gathered after the optimizer
    result = step(setup).result
    gathers = sorted(
        (s for s in result.spans if s.stream is Stream.DP and s.name == "dp_param_allgather"), key=lambda s: s.start_s
    )
    assert len(gathers) == len(chain)
    first = static_time_s(pricer.topo, chain[0])  # alone on the fabric at the start of the step
    assert gathers[0].start_s == 0.0
    assert gathers[0].end_s == pytest.approx(first, rel=REL)
    compute = sorted(
        (s for s in result.spans if s.stream is Stream.COMPUTE and s.wait is None), key=lambda s: s.start_s
    )
    assert compute[0].start_s == pytest.approx(first, rel=REL)  # the first forward waited for it
    assert gathers[1].start_s == pytest.approx(first, rel=REL)  # issued as its block was reached, not before
    waits = [s for s in result.spans if s.wait is WaitReason.DP_COMM and s.awaited == "dp_param_allgather"]
    assert waits and waits[0].start_s == 0.0
    # the step ends with the optimizer: no data-parallel collective after it starts
    optimizer = next(s for s in compute if s.name == "optimizer")
    assert all(s.start_s < optimizer.start_s for s in result.spans if s.stream is Stream.DP)
    assert result.time_s == pytest.approx(optimizer.end_s, rel=REL)


@pytest.mark.parametrize(
    "parallelism",
    [
        {},
        {"tp": 2, "pp": 2},
        {"tp": 2, "pp": 2, "schedule": "interleaved", "virtual_stages": 2},
    ],
    ids=["dp16", "pp2", "interleaved"],
)
@pytest.mark.parametrize("engine", ["event", "analytical"])
def test_overlapped_gathers_hide_behind_the_forward(parallelism: dict, engine: str) -> None:
    def run(overlap: bool):
        s = with_framework(dp16, {"overlap_param_gather": overlap}, dp_overlap=True, **parallelism)
        raw = s.scenario.model_dump(mode="json", exclude_none=True)
        raw["simulation"] = {"engine": engine}
        from simulator.simulate import simulate

        return simulate(setup_from_mapping(raw)).to_dict()["step"]

    off, on = run(False), run(True)
    assert on["time_s"] < off["time_s"]
    assert on["breakdown_s"][Category.COMM_DP.value] < off["breakdown_s"][Category.COMM_DP.value]


def test_fp8_weight_gathers_move_one_byte_per_parameter() -> None:
    def gather_bytes(fp8_gather: bool) -> float:
        raw = {
            "name": "fp8-gather",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 16},
            "parallelism": {"tp": 1, "pp": 1, "zero": 1},
            "training": {"global_batch": 64, "precision": "fp8"},
            "framework": {"fp8_param_gather": fp8_gather},
        }
        op = weight_gather(setup_from_mapping(raw), 1e6)
        assert op is not None
        return op.bytes

    assert gather_bytes(False) == 2e6  # the BF16 working copy of FP8 recipes
    assert gather_bytes(True) == 1e6  # NeMo: "reducing the all-gather overhead by half"


@pytest.mark.parametrize(
    ("framework", "parallelism", "training", "message"),
    [
        ({"stack": "megatron-lm-1999"}, {}, {}, "framework.stack: unknown stack 'megatron-lm-1999'"),
        (
            {"overlap_param_gather": True},
            {"zero": 0},
            {},
            "framework.overlap_param_gather: needs parallelism.zero 1 or 2",
        ),
        (
            {"overlap_param_gather": True},
            {"dp_overlap": False},
            {},
            "framework.overlap_param_gather: needs parallelism.dp_overlap",
        ),
        ({"fp8_param_gather": True}, {}, {}, "framework.fp8_param_gather: needs training.precision fp8"),
    ],
)
def test_settings_a_plan_cannot_honour_are_input_errors(framework, parallelism, training, message) -> None:
    raw = {
        "name": "bad",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
        "parallelism": parallelism,
        "training": {"global_batch": 8, **training},
        "framework": framework,
    }
    with pytest.raises(ConfigError) as err:
        setup_from_mapping(raw)
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems


def test_every_stack_profile_is_valid_and_cites_each_setting_it_makes() -> None:
    profiles = stack_profiles()
    assert GENERIC in profiles
    assert set(profiles) == set(bundled("stacks"))
    defaults = StackProfile(description="")
    for name, profile in profiles.items():
        assert profile.description.strip(), name
        for key in set(StackProfile.model_fields) - {"description", "sources"}:
            if getattr(profile, key) != getattr(defaults, key):
                assert profile.sources.get(key, "").strip(), f"{name}: {key} has no source"
        assert profile.overlap_param_gather <= profile.dp_overlap, name  # Megatron-Core requires both


def test_a_stack_sets_defaults_the_scenario_overrides_and_the_resolved_scenario_records() -> None:
    stacks = [n for n, p in stack_profiles().items() if p.overlap_param_gather]
    assert stacks, "some profile overlaps the weight gathers"
    name = stacks[0]
    raw = {
        "name": "stacked",
        "model": {"preset": "gpt3-125m"},
        "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 16},
        "parallelism": {"tp": 1, "pp": 1, "zero": 1},
        "training": {"global_batch": 64},
        "framework": {"stack": name},
    }
    setup = setup_from_mapping(raw)
    assert setup.plan.dp_overlap and setup.plan.param_gather_overlap
    resolved = resolved_scenario(setup)
    assert resolved["framework"]["stack"] == name
    assert resolved["parallelism"]["dp_overlap"] is True
    assert resolved["framework"]["overlap_param_gather"] is True
    assert setup_from_mapping(resolved).plan == setup.plan  # the resolved scenario stands alone
    raw["parallelism"]["dp_overlap"] = False  # the scenario's own key wins, and takes the gathers with it
    off = setup_from_mapping(raw)
    assert not off.plan.dp_overlap and not off.plan.param_gather_overlap
    raw["parallelism"]["zero"] = 0  # a stack's default applies only where it can
    del raw["parallelism"]["dp_overlap"]
    assert not setup_from_mapping(raw).plan.param_gather_overlap


def test_interleaved_chunks_gather_one_bucket_each_before_their_first_forward() -> None:
    """NeMo docs, "Communication Overlap": with pipelining the DP communication's granularity is the
    layers of a virtual stage; Megatron-Core's interleaved schedule syncs the next chunk one chunk ahead."""
    setup = with_framework(
        dp16, {"overlap_param_gather": True}, dp_overlap=True, tp=2, pp=2, schedule="interleaved", virtual_stages=2
    )
    work = build_step(setup)
    pricer = CommPricer(build_topology(setup.cluster), Layout.of(setup.plan), setup.cluster.collective_algorithm)
    for stage in compile_program(work, pricer).stages:
        for chunk in stage.chunks:
            synced = [i for i, b in enumerate(chunk.forward_first) if b.param_sync]
            assert synced == [0], (chunk.chunk, synced)
            assert [b.segment for b in chunk.forward_first] == [b.segment for b in chunk.forward]
    result = step(setup).result
    gathers = [s for s in result.spans if s.stream is Stream.DP and s.name == "dp_param_allgather"]
    assert len(gathers) == setup.plan.chunks  # one per chunk, on its stage


def test_fp32_gradients_double_the_reduction_and_the_gradient_memory() -> None:
    """Megatron's --bf16 keeps fp32 main grads and all-reduces them in fp32; fp16 runs keep fp16 ones."""

    def setup(precision: str, fp32: bool):
        raw = {
            "name": "grads",
            "model": {"preset": "gpt3-125m"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
            "parallelism": {"zero": 0},
            "training": {"global_batch": 8, "precision": precision},
            "framework": {"fp32_gradients": fp32},
        }
        return setup_from_mapping(raw)

    from simulator.workload.dp_comm import gradient_reduction

    bf16, fp32 = setup("bf16", False), setup("bf16", True)
    assert fp32.plan.fp32_gradients and not setup("fp16", True).plan.fp32_gradients
    op16, op32 = gradient_reduction(bf16, 1e6), gradient_reduction(fp32, 1e6)
    assert op16 is not None and op32 is not None
    assert (op16.bytes, op32.bytes) == (2e6, 4e6)
    from simulator.memory.model_state import stage_model_state

    assert stage_model_state(fp32, 0).gradients_bytes == 2 * stage_model_state(bf16, 0).gradients_bytes
