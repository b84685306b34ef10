"""An SQS queue of S3 notifications: long-polled receives, batched deletes, visibility kept alive.

What makes the queue's at-least-once delivery safe to build on:

- a message is deleted only when the caller says its objects are committed (:meth:`Queue.delete`);
- while a message is in flight its visibility timeout is extended by a :class:`Heartbeat`, so a
  long batch (a lock held by another writer, a slow compaction) is never handed to a second
  consumer halfway;
- a message that failed is made visible again after ``retry_after`` (:meth:`Queue.retry_later`),
  not deleted: after the queue's ``maxReceiveCount`` receives its redrive policy moves it to the
  dead-letter queue;
- a message released on shutdown is made visible at once (visibility 0) for the next consumer.

The client is injected (or built by :func:`make_sqs_client` on the standard credential chain), so
tests reach a local moto server through ``endpoint_url``, as the S3 source does.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from analyzer.alerts.sanitize import secrets
from analyzer.errors import AnalyzerError, UsageError
from analyzer.sources.s3 import error_code, fatal_message

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: ReceiveMessage takes at most 10 messages and waits at most 20 seconds (long polling).
MAX_MESSAGES = 10
MAX_WAIT = 20
#: ChangeMessageVisibility allows at most 12 hours.
MAX_VISIBILITY = 12 * 3600
_QUEUE_URL = re.compile(r"^https?://[^/\s]+/(?P<account>\d{12})/(?P<name>[A-Za-z0-9_-]{1,80}(?:\.fifo)?)/?$")
_REGION = re.compile(r"^https?://sqs[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.")


@dataclass(frozen=True)
class Message:
    """One received message: its body, the handle to delete it by, and SQS's own counters."""

    id: str
    receipt: str
    body: str
    receive_count: int = 1  # ApproximateReceiveCount: 1 on the first delivery
    sent_at: datetime | None = None  # SentTimestamp

    @classmethod
    def from_response(cls, item: Any) -> Message:
        attributes = item.get("Attributes") or {}
        sent = attributes.get("SentTimestamp")
        return cls(
            str(item.get("MessageId") or ""),
            str(item["ReceiptHandle"]),
            str(item.get("Body") or ""),
            int(attributes.get("ApproximateReceiveCount") or 1),
            datetime.fromtimestamp(int(sent) / 1000, UTC) if sent and str(sent).isdigit() else None,
        )


def check_queue_url(url: str, *, option: str | None = "--queue-url") -> str:
    """``url`` when it looks like a queue URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``)."""
    if not _QUEUE_URL.match(url or ""):
        raise UsageError(f"{secrets(url)!r}: not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
                         option=option)
    return url.rstrip("/")


def queue_region(url: str) -> str | None:
    """The region in an AWS queue URL (None for a local endpoint's)."""
    match = _REGION.match(url)
    return match["region"] if match else None


def make_sqs_client(
    queue_url: str, *, session: boto3.Session | None = None, endpoint_url: str | None = None, region: str | None = None,
) -> SQSClient:
    """An SQS client in the queue's region, whose reads outlast a long poll (standard retries)."""
    session = session or boto3.Session()
    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=5,
                    read_timeout=MAX_WAIT + 15, user_agent_extra="analyzer-watch", tcp_keepalive=True)
    chosen = region or queue_region(queue_url) or session.region_name or "us-east-1"
    client: SQSClient = session.client("sqs", region_name=chosen, endpoint_url=endpoint_url, config=config)
    return client


def describe_sqs_error(exc: BaseException, where: str) -> str:
    """One line for a failed queue call (credentials, a missing queue, a denial naming its permission)."""
    fatal = fatal_message(exc, where)
    if fatal:
        return fatal.replace("cannot reach S3", "cannot reach SQS")
    code = error_code(exc) or type(exc).__name__
    if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"):
        return f"{where}: no such queue"
    if code in ("AccessDenied", "AccessDeniedException", "AuthorizationError"):
        return (f"{where}: access denied ({code}); watch needs sqs:ReceiveMessage, sqs:DeleteMessage, "
                "sqs:ChangeMessageVisibility and sqs:GetQueueAttributes")
    if code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"):
        return f"{where}: credentials rejected ({code})"
    return f"{where}: {code}: {secrets(exc)}"


class Queue:
    """One queue, through one client (thread-safe: boto3 clients are)."""

    def __init__(self, client: SQSClient, url: str) -> None:
        self.client = client
        self.url = url

    def attributes(self) -> dict[str, str]:
        """VisibilityTimeout and RedrivePolicy (fails fast, in one line, on a wrong queue or credentials)."""
        try:
            response = self.client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])
        except Exception as exc:
            raise AnalyzerError(describe_sqs_error(exc, self.url)) from None
        return {str(k): str(v) for k, v in (response.get("Attributes") or {}).items()}

    def receive(self, *, wait: int, visibility: int, limit: int = MAX_MESSAGES) -> list[Message]:
        """Up to ``limit`` messages, waiting up to ``wait`` seconds for the first (long polling)."""
        try:
            response = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=max(1, min(limit, MAX_MESSAGES)),
                WaitTimeSeconds=max(0, min(wait, MAX_WAIT)), VisibilityTimeout=min(visibility, MAX_VISIBILITY),
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as exc:
            raise AnalyzerError(describe_sqs_error(exc, self.url)) from None
        return [Message.from_response(item) for item in response.get("Messages") or []]

    def delete(self, messages: Sequence[Message]) -> list[tuple[Message, str]]:
        """Delete ``messages`` (ten per request); returns those SQS would not delete, with why."""
        return self._in_tens(messages, {}, self.client.delete_message_batch)

    def set_visibility(self, messages: Sequence[Message], seconds: int) -> list[tuple[Message, str]]:
        """Make ``messages`` visible again in ``seconds`` (0: at once); returns what failed, with why."""
        seconds = max(0, min(int(seconds), MAX_VISIBILITY))
        return self._in_tens(messages, {"VisibilityTimeout": seconds}, self.client.change_message_visibility_batch)

    def _in_tens(self, messages: Sequence[Message], extra: dict[str, Any], call: Callable[..., Any]
                 ) -> list[tuple[Message, str]]:
        """``call`` (a ``*_batch`` action) on ``messages`` ten at a time, each entry with ``extra``; returns the
        messages SQS refused, with why (a whole request's failure fails its ten)."""
        failed: list[tuple[Message, str]] = []
        for chunk in _tens(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt, **extra} for i, m in enumerate(chunk)]
            try:
                response = call(QueueUrl=self.url, Entries=entries)
            except Exception as exc:
                failed += [(m, describe_sqs_error(exc, self.url)) for m in chunk]
                continue
            for problem in response.get("Failed") or []:
                failed.append((chunk[int(problem["Id"])], str(problem.get("Message") or problem.get("Code"))))
        return failed


def _tens(messages: Sequence[Message]) -> Iterable[list[Message]]:
    for start in range(0, len(messages), MAX_MESSAGES):
        yield list(messages[start:start + MAX_MESSAGES])


class Heartbeat:
    """Keeps the messages in flight invisible: every ``every`` seconds their visibility is set to
    ``visibility`` seconds from then, until they are deleted, retried or released."""

    def __init__(self, queue: Queue, *, visibility: int, every: float | None = None) -> None:
        self.queue = queue
        self.visibility = visibility
        self.every = every if every is not None else max(1.0, visibility / 3)
        self.flying: dict[str, Message] = {}
        self.lock = threading.RLock()  # held by a beat's call too: whoever settles a message holds it first
        self.stopping = threading.Event()
        self.extended = 0
        self.thread = threading.Thread(target=self._run, name="sqs-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def add(self, messages: Iterable[Message]) -> None:
        with self.lock:
            self.flying.update((m.receipt, m) for m in messages)

    def drop(self, messages: Iterable[Message]) -> None:
        with self.lock:
            for m in messages:
                self.flying.pop(m.receipt, None)

    def in_flight(self) -> list[Message]:
        with self.lock:
            return list(self.flying.values())

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            with self.lock:
                flying = list(self.flying.values())
                if flying:
                    self.queue.set_visibility(flying, self.visibility)  # a failure: the next beat tries again
                    self.extended += len(flying)


class Inbox:
    """Receives ahead: a thread long-polls the queue while the caller settles a batch, so that the next
    batch is in hand when this one is done (a receive is a round trip for ten messages at most, and
    waiting for them between batches was most of a busy watch's time).

    At most ``hold`` messages are held; each is in the heartbeat from the moment it is received, so a
    held message stays invisible to other consumers as one being worked on does. With ``once`` the
    thread stops at the first receive that comes back empty while nothing is held or out (taken and
    not yet :meth:`settled`: a failed message may come back at once): the queue is drained. A receive that
    fails (:class:`AnalyzerError`: the queue is gone, access denied) ends the thread, and :meth:`take`
    raises it once what was received before it has been taken. ``interrupt`` (the caller's stop) is
    read, never set: :meth:`take` returns soon after it is set."""

    def __init__(self, queue: Queue, beat: Heartbeat, *, wait: int, visibility: int, hold: int,
                 once: bool = False, interrupt: threading.Event | None = None) -> None:
        self.queue, self.beat = queue, beat
        self.wait, self.visibility, self.hold, self.once = wait, visibility, max(1, hold), once
        self.interrupt = interrupt or threading.Event()
        self.received = 0  # messages received so far
        self._held: list[tuple[float, Message]] = []  # (when it arrived, the message), oldest first
        self._ended = False  # the thread has stopped: drained (``once``), released, or a receive failed
        self._out = 0  # batches taken and not yet settled
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sqs-inbox", daemon=True)

    def __enter__(self) -> Inbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=MAX_WAIT + 15)

    def _halted(self) -> bool:
        return self._stopping.is_set() or self.interrupt.is_set()

    def _run(self) -> None:
        try:
            while not self._halted():
                with self._changed:
                    while len(self._held) >= self.hold and not self._halted():
                        self._changed.wait(0.25)
                    room, busy = self.hold - len(self._held), bool(self._out or self._held)
                if self._halted():
                    break
                messages = self.queue.receive(wait=self.wait, visibility=self.visibility, limit=room)
                self.beat.add(messages)
                with self._changed:
                    now = time.monotonic()
                    self._held += [(now, m) for m in messages]
                    self.received += len(messages)
                    self._changed.notify_all()
                    if not messages and self.once and not busy and not self._out:
                        break
        except BaseException as exc:  # raised by take(): a failed receive must not pass for an empty queue
            self._error = exc
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _wait(self, until: float) -> bool:
        """Wait for a change until ``until`` (in slices, so that ``interrupt`` is seen); False when it passed."""
        left = until - time.monotonic()
        if left <= 0:
            return False
        self._changed.wait(min(left, 0.25))
        return True

    def take(self, *, limit: int, window: float, idle: float) -> list[Message]:
        """The next batch: up to ``idle`` seconds for a first message, then more until ``window`` seconds
        after the oldest held one arrived, up to ``limit``. [] when none came in ``idle`` (or, with
        ``once``, when the queue is drained: :attr:`drained`). Raises what ended a failed receive once
        nothing received before it is left."""
        with self._changed:
            deadline = time.monotonic() + idle
            while not self._held and not self._ended and not self.interrupt.is_set():
                if not self._wait(deadline):
                    return []
            if self._held:
                until = self._held[0][0] + window
                while len(self._held) < limit and not self._ended and not self.interrupt.is_set():
                    if not self._wait(until):
                        break
            batch = [m for _, m in self._held[:limit]]
            del self._held[:limit]
            self._out += bool(batch)
            self._changed.notify_all()
            if not batch and self._error is not None:
                error, self._error = self._error, None
                raise error
            return batch

    def settled(self) -> None:
        """The batch :meth:`take` returned last is settled (deleted, retried or released)."""
        with self._changed:
            self._out = max(0, self._out - 1)
            self._changed.notify_all()

    @property
    def drained(self) -> bool:
        """Nothing held and nothing more to come (with ``once``: a receive came back empty)."""
        with self._changed:
            return self._ended and not self._held and self._error is None

    def release(self) -> list[Message]:
        """Stop receiving; return everything held (including what a receive under way brings), for the
        caller to make visible again."""
        self._stop()
        with self._changed:
            batch = [m for _, m in self._held]
            self._held.clear()
            return batch
