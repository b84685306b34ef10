"""A killed ingest never leaves half-written files visible, and a rerun completes it exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer import connect, ingest
from analyzer.sources.local import walk
from analyzer.store import Dataset

from records import log_key, record, write_log


def corpus(root: Path, files: int = 240, per_file: int = 150) -> int:
    for f in range(files):
        day = "20" if f % 2 else "21"
        records = [record(f * per_file + i, time=f"2026-11-{day}T{f % 24:02d}:{i % 60:02d}:00Z",
                          requestParameters={"blob": "y" * (i % 500)}) for i in range(per_file)]
        write_log(root, log_key(f % 60, f"K{f:015d}", day), records)
    return files * per_file


def rows(data: Path) -> list[tuple[str, int, str]]:
    con = connect(data)
    return con.execute("select source_object, record_index, eventID from events_all order by all").fetchall()


def test_pending_batch_is_rolled_back_on_next_open(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1)])
    with Dataset(tmp_path / "data") as dataset:  # a writer died after moving a file in, before commit
        dataset.manifest.begin_batch("deadbeef", ["event_date=2026-11-20/part-deadbeef.parquet"])
        orphan = dataset.layout.partition("2026-11-20") / "part-deadbeef.parquet"
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"half")
    stats = ingest(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    assert not orphan.exists() and stats.events == 1
    assert rows(tmp_path / "data") == [(str(tmp_path / "in" / log_key()), 0, record(1)["eventID"])]


@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    total = corpus(tmp_path / "in")
    command = [sys.executable, "-m", "analyzer", "ingest", str(tmp_path / "in"), "--quiet", "--batch-mb", "0.05"]
    subprocess.run([*command, "--data", str(tmp_path / "clean")], check=True)

    victim = subprocess.Popen([*command, "--data", str(tmp_path / "killed")], start_new_session=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "killed").glob("event_date=*/*.parquet")):
        assert time.monotonic() < deadline and victim.poll() is None, "ingest ended before it could be killed"
        time.sleep(0.01)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    partial = len(rows(tmp_path / "killed"))
    assert 0 < partial < total  # the kill landed mid-run

    assert subprocess.run([*command, "--data", str(tmp_path / "killed")]).returncode == 0
    assert rows(tmp_path / "killed") == rows(tmp_path / "clean")
    assert len(rows(tmp_path / "clean")) == total


@pytest.mark.slow
def test_kill_9_mid_compaction_then_rerun_loses_nothing(tmp_path: Path) -> None:
    corpus(tmp_path / "in", files=240, per_file=150)
    data = tmp_path / "data"
    base = [sys.executable, "-m", "analyzer"]
    subprocess.run([*base, "ingest", str(tmp_path / "in"), "--data", str(data), "--quiet", "--batch-mb", "0.05",
                    "--no-compact"], check=True)
    expected = rows(data)
    assert len(list(data.glob("event_date=*/*.parquet"))) > 10

    victim = subprocess.Popen([*base, "compact", "--data", str(data), "--quiet"], start_new_session=True)
    deadline = time.monotonic() + 60
    while not list((data / "_analyzer" / "tmp").glob("*/*.parquet")):  # a merge is being written
        assert time.monotonic() < deadline and victim.poll() is None, "compaction ended before it could be killed"
        time.sleep(0.002)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()

    assert subprocess.run([*base, "compact", "--data", str(data), "--quiet"]).returncode == 0
    assert rows(data) == expected
    assert len(list(data.glob("event_date=*/*.parquet"))) == 2  # one file per day
