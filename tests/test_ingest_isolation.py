"""No object takes another down: a dead worker costs a retry, and the object that kills its worker
is the only one to fail. Real worker processes, killed for real (SIGKILL, what the OOM killer sends)."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer import connect, ingest_objects
from analyzer.cli import ingest as cli_ingest
from analyzer.ingest import decode, workers
from analyzer.sources.base import SourceObject
from analyzer.sources.local import walk

from records import log_key, record, write_log

BIG_RECORDS = 12_000  # an object that takes a worker a few tenths of a second: long enough to be caught


def corpus(root: Path, files: int = 40, per_file: int = 30) -> dict[str, int]:
    """Small objects and three big ones; returns the events per object."""
    counts: dict[str, int] = {}
    for f in range(files):
        n = BIG_RECORDS if f in (7, 21, 33) else per_file
        records = [record(f * 100_000 + i, time=f"2026-11-20T{i % 24:02d}:00:00Z") for i in range(n)]
        counts[str(write_log(root, log_key(f % 60, f"Obj{f:013d}"), records))] = n
    return counts


def markers(data: Path) -> list[tuple[int, str]]:
    """(worker pid, what it is on) for every batch in flight, from the workers' progress markers."""
    found = []
    for path in (data / "_analyzer" / "tmp").glob(f"*/{workers.MARKER_NAME}"):
        try:
            words = path.read_text(errors="replace").strip().split(maxsplit=3)
        except OSError:
            continue
        if len(words) >= 2 and words[0].isdigit():
            found.append((int(words[0]), " ".join(words[1:])))
    return found


def pool_workers() -> list[int]:
    """The worker processes of a pool started by this process: children of its forkserver."""

    def children(pid: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    return [worker for server in children(os.getpid()) for worker in children(server)]


def kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def run_with_killer(root: Path, data: Path, victims):  # type: ignore[no-untyped-def]
    """Ingest with two workers while a thread SIGKILLs the workers ``victims()`` names."""
    done = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        while not done.is_set():
            for pid in victims(killed):
                if pid != os.getpid() and kill(pid):
                    killed.append(pid)
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        stats = ingest_objects(walk([root]), data, workers=2, batch_bytes=40_000, compact_partitions=False)
    finally:
        done.set()
        thread.join()
    return stats, killed


def landed(data: Path) -> dict[str, int]:
    con = connect(data)
    rows = con.execute("select source_object, count(*), count(distinct record_index) from events_all "
                       "group by all").fetchall()
    assert all(count == distinct for _, count, distinct in rows)  # nothing twice
    return {uri: count for uri, count, _ in rows}


@pytest.mark.slow
def test_a_worker_killed_mid_run_costs_a_retry_not_the_run(tmp_path: Path) -> None:
    counts = corpus(tmp_path / "in")
    busy = tmp_path / "data" / "_analyzer" / "tmp"

    def once_batches_run(killed: list[int]) -> list[int]:  # one worker, once both are at work
        if killed or len(list(busy.glob("*"))) < 2:
            return []
        return pool_workers()[:1]

    stats, killed = run_with_killer(tmp_path / "in", tmp_path / "data", once_batches_run)
    assert killed, "no worker was killed"
    assert (stats.failed, stats.ingested) == (0, len(counts)), stats.failures
    assert landed(tmp_path / "data") == counts  # every event exactly once


@pytest.mark.slow
def test_the_object_that_kills_its_worker_fails_alone(tmp_path: Path) -> None:
    counts = corpus(tmp_path / "in")
    killer = next(uri for uri, n in counts.items() if n == BIG_RECORDS)
    data = tmp_path / "data"

    def on_it(killed: list[int]) -> list[int]:  # whichever worker is decoding it, every time
        return [pid for pid, state in markers(data) if state.endswith(killer)]

    stats, killed = run_with_killer(tmp_path / "in", data, on_it)
    assert len(killed) >= 2  # in its batch, then alone
    assert stats.failures == [(killer, workers.DIED_ALONE)]
    assert stats.ingested == len(counts) - 1
    del counts[killer]
    assert landed(tmp_path / "data") == counts  # its neighbours, in its batch and others, all landed
    again = ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=2, batch_bytes=40_000,
                   compact_partitions=False)  # left alone, it is retried and lands
    assert (again.ingested, again.failed, again.events) == (1, 0, BIG_RECORDS)


@dataclass(frozen=True)
class Interrupting:
    """A source object whose read is interrupted by the user (Ctrl-C)."""

    uri: str
    size: int
    version: str

    def read(self) -> bytes:
        raise KeyboardInterrupt


def test_keyboard_interrupt_still_stops_the_run(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1)])
    objects: list[SourceObject] = [*walk([tmp_path / "in"]), Interrupting(str(tmp_path / "interrupt.json"), 10, "v1")]
    with pytest.raises(KeyboardInterrupt):
        ingest_objects(objects, tmp_path / "data", workers=1)


def test_the_cli_default_cap_is_the_library_default() -> None:
    assert cli_ingest.MAX_OBJECT_BYTES == decode.MAX_OBJECT_BYTES
    assert cli_ingest.parse_size("512MiB") == decode.MAX_OBJECT_BYTES
    assert cli_ingest.parse_size("2g") == 2 * 2**30 and cli_ingest.parse_size("1500") == 1500
