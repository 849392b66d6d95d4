"""Host cost of Megatron-Core's dropless MoE layer (docs/research/host-overhead.md, Q5): Transformer Engine's
GroupedLinear issues per-local-expert host calls (workload/moe.py GROUPED_HOST_CALLS_PER_EXPERT, priced at
software.yaml host_call_us), and the dropless dispatcher's D2H wait ends a segment. Counts are checked against
the hand count of the derivation; segment host times exactly against the segment model."""

import pytest

from simulator.catalog.loader import bundled
from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer
from simulator.enums import OpKind, Phase
from simulator.program.compile import compile_program
from simulator.program.segments import host_time_s
from simulator.scenario import Setup, setup_from_mapping
from simulator.topology import build_topology
from simulator.workload import build_step
from simulator.workload.moe import grouped_host_calls
from simulator.workload.ops import Op

CALL_S = 4e-6
DISPATCH_S = 80e-6


def test_per_expert_counts_match_the_derivation() -> None:
    # forward FP8: 2 set_usage + 3 allocations + 3 current-scaling kernels + weight workspace + GEMM
    # + 2 update_usage + main_grad closure = 13 per expert; 16 local experts -> 15 beyond the first
    assert grouped_host_calls("forward", 16, fp8=True) == 15 * 13
    assert grouped_host_calls("forward", 16, fp8=False) == 15 * 4  # split view, weight cast, GEMM, closure
    assert grouped_host_calls("dgrad", 16, fp8=True) == 15 * 9  # closure, 3 + 3 quantize, update_usage, GEMM
    assert grouped_host_calls("dgrad", 16, fp8=False) == 15 * 3
    assert grouped_host_calls("wgrad", 16, fp8=True) == 15 * 3  # GEMM, DDP hook, its torch.empty
    assert grouped_host_calls("wgrad", 4, fp8=False) == 3 * 3
    assert grouped_host_calls("forward", 1, fp8=True) == 0  # one local expert: a dense linear's dispatch


def test_host_time_adds_calls_eager_and_graphed() -> None:
    ops = [
        Op("a", OpKind.ELEMENTWISE, Phase.FORWARD, bytes=1.0),
        Op("b", OpKind.GEMM, Phase.FORWARD, flops=1.0, host_calls=30),
    ]
    assert host_time_s(ops, DISPATCH_S, False, 20e-6, CALL_S) == pytest.approx(2 * DISPATCH_S + 30 * CALL_S)
    assert host_time_s(ops, DISPATCH_S, False, 20e-6) == pytest.approx(2 * DISPATCH_S)  # no call price: as before


def tiny(precision: str, ep: int, **moe: object) -> Setup:
    """A small MoE (8 experts, top-2) on 8 GPUs, EP `ep`: host-bound segments at 80 us per op."""
    return setup_from_mapping(
        {
            "name": "moe_host",
            "model": {
                "layers": 2,
                "hidden": 512,
                "heads": 8,
                "ffn_hidden": 1024,
                "vocab": 32000,
                "seq_len": 512,
                "activation": "swiglu",
                "moe": {"experts": 8, "top_k": 2, "expert_ffn_hidden": 256, **moe},
            },
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8},
            "parallelism": {"tp": 1, "pp": 1, "dp": 8, "ep": ep},
            "training": {"global_batch": 8, "micro_batch": 1, "precision": precision},
        }
    )


def moe_forward_pieces(s: Setup) -> list:
    pricer = CommPricer(build_topology(s.cluster), Layout.of(s.plan), s.cluster.collective_algorithm)
    program = compile_program(build_step(s), pricer)
    segs = []
    for block in program.stages[0].chunks[0].forward:
        seg = block.segment
        segs += list(seg.unrolled()) if hasattr(seg, "unrolled") else [seg]
    return segs


def test_tiny_moe_expert_segment_host_time_exact() -> None:
    s = tiny("fp8", ep=2)  # 4 local experts
    call_s = bundled("software")["host_call_us"] * 1e-6
    expert = [
        seg
        for seg in moe_forward_pieces(s)
        if any(isinstance(t.item, Op) and t.item.name == "expert_up" for t in seg.items)
    ][0]
    items = [t.item for t in expert.items]
    calls = sum(i.host_calls for i in items if isinstance(i, Op))
    assert calls == 2 * 3 * 13  # expert_up and expert_down, 3 experts beyond the first, 13 calls each
    host = len(items) * s.host_time_per_op_s + calls * call_s
    gpu = sum(t.duration_s for t in expert.items)
    assert expert.duration_s == pytest.approx(max(gpu, host), rel=1e-12)
    assert expert.host_gap_s == pytest.approx(max(0.0, host - gpu), rel=1e-12)


def test_dropless_sync_ends_the_segment_without_expert_parallelism() -> None:
    def first_after_permute(s: Setup) -> str:
        for seg in moe_forward_pieces(s):
            names = [t.item.name for t in seg.items]
            if "token_permute" in names:
                return "end" if names[-1] == "token_permute" else names[names.index("token_permute") + 1]
        raise AssertionError("no token_permute")

    assert first_after_permute(tiny("bf16", ep=1)) == "end"  # dropless: the host waits for the counts
    # padded to capacity the sizes are static: the experts follow in the same segment
    assert first_after_permute(tiny("bf16", ep=1, capacity_factor=1.0)) != "end"
