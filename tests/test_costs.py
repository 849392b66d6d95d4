"""Formula tests of the op cost model (simulator.costs.compute) and the causal attention share
(simulator.workload.layer), against hand-computed values."""

import dataclasses

import pytest

from simulator.catalog.hardware import gpu_catalogue
from simulator.catalog.loader import bundled
from simulator.costs.compute import compute_rate, gemm_efficiency, k_overhead
from simulator.enums import Phase, Precision
from simulator.results.writer import resolved_scenario
from simulator.scenario import setup_from_mapping
from simulator.workload.head import cross_entropy_bytes
from simulator.workload.layer import attention_backward, attention_forward, causal_block_rows, causal_fraction
from simulator.workload.ops import GemmShape, Op
from simulator.workload.shapes import RankShapes, rank_shapes

SHAPES = RankShapes(
    b=1, s=2048, s_q=2048, h=4096, f=16384, d=128, heads=32, kv_heads=32, tp=1, cp=1, sp=False,
    tp_overlap=False, vocab=50304, elem=2, gemm_elem=2,
)  # fmt: skip


def test_causal_block_is_flash_attentions_query_block() -> None:
    assert causal_block_rows() == bundled("kernels")["flash_attention"]["causal_block_rows"] == 128


@pytest.mark.parametrize(
    ("s", "share"),
    [
        (64, 1.0),  # one partly filled block: the whole tile is computed
        (128, 1.0),  # one block on the diagonal, computed whole
        (256, 0.75),  # 2 x 2 blocks, 3 computed
        (512, 0.625),  # 4 x 4 blocks, 10 computed
        (2048, 0.53125),  # 16 x 16 blocks, 136 computed
        (131072, (131072 + 128) / (2 * 131072)),
    ],
)
def test_causal_share_counts_whole_diagonal_blocks(s: int, share: float) -> None:
    """(s + T) / (2 s) equals n (n + 1) / 2 computed blocks of n^2 for s = n T."""
    assert causal_fraction(dataclasses.replace(SHAPES, s=s, s_q=s)) == pytest.approx(share)


def test_causal_share_with_context_parallelism() -> None:
    """A rank's query chunks cross the diagonal once in total: the share of its s_q x s block is
    the same as without CP."""
    cp4 = dataclasses.replace(SHAPES, s_q=SHAPES.s // 4, cp=4)
    assert causal_fraction(cp4) == causal_fraction(SHAPES)


def test_large_square_gemm_efficiency_by_hand() -> None:
    """8192^3 on 108 SMs: the 256 x 128 tile pads nothing, 2048 tiles fill 19 waves of 108 (2052
    slots), and K = 8192 keeps 8192 / (8192 + k_overhead) of the main-loop rate."""
    wave = 2048 / (19 * 108)
    short_k = 8192 / (8192 + k_overhead())
    assert gemm_efficiency(GemmShape(m=8192, n=8192, k=8192), 108) == pytest.approx(wave * short_k)


def test_thin_gemm_pays_tile_and_wave_quantisation() -> None:
    """m = 16 rows: the best choice is a 64 x 128 tile at 0.80, a quarter filled, 64 tiles on 108
    SMs (one wave, 64 of 108 busy)."""
    expected = 0.80 * (16 / 64) * (64 / 108) * 8192 / (8192 + k_overhead())
    assert gemm_efficiency(GemmShape(m=16, n=8192, k=8192), 108) == pytest.approx(expected)


def _flash_ops(d: int) -> tuple[Op, Op]:
    r = dataclasses.replace(SHAPES, d=d, d_v=d, heads=4096 // d, kv_heads=4096 // d)
    (fwd,) = attention_forward(MODEL, r, flash=True, phase=Phase.FORWARD)
    (bwd,) = attention_backward(MODEL, r, flash=True)
    return fwd, bwd


MODEL = setup_from_mapping(
    {
        "name": "attention",
        "model": {"layers": 2, "hidden": 4096, "heads": 32, "vocab": 50304, "seq_len": 2048},
        "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 1},
        "training": {"global_batch": 1},
    }
).model


def test_flash_attention_runs_at_the_catalogue_rate_at_the_reference_head_dim() -> None:
    a100 = gpu_catalogue()["a100-sxm-80gb"]
    peak = a100.peak(Precision.BF16)
    for op in _flash_ops(128):
        assert compute_rate(op, a100, Precision.BF16) == pytest.approx(peak * 0.60)


def test_flash_attention_small_head_dim_pays_for_its_exponentials() -> None:
    """d = 64 on an A100 (R = 128 tensor FLOPs per exponential): the forward runs 4 d matmul FLOPs
    per score and one exponential, so it adds 128 / 256 x (1 - 64/128) = 0.25 to 1 / efficiency;
    the backward (10 d FLOPs per score) adds 0.1."""
    a100 = gpu_catalogue()["a100-sxm-80gb"]
    peak = a100.peak(Precision.BF16)
    fwd, bwd = _flash_ops(64)
    assert compute_rate(fwd, a100, Precision.BF16) == pytest.approx(peak / (1 / 0.60 + 0.25))
    assert compute_rate(bwd, a100, Precision.BF16) == pytest.approx(peak / (1 / 0.60 + 0.1))
    # larger head dims spend less of the time on exponentials; a GPU without the constant keeps one rate
    assert compute_rate(_flash_ops(256)[0], a100, Precision.BF16) > peak * 0.60
    plain = dataclasses.replace(a100, tensor_flops_per_exp=None)
    assert compute_rate(fwd, plain, Precision.BF16) == pytest.approx(peak * 0.60)


def test_exponentials_weigh_more_on_hopper() -> None:
    """The H100 doubles tensor FLOPs per SM and clock but not exponentials: the same d = 64 forward
    loses more against its catalogue rate than on the A100."""
    gpus = gpu_catalogue()
    fwd, _ = _flash_ops(64)
    loss = {
        n: compute_rate(fwd, gpus[n], Precision.BF16)
        / (gpus[n].peak(Precision.BF16) * gpus[n].flash_attention_efficiency)
        for n in ("a100-sxm-80gb", "h100-sxm-80gb")
    }
    assert loss["h100-sxm-80gb"] < loss["a100-sxm-80gb"] < 1.0


def _loss_bytes(fused: bool, elem: int = 2) -> int:
    fwd, bwd = cross_entropy_bytes(dataclasses.replace(SHAPES, elem=elem, fused_loss=fused))
    return int(fwd + bwd)


def test_cross_entropy_traffic_per_logit() -> None:
    """Eager: cast (2 + 4), max (4), subtract (8), exp (8), sum (4), divide (8); backward scale (8) and
    cast back (4 + 2): 52 bytes per BF16 logit. Fused: two reads of the logits (4), exponentials
    written (4), softmax in place (8), backward read (4) and gradient written (2): 22."""
    assert _loss_bytes(fused=False) == 52
    assert _loss_bytes(fused=True) == 22


def _scenario(gpu: str, **framework: bool) -> dict:
    return {
        "name": "loss",
        "model": {"layers": 2, "hidden": 1024, "heads": 8, "vocab": 50304, "seq_len": 1024},
        "cluster": {"gpu": gpu, "num_gpus": 8},
        "training": {"global_batch": 8},
        "framework": framework,
    }


def test_fused_cross_entropy_defaults_to_the_gpu_catalogue_and_is_recorded() -> None:
    """Hopper-era stacks (NeMo / Megatron-Core) fuse the loss, the A100-era ones did not; a scenario
    can say otherwise, and the resolved scenario says what was simulated."""
    assert not setup_from_mapping(_scenario("a100-sxm-80gb")).fused_cross_entropy
    assert setup_from_mapping(_scenario("h100-sxm-80gb")).fused_cross_entropy
    eager = setup_from_mapping(_scenario("h100-sxm-80gb", fused_cross_entropy=False))
    assert not eager.fused_cross_entropy
    assert resolved_scenario(eager)["framework"]["fused_cross_entropy"] is False
    assert rank_shapes(eager).fused_loss is False
