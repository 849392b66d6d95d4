"""The rules a parallel plan must satisfy, each once: the resolver reports every broken rule of a
scenario as a problem line naming its key, and the search enumerates only plans that break none.
Each function returns the problem as text, or None (or no lines) when the rule holds."""

from __future__ import annotations

import math
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
    """Tensor parallelism splits the attention heads (query and KV) and the dense MLP's hidden width
    (a model whose every layer is MoE has no dense MLP to split)."""
    problems = []
    if model.heads % tp:
        problems.append(f"parallelism.tp: must divide model.heads ({model.heads}), got {tp}")
    elif model.kv_heads % tp:
        problems.append(f"parallelism.tp: must divide model.kv_heads ({model.kv_heads}), got {tp}")
    has_dense_mlp = model.moe is None or any(k == "dense" for k in model.layer_kinds)
    if has_dense_mlp and model.ffn_hidden % tp:
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


def moe_problems(model: ModelSpec, tp: int, cp: int, dp: int, ep: int, etp: int, sequence_parallel: bool) -> list[str]:
    """Megatron-Core's MoE parallel folding (Liu et al. 2025, "MoE Parallel Folding", sec. 3): the
    experts split over ep ranks, each over etp ranks, the ep x etp grid laid over the stage's
    tp x cp x dp ranks (the expert-data-parallel group is what remains); sequence parallelism whenever
    tp > 1 and ep > 1 (Megatron-Core asserts it: the token dispatcher works on sequence-split tokens)."""
    moe = model.moe
    if moe is None:
        return ["parallelism.ep: needs model.moe (experts to split)"] if ep > 1 else []
    problems = []
    if moe.experts % ep:
        problems.append(f"parallelism.ep: must divide model.moe.experts ({moe.experts}), got {ep}")
    if (tp * cp * dp) % (ep * etp):
        problems.append(
            f"parallelism: ep*etp = {ep * etp} must divide tp*cp*dp = {tp * cp * dp} (the expert ranks are "
            "laid over the same GPUs as tp x cp x dp: Megatron-Core parallel folding)"
        )
    if moe.expert_ffn_hidden % etp:
        problems.append(
            f"parallelism.etp: must divide model.moe.expert_ffn_hidden ({moe.expert_ffn_hidden}), got {etp}"
        )
    if moe.shared_experts and (moe.shared_experts * moe.shared_ffn_hidden) % tp:
        problems.append(
            f"parallelism.tp: must divide the shared experts' width "
            f"({moe.shared_experts} x {moe.shared_ffn_hidden}), got {tp}"
        )
    if tp > 1 and ep > 1 and not sequence_parallel:
        problems.append(
            "parallelism.sequence_parallel: must be true when tp > 1 and ep > 1 (Megatron-Core's token "
            "dispatchers route sequence-parallel tokens)"
        )
    return problems


def moe_shape_problems(model: ModelSpec) -> list[str]:
    """An MoE block that can exist: top_k of the experts, dense layers within the model."""
    moe = model.moe
    if moe is None:
        return []
    problems = []
    if moe.top_k > moe.experts:
        problems.append(f"model.moe.top_k: at most model.moe.experts ({moe.experts}), got {moe.top_k}")
    if moe.dense_layers > model.layers:
        problems.append(f"model.moe.dense_layers: at most model.layers ({model.layers}), got {moe.dense_layers}")
    return problems


def scale_up_problem(scale_up_domain: int, gpus_per_node: int) -> str | None:
    """An NVLink fabric joins whole nodes (compute trays of a rack, or one server)."""
    if scale_up_domain % gpus_per_node:
        return (
            f"cluster.scale_up_domain: must be a whole number of {gpus_per_node}-GPU nodes "
            f"(cluster.gpus_per_node), got {scale_up_domain}"
        )
    return None


def job_scale_up_domain(domain: int, gpus_per_node: int, num_gpus: int, expert_span: int) -> int:
    """GPUs of the job in each NVLink domain. A job smaller than a domain sits in one; an MoE job is
    placed so that no expert-parallel group (ep x etp consecutive GPUs of a stage, collectives/groups.py)
    straddles two domains where one can hold it: each domain runs the whole groups that fit in it, in whole
    trays, and its other trays stay idle, as rack-scale systems are run (GB200 NVL72 racks planned as 64
    GPUs in use plus 8 spare: SemiAnalysis, "GB200 Hardware Architecture", 2024; Slurm's topology/block
    plugin allocates blocks of trays within a rack). Dense jobs use whole domains."""
    domain = min(domain, num_gpus) if num_gpus > gpus_per_node else gpus_per_node
    if expert_span <= 1 or expert_span > domain or domain % expert_span == 0:
        return domain
    unit = math.lcm(expert_span, gpus_per_node)
    return domain // unit * unit or domain
