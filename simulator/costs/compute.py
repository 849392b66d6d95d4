"""Time of one op on one GPU: roofline max(compute, memory) times shape-aware efficiency.

compute time = work FLOPs / (dense peak for the precision x efficiency), memory time = bytes /
(HBM bandwidth x achievable fraction) (Williams et al. 2009, "Roofline"), plus the gap between
dependent kernels (launch and scheduling).

The SM clock enters here alone (`clock_scale`, costs/clocks.compute_clock_scale): compute rates scale with
it (tensor cores and special-function units are clocked by it), from the sustained clock the catalogue's
rates assume; HBM bandwidth and launch gaps do not. The dense peak itself (GpuSpec.peak, the datasheet's)
stays: MFU and HFU are defined against it.
"""

import math
from dataclasses import dataclass
from functools import cache

from simulator.catalog.hardware import GpuSpec
from simulator.catalog.loader import bundled
from simulator.enums import OpKind, Precision, Role
from simulator.workload.ops import GemmShape, Op


@dataclass(frozen=True)
class Tile:
    """A GEMM kernel tile (m x n outputs) and its intrinsic efficiency, before tile and wave quantisation."""

    m: int
    n: int
    efficiency: float


@cache
def gemm_tiles() -> tuple[Tile, ...]:
    return tuple(Tile(**t) for t in bundled("kernels")["gemm"]["tiles"])


@cache
def grouped_efficiency() -> float:
    """Share of a dense GEMM's rate a grouped expert GEMM reaches (kernels.yaml `gemm.grouped_efficiency`)."""
    return float(bundled("kernels")["gemm"]["grouped_efficiency"])


GROUPED_ROLES = frozenset({Role.EXPERT_UP, Role.EXPERT_DOWN, Role.EXPERT_IMBALANCE})


def k_overhead() -> float:
    return float(bundled("kernels")["gemm"]["k_overhead"])


@cache
def gemm_efficiency(shape: GemmShape, sm_count: int) -> float:
    """Fraction of the GPU's best GEMM rate this shape reaches: the best tile's intrinsic rate x
    tile quantisation (padding of m, n to whole tiles) x wave quantisation (the last wave of
    tiles leaves SMs idle) x the short-K penalty (NVIDIA Matrix Multiplication Background guide)."""
    k_eff = shape.k / (shape.k + k_overhead())
    best = 0.0
    for tile in gemm_tiles():
        tiles_m, tiles_n = math.ceil(shape.m / tile.m), math.ceil(shape.n / tile.n)
        padded = tiles_m * tile.m * tiles_n * tile.n
        tile_q = shape.m * shape.n / padded
        tiles = tiles_m * tiles_n * shape.batch
        wave_q = tiles / (math.ceil(tiles / sm_count) * sm_count)
        best = max(best, tile.efficiency * tile_q * wave_q)
    return best * k_eff


@cache
def reference_head_dim() -> int:
    return int(bundled("kernels")["flash_attention"]["reference_head_dim"])


def flash_attention_rate(op: Op, gpu: GpuSpec, peak: float) -> float:
    """Achieved FLOP/s of a fused attention kernel. The catalogue's efficiency holds at the
    reference head dim; the kernel also evaluates one exponential per score element on the
    special-function units, which run `tensor_flops_per_exp` times slower than the tensor cores and
    do not overlap the matmuls in FlashAttention-2's loop. Exponentials per matmul FLOP scale as
    1 / head dim, so relative to the reference a head dim d adds (or saves) R x q x (1 - d / d_ref)
    of tensor-core time per FLOP, q being the kernel's exponentials per FLOP executed (FlashAttention-3,
    Shah et al. 2024, sec. 3: the H100's 989 TFLOP/s of matmul against 3.9 TFLOP/s of exponentials)."""
    eff = gpu.flash_attention_efficiency
    if gpu.tensor_flops_per_exp is None or op.exps == 0 or op.head_dim == 0:
        return peak * eff
    exps_per_flop = op.exps / (op.flops * op.work_factor)
    extra = gpu.tensor_flops_per_exp * exps_per_flop * (1.0 - op.head_dim / reference_head_dim())
    return peak / (1.0 / eff + extra)


def op_precision(op: Op, precision: Precision) -> Precision:
    """Under an FP8 recipe only the block linear layers run in FP8; the rest runs in BF16."""
    if precision is Precision.FP8 and not op.fp8_capable:
        return Precision.BF16
    return precision


def compute_rate(op: Op, gpu: GpuSpec, precision: Precision) -> float:
    """Achieved FLOP/s for the op's math."""
    prec = op_precision(op, precision)
    peak = gpu.peak(prec)
    if op.kind is OpKind.ATTENTION and op.gemm is None:  # fused FlashAttention kernel
        return flash_attention_rate(op, gpu, peak)
    assert op.gemm is not None, op.name
    return gemm_rate(op.gemm, op, gpu, precision)


def gemm_rate(shape: GemmShape, op: Op, gpu: GpuSpec, precision: Precision) -> float:
    """Achieved FLOP/s of a GEMM of `shape` in the op's precision: the GPU's sustained fraction of peak x
    the shape's tile, wave and short-K efficiency (x the grouped-GEMM factor for expert GEMMs)."""
    prec = op_precision(op, precision)
    rate = gpu.peak(prec) * gpu.gemm_efficiency(prec) * gemm_efficiency(shape, gpu.sm_count)
    return rate * grouped_efficiency() if op.role in GROUPED_ROLES else rate


def memory_time_s(bytes_moved: float, gpu: GpuSpec) -> float:
    return bytes_moved / (gpu.hbm_bytes_per_s * gpu.hbm_efficiency)


def gemm_math_s(shape: GemmShape, op: Op, gpu: GpuSpec, precision: Precision, clock_scale: float = 1.0) -> float:
    """Seconds of tensor-core math for a GEMM of `shape` in the op's precision (no launch, no memory bound),
    at `clock_scale` x the catalogue's sustained SM clock."""
    return shape.flops / (gemm_rate(shape, op, gpu, precision) * clock_scale)


def op_time_s(op: Op, gpu: GpuSpec, precision: Precision, clock_scale: float = 1.0) -> float:
    """Seconds the op occupies the GPU's compute stream, its math at `clock_scale` x the sustained SM clock
    (module docstring). An op with a `baseline` shape stands for the time its GEMM shape takes beyond the
    baseline's (the busiest expert-parallel rank's extra rows: every rank waits for it), with no launch of
    its own."""
    if op.baseline is not None and op.gemm is not None:
        extra = gemm_math_s(op.gemm, op, gpu, precision, clock_scale)
        return max(0.0, extra - gemm_math_s(op.baseline, op, gpu, precision, clock_scale))
    mem = memory_time_s(op.bytes, gpu)
    if op.flops == 0:
        return mem + gpu.kernel_launch_s
    work = op.flops * op.work_factor * op.causal_fraction
    return max(work / (compute_rate(op, gpu, precision) * clock_scale), mem) + gpu.kernel_launch_s
