"""Time specs for ``--since``/``--until``: an ISO date or date-time, a relative age, or ``now``.

Accepted: ``2024-05-01`` (midnight UTC), ``2024-05-01T12:30`` / ``2024-05-01 12:30:00Z`` /
``2024-05-01T12:30:00+02:00`` (naive means UTC; offsets are converted to UTC), ``now``, and an age
before *now*: a whole number with a unit, ``90s``, ``90m``, ``36h``, ``7d``, ``2w``, and calendar months
and years, ``6mo``, ``1y``. Tailpipe's form is read too, so habits carry over: ``T-2Y``, ``T-10M`` (months),
``T-10m`` (minutes), ``T-9H``, ``T-180d``. The result is always a timezone-aware UTC :class:`datetime`, so
callers never guess what a naive value meant.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta

from analyzer.errors import AnalyzerError

RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Calendar ages: months and years, and Tailpipe's T-<n><unit> (where M is months and m minutes).
CALENDAR = re.compile(r"^\s*(?:T-)?(\d+)\s*((?i:mo|y))\s*$|^\s*T-(\d+)\s*(M)\s*$")
TAILPIPE = re.compile(r"^\s*T-(\d+)\s*([smhdwSHDW])\s*$")


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` moved back by whole calendar months, the day clamped to the month's end (31 Mar - 1mo = 29 Feb)."""
    index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(index, 12)
    if year < 1:
        raise OverflowError(f"{months} months before {moment}")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


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
    try:
        if match := RELATIVE.match(spec) or TAILPIPE.match(spec):
            amount, unit = int(match.group(1)), match.group(2).lower()
            return current - timedelta(**{UNITS[unit]: amount})
        if match := CALENDAR.match(spec):
            amount, unit = (int(match.group(1) or match.group(3)), match.group(2) or match.group(4))
            return months_before(current, amount * 12 if unit.lower() == "y" else amount)
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
        "'now', or an age such as 90m, 36h, 7d, 2w, 6mo, 1y (or Tailpipe's T-2h, T-1Y)"
    )
