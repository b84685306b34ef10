"""Bytes → records → Arrow batches in the canonical schema; the parallel ingest pipeline."""

from analyzer.ingest.columns import build_table
from analyzer.ingest.decode import Decoded, ObjectError, decode_object
from analyzer.ingest.pipeline import IngestStats, ingest
from analyzer.ingest.rebuild import rebuild_record, rebuild_records

__all__ = [
    "Decoded",
    "IngestStats",
    "ObjectError",
    "build_table",
    "decode_object",
    "ingest",
    "rebuild_record",
    "rebuild_records",
]
