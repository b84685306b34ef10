"""The window a pull covers, and the watermark that sets the next run's default window.

Times are UTC throughout because CloudTrail's key layout (``YYYY/MM/DD/``) is UTC. The window is
:class:`analyzer.window.Window` (the one ``detect`` uses too), with both ends resolved here; which
key prefixes it needs is :mod:`analyzer.sources.layout`'s business.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analyzer.window import Window

__all__ = ["DEFAULT_LOOKBACK", "LATE_DELIVERY_MARGIN", "Window", "format_watermark", "parse_watermark",
           "resolve_window", "utcnow"]

#: The default look-back of a first pull, and the margin re-listed before the last watermark
#: (late-delivered files land in day folders the previous run already listed).
DEFAULT_LOOKBACK = timedelta(hours=24)
LATE_DELIVERY_MARGIN = timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def resolve_window(
    since: datetime | None,
    until: datetime | None,
    watermark: datetime | None,
    *,
    now: datetime | None = None,
) -> Window:
    """The window of a run: explicit bounds win; ``until`` defaults to now; ``since`` defaults to a
    day before the last watermark (late deliveries), or to a day before ``until`` on a first pull.

    Re-listing the margin costs one listing per day folder: objects already in the manifest are
    not fetched again.
    """
    until = until or now or utcnow()
    if since is None:
        anchor = min(watermark, until) if watermark else until
        since = anchor - (LATE_DELIVERY_MARGIN if watermark else DEFAULT_LOOKBACK)
    return Window(since, until)


def format_watermark(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_watermark(text: str | None) -> datetime | None:
    """A stored watermark, or None when absent or unreadable (then the run acts as a first pull)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
