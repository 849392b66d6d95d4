"""Software-stack profiles (specs/stacks.yaml): what a named release of a training stack does, each
setting cited from the stack's own code or docs. A scenario names one with `framework.stack`; its
explicit keys override the profile's, and the profile overrides the simulator's generic defaults."""

import dataclasses
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.catalog.hardware import GpuSpec
from simulator.catalog.loader import bundled
from simulator.enums import CudaGraphs

GENERIC = "generic"  # the profile of a scenario that names no stack


class StackProfile(BaseModel):
    """One release of a training stack. A setting left null defers to the simulator's default for the
    hardware (the GPU catalogue's `tp_comm_overlap` and `fused_cross_entropy`, software.yaml's host
    time per op)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    # gradient reduction per bucket during the last backward of each model chunk (Megatron-Core
    # overlap_grad_reduce, NeMo/Apex overlap_grad_sync, PyTorch DDP buckets)
    dp_overlap: bool = False
    # ZeRO-1/2 weight all-gather per bucket behind the next step's first forward of each chunk
    # (Megatron-Core overlap_param_gather, NeMo/Apex overlap_param_sync); needs dp_overlap
    overlap_param_gather: bool = False
    # FP8 training gathers the FP8 copy of the weights (1 byte per parameter) instead of the BF16 one
    # (Megatron-Core fp8_param_gather, NeMo fp8_params)
    fp8_param_gather: bool = False
    tp_comm_overlap: bool | None = None
    fused_cross_entropy: bool | None = None
    host_time_per_op_us: float | None = Field(default=None, ge=0.0)
    # FlashAttention generation of the fused attention kernel: 1 runs at kernels.yaml
    # `flash_attention.version1_speed` of the GPU catalogue's FlashAttention-2-class efficiency
    flash_attention_version: Literal[1, 2] | None = None
    # BF16/FP8 runs keep and reduce fp32 gradients (Megatron main grads; FSDP2 reduce_dtype fp32)
    fp32_gradients: bool = False
    # what the host replays as CUDA graphs (null: eager, as software.yaml's host time per op assumes)
    cuda_graphs: CudaGraphs | None = None
    sources: dict[str, str] = Field(default_factory=dict)  # setting -> where the stack says so


@cache
def stack_profiles() -> dict[str, StackProfile]:
    """Every bundled profile by name (a broken catalogue is a bug: it raises)."""
    out: dict[str, StackProfile] = {}
    for name, entry in bundled("stacks").items():
        try:
            out[name] = StackProfile.model_validate(entry)
        except ValidationError as exc:  # pragma: no cover - the bundled file is tested
            raise ValueError(f"specs/stacks.yaml: {name}: {exc}") from exc
    return out


def stack_profile(name: str | None) -> StackProfile | None:
    """The named profile (GENERIC when `name` is None), or None when no profile has that name."""
    return stack_profiles().get(GENERIC if name is None else name)


def with_attention_kernel(gpu: GpuSpec, version: int | None) -> GpuSpec:
    """`gpu` as a stack's fused attention runs on it: FlashAttention-1 at kernels.yaml
    `flash_attention.version1_speed` of the catalogue's (FlashAttention-2-class) efficiency."""
    if version != 1:
        return gpu
    speed = float(bundled("kernels")["flash_attention"]["version1_speed"])
    return dataclasses.replace(gpu, flash_attention_efficiency=gpu.flash_attention_efficiency * speed)
