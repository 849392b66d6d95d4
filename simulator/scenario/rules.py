"""The rules a parallel plan must satisfy, each once: the resolver reports every broken rule of a
scenario as a problem line naming its key, and the search enumerates only plans that break none.
Each function returns the problem as text, or None (or no lines) when the rule holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the search's command line imports these rules without loading the catalogues
    from simulator.catalog.models import ModelSpec

# Micro-batch passes through pipeline chunks the event engine simulates per step (x replicas at full
# fidelity), ~10 events each at ~15 us per event: ~40 s at the limit. The largest published plan
# (Megatron-LM 2021 Table 2, 529.6B on 560 GPUs: 1,120 micro-batches x 105 chunks = 117,600 passes,
# 1.2M events) is within it twice over; GPT-3 on 1024 A100 needs 96 x 8 = 768.
MAX_SIMULATED_PASSES = 2**18


def node_problem(num_gpus: int, gpus_per_node: int) -> str | None:
    """A cluster larger than one node must be whole nodes."""
    if num_gpus > gpus_per_node and num_gpus % gpus_per_node:
        return f"cluster.num_gpus: {num_gpus} is not a whole number of {gpus_per_node}-GPU nodes"
    return None


def tp_problems(model: ModelSpec, tp: int) -> list[str]:
    """Tensor parallelism splits the attention heads (query and KV) and the MLP's hidden width."""
    problems = []
    if model.heads % tp:
        problems.append(f"parallelism.tp: must divide model.heads ({model.heads}), got {tp}")
    elif model.kv_heads % tp:
        problems.append(f"parallelism.tp: must divide model.kv_heads ({model.kv_heads}), got {tp}")
    if model.ffn_hidden % tp:
        problems.append(f"parallelism.tp: must divide model.ffn_hidden ({model.ffn_hidden}), got {tp}")
    return problems


def cp_problem(model: ModelSpec, cp: int) -> str | None:
    """Context parallelism splits the sequence."""
    if model.seq_len % cp:
        return f"parallelism.cp: must divide model.seq_len ({model.seq_len}), got {cp}"
    return None


def chunks_problem(model: ModelSpec, pp: int, virtual_stages: int) -> str | None:
    """Every pipeline chunk holds at least one layer (they need not divide: docs/contract.md)."""
    if pp * virtual_stages > model.layers:
        return (
            f"parallelism: pp*virtual_stages = {pp * virtual_stages} pipeline chunks exceed "
            f"model.layers ({model.layers})"
        )
    return None


def batch_problem(global_batch: int, dp: int, micro_batch: int) -> str | None:
    """Each data-parallel replica runs a whole number of micro-batches per step."""
    if global_batch % (dp * micro_batch):
        return (
            f"training.global_batch: {global_batch} is not divisible by dp*micro_batch "
            f"({dp}*{micro_batch} = {dp * micro_batch})"
        )
    return None


def interleave_problem(micro_batches: int, pp: int) -> str | None:
    """Megatron-LM's interleaved schedule runs the micro-batches in groups of pp."""
    if micro_batches % pp:
        return (
            f"parallelism.schedule: interleaved needs the micro-batches per step ({micro_batches} = "
            f"global_batch / (dp*micro_batch)) to be a multiple of pp ({pp}), as in Megatron-LM"
        )
    return None


def simulated_passes_problem(micro_batches: int, chunks: int, replicas: int) -> str | None:
    """A step the event engine can simulate in seconds: every micro-batch passes every pipeline chunk
    (of every data-parallel replica at full fidelity), each pass a handful of events."""
    passes = micro_batches * chunks * replicas
    if passes > MAX_SIMULATED_PASSES:
        return (
            f"training.global_batch: {micro_batches:,} micro-batches per step x {chunks} pipeline chunks"
            f"{f' x {replicas} replicas (full fidelity)' if replicas > 1 else ''} = {passes:,} passes, more than the "
            f"{MAX_SIMULATED_PASSES:,} a step may simulate; raise training.micro_batch or lower the global batch"
        )
    return None
