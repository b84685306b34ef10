"""Where digests and log files are read from: a trail's bucket, or a copy of it on a disk.

Both stores answer the same questions for :mod:`analyzer.jobs.verify`: the digest keys of a window,
one digest (with its S3 signature, when it has one), a named previous digest, the SHA-256 of one
log file, and the log files of the window (for those no digest lists). The S3 store reuses the
pull's :class:`~analyzer.sources.s3.S3Source`: its client (retries, pool, region), its filters
(account, region, organization) and its layout-aware listing of the log day folders; digests sit
beside the logs, in ``CloudTrail-Digest/REGION/YYYY/MM/DD/``, listed here day folder by day folder.

A copy on a disk has the S3 key layout below some root (``aws s3 sync``, ``pull --keep-raw``'s
``DIR/BUCKET/KEY``): objects are matched by their key from ``AWSLogs/`` on, and a copy keeps no S3
metadata, so no signature comes with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.errors import AnalyzerError
from analyzer.integrity.chain import FoundDigest, LogResult
from analyzer.integrity.digest import (
    DIGEST_FOLDER,
    DigestFormatError,
    layout_tail,
    log_name_time,
    parse_digest,
    parse_name,
)
from analyzer.integrity.hashing import STEP, HashError, _Hasher, file_sha256
from analyzer.sources.layout import CLOUDTRAIL, date_prefixes, is_account, is_org
from analyzer.window import Window

if TYPE_CHECKING:
    from analyzer.sources.s3 import S3Source

#: A digest ends on the hour after the last log it lists: a window's digests end up to an hour past it.
DIGEST_SPILL_HOURS = 1
MAX_DIGEST_READ = 64 * 1024 * 1024


def in_window(end: datetime | None, window: Window | None) -> bool:
    """A digest ending at ``end`` belongs to ``window`` (its end in [since, until + 1h], as validate-logs)."""
    if window is None:
        return True
    if end is None:
        return False
    from datetime import timedelta

    if window.since is not None and end < window.since:
        return False
    return window.until is None or end <= window.until + timedelta(hours=DIGEST_SPILL_HOURS)


class S3Store:
    """A trail's bucket (and prefix), through an :class:`~analyzer.sources.s3.S3Source`."""

    online = True

    def __init__(self, source: S3Source, *, workers: int = 16) -> None:
        self.source = source
        self.bucket = source.location.bucket
        self.workers = max(1, workers)
        self.problems: list[tuple[str, str]] = []
        self.regions: set[str] = set()

    def __str__(self) -> str:
        return str(self.source.location)

    def uri(self, bucket: str | None, key: str) -> str:
        return f"s3://{bucket or self.bucket}/{key}"

    # -- digests --------------------------------------------------------------------------------
    def digest_keys(self, window: Window, *, now: datetime | None = None) -> list[str]:
        """Every digest key of the window (its end time from its name), listed by day folder in parallel."""
        from analyzer.sources.s3 import LIST, describe, fatal_message

        since, until = window.span()
        listing = Window(since, until)
        roots = self._roots()
        days = date_prefixes(listing, now=now or datetime.now(UTC), within=self.source.start.date_prefix)
        prefixes = [f"{root}{region}/{day}" for root, region in roots for day in days]
        keys: list[str] = []

        def list_prefix(prefix: str) -> list[str]:
            found: list[str] = []
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            while True:
                try:
                    page = self.source.call(lambda: self.source.client.list_objects_v2(**params))
                except Exception as exc:
                    fatal = fatal_message(exc, self.uri(None, prefix))
                    if fatal:
                        raise AnalyzerError(fatal) from None
                    self.problems.append((self.uri(None, prefix), describe(exc, LIST)))
                    return found
                found.extend(item["Key"] for item in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    return found
                params["ContinuationToken"] = page["NextContinuationToken"]

        with ThreadPoolExecutor(min(self.workers, 16), thread_name_prefix="verify-list") as pool:
            for found in pool.map(list_prefix, prefixes):
                keys.extend(k for k in found if in_window(getattr(parse_name(k), "end", None), window))
        return sorted(keys)

    def _children(self, prefix: str) -> list[str]:
        from analyzer.sources.s3 import LIST, describe, fatal_message

        names: list[str] = []
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            try:
                page = self.source.call(lambda: self.source.client.list_objects_v2(**params))
            except Exception as exc:
                fatal = fatal_message(exc, self.uri(None, prefix))
                if fatal:
                    raise AnalyzerError(fatal) from None
                self.problems.append((self.uri(None, prefix), describe(exc, LIST)))
                return names
            names.extend(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                return names
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _roots(self) -> list[tuple[str, str]]:
        """(``…/ACCOUNT/CloudTrail-Digest/``, region) of every account and region in scope."""
        pos, source = self.source.start, self.source
        accounts: list[tuple[str | None, str]] = []
        if pos.account is not None:
            accounts = [(pos.org, pos.account)]
        else:
            orgs = [pos.org or source.org_id] if (pos.org or source.org_id) else []
            if not orgs:
                for name in self._children(pos.awslogs):
                    if is_org(name):
                        orgs.append(name)
                    elif is_account(name):
                        accounts.append((None, name))
            for org in orgs:
                accounts.extend((org, name) for name in self._children(f"{pos.awslogs}{org}/") if is_account(name))
        accounts = [(o, a) for o, a in accounts if (not source.accounts or a in source.accounts)
                    and (source.org_id is None or o == source.org_id)]
        roots: list[tuple[str, str]] = []
        for org, account in accounts:
            root = f"{pos.awslogs}{org + '/' if org else ''}{account}/{DIGEST_FOLDER}/"
            regions = [pos.region] if pos.region else self._children(root)
            roots.extend((root, r) for r in regions if not source.regions or r in source.regions)
        self.regions.update(r for _, r in roots)
        return roots

    def read_digest(self, key: str, bucket: str | None = None) -> FoundDigest | None:
        """One digest with its ``x-amz-meta-signature`` (None: no such key)."""
        from analyzer.sources.s3 import GET, describe, error_code

        bucket = bucket or self.bucket
        uri = self.uri(bucket, key)

        def get() -> tuple[bytes, dict[str, str]]:
            response = self.source.client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                return body.read(MAX_DIGEST_READ + 1), dict(response.get("Metadata") or {})
            finally:
                body.close()

        try:
            data, metadata = self.source.call(get)
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            return FoundDigest(uri, key, bucket, error=f"cannot read: {describe(exc, GET)}")
        metadata = {k.lower(): v for k, v in metadata.items()}
        found = FoundDigest(uri, key, bucket, signature=metadata.get("signature"),
                            signature_algorithm=metadata.get("signature-algorithm"))
        try:
            return replace(found, digest=parse_digest(data))
        except DigestFormatError as exc:
            return replace(found, error=str(exc))

    def resolve(self, bucket: str | None, key: str) -> FoundDigest | None:
        return self.read_digest(key, bucket)

    # -- logs -----------------------------------------------------------------------------------
    def log_result(self, bucket: str, key: str) -> LogResult:
        """The SHA-256 of one log object's uncompressed content, streamed (or why there is none)."""
        from analyzer.sources.s3 import GET, describe, error_code

        def get() -> str:
            response = self.source.client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            hasher = _Hasher()
            try:
                while chunk := body.read(STEP):
                    hasher.feed(chunk)
            finally:
                body.close()
            return hasher.hexdigest()

        try:
            return LogResult(sha256=self.source.call(get))
        except HashError as exc:
            return LogResult(corrupt=str(exc))
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return LogResult(missing=True)
            return LogResult(error=describe(exc, GET))

    def log_keys(self, window: Window, *, now: datetime | None = None) -> Iterator[tuple[str, str, str]]:
        """(bucket, key, uri) of every log object of the window: the pull's own listing."""
        for obj in self.source.objects(window, now=now):
            yield self.bucket, obj.key, obj.uri
        self.problems.extend(self.source.counters.problems)


def _plain(tail: str) -> str:
    return tail.removesuffix(".gz")


class LocalStore:
    """A copy in the S3 key layout below ``root``: no S3 metadata, so no signature of its own."""

    online = False

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise AnalyzerError(f"{self.root}: no such directory")
        self.problems: list[tuple[str, str]] = []
        self.regions: set[str] = set()
        self.files: dict[str, Path] = {}  # layout tail → file
        self.base = str(self.root) + "/"  # where AWSLogs/ is (found below)
        root = str(self.root)
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_analyzer")))
            tail = layout_tail(folder.replace(os.sep, "/") + "/")  # DIR may be the AWSLogs folder itself
            if not tail:
                continue
            self.base = folder.replace(os.sep, "/")[: -len(tail) + 1 or None] if not self.files else self.base
            for name in sorted(names):
                if not name.startswith("."):
                    self.files.setdefault(tail + name, Path(folder, name))

    def __str__(self) -> str:
        return str(self.root)

    def _file(self, key: str) -> Path | None:
        """The copy of ``key``: at its path below AWSLogs/, or decompressed beside it (``x.json`` for ``x.json.gz``)."""
        tail = layout_tail(key)
        return self.files.get(tail) or (self.files.get(tail[:-3]) if tail.endswith(".gz") else None)

    def uri(self, bucket: str | None, key: str) -> str:
        found = self._file(key)
        return str(found) if found is not None else self.base + (layout_tail(key) or key)

    def digest_keys(self, window: Window | None, *, now: datetime | None = None) -> list[str]:
        keys = [tail for tail in self.files if f"/{DIGEST_FOLDER}/" in tail and parse_name(tail) is not None
                and in_window(parse_name(tail).end, window)]  # type: ignore[union-attr]
        self.regions.update(parse_name(k).region for k in keys)  # type: ignore[union-attr]
        return sorted(keys)

    def read_digest(self, key: str, bucket: str | None = None) -> FoundDigest | None:
        path = self._file(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            return FoundDigest(str(path), key, None, error=f"cannot read: {exc.strerror or exc}")
        try:
            digest = parse_digest(data)
        except DigestFormatError as exc:
            return FoundDigest(str(path), key, None, error=str(exc))
        # In place when the copy's path below AWSLogs/ is the one it was delivered to (or that, decompressed).
        canonical = digest.key if _plain(layout_tail(digest.key)) == _plain(layout_tail(key)) else key
        return FoundDigest(str(path), canonical, None, digest=digest)

    def resolve(self, bucket: str | None, key: str) -> FoundDigest | None:
        return self.read_digest(key, bucket)

    def log_result(self, bucket: str, key: str) -> LogResult:
        path = self._file(key)
        if path is None:
            return LogResult(missing=True)
        try:
            return LogResult(sha256=file_sha256(path))
        except HashError as exc:
            return LogResult(corrupt=str(exc))
        except OSError as exc:
            return LogResult(error=f"cannot read: {exc.strerror or exc}")

    def log_keys(self, window: Window | None, *, now: datetime | None = None) -> Iterator[tuple[str, str, str]]:
        for tail, path in self.files.items():
            if f"/{CLOUDTRAIL}/" not in tail:
                continue
            named = log_name_time(tail)
            if named is None:
                continue
            when = named[2]
            if window is not None and ((window.since and when < window.since)
                                       or (window.until and when >= window.until)):
                continue
            yield "", tail, str(path)


class DatasetStore:
    """The digests a dataset recorded as it ingested them (``verify --data``): its own history re-checked.

    The chain is checked from the recorded digests: their hashes and, for digests pulled from S3
    (recorded with their ``x-amz-meta-signature``), their signatures, as ``verify s3://`` checks
    them; a digest ingested from a copy has none, and its signature is the one the next digest
    repeats. A listed log file is looked up among the objects the dataset ingested and its SHA-256
    compared with the one ingest recorded of its uncompressed content (``objects.content_sha256``):
    a log file changed at the source and ingested again is ``log-file-modified``, one never ingested
    ``log-file-deleted``. Objects ingested before the dataset kept that hash are counted as "content
    hash not recorded", never passed as valid. Every ingested log file must be listed by a digest.
    """

    def __init__(self, data: Path | str) -> None:
        from analyzer.integrity.record import from_record
        from analyzer.store.dataset import Dataset

        self.root = Path(data).absolute()
        if not (self.root / "_analyzer").is_dir():
            raise AnalyzerError(f"{self.root}: not a dataset (no _analyzer/ folder)")
        self.problems: list[tuple[str, str]] = []
        self.regions: set[str] = set()
        with Dataset(self.root, create=False) as dataset:
            recorded = dataset.manifest.digests()
            objects = [(row["uri"], row["status"], row["content_sha256"], row["reason"])
                       for row in dataset.manifest.objects()]
        self.digests: dict[str, FoundDigest] = {}
        for uri, record in recorded:
            if record.from_s3 and uri.startswith("s3://"):  # pulled: where it was read, and its S3 signature
                bucket, _, key = uri.removeprefix("s3://").partition("/")
                found = FoundDigest(uri, key, bucket, digest=from_record(record), signature=record.signature)
                self.digests.setdefault(layout_tail(key), found)
            else:
                found = FoundDigest(uri, record.key, None, digest=from_record(record), signature=None)
                self.digests.setdefault(layout_tail(record.key), found)
        #: signed digests (pulled from S3): public keys are worth asking for
        self.signed = any(f.bucket is not None for f in self.digests.values())
        self.online = bool(self.digests) and all(f.bucket is not None for f in self.digests.values())
        self.ingested: dict[str, str] = {}  # layout tail of every ingested log object → its uri
        self.hashes: dict[str, str | None] = {}  # layout tail → SHA-256 of its content (None: not recorded)
        self.failed: dict[str, str] = {}  # layout tail → why it was never ingested
        for uri, status, sha256, reason in objects:
            tail = layout_tail(uri.removeprefix("s3://"))
            if not tail or f"/{CLOUDTRAIL}/" not in tail:
                continue
            if status in ("ingested", "skipped"):
                self.ingested.setdefault(tail, uri)
                self.hashes.setdefault(tail, sha256)
            elif status == "failed":
                self.failed.setdefault(tail, reason or "failed")

    def __str__(self) -> str:
        return f"the dataset {self.root}"

    def uri(self, bucket: str | None, key: str) -> str:
        found = self.digests.get(layout_tail(key))
        if found is not None:
            return found.uri
        return self.ingested.get(layout_tail(key)) or (f"s3://{bucket}/{key}" if bucket else key)

    def digest_keys(self, window: Window | None, *, now: datetime | None = None) -> list[str]:
        keys = [f.key for f in self.digests.values() if in_window(f.end, window)]
        self.regions.update(n.region for n in map(parse_name, keys) if n is not None)
        return sorted(keys)

    def read_digest(self, key: str, bucket: str | None = None) -> FoundDigest | None:
        return self.digests.get(layout_tail(key))

    def resolve(self, bucket: str | None, key: str) -> FoundDigest | None:
        return self.read_digest(key, bucket)

    def log_result(self, bucket: str, key: str) -> LogResult:
        tail = layout_tail(key)
        if tail in self.ingested:
            sha256 = self.hashes.get(tail)
            return LogResult(sha256=sha256) if sha256 else LogResult(present=True)
        if tail in self.failed:  # it was there: its ingest failed (analyzer failures), nothing to compare
            return LogResult(error=f"not ingested (its ingest failed: {self.failed[tail]})")
        return LogResult(missing=True)

    def log_keys(self, window: Window | None, *, now: datetime | None = None) -> Iterator[tuple[str, str, str]]:
        for tail, uri in self.ingested.items():
            named = log_name_time(tail)
            if named is None:
                continue
            when = named[2]
            if window is not None and ((window.since and when < window.since)
                                       or (window.until and when >= window.until)):
                continue
            yield "", tail, uri
