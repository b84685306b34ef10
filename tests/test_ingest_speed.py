"""What makes ingest fast (issue 9, item 5) changes nothing it produces, and holds where it is set.

Columns converted group by group are the columns converted in one piece (lossless, quarantine and
lenient records included); batches hold a day's objects together and end in half-size batches;
workers run without the cyclic GC, keep freed memory and do not import DuckDB; compaction runs two
days' merges at once and leaves the same data as one at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest

import analyzer.store.compact as compact_module
from analyzer import connect, ingest_objects
from analyzer.ingest import columns, rebuild_record
from analyzer.ingest.columns import TableBuilder, build_rows
from analyzer.ingest.decode import Decoded, decode_object
from analyzer.ingest.pipeline import IngestStats, _batches
from analyzer.ingest.records import Record, decode_record
from analyzer.ingest.workers import process_pool
from analyzer.sources.local import walk
from analyzer.store import Dataset
from synth import write_corpus

from records import log_key, record, write_log

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "AWSLogs"


def test_columns_converted_in_small_groups_are_the_columns_in_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every object of the bundled corpus, plus a lenient record and one without eventTime, built
    with a conversion every 3 records: the same table as without grouping, every record rebuilt."""
    given = [record(i) for i in range(10)]
    given[4]["readOnly"] = "false"  # the lenient path: coerced, original in extra
    del given[7]["eventTime"]  # quarantined at finish, from the converted columns
    write_log(tmp_path / "in", log_key(), given)
    objects = [(obj.uri, decode_object(obj.read())) for obj in walk([FIXTURES, tmp_path / "in"])]
    objects = [(uri, decoded) for uri, decoded in objects if decoded.records]

    def build(group: int) -> tuple[pa.Table, list[Any], int]:
        monkeypatch.setattr(columns, "GROUP_RECORDS", group)
        builder = TableBuilder()
        for uri, decoded in objects:
            builder.add(uri, decoded)
        converted = len(builder.leaves[0].arrays)
        return (*builder.finish(), converted)

    grouped, dropped, groups = build(3)
    whole, whole_dropped, _ = build(10**9)
    assert groups > 10  # it did convert group by group
    assert grouped.equals(whole)
    assert [(uri, q.record_index, q.reason) for uri, q in dropped] == [
        (uri, q.record_index, q.reason) for uri, q in whole_dropped]
    assert [(Path(uri).name, q.record_index) for uri, q in dropped] == [(Path(log_key()).name, 7)]
    mine = [row for row in grouped.to_pylist() if row["source_object"].startswith(str(tmp_path))]
    assert [rebuild_record(row) for row in mine] == given[:7] + given[8:]


def test_a_value_that_cannot_be_converted_fails_its_record_alone() -> None:
    """A blob no decoder would let through (invalid UTF-8), mid-group: that record is quarantined
    by the record-by-record retry, the others land."""
    good = [decode_record(msgspec.json.encode(record(i))) for i in range(5)]
    bad = msgspec.structs.replace(good[2], requestParameters=msgspec.Raw(b'{"k":"\xff"}'))
    decoded = Decoded(records=[*good[:2], bad, *good[3:]], indexes=list(range(5)))
    table, dropped = build_rows([("s3://b/k", decoded)])
    assert sorted(table["record_index"].to_pylist()) == [0, 1, 3, 4]
    assert [(q.record_index, q.reason.split(":")[0]) for _, q in dropped] == [(2, "cannot build row")]


def test_blob_columns_keep_absent_and_present_values_apart() -> None:
    records = [Record(requestParameters=msgspec.Raw(b'{"a":1}')), Record(),
               Record(requestParameters=msgspec.Raw('{"é":"ü"}'.encode())), Record()]
    blobs = columns._blob_array([r.requestParameters for r in records])
    assert blobs.to_pylist() == ['{"a":1}', None, '{"é":"ü"}', None]
    assert columns._blob_array([None, None]).to_pylist() == [None, None]
    assert columns._blob_array([]).to_pylist() == []


@dataclass(frozen=True)
class _Object:
    uri: str
    size: int
    version: str = "v1"

    def read(self) -> bytes:
        raise AssertionError("not read when batching")


def test_batches_hold_a_days_objects_together_and_end_in_half_size_batches(tmp_path: Path) -> None:
    """Listed account/region by account/region (days interleaved), packed day by day; the last
    2 x workers batches' worth in half-size batches; every object exactly once."""
    objects = [_Object(f"AWSLogs/{account}/CloudTrail/{region}/2026/11/{day:02d}/{account}_{region}_{day}_{n}.json.gz",
                       100)
               for account in ("111122223333", "444455556666") for region in ("eu-west-1", "us-east-1")
               for day in (20, 21, 22) for n in range(10)]
    dataset = Dataset(tmp_path / "d")
    try:
        batches = list(_batches(objects, dataset, IngestStats(), batch_bytes=1_000, workers=2))
    finally:
        dataset.close()
    assert sorted(o.uri for batch in batches for o in batch) == sorted(o.uri for o in objects)
    days = [{o.uri.split("/")[-2] for o in batch} for batch in batches]
    assert sum(len(d) > 1 for d in days) <= 2  # only where one day's objects end and the next begin
    sizes = [sum(o.size for o in batch) for batch in batches]
    assert sizes[:4] == [1_000] * 4 and set(sizes[-8:]) == {500}  # 4,000 bytes left: halved


#: Evaluated in a worker (a builtin, so that unpickling imports nothing of this test module's).
WORKER_STATE = (
    "(__import__('gc').isenabled(), __import__('os').environ.get('MIMALLOC_PURGE_DELAY'),"
    " __import__('os').environ.get('MIMALLOC_ARENA_EAGER_COMMIT'),"
    " __import__('analyzer.ingest.batch') is not None and 'duckdb' in __import__('sys').modules)"
)


def test_a_worker_runs_without_the_cyclic_gc_keeps_freed_memory_and_never_imports_duckdb() -> None:
    pool = process_pool(1)
    try:
        assert pool.submit(eval, WORKER_STATE).result(timeout=60) == (False, "-1", "0", False)
    finally:
        pool.shutdown()


#: Prints the mimalloc option as it stands when pyarrow is first imported, by the CLI's modules or
#: by a command after them.
ALLOCATOR_PROBE = """
import os, sys
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "pyarrow":
            print(os.environ.get("MIMALLOC_ARENA_EAGER_COMMIT"))
            sys.meta_path.remove(self)
sys.meta_path.insert(0, Spy())
import analyzer.cli
import pyarrow
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "0"), ("1", "1")])
def test_the_command_line_sets_arrows_allocator_up_before_pyarrow_and_keeps_a_users_setting(
    given: str | None, expected: str
) -> None:
    """mimalloc reads its options when pyarrow is first imported: the CLI's must be in place by then."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}
    if given is not None:
        env["MIMALLOC_ARENA_EAGER_COMMIT"] = given
    done = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [expected]


def test_compaction_merges_two_days_at_once_and_leaves_what_one_at_a_time_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, 3_000, seed=5, days=4, events_per_file=30, workers=1)
    for name in ("serial", "parallel"):
        stats = ingest_objects(walk([root]), tmp_path / name, workers=1, batch_bytes=20_000, compact_partitions=False)
        assert stats.failed == 0
    merge = compact_module._merge
    running: set[str] = set()
    overlapped: list[set[str]] = []
    lock = threading.Lock()

    def watched(dataset: Dataset, day: str, group: list[Any]) -> Any:
        with lock:
            running.add(day)
            overlapped.append(set(running))
        time.sleep(0.2)  # long enough for the other thread to start its merge
        try:
            return merge(dataset, day, group)
        finally:
            with lock:
                running.discard(day)

    monkeypatch.setattr(compact_module, "_merge", watched)
    results = {}
    for name, parallel in (("serial", 1), ("parallel", 2)):
        overlapped.clear()
        dataset = Dataset(tmp_path / name)
        dataset.lock()
        try:
            results[name] = compact_module.compact(dataset, parallel=parallel)
        finally:
            dataset.close()
        assert results[name].failures == [] and results[name].partitions == 4
        assert max(map(len, overlapped)) == parallel
    assert (results["serial"].rewritten, results["serial"].rows) == (results["parallel"].rewritten, 3_000)

    def rows(name: str) -> list[Any]:
        table = connect(tmp_path / name).sql("select * from events_all order by source_object, record_index")
        return table.to_arrow_table().to_pylist()

    assert rows("serial") == rows("parallel")
    for name in ("serial", "parallel"):
        assert all(len(list(day.glob("*.parquet"))) == 1 for day in (tmp_path / name).glob("event_date=*"))
