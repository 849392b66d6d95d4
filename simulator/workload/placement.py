"""Where the parameters live: what one tensor-parallel rank holds for a pipeline chunk and a stage
(before ZeRO sharding)."""

from simulator.scenario.setup import Setup
from simulator.workload.params import layer_params, norm_params, position_params
from simulator.workload.partition import chunks_of_stage


def chunk_params_on_rank(setup: Setup, chunk: int, layers: int) -> float:
    """Parameters one TP rank holds for one chunk: its layers, plus the embedding on the first
    chunk and the head on the last; a tied LM head on a different stage than the embedding keeps
    its own copy of the matrix (Megatron-LM)."""
    m, p = setup.model, setup.plan
    total = layers * layer_params(m).per_rank(p.tp)
    if chunk == 0:
        total += m.vocab * m.hidden / p.tp + position_params(m)
    if chunk == p.chunks - 1:
        untied_head = 0 if m.tied_embeddings else m.vocab * m.hidden
        total += norm_params(m) + untied_head / p.tp
        if m.tied_embeddings and p.pp > 1:
            total += m.vocab * m.hidden / p.tp
    return total


def stage_params_on_rank(setup: Setup, stage: int, counts: list[int]) -> float:
    """Parameters one TP rank of `stage` holds: the sum over its chunks."""
    p = setup.plan
    return sum(chunk_params_on_rank(setup, c, counts[c]) for c in chunks_of_stage(stage, p.pp, p.virtual_stages))
