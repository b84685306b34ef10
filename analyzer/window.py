"""The one time window every command and library call uses: the half-open UTC interval ``[since, until)``.

``detect``, ``pull``, ``nightly`` and :func:`analyzer.detect.run_detections` all take their bounds
through :func:`parse_window`, so the same text (``7d``, ``2026-11-20``, ``T-2h``: see
:mod:`analyzer.timespec`) means the same instant everywhere and a window that ends before it
starts is refused in one place, with one message. An open end (None) is the start or the end of
the data; a pull resolves both ends before it lists anything (:func:`analyzer.sources.window.resolve_window`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from analyzer.errors import UsageError
from analyzer.timespec import parse_timespec, utc

#: What a bound may be given as: an aware or naive (UTC) datetime, or a time spec such as "7d".
TimeLike = datetime | str | None


class EmptyWindow(UsageError, ValueError):
    """``since`` is not before ``until``."""


def _minute(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}" if moment.second or moment.microsecond else f"{moment:%Y-%m-%dT%H:%MZ}"


@dataclass(frozen=True)
class Window:
    """``[since, until)`` in UTC; None is an open end. Naive datetimes are taken as UTC."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise EmptyWindow(
                f"empty window: since {_minute(self.since)} must be before until {_minute(self.until)}",
                option="--since",
            )

    @property
    def bounded(self) -> bool:
        """Either end is set (an open window reads the whole dataset)."""
        return self.since is not None or self.until is not None

    def span(self) -> tuple[datetime, datetime]:
        """Both ends, for what needs them (a pull lists day folders): an open end is a programming error."""
        if self.since is None or self.until is None:
            raise ValueError(f"window {self} has an open end")
        return self.since, self.until

    def __str__(self) -> str:
        start = _minute(self.since) if self.since else "start of data"
        end = _minute(self.until) if self.until else "end of data"
        return f"{start} → {end}"


def parse_time(value: TimeLike, *, option: str, now: datetime | None = None) -> datetime | None:
    """One bound: a datetime (naive is UTC), a time spec (``7d``, ``2026-11-20``, ``T-2h``), or None.

    A spec that cannot be read is a :class:`~analyzer.errors.UsageError` naming ``option``.
    """
    if value is None or isinstance(value, datetime):
        return utc(value) if value is not None else None
    try:
        return parse_timespec(value, now=now)
    except UsageError:
        raise
    except Exception as exc:  # AnalyzerError from the parser: the same text, as a usage error
        raise UsageError(str(exc), option=option) from None


def parse_window(since: TimeLike = None, until: TimeLike = None, *, now: datetime | None = None) -> Window:
    """The window ``[since, until)`` from datetimes or time specs, both read against the same ``now``."""
    now = utc(now) if now is not None else datetime.now(UTC)
    return Window(parse_time(since, option="--since", now=now), parse_time(until, option="--until", now=now))
