"""CloudTrail's S3 key layout, so that a pull lists only the prefixes it needs.

``[TRAIL-PREFIX/]AWSLogs/[o-ORGID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_…json.gz``

Digest and Insights files live beside ``CloudTrail/`` (``CloudTrail-Digest/``,
``CloudTrail-Insight/``), other services' logs beside them (``Config/``, ``elasticloadbalancing/``):
descending only into ``CloudTrail/`` skips all of them without a single extra request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from analyzer.errors import AnalyzerError
from analyzer.sources.window import Window

AWSLOGS = "AWSLogs"
CLOUDTRAIL = "CloudTrail"
#: CloudTrail started in November 2013: no folder can be older, so a window never starts earlier.
CLOUDTRAIL_EPOCH = date(2013, 11, 1)
#: A log file is delivered a few minutes after its last event, into the folder of its delivery
#: date: events just before ``until`` may sit in the next day's folder.
DELIVERY_SLACK = timedelta(hours=1)

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")


def is_account(name: str) -> bool:
    return bool(_ACCOUNT.match(name))


def is_org(name: str) -> bool:
    return bool(_ORG.match(name))


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix`` (prefix empty, or whole path components ending in ``/``)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://"):
            raise AnalyzerError(f"{url}: expected s3://BUCKET[/PREFIX]")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise AnalyzerError(f"{url}: no bucket name")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def __str__(self) -> str:
        return self.url(self.prefix)


@dataclass(frozen=True)
class Position:
    """Where a given prefix points inside the layout: each known level, the rest still to discover."""

    trail_prefix: str  # everything before AWSLogs/ ("" or "path/")
    org: str | None = None
    account: str | None = None
    cloudtrail: bool = False
    region: str | None = None
    date_parts: tuple[str, ...] = ()  # ("2024",), ("2024", "05") or ("2024", "05", "01")

    @property
    def awslogs(self) -> str:
        return f"{self.trail_prefix}{AWSLOGS}/"

    def account_root(self, account: str) -> str:
        org = f"{self.org}/" if self.org else ""
        return f"{self.awslogs}{org}{account}/{CLOUDTRAIL}/"

    @property
    def date_prefix(self) -> str:
        return "".join(f"{part}/" for part in self.date_parts)


def position(prefix: str) -> Position:
    """Read a user-given prefix (``""``, ``trail/``, ``…/AWSLogs/o-…/1234…/CloudTrail/eu-west-1/2024/``)."""
    parts = [p for p in prefix.split("/") if p]
    if AWSLOGS not in parts:
        return Position("".join(f"{p}/" for p in parts))
    at = parts.index(AWSLOGS)
    pos = Position("".join(f"{p}/" for p in parts[:at]))
    rest = parts[at + 1:]
    if rest and is_org(rest[0]):
        pos = replace(pos, org=rest.pop(0))
    if rest:
        if not is_account(rest[0]):
            raise AnalyzerError(f"{prefix}: {rest[0]!r} is not an account id or organization id (o-…)")
        pos = replace(pos, account=rest.pop(0))
    if rest:
        if rest[0] != CLOUDTRAIL:
            raise AnalyzerError(f"{prefix}: {rest[0]!r} holds no CloudTrail event logs (expected {CLOUDTRAIL}/)")
        rest.pop(0)
        pos = replace(pos, cloudtrail=True)
    if rest:
        pos = replace(pos, region=rest.pop(0))
    widths = (4, 2, 2)
    dates: list[str] = []
    while rest and len(dates) < 3:
        part = rest.pop(0)
        if not (part.isdigit() and len(part) == widths[len(dates)]):
            raise AnalyzerError(f"{prefix}: {part!r} is not a YYYY/MM/DD date folder")
        dates.append(part)
    if rest:
        raise AnalyzerError(f"{prefix}: deeper than a day folder of the CloudTrail layout")
    return replace(pos, date_parts=tuple(dates))


def _month_end(day: date) -> date:
    first_next = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first_next - timedelta(days=1)


def date_prefixes(window: Window, *, now: datetime | None = None, within: str = "") -> list[str]:
    """The date folders (``YYYY/MM/`` for a month wholly inside the window, else ``YYYY/MM/DD/``)
    that can hold events of ``window``; ``within`` (a partial date prefix) narrows them further.

    The last day is that of ``until`` plus :data:`DELIVERY_SLACK`, never later than ``now`` (no
    folder exists for the future).
    """
    now = now or datetime.now(UTC)
    since, until = window.span()
    first = max(since.astimezone(UTC).date(), CLOUDTRAIL_EPOCH)
    last = min(until + DELIVERY_SLACK, max(now, since)).astimezone(UTC).date()
    prefixes: list[str] = []
    day = first
    while day <= last:
        end = _month_end(day)
        if day.day == 1 and end <= last:
            prefixes.append(f"{day:%Y/%m}/")
            day = end + timedelta(days=1)
        else:
            prefixes.append(f"{day:%Y/%m/%d}/")
            day += timedelta(days=1)
    if not within:
        return prefixes
    narrowed: list[str] = []
    for prefix in prefixes:
        chosen = prefix if prefix.startswith(within) else within if within.startswith(prefix) else None
        if chosen and chosen not in narrowed:
            narrowed.append(chosen)
    return narrowed
