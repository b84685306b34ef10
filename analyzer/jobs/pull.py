"""The pull job: the S3 source streamed into the ingest pipeline, with a watermark for the next run.

The one place where the S3 source meets the pipeline and the manifest, so that the CLI, the nightly
job and notebooks all pull the same way (the source: :func:`analyzer.jobs.sources.s3_source`).
Exactly-once comes from the manifest (objects already ingested at their ETag are not fetched again),
not from the watermark: the watermark only decides where the *default* window of the next run
starts. It moves only after a run that listed everything, and never past the day folder of the
oldest object of its scope that failed (to fetch, decode or commit) and nobody gave up on: the next
default window lists that folder again, so the failure is retried by every run until it lands or
``analyzer failures --give-up`` says stop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from analyzer.errors import ExitCode
from analyzer.ingest.decode import MAX_OBJECT_BYTES
from analyzer.ingest.pipeline import IngestStats, ingest_objects
from analyzer.jobs.interrupt import quiet_workers_on_ctrl_c
from analyzer.jobs.progress import Found, Progress, reporter
from analyzer.sources.layout import DELIVERY_SLACK
from analyzer.sources.s3 import PullCounters, S3Source
from analyzer.sources.window import format_watermark, parse_watermark, resolve_window, utcnow
from analyzer.store.dataset import Dataset
from analyzer.window import TimeLike, Window, parse_time


@dataclass
class PullResult:
    """What a pull did: the window, the listing counters, the ingest counters, the watermark."""

    window: Window
    listing: PullCounters
    stats: IngestStats
    previous_watermark: datetime | None
    watermark: datetime | None  # the new one, or None when this run did not move it
    failing: int = 0  # failed objects of this scope (not given up): they hold the watermark back
    now: datetime | None = None  # the moment the run took for "now" (the last day folder it could list)

    @property
    def listed_days(self) -> tuple[date, date]:
        """The first and last day folder listed. Folders are listed whole, and the last one is the
        day of ``until`` plus the late-delivery margin (:data:`~analyzer.sources.layout.DELIVERY_SLACK`:
        CloudTrail delivers a file minutes after its events, into the folder of the delivery day), so
        the files of that day are ingested whole, events after ``until`` included."""
        since, until = self.window.span()
        last = min(until + DELIVERY_SLACK, max(self.now or until, since))
        return since.astimezone(UTC).date(), last.astimezone(UTC).date()

    @property
    def exit_code(self) -> ExitCode:
        if self.listing.problems:
            return ExitCode.PARTIAL
        return self.stats.exit_code


def read_watermark(data: Path | str, source: S3Source) -> datetime | None:
    """Where the last complete pull of this source's scope ended (None before the first)."""
    with Dataset(data) as dataset:
        return parse_watermark(dataset.manifest.get_state(source.scope))


#: A CloudTrail log key's account, region and day folder (see :mod:`analyzer.sources.layout`).
_LOG_KEY = re.compile(
    r"(?:^|/)AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/CloudTrail/(?P<region>[^/]+)/"
    r"(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/"
)


def failure_floor(data: Path | str, source: S3Source) -> tuple[datetime | None, int]:
    """The start of the day folder of the oldest failure (not given up) in ``source``'s scope, and
    how many failures the scope holds. A failed key outside the CloudTrail layout cannot be placed:
    the floor is then the start of time, so the watermark does not move at all."""
    root = source.location.url(source.location.prefix)
    with Dataset(data) as dataset:
        failed = [f.uri for f in dataset.manifest.failures(given_up=False) if f.uri.startswith(root)]
    floor: datetime | None = None
    count = 0
    for uri in failed:
        match = _LOG_KEY.search(uri[len(source.location.url()) :])
        if match and not _in_scope(source, match):
            continue
        count += 1
        try:
            day = (
                datetime(int(match["year"]), int(match["month"]), int(match["day"]), tzinfo=UTC)
                if match
                else datetime.min.replace(tzinfo=UTC)
            )
        except ValueError:
            day = datetime.min.replace(tzinfo=UTC)
        floor = day if floor is None else min(floor, day)
    return floor, count


def _in_scope(source: S3Source, match: re.Match[str]) -> bool:
    return (
        (not source.accounts or match["account"] in source.accounts)
        and (not source.regions or match["region"] in source.regions)
        and (not source.org_id or match["org"] == source.org_id)
    )


def run_pull(
    source: S3Source,
    data: Path | str,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    fetch_threads: int = 32,
    workers: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    now: datetime | None = None,
    max_object_bytes: int = MAX_OBJECT_BYTES,
) -> PullResult:
    """Pull the source's logs of the window into the dataset at ``data``.

    ``since``/``until`` are datetimes or time specs (``"7d"``, ``"2026-11-20"``). ``since`` defaults
    to a day before the last watermark (a day before ``until`` on a first pull); ``until`` to now.
    ``fetch_threads`` downloads run in this process (boto3 clients stay out of the worker
    processes); ``workers`` processes decode and write. Ctrl-C stops the run (KeyboardInterrupt);
    the next run resumes it.
    """
    now = now or utcnow()
    previous = read_watermark(data, source)
    window = resolve_window(
        parse_time(since, option="--since", now=now), parse_time(until, option="--until", now=now), previous, now=now
    )
    quiet_workers_on_ctrl_c()
    found = Found(source.objects(window, now=now))
    try:
        stats = ingest_objects(
            found,
            data,
            workers=workers,
            fetch_threads=fetch_threads,
            progress=reporter(found, progress),
            max_object_bytes=max_object_bytes,
        )
    finally:
        found.close()
    listing = source.counters
    moved = None
    failing = 0
    if not listing.problems:  # everything was listed; failed objects hold the watermark back
        _, end = window.span()
        target = max(end, previous) if previous else end
        floor, failing = failure_floor(data, source)
        if floor is not None:
            target = min(target, floor)
        if target != previous and target > datetime.min.replace(tzinfo=UTC):
            moved = target
            with Dataset(data) as dataset:
                dataset.lock()
                dataset.manifest.set_state(source.scope, format_watermark(moved))
    return PullResult(window, listing, stats, previous, moved, failing, now)
