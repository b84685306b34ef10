"""Deduplication hides a row only when another row is the same event, and its index trips no reader.

Regressions of issue 10: two different failed sign-ins sharing one ``eventID`` (as in a public
sample) lost one of them from ``events``; the index sat in ``_analyzer/duplicates/*.parquet``,
where a recursive ``**/*.parquet`` glob (DuckDB with or without ``hive_partitioning``, Polars)
found it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import connect, ingest_objects
from analyzer.detect import run_detections
from analyzer.sources.local import walk
from analyzer.store import Dataset

from records import log_key, record, write_log

SHARED_ID = "a3000000-0000-4000-8000-00000000dead"


def failed_signin(user: str, ip: str, time: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "accessKeyId": "", "userName": user},
        "eventTime": time, "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": ip, "userAgent": "Mozilla/5.0",
        "errorMessage": "Failed authentication", "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"MFAUsed": "No"}, "eventID": SHARED_ID, "eventType": "AwsConsoleSignIn",
        "recipientAccountId": "111122223333",
    }


@pytest.fixture
def collision(tmp_path: Path) -> Path:
    """Two different failed sign-ins under one eventID, in two log files; one true re-delivery."""
    logs = tmp_path / "logs"
    jane = failed_signin("JaneDoe", "192.0.2.100", "2026-11-20T10:00:00Z")
    bob = failed_signin("bob", "198.51.100.9", "2026-11-20T10:00:07Z")
    write_log(logs, log_key(0), [jane, record(1)])
    write_log(logs, log_key(5, suffix="Other00000000001"), [bob])
    write_log(logs, log_key(9, suffix="Duplicate0000001"), [copy.deepcopy(jane)])  # the same event again
    data = tmp_path / "data"
    stats = ingest_objects(walk([logs]), data, workers=1)
    assert stats.failed == 0 and stats.events == 4 and stats.duplicates == 1
    return data


def test_different_events_sharing_an_event_id_both_stay_and_both_alert(collision: Path) -> None:
    con = connect(collision)
    users = con.execute("select userIdentity.userName from events where eventID = ? order by 1", [SHARED_ID]).fetchall()
    assert users == [("JaneDoe",), ("bob",)]  # the re-delivery of JaneDoe's is merged, bob's is not
    assert con.execute("select count(*) from events_all where eventID = ?", [SHARED_ID]).fetchone() == (3,)
    alerts = run_detections(con, only=["console-login-failures"]).alerts
    assert sorted(alerts["source_ip"].to_list()) == ["192.0.2.100", "198.51.100.9"]
    assert all(a == [SHARED_ID] for a in alerts["event_ids"].to_list())


def test_the_window_fallback_merges_exactly_what_the_index_does(collision: Path) -> None:
    indexed = connect(collision).execute("select source_object, record_index from events order by all").fetchall()
    with Dataset(collision) as dataset:
        dataset.manifest.mark_stale(dataset.days())  # as if an ingest died before indexing
    fallback = connect(collision).execute("select source_object, record_index from events order by all").fetchall()
    assert fallback == indexed and len(indexed) == 3


def test_in_memory_tables_dedup_by_identity_too() -> None:
    from analyzer.detect.cases import events_connection

    jane = failed_signin("JaneDoe", "192.0.2.100", "2026-11-20T10:00:00Z")
    con = events_connection([jane, failed_signin("bob", "198.51.100.9", "2026-11-20T10:00:07Z"), jane])
    assert con.execute("select count(*) from events").fetchone() == (2,)


def test_no_analyzer_parquet_where_a_recursive_glob_finds_it(collision: Path) -> None:
    stray = [p for p in collision.rglob("*.parquet") if not p.parent.name.startswith("event_date=")]
    assert stray == []
    pattern = str(collision / "**" / "*.parquet")
    con = duckdb.connect()
    hive = con.execute("select count(*), count(eventID) from read_parquet($p, hive_partitioning = true)",
                       {"p": pattern})
    assert hive.fetchone() == (4, 4)
    assert con.execute("select count(*), count(eventID) from read_parquet($p)", {"p": pattern}).fetchone() == (4, 4)
    assert pl.scan_parquet(pattern).select(pl.len()).collect().item() == 4


def test_a_legacy_index_file_is_not_trusted_then_replaced(collision: Path, tmp_path: Path) -> None:
    legacy = collision / "_analyzer" / "duplicates"
    legacy.mkdir(exist_ok=True)
    wrong = pa.table({"source_object": pa.array([], pa.string()), "record_index": pa.array([], pa.int64())})
    pq.write_table(wrong, legacy / "2026-11-20.parquet")  # an older version's (empty) index: would show doubles
    assert connect(collision).execute("select count(*) from events").fetchone() == (3,)
    more = tmp_path / "more"
    write_log(more, log_key(20, suffix="Later00000000001"), [record(7)])
    assert ingest_objects(walk([more]), collision, workers=1).failed == 0
    assert not any(legacy.glob("*.parquet"))
    assert connect(collision).execute("select count(*) from events").fetchone() == (4,)


# -- property: whatever the deliveries, events holds each distinct event once ----------------------

#: A delivered record: which of a few eventIDs, principals, seconds; or no eventID at all.
RECORDS = st.lists(
    st.tuples(st.sampled_from(["e1", "e2", "e3", None]), st.sampled_from(["alice", "bob"]), st.integers(0, 2)),
    min_size=1, max_size=12,
)


def make(event_id: str | None, user: str, second: int) -> dict[str, Any]:
    row = record(0, time=f"2026-11-20T10:00:0{second}Z")
    row["userIdentity"]["userName"] = user
    row["userIdentity"]["arn"] = f"arn:aws:iam::111122223333:user/{user}"
    if event_id is None:
        del row["eventID"]
    else:
        row["eventID"] = event_id
    return row


def expected(deliveries: list[list[tuple[str | None, str, int]]]) -> list[tuple[str | None, str, int]]:
    rows = [r for log in deliveries for r in log]
    distinct = {r for r in rows if r[0] is not None}
    return sorted([*distinct, *(r for r in rows if r[0] is None)], key=str)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(RECORDS, min_size=1, max_size=3))
def test_events_holds_each_distinct_event_once_whatever_the_deliveries(
        tmp_path_factory: pytest.TempPathFactory, deliveries: list[list[tuple[str | None, str, int]]]) -> None:
    root = tmp_path_factory.mktemp("prop")
    for n, log in enumerate(deliveries):
        write_log(root / "logs", log_key(n, suffix=f"Delivery{n:08d}"), [make(*r) for r in log])
    assert ingest_objects(walk([root / "logs"]), root / "data", workers=1, compact_partitions=False).failed == 0
    query = "select eventID, userIdentity.userName, second(eventTime) from events"
    indexed = sorted(connect(root / "data").execute(query).fetchall(), key=str)
    assert indexed == expected(deliveries)
    with Dataset(root / "data") as dataset:
        dataset.manifest.mark_stale(dataset.days())
    assert sorted(connect(root / "data").execute(query).fetchall(), key=str) == indexed  # the window fallback
