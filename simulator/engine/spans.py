"""Typed spans: what the engine records (docs/design.md rule 9) and metrics and writers read."""

from enum import StrEnum
from typing import Any, NamedTuple

from simulator.enums import Category
from simulator.program.segments import Segment


class Stream(StrEnum):
    COMPUTE = "compute"
    PP_SEND = "pp_send"
    DP = "dp"
    EP = "ep"  # expert-parallel exchanges (dispatch, combine)


class WaitReason(StrEnum):
    """Why the compute stream of a stage was idle."""

    PP_RECV = "pp_recv"  # waiting for an activation or gradient from a neighbouring stage
    DP_COMM = "dp_comm"  # waiting for a data-parallel collective (gradients, ZeRO gathers)
    EP_COMM = "ep_comm"  # waiting for tokens to reach their experts or come back
    STEP_END = "step_end"  # finished, waiting for the slowest stage


class Span(NamedTuple):
    """One interval on one stream of one representative rank (a pipeline stage).

    For compute spans `segment` names the timed template it executes (expanded to kernels by the
    trace writer); waits carry the reason and, for messages, the key of what was awaited. Immutable
    and typed; a NamedTuple rather than a frozen dataclass because the engine makes ~10^4 per step
    and a frozen dataclass takes ~3x as long to create."""

    rank: int
    stream: Stream
    name: str
    start_s: float
    end_s: float
    category: Category | None = None
    flops: float = 0.0
    bytes: float = 0.0
    micro_batch: int = -1
    chunk: int = -1
    segment: Segment | None = None
    wait: WaitReason | None = None
    awaited: tuple[Any, ...] | str | None = None  # a message key (pass, micro-batch, chunk[, replica]) or a label
    contention_s: float = 0.0  # of a compute span: time added by collectives sharing the SMs

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s
