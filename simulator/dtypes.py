"""Bytes per element for each training precision (activations, GEMM operands, model state)."""

from simulator.enums import Precision

_FULL = {Precision.FP32, Precision.TF32}


def activation_bytes(p: Precision) -> int:
    """Activations between kernels: 4 bytes in fp32/tf32, else 2 (FP8 recipes keep them in bf16;
    NVIDIA Transformer Engine casts to fp8 only inside the GEMMs)."""
    return 4 if p in _FULL else 2


def gemm_operand_bytes(p: Precision) -> int:
    """GEMM input element size: 1 byte for fp8, else the activation size."""
    return 1 if p is Precision.FP8 else activation_bytes(p)


def weight_bytes(p: Precision) -> int:
    """Working copy of the weights (mixed precision: fp16/bf16; FP8 recipes keep bf16 weights)."""
    return activation_bytes(p)


def gathered_weight_bytes(p: Precision, fp8_gather: bool) -> int:
    """Bytes per parameter of a data-parallel weight all-gather: the working copy, or under FP8 with
    FP8 parameter gathers the FP8 copy (Megatron-Core --fp8-param-gather / NeMo fp8_params: "conducts
    the parameter all-gather in fp8, reducing the all-gather overhead by half", NeMo docs,
    "Communication Overlap")."""
    return 1 if fp8_gather and p is Precision.FP8 else weight_bytes(p)


def gradient_bytes(p: Precision, fp32: bool = False) -> int:
    """Gradients as stored and reduced: same size as the working weights (ZeRO paper, 2 bytes), or
    with `fp32` (a stack that accumulates and reduces BF16/FP8 runs' gradients in fp32 main-grad
    buffers: Megatron-LM's --bf16 forces --accumulate-allreduce-grads-in-fp32) 4 bytes."""
    return 4 if fp32 else weight_bytes(p)


def optimizer_bytes_per_param(p: Precision) -> int:
    """Adam state per parameter: K = 12 with mixed precision (fp32 master copy, momentum, variance;
    Rajbhandari et al. 2020 sec. 3.1), 8 in pure fp32 (the weights are already the fp32 copy)."""
    return 8 if p in _FULL else 12
