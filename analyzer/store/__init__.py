"""The Hive-partitioned Parquet dataset, its manifest, and DuckDB's ``events`` view over it."""

from analyzer.store.dataset import Dataset
from analyzer.store.engine import connect
from analyzer.store.manifest import Manifest

__all__ = ["Dataset", "Manifest", "connect"]
