"""A pull: the S3 source streamed into the ingest pipeline, with a watermark for the next run.

The one place where the S3 source meets the pipeline and the manifest, so that the CLI, the
nightly job and notebooks all pull the same way. Exactly-once comes from the manifest (objects
already ingested at their ETag are not fetched again), not from the watermark: the watermark only
decides where the *default* window of the next run starts, and it moves only after a run that
listed everything and fetched every object, so nothing is ever skipped because of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from analyzer.errors import AnalyzerError, ExitCode
from analyzer.ingest.pipeline import IngestStats, ingest
from analyzer.sources.s3 import PullCounters, S3Source
from analyzer.sources.window import Window, format_watermark, parse_watermark, resolve_window, utcnow
from analyzer.store.dataset import Dataset


@dataclass
class PullResult:
    """What a pull did: the window, the listing counters, the ingest counters, the watermark."""

    window: Window
    listing: PullCounters
    stats: IngestStats
    previous_watermark: datetime | None
    watermark: datetime | None  # the new one, or None when this run did not move it

    @property
    def exit_code(self) -> ExitCode:
        if self.listing.problems:
            return ExitCode.PARTIAL
        return self.stats.exit_code


def read_watermark(data: Path | str, source: S3Source) -> datetime | None:
    """Where the last complete pull of this source's scope ended (None before the first)."""
    with Dataset(data) as dataset:
        return parse_watermark(dataset.manifest.get_state(source.scope))


def pull(
    source: S3Source,
    data: Path | str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    fetch_threads: int = 32,
    workers: int | None = None,
    progress: Callable[[IngestStats], None] | None = None,
    now: datetime | None = None,
) -> PullResult:
    """Pull the source's logs of the window into the dataset at ``data``.

    ``since`` defaults to a day before the last watermark (a day before ``until`` on a first pull);
    ``until`` to now. ``fetch_threads`` downloads run in this process (boto3 clients stay out of
    the worker processes); ``workers`` processes decode and write.
    """
    now = now or utcnow()
    previous = read_watermark(data, source)
    try:
        window = resolve_window(since, until, previous, now=now)
    except ValueError as exc:
        raise AnalyzerError(str(exc)) from None
    stats = ingest(source.objects(window, now=now), data, workers=workers, fetch_threads=fetch_threads,
                   progress=progress)
    listing = source.counters
    moved = None
    if listing.complete:
        moved = max(window.until, previous) if previous else window.until
        with Dataset(data) as dataset:
            dataset.lock()
            dataset.manifest.set_state(source.scope, format_watermark(moved))
    return PullResult(window, listing, stats, previous, moved)
