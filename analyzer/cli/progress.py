"""Rich progress bars on stderr: the ingest pipeline's counters, a pull's S3 counters, compaction.

A bar has a total only once it is final (a local walk is made before the ingest starts; an S3
listing is done when it is done): "551/1,796 files" that end as 2,841 would be a lie. Until then it
counts what is done of what was found so far. Imported by the commands that show them, not at
start: rich.progress takes a while to import. Only at a terminal: piped or in cron, stderr is for
errors and warnings (a bar there leaves a stray blank line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from analyzer.cli.app import stderr

if TYPE_CHECKING:
    from analyzer.jobs.progress import Progress as Update
    from analyzer.sources.s3 import S3Source


def files_text(update: Update) -> str:
    """``551/2,841 files`` once the total is final, else ``551 files done, 1,796 found so far``."""
    if update.total is not None:
        return f"{update.done:,}/{update.total:,} files"
    return f"{update.done:,} files done, {update.found:,} found so far"


@contextmanager
def ingest_progress(enabled: bool, label: str = "ingest") -> Iterator[Callable[[Update], None]]:
    """Yields a callback that renders a job's :class:`~analyzer.jobs.progress.Progress`; a no-op when disabled."""
    if not enabled or not stderr.is_terminal:
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

        def update(state: Update) -> None:
            stats = state.stats
            seconds = max(stats.seconds, 1e-6)
            if stats.phase != "ingest":  # the files are in: indexing duplicates, then compacting days
                progress.update(task, detail=f"{stats.events:,} events · {stats.phase}")
                return
            detail = (
                f"{files_text(state)} · {stats.events:,} events · "
                f"{stats.bytes_uncompressed / 1e6:,.0f} MB · {stats.events / seconds:,.0f} events/s"
            )
            progress.update(task, total=state.total or None, completed=state.done, detail=detail)

        yield update


class _Live(ProgressColumn):
    """Listing and download counters, read live (listing runs ahead of the pipeline's callbacks)."""

    def __init__(self, source: S3Source, latest: list[Update]) -> None:
        super().__init__()
        self.source = source
        self.latest = latest

    def render(self, task: Task) -> Text:
        c = self.source.counters
        state = self.latest[0] if self.latest else None
        events = state.stats.events if state else 0
        seconds = max(task.elapsed or 0.0, 1e-6)
        listed = f"{c.objects_listed:,} listed" if state is None or state.total is None else files_text(state)
        return Text(
            f"{listed} · {c.objects_fetched:,} fetched ({c.bytes_fetched / 1e6:,.1f} MB) · "
            f"{events:,} events · {events / seconds:,.0f} events/s"
        )


@contextmanager
def pull_progress(enabled: bool, source: S3Source) -> Iterator[Callable[[Update], None]]:
    """A progress bar on stderr: files done (of the total, once the listing has ended), plus the live
    S3 counters."""
    if not enabled or not stderr.is_terminal:
        yield lambda stats: None
        return
    latest: list[Update] = []
    columns = (TextColumn("[bold]pull"), BarColumn(), TaskProgressColumn(), _Live(source, latest),
               TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("pull", total=None)

        def update(state: Update) -> None:
            latest[:] = [state]
            progress.update(task, total=state.total or None, completed=state.done)

        yield update


@contextmanager
def compact_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """Yields a ``progress(day, done, total)`` callback for compaction, or None when disabled."""
    if not enabled or not stderr.is_terminal:
        yield None
        return
    columns = (TextColumn("[bold]compact"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True, refresh_per_second=2) as progress:
        task = progress.add_task("compact", total=None, detail="")

        def update(day: str, done: int, total: int) -> None:
            progress.update(task, total=total, completed=done, detail=f"{done:,}/{total:,} days · {day}")

        yield update
