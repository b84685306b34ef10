"""The README's read recipes: other tools reading the dataset folders see every delivered row once.

Regressions of issue 10: ``_analyzer/duplicates/*.parquet`` sat under the root, so DuckDB's
``read_parquet('DATA/**/*.parquet', hive_partitioning = true)`` failed (Hive partition mismatch),
without ``hive_partitioning`` it counted 17,992 rows for 17,842 events, and Polars'
``scan_parquet('DATA/**/*.parquet')`` raised a SchemaError. The dataset here has everything the
analyzer keeps under the root: the manifest, the lock, a quarantine, a failure, a rewritten
object's evidence, compacted and uncompacted days.
"""

from __future__ import annotations

import gzip
import shutil
import signal
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest

from analyzer import connect, ingest_objects
from analyzer.sources.local import walk

from records import log_key, record, write_log

Key = tuple[str, int]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("recipes")
    logs = root / "AWSLogs"
    shutil.copytree(fixtures_dir / "AWSLogs", logs)
    data = root / "data"
    assert ingest_objects(walk([logs]), data, workers=1).failed == 0
    extra = root / "extra"
    rewritten = write_log(extra, log_key(0), [record(i) for i in range(5)])
    write_log(extra, log_key(1, "NoTime0000000001"), [record(9), {"eventName": "NoTime"}])  # one quarantined
    (extra / "broken.json.gz").write_bytes(gzip.compress(b"{not json"))  # one failed
    ingest_objects(walk([extra]), data, workers=1, compact_partitions=False)
    write_log(extra, log_key(0), [record(i) for i in range(3, 8)])  # a rewrite: evidence under _analyzer/
    stats = ingest_objects(walk([extra]), data, workers=1, compact_partitions=False)
    assert [r.uri for r in stats.rewrites] == [str(rewritten)] and stats.quarantined == 0
    internal = {p.name for p in (data / "_analyzer").iterdir()}
    assert {"manifest.sqlite", "lock", "quarantine", "superseded"} <= internal
    return data


def delivered(data: Path) -> Counter[Key]:
    """Every delivered row of the live object versions, as the analyzer reads it."""
    con = connect(data)
    try:
        return Counter(con.execute("select source_object, record_index from events_all").fetchall())
    finally:
        con.close()


def keys(pairs: list[tuple[str, int]]) -> Counter[Key]:
    return Counter((str(source), int(index)) for source, index in pairs)


def glob(data: Path) -> str:
    return str(data / "**" / "*.parquet")


def test_the_dataset_holds_more_than_the_fixtures(data: Path) -> None:
    rows = delivered(data)
    assert sum(rows.values()) > 300 and max(rows.values()) == 1


def duckdb_glob(data: Path, hive: bool) -> Counter[Key]:
    with closing(duckdb.connect()) as con:
        found = con.execute(
            "select source_object, record_index from read_parquet($p, hive_partitioning = $h)",
            {"p": glob(data), "h": hive},
        ).fetchall()
        if hive:
            days = con.execute("select count(*) from read_parquet($p, hive_partitioning = true)"
                               " where event_date is null", {"p": glob(data)}).fetchone()
            assert days == (0,)
    return keys(found)


def polars_glob(data: Path) -> Counter[Key]:
    frame = pl.scan_parquet(glob(data), hive_partitioning=True).select("source_object", "record_index", "event_date")
    found = frame.collect()
    assert found["event_date"].null_count() == 0
    return keys(found.select("source_object", "record_index").rows())


def pyarrow_dataset(data: Path) -> Counter[Key]:
    dataset = ds.dataset(data, format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["source_object", "record_index", "event_date"])
    assert table["event_date"].null_count == 0
    return keys(list(zip(table["source_object"].to_pylist(), table["record_index"].to_pylist(), strict=True)))


@pytest.mark.parametrize("hive", [True, False])
def test_duckdb_glob(data: Path, hive: bool) -> None:
    assert duckdb_glob(data, hive) == delivered(data)


def test_polars_scan_parquet_glob(data: Path) -> None:
    assert polars_glob(data) == delivered(data)


def test_pyarrow_dataset(data: Path) -> None:
    assert pyarrow_dataset(data) == delivered(data)


#: The CLI with os.replace wrapped: SIGKILL just before a batch's first file leaves the temporary
#: folder (a real kill at that instant on any version of the code).
KILL_BEFORE_THE_FIRST_MOVE = r"""
import os, signal, sys
real = os.replace
def replace(src, dst, *args, **kwargs):
    if "_analyzer" + os.sep + "tmp" in os.fspath(src) and "event_date=" in os.fspath(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst, *args, **kwargs)
os.replace = replace
from analyzer.cli import main
sys.argv = ["analyzer", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("recipe", ["duckdb hive", "duckdb", "polars", "pyarrow"])
def test_what_a_killed_writer_left_is_invisible_to_the_recipes(data: Path, tmp_path: Path, recipe: str) -> None:
    """A writer killed with its files written but not moved leaves them under ``_analyzer/tmp/``
    until the next writer: no recipe may read them (the old code named them ``*.parquet``)."""
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    logs = tmp_path / "more"
    write_log(logs, log_key(5, "Later00000000001"), [record(1000 + i) for i in range(7)])
    victim = subprocess.run([sys.executable, "-c", KILL_BEFORE_THE_FIRST_MOVE, "ingest", str(logs), "--data",
                             str(copy), "--quiet", "--workers", "1"])
    assert victim.returncode == -signal.SIGKILL
    assert any(p.is_file() for p in (copy / "_analyzer" / "tmp").rglob("*"))  # what it left
    read = {"duckdb hive": lambda: duckdb_glob(copy, True), "duckdb": lambda: duckdb_glob(copy, False),
            "polars": lambda: polars_glob(copy), "pyarrow": lambda: pyarrow_dataset(copy)}[recipe]
    assert read() == delivered(copy) == delivered(data)


@pytest.mark.slow
def test_spark(data: Path) -> None:
    pyspark = pytest.importorskip("pyspark.sql")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime")
    spark = (pyspark.SparkSession.builder.master("local[1]").appName("analyzer-read-recipe")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate())
    try:
        frame = spark.read.parquet(str(data))
        assert frame.where("event_date is null").count() == 0
        found = [(r["source_object"], r["record_index"])
                 for r in frame.select("source_object", "record_index").collect()]
    finally:
        spark.stop()
    assert keys(found) == delivered(data)
