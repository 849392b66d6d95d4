"""Where the parameters live: what one rank holds for a pipeline chunk and a stage (before ZeRO
sharding), split into dense parameters (split by TP; reduced and ZeRO-sharded over DP x CP) and
routed-expert parameters (split over EP x ETP; reduced and ZeRO-sharded over the expert-data-parallel
group, Megatron-Core parallel folding)."""

from dataclasses import dataclass

from simulator.enums import LayerKind
from simulator.scenario.setup import Setup
from simulator.workload.params import layer_params, mtp_module_params, norm_params, position_params
from simulator.workload.partition import chunks_of_stage, layers_per_chunk


@dataclass(frozen=True)
class RankParams:
    """Parameters one rank holds. Units: parameters."""

    dense: float = 0.0  # gradients over DP x CP (CommGroup.DP, plan.dp_group), ZeRO shards over it
    expert: float = 0.0  # gradients over expert-DP (CommGroup.EDP, plan.expert_dp), ZeRO shards over it

    @property
    def total(self) -> float:
        return self.dense + self.expert

    def __add__(self, other: "RankParams") -> "RankParams":
        return RankParams(self.dense + other.dense, self.expert + other.expert)

    def __mul__(self, n: float) -> "RankParams":
        return RankParams(n * self.dense, n * self.expert)

    __rmul__ = __mul__


def layer_rank_params(setup: Setup, kind: LayerKind) -> RankParams:
    """One layer of `kind` on one rank: dense part / tp (replicated pieces whole), experts / (ep*etp)."""
    p = layer_params(setup.model, kind)
    plan = setup.plan
    return RankParams(p.dense_per_rank(plan.tp), p.expert_per_rank(plan.ep, plan.etp))


def mtp_rank_params(setup: Setup) -> RankParams:
    """One multi-token-prediction module on one rank (it sits on the last chunk)."""
    p = mtp_module_params(setup.model)
    plan = setup.plan
    return RankParams(p.dense_per_rank(plan.tp), p.expert_per_rank(plan.ep, plan.etp))


def chunk_layer_kinds(setup: Setup, chunk: int, counts: list[int] | None = None) -> list[LayerKind]:
    """The kinds of chunk `chunk`'s layers in order, by their global index (ModelSpec.layer_kind);
    `counts` is the layers per chunk (workload.partition.layers_per_chunk by default)."""
    m, p = setup.model, setup.plan
    counts = counts if counts is not None else layers_per_chunk(m.layers, p.chunks)
    start = sum(counts[:chunk])
    return [m.layer_kind(i) for i in range(start, start + counts[chunk])]


def _layers(setup: Setup, kinds: list[LayerKind]) -> RankParams:
    """Layers grouped by kind, each group as count x one layer (so a dense model's chunk is exactly
    layers * per-layer, as before the split)."""
    total = RankParams()
    for kind in dict.fromkeys(kinds):
        total = total + kinds.count(kind) * layer_rank_params(setup, kind)
    return total


def chunk_rank_params(setup: Setup, chunk: int, counts: list[int] | None = None) -> RankParams:
    """Parameters one rank holds for one chunk: its layers, plus the embedding on the first chunk and
    the head and the MTP modules on the last. A stage other than the first that holds the tied LM head
    or MTP modules keeps its own copy of the embedding matrix (Megatron-LM: the embedding group)."""
    m, p = setup.model, setup.plan
    params = _layers(setup, chunk_layer_kinds(setup, chunk, counts))
    dense = params.dense
    if chunk == 0:
        dense += m.vocab * m.hidden / p.tp + position_params(m)
    if chunk == p.chunks - 1:
        untied_head = 0 if m.tied_embeddings else m.vocab * m.hidden
        dense += norm_params(m) + untied_head / p.tp
        if p.pp > 1 and (m.tied_embeddings or m.mtp_layers):
            dense += m.vocab * m.hidden / p.tp + (position_params(m) if m.mtp_layers else 0)
        if m.mtp_layers:
            mtp = m.mtp_layers * mtp_rank_params(setup)
            return RankParams(dense + mtp.dense, params.expert + mtp.expert)
    return RankParams(dense, params.expert)


def stage_rank_params(setup: Setup, stage: int, counts: list[int] | None = None) -> RankParams:
    """Parameters one rank of `stage` holds: the sum over its chunks."""
    p = setup.plan
    total = RankParams()
    for c in chunks_of_stage(stage, p.pp, p.virtual_stages):
        total = total + chunk_rank_params(setup, c, counts)
    return total


def chunk_params_on_rank(setup: Setup, chunk: int, layers: int) -> float:
    """Parameters (dense + expert) one rank holds for one chunk of `layers` layers (the chunk's count
    in workload.partition.layers_per_chunk)."""
    counts = layers_per_chunk(setup.model.layers, setup.plan.chunks)
    counts[chunk] = layers
    return chunk_rank_params(setup, chunk, counts).total


def stage_params_on_rank(setup: Setup, stage: int, counts: list[int]) -> float:
    """Parameters (dense + expert) one rank of `stage` holds: the sum over its chunks."""
    p = setup.plan
    return sum(chunk_params_on_rank(setup, c, counts[c]) for c in chunks_of_stage(stage, p.pp, p.virtual_stages))
