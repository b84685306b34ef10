"""A huge object is decoded and written in bounded parts, with the same result as in one piece."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from analyzer import connect, ingest_objects
from analyzer.ingest import batch, decode, rebuild_record
from analyzer.sources.local import walk

from records import log_key, record, write_log


def test_huge_object_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "LARGE_OBJECT_BYTES", 10_000)
    monkeypatch.setattr(batch, "CHUNK_RECORDS", 100)
    monkeypatch.setattr(batch, "FILE_ROWS", 250)
    records = [record(i, time=f"2026-11-{20 + i % 2}T10:00:00Z") for i in range(1_000)]
    records[7]["readOnly"] = "false"  # one record for the lenient path
    del records[500]["eventTime"]  # one for the quarantine
    write_log(tmp_path / "in", log_key(), records)
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "d", workers=1, compact_partitions=False)
    assert (stats.events, stats.quarantined) == (999, 1)
    assert len(list((tmp_path / "d").glob("event_date=*/*.parquet"))) > 2  # written as it went
    rows = connect(tmp_path / "d").sql("select * from events order by record_index").to_arrow_table().to_pylist()
    assert [rebuild_record(row) for row in rows] == records[:500] + records[501:]


BOMB_SCRIPT = """
import resource, sys
from analyzer import ingest_objects
from analyzer.sources.local import walk
import analyzer.ingest.pipeline, pyarrow.parquet  # imported before the limit is measured

vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[3]), vm + int(sys.argv[3])))
stats = ingest_objects(walk([sys.argv[1]]), sys.argv[2], workers=1, compact_partitions=False)
print(stats.ingested, stats.failed, stats.events)
for uri, reason in stats.failures:
    print(uri, reason)
"""


def gzip_bomb(path: Path, size: int) -> None:
    """``size`` zero bytes, gzipped as a stream (about a thousandth of the size on disk)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(16 * 2**20)
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(packer.compress(block))
        out.write(packer.flush())


@pytest.mark.slow
def test_gzip_bomb_under_a_memory_limit_fails_alone(tmp_path: Path) -> None:
    """1 MB that inflates to 1 GiB, beside good objects, in a process allowed 768 MiB more than it
    starts with: the bomb fails at the cap (512 MiB) with its reason; memory stays bounded, the
    rest lands. (Before: igzip inflated it whole, MemoryError, and the batch failed.)"""
    write_log(tmp_path / "in", log_key(0, "Good000000000000"), [record(1), record(2)])
    bomb = tmp_path / "in" / log_key(5, "Bomb000000000000")
    gzip_bomb(bomb, 2**30)
    write_log(tmp_path / "in", log_key(9, "Good000000000001"), [record(3)])
    assert bomb.stat().st_size < 2_000_000
    done = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(tmp_path / "in"), str(tmp_path / "d"),
                           str(768 * 2**20)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "2 1 3", f"{bomb} larger than 512 MiB uncompressed (the cap: --max-object-size)"], done.stdout


def test_the_cap_is_a_keyword(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(0, "Small00000000000"), [record(1)])
    write_log(tmp_path / "in", log_key(1, "Large00000000000"), [record(i, requestParameters={"p": "x" * 1000})
                                                               for i in range(2, 200)])
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "d", workers=1, max_object_bytes=100_000)
    assert (stats.ingested, stats.failed, stats.events) == (1, 1, 1)
    assert "larger than 100,000 bytes uncompressed" in stats.failures[0][1] and "Large" in stats.failures[0][0]
