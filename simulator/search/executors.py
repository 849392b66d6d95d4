"""Where candidates are simulated: in this process, in local worker processes (`--workers N`) or
on a running Dask distributed cluster (`--scheduler tcp://host:port`). Every backend hands each
finished result to `on_result` in the calling process as soon as it arrives, so the result store
has a single writer and an interrupted search keeps what it finished."""

import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from simulator.scenario.errors import ConfigError
from simulator.search.evaluate import evaluate

Job = tuple[str, dict[str, Any]]  # (store key, scenario mapping)
OnResult = Callable[[str, dict[str, Any]], None]


def run_jobs(jobs: Sequence[Job], on_result: OnResult, workers: int = 1, scheduler: str | None = None) -> None:
    if not jobs:
        return
    if scheduler is not None:
        _run_dask(jobs, on_result, scheduler)
    elif workers > 1:
        _run_processes(jobs, on_result, workers)
    else:
        for key, raw in jobs:
            on_result(key, evaluate(raw))


def _run_processes(jobs: Sequence[Job], on_result: OnResult, workers: int) -> None:
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)))
    try:
        futures = {pool.submit(evaluate, raw): key for key, raw in jobs}
        for future in as_completed(futures):
            on_result(futures[future], future.result())
    finally:  # on Ctrl-C or an error: drop what has not started, keep what was stored
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(jobs: Sequence[Job], on_result: OnResult, address: str) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise ConfigError(["--scheduler: needs Dask distributed (pip install 'llm-cluster-simulator[dask]')"]) from None
    _check_reachable(address)
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError([f"--scheduler {address}: cannot reach a Dask scheduler ({exc})"]) from None
    try:
        # pure=False: a worker must not hand back a result cached under another search's key
        futures = client.map(evaluate, [raw for _, raw in jobs], key=[f"simulate-{k}" for k, _ in jobs], pure=False)
        keys = {f.key: k for f, (k, _) in zip(futures, jobs, strict=True)}
        for future in dask_completed(futures):
            on_result(keys[future.key], future.result())
            future.release()
    finally:
        client.close()


def _check_reachable(address: str) -> None:
    """Fail in a second, with one line, when nothing listens at a tcp:// address (Dask's client
    would retry until its 30 s timeout)."""
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        if parts.scheme == "tcp":
            raise ConfigError([f"--scheduler {address}: expected tcp://host:port"])
        return  # tls:// and other transports: let Dask connect (and report) itself
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as exc:
        raise ConfigError([f"--scheduler {address}: cannot reach a Dask scheduler ({exc.strerror or exc})"]) from None
