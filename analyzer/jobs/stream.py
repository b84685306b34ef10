"""One batch of notifications, settled: ingest their objects, detect over the new events, announce.

Shared by the queue consumer (:mod:`analyzer.jobs.watch`: ``analyzer watch``) and the Lambda/webhook
entry point (:func:`analyzer.jobs.watch.handle_s3_event`), so that both do exactly what
``analyzer pull`` and ``analyzer nightly`` do, on a few objects at a time:

1. **ingest**: the objects the messages name (duplicates once), fetched at the ETag the notification
   gives (HeadObject when it gives none), into the same dataset and manifest as ``pull``: an object
   already ingested at that ETag is not fetched again, however often its notification comes;
2. **settle**: a message whose every object is in the manifest (ingested now, before, or given up by
   a person) or was skipped by its key is *done* (to delete); one with an object that failed is
   *failing*, with the reason (left to the queue's redrive policy); one that is no notification is
   *failing* too. Nothing is settled before the batch's commit;
3. **detect** over the new events' time range (the manifest knows each committed file's first and
   last event), each windowed detection reading its own lookback before it (the engine does);
4. **announce** through the alert state nightly uses (``alerts.sqlite``): an alert watch announced is
   not announced again by nightly, and what a notifier failed to send stays pending for the next
   batch or run;
5. **compact** the days whose small files are many or old (:func:`due_days`), so that a day
   ingested a file at a time still reads as fast as one ingested at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.alerts.notify import Delivery, Notifier, NotifyContext
from analyzer.alerts.shape import severity_rank
from analyzer.alerts.state import DEFAULT_GROWTH, AlertState, Pending, TrackedAlert
from analyzer.errors import AnalyzerError
from analyzer.ingest.decode import MAX_OBJECT_BYTES
from analyzer.ingest.pipeline import IngestStats, ingest_objects
from analyzer.integrity.digest import is_digest_key
from analyzer.sources.notifications import Notice, NotificationError, ObjectRef, parse_event, parse_message, unique
from analyzer.sources.s3 import GET, S3Object, S3Source, describe
from analyzer.store.compact import COMPACT_FILE_ROWS, CompactStats, compact
from analyzer.store.dataset import Dataset

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from analyzer.detect import Allowlist, Catalogue
    from analyzer.detect.params import Overrides
    from analyzer.jobs.verify import VerifyJob, VerifyResult
    from analyzer.window import Window

DEFAULT_COMPACT_FILES = 32
DEFAULT_COMPACT_AFTER = timedelta(minutes=30)
DEFAULT_FORGET_ALERTS_AFTER = timedelta(days=90)
#: What a compaction writes (analyzer.store.compact names its outputs so): not a small batch file.
COMPACTED_MARK = "-compacted-"
#: How long a batch waits for another writer (a nightly pull) to release the dataset.
WRITER_PATIENCE = 600.0
_CHUNK = 400
#: The S3 source's reasons speak of a listing; a watch was told of the object by a notification.
_NOTIFIED = (
    ("changed since it was listed (the next pull fetches the new version)",
     "changed since its notification (not at the ETag it names: the new version's own notification ingests it)"),
    ("deleted since it was listed", "no such object (deleted since its notification, or never there)"),
)


@dataclass(frozen=True)
class StreamSettings:
    """How a batch is ingested, detected, announced and compacted (``[watch]``, see :mod:`analyzer.settings`)."""

    fail_on: str = "high"
    renotify_growth: float = DEFAULT_GROWTH
    forget_alerts_after: timedelta = DEFAULT_FORGET_ALERTS_AFTER
    workers: int | None = 1  # a batch is small: decoding in this process beats starting workers
    fetch_threads: int = 8
    timeout: float | None = None  # seconds the detections may run
    max_object_bytes: int = MAX_OBJECT_BYTES
    compact_files: int = DEFAULT_COMPACT_FILES  # compact a day holding more files than this...
    compact_after: timedelta = DEFAULT_COMPACT_AFTER  # ... or whose oldest uncompacted file is this old


@dataclass
class Detection:
    """What to detect with: the catalogue, parameters and allowlist (None: the bundled catalogue)."""

    catalogue: Catalogue | None = None
    params: Overrides | None = None
    allowlist: Allowlist | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Item:
    """One message of a batch: ``key`` is what the caller settles it by (an SQS message, a Lambda
    record's messageId), ``body`` its text (or an already parsed event)."""

    key: Hashable
    body: str | bytes | Mapping[str, Any]
    received: int = 1  # how many times the queue has delivered it (ApproximateReceiveCount)


@dataclass
class BatchResult:
    """What a batch did, and what the caller should do with each message."""

    done: list[Hashable] = field(default_factory=list)  # every object landed or skipped: delete it
    failing: list[tuple[Hashable, str]] = field(default_factory=list)  # keep it (redrive policy), and why
    tests: int = 0  # s3:TestEvent messages (done)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why) not ingested
    objects: int = 0  # distinct objects the messages named
    landed: set[str] = field(default_factory=set)  # uris in the manifest at their ETag
    failed: dict[str, str] = field(default_factory=dict)  # uri → why it is not in the dataset
    stats: IngestStats = field(default_factory=IngestStats)
    since: datetime | None = None  # the new events' first and last eventTime
    until: datetime | None = None
    newest: datetime | None = None  # the newest object's creation time (for the lag)
    alerts: list[TrackedAlert] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    compaction: CompactStats | None = None
    verify: VerifyResult | None = None  # the digests' period verified ([watch] verify), when digests landed
    problems: list[str] = field(default_factory=list)  # detection or delivery trouble (one line each)
    fail_on: str = "high"

    @property
    def events(self) -> int:
        return self.stats.events

    @property
    def announced(self) -> list[TrackedAlert]:
        return [a for a in self.alerts if a.announced]

    @property
    def findings(self) -> int:
        """Announced alerts at or above ``fail_on``."""
        bar = severity_rank(self.fail_on)
        return sum(1 for a in self.announced if severity_rank(a.alert.get("severity")) >= bar)

    @property
    def failed_notifiers(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]


def parse(item: Item) -> Notice:
    """The notice in one message (raises :class:`NotificationError`)."""
    body = item.body
    return parse_event(body) if isinstance(body, Mapping) else parse_message(body)


def run_batch(
    items: Sequence[Item],
    data: Path | str,
    *,
    s3_client: S3Client,
    notifiers: Sequence[Notifier] = (),
    settings: StreamSettings | None = None,
    detection: Detection | None = None,
    now: Callable[[], datetime] | None = None,
    stop: threading.Event | None = None,
    verify: VerifyJob | None = None,
) -> BatchResult:
    """Settle ``items`` (see the module docstring). Raises :class:`AnalyzerError` only for what stops
    every batch (the dataset cannot be opened); everything else is in the result.

    ``verify`` (:func:`analyzer.jobs.verify.verify_job`, ``[watch] verify``): when the batch committed
    digest files, the log files they list that are not in the dataset yet are fetched (their own
    notifications may not have come yet: only one S3 no longer has is missing), then the digests'
    period is verified and the findings announced with the alerts."""
    settings = settings or StreamSettings()
    clock = now or (lambda: datetime.now(UTC))
    result = BatchResult(fail_on=settings.fail_on)
    notices: dict[int, Notice] = {}
    for index, item in enumerate(items):
        try:
            notice = parse(item)
        except NotificationError as exc:
            result.failing.append((item.key, f"not a notification: {exc}"))
            continue
        notices[index] = notice
        result.skipped += notice.skipped
        result.tests += notice.test
    refs = list(unique([ref for notice in notices.values() for ref in notice.objects]))
    result.objects = len({ref.uri for ref in refs})
    times = [ref.event_time for ref in refs if ref.event_time is not None]
    result.newest = max(times) if times else None
    if refs:
        _ingest(refs, data, s3_client, settings, result, stop)
    integrity: Window | None = None
    if verify is not None and result.landed:
        integrity, unlisted = _digests_landed(data, result.landed)
        if integrity is not None and unlisted:  # a listed log not in the dataset is only "deleted" if S3 says so
            _ingest(unlisted, data, s3_client, settings, result, stop)
            for ref in unlisted:
                result.failed.pop(ref.uri, None)  # no message named it; verify reports it (log-file-deleted)
    if result.landed:
        with Dataset(data) as dataset:
            result.since, result.until = _event_range(dataset, sorted(result.landed))
    for index, notice in notices.items():
        reasons = [f"{ref.uri}: {result.failed.get(ref.uri, 'not ingested')}" for ref in notice.objects
                   if ref.uri not in result.landed]
        if reasons:
            result.failing.append((items[index].key, "; ".join(reasons)))
        else:
            result.done.append(items[index].key)
    if result.landed:
        _detect_and_announce(data, notifiers, settings, detection or Detection(), clock(), result,
                             verify=verify if integrity is not None else None, integrity=integrity)
    if result.stats.ingested:
        result.compaction = compact_due(data, settings, now=time.time())
    return result


# -- 1. ingest ----------------------------------------------------------------------------------------------------
def _ingest(refs: list[ObjectRef], data: Path | str, client: S3Client, settings: StreamSettings,
            result: BatchResult, stop: threading.Event | None) -> None:
    """Ingest ``refs``; adds to ``result``'s stats, ``landed`` (in the manifest at their ETag) and ``failed``."""
    sources: dict[str, S3Source] = {}
    objects: list[S3Object] = []
    for ref in refs:
        source = sources.get(ref.bucket)
        if source is None:
            source = sources[ref.bucket] = S3Source(client, f"s3://{ref.bucket}")
        etag, size = ref.etag, ref.size
        if etag is None:
            try:
                head = source.call(lambda r=ref: client.head_object(Bucket=r.bucket, Key=r.key))  # type: ignore[misc]
            except Exception as exc:
                result.failed[ref.uri] = _notified(f"cannot read: {describe(exc, GET)}")
                continue
            etag, size = str(head.get("ETag") or "").strip('"'), int(head.get("ContentLength") or 0)
        # a digest is read with its S3 metadata (x-amz-meta-signature), as pull reads it
        objects.append(S3Object(ref.uri, size or 0, etag, ref.key, source, digest=is_digest_key(ref.key)))
    # One object per key: notices without an ETag (a trail's own SNS notification) and with one name the
    # same object, and a key announced at two ETags is fetched once, as S3 holds it now (the last ETag)
    objects = list({obj.uri: obj for obj in objects}.values())
    versions = {obj.uri: obj.version for obj in objects}
    if not objects:
        return
    stats = _ingest_waiting(objects, data, settings, stop)
    result.stats = _merged(result.stats, stats) if result.stats.processed or result.stats.unchanged else stats
    reasons = dict(stats.failures)
    with Dataset(data) as dataset:
        landed = dataset.manifest.done(list(versions.items()))
        result.landed |= landed
        failures = {f.uri: f.reason for f in dataset.manifest.failures(given_up=False)}
        for uri in versions:
            if uri not in landed:
                result.failed[uri] = _notified(reasons.get(uri) or failures.get(uri) or "not ingested")


def _merged(first: IngestStats, second: IngestStats) -> IngestStats:
    """Two ingest runs' counters as one (a batch that also fetched the logs its digests list)."""
    merged = IngestStats()
    for name in ("planned_objects", "planned_bytes", "unchanged", "same_content", "retried", "ingested", "skipped",
                 "failed", "events", "quarantined", "duplicates", "bytes_read", "bytes_uncompressed"):
        setattr(merged, name, getattr(first, name) + getattr(second, name))
    for name in ("rewrites", "failures", "skips", "warnings"):
        setattr(merged, name, [*getattr(first, name), *getattr(second, name)])
    merged.still_failing = second.still_failing
    merged.started, merged.finished = first.started, second.finished
    return merged


def _digests_landed(data: Path | str, uris: set[str]) -> tuple[Window | None, list[ObjectRef]]:
    """The period the digests among ``uris`` cover, and the log files they list that the dataset has
    not ingested (yet: their own notifications may come later), to fetch before verifying."""
    from analyzer.window import Window

    digests = sorted(uri for uri in uris if is_digest_key(uri))
    if not digests:
        return None, []
    starts: list[datetime] = []
    ends: list[datetime] = []
    listed: dict[str, ObjectRef] = {}
    with Dataset(data) as dataset:
        db = dataset.manifest.db
        for start in range(0, len(digests), _CHUNK):
            chunk = digests[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for first, last in db.execute(f"select start_time, end_time from digests where uri in ({marks})",  # noqa: S608
                                          chunk):
                starts.append(_parse_time(first) or datetime.max.replace(tzinfo=UTC))
                ends.append(_parse_time(last) or datetime.min.replace(tzinfo=UTC))
            for bucket, key in db.execute(f"select bucket, key from digest_logs where digest_uri in ({marks})",  # noqa: S608
                                          chunk):
                ref = ObjectRef(str(bucket), str(key))
                listed[ref.uri] = ref
        known = dataset.manifest.known(list(listed))
    if not starts:
        return None, []
    window = Window(min(starts), max(ends)) if min(starts) < max(ends) else None
    return window, [ref for uri, ref in listed.items() if uri not in known]


def _notified(reason: str) -> str:
    for listed, notified in _NOTIFIED:
        reason = reason.replace(listed, notified)
    return reason


def _ingest_waiting(objects: list[S3Object], data: Path | str, settings: StreamSettings,
                    stop: threading.Event | None) -> IngestStats:
    """``ingest_objects``, waiting (up to :data:`WRITER_PATIENCE`) while another writer holds the dataset."""
    waited = 0.0
    while True:
        try:
            return ingest_objects(objects, data, workers=settings.workers, fetch_threads=settings.fetch_threads,
                                  compact_partitions=False, max_object_bytes=settings.max_object_bytes)
        except AnalyzerError as exc:
            if not isinstance(exc.__cause__, BlockingIOError) or waited >= WRITER_PATIENCE or (stop and stop.is_set()):
                raise
        time.sleep(1.0)
        waited += 1.0


def _event_range(dataset: Dataset, uris: list[str]) -> tuple[datetime | None, datetime | None]:
    """The first and last eventTime of the live files the batches of ``uris`` committed (a batch's
    files hold only its own objects' events; a file compacted since is no longer its batch's: an
    object ingested long before, whose day was compacted, adds nothing to the range)."""
    low: str | None = None
    high: str | None = None
    db = dataset.manifest.db
    for start in range(0, len(uris), _CHUNK):
        chunk = uris[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        row = db.execute(
            "select min(min_time), max(max_time) from files where kind = 'data' and retired_by is null and "  # noqa: S608
            f"added_by in (select batch from objects where uri in ({marks}))", chunk).fetchone()
        if row and row[0]:
            low = row[0] if low is None else min(low, row[0])
            high = row[1] if high is None else max(high, row[1])
    return _parse_time(low), _parse_time(high)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- 3./4. detect and announce --------------------------------------------------------------------------------------
def _detect_and_announce(data: Path | str, notifiers: Sequence[Notifier], settings: StreamSettings,
                         detection: Detection, now: datetime, result: BatchResult, *,
                         verify: VerifyJob | None = None, integrity: Window | None = None) -> None:
    alerts: Any = None
    since = until = None
    if result.since is not None and result.until is not None:
        since, until = result.since, result.until + timedelta(microseconds=1)
        try:
            alerts = detect(data, since, until, detection, timeout=settings.timeout).alerts
        except AnalyzerError as exc:  # the objects are in: nightly's window covers them; say so
            result.problems.append(f"detections over {since:%Y-%m-%dT%H:%M:%SZ} → {until:%Y-%m-%dT%H:%M:%SZ} "
                                   f"failed (nightly will cover them): {exc}")
    if verify is not None and integrity is not None:
        from analyzer.jobs.verify import verify_section, with_integrity

        checked, problems = verify_section(verify, integrity, now)
        result.verify = checked
        result.problems += problems
        if checked is not None and checked.findings:
            alerts = with_integrity(alerts, checked) if alerts is not None else checked.alerts()
        since = min(since, integrity.since) if since and integrity.since else since or integrity.since
        until = max(until, integrity.until) if until and integrity.until else until or integrity.until
    if alerts is None:
        return
    with AlertState(data) as state:
        result.alerts = state.record(alerts, subscribers={n.name: n.min_severity for n in notifiers}, now=now,
                                     growth=settings.renotify_growth)
        result.deliveries = deliver(state, notifiers, NotifyContext(since=since, until=until), now=now)
        state.prune(now - settings.forget_alerts_after)


def detect(data: Path | str, since: datetime, until: datetime, detection: Detection, *,
           timeout: float | None = None) -> Any:
    """The catalogue over ``[since, until)`` of the committed snapshot (a :class:`~analyzer.detect.DetectionRun`)."""
    import duckdb

    from analyzer.detect import run_detections
    from analyzer.store.engine import read_snapshot

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        return run_detections(con, since=since, until=until, params=detection.params, allowlist=detection.allowlist,
                              catalogue=detection.catalogue, timeout=timeout)

    try:
        return read_snapshot(data, read)
    except duckdb.Error as exc:
        raise AnalyzerError(f"{data}: cannot read the dataset: {exc}") from exc


def deliver(state: AlertState, notifiers: Sequence[Notifier], context: NotifyContext, *,
            now: datetime) -> list[Delivery]:
    """Each notifier sends what it has pending (new alerts, and what it failed to send before), as
    nightly's step 4 does; a notifier's bug never keeps the others from sending."""
    return [send_pending(state, notifier, context, now=now)[0] for notifier in notifiers]


def send_pending(state: AlertState, notifier: Notifier, context: NotifyContext, *,
                 now: datetime) -> tuple[Delivery, list[Pending]]:
    """One notifier sends what the alert state holds pending for it, and the state records what was sent
    and what failed; any exception of the notifier fails its alerts (sent by a later run), never the caller.
    Returns the delivery and what was pending."""
    pending = state.pending(notifier.name)
    if not pending:
        return Delivery(notifier.name, notifier.label), pending
    try:
        delivery = notifier.send(pending, context)
    except Exception as exc:
        delivery = Delivery(notifier.name, notifier.label, failed=[p.fingerprint for p in pending],
                            error=f"internal error: {type(exc).__name__}: {exc}")
    state.mark_sent(notifier.name, delivery.sent, now=now)
    if delivery.failed:
        state.mark_failed(notifier.name, delivery.failed, delivery.error or "not sent")
    return delivery, pending


def retry_pending(data: Path | str, notifiers: Sequence[Notifier], *, now: datetime) -> list[Delivery]:
    """Send what notifiers failed to send before (a quiet queue must not keep an alert waiting)."""
    with AlertState(data) as state:
        if not any(state.pending(n.name) for n in notifiers):
            return []
        return deliver(state, notifiers, NotifyContext(), now=now)


# -- 5. compaction --------------------------------------------------------------------------------------------------
def due_days(dataset: Dataset, settings: StreamSettings, *, now: float) -> list[str]:
    """The days a commit touched since their last compaction that hold more than ``compact_files``
    files, or whose oldest file not written by a compaction is ``compact_after`` old."""
    due: list[str] = []
    age = settings.compact_after.total_seconds()
    for day in dataset.manifest.uncompacted():
        rows = dataset.manifest.db.execute(
            "select path, rows, added_at from files where kind = 'data' and retired_by is null and event_date = ?",
            (day,)).fetchall()
        small = [(path, added) for path, count, added in rows if count < COMPACT_FILE_ROWS // 2]
        fresh = [added for path, added in small if COMPACTED_MARK not in Path(path).name]
        if len(small) > 1 and (len(rows) > settings.compact_files or (fresh and now - min(fresh) >= age)):
            due.append(day)
    return due


def compact_due(data: Path | str, settings: StreamSettings, *, now: float) -> CompactStats | None:
    """Compact the :func:`due_days` (None when none is due or another writer holds the dataset: later)."""
    with Dataset(data) as dataset:
        try:
            dataset.lock()
        except AnalyzerError:
            return None
        try:
            days = due_days(dataset, settings, now=now)
        except sqlite3.Error:
            return None
        return compact(dataset, days) if days else None
