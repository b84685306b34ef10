"""Time specs for ``--since``/``--until``: an ISO date or date-time, a relative age, or ``now``.

Accepted: ``2024-05-01`` (midnight UTC), ``2024-05-01T12:30`` / ``2024-05-01 12:30:00Z`` /
``2024-05-01T12:30:00+02:00`` (naive means UTC; offsets are converted to UTC), ``now``, and an age
before *now*: a whole number with a unit, ``90s``, ``90m``, ``36h``, ``7d``, ``2w``. The result is
always a timezone-aware UTC :class:`datetime`, so callers never guess what a naive value meant.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from analyzer.errors import AnalyzerError

RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive value is taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_timespec(text: str, *, now: datetime | None = None) -> datetime:
    """Parse one ``--since``/``--until`` value into an aware UTC datetime.

    Raises :class:`AnalyzerError` with the accepted forms when ``text`` is none of them.
    """
    spec = text.strip()
    current = utc(now) if now is not None else datetime.now(UTC)
    if spec.lower() == "now":
        return current
    if match := RELATIVE.match(spec):
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            return current - timedelta(**{UNITS[unit]: amount})
        except OverflowError as exc:
            raise AnalyzerError(f"time {text!r} is too far in the past") from exc
    try:
        if len(spec) == 10:
            day = date.fromisoformat(spec)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        return utc(datetime.fromisoformat(spec))
    except ValueError:
        pass
    raise AnalyzerError(
        f"cannot read time {text!r}: use an ISO date or date-time (2024-05-01, 2024-05-01T12:30:00Z), "
        "'now', or an age such as 90m, 36h, 7d, 2w"
    )
