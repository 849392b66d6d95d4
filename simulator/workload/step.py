"""One optimizer step's work for one representative rank of every pipeline stage.

All data-parallel replicas and all ranks of a TP group run the same work (docs/design.md, "scale
through symmetry"), so a step is: per pipeline chunk, the items of one micro-batch forward and
backward; per stage, the step-level data-parallel communication and the optimizer update.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from simulator import dtypes
from simulator.catalog.models import ModelSpec
from simulator.enums import LayerKind, Phase, Recompute
from simulator.scenario.setup import Setup
from simulator.workload.dp_comm import zero3_layer_comm, zero3_layer_comms
from simulator.workload.embedding import embedding_backward, embedding_forward
from simulator.workload.head import head_backward, head_forward
from simulator.workload.layer import LayerWork, layer_work
from simulator.workload.moe import MoeShapes, moe_layer_backward, moe_layer_forward, moe_layer_recompute, moe_shapes
from simulator.workload.mtp import mtp_work
from simulator.workload.ops import CommOp, Item, Op
from simulator.workload.optimizer import optimizer_op, optimizer_shard_params
from simulator.workload.partition import layers_per_chunk, stage_of_chunk
from simulator.workload.placement import stage_rank_params
from simulator.workload.shapes import RankShapes, rank_shapes


@dataclass(frozen=True)
class ChunkWork:
    """One pipeline chunk (a run of consecutive layers) for one micro-batch."""

    index: int
    stage: int
    layers: int
    recomputed: int = 0  # its first layers that recompute their forward before their backward
    prologue_forward: tuple[Item, ...] = ()  # embedding on the first chunk
    prologue_backward: tuple[Item, ...] = ()
    epilogue_forward: tuple[Item, ...] = ()  # final norm, LM head, loss on the last chunk
    epilogue_backward: tuple[Item, ...] = ()
    zero3_forward: tuple[CommOp, ...] = ()  # per-layer parameter gathers (ZeRO-3 / FSDP)
    zero3_backward: tuple[CommOp, ...] = ()
    kinds: tuple[LayerKind, ...] = ()  # each layer's kind, in order; () = every layer dense
    zero3_moe: tuple[tuple[CommOp, ...], tuple[CommOp, ...]] = ((), ())  # an MoE layer's (forward, backward)

    def zero3_of(self, kind: LayerKind) -> tuple[tuple[CommOp, ...], tuple[CommOp, ...]]:
        """The ZeRO-3 collectives of one layer of `kind`: (forward, backward)."""
        return self.zero3_moe if kind is LayerKind.MOE else (self.zero3_forward, self.zero3_backward)

    def kind(self, i: int) -> LayerKind:
        """The kind of the chunk's `i`-th layer (0-based, forward order)."""
        return self.kinds[i] if self.kinds else LayerKind.DENSE

    def forward(self, layers: Mapping[LayerKind, LayerWork]) -> Iterator[Item]:
        yield from self.prologue_forward
        for i in range(self.layers):
            kind = self.kind(i)
            yield from self.zero3_of(kind)[0]
            yield from layers[kind].forward
        yield from self.epilogue_forward

    def recomputes(self, backward_index: int) -> bool:
        """Whether the `backward_index`-th layer of the backward pass (the chunk's last layer first)
        recomputes: the chunk's first `recomputed` layers do."""
        return backward_index >= self.layers - self.recomputed

    def backward(self, layers: Mapping[LayerKind, LayerWork]) -> Iterator[Item]:
        """Backward of the chunk, last layer first; a recomputing layer's forward runs again right
        before its backward."""
        yield from self.epilogue_backward
        for i in range(self.layers):
            kind = self.kind(self.layers - 1 - i)
            yield from self.zero3_of(kind)[1]
            layer = layers[kind]
            if self.recomputes(i):
                yield from layer.recompute
            yield from layer.backward
        yield from self.prologue_backward


@dataclass(frozen=True)
class StageWork:
    """Step-level work of one pipeline stage (per rank); its data-parallel collectives are priced per
    chunk by the compile stage (workload/dp_comm.py), where overlapped reduction needs them."""

    stage: int
    params_on_rank: float  # parameters this rank holds before ZeRO sharding
    optimizer: Op


@dataclass(frozen=True)
class StepWork:
    """The per-rank work of one optimizer step: layer template, chunks, stages and messages."""

    setup: Setup
    shapes: RankShapes
    layer: LayerWork  # a dense layer (every layer of a dense model)
    chunks: tuple[ChunkWork, ...]
    stages: tuple[StageWork, ...]
    micro_batches: int
    pp_message_bytes: float  # activation (or its gradient) sent between stages, per micro-batch
    moe_layer: LayerWork | None = None  # an MoE layer (models with model.moe)

    @property
    def layers(self) -> dict[LayerKind, LayerWork]:
        """Each layer kind's work."""
        if self.moe_layer is None:
            return {LayerKind.DENSE: self.layer}
        return {LayerKind.DENSE: self.layer, LayerKind.MOE: self.moe_layer}

    def chunk_items(self, chunk: ChunkWork) -> Iterator[Item]:
        layers = self.layers
        yield from chunk.forward(layers)
        yield from chunk.backward(layers)

    def rank_items(self) -> Iterator[tuple[int, Item]]:
        """Every item of one micro-batch on every chunk, with its multiplicity 1 (helper for totals)."""
        for chunk in self.chunks:
            for item in self.chunk_items(chunk):
                yield chunk.stage, item


def build_step(setup: Setup) -> StepWork:
    r = rank_shapes(setup)
    plan, model = setup.plan, setup.model
    flash = setup.training.flash_attention
    layer = layer_work(model, r, flash, plan.recompute)
    moe = moe_shapes(setup, r) if model.moe is not None else None
    moe_layer = moe_layer_work(model, r, moe, flash, plan.recompute) if moe is not None else None
    layers = {LayerKind.DENSE: layer} | ({LayerKind.MOE: moe_layer} if moe_layer is not None else {})
    counts = layers_per_chunk(model.layers, plan.chunks)
    kinds = model.layer_kinds if model.moe is not None else ()
    zero3_f, zero3_b = _zero3(setup, LayerKind.DENSE)
    zero3_moe = _zero3(setup, LayerKind.MOE) if model.moe is not None else ((), ())
    mtp_f, mtp_b = mtp_work(model, r, layers[model.mtp_kind]) if model.mtp_layers else ((), ())
    chunks = []
    starts = [sum(counts[:c]) for c in range(len(counts))]
    for c, n in enumerate(counts):
        first, last = c == 0, c == plan.chunks - 1
        chunks.append(
            ChunkWork(
                index=c,
                stage=stage_of_chunk(c, plan.pp),
                layers=n,
                recomputed=plan.recomputed_layers(n),
                prologue_forward=tuple(embedding_forward(r)) if first else (),
                prologue_backward=tuple(embedding_backward(r)) if first else (),
                epilogue_forward=(*head_forward(model, r), *mtp_f) if last else (),
                epilogue_backward=(*mtp_b, *head_backward(model, r)) if last else (),
                zero3_forward=zero3_f,
                zero3_backward=zero3_b,
                kinds=tuple(kinds[starts[c] : starts[c] + n]),
                zero3_moe=zero3_moe,
            )
        )
    stages = tuple(_stage_work(setup, s, counts) for s in range(plan.pp))
    pp_bytes: float = r.tokens * r.h * r.elem
    if plan.tp > 1:
        pp_bytes /= plan.tp  # scatter/gather optimisation (Narayanan et al. 2021 sec. 4.1)
    return StepWork(
        setup=setup,
        shapes=r,
        layer=layer,
        chunks=tuple(chunks),
        stages=stages,
        micro_batches=setup.micro_batches,
        pp_message_bytes=pp_bytes,
        moe_layer=moe_layer,
    )


def _zero3(setup: Setup, kind: LayerKind) -> tuple[tuple[CommOp, ...], tuple[CommOp, ...]]:
    """ZeRO-3's per-layer collectives of a layer of `kind` (none below ZeRO-3)."""
    if setup.plan.zero != 3:
        return (), ()
    return zero3_layer_comms(setup, kind) if setup.model.moe is not None else zero3_layer_comm(setup)


def moe_layer_work(model: ModelSpec, r: RankShapes, ms: MoeShapes, flash: bool, policy: Recompute) -> LayerWork:
    return LayerWork(
        forward=tuple(moe_layer_forward(model, r, ms, flash, Phase.FORWARD)),
        backward=tuple(moe_layer_backward(model, r, ms, flash)),
        recompute=tuple(moe_layer_recompute(model, r, ms, flash, policy)),
    )


def _stage_work(setup: Setup, stage: int, counts: list[int]) -> StageWork:
    prec = setup.training.precision
    params = stage_rank_params(setup, stage, counts)
    shard = optimizer_shard_params(setup, params)
    optimizer = optimizer_op(
        shard,
        dtypes.weight_bytes(prec),
        dtypes.gradient_bytes(prec, setup.plan.fp32_gradients),
        dtypes.optimizer_bytes_per_param(prec),
    )
    return StageWork(stage=stage, params_on_rank=params.total, optimizer=optimizer)
