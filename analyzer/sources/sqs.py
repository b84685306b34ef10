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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from analyzer.alerts.sanitize import secrets
from analyzer.errors import AnalyzerError, UsageError
from analyzer.sources.s3 import UNREACHABLE_ERRORS, error_code, fatal_message, is_transient

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


class QueueError(AnalyzerError):
    """A queue call that failed; ``transient``: worth waiting out (throttling, a 5xx, the network gone),
    not a denial, a missing queue or rejected credentials."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


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
        """Up to ``limit`` messages, waiting up to ``wait`` seconds for the first (long polling); raises
        :class:`QueueError` (after the client's own retries)."""
        try:
            response = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=max(1, min(limit, MAX_MESSAGES)),
                WaitTimeSeconds=max(0, min(wait, MAX_WAIT)), VisibilityTimeout=min(visibility, MAX_VISIBILITY),
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as exc:
            transient = is_transient(exc) or isinstance(exc, UNREACHABLE_ERRORS)
            raise QueueError(describe_sqs_error(exc, self.url), transient=transient) from None
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
