"""The manifest: which objects are in the dataset, and which files each ingest batch added.

SQLite (in ``DATA/_analyzer/``) gives us transactions: a batch's files become part of the dataset
only through :meth:`Manifest.commit_batch`, and a batch left ``pending`` by a crash is rolled back
by :meth:`Manifest.pending_batches` + :meth:`Manifest.forget_batch` on the next run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA_SQL = """
create table if not exists objects (
    uri text primary key,
    size integer,
    version text,          -- S3 ETag, or size+mtime for a local file
    content_hash text,
    records integer not null default 0,
    quarantined integer not null default 0,
    status text not null,  -- ingested | skipped | failed
    reason text,
    batch text,
    updated_at real not null
);
create table if not exists batches (
    id text primary key,
    status text not null,  -- pending | committed
    files text not null    -- JSON list of dataset-relative paths
);
create table if not exists stale_partitions (event_date text primary key);
create table if not exists uncompacted_partitions (event_date text primary key);
create table if not exists compactions (
    id text primary key,
    output text not null,  -- dataset-relative path of the merged file
    inputs text not null   -- JSON list of the files it replaces
);
create table if not exists state (key text primary key, value text not null);
"""

DONE = ("ingested", "skipped")


@dataclass(frozen=True)
class ObjectOutcome:
    """What happened to one source object in one batch."""

    uri: str
    size: int
    version: str
    status: str
    records: int = 0
    quarantined: int = 0
    reason: str | None = None
    content_hash: str | None = None


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        self.db.executescript(SCHEMA_SQL)

    def close(self) -> None:
        self.db.close()

    def done(self, objects: Sequence[tuple[str, str]]) -> set[str]:
        """The uris among (uri, version) pairs already ingested or skipped at that version."""
        found: set[str] = set()
        wanted = dict(objects)
        uris = list(wanted)
        for start in range(0, len(uris), 500):
            chunk = uris[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"select uri, version from objects where status in ('ingested','skipped') and uri in ({marks})",  # noqa: S608
                chunk,
            )
            found.update(uri for uri, version in rows if wanted[uri] == version)
        return found

    def begin_batch(self, batch: str, files: Iterable[str]) -> None:
        self.db.execute(
            "insert into batches(id, status, files) values (?, 'pending', ?)", (batch, json.dumps(list(files)))
        )

    def commit_batch(self, batch: str, outcomes: Iterable[ObjectOutcome], partitions: Iterable[str]) -> None:
        now = time.time()
        with self._transaction():
            self.db.execute("update batches set status='committed' where id=?", (batch,))
            self.db.executemany(
                "insert or replace into objects(uri, size, version, content_hash, records, quarantined,"
                " status, reason, batch, updated_at) values (?,?,?,?,?,?,?,?,?,?)",
                [
                    (o.uri, o.size, o.version, o.content_hash, o.records, o.quarantined, o.status,
                     o.reason, batch, now)
                    for o in outcomes
                ],
            )
            for table in ("stale_partitions", "uncompacted_partitions"):
                self.db.executemany(
                    f"insert or ignore into {table}(event_date) values (?)", [(p,) for p in partitions]  # noqa: S608
                )

    def pending_batches(self) -> list[tuple[str, list[str]]]:
        rows = self.db.execute("select id, files from batches where status='pending'").fetchall()
        return [(batch, json.loads(files)) for batch, files in rows]

    def forget_batch(self, batch: str) -> None:
        self.db.execute("delete from batches where id=?", (batch,))

    def stale_partitions(self) -> list[str]:
        return [row[0] for row in self.db.execute("select event_date from stale_partitions order by 1")]

    def clear_stale(self, day: str) -> None:
        self.db.execute("delete from stale_partitions where event_date=?", (day,))

    def uncompacted(self) -> list[str]:
        return [row[0] for row in self.db.execute("select event_date from uncompacted_partitions order by 1")]

    def clear_uncompacted(self, day: str) -> None:
        self.db.execute("delete from uncompacted_partitions where event_date=?", (day,))

    def begin_compaction(self, job: str, output: str, inputs: list[str]) -> None:
        self.db.execute(
            "insert into compactions(id, output, inputs) values (?, ?, ?)", (job, output, json.dumps(inputs))
        )

    def end_compaction(self, job: str) -> None:
        self.db.execute("delete from compactions where id=?", (job,))

    def pending_compactions(self) -> list[tuple[str, str, list[str]]]:
        rows = self.db.execute("select id, output, inputs from compactions").fetchall()
        return [(job, output, json.loads(inputs)) for job, output, inputs in rows]

    def objects(self, status: str | None = None) -> Iterator[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            query = "select * from objects" + (" where status=?" if status else "") + " order by uri"  # noqa: S608
            yield from self.db.execute(query, (status,) if status else ())
        finally:
            self.db.row_factory = None

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("select status, count(*) from objects group by status").fetchall())

    def get_state(self, key: str) -> str | None:
        row = self.db.execute("select value from state where key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        self.db.execute("insert or replace into state(key, value) values (?, ?)", (key, value))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("begin immediate")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("commit" if kind is None else "rollback")
