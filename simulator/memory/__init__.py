"""Per-GPU memory model: ZeRO model state, Korthikanti activations, overheads, fit vs HBM."""

from simulator.memory.activations import (
    activation_bytes_per_stage,
    in_flight_micro_batches,
    layer_terms,
    peak_activation_stage,
    routed_rows,
    setup_layer_terms,
    stage_activation_bytes,
    stored_layer_bytes,
)
from simulator.memory.budget import MemoryResult, memory_budget
from simulator.memory.model_state import ModelState, model_state_bytes, stage_model_state

__all__ = [
    "MemoryResult",
    "ModelState",
    "activation_bytes_per_stage",
    "in_flight_micro_batches",
    "layer_terms",
    "memory_budget",
    "model_state_bytes",
    "peak_activation_stage",
    "routed_rows",
    "setup_layer_terms",
    "stage_activation_bytes",
    "stage_model_state",
    "stored_layer_bytes",
]
