"""The catalogue on Spark (issue 14), in local mode: on the fixtures and a generated corpus, every detection's
alerts equal DuckDB's (detection, principal, first/last seen, count, event ids, and the details), in a window
too; both deduplication paths show DuckDB's events; every detection's own cases pass on Spark; Spark reads a
published prefix through its snapshot listing; `detect --engine spark` writes DuckDB's report.

One SparkSession for the whole test session (local[2], 2 shuffle partitions, no UI): starting one costs
about 20 s here. Every test is marked slow.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.detect import case_problems, load_catalogue, run_detections
from analyzer.jobs.publish import publish
from analyzer.scale import dialects
from analyzer.sources.local import walk
from analyzer.window import parse_window

from s3_server import S3Server

pytestmark = pytest.mark.slow
pyspark = pytest.importorskip("pyspark.sql")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime", allow_module_level=True)

from analyzer.scale import spark as engine  # noqa: E402  (after the skips: pyspark is optional)

CATALOGUE = load_catalogue()
CASES = [pytest.param(d, c, id=f"{d.id}: {c.name}") for d in CATALOGUE.values() for c in d.cases]
TEST_CONF = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
             "spark.log.level": "ERROR", "spark.driver.memory": "1g"}


@pytest.fixture(scope="session")
def spark():
    session = engine.session(engine.SparkOptions(master="local[2]", app_name="analyzer-tests", conf=TEST_CONF))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def corpus_dataset(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    """The fixtures and a 50k-event generated corpus (duplicates included), in one dataset."""
    from synth import write_corpus

    root = tmp_path_factory.mktemp("spark-corpus")
    write_corpus(root / "synth", 50_000, seed=11, workers=1)
    data = root / "data"
    stats = ingest_objects(walk([fixtures_dir / "AWSLogs", root / "synth"]), data, workers=1)
    assert stats.failed == 0 and stats.events > 50_000
    return data


def keyed(alerts: list[dict]) -> dict[tuple, dict]:
    """Alert by (detection, principal, first/last seen, count, event ids): what must agree, and the rest."""
    out = {}
    for a in alerts:
        key = (a["detection_id"], a["principal"] or "", a["first_seen"], a["last_seen"], a["count"],
               tuple(sorted(a["event_ids"])))
        assert key not in out, f"two alerts of {key[0]} with the same events"
        out[key] = {**a, "details": json.loads(a["details"])}
    return out


def assert_same_alerts(expected: list[dict], found: list[dict]) -> None:
    want, got = keyed(expected), keyed(found)
    assert sorted(got) == sorted(want)
    for key, alert in want.items():
        assert got[key] == alert, f"{key[0]}: the alert differs beyond its key"


def test_every_detection_alerts_as_on_duckdb(spark, corpus_dataset: Path) -> None:
    con = connect(corpus_dataset)
    try:
        expected = run_detections(con).alerts.to_dicts()
    finally:
        con.close()
    dataset = engine.open_dataset(spark, corpus_dataset)
    assert dataset.dedup == "index" and dataset.files > 7
    found = engine.run_detections(spark).alerts.to_dicts()
    fired = {a["detection_id"] for a in expected}
    assert len(expected) > 100 and len(fired) >= 15, "the corpus must make most detections fire"
    assert_same_alerts(expected, found)


def test_a_window_and_its_lookback_as_on_duckdb(spark, corpus_dataset: Path) -> None:
    since, until = datetime(2026, 10, 3, 6, tzinfo=UTC), datetime(2026, 10, 5, 18, tzinfo=UTC)
    only = ["console-brute-force", "console-login-failures", "root-activity", "console-user-without-mfa",
            "mfa-failure"]
    con = connect(corpus_dataset)
    try:
        expected = run_detections(con, since=since, until=until, only=only).alerts.to_dicts()
        whole = run_detections(con, only=only).alerts.height
    finally:
        con.close()
    engine.open_dataset(spark, corpus_dataset)
    found = engine.run_detections(spark, since=since, until=until, only=only).alerts.to_dicts()
    assert 0 < len(expected) < whole
    assert_same_alerts(expected, found)
    assert engine.data_extent(spark, parse_window(since, until))[0] > 0


def test_both_deduplications_show_duckdb_events(spark, corpus_dataset: Path) -> None:
    con = connect(corpus_dataset)
    try:
        events, delivered = (con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("events", "events_all"))
    finally:
        con.close()
    assert events < delivered  # the corpus has second deliveries
    engine.open_dataset(spark, corpus_dataset)
    by_index = spark.sql("select count(*) from events").collect()[0][0]
    by_window = spark.sql(f"select count(*) from ({dialects.events_query('spark')})").collect()[0][0]
    assert (by_index, by_window, spark.sql("select count(*) from events_all").collect()[0][0]) == (
        events, events, delivered)


@pytest.mark.parametrize(("detection", "case"), CASES)
def test_every_case_passes_on_spark(spark, detection, case) -> None:
    run = engine.run_case(spark, CATALOGUE, detection, case)
    problems = case_problems(case, run.alerts)
    assert not problems, f"{detection.id} / {case.name} on Spark: " + "; ".join(problems)


def test_spark_reads_a_published_prefix_through_its_listing(spark, s3: S3Server, fixtures_dataset: Path,
                                                            tmp_path: Path) -> None:
    """What `analyzer publish` leaves, read by Spark as a URL (here a file:// copy of the bucket: the s3a
    connector's jars are not on this machine); the events view deduplicates by window there."""
    s3.client().create_bucket(Bucket="lake")
    publish(fixtures_dataset, "s3://lake/ct", endpoint_url=s3.endpoint_url)
    client = s3.client()
    mirror = tmp_path / "lake"
    for item in client.list_objects_v2(Bucket="lake")["Contents"]:
        path = mirror / item["Key"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket="lake", Key=item["Key"])["Body"].read())
    (mirror / "ct" / "event_date=2026-11-20" / "part-stray.parquet").write_bytes(b"not listed: never read")
    con = connect(fixtures_dataset)
    try:
        expected = run_detections(con).alerts.to_dicts()
    finally:
        con.close()
    dataset = engine.open_dataset(spark, f"file://{mirror / 'ct'}")
    assert dataset.dedup == "window"
    assert_same_alerts(expected, engine.run_detections(spark).alerts.to_dicts())


def test_detect_engine_spark_writes_duckdb_report(spark, fixtures_dataset: Path, tmp_path: Path,
                                                  runner: CliRunner) -> None:
    reports = {}
    for name in ("duckdb", "spark"):
        out = tmp_path / f"{name}.jsonl"
        result = runner.invoke(app, ["detect", "--data", str(fixtures_dataset), "--engine", name, "-o", str(out)])
        assert result.exit_code == 3, result.output  # findings at or above high
        reports[name] = sorted(out.read_text().splitlines())
    assert reports["spark"] == reports["duckdb"] and len(reports["duckdb"]) > 20


def test_list_indexes_mean_what_they_mean_in_duckdb(spark) -> None:
    sql = "select l[-1] as last, l[1] as first, l[2] as second, l[9] as beyond from (select ['a', 'b', 'c'] as l)"
    row = spark.sql(dialects.transpile(sql, "spark", values={}).sql).collect()[0]
    assert tuple(row) == ("c", "a", "b", None)
