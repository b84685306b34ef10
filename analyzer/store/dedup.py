"""The duplicate index: which rows repeat an ``eventID`` already in the dataset.

CloudTrail delivers some events more than once (global-service events, overlapping trails). The
rows stay in the Parquet files (the dataset is append-only), and for each partition touched by an
ingest we record the *losers*: every row of an eventID but the one with the smallest
(source_object, record_index). The ``events`` view anti-joins them away. The winner is a pure
function of the data, so it never depends on ingest order.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from analyzer.store.dataset import Dataset
from analyzer.store.engine import silence_progress_bar


def refresh_duplicates(dataset: Dataset, con: duckdb.DuckDBPyConnection | None = None) -> int:
    """Recompute the duplicate index of every partition marked stale; returns duplicate rows."""
    if con is None:
        con = duckdb.connect()
        silence_progress_bar(con)
    total = 0
    for day in dataset.manifest.stale_partitions():
        files = sorted(str(p) for p in dataset.layout.partition(day).glob("*.parquet"))
        target = dataset.layout.duplicates / f"{day}.parquet"
        if files:
            losers = con.sql(
                """
                select source_object, record_index from read_parquet($files)
                where eventID is not null
                qualify row_number() over (partition by eventID order by source_object, record_index) > 1
                """,
                params={"files": files},
            ).to_arrow_table()
            total += losers.num_rows
        if files and losers.num_rows:
            tmp = dataset.layout.tmp / f"duplicates-{day}.parquet"
            pq.write_table(losers, tmp)
            os.replace(tmp, target)
        else:
            Path(target).unlink(missing_ok=True)
        dataset.manifest.clear_stale(day)
    return total
