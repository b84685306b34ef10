"""CloudTrail log objects in S3: layout-aware parallel listing and retried fetching.

Everything runs on an injected boto3 client or session (no module-level clients), so notebooks,
the CLI and the tests (a local S3 server reached through ``endpoint_url``) share one code path::

    from analyzer import ingest_objects
    from analyzer.sources.s3 import S3Source
    from analyzer.sources.window import Window
    from analyzer.timespec import parse_timespec

    source = S3Source.connect("s3://my-trail-bucket/org", profile="audit", accounts=["123456789012"])
    source.check()                                  # one clear error for a missing bucket, bad credentials...
    window = Window(parse_timespec("7d"), parse_timespec("now"))
    ingest_objects(source.objects(window), "ctdata", fetch_threads=32)

    S3Source(my_boto3_s3_client, "s3://my-trail-bucket")   # or bring your own client

:func:`analyzer.jobs.run_pull` adds the watermark (where the last pull ended) on top.

Digest files (``CloudTrail-Digest/``, beside ``CloudTrail/``) are listed for the same accounts,
regions and day folders, and fetched with their S3 metadata: ingest records them in the manifest
with their ``x-amz-meta-signature`` (they hold no events), so ``analyzer verify --data`` checks the
signatures of what was pulled. A region's digest folders are listed before its log folders: a
digest is delivered after the log files it lists, so every log file a listed digest names was
already there when the logs were listed (no log is taken for deleted because it came meanwhile).
"""

from __future__ import annotations

import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    ResponseStreamingError,
)

from analyzer.alerts.sanitize import secrets
from analyzer.errors import AnalyzerError
from analyzer.integrity.digest import DIGEST_FOLDER
from analyzer.integrity.record import DigestBytes
from analyzer.sources.layout import CLOUDTRAIL, Position, S3Location, date_prefixes, is_account, is_org, position
from analyzer.sources.window import Window

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

#: botocore's own attempts per request (standard retry mode: backoff with jitter, retry quota),
#: unless AWS_MAX_ATTEMPTS or the profile's max_attempts says otherwise.
DEFAULT_MAX_ATTEMPTS = 10
#: Our attempts around a whole call, for what botocore does not retry (a body cut off while
#: streaming) or gave up on (retry quota spent under sustained throttling).
CALL_ATTEMPTS = 4
DEFAULT_WORKERS = 32
DEFAULT_LIST_THREADS = 16
PROBE_ATTEMPTS = 3  # the fail-fast client of check(): an unreachable endpoint is known in seconds
QUEUE_PAGES = 256  # listed pages waiting for the consumer (bounded: listing a year must not fill memory)

FATAL_CODES = {
    "NoSuchBucket": "no such bucket",
    "InvalidAccessKeyId": "credentials rejected",
    "SignatureDoesNotMatch": "credentials rejected",
    "ExpiredToken": "credentials expired",
    "InvalidToken": "credentials rejected",
    "TokenRefreshRequired": "credentials expired",
    "InvalidBucketName": "invalid bucket name",
    "PermanentRedirect": "the bucket is in another region (set AWS_REGION to the bucket's region)",
    "AuthorizationHeaderMalformed": "the bucket is in another region (set AWS_REGION to the bucket's region)",
}
DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
LIST, GET = "s3:ListBucket", "s3:GetObject"  # the two permissions a pull needs
TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests",
    "RequestLimitExceeded", "ServiceUnavailable", "InternalError", "RequestTimeout", "500", "502", "503", "504",
}
TRANSIENT_ERRORS = (ConnectionClosedError, ReadTimeoutError, ResponseStreamingError, IncompleteReadError,
                    HTTPClientError)
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound)
UNREACHABLE_ERRORS = (EndpointConnectionError, ConnectTimeoutError)


class FetchError(OSError):
    """An object that could not be read; the pipeline records it as failed, the run goes on."""


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(error.get("Code") or status or "") or None
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth another try: throttling, 5xx, timeouts, connections cut while talking."""
    if isinstance(exc, ClientError):
        return error_code(exc) in TRANSIENT_CODES
    return isinstance(exc, TRANSIENT_ERRORS) and not isinstance(exc, UNREACHABLE_ERRORS)


def is_denied(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in DENIED_CODES


def fatal_message(exc: BaseException, where: str) -> str | None:
    """One line for an error that makes the whole pull pointless (or None if it is not one)."""
    code = error_code(exc)
    if code in FATAL_CODES:
        detail = exc.response.get("Error", {}).get("Message") if isinstance(exc, ClientError) else None
        detail = secrets(detail) if detail else None  # S3 may echo the signed request: tokens, key ids
        return f"{where}: {FATAL_CODES[code]} ({code}{': ' + detail if detail else ''})"
    if isinstance(exc, CREDENTIAL_ERRORS):
        return (f"{where}: no usable AWS credentials ({secrets(exc)}); set AWS_PROFILE or --profile, "
                "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, UNREACHABLE_ERRORS):
        return f"{where}: cannot reach S3 ({secrets(exc)})"  # an endpoint URL's user info is not printed
    return None


def describe(exc: BaseException, permission: str) -> str:
    """A short, single-line reason for a failed request; a denial names the ``permission`` it needs."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = secrets(exc.response.get("Error", {}).get("Message") or "")
        if code == "PreconditionFailed":
            return "changed since it was listed (the next pull fetches the new version)"
        if code in ("NoSuchKey", "404"):
            return "deleted since it was listed"
        if code in DENIED_CODES:
            return f"access denied (needs {permission}): {code}{': ' + message if message else ''}"
        return f"{code}: {message}" if message else secrets(code)
    return f"{type(exc).__name__}: {secrets(exc)}"


# -- clients ------------------------------------------------------------------------------------
def make_session(profile: str | None = None) -> boto3.Session:
    """A boto3 session on the standard credential chain (``--profile`` or AWS_PROFILE)."""
    try:
        return boto3.Session(profile_name=profile)
    except ProfileNotFound as exc:
        raise AnalyzerError(f"AWS profile not found: {exc}") from None


def make_client(
    session: boto3.Session | None = None,
    *,
    endpoint_url: str | None = None,
    bucket: str | None = None,
    region: str | None = None,
    pool: int = DEFAULT_WORKERS + DEFAULT_LIST_THREADS,
    max_attempts: int | None = None,
    connect_timeout: float = 10,
    read_timeout: float = 60,
) -> S3Client:
    """An S3 client for pulling: standard-mode retries with enough attempts to ride out throttling,
    and a connection pool as large as the number of threads using it (else they queue for sockets).

    ``endpoint_url`` overrides AWS_ENDPOINT_URL/AWS_ENDPOINT_URL_S3 (which boto3 reads otherwise).
    The client's region: ``region``, else the session's (AWS_REGION, the profile), else the
    ``bucket``'s own region.
    """
    session = session or boto3.Session()
    configured = session._session.get_config_variable("max_attempts")
    attempts = max_attempts or (int(configured) if configured else DEFAULT_MAX_ATTEMPTS)
    mode = session._session.get_config_variable("retry_mode")
    config = Config(
        retries={"mode": "adaptive" if mode == "adaptive" else "standard", "total_max_attempts": attempts},
        max_pool_connections=max(pool, 1),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        tcp_keepalive=True,
        user_agent_extra="analyzer-pull",
    )
    region = region or session.region_name
    client: S3Client = session.client("s3", region_name=region or "us-east-1", endpoint_url=endpoint_url,
                                      config=config)
    if region is None and bucket and client.meta.endpoint_url.endswith("amazonaws.com"):
        located = _bucket_region(client, bucket)
        if located and located != "us-east-1":
            client = session.client("s3", region_name=located, endpoint_url=endpoint_url, config=config)
    client.meta.events.register("before-parse.s3.ListObjectsV2", _drop_last_modified)
    return client


_LAST_MODIFIED = re.compile(rb"<LastModified>[^<]*</LastModified>")


def _drop_last_modified(response_dict: dict[str, Any], **_: Any) -> None:
    """A pull never reads LastModified, and botocore's parsing of it (dateutil) is about a third of
    the CPU a listing costs: strip it from ListObjectsV2 bodies before they are parsed."""
    body = response_dict.get("body")
    if isinstance(body, bytes) and b"<LastModified>" in body:
        response_dict["body"] = _LAST_MODIFIED.sub(b"", body)


def _bucket_region(client: S3Client, bucket: str) -> str | None:
    """The bucket's region from HeadBucket's ``x-amz-bucket-region`` (sent even on 301/403)."""
    try:
        response: Any = client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        response = exc.response
    except BotoCoreError:
        return None
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return headers.get("x-amz-bucket-region")


# -- objects --------------------------------------------------------------------------------------
@dataclass
class PullCounters:
    """What listing and fetching have done so far; read live by progress displays."""

    prefixes_listed: int = 0
    objects_listed: int = 0  # log objects (digests are counted apart: they hold no events)
    objects_fetched: int = 0
    bytes_fetched: int = 0  # logs and digests
    digests_listed: int = 0
    digests_fetched: int = 0
    read_failures: int = 0
    accounts: set[str] = field(default_factory=set)
    regions: set[str] = field(default_factory=set)
    orgs: set[str] = field(default_factory=set)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (s3://bucket/prefix, reason)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def saw(self, account: str, region: str) -> None:
        with self._lock:
            self.accounts.add(account)
            self.regions.add(region)

    def problem(self, url: str, reason: str) -> None:
        with self._lock:
            self.problems.append((url, reason))

    @property
    def complete(self) -> bool:
        """Everything in the window was listed and every fetch succeeded: safe to move the watermark."""
        return not self.problems and not self.read_failures


@dataclass(frozen=True)
class S3Object:
    """One log or digest object (a :class:`~analyzer.sources.base.SourceObject`); ``version`` is the ETag."""

    uri: str
    size: int
    version: str
    key: str
    source: S3Source = field(repr=False, compare=False)
    digest: bool = False  # a digest file: read with its S3 metadata (its signature)

    def read(self) -> bytes:
        return self.source.fetch(self)


class S3Source:
    """The CloudTrail logs under one ``s3://bucket[/prefix]``, filtered by account, region and org."""

    def __init__(
        self,
        client: S3Client,
        location: S3Location | str,
        *,
        accounts: Iterable[str] = (),
        regions: Iterable[str] = (),
        org_id: str | None = None,
        list_threads: int = DEFAULT_LIST_THREADS,
        keep_raw: Path | str | None = None,
        digests: bool = True,
    ) -> None:
        self.client = client
        self.location = location if isinstance(location, S3Location) else S3Location.parse(location)
        self.accounts = frozenset(accounts)
        self.regions = frozenset(regions)
        for account in self.accounts:
            if not is_account(account):
                raise AnalyzerError(f"{account!r}: an account id is 12 digits")
        if org_id is not None and not is_org(org_id):
            raise AnalyzerError(f"{org_id!r}: an organization id looks like o-abcd123456")
        self.org_id = org_id
        self.list_threads = max(1, list_threads)
        self.keep_raw = Path(keep_raw) if keep_raw else None
        self.digests = digests  # list and fetch the digest files too (for analyzer verify --data)
        self.start = position(self.location.prefix)
        self.counters = PullCounters()
        self.probe: S3Client | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        session: boto3.Session | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        workers: int = DEFAULT_WORKERS,
        **options: Any,
    ) -> S3Source:
        """A source with clients of its own from ``session`` (or ``profile``): a connection pool for
        ``workers`` downloads plus the listing threads, and a fail-fast client for :meth:`check`.
        ``options``: accounts, regions, org_id, keep_raw."""
        session = session or make_session(profile)
        location = S3Location.parse(url)
        list_threads = min(workers, DEFAULT_LIST_THREADS)
        client = make_client(session, endpoint_url=endpoint_url, bucket=location.bucket, pool=workers + list_threads)
        source = cls(client, location, list_threads=list_threads, **options)
        source.probe = make_client(session, endpoint_url=endpoint_url, region=client.meta.region_name, pool=1,
                                   max_attempts=PROBE_ATTEMPTS, connect_timeout=5)
        return source

    @property
    def scope(self) -> str:
        """Names what this source covers: the manifest keeps one watermark per scope."""
        filters = [f"account={','.join(sorted(self.accounts))}" if self.accounts else "",
                   f"region={','.join(sorted(self.regions))}" if self.regions else "",
                   f"org={self.org_id}" if self.org_id else ""]
        query = "&".join(f for f in filters if f)
        return f"pull.watermark:{self.location}" + (f"?{query}" if query else "")

    @property
    def first_prefix(self) -> str:
        """The prefix the listing starts from: every request of a pull stays under it (or, for a
        prefix inside ``CloudTrail/``, under it and its ``CloudTrail-Digest/`` sibling), so an IAM
        policy may restrict s3:ListBucket with an ``s3:prefix`` condition such as ``AWSLogs/*``."""
        pos = self.start
        if pos.account is not None:
            return pos.account_root(pos.account) + (f"{pos.region}/{pos.date_prefix}" if pos.region else "")
        org = pos.org or self.org_id
        return f"{pos.awslogs}{org}/" if org else pos.awslogs

    # -- checks ---------------------------------------------------------------------------------
    def check(self, client: S3Client | None = None) -> None:
        """Fail fast, in one line, on a missing bucket, bad credentials, an unreachable endpoint or
        a denied prefix. Uses ``client``, else the fail-fast client of :meth:`connect`, else the
        source's own; transient errors pass (the pull's own retries deal with them)."""
        try:
            (client or self.probe or self.client).list_objects_v2(
                Bucket=self.location.bucket, Prefix=self.first_prefix, Delimiter="/", MaxKeys=1
            )
        except Exception as exc:
            if is_transient(exc):
                return
            fatal = fatal_message(exc, str(self.location))
            raise AnalyzerError(fatal or f"{self.location.url(self.first_prefix)}: {describe(exc, LIST)}") from None

    # -- listing --------------------------------------------------------------------------------
    def objects(self, window: Window, *, now: datetime | None = None) -> Iterator[S3Object]:
        """Every log object of ``window`` under the location, listed in parallel by prefix, and
        (unless ``digests`` is off) the digest objects of the same day folders.

        Yields objects as listing pages arrive (so fetching starts before listing ends). A denied
        or failing prefix is recorded in ``counters.problems`` and skipped; a fatal error (no such
        bucket, bad credentials, endpoint unreachable) raises :class:`AnalyzerError`.
        """
        self.counters = PullCounters()
        run = _ListRun(self, window, now)
        yield from run.results()

    # -- fetching -------------------------------------------------------------------------------
    def call(self, call: Callable[[], T]) -> T:
        """``call()``, tried again with backoff and jitter on transient errors botocore let through
        (a body cut off while streaming, or its retry quota spent under sustained throttling)."""
        for attempt in range(CALL_ATTEMPTS):
            try:
                return call()
            except Exception as exc:
                if attempt + 1 >= CALL_ATTEMPTS or not is_transient(exc):
                    raise
                time.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter
        raise AssertionError("unreachable")

    def fetch(self, obj: S3Object) -> bytes:
        """The object's bytes at the listed ETag (If-Match: what the manifest records is what was read);
        a digest's as :class:`~analyzer.integrity.record.DigestBytes`, with its S3 signature."""

        def get() -> bytes:
            response = self.client.get_object(Bucket=self.location.bucket, Key=obj.key,
                                              IfMatch=f'"{obj.version}"')
            body = response["Body"]
            try:
                data = body.read()
            finally:
                body.close()
            if obj.digest:
                return DigestBytes.from_metadata(data, response.get("Metadata") or {})
            return data

        try:
            data = self.call(get)
        except Exception as exc:
            self.counters.add(read_failures=1)
            raise FetchError(describe(exc, GET)) from None
        if obj.digest:
            self.counters.add(digests_fetched=1, bytes_fetched=len(data))
        else:
            self.counters.add(objects_fetched=1, bytes_fetched=len(data))
        if self.keep_raw is not None:
            _keep(self.keep_raw, self.location.bucket, obj.key, data)
        return data


class _ListRun:
    """One parallel listing: discovery tasks fan out into listing tasks on a thread pool and feed
    pages to the consuming generator through a bounded queue."""

    def __init__(self, source: S3Source, window: Window, now: datetime | None) -> None:
        self.source = source
        self.client = source.client
        self.bucket = source.location.bucket
        self.counters = source.counters
        self.window = window
        self.now = now
        self.pool = ThreadPoolExecutor(source.list_threads, thread_name_prefix="s3-list")
        self.queue: queue.Queue[list[S3Object] | BaseException | None] = queue.Queue(QUEUE_PAGES)
        self.pending = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def results(self) -> Iterator[S3Object]:
        self.submit(self.start)
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            self.stop.set()
            self.pool.shutdown(wait=False, cancel_futures=True)

    # -- task plumbing --------------------------------------------------------------------------
    def submit(self, task: Callable[..., None], *args: Any) -> None:
        with self.lock:
            self.pending += 1
        self.pool.submit(self._run, task, *args)

    def _run(self, task: Callable[..., None], *args: Any) -> None:
        try:
            if not self.stop.is_set():
                task(*args)
        except BaseException as exc:
            self._put(exc)
        finally:
            with self.lock:
                self.pending -= 1
                finished = self.pending == 0
            if finished:
                self._put(None)

    def _put(self, item: list[S3Object] | BaseException | None) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _pages(self, prefix: str, *, delimiter: bool, root: bool = False) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages of ``prefix``; a denied or failing prefix becomes a problem (or, for
        the starting prefix, and for fatal errors, an AnalyzerError)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            params["Delimiter"] = "/"
        where = self.source.location.url(prefix)
        self.counters.add(prefixes_listed=1)
        while not self.stop.is_set():
            try:
                page: dict[str, Any] = dict(self.source.call(lambda: self.client.list_objects_v2(**params)))
            except Exception as exc:
                fatal = fatal_message(exc, where)
                if fatal or (root and is_denied(exc)):
                    raise AnalyzerError(fatal or f"{where}: {describe(exc, LIST)}") from None
                self.counters.problem(where, describe(exc, LIST))
                return
            yield page
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _children(self, prefix: str, *, root: bool = False) -> list[str]:
        """Names of the 'folders' directly under ``prefix``."""
        names: list[str] = []
        problems = len(self.counters.problems)
        for page in self._pages(prefix, delimiter=True, root=root):
            names.extend(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
        if root and not names and len(self.counters.problems) == problems:
            raise AnalyzerError(
                f"{self.source.location.url(prefix)}: no CloudTrail logs here; give the trail's S3 key "
                "prefix (s3://BUCKET/PREFIX, the part before AWSLogs/) or check --org-id"
            )
        return names

    # -- the layout, level by level -------------------------------------------------------------
    def start(self) -> None:
        pos, source = self.source.start, self.source
        if pos.region is not None:
            if pos.account is not None and self._wanted_account(pos.account) and self._wanted_region(pos.region):
                self.dates(pos, pos.account, pos.region, root=True)
        elif pos.account is not None:
            if self._wanted_account(pos.account):
                self.regions(pos, pos.account, root=True)
        elif pos.org is not None:
            if source.org_id in (None, pos.org):
                self.org(pos, root=True)
        elif source.org_id is not None:
            self.org(replace(pos, org=source.org_id), root=True)
        else:
            self.awslogs(pos)

    def awslogs(self, pos: Position) -> None:
        for name in self._children(pos.awslogs, root=True):
            if is_org(name):
                self.submit(self.org, replace(pos, org=name))
            elif is_account(name) and self._wanted_account(name):
                self.submit(self.regions, pos, name)

    def org(self, pos: Position, root: bool = False) -> None:
        assert pos.org is not None
        self.counters.orgs.add(pos.org)
        for name in self._children(f"{pos.awslogs}{pos.org}/", root=root):
            if is_account(name) and self._wanted_account(name):
                self.submit(self.regions, pos, name)

    def regions(self, pos: Position, account: str, root: bool = False) -> None:
        """The regions of one account: those with log folders, and (for the digests) those with
        digest folders (a region whose every log file was deleted still has its digests)."""
        logs = self._children(pos.account_root(account), root=root)
        digests = self._children(digest_root(pos, account)) if self.source.digests else []
        for region in dict.fromkeys([*logs, *digests]):
            if self._wanted_region(region):
                self.submit(self.dates, pos, account, region, False, region in logs, region in digests)

    def dates(self, pos: Position, account: str, region: str, root: bool = False, logs: bool = True,
              digests: bool = True) -> None:
        """Only the window's date folders of one account and region: never the whole region. The
        digest folders are listed first, here, then the log folders in parallel (see the module)."""
        self.counters.saw(account, region)
        days = date_prefixes(self.window, now=self.now, within=pos.date_prefix)
        if digests and self.source.digests:
            for prefix in days:
                self.list_objects(f"{digest_root(pos, account)}{region}/{prefix}", digest=True)
        if logs:
            for prefix in days:
                self.submit(self.list_objects, f"{pos.account_root(account)}{region}/{prefix}", root)

    def list_objects(self, prefix: str, root: bool = False, digest: bool = False) -> None:
        make = self.source.location.url
        for page in self._pages(prefix, delimiter=False, root=root):
            batch = [
                S3Object(make(item["Key"]), int(item.get("Size", 0)), str(item.get("ETag", "")).strip('"'),
                         item["Key"], self.source, digest)
                for item in page.get("Contents", [])
                if not item["Key"].endswith("/")  # "folder" placeholder objects
            ]
            if batch:
                self.counters.add(**{"digests_listed" if digest else "objects_listed": len(batch)})
                self._put(batch)

    # -- filters ------------------------------------------------------------------------------
    def _wanted_account(self, account: str) -> bool:
        return not self.source.accounts or account in self.source.accounts

    def _wanted_region(self, region: str) -> bool:
        return not self.source.regions or region in self.source.regions


def digest_root(pos: Position, account: str) -> str:
    """``…/ACCOUNT/CloudTrail-Digest/``: the digest folders beside the account's ``CloudTrail/``."""
    return pos.account_root(account).removesuffix(f"{CLOUDTRAIL}/") + f"{DIGEST_FOLDER}/"


def _keep(root: Path, bucket: str, key: str, data: bytes) -> None:
    """A raw copy under ``root/bucket/key`` (written whole, then renamed: never a partial file)."""
    parts = [p if p not in ("", ".", "..") else "_" for p in PurePosixPath(key).parts]
    target = root.joinpath(bucket, *parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
