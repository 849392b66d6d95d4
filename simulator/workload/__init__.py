"""Model + parallel plan -> per-rank work of one step: ops with FLOPs and bytes, and messages."""

from simulator.workload.step import StepWork, build_step

__all__ = ["StepWork", "build_step"]
