"""Worker processes for the ingest pipeline: a dead worker costs one retry, never a run.

A worker killed mid-batch (the OOM killer's SIGKILL, a crash in a native library) breaks a
``ProcessPoolExecutor``: every batch in flight fails with ``BrokenProcessPool``. :class:`Runner`
then starts a new pool and retries those batches. Each worker notes which object it is on in a
small file in its batch folder (:class:`ProgressMarker`), so the object a dead worker was decoding
is known: it is retried alone, in a one-worker pool of its own, and the rest of its batch goes back
to the main pool. An object that kills its worker while alone is the one at fault: it fails, named,
with "worker died decoding this object"; innocent neighbours land. Retries are bounded
(:data:`MAX_WORKER_DEATHS` a run).
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.allocator import tune_arrow_allocator

MARKER_NAME = "progress"
MAX_WORKER_DEATHS = 16  # pool restarts a run; past them the batches concerned fail (named)
DIED_ALONE = "worker died decoding this object (killed: out of memory, or a signal); retried alone, it died again"


class ProgressMarker:
    """Where a worker is in its batch, written before each object (a few bytes, no fsync):
    ``PID object POSITION URI``, ``PID writing`` or ``PID done``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(folder / MARKER_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def _write(self, state: str) -> None:
        data = f"{os.getpid()} {state}\n".encode("utf-8", "surrogateescape")
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def at(self, position: int, uri: str = "") -> None:
        self._write(f"object {position} {uri}")

    def writing(self) -> None:
        self._write("writing")

    def close(self) -> None:
        self._write("done")
        os.close(self._fd)


def read_marker(folder: Path) -> tuple[str, int | None]:
    """(state, object position) a dead worker left: ("absent", None) if it never started."""
    try:
        words = (folder / MARKER_NAME).read_bytes().split(maxsplit=3)
    except OSError:
        return "absent", None
    if len(words) >= 3 and words[1] == b"object" and words[2].isdigit():
        return "object", int(words[2])
    return (words[1].decode("ascii", "replace") if len(words) > 1 else "absent"), None


@dataclass
class Job:
    """One batch on its way through a pool; ``alone``: in the isolation pool, by itself."""

    batch: str
    items: list[Any]
    known: dict[str, str]
    alone: bool = False


class Inline(Executor):
    """Runs a batch in this process: for one worker, tests and tiny inputs."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection inside: for decoding and building a batch.

    A batch allocates millions of containers (tuples, lists) and no reference cycles, and every
    few hundred allocations the collector would scan the young ones, and now and then all of them.
    In a worker, where it stays off, what cycles a batch does make (an exception and its traceback)
    are collected once at the end, and what survives is frozen, so that no batch rescans it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        else:  # a worker, where the collector is always off: collect what this batch left once
            gc.collect()
            gc.freeze()  # what survives (modules imported on first use...) is not rescanned next time


#: glibc's mallopt parameters (malloc.h) and the values a worker sets (see :func:`retain_freed_memory`).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_RETAIN_BYTES = 1 << 30  # freed memory kept for reuse: a worker's peak is bounded by its batch anyway
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit; larger blocks are mapped on their own


def retain_freed_memory() -> None:
    """Keep the memory a batch frees for the next one, instead of giving it back to the system.

    Every batch allocates and frees the same few hundred MB; returned to the kernel and asked for
    again, each fresh page costs a fault and the kernel's zeroing of it (measured: a tenth of a
    worker's time, with transparent huge pages). So the C heap keeps what is freed (glibc: no trim,
    blocks up to 32 MB from the heap rather than fresh mappings), and so does Arrow's allocator
    (mimalloc reads ``MIMALLOC_PURGE_DELAY`` when pyarrow is first imported, which in a worker
    comes after this). A worker's memory stays at its high-water mark, which the batch size bounds.
    """
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
    tune_arrow_allocator()  # arenas committed on demand, no huge-page faults (analyzer.allocator)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its defaults stay
        return
    mallopt(_M_TRIM_THRESHOLD, _RETAIN_BYTES)
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)


def start_worker(parent: int) -> None:
    """Worker initializer: leave when the ingesting process is gone (e.g. after kill -9); turn the
    cyclic garbage collector off (:func:`gc_paused` collects once per batch instead) and keep it
    off the modules imported so far (they live as long as the worker); keep freed memory for the
    next batch (:func:`retain_freed_memory`).

    Otherwise idle workers would live on, holding the parent's stdout, and a cron job reading it
    would seem to hang.
    """
    gc.disable()
    gc.freeze()
    retain_freed_memory()

    def watch() -> None:
        while True:
            time.sleep(1)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=start_worker,
        initargs=(os.getpid(),),
    )


class Runner:
    """Submits batches to a pool and hands back their results, surviving dead workers.

    ``work(batch, items, tmp_dir, known)`` runs in the pool; ``tmp_dir(batch)`` is the batch's
    private folder; ``failed(job, reason)`` makes the result of a batch whose objects all fail;
    ``new_batch()`` names a retry.
    """

    def __init__(
        self,
        workers: int,
        *,
        inline: bool,
        work: Callable[..., Any],
        tmp_dir: Callable[[str], Path],
        failed: Callable[[Job, str], Any],
        new_batch: Callable[[], str],
    ) -> None:
        self.workers = workers
        self.inline = inline
        self._work, self._tmp_dir, self._failed, self._new_batch = work, tmp_dir, failed, new_batch
        self._main: Executor | None = None
        self._isolation: Executor | None = None
        self._futures: dict[Future[Any], tuple[Job, Executor]] = {}
        self._suspects: deque[Job] = deque()
        self._ready: list[Any] = []
        self.deaths = 0

    @property
    def pending(self) -> int:
        return len(self._futures) + len(self._suspects) + len(self._ready)

    def submit(self, job: Job) -> None:
        if job.alone:
            self._suspects.append(job)
            self._feed_isolation()
            return
        if self._main is None:
            self._main = Inline() if self.inline else process_pool(self.workers)
        self._launch(job, self._main)

    def _launch(self, job: Job, pool: Executor) -> None:
        try:
            future = pool.submit(self._work, job.batch, job.items, str(self._tmp_dir(job.batch)), job.known)
        except BrokenProcessPool:  # broke since the last result: one more death, handled as such
            future = Future()
            future.set_exception(BrokenProcessPool("the pool broke before this batch was sent"))
        self._futures[future] = (job, pool)

    def _feed_isolation(self) -> None:
        if not self._suspects or any(pool is self._isolation for _, pool in self._futures.values()):
            return  # one object at a time: a death there is that object's doing
        if self._isolation is None:
            self._isolation = process_pool(1)
        self._launch(self._suspects.popleft(), self._isolation)

    def completed(self) -> list[Any]:
        """Wait for at least one batch to finish (or fail for good); return the results."""
        while not self._ready:
            if not self._futures:
                self._feed_isolation()
                if not self._futures:
                    break
            done, _ = wait(self._futures, return_when=FIRST_COMPLETED)
            for future in done:
                job, pool = self._futures.pop(future)
                try:
                    self._ready.append(future.result())
                except BrokenProcessPool:
                    self._died(job, pool)
                except Exception as exc:  # a bug in the worker's own code: this batch fails, named
                    reason = f"internal error while ingesting this batch: {type(exc).__name__}: {exc}"
                    self._ready.append(self._failed(job, reason))
            self._feed_isolation()
        ready, self._ready = self._ready, []
        return ready

    def _died(self, job: Job, pool: Executor) -> None:
        """A worker of ``pool`` died while ``job`` was in it: retry, or fail the object at fault."""
        if pool is self._main or pool is self._isolation:
            self.deaths += 1
            pool.shutdown(wait=False, cancel_futures=True)
            if pool is self._main:
                self._main = None
            else:
                self._isolation = None
        folder = self._tmp_dir(job.batch)
        state, position = read_marker(folder)
        shutil.rmtree(folder, ignore_errors=True)  # whatever the dead worker half-wrote
        if self.deaths > MAX_WORKER_DEATHS:
            self._ready.append(self._failed(job, f"worker died ({self.deaths} worker deaths in this run: not retried)"))
            return
        if job.alone:
            if state in ("object", "writing"):
                self._ready.append(self._failed(job, DIED_ALONE))
            else:  # never started, or finished before the pool broke: again
                self.submit(Job(self._new_batch(), job.items, job.known, alone=True))
            return
        items = job.items
        if position is not None and position < len(items):
            self.submit(Job(self._new_batch(), [items[position]], job.known, alone=True))
            rest = items[:position] + items[position + 1 :]
            if rest:
                self.submit(Job(self._new_batch(), rest, job.known))
        elif state == "writing" and len(items) > 1:  # died building rows: halve, to corner the object
            half = len(items) // 2
            self.submit(Job(self._new_batch(), items[:half], job.known))
            self.submit(Job(self._new_batch(), items[half:], job.known))
        elif state == "writing":
            self.submit(Job(self._new_batch(), items, job.known, alone=True))
        else:
            self.submit(Job(self._new_batch(), items, job.known))

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()
        self._suspects.clear()

    def shutdown(self) -> None:
        """Stop the pools, waiting for their workers (their memory is free before compaction)."""
        for pool in (self._main, self._isolation):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._main = self._isolation = None
