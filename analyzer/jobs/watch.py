"""The watch job: S3 notifications from SQS, ingested, detected and announced within seconds.

:func:`run_watch` (``analyzer watch``) long-polls a queue that S3 (directly, through SNS, or through an
EventBridge rule) tells about every new log object, and settles each batch of messages with
:func:`analyzer.jobs.stream.run_batch`: the same dataset, manifest and alert state as ``pull`` and
``nightly``, so that

- an object is ingested exactly once however often its notification is delivered (redelivery after a
  crash, a duplicate notification, a ``pull`` of the same trail): the manifest keys it by its key and ETag;
- a message is deleted only after its objects are committed; while its batch is in flight a heartbeat
  keeps it invisible (ChangeMessageVisibility); a message whose object fails is made visible again after
  ``retry_after`` and its reason reported with its receive count, so that the queue's redrive policy
  (``maxReceiveCount`` → dead-letter queue) decides when to stop;
- a stop (SIGTERM, SIGINT: the caller sets ``stop``) ends receiving; a batch being ingested is finished,
  one still waiting (for another writer) is released (visibility 0), and so is anything received after;
- an alert watch announced is not announced again by ``nightly``, and the other way round.

:func:`handle_s3_event` is the same for an S3 → Lambda (or a webhook) setup: one event in, one result out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.errors import AnalyzerError, ExitCode
from analyzer.jobs.stream import (
    DEFAULT_COMPACT_AFTER,
    DEFAULT_COMPACT_FILES,
    BatchResult,
    Detection,
    Item,
    StreamSettings,
    compact_due,
    retry_pending,
    run_batch,
)
from analyzer.sources.sqs import MAX_MESSAGES, MAX_WAIT, Heartbeat, Message, Queue, QueueError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from analyzer.alerts.notify import Delivery, Notifier
    from analyzer.jobs.verify import VerifyJob
    from analyzer.settings import Settings

MAX_LISTED = 200  # problems and failing messages kept in a status (the rest are counted)
#: Seconds between the chores of a quiet queue: sending what a notifier failed to send, and compacting the
#: days that became due (compact_after is an age); a batch does both, so the clock restarts after one.
IDLE_EVERY = 60.0
#: How long a receive that keeps failing transiently (throttling, a 5xx, the network gone) is waited out
#: before the watch stops (exit 1, for its supervisor to see): a running watch, then ``--once`` (a cron job).
QUEUE_PATIENCE = 15 * 60.0
QUEUE_PATIENCE_ONCE = 30.0
RECEIVE_RETRY_MAX = 30.0  # seconds between two tries, at most


@dataclass(frozen=True)
class WatchSettings(StreamSettings):
    """``[watch]`` (with ``[nightly]``, ``[detect]``, ``[ingest]`` as fallbacks), see :mod:`analyzer.settings`."""

    wait_time: int = MAX_WAIT  # long polling, seconds
    visibility_timeout: int = 300
    retry_after: int = 60
    batch_messages: int = 100
    batch_window: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchSettings:
        from analyzer.jobs.nightly import NightlySettings

        table, night = settings.watch, NightlySettings.from_settings(settings)
        wait = float(table.wait_time) if table.wait_time is not None else MAX_WAIT
        if wait > MAX_WAIT:
            raise AnalyzerError(f"[watch] wait_time = {wait:g}s: SQS waits at most {MAX_WAIT}s")

        def secs(value: timedelta | None, default: int) -> int:
            return max(0, int(value.total_seconds())) if value is not None else default

        return cls(
            fail_on=str(table.fail_on or night.fail_on),
            renotify_growth=night.renotify_growth,
            forget_alerts_after=night.forget_alerts_after,
            workers=table.workers or 1,
            fetch_threads=table.fetch_threads or 8,
            timeout=night.timeout,
            max_object_bytes=night.max_object_bytes,
            compact_files=table.compact_files or DEFAULT_COMPACT_FILES,
            compact_after=timedelta(seconds=table.compact_after.total_seconds()) if table.compact_after is not None
            else DEFAULT_COMPACT_AFTER,
            wait_time=int(wait),
            visibility_timeout=max(1, secs(table.visibility_timeout, 300)),
            retry_after=secs(table.retry_after, 60),
            batch_messages=table.batch_messages or 100,
            batch_window=float(table.batch_window) if table.batch_window is not None else 1.0,
        )

    def stream(self) -> StreamSettings:
        return StreamSettings(**{f.name: getattr(self, f.name) for f in fields(StreamSettings)})


@dataclass(frozen=True)
class Failing:
    """A message left on the queue: its id, how often SQS has delivered it, and why it failed."""

    message_id: str
    receive_count: int
    reason: str

    def __str__(self) -> str:
        return (f"message {self.message_id} (received {self.receive_count}x) left for the queue's redrive "
                f"policy: {self.reason}")


@dataclass
class WatchStatus:
    """What a watch has done so far (read live by a status line), and how it ended."""

    received: int = 0  # messages
    deleted: int = 0
    failing: int = 0  # messages left on the queue because an object failed (or no notification)
    released: int = 0  # messages made visible again on a stop, or when a batch could not start
    tests: int = 0
    batches: int = 0
    objects: int = 0  # objects ingested
    unchanged: int = 0  # objects already in the dataset (a redelivered or duplicate notification)
    skipped: int = 0  # keys that are not CloudTrail logs
    failed_objects: int = 0
    quarantined: int = 0
    events: int = 0
    alerts: int = 0  # announced
    verified: int = 0  # digest files checked by [watch] verify
    integrity_findings: int = 0  # found by [watch] verify (announced once, with the alerts)
    findings: int = 0  # announced at or above fail_on
    newest: datetime | None = None  # the newest object's creation (or its message's sending) time
    lag: float | None = None  # seconds from the newest object's creation to its batch's alerts, last batch
    interrupted: bool = False
    failures: list[Failing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # batches that did not run, detection, deletes
    deliveries: list[Delivery] = field(default_factory=list)  # the last batch's
    failed_notifiers: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def current_lag(self, now: datetime | None = None) -> float | None:
        """Seconds from the newest object seen to now."""
        if self.newest is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.newest).total_seconds())

    def problem(self, line: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(line)

    @property
    def exit_code(self) -> ExitCode:
        """130 when stopped by a signal; else 4 when a message was left failing, an object failed or had
        records quarantined, a batch could not run or a notifier failed; else 3 when an alert at or
        above fail_on was announced; else 0."""
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.failing or self.failed_objects or self.quarantined or self.problems or self.failed_notifiers:
            return ExitCode.PARTIAL
        return ExitCode.FINDINGS if self.findings else ExitCode.OK


def run_watch(
    queue: Queue,
    data: Path | str,
    *,
    s3_client: S3Client,
    notifiers: Sequence[Notifier] = (),
    settings: WatchSettings | None = None,
    detection: Detection | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[WatchStatus], None] | None = None,
    log: Callable[[str], None] | None = None,
    verify: VerifyJob | None = None,
) -> WatchStatus:
    """Consume ``queue`` into the dataset at ``data`` until ``stop`` is set (or, with ``once``, until
    a receive comes back empty). ``log`` gets one line per failing message and per problem as they
    happen. ``verify`` (``[watch] verify``, :func:`watch_verify_job`): the period of each batch's digest
    files verified, the findings announced with the alerts (see :func:`~analyzer.jobs.stream.run_batch`).
    Raises :class:`AnalyzerError` for what stops it: the queue denied or missing, or failing for longer
    than :data:`QUEUE_PATIENCE` (``--once``: :data:`QUEUE_PATIENCE_ONCE`); a shorter outage is waited out."""
    settings = settings or WatchSettings()
    stop = stop or threading.Event()
    status = WatchStatus()
    say = log or (lambda line: None)
    tell = progress or (lambda s: None)
    stream = settings.stream()
    last_chores = time.monotonic()
    queue.attributes()  # one clear line for a wrong URL or credentials, before anything else
    with Heartbeat(queue, visibility=settings.visibility_timeout) as beat:
        while not stop.is_set():
            batch = _gather(queue, beat, settings, stop, QUEUE_PATIENCE_ONCE if once else QUEUE_PATIENCE, say)
            status.received += len(batch)
            if stop.is_set():
                _release(queue, beat, batch, status)
                break
            if not batch:
                if once:
                    _compact_idle(data, stream, say)  # the age rule, for a cron of --once runs too
                    break
                if time.monotonic() - last_chores >= IDLE_EVERY:
                    last_chores = time.monotonic()
                    if notifiers:
                        _record_deliveries(status, retry_pending(data, notifiers, now=datetime.now(UTC)), say)
                    _compact_idle(data, stream, say)
                tell(status)
                continue
            tell(status)
            _settle(queue, beat, batch, data, s3_client, notifiers, stream, settings, detection, stop, status, say,
                    verify)
            last_chores = time.monotonic()
            tell(status)
    status.interrupted = stop.is_set()
    return status


def _compact_idle(data: Path | str, stream: StreamSettings, say: Callable[[str], None]) -> None:
    """Compact the days now due (``compact_after`` is an age: the last batch before a quiet spell left
    small files that only become due later). Nothing when the dataset does not exist yet or another
    writer holds it (later); a failure is logged: the day keeps its files, correct and slower."""
    if not Path(data).is_dir():
        return
    try:
        stats = compact_due(data, stream, now=time.time())
    except AnalyzerError as exc:
        say(f"compaction not run: {exc}")
        return
    for where, why in stats.failures if stats is not None else []:
        say(f"compaction of {where} failed (its files stay as they are): {why}")


def _gather(queue: Queue, beat: Heartbeat, settings: WatchSettings, stop: threading.Event,
            patience: float = QUEUE_PATIENCE, say: Callable[[str], None] = lambda line: None) -> list[Message]:
    """The next batch: a long poll for the first messages (:func:`_receive_patiently`), then whatever
    else arrives within ``batch_window``, up to ``batch_messages``; past the window too while each
    receive comes back full (a backlog: after an outage, or a burst), so that a backlog is worked off in
    full batches, one detection pass each, rather than in a batch a window. Every message is in the
    heartbeat once received; a receive that fails after the first ends the batch (the next poll waits
    it out)."""
    last = _receive_patiently(queue, settings, stop, patience, say)
    beat.add(last)
    batch = list(last)
    deadline = time.monotonic() + settings.batch_window
    while batch and len(batch) < settings.batch_messages and not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 and len(last) < MAX_MESSAGES:
            break
        try:
            last = queue.receive(wait=min(int(left + 0.999), MAX_WAIT) if left >= 1 else 0,
                                 visibility=settings.visibility_timeout, limit=settings.batch_messages - len(batch))
        except QueueError:
            break
        beat.add(last)
        batch += last
        if not last and left < 1:
            break
    return batch


def _receive_patiently(queue: Queue, settings: WatchSettings, stop: threading.Event, patience: float,
                       say: Callable[[str], None]) -> list[Message]:
    """A long poll that waits out a queue's transient failure (throttling, a 5xx, the network gone: the
    client's own retries spent), retrying after 1, 2, 4... up to 30 seconds, for up to ``patience``
    seconds in all, each failure logged (nothing is lost meanwhile: what is in flight stays so). A denial, a
    missing queue or rejected credentials, or an outage longer than that, is raised: the watch stops.
    A stop ends the wait (nothing received)."""
    failing_since: float | None = None
    delay = 1.0
    while True:
        try:
            return queue.receive(wait=settings.wait_time, visibility=settings.visibility_timeout,
                                 limit=settings.batch_messages)
        except QueueError as exc:
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            if not exc.transient or now - failing_since + delay > patience:
                raise
            say(f"receive failed ({exc}); retrying in {delay:g}s")
            if stop.wait(delay):
                return []
            delay = min(delay * 2, RECEIVE_RETRY_MAX)


def _settle(queue: Queue, beat: Heartbeat, batch: list[Message], data: Path | str, s3_client: S3Client,
            notifiers: Sequence[Notifier], stream: StreamSettings, settings: WatchSettings,
            detection: Detection | None, stop: threading.Event, status: WatchStatus,
            say: Callable[[str], None], verify: VerifyJob | None = None) -> None:
    by_receipt = {m.receipt: m for m in batch}
    items = [Item(m.receipt, m.body, m.receive_count) for m in batch]
    try:
        result = run_batch(items, data, s3_client=s3_client, notifiers=notifiers, settings=stream,
                           detection=detection, stop=stop, verify=verify)
    except AnalyzerError as exc:  # the batch did not run (another writer kept the dataset, a broken dataset)
        if stop.is_set():
            _release(queue, beat, batch, status)
            return
        line = f"batch of {len(batch)} message(s) not ingested, retried in {settings.retry_after}s: {exc}"
        status.problem(line)
        say(line)
        _retry_later(queue, beat, batch, settings.retry_after, status, say)
        return
    status.batches += 1
    done = [by_receipt[str(k)] for k in result.done]
    failing = [(by_receipt[str(k)], reason) for k, reason in result.failing]
    with beat.lock:  # no beat extends what is settled now
        beat.drop(batch)
        for message, why in queue.delete(done):
            line = f"message {message.id}: not deleted ({why}); its objects are in: a redelivery ingests nothing"
            status.problem(line)
            say(line)
        status.deleted += len(done)
        queue.set_visibility([m for m, _ in failing], settings.retry_after)
    for message, reason in failing:
        entry = Failing(message.id, message.receive_count, reason)
        if len(status.failures) < MAX_LISTED:
            status.failures.append(entry)
        say(str(entry))
    status.failing += len(failing)
    _account(status, result, batch, say)


def _account(status: WatchStatus, result: BatchResult, batch: list[Message], say: Callable[[str], None]) -> None:
    stats = result.stats
    status.tests += result.tests
    status.objects += stats.ingested
    status.unchanged += stats.unchanged + stats.same_content
    status.skipped += len(result.skipped)
    status.failed_objects += len(result.failed)
    status.quarantined += stats.quarantined
    status.events += stats.events
    status.alerts += len(result.announced)
    status.findings += result.findings
    if result.verify is not None:
        status.verified += result.verify.digests_valid + result.verify.digests_invalid
        status.integrity_findings += len(result.verify.findings)
    sent = [m.sent_at for m in batch if m.sent_at is not None]
    newest = result.newest or (max(sent) if sent else None)
    if newest is not None:
        status.newest = newest if status.newest is None else max(status.newest, newest)
        status.lag = status.current_lag()
    for line in result.problems:
        status.problem(line)
        say(line)
    _record_deliveries(status, result.deliveries, say)


def _record_deliveries(status: WatchStatus, deliveries: list[Delivery], say: Callable[[str], None]) -> None:
    if deliveries:
        status.deliveries = deliveries
    for delivery in deliveries:
        if delivery.ok:
            status.failed_notifiers.discard(delivery.notifier)
        else:
            status.failed_notifiers.add(delivery.notifier)
            say(f"notify {delivery.label}: {delivery.error}; {len(delivery.failed)} alert(s) kept for the next batch")


def _retry_later(queue: Queue, beat: Heartbeat, batch: list[Message], seconds: int, status: WatchStatus,
                 say: Callable[[str], None]) -> None:
    with beat.lock:
        beat.drop(batch)
        for message, why in queue.set_visibility(batch, seconds):
            say(f"message {message.id}: visibility not changed ({why}); it returns after the queue's timeout")


def _release(queue: Queue, beat: Heartbeat, batch: list[Message], status: WatchStatus) -> None:
    """Messages not worked on: visible again at once, for the next consumer."""
    if batch:
        with beat.lock:
            beat.drop(batch)
            queue.set_visibility(batch, 0)
        status.released += len(batch)


def watch_verify_job(data: Path | str, settings: Settings, *, base: Path | None = None) -> VerifyJob | None:
    """``[watch] verify``: nightly's verify section (:func:`analyzer.jobs.verify.verify_job`) over the
    digests the dataset recorded, with ``[verify]``'s public keys (else ListPublicKeys); None when off."""
    import msgspec

    from analyzer.jobs.verify import verify_job

    if not settings.watch.verify:
        return None
    nightly = msgspec.structs.replace(settings.nightly, verify=True, verify_source=False)
    return verify_job(data, msgspec.structs.replace(settings, nightly=nightly), base=base)


# -- the Lambda / webhook entry point -------------------------------------------------------------------------------
@dataclass
class EventResult:
    """What :func:`handle_s3_event` did. For an SQS-triggered Lambda, :meth:`batch_item_failures` is
    the partial-batch response (with ``ReportBatchItemFailures`` on, only those records come back)."""

    batch: BatchResult
    failing: list[tuple[str, str]]  # (record id, why): records whose objects are not in the dataset

    @property
    def ok(self) -> bool:
        return not self.failing and not self.batch.problems and not self.batch.failed_notifiers

    @property
    def announced(self) -> int:
        return len(self.batch.announced)

    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": record} for record, _ in self.failing]}

    def raise_for_failures(self) -> None:
        """Raise :class:`AnalyzerError` when something failed (a Lambda invoked asynchronously retries then)."""
        if self.failing:
            raise AnalyzerError("; ".join(f"{record}: {why}" for record, why in self.failing[:20]))


def handle_s3_event(
    event: Mapping[str, Any],
    data: Path | str,
    *,
    s3_client: S3Client | None = None,
    notifiers: Sequence[Notifier] | None = None,
    config: Path | str | Mapping[str, Any] | None = None,
    settings: StreamSettings | None = None,
    detection: Detection | None = None,
    verify: VerifyJob | None = None,
) -> EventResult:
    """Ingest, detect and announce what ``event`` announces: an S3 event notification, an SNS
    notification or an EventBridge "Object Created" event, or a Lambda event wrapping them (an SQS
    trigger's records are settled one by one: see :meth:`EventResult.batch_item_failures`)::

        from analyzer.jobs import handle_s3_event

        def lambda_handler(event, context):
            result = handle_s3_event(event, data="/mnt/efs/ctdata")
            return result.batch_item_failures()

    ``config`` (a file, or a parsed mapping; default: ``$ANALYZER_CONFIG`` and the usual places)
    gives ``[notify.*]`` (unless ``notifiers`` is given), ``[watch]`` and the detections' parameters
    and allowlist. ``s3_client`` defaults to one on ``[pull]``'s profile and endpoint. With ``[watch]
    verify`` (or ``verify``, a :func:`watch_verify_job`) the digest files the event names are verified.
    """
    loaded = _config(config)
    if settings is None:
        settings = WatchSettings.from_settings(loaded.settings).stream()
    if detection is None:
        detection = Detection(params=loaded.settings.detect.params, allowlist=loaded.allowlist())
    if notifiers is None:
        from analyzer.alerts.notify import notifiers_from_config

        notifiers = notifiers_from_config({"notify": loaded.table("notify")})
    if s3_client is None:
        from analyzer.sources.s3 import make_client, make_session

        pull = loaded.settings.pull
        s3_client = make_client(make_session(pull.profile), endpoint_url=pull.endpoint_url, pool=settings.fetch_threads)
    if verify is None:
        verify = watch_verify_job(data, loaded.settings, base=loaded.path.expanduser().parent if loaded.path else None)
    items = _event_items(event)
    result = run_batch(items, data, s3_client=s3_client, notifiers=notifiers, settings=settings, detection=detection,
                       verify=verify)
    return EventResult(result, [(str(key), why) for key, why in result.failing])


def _config(config: Path | str | Mapping[str, Any] | None) -> Any:
    from analyzer.config import Config, load, validate

    if isinstance(config, Mapping):
        return Config(settings=validate(config), origin="handle_s3_event(config=...)", data=dict(config))
    return load(config)


def _event_items(event: Mapping[str, Any]) -> list[Item]:
    """An SQS-triggered Lambda's records one by one (settled by messageId); anything else as one item."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list) and records and all(
            isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records):
        items: list[Item] = []
        for index, record in enumerate(records):
            key: Hashable = str(record.get("messageId") or f"Records[{index}]")
            attributes = record.get("attributes") or {}
            count = str(attributes.get("ApproximateReceiveCount") or "1")
            items.append(Item(key, str(record.get("body") or ""), int(count) if count.isdigit() else 1))
        return items
    return [Item("event", event)]
