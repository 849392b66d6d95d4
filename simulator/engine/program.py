"""Compile the workload into what each stage's engine process executes: per chunk the timed
forward and backward blocks, and the flows of the data-parallel collectives."""

from dataclasses import dataclass

from simulator import dtypes
from simulator.catalog.loader import bundled
from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.costs.compute import op_time_s
from simulator.engine.segments import Segment, SegmentBuilder, concat
from simulator.enums import Collective, CommGroup
from simulator.scenario.setup import Setup
from simulator.units import us_to_s
from simulator.workload.layer import Item
from simulator.workload.ops import CommOp
from simulator.workload.step import ChunkWork, StepWork, chunk_params_on_rank


@dataclass(frozen=True)
class Block:
    """A segment, optionally waiting for gathered weights first (ZeRO-3) and issuing a gradient
    reduce-scatter after (ZeRO-3)."""

    segment: Segment
    gather: tuple[FlowSpec, ...] = ()
    reduce: tuple[FlowSpec, ...] = ()


@dataclass(frozen=True)
class ChunkProgram:
    chunk: int
    stage: int
    forward: tuple[Block, ...]
    backward: tuple[Block, ...]
    grad_reduce: tuple[FlowSpec, ...]  # DP gradient all-reduce (ZeRO-0) or reduce-scatter (1/2)
    param_gather: tuple[FlowSpec, ...]  # ZeRO-1/2 all-gather of updated weights after the optimizer


@dataclass(frozen=True)
class StageProgram:
    stage: int
    chunks: tuple[ChunkProgram, ...]
    optimizer: Segment


@dataclass(frozen=True)
class Program:
    stages: tuple[StageProgram, ...]
    pp_message_bytes: float


def host_dispatch_s() -> float:
    return us_to_s(bundled("software")["host_dispatch_us"])


def item_timer(setup: Setup, pricer: CommPricer):
    """Duration of an item on the compute stream: roofline ops; blocking TP/CP collectives priced on
    the topology (identical on every stage by symmetry, so priced on stage 0)."""

    def timer(item: Item) -> float:
        if isinstance(item, CommOp):
            return pricer.time_s(item.collective, item.group, 0, item.bytes)
        return op_time_s(item, setup.cluster.gpu, setup.training.precision)

    return timer


def compile_program(work: StepWork, pricer: CommPricer) -> Program:
    setup = work.setup
    builder = SegmentBuilder(item_timer(setup, pricer), host_dispatch_s())
    layer_f = builder.build("layer_forward", work.layer.forward)
    layer_b = builder.build("layer_backward", work.layer.recompute + work.layer.backward)
    stages = []
    for s, stage_work in enumerate(work.stages):
        chunks = tuple(_chunk_program(work, c, builder, pricer, layer_f, layer_b) for c in work.chunks if c.stage == s)
        optimizer = builder.build("optimizer", [stage_work.optimizer])
        stages.append(StageProgram(stage=s, chunks=chunks, optimizer=optimizer))
    return Program(stages=tuple(stages), pp_message_bytes=work.pp_message_bytes)


def _chunk_program(
    work: StepWork, c: ChunkWork, builder: SegmentBuilder, pricer: CommPricer, layer_f: Segment, layer_b: Segment
) -> ChunkProgram:
    pro_f = builder.build("embedding_forward", c.prologue_forward)
    epi_f = builder.build("head_forward", c.epilogue_forward)
    epi_b = builder.build("head_backward", c.epilogue_backward)
    pro_b = builder.build("embedding_backward", c.prologue_backward)
    if c.zero3_forward:
        forward, backward = _zero3_blocks(c, pricer, (pro_f, layer_f, epi_f), (epi_b, layer_b, pro_b))
    else:
        forward = (Block(concat(f"chunk{c.index}_forward", [pro_f, layer_f, epi_f], [1, c.layers, 1])),)
        backward = (Block(concat(f"chunk{c.index}_backward", [epi_b, layer_b, pro_b], [1, c.layers, 1])),)
    grad, params = _dp_flows(work, c, pricer)
    return ChunkProgram(c.index, c.stage, forward, backward, grad, params)


def _flows(pricer: CommPricer, op: CommOp, stage: int) -> tuple[FlowSpec, ...]:
    return tuple(pricer.unit_flows(op.collective, op.group, stage, op.bytes))


def _zero3_blocks(c: ChunkWork, pricer: CommPricer, fwd: tuple, bwd: tuple) -> tuple[tuple, tuple]:
    """ZeRO-3 / FSDP: every layer waits for its gathered weights; backward layers also issue the
    reduce-scatter of their gradients."""
    pro_f, layer_f, epi_f = fwd
    epi_b, layer_b, pro_b = bwd
    gather_f = tuple(f for op in c.zero3_forward for f in _flows(pricer, op, c.stage))
    gather_b = tuple(
        f for op in c.zero3_backward if op.collective is Collective.ALL_GATHER for f in _flows(pricer, op, c.stage)
    )
    reduce_b = tuple(
        f for op in c.zero3_backward if op.collective is Collective.REDUCE_SCATTER for f in _flows(pricer, op, c.stage)
    )
    forward = (Block(pro_f), *(Block(layer_f, gather=gather_f) for _ in range(c.layers)), Block(epi_f))
    backward = (
        Block(epi_b),
        *(Block(layer_b, gather=gather_b, reduce=reduce_b) for _ in range(c.layers)),
        Block(pro_b),
    )
    return forward, backward


def _dp_flows(work: StepWork, c: ChunkWork, pricer: CommPricer) -> tuple[tuple[FlowSpec, ...], tuple[FlowSpec, ...]]:
    """Per-chunk data-parallel traffic (the bucket granularity of overlapped reduction)."""
    setup = work.setup
    plan = setup.plan
    if plan.dp * plan.cp == 1 or plan.zero == 3:
        return (), ()
    params = chunk_params_on_rank(setup, c.index, c.layers)
    prec = setup.training.precision
    grads = params * dtypes.gradient_bytes(prec)
    if plan.zero == 0:
        return tuple(pricer.unit_flows(Collective.ALL_REDUCE, CommGroup.DP, c.stage, grads)), ()
    weights = params * dtypes.weight_bytes(prec)
    return (
        tuple(pricer.unit_flows(Collective.REDUCE_SCATTER, CommGroup.DP, c.stage, grads)),
        tuple(pricer.unit_flows(Collective.ALL_GATHER, CommGroup.DP, c.stage, weights)),
    )
