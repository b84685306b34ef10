"""What a progress display is told while a job ingests: a total that does not grow while it walks.

The pipeline only knows the objects it has been handed so far (``IngestStats.planned_objects`` grows
as a walk or a listing goes on: "551/1,796 files" that end as 2,841). :class:`Found` counts the
objects a walk or a listing yields and knows when it has ended; :class:`Progress` gives a display
the count found so far and the total only once it is final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from analyzer.ingest.pipeline import IngestStats

T = TypeVar("T")


class Found(Generic[T]):
    """An iterator over ``objects`` that counts what it yields; ``total`` is known once it has ended
    (at once for a list: a local walk is made before the ingest starts)."""

    def __init__(self, objects: Iterable[T]) -> None:
        self._objects = objects
        self._iterator: Iterator[T] = iter(objects)
        self.count = 0
        self.ended = isinstance(objects, list | tuple) and not objects
        self._size = len(objects) if isinstance(objects, list | tuple) else None

    def __iter__(self) -> Found[T]:
        return self

    def __next__(self) -> T:
        try:
            item = next(self._iterator)
        except StopIteration:
            self.ended = True
            raise
        self.count += 1
        return item

    @property
    def total(self) -> int | None:
        """Every object there is, once known (a list's length; a listing's count when it has ended)."""
        if self._size is not None:
            return self._size
        return self.count if self.ended else None

    def close(self) -> None:
        """Stop the walk or the listing (an S3 listing's threads stop with it)."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class Progress:
    """One update: the pipeline's counters, the objects found so far, and the total once it is final."""

    stats: IngestStats
    found: int
    total: int | None

    @property
    def done(self) -> int:
        """Objects finished: ingested, failed, skipped, or found already in the dataset."""
        return self.stats.processed + self.stats.unchanged


def reporter(found: Found[Any], progress: Callable[[Progress], None] | None) -> Callable[[IngestStats], None] | None:
    """The pipeline's ``progress(stats)`` callback that tells ``progress`` what ``found`` knows too."""
    if progress is None:
        return None

    def update(stats: IngestStats) -> None:
        progress(Progress(stats, found.count, found.total))

    return update
