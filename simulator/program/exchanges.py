"""Compile a step whose MoE layers exchange tokens between expert-parallel ranks.

A layer's items are split at its exchanges (dispatch and combine all-to-alls, or the all-gather /
reduce-scatter of the `allgather` dispatcher), and after an op the host waits on (Op.host_sync: a dropless
dispatcher's token counts copied to the host, so the host cannot issue work past it ahead of the GPU; with
expert parallelism the exchange follows at once): the compute between two such points is one timed segment,
and each exchange becomes the flows of one block that the engine issues on the topology when the block
is reached, so they share links with pipeline messages and data-parallel collectives in flight, and,
with `moe_overlap`, run while another micro-batch computes (engine/core.py). Everything else is as in
compile.py: runs of compute without an exchange between them are concatenated into one block; ZeRO-3
gathers (and, in a chunk's first forward, overlapped weight gathers) wait before a layer's first
block; its reduce-scatters and overlapped gradient buckets go out after its last."""

from dataclasses import dataclass

from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.enums import Collective, LayerKind
from simulator.program.blocks import (
    Block,
    ChunkProgram,
    Program,
    StageProgram,
    chunk_bucket,
    has_exchanges,
    is_exchange,
)
from simulator.program.dp_flows import bucket_params, collective_flows, dp_flows, flows, gather_flows, reduce_flows
from simulator.program.segments import Segment, SegmentBuilder, concat
from simulator.workload.ops import CommOp, Item, Op
from simulator.workload.step import ChunkWork, StepWork

Piece = tuple[CommOp | None, Segment]  # a segment and the exchange it waits for first (None: none)


@dataclass(frozen=True)
class Unit:
    """A layer (or a chunk's prologue / epilogue) as pieces, with its per-layer data-parallel traffic."""

    pieces: tuple[Piece, ...]
    gather: tuple[FlowSpec, ...] = ()
    reduce: tuple[FlowSpec, ...] = ()
    bucket: tuple[FlowSpec, ...] = ()
    param_sync: tuple[FlowSpec, ...] = ()  # overlapped weight gather awaited in the chunk's first forward


class Pieces:
    """Splits item runs at their exchanges and builds their segments once per distinct run."""

    def __init__(self, builder: SegmentBuilder):
        self.builder = builder
        self._cache: dict[str, tuple[Piece, ...]] = {}

    def of(self, key: str, items: tuple[Item, ...], graphed: bool) -> tuple[Piece, ...]:
        """The pieces of `items` (cached by `key`); `graphed`: the framework's CUDA graphs cover them."""
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._split(key, items, graphed)
        return found

    def _split(self, name: str, items: tuple[Item, ...], graphed: bool) -> tuple[Piece, ...]:
        pieces: list[Piece] = []
        exchange: CommOp | None = None
        run: list[Item] = []
        for item in items:
            if is_exchange(item):
                assert isinstance(item, CommOp)
                if run or exchange is not None:
                    pieces.append((exchange, self.builder.build(name, run, graphed)))
                exchange, run = item, []
            else:
                run.append(item)
                if isinstance(item, Op) and item.host_sync:  # the host cannot run ahead past it
                    pieces.append((exchange, self.builder.build(name, run, graphed)))
                    exchange, run = None, []
        if run or exchange is not None:
            pieces.append((exchange, self.builder.build(name, run, graphed)))
        return tuple(pieces)


def compile_exchange_program(work: StepWork, pricer: CommPricer, builders: list[SegmentBuilder]) -> Program:
    """`builders`: each stage's segment builder (compile.stage_builders: one per distinct SM clock)."""
    by_builder: dict[int, Pieces] = {}
    stages = []
    for s, stage_work in enumerate(work.stages):
        builder = builders[s]
        pieces = by_builder.setdefault(id(builder), Pieces(builder))
        chunks = tuple(_chunk(work, c, pieces, pricer) for c in work.chunks if c.stage == s)
        stages.append(
            StageProgram(stage=s, chunks=chunks, optimizer=builder.build("optimizer", [stage_work.optimizer]))
        )
    return Program(stages=tuple(stages), pp_message_bytes=work.pp_message_bytes, exchanges=has_exchanges(work))


def _chunk(work: StepWork, c: ChunkWork, pieces: Pieces, pricer: CommPricer) -> ChunkProgram:
    layers = work.layers
    gather_f, gather_b, reduce_b = {}, {}, {}
    for kind in layers:
        fwd_ops, bwd_ops = c.zero3_of(kind)
        gather_f[kind] = collective_flows(fwd_ops, Collective.ALL_GATHER, pricer, c.stage)
        gather_b[kind] = collective_flows(bwd_ops, Collective.ALL_GATHER, pricer, c.stage)
        reduce_b[kind] = collective_flows(bwd_ops, Collective.REDUCE_SCATTER, pricer, c.stage)
    grad, params = dp_flows(work, c, pricer)
    synced = work.setup.plan.param_gather_overlap and bool(params)
    per_chunk = work.setup.plan.virtual_stages > 1  # one bucket per chunk (compile.chunk_bucket)
    sync_head: tuple[FlowSpec, ...] = ()
    sync_layer: dict[LayerKind, tuple[FlowSpec, ...]] = {}
    sync_rest: tuple[FlowSpec, ...] = ()
    if synced and not per_chunk:
        head, per_layer, rest = bucket_params(work, c)
        sync_head, sync_rest = gather_flows(work, c, pricer, head), gather_flows(work, c, pricer, rest)
        sync_layer = {kind: gather_flows(work, c, pricer, p) for kind, p in per_layer.items()}
    pro_f = pieces.of(f"c{c.index}_prologue_forward", c.prologue_forward, pieces.builder.graphs.ends)
    epi_f = pieces.of(f"c{c.index}_epilogue_forward", c.epilogue_forward, pieces.builder.graphs.ends)
    forward, forward_first = [Unit(pro_f)], [Unit(pro_f, param_sync=sync_rest)]
    for i in range(c.layers):
        kind = c.kind(i)
        layer_f = pieces.of(f"{kind}_layer_forward", layers[kind].forward, pieces.builder.graphs.layers)
        forward.append(Unit(layer_f, gather=gather_f[kind]))
        forward_first.append(Unit(layer_f, gather=gather_f[kind], param_sync=sync_layer.get(kind, ())))
    forward.append(Unit(epi_f))
    forward_first.append(Unit(epi_f, param_sync=sync_head))

    bucketed = work.setup.plan.dp_overlap and bool(grad)
    backward, backward_last = [], []
    head_bucket: tuple[FlowSpec, ...] = ()
    layer_bucket: dict[LayerKind, tuple[FlowSpec, ...]] = {}
    rest_bucket: tuple[FlowSpec, ...] = ()
    if bucketed:
        head, per_layer, rest = bucket_params(work, c)
        head_bucket, rest_bucket = reduce_flows(work, c, pricer, head), reduce_flows(work, c, pricer, rest)
        layer_bucket = {kind: reduce_flows(work, c, pricer, p) for kind, p in per_layer.items()}
    epi = pieces.of(f"c{c.index}_epilogue_backward", c.epilogue_backward, pieces.builder.graphs.ends)
    backward.append(Unit(epi))
    backward_last.append(Unit(epi, bucket=head_bucket))
    for i in range(c.layers):
        kind = c.kind(c.layers - 1 - i)
        lw = layers[kind]
        if c.recomputes(i):
            layer = pieces.of(f"{kind}_layer_backward", lw.recompute + lw.backward, pieces.builder.graphs.layers)
        else:
            layer = pieces.of(f"{kind}_layer_backward_stored", lw.backward, pieces.builder.graphs.layers)
        zero3 = {"gather": gather_b[kind], "reduce": reduce_b[kind]}
        backward.append(Unit(layer, **zero3))
        backward_last.append(Unit(layer, **zero3, bucket=layer_bucket.get(kind, ())))
    pro = pieces.of(f"c{c.index}_prologue_backward", c.prologue_backward, pieces.builder.graphs.ends)
    backward.append(Unit(pro))
    backward_last.append(Unit(pro, bucket=rest_bucket))
    name = f"chunk{c.index}"
    forward_blocks = _blocks(f"{name}_forward", forward, pricer, c.stage)
    first: tuple[Block, ...] = ()
    if synced:
        first = (
            chunk_bucket(forward_blocks, params)
            if per_chunk
            else _blocks(f"{name}_forward", forward_first, pricer, c.stage)
        )
    return ChunkProgram(
        c.index,
        c.stage,
        forward_blocks,
        _blocks(f"{name}_backward", backward, pricer, c.stage),
        () if bucketed else grad,
        () if synced else params,
        _blocks(f"{name}_backward", backward_last, pricer, c.stage) if bucketed else (),
        first,
    )


def _blocks(name: str, units: list[Unit], pricer: CommPricer, stage: int) -> tuple[Block, ...]:
    """Blocks in execution order: a new block wherever an exchange or a ZeRO-3 gather must come first,
    and after a layer whose data-parallel traffic goes out when it is done."""
    blocks: list[Block] = []
    segs: list[Segment] = []
    exchange: tuple[FlowSpec, ...] = ()
    exchange_name = ""
    gather: tuple[FlowSpec, ...] = ()
    param_sync: tuple[FlowSpec, ...] = ()

    def flush(reduce: tuple[FlowSpec, ...] = (), bucket: tuple[FlowSpec, ...] = ()) -> None:
        nonlocal segs, exchange, exchange_name, gather, param_sync
        if not segs:
            return
        seg = segs[0] if len(segs) == 1 else concat(name, segs, [1] * len(segs))
        blocks.append(Block(seg, gather, reduce, bucket, param_sync, exchange, exchange_name))
        segs, exchange, exchange_name, gather, param_sync = [], (), "", (), ()

    for unit in units:
        for j, (op, seg) in enumerate(unit.pieces):
            awaits = j == 0 and (unit.gather or unit.param_sync)
            if op is not None or awaits:
                flush()
            if op is not None:
                exchange, exchange_name = tuple(flows(pricer, op, stage)), op.name
            if awaits:  # a block of its own from here: what it waits for first
                gather, param_sync = unit.gather, unit.param_sync
            segs.append(seg)
        if unit.reduce or unit.bucket:
            flush(unit.reduce, unit.bucket)
    flush()
    return tuple(blocks)
