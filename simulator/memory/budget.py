"""Per-GPU memory budget of a plan: model state + activations + overheads vs the GPU's HBM."""

from dataclasses import dataclass
from typing import Any

from simulator import units
from simulator.catalog.loader import bundled
from simulator.enums import MemoryKind
from simulator.memory.activations import stage_activation_bytes
from simulator.memory.model_state import stage_model_state, zero3_gather_buffer_bytes
from simulator.scenario.setup import Setup


@dataclass(frozen=True)
class SoftwareOverheads:
    """Framework memory outside model state and activations (simulator/specs/software.yaml)."""

    cuda_context_bytes: float
    nccl_buffers_bytes: float
    fragmentation_fraction: float


@dataclass(frozen=True)
class MemoryResult:
    """Memory of one GPU of the most loaded pipeline stage. Units: bytes."""

    per_gpu_bytes: dict[MemoryKind, float]  # every MemoryKind; treat as read-only
    peak_bytes: float
    capacity_bytes: float
    fits: bool
    stage: int
    reason: str | None  # why it does not fit; None when it fits
    # bytes per category on one GPU of every pipeline stage, stage 0 first (the memory plot)
    per_stage_bytes: tuple[dict[MemoryKind, float], ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The contract's `memory` object, plus `per_stage_bytes` (an added key, contract section 3)."""
        return {
            "per_gpu_bytes": {k.value: v for k, v in self.per_gpu_bytes.items()},
            "peak_bytes": self.peak_bytes,
            "capacity_bytes": self.capacity_bytes,
            "fits": self.fits,
            "per_stage_bytes": [{k.value: v for k, v in s.items()} for s in self.per_stage_bytes],
        }


def software_overheads() -> SoftwareOverheads:
    raw = bundled("software")
    return SoftwareOverheads(
        cuda_context_bytes=units.gb_to_bytes(raw["cuda_context_GB"]),
        nccl_buffers_bytes=units.gb_to_bytes(raw["nccl_buffers_GB"]),
        fragmentation_fraction=float(raw["allocator_fragmentation_fraction"]),
    )


def other_bytes(activations: float, transient: float, sw: SoftwareOverheads) -> float:
    """Framework overheads: CUDA context and library workspaces, NCCL buffers, transient buffers
    (ZeRO-3 gathered weights) and caching-allocator fragmentation as a fraction of the short-lived
    tensors (activations + transient buffers); sources in software.yaml. Units: bytes."""
    fragmentation = sw.fragmentation_fraction * (activations + transient)
    return sw.cuda_context_bytes + sw.nccl_buffers_bytes + transient + fragmentation


def stage_breakdown(setup: Setup, stage: int, sw: SoftwareOverheads) -> dict[MemoryKind, float]:
    """Bytes per kind on one GPU of pipeline `stage`."""
    state = stage_model_state(setup, stage)
    activations = stage_activation_bytes(setup, stage)
    return {
        MemoryKind.WEIGHTS: state.weights_bytes,
        MemoryKind.GRADIENTS: state.gradients_bytes,
        MemoryKind.OPTIMIZER: state.optimizer_bytes,
        MemoryKind.ACTIVATIONS: activations,
        MemoryKind.OTHER: other_bytes(activations, zero3_gather_buffer_bytes(setup), sw),
    }


def memory_budget(setup: Setup) -> MemoryResult:
    """Peak memory of the most loaded stage against the GPU's HBM capacity. Not fitting is a
    result (fits False, with a reason), not an error (docs/design.md, style rule 6). Units: bytes."""
    sw = software_overheads()
    per_stage = [stage_breakdown(setup, st, sw) for st in range(setup.plan.pp)]
    stage = max(range(len(per_stage)), key=lambda st: sum(per_stage[st].values()))
    breakdown = per_stage[stage]
    peak = sum(breakdown.values())
    gpu = setup.cluster.gpu
    fits = peak <= gpu.hbm_bytes
    return MemoryResult(
        per_gpu_bytes=breakdown,
        peak_bytes=peak,
        capacity_bytes=gpu.hbm_bytes,
        fits=fits,
        stage=stage,
        reason=None if fits else oom_reason(breakdown, peak, stage, gpu.name, gpu.hbm_bytes),
        per_stage_bytes=tuple(per_stage),
    )


def oom_reason(breakdown: dict[MemoryKind, float], peak: float, stage: int, gpu: str, capacity: float) -> str:
    """One readable line: what is needed, on which stage, against what the GPU has, and why."""
    parts = ", ".join(f"{k} {_gb(v)}" for k, v in breakdown.items())
    return f"needs {_gb(peak)} per GPU on stage {stage}, the {gpu} has {_gb(capacity)} ({parts})"


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / units.GIGA:.1f} GB"
