"""Compile the workload into what each stage's engine process executes: per chunk the timed
forward and backward blocks, and the flows of the data-parallel collectives."""

from collections.abc import Callable
from dataclasses import dataclass

from simulator import units
from simulator.catalog.loader import bundled
from simulator.collectives.pricing import CommPricer
from simulator.costs.clocks import compute_clock_scale
from simulator.costs.compute import op_time_s
from simulator.enums import Collective, LayerKind
from simulator.program.blocks import Block, ChunkProgram, Program, StageProgram, chunk_bucket
from simulator.program.dp_flows import bucket_params, collective_flows, dp_flows, flows, gather_flows, reduce_flows
from simulator.program.exchanges import compile_exchange_program
from simulator.program.segments import GraphScope, Segment, SegmentBuilder, concat
from simulator.scenario.setup import Setup
from simulator.workload.layer import Item
from simulator.workload.ops import CommOp
from simulator.workload.step import ChunkWork, StepWork


def item_timer(setup: Setup, pricer: CommPricer, clock_scale: float = 1.0) -> Callable[[Item], float]:
    """Duration of an item on the compute stream: roofline ops (math at `clock_scale` x the sustained SM
    clock); blocking TP/CP collectives priced on the topology (identical on every stage by symmetry, so
    priced on stage 0; the SM clock does not change them)."""

    def timer(item: Item) -> float:
        if isinstance(item, CommOp):
            return pricer.time_s(item.collective, item.group, 0, item.bytes)
        return op_time_s(item, setup.cluster.gpu, setup.training.precision, clock_scale)

    return timer


def stage_builders(setup: Setup, pricer: CommPricer, stages: int) -> list[SegmentBuilder]:
    """Each pipeline stage's segment builder: one per distinct SM clock (the cluster's, or the stage's own
    from the energy-bloat planner), so stages at one clock share their segments."""
    software = bundled("software")
    dropless = setup.model.moe is not None and setup.model.moe.dropless
    graphs = GraphScope.of(setup.cuda_graphs, units.us_to_s(float(software["cuda_graph_replay_us"])), dropless)
    call_s = units.us_to_s(float(software["host_call_us"]))
    by_scale: dict[float, SegmentBuilder] = {}
    out = []
    for s in range(stages):
        scale = compute_clock_scale(setup.cluster.gpu, setup.cluster.stage_clock(s))
        if scale not in by_scale:
            timer = item_timer(setup, pricer, scale)
            by_scale[scale] = SegmentBuilder(
                timer, setup.host_time_per_op_s, setup.cluster.gpu.sm_count, graphs, call_s
            )
        out.append(by_scale[scale])
    return out


def compile_program(work: StepWork, pricer: CommPricer) -> Program:
    setup = work.setup
    builders = stage_builders(setup, pricer, len(work.stages))
    if work.moe_layer is not None:
        return compile_exchange_program(work, pricer, builders)
    layers: dict[int, tuple[Segment, LayerBackward]] = {}
    stages = []
    for s, stage_work in enumerate(work.stages):
        builder = builders[s]
        if id(builder) not in layers:
            layers[id(builder)] = (
                builder.build("layer_forward", work.layer.forward, builder.graphs.layers),
                LayerBackward(
                    recomputing=builder.build(
                        "layer_backward", work.layer.recompute + work.layer.backward, builder.graphs.layers
                    ),
                    stored=builder.build("layer_backward_stored", work.layer.backward, builder.graphs.layers),
                ),
            )
        layer_f, layer_b = layers[id(builder)]
        chunks = tuple(_chunk_program(work, c, builder, pricer, layer_f, layer_b) for c in work.chunks if c.stage == s)
        optimizer = builder.build("optimizer", [stage_work.optimizer])
        stages.append(StageProgram(stage=s, chunks=chunks, optimizer=optimizer))
    return Program(stages=tuple(stages), pp_message_bytes=work.pp_message_bytes)


@dataclass(frozen=True)
class LayerBackward:
    """One layer's backward segment with its forward recomputed first, and without."""

    recomputing: Segment
    stored: Segment

    def of(self, c: ChunkWork) -> list[Segment]:
        """The chunk's layer backwards in execution order (its last layer first)."""
        return [self.recomputing if c.recomputes(i) else self.stored for i in range(c.layers)]


def _chunk_program(
    work: StepWork, c: ChunkWork, builder: SegmentBuilder, pricer: CommPricer, layer_f: Segment, layer_b: LayerBackward
) -> ChunkProgram:
    ends = builder.graphs.ends
    pro_f = builder.build("embedding_forward", c.prologue_forward, ends)
    epi_f = builder.build("head_forward", c.epilogue_forward, ends)
    epi_b = builder.build("head_backward", c.epilogue_backward, ends)
    pro_b = builder.build("embedding_backward", c.prologue_backward, ends)
    if c.zero3_forward:
        forward, backward = _zero3_blocks(c, pricer, (pro_f, layer_f, epi_f), (epi_b, layer_b.of(c), pro_b))
    else:
        forward = (Block(concat(f"chunk{c.index}_forward", [pro_f, layer_f, epi_f], [1, c.layers, 1])),)
        parts = [epi_b, layer_b.stored, layer_b.recomputing, pro_b]
        repeats = [1, c.layers - c.recomputed, c.recomputed, 1]
        backward = (Block(concat(f"chunk{c.index}_backward", parts, repeats)),)
    grad, params = dp_flows(work, c, pricer)
    backward_last: tuple[Block, ...] = ()
    if work.setup.plan.dp_overlap and grad:
        backward_last = _bucketed_backward(work, c, pricer, epi_b, layer_b.of(c), pro_b)
        grad = ()
    forward_first: tuple[Block, ...] = ()
    if work.setup.plan.param_gather_overlap and params:
        if work.setup.plan.virtual_stages > 1:
            forward_first = chunk_bucket(forward, params)
        else:
            forward_first = _bucketed_forward(work, c, pricer, pro_f, layer_f, epi_f)
        params = ()
    return ChunkProgram(c.index, c.stage, forward, backward, grad, params, backward_last, forward_first)


def _bucketed_forward(
    work: StepWork, c: ChunkWork, pricer: CommPricer, pro_f: Segment, layer_f: Segment, epi_f: Segment
) -> tuple[Block, ...]:
    """Overlapped weight gathers: in the step's first forward of the chunk each layer waits for its
    gathered weights, the embedding's first and the head's last (dp_flows.bucket_params)."""
    head, per_layer, rest = bucket_params(work, c)
    layer = gather_flows(work, c, pricer, per_layer[LayerKind.DENSE])
    return (
        Block(pro_f, param_sync=gather_flows(work, c, pricer, rest)),
        *(Block(layer_f, param_sync=layer) for _ in range(c.layers)),
        Block(epi_f, param_sync=gather_flows(work, c, pricer, head)),
    )


def _bucketed_backward(
    work: StepWork, c: ChunkWork, pricer: CommPricer, epi_b: Segment, layer_b: list[Segment], pro_b: Segment
) -> tuple[Block, ...]:
    """Overlapped gradient reduction: in the last micro-batch each layer's gradients are reduced as soon
    as its backward is done, hidden behind the backward of the layers before it; the embedding/head rest
    goes with the chunk's ends (dp_flows.bucket_params)."""
    head, per_layer, rest = bucket_params(work, c)
    layer = reduce_flows(work, c, pricer, per_layer[LayerKind.DENSE])
    return (
        Block(epi_b, bucket=reduce_flows(work, c, pricer, head)),
        *(Block(seg, bucket=layer) for seg in layer_b),
        Block(pro_b, bucket=reduce_flows(work, c, pricer, rest)),
    )


def _zero3_blocks(c: ChunkWork, pricer: CommPricer, fwd: tuple, bwd: tuple) -> tuple[tuple, tuple]:
    """ZeRO-3 / FSDP: every layer waits for its gathered weights; backward layers also issue the
    reduce-scatter of their gradients."""
    pro_f, layer_f, epi_f = fwd
    epi_b, layer_bs, pro_b = bwd
    gather_f = tuple(f for op in c.zero3_forward for f in flows(pricer, op, c.stage))
    gather_b = collective_flows(c.zero3_backward, Collective.ALL_GATHER, pricer, c.stage)
    reduce_b = collective_flows(c.zero3_backward, Collective.REDUCE_SCATTER, pricer, c.stage)
    forward = (Block(pro_f), *(Block(layer_f, gather=gather_f) for _ in range(c.layers)), Block(epi_f))
    backward = (
        Block(epi_b),
        *(Block(seg, gather=gather_b, reduce=reduce_b) for seg in layer_bs),
        Block(pro_b),
    )
    return forward, backward
