"""The SimPy model of one optimizer step.

Symmetric fidelity (the default) simulates the representative pipeline: one process per
pipeline stage plays that stage's compute stream through its schedule, and every message and
collective is an aggregated flow standing for all replicas at once. Full fidelity simulates every
data-parallel replica's pipeline (dp x pp processes): each replica's pipeline messages are flows of
their own, data-parallel collectives start when the last replica reaches them, and each replica
stage may run at its own speed (stragglers). Every interval of every compute stream is a span:
compute segments, or waits with their reason.

Contention: while a data-parallel or ZeRO-3 collective of a stage is in flight, NCCL's kernels hold
`comm.overlap_sms` of the GPU's SMs, and compute running beside them advances at the rate of the
SMs left (a fluid model: the rate changes whenever a collective starts or ends).
"""

from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import simpy

from simulator.collectives.pricing import CommPricer, FlowSpec
from simulator.costs.contention import contention_share, exchange_share
from simulator.engine.schedules import Pass, Task, stage_order
from simulator.engine.spans import Span, Stream, WaitReason
from simulator.gc_pause import paused_gc
from simulator.network import FlowNetwork
from simulator.program.blocks import Block, ChunkProgram, Program, StageProgram
from simulator.scenario.setup import Setup

MessageKey = tuple  # (pass, micro-batch, receiving chunk[, replica in full fidelity])


@dataclass(frozen=True)
class EngineResult:
    """One simulated step: its time, every span, message times and what the simulation cost."""

    time_s: float
    stage_end_s: list[float]  # per simulated rank (replica * pp + stage)
    spans: list[Span]
    messages: dict[MessageKey, tuple[float, float]]  # send start, arrival
    events: int  # SimPy events processed
    flows: int  # aggregated flows simulated
    ranks: int  # compute streams simulated (pp, or dp * pp in full fidelity)


@dataclass(frozen=True)
class Lane:
    """One simulated rank: a pipeline stage of one replica, with its compute speed factor."""

    replica: int
    stage: int
    rank: int
    slowdown: float = 1.0


def slowdowns(setup: Setup, replicas: int) -> np.ndarray:
    """Per (replica, stage) compute-time factor: each GPU's speed varies log-normally with
    `simulation.compute_jitter` (coefficient of variation), and a TP group runs at its slowest
    member's pace (every layer ends in a TP collective). Seeded: same scenario, same stragglers."""
    sigma = setup.compute_jitter
    pp, tp = setup.plan.pp, setup.plan.tp
    if sigma <= 0 or replicas == 1:
        return np.ones((replicas, pp))
    rng = np.random.default_rng(setup.seed)
    draws = rng.lognormal(mean=-0.5 * sigma**2, sigma=sigma, size=(replicas, pp, tp))
    return np.maximum(draws.max(axis=2), 1e-3)


class Turn:
    """Whose turn it is on a shared compute stream: taken at once when free (no event scheduled, unlike a
    simpy.Resource request), else handed over in order when the holder releases it."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.taken = False
        self.waiting: deque[simpy.Event] = deque()

    def take(self) -> simpy.Event | None:
        """None when taken at once; else the event that fires when the turn is handed over."""
        if not self.taken:
            self.taken = True
            return None
        event = self.env.event()
        self.waiting.append(event)
        return event

    def release(self) -> None:
        if self.waiting:
            self.waiting.popleft().succeed()
        else:
            self.taken = False


@dataclass
class ParamChain:
    """A rank's overlapped weight gathers of the step (overlap_param_gather), in the order its chunks'
    first forwards await them: the first is issued as the step starts (right after the previous step's
    optimizer), each next one as the block awaiting the one before is reached (Megatron-Core dispatches
    the next bucket's all-gather before waiting on the current one: one bucket ahead)."""

    flows: list[tuple[FlowSpec, ...]]
    issued: list[simpy.Event]
    next: int = 0


@dataclass
class SharedStream:
    """A rank's compute stream while two micro-batches share it (moe_overlap): whose turn it is, when it
    computed, and what each micro-batch waited for."""

    turn: Turn
    busy: list[tuple[float, float]]
    waits: list[tuple[float, float, WaitReason, MessageKey | str | None]]


def idle_gaps(
    start: float, end: float, shared: SharedStream
) -> list[tuple[float, float, WaitReason, MessageKey | str | None]]:
    """The intervals of [start, end] in which the shared stream computed nothing, each with the wait that
    covers most of it (the reason the stream sat idle)."""
    gaps: list[tuple[float, float]] = []
    t = start
    for b0, b1 in shared.busy:  # one stream computes one block at a time: in order
        if b0 > t:
            gaps.append((t, b0))
        if b1 > t:
            t = b1
    if end > t:
        gaps.append((t, end))
    if not gaps:
        return []
    waits = sorted(shared.waits, key=itemgetter(0))
    out: list[tuple[float, float, WaitReason, MessageKey | str | None]] = []
    first, n = 0, len(waits)  # waits ending before the current gap never cover a later one
    for g0, g1 in gaps:
        while first < n and waits[first][1] <= g0:
            first += 1
        best, covered = None, 0.0
        for i in range(first, n):
            w = waits[i]
            if w[0] >= g1:
                break
            overlap = (w[1] if w[1] < g1 else g1) - (w[0] if w[0] > g0 else g0)
            if overlap > covered:
                best, covered = w, overlap
        if best is None:
            out.append((g0, g1, WaitReason.STEP_END, None))
        else:
            out.append((g0, g1, best[2], best[3]))
    return out


class StepSimulation:
    def __init__(self, setup: Setup, program: Program, pricer: CommPricer, full: bool = False):
        self.setup = setup
        self.program = program
        self.pricer = pricer
        self.full = full
        self.replicas = setup.plan.dp if full else 1
        pp = setup.plan.pp
        factors = slowdowns(setup, self.replicas)
        self.lanes = [Lane(d, s, d * pp + s, float(factors[d, s])) for d in range(self.replicas) for s in range(pp)]
        self.env = simpy.Environment()
        self.net = FlowNetwork(self.env, pricer.topo.capacities)
        self.spans: list[Span] = []
        self.arrivals: dict[MessageKey, simpy.Event] = {}
        self.messages: dict[MessageKey, tuple[float, float]] = {}
        self.dp_stream = [simpy.Resource(self.env, 1) for _ in range(pp)]
        self.gather_stream = [simpy.Resource(self.env, 1) for _ in range(pp)]
        self.pending_dp: list[list[simpy.Event]] = [[] for _ in self.lanes]
        self.stage_end = [0.0] * len(self.lanes)
        self.last_chunk = setup.plan.chunks - 1
        self.flow_count = 0
        self._barriers: dict[tuple, tuple[list[Lane], simpy.Event]] = {}
        self._issued = [0] * len(self.lanes)
        self.contention = contention_share(setup.plan, setup.cluster.gpu)
        self.exchange_contention = exchange_share(setup.plan, setup.cluster.gpu)
        self.dp_active = [0] * pp  # collectives of each stage in flight
        self.ep_active = [0] * pp  # expert-parallel exchanges of each stage in flight
        self.dp_changed = [self.env.event() for _ in range(pp)]  # fires when either count changes
        self.ep_stream = [simpy.Resource(self.env, 1) for _ in range(pp)]
        # ranks whose compute stream two micro-batches share right now (moe_overlap)
        self.sharing: dict[int, SharedStream] = {}
        self.param_chains: dict[int, ParamChain] = {}

    # -- messages ---------------------------------------------------------------------------
    def key(self, lane: Lane, pass_: Pass, mb: int, chunk: int) -> MessageKey:
        return (pass_, mb, chunk, lane.replica) if self.full else (pass_, mb, chunk)

    def arrival(self, key: MessageKey) -> simpy.Event:
        event = self.arrivals.get(key)
        if event is None:
            event = self.arrivals[key] = self.env.event()
        return event

    def send(self, lane: Lane, key: MessageKey, dst_stage: int) -> None:
        """Start the message now; its arrival event fires when the flow (plus latency) completes."""
        replica = lane.replica if self.full else None
        flow = self.pricer.p2p(lane.stage, dst_stage, self.program.pp_message_bytes, replica)
        self.flow_count += 1
        start = self.env.now
        done = self.net.transfer(flow.linkset, flow.bytes_per_flow, flow.latency_s, tag=key)
        done.callbacks.append(lambda _: self._delivered(key, lane.rank, start, flow.bytes_per_flow))

    def _delivered(self, key: MessageKey, rank: int, start: float, size: float) -> None:
        now = self.env.now
        self.messages[key] = (start, now)
        name = f"send {key[0]}{key[1]}->c{key[2]}"
        self.spans.append(Span(rank, Stream.PP_SEND, name, start, now, bytes=size, micro_batch=key[1], chunk=key[2]))
        self.arrival(key).succeed()

    # -- collectives on a stream -------------------------------------------------------------
    def collective(
        self, lane: Lane, stream: simpy.Resource, flows: Sequence[FlowSpec], name: str, exchange: bool = False
    ) -> simpy.Event:
        """A data-parallel collective, or an expert-parallel exchange (`exchange`). In full fidelity it
        starts once every replica's copy of this stage has issued it (the n-th collective of a stage is
        the same call on every replica; expert-parallel groups span replicas too)."""
        if not self.full:
            return self.env.process(self._collective(lane.rank, stream, flows, name, exchange))
        seq = self._issued[lane.rank]
        self._issued[lane.rank] += 1
        bkey = (lane.stage, seq)
        arrived, done = self._barriers.setdefault(bkey, ([], self.env.event()))
        arrived.append(lane)
        if len(arrived) == self.replicas:
            proc = self.env.process(self._collective(lane.stage, stream, flows, name, exchange))

            def release(_: simpy.Event) -> None:
                done.succeed()

            proc.callbacks.append(release)
            del self._barriers[bkey]
        return done

    def _collective(
        self, rank: int, stream: simpy.Resource, flows: Sequence[FlowSpec], name: str, exchange: bool = False
    ) -> Generator:
        with stream.request() as turn:
            yield turn
            start = self.env.now
            stage = rank % self.setup.plan.pp
            self._activity(stage, +1, exchange)
            for f in flows:
                self.flow_count += 1
                yield self.net.transfer(f.linkset, f.bytes_per_flow, f.latency_s, tag=name)
            self._activity(stage, -1, exchange)
            size = sum(f.bytes_per_flow for f in flows)
            self.spans.append(Span(rank, Stream.EP if exchange else Stream.DP, name, start, self.env.now, bytes=size))

    def _activity(self, stage: int, delta: int, exchange: bool) -> None:
        """A collective of `stage` started (+1) or ended (-1): compute beside it changes rate."""
        if exchange:
            if not self.exchange_contention:
                return
            self.ep_active[stage] += delta
            if not self.dp_changed[stage].callbacks:  # no compute beside it to tell: no event needed
                return
        else:
            if not self.contention:
                return
            self.dp_active[stage] += delta
        changed, self.dp_changed[stage] = self.dp_changed[stage], self.env.event()
        changed.succeed()

    # -- the compute stream ---------------------------------------------------------------------
    def wait(
        self, lane: Lane, event: simpy.Event, reason: WaitReason, awaited: MessageKey | str | None = None
    ) -> Generator:
        """Idle until `event`, as a wait span (none when it has already happened)."""
        if event.triggered:
            return
        start = self.env.now
        yield event
        self._waited(lane, start, self.env.now, reason, awaited)

    def _waited(
        self, lane: Lane, start: float, end: float, reason: WaitReason, awaited: MessageKey | str | None
    ) -> None:
        """Book [start, end] as the compute stream's wait for `awaited`: a wait span, or, while two micro-batches
        share the stream (one may be computing meanwhile), a candidate settled after the pair (idle_gaps)."""
        shared = self.sharing.get(lane.rank)
        if shared is not None:
            shared.waits.append((start, end, reason, awaited))
        elif end > start:
            name = f"wait {reason}"
            self.spans.append(Span(lane.rank, Stream.COMPUTE, name, start, end, wait=reason, awaited=awaited))

    def compute(self, lane: Lane, block: Block, task: Task | None) -> Generator:
        env = self.env
        shared = self.sharing.get(lane.rank)
        if shared is not None:
            handed = shared.turn.take()  # the micro-batches take turns on the compute stream
            if handed is not None:
                yield handed
        seg = block.segment
        start = env.now
        work = seg.duration_s * lane.slowdown
        # Another micro-batch's exchange runs beside this compute only while two share the stream, and only
        # one already in flight: the other micro-batch starts its next exchange after computing, which
        # needs the stream this compute holds (in full fidelity other replicas' exchanges count too).
        beside = self.exchange_contention and (self.full or (shared is not None and self.ep_active[lane.stage] > 0))
        contended = bool((self.contention or beside) and work > 0)
        if contended:
            yield from self._contended(lane.stage, work)
        else:
            yield env.timeout(work)
        end = env.now
        mb, chunk = (task.micro_batch, task.chunk) if task else (-1, -1)
        self.spans.append(
            Span(
                lane.rank,
                Stream.COMPUTE,
                seg.name,
                start,
                end,
                flops=seg.flops,
                bytes=seg.bytes,
                micro_batch=mb,
                chunk=chunk,
                segment=seg,
                # without contention the span is exactly `work` long (env.now - start only rounds)
                contention_s=max(0.0, end - start - work) if contended else 0.0,
            )
        )
        if shared is not None:
            shared.busy.append((start, end))
            shared.turn.release()

    def _contended(self, stage: int, work: float) -> Generator:
        """Run `work` seconds of compute, at the reduced rate while the stage's collectives run."""
        while True:
            rate = 1.0
            if self.dp_active[stage]:
                rate -= self.contention
            if self.ep_active[stage]:
                rate -= self.exchange_contention
            began, changed = self.env.now, self.dp_changed[stage]
            done = self.env.timeout(work / rate)
            yield done | changed
            work -= (self.env.now - began) * rate
            if done.processed or work <= 1e-12:
                return

    def run_blocks(self, lane: Lane, blocks: Sequence[Block], task: Task, last: bool = False) -> Generator:
        s = lane.stage
        gathers = self._prefetch(lane, blocks, 0)
        for i, block in enumerate(blocks):
            if block.param_sync:
                yield from self._param_sync(lane)
            if block.exchange:
                yield from self.exchange(lane, block)
            if block.gather:
                nxt = self._prefetch(lane, blocks, i + 1)
                assert gathers is not None, "a gathering block was prefetched"
                yield from self.wait(lane, gathers, WaitReason.DP_COMM, "zero3_gather")
                gathers = nxt
            yield from self.compute(lane, block, task)
            if block.reduce:
                self.pending_dp[lane.rank].append(
                    self.collective(lane, self.dp_stream[s], block.reduce, "zero3_reduce_scatter")
                )
            if block.bucket and last:
                self.pending_dp[lane.rank].append(
                    self.collective(lane, self.dp_stream[s], block.bucket, "dp_grad_bucket")
                )

    def exchange(self, lane: Lane, block: Block) -> Generator:
        """An expert-parallel exchange the block waits for. In full fidelity every replica's ranks take
        part (a barrier, as a data-parallel collective); otherwise the flows run right here, each exchange
        on its own stream (two micro-batches' exchanges may share the links at once under moe_overlap)."""
        if self.full:
            done = self.collective(lane, self.ep_stream[lane.stage], block.exchange, block.exchange_name, exchange=True)
            yield from self.wait(lane, done, WaitReason.EP_COMM, block.exchange_name)
            return
        start = self.env.now
        self._activity(lane.stage, +1, True)
        for f in block.exchange:
            yield self.net.transfer(f.linkset, f.bytes_per_flow, f.latency_s, tag=block.exchange_name)
        self.flow_count += len(block.exchange)
        self._activity(lane.stage, -1, True)
        end = self.env.now
        self.spans.append(Span(lane.rank, Stream.EP, block.exchange_name, start, end, bytes=block.exchange_bytes))
        self._waited(lane, start, end, WaitReason.EP_COMM, block.exchange_name)

    def _start_param_chain(self, lane: Lane, sp: StageProgram, first_forward: dict[int, int]) -> None:
        """Issue the step's first overlapped weight gather (ParamChain) and keep the rest in the order of
        the chunks' first forwards (`first_forward`: chunk -> its index in the stage's schedule)."""
        by_chunk = {c.chunk: c for c in sp.chunks}
        chunks = sorted(first_forward, key=first_forward.__getitem__)
        flows = [b.param_sync for c in chunks for b in by_chunk[c].forward_first if b.param_sync]
        if flows:
            chain = self.param_chains[lane.rank] = ParamChain(flows, [])
            chain.issued.append(self._gather_bucket(lane, chain.flows[0]))

    def _gather_bucket(self, lane: Lane, flows: tuple[FlowSpec, ...]) -> simpy.Event:
        return self.collective(lane, self.dp_stream[lane.stage], flows, "dp_param_allgather")

    def _param_sync(self, lane: Lane) -> Generator:
        """Before a block of a chunk's first forward: issue the next bucket's gather, wait for this one's."""
        chain = self.param_chains[lane.rank]
        k = chain.next
        chain.next += 1
        if k + 1 < len(chain.flows):
            chain.issued.append(self._gather_bucket(lane, chain.flows[k + 1]))
        yield from self.wait(lane, chain.issued[k], WaitReason.DP_COMM, "dp_param_allgather")

    def _prefetch(self, lane: Lane, blocks: Sequence[Block], i: int) -> simpy.Event | None:
        """ZeRO-3 prefetch depth 1: the gather for block i is issued when block i-1 starts."""
        while i < len(blocks) and not blocks[i].gather:
            i += 1
        if i >= len(blocks):
            return None
        return self.collective(lane, self.gather_stream[lane.stage], blocks[i].gather, "zero3_gather")

    def stage_process(self, lane: Lane, sp: StageProgram) -> Generator:
        plan = self.setup.plan
        by_chunk = {c.chunk: c for c in sp.chunks}
        order = stage_order(plan.schedule, sp.stage, plan.pp, self.setup.micro_batches, plan.virtual_stages)
        last_backward = {t.chunk: i for i, t in enumerate(order) if t.pass_ is Pass.BACKWARD}
        first_forward = {t.chunk: i for i, t in reversed(list(enumerate(order))) if t.pass_ is Pass.FORWARD}
        self._start_param_chain(lane, sp, first_forward)
        i = 0
        while i < len(order):
            task = order[i]
            chunk = by_chunk[task.chunk]
            if self.pairs(order, i):
                nxt = order[i + 1]
                last = last_backward[nxt.chunk] == i + 1
                first = first_forward[task.chunk] == i
                yield from self.overlapped(lane, chunk, task, by_chunk[nxt.chunk], nxt, last, first)
                i += 2
                continue
            if task.pass_ is Pass.FORWARD:
                yield from self.forward(lane, chunk, task, first=first_forward[task.chunk] == i)
            else:
                yield from self.backward(lane, chunk, task, last=last_backward[task.chunk] == i)
            i += 1
        yield from self.finish(lane, sp)

    def pairs(self, order: list[Task], i: int) -> bool:
        """With moe_overlap, a forward followed by a backward in the schedule's steady state run together
        (Megatron-Core's 1F1B all-to-all overlap; DualPipe's idea): one's exchanges behind the other's compute."""
        return (
            self.setup.plan.moe_overlap
            and self.program.exchanges
            and order[i].pass_ is Pass.FORWARD
            and i + 1 < len(order)
            and order[i + 1].pass_ is Pass.BACKWARD
        )

    def overlapped(
        self, lane: Lane, fwd: ChunkProgram, ft: Task, bwd: ChunkProgram, bt: Task, last: bool, first: bool
    ) -> Generator:
        """A forward and a backward of different micro-batches sharing the compute stream: each computes
        when the stream is free and its own data is there, so one's exchanges run while the other computes.
        The stream's idle time is settled after both: the gaps in which neither computed, each as a wait
        for what was awaited then."""
        shared = SharedStream(Turn(self.env), [], [])
        self.sharing[lane.rank] = shared
        start = self.env.now
        yield self.env.all_of(
            [self.env.process(self.forward(lane, fwd, ft, first)), self.env.process(self.backward(lane, bwd, bt, last))]
        )
        del self.sharing[lane.rank]
        for g0, g1, reason, awaited in idle_gaps(start, self.env.now, shared):
            self.spans.append(Span(lane.rank, Stream.COMPUTE, f"wait {reason}", g0, g1, wait=reason, awaited=awaited))

    def forward(self, lane: Lane, chunk: ChunkProgram, task: Task, first: bool = False) -> Generator:
        """`first`: the chunk's first forward of the step, where overlapped weight gathers are awaited."""
        if task.chunk > 0:
            key = self.key(lane, Pass.FORWARD, task.micro_batch, task.chunk)
            yield from self.wait(lane, self.arrival(key), WaitReason.PP_RECV, key)
        yield from self.run_blocks(lane, chunk.forward_blocks(first), task)
        if task.chunk < self.last_chunk:
            nxt = task.chunk + 1
            self.send(lane, self.key(lane, Pass.FORWARD, task.micro_batch, nxt), nxt % self.setup.plan.pp)

    def backward(self, lane: Lane, chunk: ChunkProgram, task: Task, last: bool) -> Generator:
        """`last`: the chunk's final backward of the step, where overlapped gradient buckets go out."""
        if task.chunk < self.last_chunk:
            key = self.key(lane, Pass.BACKWARD, task.micro_batch, task.chunk)
            yield from self.wait(lane, self.arrival(key), WaitReason.PP_RECV, key)
        yield from self.run_blocks(lane, chunk.backward_blocks(last), task, last)
        if task.chunk > 0:
            prev = task.chunk - 1
            self.send(lane, self.key(lane, Pass.BACKWARD, task.micro_batch, prev), prev % self.setup.plan.pp)

    def finish(self, lane: Lane, sp: StageProgram) -> Generator:
        """Gradient reduction (what was not overlapped), optimizer, ZeRO-1/2 weight all-gather."""
        stream = self.dp_stream[lane.stage]
        pending = self.pending_dp[lane.rank]
        for chunk in sp.chunks:
            if chunk.grad_reduce:
                pending.append(self.collective(lane, stream, chunk.grad_reduce, "dp_grad_reduce"))
        if pending:
            yield from self.wait(lane, self.env.all_of(pending), WaitReason.DP_COMM, "dp_grad_reduce")
        yield from self.compute(lane, Block(sp.optimizer), None)
        gathers = [c.param_gather for c in sp.chunks if c.param_gather]
        if gathers:
            done = [self.collective(lane, stream, g, "dp_param_allgather") for g in gathers]
            yield from self.wait(lane, self.env.all_of(done), WaitReason.DP_COMM, "dp_param_allgather")
        self.stage_end[lane.rank] = self.env.now

    def run(self) -> EngineResult:
        for lane in self.lanes:
            self.env.process(self.stage_process(lane, self.program.stages[lane.stage]))
        with paused_gc():  # ~10^4 events and spans: reference counting frees what the step drops
            self.env.run()
        t = max(self.stage_end)
        for rank, end in enumerate(self.stage_end):
            if t > end:
                self.spans.append(Span(rank, Stream.COMPUTE, "wait step_end", end, t, wait=WaitReason.STEP_END))
        # SimPy numbers every scheduled event from one counter; reading it is the cheapest count.
        events = next(self.env._eid)
        return EngineResult(
            t, list(self.stage_end), self.spans, self.messages, events, self.flow_count, len(self.lanes)
        )
