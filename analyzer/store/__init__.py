"""The Hive-partitioned Parquet dataset, its manifest, and DuckDB's ``events`` view over it."""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.store.dataset import Dataset
    from analyzer.store.engine import connect
    from analyzer.store.manifest import Manifest
else:  # imported on first use: an ingest worker imports analyzer.store.dataset, never DuckDB
    __getattr__, __dir__ = lazy_exports(__name__, {
        "analyzer.store.dataset": ["Dataset"],
        "analyzer.store.engine": ["connect"],
        "analyzer.store.manifest": ["Manifest"],
    })

__all__ = ["Dataset", "Manifest", "connect"]
