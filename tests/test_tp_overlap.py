"""Tensor-parallel communication overlapped with GEMMs (Transformer Engine userbuffers): the exposed-time
formulas of simulator.costs.tp_overlap, which collectives get which method, the catalogue default, and
what it does to a whole step."""

import pytest
from conftest import BOOKS_REL

from simulator.costs.tp_overlap import overlapped_durations, pipeline_splits
from simulator.engine.step import simulate_step
from simulator.enums import Category, Collective, CommGroup, OpKind, Phase, Role, TpOverlap
from simulator.metrics.breakdown import step_breakdown
from simulator.scenario import Setup, setup_from_mapping
from simulator.workload import build_step
from simulator.workload.layer import pipeline_sms
from simulator.workload.ops import CommOp, GemmShape, Op

SMS = 132
GEMM = Op("g", OpKind.GEMM, Phase.FORWARD, flops=1.0, gemm=GemmShape(8, 8, 8))
CAST = Op("g_fp8_cast", OpKind.ELEMENTWISE, Phase.FORWARD, bytes=1.0, role=Role.FP8_CAST)
NORM = Op("norm", OpKind.ELEMENTWISE, Phase.FORWARD, bytes=1.0)


def comm(overlap: TpOverlap, ranks: int = 4, sms: int = 0) -> CommOp:
    kind = Collective.ALL_GATHER if overlap is TpOverlap.RING_EXCHANGE else Collective.REDUCE_SCATTER
    return CommOp("c", CommGroup.TP, kind, Phase.FORWARD, 1.0, ranks, overlap=overlap, overlap_sms=sms)


def test_ring_exchange_hides_behind_the_gemm_after_it_skipping_the_fp8_cast() -> None:
    # n = 4 steps; the local shard's GEMM chunk needs no data: exposed = max(0, T_c - T_g * 3/4)
    assert overlapped_durations([comm(TpOverlap.RING_EXCHANGE), CAST, GEMM], [10.0, 1.0, 8.0], SMS) == [4.0, 1.0, 8.0]
    assert overlapped_durations([comm(TpOverlap.RING_EXCHANGE), GEMM], [5.0, 8.0], SMS) == [0.0, 8.0]


def test_pipeline_slows_the_gemm_by_its_sm_share_and_exposes_the_last_chunk() -> None:
    n = pipeline_splits()
    gemm_s = 8.0 * SMS / (SMS - 24)
    got = overlapped_durations([GEMM, comm(TpOverlap.PIPELINE, sms=24)], [8.0, 10.0], SMS)
    assert got[0] == pytest.approx(gemm_s)
    assert got[1] == pytest.approx(max(10.0 / n, 10.0 - gemm_s * (n - 1) / n))
    # a short reduce-scatter still shows its last chunk
    got = overlapped_durations([GEMM, comm(TpOverlap.PIPELINE, sms=24)], [8.0, 1.0], SMS)
    assert got[1] == pytest.approx(1.0 / n)


def test_bulk_hides_behind_the_whole_gemm_before_it() -> None:
    assert overlapped_durations([GEMM, comm(TpOverlap.BULK)], [8.0, 10.0], SMS) == [8.0, 2.0]
    assert overlapped_durations([GEMM, comm(TpOverlap.BULK)], [8.0, 3.0], SMS) == [8.0, 0.0]


def test_without_a_neighbouring_gemm_nothing_is_hidden() -> None:
    items = [NORM, comm(TpOverlap.BULK), comm(TpOverlap.RING_EXCHANGE), NORM]
    assert overlapped_durations(items, [1.0, 10.0, 10.0, 1.0], SMS) == [1.0, 10.0, 10.0, 1.0]


def nemo_like(gpu: str = "h100-sxm-80gb", **parallelism) -> Setup:
    plan = {"tp": 4, "pp": 1, "sequence_parallel": True, **parallelism}
    return setup_from_mapping(
        {
            "name": "tp-overlap",
            "model": {"preset": "llama2-7b"},
            "cluster": {"gpu": gpu, "num_gpus": 8},
            "parallelism": plan,
            "training": {"global_batch": 16, "micro_batch": 1, "precision": "bf16", "flash_attention": True},
        }
    )


@pytest.mark.parametrize(
    ("gpu", "parallelism", "expected"),
    [
        ("h100-sxm-80gb", {}, True),  # the Hopper catalogue default
        ("h100-sxm-80gb", {"tp_comm_overlap": False}, False),
        ("h100-sxm-80gb", {"sequence_parallel": False}, False),  # only SP's collectives can overlap
        ("h100-sxm-80gb", {"tp": 1, "tp_comm_overlap": True}, False),  # nothing to overlap
        ("a100-sxm-80gb", {}, False),  # Megatron-LM 2021-22 on A100 did not overlap
        ("a100-sxm-80gb", {"tp_comm_overlap": True}, True),
    ],
)
def test_default_follows_the_gpu_and_needs_sequence_parallelism(gpu: str, parallelism: dict, expected: bool) -> None:
    assert nemo_like(gpu, **parallelism).plan.tp_comm_overlap is expected


def _overlaps(items) -> list[TpOverlap]:
    return [i.overlap for i in items if isinstance(i, CommOp) and i.group is CommGroup.TP]


def test_each_sequence_parallel_collective_gets_its_userbuffers_method() -> None:
    work = build_step(nemo_like())
    ring, pipe, bulk = TpOverlap.RING_EXCHANGE, TpOverlap.PIPELINE, TpOverlap.BULK
    assert _overlaps(work.layer.forward) == [ring, pipe, ring, pipe]
    assert _overlaps(work.layer.backward) == [ring, bulk, ring, bulk]
    sms = [i.overlap_sms for i in work.layer.forward if isinstance(i, CommOp) and i.overlap is pipe]
    assert sms == [pipeline_sms(Role.ATTN_PROJ), pipeline_sms(Role.MLP_DOWN)]
    # embedding and LM head are not userbuffers layers
    for chunk in work.chunks:
        ends = chunk.prologue_forward + chunk.epilogue_forward + chunk.prologue_backward + chunk.epilogue_backward
        assert set(_overlaps(ends)) <= {TpOverlap.NONE}
    assert set(_overlaps(build_step(nemo_like(tp_comm_overlap=False)).layer.forward)) == {TpOverlap.NONE}


def test_overlap_shortens_the_step_hides_tp_comm_and_keeps_the_books() -> None:
    results = {}
    for overlap in (False, True):
        simulated = simulate_step(build_step(nemo_like(tp_comm_overlap=overlap)))
        results[overlap] = (simulated.result.time_s, step_breakdown(simulated.result).average_s)
    (off_s, off), (on_s, on) = results[False], results[True]
    assert on_s < off_s
    assert on[Category.COMM_TP] < 0.5 * off[Category.COMM_TP]
    assert on[Category.GEMM] > off[Category.GEMM]  # the pipelined reduce-scatters take SMs from their GEMMs
    for time_s, parts in results.values():
        assert sum(parts.values()) == pytest.approx(time_s, rel=BOOKS_REL)
