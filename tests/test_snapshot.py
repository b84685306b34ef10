"""The manifest is the snapshot: readers read exactly the committed files, listed, never a glob."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import duckdb
import pytest

from analyzer import connect, ingest_objects
from analyzer.sources.local import walk
from analyzer.store import Dataset
from analyzer.store.compact import compact, merge_sorted
from analyzer.store.engine import read_snapshot
from analyzer.store.snapshot import ADOPTED

from records import log_key, record, write_log


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Two days, each in several uncompacted files."""
    logs = tmp_path / "in"
    for n in range(6):
        day = "20" if n % 2 else "21"
        write_log(logs, log_key(n, f"K{n:015d}", day),
                  [record(n * 10 + i, time=f"2026-11-{day}T10:{i:02d}:00Z") for i in range(10)])
    data = tmp_path / "data"
    assert ingest_objects(walk([logs]), data, workers=1, batch_bytes=1, compact_partitions=False).events == 60
    return data


def count(data: Path) -> int:
    con = connect(data)
    try:
        return int(con.execute("select count(*) from events_all").fetchone()[0])
    finally:
        con.close()


def view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return str(con.execute("select sql from duckdb_views() where view_name = ?", [name]).fetchone()[0])


def test_the_files_table_lists_every_live_file_with_its_rows_and_times(data: Path) -> None:
    with Dataset(data) as dataset:
        files = dataset.manifest.live_files()
        assert sorted(dataset.root / f.path for f in files) == sorted(data.glob("event_date=*/*.parquet"))
        assert sum(f.rows for f in files) == 60 and {f.day for f in files} == {"2026-11-20", "2026-11-21"}
        for f in files:
            assert f.min_time is not None and f.max_time is not None
            assert f.min_time.startswith(f.day + "T10:00") and f.max_time.startswith(f.day + "T10:09")
            assert f.min_time.endswith("+00:00")


def test_readers_read_the_committed_list_not_a_glob(data: Path) -> None:
    con = connect(data)
    sql = view_sql(con, "events_all")
    con.close()
    assert "*.parquet" not in sql and "=*" not in sql
    assert sql.count(".parquet") == len(list(data.glob("event_date=*/*.parquet")))


def test_a_file_in_a_partition_that_no_commit_added_is_not_read(data: Path) -> None:
    """What a writer renamed into place before a crash kept it from committing: not the dataset
    (the old code read whatever a glob found)."""
    stray = next(data.glob("event_date=2026-11-20/*.parquet"))
    shutil.copy(stray, stray.with_name("part-uncommitted-000-2026-11-20.parquet"))
    assert count(data) == 60


def test_a_compaction_is_one_commit_and_its_inputs_go_after_it(data: Path) -> None:
    with Dataset(data) as dataset:
        dataset.lock()
        before = {f.path for f in dataset.manifest.live_files()}
        stats = compact(dataset)
        after = dataset.manifest.live_files()
        assert dataset.manifest.retired_files() == [] and stats.replaced == len(before)
    assert len(after) == 2 and not before & {f.path for f in after}
    on_disk = sorted(str(p.relative_to(data)) for p in data.glob("event_date=*/*.parquet"))
    assert on_disk == sorted(f.path for f in after)
    assert count(data) == 60


def test_a_reader_whose_files_were_retired_retries_once_on_the_new_snapshot(data: Path) -> None:
    calls: list[int] = []

    def work(con: duckdb.DuckDBPyConnection) -> int:
        calls.append(1)
        if len(calls) == 1:  # a writer compacts while this reader holds the older snapshot
            with Dataset(data) as dataset:
                dataset.lock()
                compact(dataset)
        return int(con.execute("select count(*) from events_all").fetchone()[0])

    assert read_snapshot(data, work) == 60
    assert len(calls) == 2


@pytest.mark.parametrize("arrow", [False, True])
def test_without_the_retry_the_old_snapshot_fails_on_the_missing_file(data: Path, arrow: bool) -> None:
    """Why the retry exists: a retired file is deleted right after the commit."""
    con = connect(data, arrow=arrow)
    with Dataset(data) as dataset:
        dataset.lock()
        compact(dataset)
    with pytest.raises((duckdb.Error, OSError)):
        con.execute("select count(*) from events_all").fetchall()
    con.close()


def test_a_failure_with_the_snapshot_intact_is_not_retried(data: Path) -> None:
    calls: list[int] = []

    def work(con: duckdb.DuckDBPyConnection) -> None:
        calls.append(1)
        con.execute("select no_such_column from events_all")

    with pytest.raises(duckdb.BinderException):
        read_snapshot(data, work)
    assert len(calls) == 1


def as_older_version(data: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    """Make ``data`` look as an older version left it: no snapshot table contents."""
    with closing(sqlite3.connect(data / "_analyzer" / "manifest.sqlite")) as db:
        db.execute("delete from files")
        db.execute("delete from state where key = ?", (ADOPTED,))
        change(db)
        db.commit()


def test_an_older_merge_killed_before_its_rename_keeps_its_inputs(data: Path) -> None:
    day = data / "event_date=2026-11-21"
    inputs = sorted(day.glob("*.parquet"))

    def journal(db: sqlite3.Connection) -> None:  # recorded, killed before the rename: not committed
        db.execute("insert into compactions(id, output, inputs) values (?, ?, ?)",
                   ("0123456789abcdef", "event_date=2026-11-21/part-0123456789abcdef-compacted-2026-11-21.parquet",
                    json.dumps([str(p.relative_to(data)) for p in inputs])))

    as_older_version(data, journal)
    assert count(data) == 60
    with Dataset(data) as dataset:
        dataset.lock()
    assert all(p.exists() for p in inputs) and count(data) == 60


def test_an_older_dataset_is_adopted_once_from_disk(data: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The older version's journal is honoured: a merge renamed into place (its commit, then) retires
    its inputs; a batch still pending was never committed."""
    day = data / "event_date=2026-11-21"
    inputs = sorted(day.glob("*.parquet"))
    merged = day / "part-0123456789abcdef-compacted-2026-11-21.parquet"
    merge_sorted(inputs, merged)  # renamed into place, inputs not yet removed: then the kill
    pending = data / "event_date=2026-11-20" / "part-feedfacefeedface-000-2026-11-20.parquet"
    shutil.copy(next((data / "event_date=2026-11-20").glob("*.parquet")), pending)

    def journal(db: sqlite3.Connection) -> None:
        relative = [str(p.relative_to(data)) for p in inputs]
        db.execute("insert into compactions(id, output, inputs) values (?, ?, ?)",
                   ("0123456789abcdef", str(merged.relative_to(data)), json.dumps(relative)))
        db.execute("insert into batches(id, status, files) values ('feedfacefeedface', 'pending', ?)",
                   (json.dumps([str(pending.relative_to(data))]),))

    as_older_version(data, journal)
    with caplog.at_level(logging.WARNING, logger="analyzer.store"):
        assert count(data) == 60  # a reader adopts it
        assert count(data) == 60
    said = [r.getMessage() for r in caplog.records if "older dataset" in r.getMessage()]
    assert said == [f"{data}: an older dataset: the manifest now lists its 4 live files (done once)"]
    with Dataset(data) as dataset:
        dataset.lock()  # the first writer removes what the older version left
        assert dataset.manifest.retired_files() == []
    assert not pending.exists() and not any(p.exists() for p in inputs) and merged.exists()
    assert len(list(data.glob("event_date=*/*.parquet"))) == 4 and count(data) == 60


def test_the_duplicates_folder_is_neither_made_nor_kept(data: Path) -> None:
    assert not (data / "_analyzer" / "duplicates").exists()
    (data / "_analyzer" / "duplicates").mkdir()  # an older version's (empty) folder
    write_log(data.parent / "more", log_key(30, "Later00000000001"), [record(500)])
    ingest_objects(walk([data.parent / "more"]), data, workers=1)
    assert not (data / "_analyzer" / "duplicates").exists()


def test_a_dataset_path_with_uri_characters_reads(data: Path) -> None:
    odd = data.parent / "odd ?#%20 name"
    shutil.copytree(data, odd)
    assert count(odd) == 60


def test_detect_reads_the_new_snapshot_when_a_compaction_replaces_its_files(
        fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import analyzer.detect as detect
    from analyzer.cli import app

    data = tmp_path / "data"
    assert ingest_objects(walk([fixtures_dir / "AWSLogs"]), data, workers=1, batch_bytes=20_000,
                  compact_partitions=False).failed == 0
    command = ["detect", "--data", str(data), "--format", "json", "--output", str(tmp_path / "before.json")]
    undisturbed = CliRunner().invoke(app, command)
    real = detect.run_detections
    calls: list[int] = []

    def compacting_meanwhile(con: duckdb.DuckDBPyConnection, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            with Dataset(data) as dataset:
                dataset.lock()
                assert compact(dataset).replaced > 0
        return real(con, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(detect, "run_detections", compacting_meanwhile)
    command[-1] = str(tmp_path / "after.json")
    disturbed = CliRunner().invoke(app, command)
    assert len(calls) == 2 and disturbed.exit_code == undisturbed.exit_code == 3, disturbed.output
    alerts = [json.loads((tmp_path / name).read_text())["alerts"] for name in ("before.json", "after.json")]
    assert len(alerts[0]) > 10 and alerts[0] == alerts[1]


@pytest.mark.parametrize("to_file", [True, False])
def test_sql_reads_the_new_snapshot_when_a_compaction_replaces_its_files(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to_file: bool) -> None:
    """``analyzer sql`` runs the query again where nothing was shown yet: to a file, or as a table."""
    from typer.testing import CliRunner

    import analyzer.sql as sql
    from analyzer.cli import app

    real = sql.execute
    calls: list[int] = []

    def compacting_meanwhile(con: duckdb.DuckDBPyConnection, text: str, *args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            with Dataset(data) as dataset:
                dataset.lock()
                assert compact(dataset).replaced > 0
        return real(con, text, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sql, "execute", compacting_meanwhile)
    out = tmp_path / "out.csv"
    command = ["sql", "--data", str(data), "select count(*) as n from events_all"]
    result = CliRunner().invoke(app, [*command, "--output", str(out)] if to_file else command)
    assert result.exit_code == 0, result.output
    assert len(calls) == 2
    shown = out.read_text().split() if to_file else [w for w in result.output.split() if set(w) != {"─"}]
    assert shown[:2] == ["n", "60"]


def test_the_quarantine_of_a_batch_that_never_committed_is_not_listed(tmp_path: Path) -> None:
    logs, data = tmp_path / "logs", tmp_path / "data"
    write_log(logs, log_key(0), [record(1), {"eventName": "NoTime"}])
    assert ingest_objects(walk([logs]), data, workers=1).quarantined == 1
    with Dataset(data) as dataset:  # a writer killed after moving its quarantine file in, before its commit
        dataset.manifest.begin_batch("deadbeefdeadbeef", ["_analyzer/quarantine/deadbeefdeadbeef.jsonl"])
        shutil.copy(next(dataset.layout.quarantine.glob("*.jsonl")),
                    dataset.layout.quarantine / "deadbeefdeadbeef.jsonl")
        assert len(list(dataset.quarantined())) == 1
        dataset.lock()  # the next writer removes it
        assert len(list(dataset.layout.quarantine.glob("*.jsonl"))) == 1


def on_disk(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in data.glob("event_date=*/*.parquet"))


def test_a_failed_compaction_commit_takes_its_file_out_again(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.store.manifest import Manifest

    def full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    before = on_disk(data)
    monkeypatch.setattr(Manifest, "commit_compaction", full)
    with Dataset(data) as dataset:
        dataset.lock()
        stats = compact(dataset)
        assert len(stats.failures) == 2 and dataset.manifest.pending_batches() == []
        assert on_disk(data) == before == sorted(f.path for f in dataset.manifest.live_files())


def test_a_failed_batch_commit_takes_its_files_out_again(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.store.manifest import Manifest

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    before = on_disk(data)
    write_log(data.parent / "more", log_key(40, "Later00000000001"), [record(700)])
    monkeypatch.setattr(Manifest, "commit_batch", full)
    with pytest.raises(sqlite3.OperationalError):
        ingest_objects(walk([data.parent / "more"]), data, workers=1)
    assert on_disk(data) == before and count(data) == 60
