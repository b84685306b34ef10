"""Publish the committed snapshot to S3: incremental, idempotent, and safe to kill at any point.

``s3://BUCKET/PREFIX`` becomes a copy of the dataset's live files, in the same layout
(``PREFIX/event_date=YYYY-MM-DD/part-*.parquet``, the evidence under ``PREFIX/_analyzer/superseded/``),
which Athena, Spark and DuckDB read as they read the local folder. One run:

1. reads the committed snapshot (:mod:`analyzer.store.snapshot`): which files *are* the dataset;
2. lists what the prefix holds (one listing of the data and evidence folders) and aborts the multipart
   uploads a killed run left behind (invisible, but S3 keeps their parts);
3. uploads the files the prefix lacks (a file's name never changes once committed, so a key of the same
   size is the same file): a single PUT, or a multipart upload above ``part_size``. Either way S3 makes
   the object visible only once it is whole: no reader ever sees half a file;
4. writes the snapshot listing ``PREFIX/_analyzer/snapshot.json`` (one PUT): the files of this snapshot,
   which Spark's engine reads instead of listing the folders (:mod:`analyzer.scale.spark`);
5. only then deletes the files the snapshot no longer has (days a compaction merged, a rewritten object's
   old file): a reader of the prefix finds every event throughout, at worst once more for a moment,
   which the deduplicating ``events`` view hides.

The manifest records what was published, where and when (tables ``published_files`` and ``publications``
in ``_analyzer/manifest.sqlite``). The prefix belongs to the dataset: data files there that the snapshot
does not list are deleted (nothing outside ``event_date=*/`` and ``_analyzer/`` is touched). A run killed
anywhere (``kill -9`` too) leaves only whole objects, and the next run converges: it uploads what is
missing and deletes what is retired. Local files a writer retires while a run uploads (a compaction) make
it read the new snapshot and go on.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.errors import AnalyzerError
from analyzer.store.dataset import crash_point
from analyzer.store.layout import Layout

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from analyzer.store.snapshot import DataFile, Snapshot

log = logging.getLogger("analyzer.publish")

LISTING = "_analyzer/snapshot.json"  # analyzer.scale.spark.SNAPSHOT_LISTING (tests check they agree)
DEFAULT_WORKERS = 8
DEFAULT_PART_SIZE = 64 * 1024**2
MIN_PART_SIZE = 5 * 1024**2  # S3's smallest part (but the last)
#: The keys a publish owns under its prefix (relative): data files and evidence; nothing else is deleted.
OWNED = re.compile(r"^(?:event_date=[^/]+/[^/]+\.parquet|_analyzer/superseded/[^/]+\.evidence)$")
SNAPSHOT_RETRIES = 3

Progress = Callable[[int, int], None]  # (bytes done, bytes to upload)


@dataclass(frozen=True)
class Target:
    """``s3://bucket/prefix/``: the prefix empty or ending in ``/``."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        if not url.startswith("s3://"):
            raise AnalyzerError(f"{url}: expected s3://BUCKET/PREFIX")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise AnalyzerError(f"{url}: no bucket name")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, path: str) -> str:
        return self.prefix + path


@dataclass
class PublishResult:
    """What one run did (``uploaded == 0 and deleted == 0``: the prefix already was the snapshot)."""

    target: str
    files: int  # in the snapshot (data and evidence)
    bytes: int
    uploaded: int = 0
    uploaded_bytes: int = 0
    deleted: int = 0
    aborted_uploads: int = 0
    snapshots_read: int = 1

    def describe(self) -> str:
        size = f"{self.bytes / 1024**2:,.1f} MiB"
        moved = (
            f"{self.uploaded} uploaded ({self.uploaded_bytes / 1024**2:,.1f} MiB), {self.deleted} retired "
            "file(s) deleted"
            if self.uploaded or self.deleted
            else "nothing to upload or delete"
        )
        cleaned = (
            f"; {self.aborted_uploads} unfinished upload(s) of an earlier run aborted" if self.aborted_uploads else ""
        )
        return f"{self.target}: {self.files} file(s), {size}: {moved}{cleaned}"


# -- the manifest's record -------------------------------------------------------------------------------------


_SCHEMA = """
create table if not exists published_files (
    target text not null, path text not null, size integer not null,
    state text not null,          -- 'uploading' (started) or 'done' (the object is whole in S3)
    at real not null,
    primary key (target, path)
);
create table if not exists publications (
    target text not null, at real not null, files integer not null, bytes integer not null,
    uploaded integer not null, deleted integer not null
);
"""


@contextmanager
def _record(layout: Layout) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(layout.manifest, timeout=60, isolation_level=None)
    try:
        db.executescript(_SCHEMA)
        yield db
    finally:
        db.close()


@contextmanager
def _exclusive(layout: Layout) -> Iterator[None]:
    """One publish of a dataset at a time (a second one would abort the first one's uploads)."""
    path = layout.internal / "publish.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AnalyzerError(f"{layout.root}: another `analyzer publish` of this dataset is running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def published(data: Path | str, target: str | None = None) -> list[dict[str, Any]]:
    """What the manifest says was published (every target, or ``target``): path, size, state, when."""
    layout = Layout(Path(data))
    with closing(sqlite3.connect(f"file:{layout.manifest}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute(
                "select target, path, size, state, at from published_files"
                " where ? is null or target = ? order by target, path",
                (target, target),
            ).fetchall()
        except sqlite3.OperationalError:  # never published
            return []
    return [dict(zip(("target", "path", "size", "state", "at"), row, strict=True)) for row in rows]


# -- S3 ------------------------------------------------------------------------------------------------------------


def _client(target: Target, profile: str | None, endpoint_url: str | None, workers: int) -> S3Client:
    from analyzer.sources.s3 import make_client, make_session

    return make_client(
        make_session(profile), endpoint_url=endpoint_url, bucket=target.bucket, pool=workers + 2, read_timeout=300
    )


def _s3_error(exc: BaseException, target: Target, action: str) -> AnalyzerError:
    from analyzer.sources.s3 import describe, fatal_message

    return AnalyzerError(fatal_message(exc, str(target)) or f"{target}: {action} failed: {describe(exc, action)}")


def _remote(client: S3Client, target: Target) -> dict[str, int]:
    """The owned objects under the prefix: relative path → size."""
    found: dict[str, int] = {}
    paginator = client.get_paginator("list_objects_v2")
    for folder in ("event_date=", "_analyzer/superseded/"):
        for page in paginator.paginate(Bucket=target.bucket, Prefix=target.key(folder)):
            for item in page.get("Contents", []):
                relative = item["Key"][len(target.prefix) :]
                if OWNED.match(relative):
                    found[relative] = int(item["Size"])
    return found


def _abort_unfinished(client: S3Client, target: Target) -> int:
    """Abort the multipart uploads a killed run left under the prefix (their parts cost storage)."""
    aborted = 0
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=target.prefix):
        for upload in page.get("Uploads", []):
            relative = upload["Key"][len(target.prefix) :]
            if OWNED.match(relative) or relative == LISTING:
                client.abort_multipart_upload(Bucket=target.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
    return aborted


def _upload(
    client: S3Client, target: Target, source: Path, key: str, size: int, part_size: int, advance: Callable[[int], None]
) -> None:
    """One file as one object: a PUT, or a multipart upload completed only when every part is up (S3
    shows a key only then); a failed multipart upload is aborted."""
    if size <= part_size:
        body = source.read_bytes()
        client.put_object(Bucket=target.bucket, Key=key, Body=body)
        advance(len(body))
        return
    upload_id = client.create_multipart_upload(Bucket=target.bucket, Key=key)["UploadId"]
    try:
        parts = []
        with open(source, "rb") as handle:
            number = 1
            while chunk := handle.read(part_size):
                answer = client.upload_part(
                    Bucket=target.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                advance(len(chunk))
                crash_point("publish.part")
                number += 1
        done: Any = {"Parts": parts}
        client.complete_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload=done)
    except BaseException:
        with suppress(Exception):  # the next run aborts what is left
            client.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id)
        raise


def _listing(snapshot: Snapshot, sizes: dict[str, int]) -> bytes:
    from analyzer.store.snapshot import DATA

    def entry(f: DataFile) -> dict[str, Any]:
        return {
            "path": f.path,
            "day": f.day,
            "rows": f.rows,
            "size": sizes[f.path],
            "min_time": f.min_time,
            "max_time": f.max_time,
        }

    document = {
        "format": 1,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [entry(f) for f in snapshot.files if f.kind == DATA],
        "evidence": [entry(f) for f in snapshot.files if f.kind != DATA],
    }
    return json.dumps(document, indent=1).encode()


# -- the job -------------------------------------------------------------------------------------------------------


class _Retired(Exception):
    """A local file of the snapshot went away mid-run: a writer committed a newer snapshot."""


def publish(
    data: Path | str,
    url: str,
    *,
    profile: str | None = None,
    endpoint_url: str | None = None,
    workers: int = DEFAULT_WORKERS,
    part_size: int = DEFAULT_PART_SIZE,
    client: S3Client | None = None,
    progress: Progress | None = None,
) -> PublishResult:
    """Make ``url`` (``s3://BUCKET/PREFIX``) a copy of the dataset's committed snapshot; see the module doc."""
    from botocore.exceptions import BotoCoreError, ClientError

    from analyzer.store import snapshot as snapshots

    layout = Layout(Path(data))
    if not layout.internal.exists():
        raise AnalyzerError(f"{data}: no analyzer dataset here (run `analyzer ingest` first)")
    if part_size < 1:
        raise AnalyzerError("part size must be positive")
    target = Target.parse(url)
    client = client or _client(target, profile, endpoint_url, workers)
    with _exclusive(layout), _record(layout) as db:
        for attempt in range(1, SNAPSHOT_RETRIES + 1):
            snapshot = snapshots.read(layout)
            try:
                result = _publish(db, layout, snapshot, target, client, workers, part_size, progress)
                result.snapshots_read = attempt
                return result
            except _Retired:
                if attempt == SNAPSHOT_RETRIES:
                    raise AnalyzerError(
                        f"{layout.root}: writers kept replacing files while publishing; rerun when they are done"
                    ) from None
                log.info("%s: a writer replaced files while they were uploaded: publishing the new snapshot", data)
            except (ClientError, BotoCoreError) as exc:
                raise _s3_error(exc, target, "s3:PutObject/s3:ListBucket/s3:DeleteObject") from None
    raise AssertionError("unreachable")


def _publish(
    db: sqlite3.Connection,
    layout: Layout,
    snapshot: Snapshot,
    target: Target,
    client: S3Client,
    workers: int,
    part_size: int,
    progress: Progress | None,
) -> PublishResult:
    sizes: dict[str, int] = {}
    for f in snapshot.files:
        try:
            sizes[f.path] = (layout.root / f.path).stat().st_size
        except FileNotFoundError:
            raise _Retired from None
    result = PublishResult(str(target), len(snapshot.files), sum(sizes.values()))
    result.aborted_uploads = _abort_unfinished(client, target)
    remote = _remote(client, target)
    missing = [f.path for f in snapshot.files if remote.get(f.path) != sizes[f.path]]
    total = sum(sizes[p] for p in missing)
    done = 0
    lock = threading.Lock()
    now = time.time()
    db.executemany(
        "insert or replace into published_files(target, path, size, state, at) values (?,?,?,?,?)",
        [(str(target), p, sizes[p], "uploading", now) for p in missing],
    )
    db.executemany(  # already whole in S3 (a killed run's last upload among them): done
        "insert into published_files(target, path, size, state, at) values (?,?,?,?,?) on conflict(target, path)"
        " do update set state = 'done', size = excluded.size, at = excluded.at where state <> 'done'",
        [(str(target), p, sizes[p], "done", now) for p in sizes if p not in missing],
    )

    def advance(count: int) -> None:
        nonlocal done
        with lock:
            done += count
            if progress is not None:
                progress(done, total)

    def one(path: str) -> str:
        try:
            _upload(client, target, layout.root / path, target.key(path), sizes[path], part_size, advance)
        except FileNotFoundError:
            raise _Retired from None
        crash_point("publish.uploaded")
        return path

    if progress is not None:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="publish") as pool:
        for path in pool.map(one, missing):
            db.execute(
                "update published_files set state = 'done', at = ? where target = ? and path = ?",
                (time.time(), str(target), path),
            )
            result.uploaded += 1
            result.uploaded_bytes += sizes[path]
    listing = _listing(snapshot, sizes)
    client.put_object(Bucket=target.bucket, Key=target.key(LISTING), Body=listing, ContentType="application/json")
    crash_point("publish.listed")
    retired = sorted(set(remote) - set(sizes))
    for start in range(0, len(retired), 1000):
        batch = retired[start : start + 1000]
        answer = client.delete_objects(
            Bucket=target.bucket, Delete={"Objects": [{"Key": target.key(p)} for p in batch], "Quiet": True}
        )
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise AnalyzerError(
                f"{target}: deleting {first.get('Key')} failed: {first.get('Code')} "
                f"({len(errors)} of {len(batch)} not deleted; the next run tries again)"
            )
        db.executemany("delete from published_files where target = ? and path = ?", [(str(target), p) for p in batch])
        result.deleted += len(batch)
    db.execute(
        "delete from published_files where target = ? and path not in (select value from json_each(?))",
        (str(target), json.dumps(list(sizes))),
    )
    db.execute(
        "insert into publications(target, at, files, bytes, uploaded, deleted) values (?,?,?,?,?,?)",
        (str(target), time.time(), result.files, result.bytes, result.uploaded, result.deleted),
    )
    return result
