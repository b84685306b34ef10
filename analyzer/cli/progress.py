"""A rich progress bar on stderr for the ingest pipeline's counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from analyzer.cli.app import stderr
from analyzer.ingest import IngestStats


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
