"""Chrome / Perfetto trace of a simulated step (Trace Event Format, `ts`/`dur` in microseconds).

One process per simulated rank (pipeline stage, and replica in full fidelity), one thread per
stream (compute, pipeline sends, data-parallel collectives). Compute segments are expanded into
their layers, and, for the first `kernel_micro_batches` micro-batches, into every kernel and TP
collective with its FLOPs and bytes, so the file stays small for 10^5-kernel steps.
"""

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simulator.engine.spans import Span, Stream
from simulator.program.segments import Composite, Segment
from simulator.units import s_to_us, us_to_s
from simulator.workload.ops import Op

THREADS = {Stream.COMPUTE: 0, Stream.PP_SEND: 1, Stream.DP: 2, Stream.EP: 3}


def _event(name: str, cat: str, pid: int, tid: int, start_s: float, dur_s: float, **args: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "pid": pid,
        "tid": tid,
        "ts": s_to_us(start_s),
        "dur": s_to_us(dur_s),
        "args": args,
    }


def _segment_events(span: Span, seg: Segment, start_s: float, scale: float, kernels: bool) -> Iterable[dict]:
    """Children of a compute span: layers of a composite, then kernels when asked."""
    if isinstance(seg, Composite):
        t = start_s
        for part in seg.unrolled():
            yield _event(part.name, "layer", span.rank, 0, t, part.duration_s * scale, flops=part.flops)
            if kernels:
                yield from _segment_events(span, part, t, scale, kernels)
            t += part.duration_s * scale
        return
    if not kernels:
        return
    for ti in seg.items:
        flops = ti.item.flops if isinstance(ti.item, Op) else 0.0
        yield _event(
            ti.item.name,
            ti.category.value,
            span.rank,
            0,
            start_s + ti.offset_s * scale,
            ti.duration_s * scale,
            flops=flops,
            bytes=ti.item.bytes,
        )


CLUSTER_PID = 1_000_000  # the power counters of the whole cluster: a process after every rank's
GPU_POWER, CLUSTER_POWER = "GPU power (W)", "cluster IT power (MW)"


def power_counters(timeline: Any) -> list[dict[str, Any]]:
    """Counter tracks of energy/timeline.PowerTimeline: each simulated rank's GPU power (one GPU, W)
    and the whole cluster's IT power (MW), an event wherever the value changes."""
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": CLUSTER_PID, "args": {"name": "cluster"}},
        {"name": "process_sort_index", "ph": "M", "pid": CLUSTER_PID, "args": {"sort_index": -1}},
    ]
    times = [s_to_us(t) for t in timeline.times_s]
    series = [(rank, GPU_POWER, "W", row, 1.0) for rank, row in enumerate(timeline.rank_W)]
    series.append((CLUSTER_PID, CLUSTER_POWER, "MW", timeline.cluster_W, 1e-6))
    for pid, name, unit, values, scale in series:
        last = None
        for ts, v in zip(times, values, strict=False):
            value = float(v) * scale
            if value != last:
                events.append({"name": name, "ph": "C", "pid": pid, "ts": ts, "args": {unit: value}})
                last = value
        events.append({"name": name, "ph": "C", "pid": pid, "ts": times[-1], "args": {unit: last}})
    return events


def chrome_trace(spans: list[Span], pp: int, kernel_micro_batches: int = 1, timeline: Any = None) -> dict[str, Any]:
    """The step as a Chrome/Perfetto trace: one process per simulated rank (stage, and replica in full
    fidelity) with a thread per stream, every span and, for the first `kernel_micro_batches`
    micro-batches, every kernel; with `timeline`, the power counters (power_counters)."""
    events: list[dict[str, Any]] = []
    for rank in sorted({s.rank for s in spans}):
        label = f"stage {rank % pp}" + (f" replica {rank // pp}" if rank >= pp else "")
        events.append({"name": "process_name", "ph": "M", "pid": rank, "args": {"name": label}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": rank, "args": {"sort_index": rank}})
        for stream, tid in THREADS.items():
            events.append({"name": "thread_name", "ph": "M", "pid": rank, "tid": tid, "args": {"name": stream.value}})
    for span in spans:
        tid = THREADS[span.stream]
        if span.wait is not None:
            events.append(
                _event(span.name, "wait", span.rank, tid, span.start_s, span.duration_s, awaited=str(span.awaited))
            )
            continue
        args = {"flops": span.flops, "bytes": span.bytes, "micro_batch": span.micro_batch, "chunk": span.chunk}
        events.append(_event(span.name, span.stream.value, span.rank, tid, span.start_s, span.duration_s, **args))
        seg = span.segment
        if isinstance(seg, Segment) and seg.duration_s > 0:
            kernels = 0 <= span.micro_batch < kernel_micro_batches or span.micro_batch < 0
            events.extend(_segment_events(span, seg, span.start_s, span.duration_s / seg.duration_s, kernels))
    if timeline is not None:
        events.extend(power_counters(timeline))
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_trace(trace: dict[str, Any], path: Path) -> Path:
    """Write `trace.json.gz` (Perfetto and chrome://tracing open it directly)."""
    with gzip.open(path, "wt") as fh:
        json.dump(trace, fh)
    return path


def read_trace(path: Path) -> dict[str, Any]:
    """A trace written by `write_trace` (gzip or plain JSON). Raises OSError or ValueError if unreadable."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        trace = json.load(fh)
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise ValueError("not a Chrome trace (no traceEvents list)")
    return trace


def trace_end_s(trace: dict[str, Any]) -> float:
    """When the last compute-stream event of the trace ends: the step time. Units: seconds."""
    ends = [e["ts"] + e["dur"] for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("tid") == 0]
    return us_to_s(max(ends, default=0.0))
