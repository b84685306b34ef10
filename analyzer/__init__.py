"""analyzer: CloudTrail logs → a lossless Parquet dataset → detections in SQL → alert summaries.

The stations are usable from Python without the CLI (this is what the notebooks do)::

    from analyzer import ingest, connect
    from analyzer.sources.local import walk
    ingest(walk(["./AWSLogs"]), "./ctdata")
    con = connect("./ctdata")            # DuckDB with the deduplicated `events` view
"""

from analyzer.errors import AnalyzerError, ExitCode
from analyzer.ingest import IngestStats, build_table, decode_object, ingest, rebuild_record
from analyzer.schema import SCHEMA
from analyzer.store import Dataset, connect

__all__ = [
    "SCHEMA",
    "AnalyzerError",
    "Dataset",
    "ExitCode",
    "IngestStats",
    "build_table",
    "connect",
    "decode_object",
    "ingest",
    "rebuild_record",
]
