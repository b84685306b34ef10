"""S3 "object created" notifications, in every envelope they travel in, as references to log objects.

A bucket announces a new object in one of three forms, and a queue or a Lambda function may wrap
it once more:

- **S3 event notification** (bucket → SQS, or → Lambda): ``{"Records": [{"eventSource": "aws:s3",
  "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name"}, "object": {"key", "size", "eTag"}}}]}``;
  the key is URL-encoded as a form value (``+`` for a space, ``%XX``). A new notification
  configuration first sends ``{"Event": "s3:TestEvent"}``: nothing to do.
- **through SNS** (bucket → SNS → SQS): the S3 event as the ``Message`` string of an SNS envelope
  (``"Type": "Notification"``), or unwrapped when the subscription has raw message delivery on.
- **EventBridge** (bucket → EventBridge rule on "Object Created" → SQS): ``{"source": "aws.s3",
  "detail-type": "Object Created", "detail": {"bucket": {"name"}, "object": {"key", "size", "etag"}}}``;
  the key is not encoded.

A trail can also announce each delivered log file itself, through the SNS topic of its
configuration: ``{"s3Bucket": "...", "s3ObjectKey": ["AWSLogs/..."]}`` (keys not encoded, no ETag:
the object's ETag is read when it is fetched).

Lambda adds its own wrappers (an SQS trigger's ``Records[].body``, an SNS trigger's
``Records[].Sns.Message``): :func:`parse_event` unwraps those too. Every value here comes from
whoever could write to the queue: nothing is trusted beyond its shape, and a malformed message is a
:class:`NotificationError` naming what is wrong (it is left to the queue's redrive policy).

Which keys are CloudTrail's is judged from the key alone, by the layout
(:mod:`analyzer.sources.layout`): event logs and digest files are ingested (the pipeline records a
digest for ``analyzer verify``), everything else is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from analyzer.sources.base import skip_reason
from analyzer.sources.layout import AWSLOGS, CLOUDTRAIL

#: How deep envelopes may nest (Lambda ← SQS ← SNS ← S3 is three): a message nesting deeper is refused.
MAX_DEPTH = 6
#: A message body SQS accepts is at most 256 KiB; a Lambda event a few MB.
MAX_BODY = 8 * 2**20
DIGEST = f"{CLOUDTRAIL}-Digest"
INSIGHT = f"{CLOUDTRAIL}-Insight"
_KINDS = (CLOUDTRAIL, DIGEST, INSIGHT)

#: ``[PREFIX/]AWSLogs/[o-ORG/]ACCOUNT/<kind>/REGION/YYYY/MM/DD/NAME.json.gz``
_LAYOUT = re.compile(
    rf"(?:^|/){AWSLOGS}/(?:o-[a-z0-9]{{10,32}}/)?\d{{12}}/(?P<kind>{'|'.join(_KINDS)})/[a-z0-9-]+/"
    r"\d{4}/\d{2}/\d{2}/[^/]+\.json\.gz$"
)


class NotificationError(ValueError):
    """A message that is no notification this module knows (its reason, one line)."""


@dataclass(frozen=True)
class ObjectRef:
    """A created object, as a notification names it. ``etag`` (no quotes) is the version the
    manifest records; ``event_time`` is when S3 says the object was created."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    event_time: datetime | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class Notice:
    """What one message says: the objects to ingest, what it named that is not to be ingested
    (``(s3://bucket/key or what, reason)``), and whether it was a test event."""

    objects: list[ObjectRef] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    test: bool = False

    def extend(self, other: Notice) -> None:
        self.objects += other.objects
        self.skipped += other.skipped
        self.test = self.test or other.test


def skip_key(key: str) -> str | None:
    """Why an object of this key is not ingested (None: a CloudTrail log or digest file)."""
    match = _LAYOUT.search(key)
    if match is None:
        return "not a CloudTrail log file (AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/*.json.gz)"
    return skip_reason(key)  # Insights files: beside the logs, not event records


def parse_message(body: str | bytes) -> Notice:
    """The objects an SQS message body (or an SNS message) announces; raises :class:`NotificationError`."""
    if len(body) > MAX_BODY:
        raise NotificationError(f"message of {len(body):,} bytes: larger than any notification")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotificationError(f"not JSON ({exc})") from None
    return parse_event(document)


def parse_event(event: Any, *, depth: int = 0) -> Notice:
    """The objects an event dict announces, whatever its envelope (see the module docstring)."""
    if depth > MAX_DEPTH:
        raise NotificationError(f"envelopes nested more than {MAX_DEPTH} deep")
    if not isinstance(event, Mapping):
        raise NotificationError(f"expected a JSON object, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":
        return Notice(test=True)
    if isinstance(event.get("Records"), list):
        notice = Notice()
        for index, record in enumerate(event["Records"]):
            notice.extend(_record(record, index, depth))
        return notice
    if event.get("Type") == "Notification" and "Message" in event:  # SNS → SQS without raw delivery
        return _nested(event["Message"], "the SNS Message", depth)
    if event.get("source") == "aws.s3" or "detail-type" in event:
        return _eventbridge(event)
    if "s3Bucket" in event and "s3ObjectKey" in event:  # a trail's own SNS notification of delivery
        return _trail_delivery(event)
    raise NotificationError("not an S3 notification (no Records, SNS Message, EventBridge detail or trail "
                            "delivery s3ObjectKey)")


def _nested(value: Any, what: str, depth: int) -> Notice:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise NotificationError(f"{what} is not JSON ({exc})") from None
    return parse_event(value, depth=depth + 1)


def _record(record: Any, index: int, depth: int) -> Notice:
    if not isinstance(record, Mapping):
        raise NotificationError(f"Records[{index}] is not an object")
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:sqs" and "body" in record:  # a Lambda SQS trigger
        return _nested(record["body"], f"Records[{index}].body", depth)
    if source == "aws:sns" and isinstance(record.get("Sns"), Mapping):  # a Lambda SNS trigger
        return _nested(record["Sns"].get("Message"), f"Records[{index}].Sns.Message", depth)
    s3 = record.get("s3")
    if not isinstance(s3, Mapping):
        raise NotificationError(f"Records[{index}] has no s3 object (eventSource {str(source)[:40]!r})")
    name = str(record.get("eventName") or "")
    bucket = _text(_get(s3, "bucket", "name"), f"Records[{index}].s3.bucket.name")
    raw_key = _text(_get(s3, "object", "key"), f"Records[{index}].s3.object.key")
    ref = ObjectRef(bucket, unquote_plus(raw_key), _size(_get(s3, "object", "size")),
                    _etag(_get(s3, "object", "eTag")), _time(record.get("eventTime")))
    if not (name.startswith("ObjectCreated:") or name.startswith("s3:ObjectCreated:")):
        return Notice(skipped=[(ref.uri, f"not an object creation ({name[:60] or 'no eventName'})")])
    return _checked(ref)


def _eventbridge(event: Mapping[str, Any]) -> Notice:
    kind = str(event.get("detail-type") or "")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise NotificationError("EventBridge event without a detail object")
    bucket = _text(_get(detail, "bucket", "name"), "detail.bucket.name")
    key = _text(_get(detail, "object", "key"), "detail.object.key")
    etag = _get(detail, "object", "etag") or _get(detail, "object", "eTag")  # AWS documents etag; moto sends eTag
    ref = ObjectRef(bucket, key, _size(_get(detail, "object", "size")), _etag(etag), _time(event.get("time")))
    if kind != "Object Created":
        return Notice(skipped=[(ref.uri, f"not an object creation ({kind[:60] or 'no detail-type'})")])
    return _checked(ref)


def _trail_delivery(event: Mapping[str, Any]) -> Notice:
    bucket = _text(event.get("s3Bucket"), "s3Bucket")
    keys = event.get("s3ObjectKey")
    if not isinstance(keys, list) or not keys:
        raise NotificationError("s3ObjectKey is not a list of keys")
    notice = Notice()
    for index, key in enumerate(keys):
        notice.extend(_checked(ObjectRef(bucket, _text(key, f"s3ObjectKey[{index}]"))))
    return notice


def _checked(ref: ObjectRef) -> Notice:
    reason = skip_key(ref.key)
    return Notice(skipped=[(ref.uri, reason)]) if reason else Notice(objects=[ref])


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise NotificationError(f"{what} missing or not a string")
    if "\x00" in value or len(value) > 4096:
        raise NotificationError(f"{what} is no S3 name")
    return value


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _etag(value: Any) -> str | None:
    return value.strip('"') or None if isinstance(value, str) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def unique(refs: list[ObjectRef]) -> Iterator[ObjectRef]:
    """``refs`` without repeats of one object at one ETag (duplicate notifications), in order."""
    seen: set[tuple[str, str | None]] = set()
    for ref in refs:
        if (ref.uri, ref.etag) not in seen:
            seen.add((ref.uri, ref.etag))
            yield ref
