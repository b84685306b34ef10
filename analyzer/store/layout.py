"""Where things live inside a dataset directory.

``DATA/event_date=YYYY-MM-DD/part-*.parquet`` is the plain Hive-partitioned dataset that DuckDB,
Polars, Spark and Athena read as-is. Everything of the analyzer's own lives under ``DATA/_analyzer/``:
names starting with ``_`` are hidden from Hive-style readers.
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
    def duplicates(self) -> Path:
        return self.internal / "duplicates"

    def partition(self, day: str) -> Path:
        return self.root / f"{PARTITION_COLUMN}={day}"

    def data_glob(self) -> str:
        return str(self.root / f"{PARTITION_COLUMN}=*" / "*.parquet")

    def create(self) -> None:
        for path in (self.root, self.internal, self.tmp, self.quarantine, self.duplicates):
            path.mkdir(parents=True, exist_ok=True)
