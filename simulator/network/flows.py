"""Aggregated flows sharing link bandwidth by weighted max-min fairness, advanced event by event in SimPy.

One simulated flow stands for a set of identical constituent transfers that start together (all sends of
one ring step, across every concurrent identical group). It is described by `links`: link id -> multiplicity
(how many of its constituents cross that directed link), `bytes_per_flow` (what each constituent carries)
and `latency_s` (added once, after the last byte). Every constituent of a flow gets the same rate r_f
(bytes/s), and link l carries sum_f m_{f,l} r_f <= C_l.

Rates are the weighted max-min fair allocation (maxmin.py). They are piecewise constant between flow starts
and completions; each such instant advances the remaining bytes, recomputes the allocation and schedules one
wake-up at the earliest completion.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

import numpy as np
import simpy

from simulator.network.ledger import LinkLedger
from simulator.network.maxmin import max_min_rates

DONE_REL_TOL = 1e-9
"""A flow whose remaining bytes fall below this fraction of `bytes_per_flow` counts as delivered."""

MAX_REMEMBERED = 1024
"""Allocations a FlowNetwork remembers (by the link sets of the pooled flows) before it forgets them all."""


class FlowRecord(NamedTuple):
    """One completed aggregated flow; times in seconds of simulated time (immutable; a NamedTuple is
    cheaper to create than a frozen dataclass, and the engine creates one per flow)."""

    tag: object
    start_s: float
    transfer_end_s: float
    end_s: float
    bytes_per_flow: float
    latency_s: float
    links: Mapping[int, float]


@dataclass(frozen=True, slots=True, eq=False)
class LinkSet:
    """Links of an aggregated flow, validated and converted once: callers that start the same
    pattern many times (every micro-batch's pipeline send) pass this instead of a mapping."""

    ids: np.ndarray
    mults: np.ndarray
    mapping: Mapping[int, float]

    @classmethod
    def of(cls, links: Mapping[int, float]) -> "LinkSet":
        ids = np.fromiter(links.keys(), dtype=np.intp, count=len(links))
        mults = np.fromiter(links.values(), dtype=float, count=len(links))
        if not np.all(np.isfinite(mults) & (mults >= 0.0)):
            raise ValueError(f"multiplicities must be finite and >= 0, got {list(links.values())}")
        used = mults > 0.0
        if not used.all():
            ids, mults = ids[used], mults[used]
        return cls(ids, mults, dict(zip(ids.tolist(), mults.tolist(), strict=True)))


@dataclass(slots=True, eq=False)
class _Flow:
    """Book-keeping of one flow from `transfer` to its completion event."""

    event: simpy.Event
    tag: object
    start_s: float
    bytes_per_flow: float
    latency_s: float
    linkset: LinkSet
    remaining: float = -1.0  # bytes left: set when the flow joins the pool (late, when it was solo first)
    solo_rate_Bps: float = 0.0
    solo_token: int | None = None
    rate_Bps: float = 0.0  # in the pool: the current max-min rate
    finish_s: float = math.inf  # in the pool: when the last byte arrives at that rate


class FlowNetwork:
    """Directed links of fixed capacity shared by aggregated flows; see the module docstring.

    `bytes_moved[l]` integrates m_{f,l} r_f dt over time, so once all flows have completed it equals the
    sum of m_{f,l} * bytes_per_flow over the flows that crossed link l. `records` lists completed flows
    in completion order.
    """

    def __init__(self, env: simpy.Environment, capacities_Bps: Sequence[float] | np.ndarray) -> None:
        capacities = np.array(capacities_Bps, dtype=float)
        if capacities.ndim != 1 or not np.all(np.isfinite(capacities)) or np.any(capacities <= 0.0):
            raise ValueError("capacities_Bps must be a 1-D sequence of finite positive bytes/s")
        capacities.flags.writeable = False
        self.env = env
        self.capacities_Bps = capacities
        self.records: list[FlowRecord] = []
        self._moved = LinkLedger(capacities.size)
        # The pool's per-flow state lives on the flows as Python floats (a pool holds a few flows, and
        # numpy's per-call cost dominated on such small arrays); the same IEEE operations in the same order.
        self._flows: list[_Flow] = []
        self._pending: list[_Flow] = []
        self._loaded_links: np.ndarray | slice = slice(None)
        self._load_Bps = np.zeros(capacities.size)
        self._link_slot = np.zeros(capacities.size, dtype=np.intp)
        self._last_s = env.now
        self._generation = 0
        self._kicked = False
        self._pooled_on = np.zeros(capacities.size, dtype=np.intp)  # per link: pooled and pending flows on it
        self._pooled = 0  # pooled and pending flows
        # Solo fast path: a flow whose links no other flow uses gets its bottleneck rate without a
        # reallocation; it joins the shared pool the moment another flow touches one of its links.
        # The engine starts the same few link sets over and over: what only depends on the link set
        # (validity, solo rate, which links two sets share) is worked out once per set.
        self._solos: dict[int, _Flow] = {}
        self._serial = 0
        self._checked: set[LinkSet] = set()
        self._solo_rates: dict[LinkSet, float] = {}
        self._first_shared: dict[tuple[LinkSet, LinkSet], int] = {}
        self._allocations: dict[tuple[LinkSet, ...], tuple[np.ndarray | slice, list[float], np.ndarray]] = {}
        self._marks = np.zeros(capacities.size, dtype=bool)

    @property
    def active(self) -> int:
        """Number of flows in their bandwidth phase (started, last byte not yet delivered)."""
        return len(self._flows) + len(self._pending) + len(self._solos)

    @property
    def bytes_moved(self) -> np.ndarray:
        """Bytes carried per link so far (see the class docstring)."""
        return self._moved.totals

    def transfer(
        self, links: "Mapping[int, float] | LinkSet", bytes_per_flow: float, latency_s: float = 0.0, tag: object = None
    ) -> simpy.Event:
        """Start an aggregated flow now; the returned event succeeds (value: a FlowRecord) when its last byte
        arrives + latency. Multiplicities of zero are dropped; an empty link set or zero bytes costs latency only.
        """
        if not (math.isfinite(bytes_per_flow) and bytes_per_flow >= 0.0):
            raise ValueError(f"bytes_per_flow must be finite and >= 0, got {bytes_per_flow!r}")
        if not (math.isfinite(latency_s) and latency_s >= 0.0):
            raise ValueError(f"latency_s must be finite and >= 0, got {latency_s!r}")
        linkset = links if isinstance(links, LinkSet) else LinkSet.of(links)
        if linkset not in self._checked:
            self._check(linkset)
        flow = _Flow(self.env.event(), tag, self.env.now, float(bytes_per_flow), float(latency_s), linkset)
        if bytes_per_flow == 0.0 or not linkset.ids.size:
            self._complete(flow)
            return flow.event
        owners = self._solos_sharing(linkset) if self._solos else ()
        if not owners and not (self._pooled and self._pooled_on[linkset.ids].any()):
            self._start_solo(flow)
            return flow.event
        for solo in owners:
            self._pool_solo(solo)
        self._enter_pool(flow)
        if not self._kicked:
            # Defer the reallocation to the end of this instant so that flows started together cost one.
            self._kicked = True
            self._set_timer(0.0)
        return flow.event

    def rates_Bps(self) -> list[tuple[object, float]]:
        """(tag, per-constituent rate in bytes/s) of the flows in flight: shared ones in start order, then solos."""
        if self._pending:
            self._update()
        pooled = [(flow.tag, flow.rate_Bps) for flow in self._flows]
        return pooled + [(flow.tag, flow.solo_rate_Bps) for flow in self._solos.values()]

    def _check(self, linkset: LinkSet) -> None:
        ids = linkset.ids
        if ids.size and (ids.min() < 0 or ids.max() >= self.capacities_Bps.size):
            raise ValueError(f"link ids must lie in 0..{self.capacities_Bps.size - 1}, got {sorted(linkset.mapping)}")
        self._checked.add(linkset)

    def _solos_sharing(self, linkset: LinkSet) -> list[_Flow]:
        """Solo flows with a link in `linkset`, in the order of the first such link in `linkset` (solo
        flows never share a link, so no two have the same first one)."""
        found = []
        cached = self._first_shared
        for solo in self._solos.values():
            at = cached.get((linkset, solo.linkset))
            if at is None:
                at = self._shared_at(linkset, solo.linkset)
            if at >= 0:
                found.append((at, solo))
        found.sort(key=lambda item: item[0])
        return [solo for _, solo in found]

    def _shared_at(self, new: LinkSet, old: LinkSet) -> int:
        """Position in `new` of its first link that `old` also crosses, -1 for none (cached per pair)."""
        self._marks[old.ids] = True
        hits = np.flatnonzero(self._marks[new.ids])
        self._marks[old.ids] = False
        at = self._first_shared[(new, old)] = int(hits[0]) if hits.size else -1
        return at

    def _start_solo(self, flow: _Flow) -> None:
        rate = self._solo_rates.get(flow.linkset)
        if rate is None:
            ids, mults = flow.linkset.ids, flow.linkset.mults
            rate = self._solo_rates[flow.linkset] = float(np.min(self.capacities_Bps[ids] / mults))
        flow.solo_rate_Bps = rate
        self._serial += 1
        flow.solo_token = token = self._serial
        self._solos[token] = flow
        timer = self.env.timeout(flow.bytes_per_flow / rate, (flow, token))
        timer.callbacks.append(self._finish_solo)

    def _unsolo(self, flow: _Flow, moved: float) -> None:
        assert flow.solo_token is not None, "a solo flow holds its token"
        del self._solos[flow.solo_token]
        flow.solo_token = None
        self._moved.add(flow.linkset.ids, flow.linkset.mults, moved, shared=True)

    def _finish_solo(self, timer: simpy.Timeout) -> None:
        flow, token = cast(tuple[_Flow, int], timer.value)
        if flow.solo_token is not token:
            return  # it joined the shared pool meanwhile
        self._unsolo(flow, flow.bytes_per_flow)
        self._complete(flow)

    def _pool_solo(self, flow: _Flow) -> None:
        """Another flow now shares a link: move the solo flow, with what it has left, into the pool."""
        moved = min(flow.bytes_per_flow, flow.solo_rate_Bps * (self.env.now - flow.start_s))
        self._unsolo(flow, moved)
        flow.remaining = flow.bytes_per_flow - moved
        self._enter_pool(flow)

    def _enter_pool(self, flow: _Flow) -> None:
        self._pooled_on[flow.linkset.ids] += 1
        self._pooled += 1
        self._pending.append(flow)

    def _set_timer(self, delay_s: float) -> None:
        self._generation += 1
        timer = self.env.timeout(delay_s, value=self._generation)
        timer.callbacks.append(self._on_timer)

    def _on_timer(self, timer: simpy.Event) -> None:
        if timer.value == self._generation:  # older timers were superseded by a reallocation
            self._update()

    def _update(self) -> None:
        now_s = self.env.now
        self._advance(now_s)
        self._retire(now_s)
        self._admit()
        self._kicked = False
        self._reallocate(now_s)

    def _advance(self, now_s: float) -> None:
        elapsed_s = now_s - self._last_s
        self._last_s = now_s
        if elapsed_s > 0.0 and self._flows:
            for flow in self._flows:
                flow.remaining -= flow.rate_Bps * elapsed_s
            self._moved.add(self._loaded_links, self._load_Bps, elapsed_s)

    def _retire(self, now_s: float) -> None:
        done = [f for f in self._flows if f.finish_s <= now_s or f.remaining <= DONE_REL_TOL * f.bytes_per_flow]
        if not done:
            return
        for flow in done:
            # Book the rounding residue (either sign) so that bytes_moved conserves bytes exactly.
            self._moved.add(flow.linkset.ids, flow.linkset.mults, flow.remaining, shared=True)
        for flow in done:
            self._pooled_on[flow.linkset.ids] -= 1
            self._pooled -= 1
            self._complete(flow)
        finished = set(map(id, done))
        self._flows = [flow for flow in self._flows if id(flow) not in finished]

    def _admit(self) -> None:
        if not self._pending:
            return
        for flow in self._pending:
            if flow.remaining < 0.0:
                flow.remaining = flow.bytes_per_flow
        self._flows.extend(self._pending)
        self._pending = []

    def _reallocate(self, now_s: float) -> None:
        if not self._flows:
            return
        self._loaded_links, rates, self._load_Bps = self._allocation()
        first_s = math.inf
        for flow, rate in zip(self._flows, rates, strict=True):
            left_s = flow.remaining / rate
            flow.rate_Bps = rate
            # The earliest finish equals the wake-up time bit for bit (both are now_s + the least left_s).
            flow.finish_s = now_s + left_s
            first_s = min(first_s, left_s)
        self._set_timer(first_s)

    def _allocation(self) -> tuple[np.ndarray | slice, list[float], np.ndarray]:
        """(links in use, rate per pooled flow, load per link in use). The rates depend only on the pooled
        flows' link sets, in pool order, and the engine's pools recur (the same messages and collectives
        every micro-batch), so allocations are remembered per pool (read-only, shared)."""
        key = tuple(flow.linkset for flow in self._flows)
        found = self._allocations.get(key)
        if found is None:
            entry_link = np.concatenate([linkset.ids for linkset in key])
            entry_mult = np.concatenate([linkset.mults for linkset in key])
            counts = np.array([linkset.ids.size for linkset in key], dtype=np.intp)
            loaded, compact = self._compact_links(entry_link)
            rates, load = max_min_rates(compact, entry_mult, counts, self.capacities_Bps[loaded])
            if len(self._allocations) >= MAX_REMEMBERED:
                self._allocations.clear()
            found = self._allocations[key] = (loaded, rates.tolist(), load)
        return found

    def _compact_links(self, entry_link: np.ndarray) -> tuple[np.ndarray | slice, np.ndarray]:
        """(links in use, entry links renumbered into them); all links when they are few against the entries."""
        if self.capacities_Bps.size <= 4 * entry_link.size:
            return slice(None), entry_link
        in_use = np.zeros(self.capacities_Bps.size, dtype=bool)
        in_use[entry_link] = True
        links = np.flatnonzero(in_use)
        self._link_slot[links] = np.arange(links.size)
        return links, self._link_slot[entry_link]

    def _complete(self, flow: _Flow) -> None:
        """Last byte delivered now: succeed the flow's event after its latency."""
        if flow.latency_s == 0.0:
            self._succeed(flow, self.env.now)
            return
        delay = self.env.timeout(flow.latency_s, (flow, self.env.now))
        delay.callbacks.append(self._after_latency)

    def _after_latency(self, delay: simpy.Timeout) -> None:
        flow, transfer_end_s = cast(tuple[_Flow, float], delay.value)
        self._succeed(flow, transfer_end_s)

    def _succeed(self, flow: _Flow, transfer_end_s: float) -> None:
        record = FlowRecord(
            flow.tag,
            flow.start_s,
            transfer_end_s,
            self.env.now,
            flow.bytes_per_flow,
            flow.latency_s,
            flow.linkset.mapping,
        )
        self.records.append(record)
        flow.event.succeed(record)
