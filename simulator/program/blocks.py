"""What the engine executes: blocks of timed segments with the collectives around them, per chunk,
stage and step (compiled by compile.py, or exchanges.py for MoE layers that exchange tokens)."""

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from simulator.collectives.pricing import FlowSpec
from simulator.enums import CommGroup
from simulator.program.segments import Segment
from simulator.workload.ops import CommOp, Item
from simulator.workload.step import StepWork


@dataclass(frozen=True)
class Block:
    """A segment, optionally waiting for gathered weights first (ZeRO-3) and issuing a gradient
    reduce-scatter after (ZeRO-3)."""

    segment: Segment
    gather: tuple[FlowSpec, ...] = ()
    reduce: tuple[FlowSpec, ...] = ()
    bucket: tuple[FlowSpec, ...] = ()  # DP gradient bucket issued after it in the chunk's last backward
    # ZeRO-1/2 weight all-gather it waits for in the chunk's first forward of the step when the gathers
    # overlap the forward (overlap_param_gather): the stage issues them in order, one bucket ahead
    param_sync: tuple[FlowSpec, ...] = ()
    # an expert-parallel exchange (dispatch or combine) the segment waits for: flows on the topology,
    # issued when the block is reached and sharing links with everything else in flight
    exchange: tuple[FlowSpec, ...] = ()
    exchange_name: str = ""

    @cached_property
    def exchange_bytes(self) -> float:
        """Bytes per constituent flow of the exchange, all its rounds."""
        return sum(f.bytes_per_flow for f in self.exchange)


@dataclass(frozen=True)
class ChunkProgram:
    """What a stage runs for one model chunk: its blocks per pass and its data-parallel flows."""

    chunk: int
    stage: int
    forward: tuple[Block, ...]
    backward: tuple[Block, ...]
    grad_reduce: tuple[FlowSpec, ...]  # DP gradient all-reduce (ZeRO-0) or reduce-scatter (1/2), after backward
    param_gather: tuple[FlowSpec, ...]  # ZeRO-1/2 all-gather of updated weights after the optimizer
    backward_last: tuple[Block, ...] = ()  # the chunk's last backward when it reduces gradients per bucket
    forward_first: tuple[Block, ...] = ()  # the chunk's first forward when it waits for gathers per bucket

    def backward_blocks(self, last: bool) -> tuple[Block, ...]:
        return self.backward_last if last and self.backward_last else self.backward

    def forward_blocks(self, first: bool) -> tuple[Block, ...]:
        return self.forward_first if first and self.forward_first else self.forward


@dataclass(frozen=True)
class StageProgram:
    """What one pipeline stage runs: its chunks and its optimizer step."""

    stage: int
    chunks: tuple[ChunkProgram, ...]
    optimizer: Segment


@dataclass(frozen=True)
class Program:
    """What every pipeline stage runs in one step, and the size of the messages between stages."""

    stages: tuple[StageProgram, ...]
    pp_message_bytes: float
    exchanges: bool = False  # its MoE layers exchange tokens between expert-parallel ranks (exchanges.py)


def has_exchanges(work: StepWork) -> bool:
    """Whether the step has expert-parallel exchanges, which split the layers into blocks the engine runs
    one by one (program/exchanges.py)."""
    return work.moe_layer is not None and any(is_exchange(i) for i in work.moe_layer.forward)


def is_exchange(item: Item) -> bool:
    return isinstance(item, CommOp) and item.group is CommGroup.EP


def chunk_bucket(forward: tuple[Block, ...], gather: tuple[FlowSpec, ...]) -> tuple[Block, ...]:
    """Overlapped weight gathers of an interleaved schedule: one bucket per model chunk, awaited before the
    chunk's first forward (NeMo docs, "Communication Overlap": with pipelining "the granularity of DP
    communication becomes the Transformer layers per virtual pipeline stage"; Megatron-Core's interleaved
    schedule launches the next chunk's param_sync_func one chunk ahead)."""
    return (dataclasses.replace(forward[0], param_sync=gather), *forward[1:])
