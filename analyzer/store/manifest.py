"""The manifest: which objects are in the dataset, and which files are (the snapshot).

SQLite (in ``DATA/_analyzer/``) gives us transactions: a batch's files become part of the dataset
only through :meth:`Manifest.commit_batch`, a compaction's through :meth:`Manifest.commit_compaction`,
each one transaction that adds files to the ``files`` table and retires the ones they replace
(:mod:`analyzer.store.snapshot`). A batch or compaction left ``pending`` by a crash is rolled back
by :meth:`Manifest.pending_batches` + :meth:`Manifest.forget_batch` on the next run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from analyzer.store.snapshot import DATA, DataFile, add_files, retire_files

SCHEMA_SQL = """
create table if not exists objects (
    uri text primary key,
    size integer,
    version text,          -- S3 ETag, or size+mtime for a local file
    content_hash text,     -- blake2b of the stored bytes (tells a re-delivery from a rewrite)
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
-- compactions: the journal of older versions (a merge's rename was its commit); adopted, then empty.
create table if not exists compactions (
    id text primary key,
    output text not null,  -- dataset-relative path of the merged file
    inputs text not null   -- JSON list of the files it replaces
);
-- files: the snapshot. A file is part of the dataset from the commit that adds it to the one that
-- retires it; a retired file is deleted after that commit (by a later writer if a crash came first).
create table if not exists files (
    path text primary key,  -- relative to the dataset root
    kind text not null,     -- data (event_date=*/) | evidence (_analyzer/superseded/)
    event_date text not null,
    rows integer not null,
    min_time text,          -- eventTime range, ISO 8601
    max_time text,
    added_by text not null, -- batch or compaction id
    added_at real not null,
    retired_by text,
    retired_at real
);
create table if not exists state (key text primary key, value text not null);
-- objects: the last good state of a key (ingested/skipped), or 'failed' for one never ingested.
-- failures: every object whose latest attempt failed, until it lands or a person gives up on it.
create table if not exists failures (
    uri text primary key,
    size integer,
    version text,
    reason text,
    attempts integer not null default 1,
    first_failed_at real not null,
    last_failed_at real not null,
    given_up_at real
);
-- rewrites: a known key that came back with other content (a log object should never change).
create table if not exists rewrites (
    uri text not null,
    previous_version text,
    previous_hash text,
    previous_records integer not null,
    version text,
    content_hash text,
    records integer not null,
    superseded_rows integer not null,
    batch text,
    rewritten_at real not null
);
create unique index if not exists rewrites_once on rewrites(uri, previous_hash, content_hash);
-- duplicates: per day, the (source_object, record_index) of the rows another row repeats (Parquet bytes).
create table if not exists duplicates (event_date text primary key, losers blob not null);
-- digests: every CloudTrail digest file ingested (its object is 'skipped': it holds no events), with
-- what `analyzer verify` checks: its place in the chain and the log files it lists (digest_logs).
create table if not exists digests (
    uri text primary key,      -- the object it was read from
    bucket text not null,      -- digestS3Bucket / digestS3Object: where CloudTrail delivered it
    key text not null,
    account text,
    region text,               -- the region that delivered (and signed) it
    trail text,
    start_time text not null,  -- digestStartTime, digestEndTime (ISO 8601; end as written: it is signed)
    end_time text not null,
    fingerprint text not null,
    previous_bucket text,
    previous_key text,
    previous_hash text,
    previous_signature text,
    sha256 text not null,      -- of its uncompressed content: what the next digest's previousDigestHashValue is
    signature text,            -- x-amz-meta-signature, when the source had it (a local copy has not)
    batch text,
    recorded_at real not null
);
create table if not exists digest_logs (
    digest_uri text not null,
    bucket text not null,
    key text not null,
    hash_value text not null,
    hash_algorithm text not null,
    primary key (digest_uri, key)
);
create index if not exists digest_logs_key on digest_logs(key);
"""

#: Columns added after a table was first released: (table, column, declaration), added to an older
#: manifest when it is opened (NULL in its existing rows: "not recorded").
ADDED_COLUMNS = (
    # the SHA-256 of the object's uncompressed content (every gzip member): what a digest lists
    ("objects", "content_sha256", "text"),
    # 1: the digest was read from S3 with its object metadata (its signature NULL: S3 had none)
    ("digests", "from_s3", "integer not null default 0"),
)

DONE = ("ingested", "skipped")
#: The status a worker gives an object at a new version whose bytes the manifest already holds:
#: its version is recorded, nothing is ingested again.
UNCHANGED = "unchanged"
FAILURES_ADOPTED = "manifest.failures-adopted"


@dataclass(frozen=True)
class DigestRecord:
    """A CloudTrail digest file as the manifest keeps it (see the ``digests`` table)."""

    bucket: str
    key: str
    account: str | None
    region: str | None
    trail: str | None
    start_time: str
    end_time: str
    fingerprint: str
    previous_bucket: str | None
    previous_key: str | None
    previous_hash: str | None
    previous_signature: str | None
    sha256: str
    logs: tuple[tuple[str, str, str, str], ...]  # (bucket, key, hash value, hash algorithm)
    signature: str | None = None
    from_s3: bool = False  # read from S3 with its object metadata: ``signature`` is x-amz-meta-signature


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
    digest: DigestRecord | None = None  # a digest file: recorded in the digests table, with the batch
    content_sha256: str | None = None  # of the uncompressed content: what a CloudTrail digest lists


@dataclass(frozen=True)
class KnownObject:
    """What the manifest holds for a key that was ingested or skipped."""

    uri: str
    version: str
    content_hash: str | None
    records: int
    status: str


@dataclass(frozen=True)
class Failure:
    """An object whose latest attempt failed."""

    uri: str
    version: str
    reason: str
    attempts: int
    first_failed_at: float
    last_failed_at: float
    given_up_at: float | None

    @property
    def given_up(self) -> bool:
        return self.given_up_at is not None


@dataclass(frozen=True)
class Rewrite:
    """A known key that came back with other content: its old rows were superseded."""

    uri: str
    previous_records: int
    records: int
    superseded_rows: int

    def __str__(self) -> str:
        return f"log object rewritten: {self.uri}, {self.previous_records} → {self.records} records"


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        self.db.executescript(SCHEMA_SQL)
        self._add_columns()
        self._adopt_old_failures()

    def _add_columns(self) -> None:
        """Give an older manifest the columns added since (:data:`ADDED_COLUMNS`), once."""

        def missing() -> list[tuple[str, str, str]]:
            have = {(table, row[1]) for table in {t for t, _, _ in ADDED_COLUMNS}
                    for row in self.db.execute(f"pragma table_info({table})")}
            return [c for c in ADDED_COLUMNS if (c[0], c[1]) not in have]

        if not missing():
            return
        with self._transaction():  # another process may be adding them too: check again, locked
            for table, column, declaration in missing():
                self.db.execute(f"alter table {table} add column {column} {declaration}")

    def _adopt_old_failures(self) -> None:
        """A manifest from before the ``failures`` table knew failures only as ``objects`` rows: adopt
        them once, so they hold the pull watermark and are listed like every other failure."""
        if self.get_state(FAILURES_ADOPTED) is not None:
            return
        with self._transaction():
            self.db.execute(
                "insert or ignore into failures(uri, size, version, reason, attempts, first_failed_at, last_failed_at)"
                " select uri, size, version, reason, 1, updated_at, updated_at from objects where status='failed'"
            )
            self.db.execute("insert or replace into state(key, value) values (?, '1')", (FAILURES_ADOPTED,))

    def close(self) -> None:
        self.db.close()

    def done(self, objects: Sequence[tuple[str, str]]) -> set[str]:
        """The uris among (uri, version) pairs not to read again: ingested or skipped at that
        version, or failed at that version and given up by a person (``analyzer failures --give-up``)."""
        found: set[str] = set()
        wanted = dict(objects)
        for chunk in _chunks(list(wanted)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"select uri, version from objects where status in ('ingested','skipped') and uri in ({marks})"  # noqa: S608
                f" union all select uri, version from failures where given_up_at is not null and uri in ({marks})",
                chunk + chunk,
            )
            found.update(uri for uri, version in rows if wanted[uri] == version)
        return found

    def known(self, uris: Sequence[str]) -> dict[str, KnownObject]:
        """The last good state of each of ``uris`` the manifest holds (ingested or skipped)."""
        found: dict[str, KnownObject] = {}
        for chunk in _chunks(list(uris)):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "select uri, version, content_hash, records, status from objects"  # noqa: S608
                f" where status in ('ingested','skipped') and uri in ({marks})",
                chunk,
            )
            found.update((row[0], KnownObject(*row)) for row in rows)
        return found

    def failing(self, uris: Sequence[str]) -> set[str]:
        """The uris among ``uris`` whose latest attempt failed (and nobody gave up on)."""
        found: set[str] = set()
        for chunk in _chunks(list(uris)):
            marks = ",".join("?" * len(chunk))
            found.update(row[0] for row in self.db.execute(
                f"select uri from failures where given_up_at is null and uri in ({marks})", chunk))  # noqa: S608
        return found

    def failures(self, *, given_up: bool | None = None) -> list[Failure]:
        """Objects whose latest attempt failed, oldest failure first (``given_up`` filters)."""
        where = {None: "", True: " where given_up_at is not null", False: " where given_up_at is null"}[given_up]
        rows = self.db.execute(
            "select uri, version, reason, attempts, first_failed_at, last_failed_at, given_up_at"  # noqa: S608
            f" from failures{where} order by first_failed_at, uri"
        ).fetchall()
        return [Failure(*row) for row in rows]

    def give_up(self, *, failed_before: float, uris: Sequence[str] | None = None) -> list[Failure]:
        """Stop retrying failures first seen before ``failed_before`` (epoch seconds), or only
        those of ``uris``; returns what was given up. An object given up is read again only at a
        new version."""
        candidates = [f for f in self.failures(given_up=False) if f.first_failed_at < failed_before
                      and (uris is None or f.uri in set(uris))]
        now = time.time()
        with self._transaction():
            self.db.executemany("update failures set given_up_at=? where uri=?", [(now, f.uri) for f in candidates])
        return [Failure(f.uri, f.version, f.reason, f.attempts, f.first_failed_at, f.last_failed_at, now)
                for f in candidates]

    def rewrites(self) -> list[tuple[str, int, int, int, float]]:
        """Every rewrite seen: (uri, previous records, records, superseded rows, when), oldest first."""
        rows = self.db.execute("select uri, previous_records, records, superseded_rows, rewritten_at"
                               " from rewrites order by rewritten_at, uri").fetchall()
        return [tuple(row) for row in rows]

    def _record_rewrite(self, change: RewriteRecord, batch: str, now: float) -> None:
        rewrite, previous, outcome = change
        self.db.execute(
            "insert or ignore into rewrites(uri, previous_version, previous_hash, previous_records, version,"
            " content_hash, records, superseded_rows, batch, rewritten_at) values (?,?,?,?,?,?,?,?,?,?)",
            (rewrite.uri, previous.version, previous.content_hash, previous.records, outcome.version,
             outcome.content_hash, outcome.records, rewrite.superseded_rows, batch, now),
        )

    def _record_objects(self, batch: str, outcomes: Iterable[ObjectOutcome], now: float) -> None:
        """Record each object's outcome (inside the batch's transaction).

        A failure never overwrites an object's last good state (its content hash is what tells a
        re-delivery from a rewrite); it is kept in ``failures`` until the object lands."""
        for o in outcomes:
            if o.status == UNCHANGED:  # same bytes at a new version: only the version is new
                self.db.execute("update objects set size=?, version=?, updated_at=? where uri=?",
                                (o.size, o.version, now, o.uri))
                self.db.execute("delete from failures where uri=?", (o.uri,))
            elif o.status == "failed":
                self.db.execute(
                    "insert into failures(uri, size, version, reason, attempts, first_failed_at, last_failed_at)"
                    " values (?,?,?,?,1,?,?) on conflict(uri) do update set size=excluded.size,"
                    " version=excluded.version, reason=excluded.reason, attempts=attempts+1,"
                    " last_failed_at=excluded.last_failed_at,"
                    " given_up_at=case when version=excluded.version then given_up_at end",
                    (o.uri, o.size, o.version, o.reason, now, now),
                )
                self.db.execute(
                    "insert into objects(uri, size, version, content_hash, records, quarantined, status, reason,"
                    " batch, updated_at) values (?,?,?,?,0,0,'failed',?,?,?) on conflict(uri) do update set"
                    " size=excluded.size, version=excluded.version, content_hash=excluded.content_hash,"
                    " reason=excluded.reason, batch=excluded.batch, updated_at=excluded.updated_at"
                    " where objects.status='failed'",
                    (o.uri, o.size, o.version, o.content_hash, o.reason, batch, now),
                )
            else:
                self.db.execute(
                    "insert or replace into objects(uri, size, version, content_hash, records, quarantined,"
                    " status, reason, batch, updated_at, content_sha256) values (?,?,?,?,?,?,?,?,?,?,?)",
                    (o.uri, o.size, o.version, o.content_hash, o.records, o.quarantined, o.status,
                     o.reason, batch, now, o.content_sha256),
                )
                self.db.execute("delete from failures where uri=?", (o.uri,))
                if o.digest is not None:
                    self._record_digest(o.uri, o.digest, batch, now)

    def _record_digest(self, uri: str, d: DigestRecord, batch: str, now: float) -> None:
        """A digest file and the log files it lists (a new version of the object replaces both)."""
        self.db.execute("delete from digest_logs where digest_uri=?", (uri,))
        self.db.execute(
            "insert or replace into digests(uri, bucket, key, account, region, trail, start_time, end_time,"
            " fingerprint, previous_bucket, previous_key, previous_hash, previous_signature, sha256, signature,"
            " batch, recorded_at, from_s3) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (uri, d.bucket, d.key, d.account, d.region, d.trail, d.start_time, d.end_time, d.fingerprint,
             d.previous_bucket, d.previous_key, d.previous_hash, d.previous_signature, d.sha256, d.signature,
             batch, now, int(d.from_s3)),
        )
        self.db.executemany(
            "insert or replace into digest_logs(digest_uri, bucket, key, hash_value, hash_algorithm)"
            " values (?,?,?,?,?)", [(uri, *log) for log in d.logs])

    def digests(self) -> list[tuple[str, DigestRecord]]:
        """Every digest recorded, by end time: (the object's uri, the digest)."""
        logs: dict[str, list[tuple[str, str, str, str]]] = {}
        for row in self.db.execute("select digest_uri, bucket, key, hash_value, hash_algorithm from digest_logs"
                                   " order by digest_uri, key"):
            logs.setdefault(row[0], []).append((row[1], row[2], row[3], row[4]))
        rows = self.db.execute(
            "select uri, bucket, key, account, region, trail, start_time, end_time, fingerprint, previous_bucket,"
            " previous_key, previous_hash, previous_signature, sha256, signature, from_s3 from digests"
            " order by end_time, uri"
        ).fetchall()
        return [(uri, DigestRecord(bucket, key, account, region, trail, start, end, fingerprint, previous_bucket,
                                   previous_key, previous_hash, previous_signature, sha256,
                                   tuple(logs.get(uri, ())), signature, bool(from_s3)))
                for (uri, bucket, key, account, region, trail, start, end, fingerprint, previous_bucket, previous_key,
                     previous_hash, previous_signature, sha256, signature, from_s3) in rows]

    def begin_batch(self, batch: str, files: Iterable[str]) -> None:
        self.db.execute(
            "insert into batches(id, status, files) values (?, 'pending', ?)", (batch, json.dumps(list(files)))
        )

    def commit_batch(
        self,
        batch: str,
        outcomes: Iterable[ObjectOutcome],
        partitions: Iterable[str],
        *,
        added: Sequence[DataFile] = (),
        retired: Sequence[str] = (),
        stale: Iterable[str] = (),
        rewrites: Sequence[RewriteRecord] = (),
    ) -> None:
        """One transaction: the batch's files (and a rewrite's) become live, the files a rewrite
        replaced are retired, and its objects, rewrites and partitions are recorded."""
        now = time.time()
        partitions = list(partitions)
        with self._transaction():
            self.db.execute("update batches set status='committed' where id=?", (batch,))
            add_files(self.db, added, batch, now)
            retire_files(self.db, list(retired), batch, now)
            self._record_objects(batch, outcomes, now)
            for change in rewrites:
                self._record_rewrite(change, batch, now)
            self.db.executemany("insert or ignore into stale_partitions(event_date) values (?)",
                                [(p,) for p in {*partitions, *stale}])
            self.db.executemany("insert or ignore into uncompacted_partitions(event_date) values (?)",
                                [(p,) for p in partitions])

    def commit_compaction(self, job: str, added: DataFile, retired: Sequence[str]) -> None:
        """One transaction: the merged file becomes live and the files it merged are retired (the
        rows are the same, so the duplicate index stays valid)."""
        now = time.time()
        with self._transaction():
            add_files(self.db, [added], job, now)
            retire_files(self.db, list(retired), job, now)
            self.db.execute("delete from batches where id=?", (job,))

    def live_files(self, day: str | None = None, kind: str = DATA) -> list[DataFile]:
        """The files of the committed snapshot (of one day), by day and name."""
        where, params = ("kind=? and retired_by is null", [kind])
        if day is not None:
            where, params = where + " and event_date=?", [*params, day]
        rows = self.db.execute(
            f"select path, event_date, rows, min_time, max_time, kind from files where {where}"  # noqa: S608
            " order by event_date, path", params)
        return [DataFile(*row) for row in rows]

    def live_days(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "select distinct event_date from files where kind=? and retired_by is null order by 1", (DATA,))]

    def retired_files(self) -> list[str]:
        """Files retired by a commit and not deleted yet (a crash came between)."""
        return [row[0] for row in self.db.execute("select path from files where retired_by is not null order by 1")]

    def forget_files(self, paths: Sequence[str]) -> None:
        """Forget retired files once they are deleted."""
        self.db.executemany("delete from files where path=? and retired_by is not null", [(p,) for p in paths])

    def pending_batches(self) -> list[tuple[str, list[str]]]:
        rows = self.db.execute("select id, files from batches where status='pending'").fetchall()
        return [(batch, json.loads(files)) for batch, files in rows]

    def forget_batch(self, batch: str) -> None:
        self.db.execute("delete from batches where id=?", (batch,))

    def stale_partitions(self) -> list[str]:
        return [row[0] for row in self.db.execute("select event_date from stale_partitions order by 1")]

    def clear_stale(self, day: str) -> None:
        self.db.execute("delete from stale_partitions where event_date=?", (day,))

    def mark_stale(self, days: Iterable[str]) -> None:
        """The duplicate index of ``days`` must be recomputed (their rows changed)."""
        self.db.executemany("insert or ignore into stale_partitions(event_date) values (?)", [(d,) for d in days])

    def set_duplicates(self, day: str, losers: bytes | None) -> None:
        """Replace the duplicate index of ``day`` and clear its stale mark, in one transaction."""
        with self._transaction():
            self.db.execute("delete from duplicates where event_date=?", (day,))
            if losers:
                self.db.execute("insert into duplicates(event_date, losers) values (?, ?)", (day, losers))
            self.db.execute("delete from stale_partitions where event_date=?", (day,))

    def uncompacted(self) -> list[str]:
        return [row[0] for row in self.db.execute("select event_date from uncompacted_partitions order by 1")]

    def clear_uncompacted(self, day: str) -> None:
        self.db.execute("delete from uncompacted_partitions where event_date=?", (day,))

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


#: A rewrite to record with its batch: what the run reports, the version it replaces, the new outcome.
RewriteRecord = tuple[Rewrite, KnownObject, ObjectOutcome]


def _chunks(items: list[str], size: int = 400) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("begin immediate")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("commit" if kind is None else "rollback")
