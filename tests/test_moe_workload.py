"""The MoE workload: FLOPs per token against Megatron-LM's counts (issue 12), plan-invariance, rows per
expert, the expert exchanges as engine flows, and moe_overlap's accounting."""

import pytest
from conftest import DEEPSEEK_V3 as DEEPSEEK_V3_WITH_MTP

from simulator.enums import Category, CommGroup, LayerKind, Role
from simulator.scenario.load import setup_from_mapping
from simulator.simulate import simulate
from simulator.workload import build_step
from simulator.workload.expert_load import busiest_rank_factor
from simulator.workload.flops import step_flops
from simulator.workload.moe import moe_shapes
from simulator.workload.ops import CommOp, Op

DEEPSEEK_V3 = {**DEEPSEEK_V3_WITH_MTP, "mtp_layers": 0}
QWEN3_235B = {
    "layers": 94, "hidden": 4096, "heads": 64, "kv_heads": 4, "head_dim": 128, "vocab": 151936, "seq_len": 4096,
    "activation": "swiglu", "moe": {"experts": 128, "top_k": 8, "expert_ffn_hidden": 1536},
}  # fmt: skip
QWEN3_30B = {
    "layers": 48, "hidden": 2048, "heads": 32, "kv_heads": 4, "head_dim": 128, "vocab": 151936, "seq_len": 4096,
    "activation": "swiglu", "moe": {"experts": 128, "top_k": 8, "expert_ffn_hidden": 768},
}  # fmt: skip
MIXTRAL_8X22B = {
    "layers": 56, "hidden": 6144, "heads": 48, "kv_heads": 8, "vocab": 32000, "seq_len": 4096,
    "activation": "swiglu", "moe": {"experts": 8, "top_k": 2, "expert_ffn_hidden": 16384},
}  # fmt: skip


def _setup(model: dict, gpus: int = 1, global_batch: int = 1, **parallelism: object):
    return setup_from_mapping(
        {
            "name": "moe",
            "model": model,
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": gpus},
            "parallelism": parallelism,
            "training": {"global_batch": global_batch, "flash_attention": True},
        }
    )


def _flops_per_token(setup) -> float:
    return step_flops(build_step(setup)).model / setup.tokens_per_step


# Issue 12: Megatron-LM's num_floating_point_operations (which halves causal attention) plus that half,
# per token at 4,096 tokens.
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (DEEPSEEK_V3, 2.805e11),
        ({**DEEPSEEK_V3, "mtp_layers": 1}, 2.912e11),
        (QWEN3_235B, 1.669e11),
        (QWEN3_30B, 2.784e10),
        (MIXTRAL_8X22B, 2.506e11),
    ],
)
def test_model_flops_per_token_match_megatron_lm_with_full_attention(model: dict, expected: float) -> None:
    assert _flops_per_token(_setup(model)) == pytest.approx(expected, rel=0.005)


def test_model_flops_do_not_depend_on_the_plan() -> None:
    """Experts split over EP and ETP, latent down-projections on SP shards: the same FLOPs."""
    one = _flops_per_token(_setup({**DEEPSEEK_V3, "mtp_layers": 1}))
    split = _setup({**DEEPSEEK_V3, "mtp_layers": 1}, gpus=16, global_batch=8, tp=2, pp=4, ep=2, sequence_parallel=True)
    assert _flops_per_token(split) == pytest.approx(one, rel=1e-12)


def test_router_flops_are_executed_but_not_model_flops() -> None:
    work = build_step(_setup(QWEN3_30B))
    router = [i for _, i in work.rank_items() if isinstance(i, Op) and i.role is Role.ROUTER and i.flops > 0]
    assert router and all(not op.counted for op in router)
    flops = step_flops(work)
    assert flops.hardware > flops.model


def test_rows_per_expert_follow_tokens_top_k_and_ep() -> None:
    """Qwen3-30B, micro-batch 1 of 4,096 tokens, ep 8: 4,096 x 8 assignments per rank over 128 experts,
    16 per rank, each receiving 4,096 x 8 x 8 / 128 = 2,048 rows."""
    setup = _setup(QWEN3_30B, gpus=8, global_batch=8, ep=8)
    ms = moe_shapes(setup, build_step(setup).shapes)
    assert (ms.experts_local, ms.rows_per_expert, ms.busiest_rows_per_expert) == (16, 2048, 2048)


def test_capacity_factor_pads_every_expert_to_capacity() -> None:
    """ceil(4,096 x 8 / 128 x 1.25) = 320 rows from each of the 8 source ranks."""
    model = {**QWEN3_30B, "moe": {**QWEN3_30B["moe"], "capacity_factor": 1.25}}
    setup = _setup(model, gpus=8, global_batch=8, ep=8)
    assert moe_shapes(setup, build_step(setup).shapes).rows_per_expert == 8 * 320


def test_skewed_load_makes_the_busiest_rank_slower_and_is_seeded() -> None:
    assert busiest_rank_factor(128, 8, 262144, 0.0, 0) == 1.0
    skewed = busiest_rank_factor(128, 8, 262144, 1.0, 0)
    assert skewed > 1.2
    assert busiest_rank_factor(128, 8, 262144, 1.0, 0) == skewed
    assert busiest_rank_factor(128, 8, 262144, 1.0, 1) != skewed


def test_moe_layers_follow_dense_layers_and_each_moe_layer_exchanges_four_times() -> None:
    setup = _setup(DEEPSEEK_V3, gpus=8, global_batch=8, ep=8)
    work = build_step(setup)
    assert work.chunks[0].kinds[:4] == (LayerKind.DENSE,) * 3 + (LayerKind.MOE,)
    moe = work.moe_layer
    assert moe is not None
    exchanges = [i for i in moe.forward + moe.backward if isinstance(i, CommOp) and i.group is CommGroup.EP]
    assert len(exchanges) == 4
    assert not any(isinstance(i, CommOp) and i.group is CommGroup.EP for i in work.layer.forward)


def _run(model: dict, **parallelism: object):
    return simulate(_setup(model, gpus=8, global_batch=16, **parallelism)).step


def test_exchanges_are_exposed_communication_and_the_breakdown_adds_up() -> None:
    step = _run(QWEN3_30B, ep=8)
    assert step.breakdown_s[Category.COMM_EP] > 0
    assert sum(step.breakdown_s.values()) == pytest.approx(step.time_s, rel=1e-9)


def test_overlap_hides_exchanges_behind_another_micro_batch() -> None:
    plain, overlapped = _run(QWEN3_30B, ep=8), _run(QWEN3_30B, ep=8, moe_overlap=True)
    assert overlapped.time_s < plain.time_s
    assert overlapped.breakdown_s[Category.COMM_EP] < plain.breakdown_s[Category.COMM_EP] / 2
    assert sum(overlapped.breakdown_s.values()) == pytest.approx(overlapped.time_s, rel=1e-9)


def test_uneven_load_shows_as_moe_imbalance() -> None:
    skewed = {**QWEN3_30B, "moe": {**QWEN3_30B["moe"], "load_skew": 1.0}}
    balanced, uneven = _run(QWEN3_30B, ep=8), _run(skewed, ep=8)
    assert balanced.breakdown_s[Category.EXPERT_IMBALANCE] == 0
    assert uneven.breakdown_s[Category.EXPERT_IMBALANCE] > 0
    assert uneven.time_s > balanced.time_s
    assert uneven.model_flops == balanced.model_flops


def test_trace_shows_the_exchanges_on_their_own_thread(tmp_path) -> None:
    """The Perfetto trace of an MoE run: the expert-parallel exchanges on an `ep` thread of each rank."""
    import gzip
    import json

    from simulator.cli import main

    scenario = tmp_path / "moe.yaml"
    scenario.write_text(
        json.dumps(
            {
                "name": "moe",
                "model": QWEN3_30B,
                "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8},
                "parallelism": {"ep": 8, "moe_overlap": True},
                "training": {"global_batch": 16, "flash_attention": True},
            }
        )
    )
    assert main(["run", str(scenario), "--out", str(tmp_path / "out"), "--json"]) == 0
    events = json.loads(gzip.open(tmp_path / "out" / "trace.json.gz", "rt").read())["traceEvents"]
    threads = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert "ep" in threads
    assert any(e.get("name") == "ep_dispatch" and e["dur"] > 0 for e in events)
