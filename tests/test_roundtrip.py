"""Lossless: every record of the bundled corpora is rebuilt from Parquet exactly as it was given."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from analyzer import connect, ingest_objects
from analyzer.ingest import rebuild_records
from analyzer.sources.local import walk

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "conformance" / "real"
CORPORA = {
    "fixtures": Path(__file__).resolve().parent.parent / "fixtures" / "AWSLogs",
    "invictus": REAL / "invictus-aws-dataset",
    "stratus": REAL / "stratus-detonation-logs",
    "trailscraper": REAL / "trailscraper-sample",
}


def originals(root: Path) -> dict[tuple[str, int], Any]:
    """(file, record index) → the record as JSON gives it, for every log file under root."""
    found: dict[tuple[str, int], Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".json", ".gz") and "Digest" not in str(p)):
        raw = path.read_bytes()
        doc = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        records = doc["Records"] if isinstance(doc, dict) else doc
        for index, record in enumerate(records):
            found[(str(path), index)] = record
    return found


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_every_record_round_trips(name: str, tmp_path: Path) -> None:
    root = CORPORA[name]
    if not root.exists():
        pytest.fail(f"{root} is missing")
    stats = ingest_objects(walk([root]), tmp_path / "data", workers=1)
    expected = originals(root)
    assert stats.failed == 0 and stats.quarantined == 0
    table = ds.dataset(tmp_path / "data", format="parquet", partitioning="hive",
                       exclude_invalid_files=True).to_table()
    assert table.num_rows == len(expected)
    keys = zip(table["source_object"].to_pylist(), table["record_index"].to_pylist(), strict=True)
    mismatches = [key for key, rebuilt in zip(keys, rebuild_records(table), strict=True)
                  if rebuilt != expected[key]]
    assert mismatches == []


def test_events_view_counts_unique_event_ids(tmp_path: Path) -> None:
    root = CORPORA["fixtures"]
    ingest_objects(walk([root]), tmp_path, workers=1)
    unique = {r["eventID"] for r in originals(root).values()}
    con = connect(tmp_path)
    assert con.execute("select count(*) from events").fetchone() == (len(unique),)
    assert con.execute("select count(distinct eventID) from events").fetchone() == (len(unique),)
