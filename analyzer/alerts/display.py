"""How reports written for people show times and the window: to the second, in UTC, with dates.

Machine formats (json, jsonl, csv, ocsf) keep full precision; a person reading a report has no use
for microseconds, and "start of data" means nothing without the date it stands for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from analyzer.alerts.summary import Report


def moment(value: datetime | None) -> str:
    """``2026-11-20 10:05:03``: UTC, to the second; empty for None."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def iso_seconds(value: datetime | None) -> str:
    """``2026-11-20T10:05:03Z``: ISO 8601 in UTC, to the second (Markdown reports, tickets)."""
    return moment(value).replace(" ", "T") + "Z" if value is not None else ""


ELLIPSIS = "…"
#: The account id a short principal starts with.
ACCOUNT_PREFIX = re.compile(r"^\d{12}:")
_ARN = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:(\d*):(.+)$", re.DOTALL)


def short_principal(value: str) -> str:
    """``111122223333:user/victor`` for ``arn:aws:iam::111122223333:user/victor``: the ARN less what
    every principal shares (the partition and the service: ``user/``, ``role/`` or
    ``assumed-role/`` say which); anything else as it is."""
    match = _ARN.match(value)
    if not match:
        return value
    account, resource = match.groups()
    return f"{account}:{resource}" if account else resource


def middle(value: str, width: int) -> str:
    """``value`` cut in its middle to ``width`` characters: a third of the head (or the account id a
    short principal starts with, when that leaves a tail of 6), the rest of the tail."""
    if len(value) <= width:
        return value
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) // 3
    account = ACCOUNT_PREFIX.match(value)
    if account and width - 1 - account.end() >= 6:
        head = max(head, account.end())
    return value[:head] + ELLIPSIS + value[len(value) - (width - 1 - head):]


#: What a report says when the MFA coverage has no row, by :attr:`Summary.coverage_scope`.
NO_SIGNINS = {"all": "No successful console sign-ins in the window.",
              "alerted": "No successful sign-ins by the alerts' principals in the window."}


def window_text(report: Report, arrow: str = "→", show: Callable[[datetime | None], str] = moment) -> str:
    """``2026-11-20 00:00:00 → 2026-11-21 15:02:47 (end of data)``: an open end of the window is named
    by the dataset's first or last event when the report knows it (:attr:`Report.data_start`)."""

    def side(bound: datetime | None, data: datetime | None, name: str) -> str:
        if bound is not None:
            return show(bound)
        return f"{show(data)} ({name})" if data is not None else name

    since = side(report.since, report.data_start, "start of data")
    return f"{since} {arrow} {side(report.until, report.data_end, 'end of data')}"
