"""Bytes → records → Arrow batches in the canonical schema; the parallel ingest pipeline."""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.ingest.columns import build_table
    from analyzer.ingest.decode import Decoded, ObjectError, decode_object
    from analyzer.ingest.pipeline import IngestStats, ingest_objects
    from analyzer.ingest.rebuild import rebuild_record, rebuild_records
else:
    __getattr__, __dir__ = lazy_exports(__name__, {
        "analyzer.ingest.columns": ["build_table"],
        "analyzer.ingest.decode": ["Decoded", "ObjectError", "decode_object"],
        "analyzer.ingest.pipeline": ["IngestStats", "ingest_objects"],
        "analyzer.ingest.rebuild": ["rebuild_record", "rebuild_records"],
    })

__all__ = [
    "Decoded",
    "IngestStats",
    "ObjectError",
    "build_table",
    "decode_object",
    "ingest_objects",
    "rebuild_record",
    "rebuild_records",
]
