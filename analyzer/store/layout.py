"""Where things live inside a dataset directory.

``DATA/event_date=YYYY-MM-DD/part-*.parquet`` is the plain Hive-partitioned dataset that DuckDB,
Polars, Spark and Athena read as-is. Everything of the analyzer's own lives under ``DATA/_analyzer/``
(names starting with ``_`` are hidden from Hive-style readers), and none of it is named
``*.parquet``: a recursive glob (``DATA/**/*.parquet``) finds the data files and nothing else.
Which of those files are the dataset is the manifest's to say (:mod:`analyzer.store.snapshot`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analyzer.schema import PARTITION_COLUMN


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def internal(self) -> Path:
        return self.root / "_analyzer"

    @property
    def manifest(self) -> Path:
        return self.internal / "manifest.sqlite"

    @property
    def lock(self) -> Path:
        return self.internal / "lock"

    @property
    def tmp(self) -> Path:
        return self.internal / "tmp"

    @property
    def quarantine(self) -> Path:
        return self.internal / "quarantine"

    @property
    def superseded(self) -> Path:
        """Rows of rewritten log objects' older versions (``*.evidence``, Parquet inside)."""
        return self.internal / "superseded"

    @property
    def legacy_duplicates(self) -> Path:
        """Where older versions kept the duplicate index as ``*.parquet`` (removed on sight)."""
        return self.internal / "duplicates"

    def partition(self, day: str) -> Path:
        return self.root / f"{PARTITION_COLUMN}={day}"

    def create(self) -> None:
        for path in (self.root, self.internal, self.tmp, self.quarantine):
            path.mkdir(parents=True, exist_ok=True)
