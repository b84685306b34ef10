"""Compaction merges a day's files into one sorted file, losing nothing, and survives a crash."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import analyzer.store.compact as compact_module
from analyzer import connect, ingest_objects
from analyzer.sources.local import walk
from analyzer.store import Dataset
from analyzer.store.compact import _Input, compact, merge_sorted, plan_groups
from analyzer.store.dataset import SORT_KEYS
from analyzer.store.manifest import Manifest
from synth import write_corpus

from records import log_key, record, write_log

KEYS = [name for name, _ in SORT_KEYS]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, 6_000, seed=11, days=2, events_per_file=40, workers=1)
    return root


def ingest_small_batches(corpus: Path, data: Path, *, compact_partitions: bool) -> None:
    """Many tiny batches: every day ends up in tens of files, as a big ingest leaves it."""
    stats = ingest_objects(walk([corpus]), data, workers=1, batch_bytes=20_000, compact_partitions=compact_partitions)
    assert stats.failed == 0


def everything(data: Path) -> pa.Table:
    con = connect(data)
    return con.sql("select * from events_all order by source_object, record_index").to_arrow_table()


def day_files(data: Path) -> dict[str, list[Path]]:
    return {p.name: sorted(p.glob("*.parquet")) for p in sorted(data.glob("event_date=*"))}


def is_sorted(table: pa.Table) -> bool:
    rows = list(zip(*(table[k].to_pylist() for k in KEYS), strict=True))
    return rows == sorted(rows, key=lambda r: tuple((v is None, v) for v in r))


def test_compaction_leaves_one_sorted_file_per_day_with_every_row(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compact_module, "COMPACT_ROW_GROUP_ROWS", 997)  # many row groups, ties across them
    ingest_small_batches(corpus, tmp_path / "plain", compact_partitions=False)
    ingest_small_batches(corpus, tmp_path / "compacted", compact_partitions=True)

    assert all(len(files) > 5 for files in day_files(tmp_path / "plain").values())
    compacted = day_files(tmp_path / "compacted")
    assert len(compacted) >= 2 and all(len(files) == 1 for files in compacted.values())
    for (file,) in compacted.values():
        parquet = pq.ParquetFile(file)
        assert parquet.metadata.num_row_groups == -(-parquet.metadata.num_rows // 997)
        assert is_sorted(parquet.read(columns=KEYS))

    assert everything(tmp_path / "compacted").equals(everything(tmp_path / "plain"))
    with Dataset(tmp_path / "compacted") as dataset:
        assert dataset.manifest.uncompacted() == []
        assert not list(dataset.layout.tmp.iterdir())
    con_plain, con_compacted = connect(tmp_path / "plain"), connect(tmp_path / "compacted")
    query = "select count(*), count(distinct eventID) from events"
    assert con_compacted.execute(query).fetchall() == con_plain.execute(query).fetchall()


def test_a_later_ingest_into_a_compacted_day_is_merged_in(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(1, "A"), [record(i, time=f"2026-11-20T10:{i:02d}:00Z") for i in range(30)])
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    write_log(tmp_path / "in", log_key(2, "B"), [record(100 + i, time=f"2026-11-20T09:{i:02d}:00Z",
                                                        eventSource="iam.amazonaws.com") for i in range(20)])
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    files = day_files(tmp_path / "data")["event_date=2026-11-20"]
    assert len(files) == 1 and "compacted" in files[0].name
    table = pq.read_table(files[0])
    assert table.num_rows == 50 and is_sorted(table)


def test_an_unsorted_input_file_still_loses_nothing(tmp_path: Path) -> None:
    rows = [record(i, time=f"2026-11-20T10:{i:02d}:00Z", eventName=name)
            for i, name in enumerate(["Z", "A", "M", "B", "Y", "C"] * 5)]
    write_log(tmp_path / "in", log_key(1, "A"), rows[:15])
    write_log(tmp_path / "in", log_key(2, "B"), rows[15:])
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1, batch_bytes=1, compact_partitions=False)
    files = day_files(tmp_path / "data")["event_date=2026-11-20"]
    shuffled = pq.read_table(files[0]).take(pa.array([3, 0, 14, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13]))
    pq.write_table(shuffled, files[0], row_group_size=4)
    before = pa.concat_tables(pq.read_table(f) for f in files)

    out = tmp_path / "merged.parquet"
    assert merge_sorted(files, out) == 30
    after = pq.read_table(out)
    key = [("source_object", "ascending"), ("record_index", "ascending")]
    assert after.sort_by(key).equals(before.sort_by(key))


def test_plan_groups_merges_small_files_and_leaves_full_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact_module, "COMPACT_FILE_ROWS", 100)
    monkeypatch.setattr(compact_module, "COMPACT_ROW_GROUP_ROWS", 10)

    def item(name: str, rows: int, groups: int) -> _Input:
        return _Input(Path(name), rows, groups)

    big, done = item("big", 80, 8), item("done", 30, 3)
    assert plan_groups([big, done]) == []  # a full file, and a lone file already in full row groups
    assert plan_groups([item("raw", 30, 8)]) == [[item("raw", 30, 8)]]  # lone, but in small row groups
    a, b, c = item("a", 40, 1), item("b", 40, 1), item("c", 20, 1)
    assert plan_groups([big, done, a, b, c]) == [[a, b, c]]  # first fit, largest first: "done" is left alone
    d = item("d", 45, 1)
    assert plan_groups([a, b, c, d]) == [[a, d], [b, c]]


def test_wide_rows_get_smaller_row_groups_and_fewer_files_per_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compact_module.row_group_rows(1_400) == 32_768  # the synthetic corpus: ~1.4 KB a row
    assert compact_module.row_group_rows(20_000) == 64 * 2**20 // 20_000
    assert compact_module.row_group_rows(10**7) == 1_024
    wide = [_Input(Path(f"w{i}"), 50_000, 13, row_bytes=20_000, largest_group=4_096) for i in range(10)]
    groups = plan_groups(wide)  # 82 MB of row group per input: three fit in 256 MB
    assert [len(g) for g in groups] == [3, 3, 3]  # the tenth, alone, is already in full-size row groups


def test_a_merged_file_of_wide_rows_is_not_merged_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact_module, "COMPACT_ROW_GROUP_BYTES", 2**20)
    monkeypatch.setattr(compact_module, "MIN_ROW_GROUP_ROWS", 1)
    for n in range(6):
        blob = {"nonce": "".join(sha256(bytes([n, i, k])).hexdigest() for i in range(2) for k in range(16))}
        write_log(tmp_path / "in", log_key(n, f"K{n}"), [record(n * 100 + i, requestParameters=blob)
                                                          for i in range(100)])
    data = tmp_path / "data"
    ingest_objects(walk([tmp_path / "in"]), data, workers=1, batch_bytes=1)
    (merged,) = day_files(data)["event_date=2026-11-20"]
    metadata = pq.read_metadata(merged)
    assert metadata.num_rows == 600 and 2 < metadata.num_row_groups < 600 // 10  # sized by bytes, not 32k rows
    with Dataset(data) as dataset:
        dataset.lock()
        assert compact(dataset, ["2026-11-20"]).rewritten == 0


def _prepare(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for n in range(4):
        write_log(tmp_path / "in", log_key(n, f"K{n}"), [record(n * 10 + i) for i in range(10)])
    ingest_objects(walk([tmp_path / "in"]), data, workers=1, batch_bytes=1, compact_partitions=False)
    return data


def rows_of(data: Path) -> list[tuple[str, int]]:
    return connect(data).execute("select source_object, record_index from events_all order by all").fetchall()


@pytest.mark.parametrize("crash_at", ["before the rename", "after the rename", "after the commit"])
def test_a_crash_during_compaction_is_repaired_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    data = _prepare(tmp_path)
    expected = rows_of(data)
    originals = [f for files in day_files(data).values() for f in files]
    assert len(originals) == 4

    class Killed(BaseException):
        """Stands for SIGKILL: nothing after it runs, no handler catches it."""

    def crash(*args: object) -> None:
        raise Killed

    with Dataset(data) as dataset, pytest.raises(Killed):
        dataset.lock()
        if crash_at == "before the rename":
            monkeypatch.setattr(compact_module.os, "replace", crash)
        elif crash_at == "after the rename":
            monkeypatch.setattr(Manifest, "commit_compaction", crash)
        else:
            monkeypatch.setattr(Dataset, "remove_retired", crash)
        compact(dataset)
    monkeypatch.undo()

    visible = [f for files in day_files(data).values() for f in files]
    if crash_at != "before the rename":
        assert len(visible) == 5  # old files and the merged one on disk: the next writer must clean up
    assert rows_of(data) == expected  # an analyzer reader sees the committed files only, each once
    with Dataset(data) as dataset:
        dataset.lock()  # recovery
        assert not list(dataset.layout.tmp.iterdir())
        assert dataset.manifest.pending_batches() == [] and dataset.manifest.retired_files() == []
    assert rows_of(data) == expected
    remaining = [f for files in day_files(data).values() for f in files]
    assert remaining == originals if crash_at != "after the commit" else len(remaining) == 1
    with Dataset(data) as dataset:  # the partition is still marked, so the next pass compacts it
        dataset.lock()
        stats = compact(dataset)
    assert stats.failures == [] and rows_of(data) == expected
    assert len([f for files in day_files(data).values() for f in files]) == 1


def test_compact_all_examines_partitions_nobody_flagged(tmp_path: Path) -> None:
    data = _prepare(tmp_path)
    with Dataset(data) as dataset:  # as a dataset written before compaction existed: nothing flagged
        dataset.manifest.db.execute("delete from uncompacted_partitions")
        dataset.lock()
        assert compact(dataset).partitions == 0
        stats = compact(dataset, ["2026-11-20"])
    assert (stats.rewritten, stats.replaced) == (1, 4)


def test_a_partition_that_cannot_be_merged_is_reported_and_kept(tmp_path: Path) -> None:
    data = _prepare(tmp_path)
    victim = day_files(data)["event_date=2026-11-20"][1]
    table = pq.read_table(victim)
    pq.write_table(table.drop_columns(["userAgent"]), victim)  # a file whose schema differs
    with Dataset(data) as dataset:
        dataset.lock()
        stats = compact(dataset)
        assert dataset.manifest.uncompacted() == ["2026-11-20"]
    assert len(stats.failures) == 1 and "event_date=2026-11-20" in stats.failures[0][0]
    assert f"{victim.name} has another schema" in stats.failures[0][1]
    assert len(day_files(data)["event_date=2026-11-20"]) == 4 and victim.exists()
    with Dataset(data) as dataset:
        assert not list(dataset.layout.tmp.iterdir())  # no half-merged file left behind


@pytest.mark.parametrize(("budget", "together"), [(0, 1), (2**40, 2)])
def test_merges_run_together_only_within_the_memory_budget(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int, together: int
) -> None:
    """Two days' merges run at once only while what they hold (inputs' slices and output row groups,
    _group_bytes) fits COMPACT_PARALLEL_BYTES: two big days at once peaked at 1.2 GB on 2M events."""
    import threading
    import time

    ingest_small_batches(corpus, tmp_path / "data", compact_partitions=False)
    monkeypatch.setattr(compact_module, "COMPACT_PARALLEL_BYTES", budget)
    merge, running, most, lock = compact_module._merge, [0], [0], threading.Lock()

    def counted(*args: object, **kwargs: object) -> object:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.3)  # long enough for a second merge to start, if it may
            return merge(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(compact_module, "_merge", counted)
    before = everything(tmp_path / "data")
    with Dataset(tmp_path / "data") as dataset:
        dataset.lock()
        stats = compact(dataset, parallel=2)
    assert not stats.failures and most[0] == together
    assert everything(tmp_path / "data").sort_by("source_object").equals(before.sort_by("source_object"))
