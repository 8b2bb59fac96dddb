"""Where the runs of a sweep execute: in this process, in local worker processes, or on Ray.

A sweep is embarrassingly parallel: every run is one independent simulation, fully determined by
its resolved scenario and its seed. An executor therefore only has to do one thing — apply a
picklable function to a list of tasks and hand each result back as soon as it is done, tagged with
the task's position — and the results cannot depend on which executor, which worker or which order
ran them. That is what lets a sweep run on a laptop's cores today and on a Ray cluster tomorrow
with byte-identical tables.

A user error inside one run (an override value the scenario rejects, say) comes back as a
:class:`RunFailure` naming the run, not as a lost worker: the sweep stops with one line that says
which combination was bad.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from infersim.errors import InfersimError

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class RunFailure:
    """A run that stopped on a user error; ``message`` is the one-line InfersimError text."""

    message: str


def call_guarded(fn: Callable[[Any], Any], task: Any) -> Any:
    """Run ``fn(task)`` and turn a user error into a :class:`RunFailure` value.

    Exceptions with keyword-only constructors do not always survive pickling between processes;
    a plain value always does, and internal bugs still raise with their traceback.
    """
    try:
        return fn(task)
    except InfersimError as err:
        return RunFailure(str(err))


class Executor(Protocol):
    """Applies ``fn`` to every task and yields ``(index, result)`` pairs as runs complete."""

    workers: int

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


def default_workers() -> int:
    """All cores this process may use (the scheduler affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


class SerialExecutor:
    """Runs every task here, one after the other: for debugging and for one-run sweeps."""

    workers = 1

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for index, task in enumerate(tasks):
            yield index, call_guarded(fn, task)

    def close(self) -> None:
        return None


# BLAS thread pools, one per library. A worker process is one CPU's worth of work: letting each
# of N workers also start N BLAS threads oversubscribes the machine, and BLAS reductions (a dot
# product) round differently with different thread counts, so a summary computed in a local
# worker would differ in its last bits from the same run on Ray, whose workers run one thread.
_BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                          "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def single_threaded_worker() -> None:
    """Process-pool initializer: one BLAS thread per worker, as on Ray.

    It runs in the fresh spawned process before the first task is unpickled, hence before numpy
    loads and reads these variables.
    """
    for name in _BLAS_THREAD_VARIABLES:
        os.environ[name] = "1"


class LocalExecutor:
    """A pool of local worker processes, started with *spawn* and kept for the executor's life.

    Spawn (not fork) because the parent may hold threads — a progress bar, Ray, a notebook kernel —
    and a forked copy of a threaded process can deadlock; spawned workers import infersim afresh,
    so ``fn`` must be a module-level function and tasks plain picklable values. The pool starts
    on first use and is reused by every later call (the planner calls once per wave), so the
    import cost is paid once per worker; :meth:`close` (or leaving a ``with`` block) stops it.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise InfersimError(field="--workers", expected="an integer >= 1", given=workers)
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not tasks:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=single_threaded_worker)
        pending = {self._pool.submit(call_guarded, fn, task): index
                   for index, task in enumerate(tasks)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InfersimError(
            field="--backend", expected="Ray installed for the ray backend (pip install 'infersim[ray]')",
            given="ray") from None
    return ray


class RayExecutor:
    """Runs tasks as Ray tasks, one CPU each, on the cluster at ``address`` or a local one.

    If Ray is already initialised in this process (a notebook, a test fixture), that session is
    used and left running; otherwise this executor starts or connects to one and shuts it down on
    :meth:`close`. Results stream back with ``ray.wait`` in completion order.
    """

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self._ray = _require_ray()
        if workers is not None and workers < 1:
            raise InfersimError(field="--workers", expected="an integer >= 1", given=workers)
        self._owns_session = not self._ray.is_initialized()
        if self._owns_session:
            if address is not None:
                _check_reachable(address)
            try:
                # One BLAS thread per task, exactly as in local workers, whatever the cluster's
                # environment says (see single_threaded_worker).
                self._ray.init(address=address, include_dashboard=False, log_to_driver=False,
                               configure_logging=False,
                               runtime_env={"env_vars": dict.fromkeys(_BLAS_THREAD_VARIABLES, "1")})
            except ConnectionError as err:
                raise InfersimError(field="--address", expected="a reachable Ray cluster",
                                    given=address or "auto") from err
        cluster_cpus = int(self._ray.cluster_resources().get("CPU", 1))
        self.workers = min(workers or cluster_cpus, cluster_cpus) or 1

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=0)(call_guarded)
        fn_ref = ray.put(fn)
        # Keep a bounded number of tasks in flight so a huge sweep does not flood the scheduler
        # and the progress bar moves evenly; 2x workers keeps every CPU busy between waits.
        window = max(2 * self.workers, 1)
        queue = list(enumerate(tasks))
        queue.reverse()
        in_flight: dict[Any, int] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    index, task = queue.pop()
                    in_flight[remote.remote(fn_ref, task)] = index
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    yield in_flight.pop(ref), ray.get(ref)
        finally:
            for ref in in_flight:
                ray.cancel(ref)

    def close(self) -> None:
        if self._owns_session and self._ray.is_initialized():
            self._ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, on a Ray address nothing answers at.

    Ray itself retries an unreachable head for minutes; a plain TCP connection to the head's
    port tells at once whether anything listens there. ``auto`` and ``local`` are Ray's own.
    """
    if address in ("auto", "local"):
        return
    where = address.removeprefix("ray://")
    host, sep, port = where.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InfersimError(field="--address", expected="HOST:PORT, ray://HOST:PORT or auto",
                            given=address)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError:
        raise InfersimError(field="--address", expected=f"a Ray head answering at {where} "
                            f"(no connection within {timeout_s:g} s)", given=address) from None


def make_executor(backend: str, *, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor for a ``--backend`` name; ``--address`` only means something for Ray."""
    if backend == "local":
        if address is not None:
            raise InfersimError(field="--address", expected="no address with --backend local "
                                "(it is the Ray cluster address)", given=address)
        if workers == 1:
            return SerialExecutor()
        return LocalExecutor(workers)
    if backend == "ray":
        return RayExecutor(address=address, workers=workers)
    raise InfersimError(field="--backend", expected=" or ".join(BACKENDS), given=backend)
