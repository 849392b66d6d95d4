"""The SimPy model of one optimizer step on the representative pipeline.

One process per pipeline stage plays the stage's compute stream through its schedule (the
order of forward and backward passes); pipeline messages and data-parallel collectives are
aggregated flows on the bandwidth-shared topology network, so traffic of all replicas and all
collectives in flight contend for links (max-min fair). Every interval of every stage's compute
stream is recorded as a span: compute segments, or waits with their reason.
"""

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import simpy

from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.engine.program import Block, ChunkProgram, Program, StageProgram
from simulator.engine.schedules import Pass, Task, stage_order
from simulator.engine.spans import Span, Stream, WaitReason
from simulator.network import FlowNetwork
from simulator.scenario.setup import Setup

MessageKey = tuple[Pass, int, int]  # (pass, micro-batch, receiving chunk)


@dataclass(frozen=True)
class EngineResult:
    time_s: float
    stage_end_s: list[float]
    spans: list[Span]
    messages: dict[MessageKey, tuple[float, float]]  # send start, arrival
    events: int  # SimPy events processed
    flows: int  # aggregated flows simulated


class StepSimulation:
    def __init__(self, setup: Setup, program: Program, pricer: CommPricer):
        self.setup = setup
        self.program = program
        self.pricer = pricer
        self.env = simpy.Environment()
        self.net = FlowNetwork(self.env, pricer.topo.capacities)
        self.spans: list[Span] = []
        self.arrivals: dict[MessageKey, simpy.Event] = {}
        self.messages: dict[MessageKey, tuple[float, float]] = {}
        self.dp_stream = [simpy.Resource(self.env, 1) for _ in program.stages]
        self.gather_stream = [simpy.Resource(self.env, 1) for _ in program.stages]
        self.pending_dp: list[list[simpy.Event]] = [[] for _ in program.stages]
        self.stage_end = [0.0] * len(program.stages)
        self.last_chunk = setup.plan.chunks - 1
        self.flow_count = 0

    # -- messages ---------------------------------------------------------------------------
    def arrival(self, key: MessageKey) -> simpy.Event:
        if key not in self.arrivals:
            self.arrivals[key] = self.env.event()
        return self.arrivals[key]

    def send(self, key: MessageKey, src_stage: int, dst_stage: int) -> None:
        """Start the message now; its arrival event fires when the flow (plus latency) completes."""
        flow = self.pricer.p2p(src_stage, dst_stage, self.program.pp_message_bytes)
        self.flow_count += 1
        start = self.env.now
        done = self.net.transfer(flow.linkset, flow.bytes_per_flow, flow.latency_s, tag=key)
        done.callbacks.append(lambda _: self._delivered(key, src_stage, start, flow.bytes_per_flow))

    def _delivered(self, key: MessageKey, src_stage: int, start: float, size: float) -> None:
        now = self.env.now
        self.messages[key] = (start, now)
        self.spans.append(
            Span(
                src_stage,
                Stream.PP_SEND,
                f"send {key[0]}{key[1]}->c{key[2]}",
                start,
                now,
                bytes=size,
                micro_batch=key[1],
                chunk=key[2],
            )
        )
        self.arrival(key).succeed()

    # -- collectives on a stream -------------------------------------------------------------
    def collective(self, stage: int, stream: simpy.Resource, flows: Sequence[FlowSpec], name: str) -> simpy.Event:
        return self.env.process(self._collective(stage, stream, flows, name))

    def _collective(self, stage: int, stream: simpy.Resource, flows: Sequence[FlowSpec], name: str) -> Generator:
        with stream.request() as turn:
            yield turn
            start = self.env.now
            for f in flows:
                self.flow_count += 1
                yield self.net.transfer(f.linkset, f.bytes_per_flow, f.latency_s, tag=name)
            self.spans.append(
                Span(stage, Stream.DP, name, start, self.env.now, bytes=sum(f.bytes_per_flow for f in flows))
            )

    # -- the compute stream ---------------------------------------------------------------------
    def wait(self, stage: int, event: simpy.Event, reason: WaitReason, awaited: object = None) -> Generator:
        start = self.env.now
        if not event.triggered:
            yield event
        if self.env.now > start:
            self.spans.append(
                Span(stage, Stream.COMPUTE, f"wait {reason}", start, self.env.now, wait=reason, awaited=awaited)
            )

    def compute(self, stage: int, block: Block, task: Task | None) -> Generator:
        seg = block.segment
        start = self.env.now
        yield self.env.timeout(seg.duration_s)
        mb, chunk = (task.micro_batch, task.chunk) if task else (-1, -1)
        self.spans.append(
            Span(
                stage,
                Stream.COMPUTE,
                seg.name,
                start,
                self.env.now,
                flops=seg.flops,
                bytes=seg.bytes,
                micro_batch=mb,
                chunk=chunk,
                segment=seg,
            )
        )

    def run_blocks(self, stage: int, blocks: Sequence[Block], task: Task, last: bool = False) -> Generator:
        gathers = self._prefetch(stage, blocks, 0)
        for i, block in enumerate(blocks):
            if block.gather:
                nxt = self._prefetch(stage, blocks, i + 1)
                yield from self.wait(stage, gathers, WaitReason.DP_COMM, "zero3_gather")
                gathers = nxt
            yield from self.compute(stage, block, task)
            if block.reduce:
                self.pending_dp[stage].append(
                    self.collective(stage, self.dp_stream[stage], block.reduce, "zero3_reduce_scatter")
                )
            if block.bucket and last:
                self.pending_dp[stage].append(
                    self.collective(stage, self.dp_stream[stage], block.bucket, "dp_grad_bucket")
                )

    def _prefetch(self, stage: int, blocks: Sequence[Block], i: int) -> simpy.Event | None:
        """ZeRO-3 prefetch depth 1: the gather for block i is issued when block i-1 starts."""
        while i < len(blocks) and not blocks[i].gather:
            i += 1
        if i >= len(blocks):
            return None
        return self.collective(stage, self.gather_stream[stage], blocks[i].gather, "zero3_gather")

    def stage_process(self, sp: StageProgram) -> Generator:
        plan = self.setup.plan
        by_chunk = {c.chunk: c for c in sp.chunks}
        order = stage_order(plan.schedule, sp.stage, plan.pp, self.setup.micro_batches, plan.virtual_stages)
        last_backward = {t.chunk: i for i, t in enumerate(order) if t.pass_ is Pass.BACKWARD}
        for i, task in enumerate(order):
            chunk = by_chunk[task.chunk]
            if task.pass_ is Pass.FORWARD:
                yield from self.forward(sp.stage, chunk, task)
            else:
                yield from self.backward(sp.stage, chunk, task, last=last_backward[task.chunk] == i)
        yield from self.finish(sp)

    def forward(self, stage: int, chunk: ChunkProgram, task: Task) -> Generator:
        if task.chunk > 0:
            key = (Pass.FORWARD, task.micro_batch, task.chunk)
            yield from self.wait(stage, self.arrival(key), WaitReason.PP_RECV, key)
        yield from self.run_blocks(stage, chunk.forward, task)
        if task.chunk < self.last_chunk:
            self.send((Pass.FORWARD, task.micro_batch, task.chunk + 1), stage, (task.chunk + 1) % self.setup.plan.pp)

    def backward(self, stage: int, chunk: ChunkProgram, task: Task, last: bool) -> Generator:
        """`last`: the chunk's final backward of the step, where overlapped gradient buckets go out."""
        if task.chunk < self.last_chunk:
            key = (Pass.BACKWARD, task.micro_batch, task.chunk)
            yield from self.wait(stage, self.arrival(key), WaitReason.PP_RECV, key)
        yield from self.run_blocks(stage, chunk.backward_blocks(last), task, last)
        if task.chunk > 0:
            self.send((Pass.BACKWARD, task.micro_batch, task.chunk - 1), stage, (task.chunk - 1) % self.setup.plan.pp)

    def finish(self, sp: StageProgram) -> Generator:
        """Gradient reduction (what was not overlapped), optimizer, ZeRO-1/2 weight all-gather."""
        s = sp.stage
        for chunk in sp.chunks:
            if chunk.grad_reduce:
                self.pending_dp[s].append(self.collective(s, self.dp_stream[s], chunk.grad_reduce, "dp_grad_reduce"))
        if self.pending_dp[s]:
            yield from self.wait(s, self.env.all_of(self.pending_dp[s]), WaitReason.DP_COMM, "dp_grad_reduce")
        yield from self.compute(s, Block(sp.optimizer), None)
        gathers = [c.param_gather for c in sp.chunks if c.param_gather]
        if gathers:
            done = [self.collective(s, self.dp_stream[s], g, "dp_param_allgather") for g in gathers]
            yield from self.wait(s, self.env.all_of(done), WaitReason.DP_COMM, "dp_param_allgather")
        self.stage_end[s] = self.env.now

    def run(self) -> EngineResult:
        for sp in self.program.stages:
            self.env.process(self.stage_process(sp))
        self.env.run()
        t = max(self.stage_end)
        for s, end in enumerate(self.stage_end):
            if t > end:
                self.spans.append(Span(s, Stream.COMPUTE, "wait step_end", end, t, wait=WaitReason.STEP_END))
        # SimPy numbers every scheduled event from one counter; reading it is the cheapest count.
        events = next(self.env._eid)
        return EngineResult(t, list(self.stage_end), self.spans, self.messages, events, self.flow_count)
