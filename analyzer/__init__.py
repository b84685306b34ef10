"""analyzer: CloudTrail logs → a lossless Parquet dataset → detections in SQL → alert summaries.

The stations are usable from Python without the CLI (this is what the notebooks do)::

    from analyzer import connect, ingest_objects
    from analyzer.sources.local import walk
    ingest_objects(walk(["./AWSLogs"]), "./ctdata")
    con = connect("./ctdata")            # DuckDB with the deduplicated `events` view

What each command does is a function of :mod:`analyzer.jobs` (``run_ingest``, ``run_detect``...).
``analyzer.ingest`` is the ingest station's package (``import analyzer.ingest as m`` binds it), and
``ingest_objects`` its entry point.
"""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.errors import AnalyzerError, ExitCode
    from analyzer.ingest import IngestStats, build_table, decode_object, ingest_objects, rebuild_record
    from analyzer.schema import SCHEMA
    from analyzer.store import Dataset, connect
else:
    __getattr__, __dir__ = lazy_exports(__name__, {
        "analyzer.errors": ["AnalyzerError", "ExitCode"],
        "analyzer.ingest": ["IngestStats", "build_table", "decode_object", "ingest_objects", "rebuild_record"],
        "analyzer.schema": ["SCHEMA"],
        "analyzer.store": ["Dataset", "connect"],
    })

__all__ = [
    "SCHEMA",
    "AnalyzerError",
    "Dataset",
    "ExitCode",
    "IngestStats",
    "build_table",
    "connect",
    "decode_object",
    "ingest_objects",
    "rebuild_record",
]
