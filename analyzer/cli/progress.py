"""Rich progress bars on stderr: the ingest pipeline's counters, a pull's S3 counters, compaction.

Imported by the commands that show them, not at start: rich.progress takes a while to import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from analyzer.cli.app import stderr

if TYPE_CHECKING:
    from analyzer.ingest import IngestStats
    from analyzer.sources.s3 import S3Source


@contextmanager
def ingest_progress(enabled: bool, label: str = "ingest") -> Iterator[Callable[[IngestStats], None]]:
    """Yields a callback that renders :class:`IngestStats`; a no-op when disabled."""
    if not enabled:
        yield lambda stats: None
        return
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr, transient=True, refresh_per_second=2) as progress:
        task = progress.add_task(label, total=None, detail="")

        def update(stats: IngestStats) -> None:
            seconds = max(stats.seconds, 1e-6)
            if stats.phase != "ingest":  # the files are in: indexing duplicates, then compacting days
                progress.update(task, detail=f"{stats.events:,} events · {stats.phase}")
                return
            detail = (
                f"{stats.processed:,}/{stats.planned_objects:,} files · {stats.events:,} events · "
                f"{stats.bytes_uncompressed / 1e6:,.0f} MB · {stats.events / seconds:,.0f} events/s"
            )
            progress.update(task, total=stats.planned_objects or None, completed=stats.processed,
                            detail=detail)

        yield update


class _Live(ProgressColumn):
    """Listing and download counters, read live (listing runs ahead of the pipeline's callbacks)."""

    def __init__(self, source: S3Source, stats: list[IngestStats]) -> None:
        super().__init__()
        self.source = source
        self.stats = stats

    def render(self, task: Task) -> Text:
        c = self.source.counters
        events = self.stats[0].events if self.stats else 0
        seconds = max(task.elapsed or 0.0, 1e-6)
        return Text(
            f"{c.objects_listed:,} listed · {c.objects_fetched:,} fetched ({c.bytes_fetched / 1e6:,.1f} MB) · "
            f"{events:,} events · {events / seconds:,.0f} events/s"
        )


@contextmanager
def pull_progress(enabled: bool, source: S3Source) -> Iterator[Callable[[IngestStats], None]]:
    """A progress bar on stderr: files processed of those planned, plus the live S3 counters."""
    if not enabled:
        yield lambda stats: None
        return
    latest: list[IngestStats] = []
    columns = (TextColumn("[bold]pull"), BarColumn(), TaskProgressColumn(), _Live(source, latest),
               TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("pull", total=None)

        def update(stats: IngestStats) -> None:
            latest[:] = [stats]
            progress.update(task, total=stats.planned_objects or None, completed=stats.processed)

        yield update


@contextmanager
def compact_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """Yields a ``progress(day, done, total)`` callback for compaction, or None when disabled."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("[bold]compact"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True, refresh_per_second=2) as progress:
        task = progress.add_task("compact", total=None, detail="")

        def update(day: str, done: int, total: int) -> None:
            progress.update(task, total=total, completed=done, detail=f"{done:,}/{total:,} days · {day}")

        yield update
