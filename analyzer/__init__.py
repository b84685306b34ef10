"""analyzer: CloudTrail logs → a lossless Parquet dataset → detections in SQL → alert summaries.

The stations are usable from Python without the CLI (this is what the notebooks do)::

    from analyzer import ingest, connect
    from analyzer.sources.local import walk
    ingest(walk(["./AWSLogs"]), "./ctdata")
    con = connect("./ctdata")            # DuckDB with the deduplicated `events` view
"""

import importlib
from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.errors import AnalyzerError, ExitCode
    from analyzer.ingest import IngestStats, build_table, decode_object, ingest, rebuild_record
    from analyzer.schema import SCHEMA
    from analyzer.store import Dataset, connect
else:
    __getattr__, __dir__ = lazy_exports(__name__, {
        "analyzer.errors": ["AnalyzerError", "ExitCode"],
        "analyzer.ingest": ["IngestStats", "build_table", "decode_object", "ingest", "rebuild_record"],
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
    "ingest",
    "rebuild_record",
]

# `ingest` is also the name of a subpackage, and importing a subpackage binds it on its parent: import
# the (cheap) subpackage now, so that no later import can hide the function, and let __getattr__ find it.
importlib.import_module("analyzer.ingest")
globals().pop("ingest", None)
