"""Where candidates are simulated: in this process, in local worker processes (`--workers N`) or
on a running Dask distributed cluster (`--scheduler tcp://host:port`). Every backend hands each
finished result to `on_result` in the calling process as soon as it arrives, so the result store
has a single writer and an interrupted search keeps what it finished."""

import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from simulator.scenario.errors import ConfigError
from simulator.search.evaluate import evaluate

Job = tuple[str, dict[str, Any]]  # (store key, scenario mapping)
OnResult = Callable[[str, dict[str, Any]], None]
WORKER_EXIT_S = 5.0  # how long a terminated worker may take to exit before it is killed


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
    # Ctrl-C or SIGTERM is held back while the pool forks its workers and takes the jobs: an interrupt
    # inside ProcessPoolExecutor's bookkeeping can leave a worker it does not know about, and a pool
    # that waits for it forever. The workers start with the mask and unblock it themselves.
    pool = None
    try:
        with _signals_held():  # a deferred signal arrives as the block ends, inside this try
            pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_worker_signals)
            futures = {pool.submit(evaluate, raw): key for key, raw in jobs}
        for future in as_completed(futures):
            on_result(futures[future], future.result())
    except BaseException:  # Ctrl-C, SIGTERM or a failed job: stop now; what was stored stays stored
        if pool is not None:
            _terminate(pool)
        raise
    pool.shutdown(wait=True)


HELD = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM to the end of the block (delivered then, as usual)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker_signals() -> None:
    """In each worker: Ctrl-C is the parent's to handle (a terminal sends it to the whole process group,
    and a worker's traceback would bury the parent's message); SIGTERM, which the parent sends to stop
    it, kills it at once, whatever handler it inherited from the parent through fork."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers without waiting for their running jobs, and reap them (no orphans)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # Python >= 3.14: terminate_workers()
    for p in processes:
        p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.join(timeout=WORKER_EXIT_S)
        if p.is_alive():
            p.kill()
            p.join()


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
    futures: list[Any] = []
    try:
        # pure=False: a worker must not hand back a result cached under another search's key
        futures = client.map(evaluate, [raw for _, raw in jobs], key=[f"simulate-{k}" for k, _ in jobs], pure=False)
        keys = {f.key: k for f, (k, _) in zip(futures, jobs, strict=True)}
        for future in dask_completed(futures):
            on_result(keys[future.key], future.result())
            future.release()
    except BaseException:  # Ctrl-C or SIGTERM: the cluster should not go on with this search's jobs
        client.cancel(futures)
        raise
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
