"""CloudTrail in every shape it travels in: the bundled fixture records, wrapped as each delivery path
wraps them (gzipped where the real deliveries are), go through the real ``analyzer ingest``; each
lands once, ``rebuild_record`` gives it back exactly, and its wrapper is recoverable."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.ingest import rebuild_record
from analyzer.ingest.shapes import WRAPPER_KEY, rewrap, wrapper_of
from analyzer.sources.local import walk
from analyzer.store import Dataset

from records import log_key, record, write_log

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
AWSLOGS = FIXTURES / "AWSLogs"
SHAPES = FIXTURES / "shapes"
STRING_KEYS = ("message", "CloudTrailEvent", "eventJson", "eventjson")

Files = list[tuple[str, bytes]]
Items = list[Any]


def fixture_records() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(AWSLOGS.rglob("*.json.gz")):
        if "CloudTrail-Digest" not in str(path):
            found.extend(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    return found


RECORDS = fixture_records()


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def text(record_: dict[str, Any]) -> str:
    return json.dumps(record_, separators=(",", ":"), ensure_ascii=False)


def millis(record_: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(record_["eventTime"].replace("Z", "+00:00")).timestamp() * 1000)


# --- the shapes, built as AWS builds them ---------------------------------------------------------


def eventbridge_event(record_: dict[str, Any], number: int) -> dict[str, Any]:
    kind = {
        "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
        "AwsServiceEvent": "AWS Service Event via CloudTrail",
    }.get(record_.get("eventType", ""), "AWS API Call via CloudTrail")
    return {
        "version": "0",
        "id": f"6a7e8feb-b491-4cf7-a9f1-{number:012d}",
        "detail-type": kind,
        "source": "aws." + str(record_.get("eventSource", "unknown")).split(".")[0],
        "account": record_.get("recipientAccountId", "111122223333"),
        "time": record_.get("eventTime"),
        "region": record_.get("awsRegion", "us-east-1"),
        "resources": [],
        "detail": record_,
    }


def log_event(record_: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "id": f"3195310660696698337880902507980421114328961542429{number:07d}",
        "timestamp": millis(record_),
        "message": text(record_),
    }


def payload(records: list[dict[str, Any]], start: int, kind: str = "DATA_MESSAGE") -> dict[str, Any]:
    return {
        "messageType": kind,
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs-111122223333-0a1b2c3d",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["cloudtrail-to-firehose"],
        "logEvents": [log_event(r, start + i) for i, r in enumerate(records)],
    }


def eventbridge_files(records: list[dict[str, Any]], how: str) -> tuple[Files, Items]:
    events = [eventbridge_event(r, i) for i, r in enumerate(records)]
    if how == "one-per-file":
        files = [(f"eb/{i:04d}.json", json.dumps(e).encode()) for i, e in enumerate(events)]
    elif how == "array":
        files = [("eb/events.json", json.dumps(events, indent=2).encode())]
    elif how == "json-lines":  # Firehose with a newline delimiter, gzipped
        files = [("eb/firehose.gz", gzip.compress(b"\n".join(json.dumps(e).encode() for e in events) + b"\n"))]
    else:  # Firehose without a delimiter: the events run together
        files = [("eb/firehose-raw", b"".join(json.dumps(e, separators=(",", ":")).encode() for e in events))]
    return files, events


def chunks(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def subscription_files(records: list[dict[str, Any]], how: str) -> tuple[Files, Items]:
    parts = chunks(records, 7)
    payloads = [payload(part, 100 * n) for n, part in enumerate(parts)]
    items = [e for p in payloads for e in p["logEvents"]]
    if how == "gzip":  # what Kinesis or a Lambda receives: one gzipped payload each
        files = [(f"cwl/{n:04d}.gz", gzip.compress(json.dumps(p).encode())) for n, p in enumerate(payloads)]
    elif how == "firehose":  # Firehose to S3 without decompression: gzip members back to back
        control = payload([], 0, "CONTROL_MESSAGE")
        control["logEvents"] = [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health"}]
        members = [gzip.compress(json.dumps(p).encode()) for p in [control, *payloads]]
        files = [("cwl/firehose-1-2026-11-20", b"".join(members))]
    else:  # the event a Lambda subscription receives
        files = [
            (
                f"cwl/lambda-{n}.json",
                json.dumps(
                    {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(p).encode())).decode()}}
                ).encode(),
            )
            for n, p in enumerate(payloads)
        ]
    return files, items


def log_events_files(records: list[dict[str, Any]]) -> tuple[Files, Items]:
    """``aws logs filter-log-events`` output, page by page."""
    files, items = [], []
    for n, part in enumerate(chunks(records, 50)):
        events = [
            {
                "logStreamName": "111122223333_CloudTrail_us-east-1",
                "timestamp": millis(r),
                "message": text(r),
                "ingestionTime": millis(r) + 900,
                "eventId": f"{n}-{i}",
            }
            for i, r in enumerate(part)
        ]
        items.extend(events)
        files.append(
            (
                f"cwl/filter-log-events-{n}.json",
                json.dumps({"events": events, "searchedLogStreams": [], "nextToken": f"t{n}"}, indent=4).encode(),
            )
        )
    return files, items


def export_files(records: list[dict[str, Any]]) -> tuple[Files, Items]:
    """A CloudWatch Logs export task's object: gzipped lines of ``<ISO time> <message>``."""
    items = [{"timestamp": r["eventTime"].replace("Z", ".000Z"), "message": text(r)} for r in records]
    lines = "".join(f"{item['timestamp']} {item['message']}\n" for item in items)
    return [("exportedlogs/0a1b2c3d/111122223333_CloudTrail_us-east-1/000000.gz", gzip.compress(lines.encode()))], items


def lookup_files(records: list[dict[str, Any]]) -> tuple[Files, Items]:
    files: Files = []
    items: Items = []
    for n, part in enumerate(chunks(records, 50)):
        events: list[dict[str, Any]] = [
            {
                "EventId": r.get("eventID"),
                "EventName": r.get("eventName"),
                "ReadOnly": "true",
                "EventTime": r.get("eventTime"),
                "EventSource": r.get("eventSource"),
                "Resources": [],
                "CloudTrailEvent": text(r),
            }
            for r in part
        ]
        items.extend(events)
        files.append((f"lookup/page-{n}.json", json.dumps({"Events": events, "NextToken": f"n{n}"}).encode()))
    return files, items


def lake_files(records: list[dict[str, Any]], how: str) -> tuple[Files, Items]:
    if how == "json":  # aws cloudtrail get-query-results, SELECT eventJson, eventID FROM ...
        rows = [[{"eventJson": text(r)}, {"eventID": str(r.get("eventID"))}] for r in records]
        document = {
            "QueryStatus": "FINISHED",
            "QueryStatistics": {"ResultsCount": len(rows), "TotalResultsCount": len(rows), "BytesScanned": 4096},
            "QueryResultRows": rows,
        }
        return [("lake/results.json", json.dumps(document).encode())], rows
    buffer = io.StringIO()  # a saved result file: result_1.csv.gz
    writer = csv.writer(buffer)
    writer.writerow(["eventid", "eventjson"])
    items = []
    for r in records:
        writer.writerow([str(r.get("eventID")), text(r)])
        items.append({"eventid": str(r.get("eventID")), "eventjson": text(r)})
    return [("lake/result_1.csv.gz", gzip.compress(buffer.getvalue().encode()))], items


BUILDERS: dict[str, Callable[[list[dict[str, Any]]], tuple[Files, Items]]] = {
    "eventbridge-one-per-file": lambda rs: eventbridge_files(rs, "one-per-file"),
    "eventbridge-array": lambda rs: eventbridge_files(rs, "array"),
    "eventbridge-json-lines": lambda rs: eventbridge_files(rs, "json-lines"),
    "eventbridge-run-together": lambda rs: eventbridge_files(rs, "run-together"),
    "cloudwatch-subscription-gzip": lambda rs: subscription_files(rs, "gzip"),
    "cloudwatch-subscription-firehose": lambda rs: subscription_files(rs, "firehose"),
    "cloudwatch-subscription-lambda": lambda rs: subscription_files(rs, "lambda"),
    "cloudwatch-filter-log-events": log_events_files,
    "cloudwatch-s3-export": export_files,
    "lookup-events": lookup_files,
    "lake-get-query-results": lambda rs: lake_files(rs, "json"),
    "lake-saved-csv": lambda rs: lake_files(rs, "csv"),
}
SHAPE_OF = {
    "eventbridge": "eventbridge",
    "cloudwatch-subscription": "cloudwatch-logs-subscription",
    "cloudwatch-filter": "cloudwatch-logs-events",
    "cloudwatch-s3": "cloudwatch-logs-export",
    "lookup": "lookup-events",
    "lake": "lake-query-results",
}


def write(root: Path, files: Files) -> None:
    for name, data in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def rows(data: Path) -> list[dict[str, Any]]:
    table = ds.dataset(data, format="parquet", partitioning="hive", exclude_invalid_files=True).to_table()
    return table.to_pylist()


def normal(value: Any) -> Any:
    """A wrapped item with its record strings parsed (a rewrapped record is the same value, not bytes)."""
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, dict):
        return {k: json.loads(v) if k in STRING_KEYS and isinstance(v, str) else normal(v) for k, v in value.items()}
    return value


def ingest_cli(runner: CliRunner, root: Path, data: Path) -> str:
    result = runner.invoke(app, ["ingest", str(root), "--data", str(data)])
    assert result.exit_code in (0, 4), result.output
    return result.output


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", sorted(BUILDERS))
def test_each_shape_lands_every_record_once_losslessly(shape: str, runner: CliRunner, tmp_path: Path) -> None:
    files, items = BUILDERS[shape](RECORDS)
    write(tmp_path / "in", files)
    output = ingest_cli(runner, tmp_path / "in", tmp_path / "data")
    assert "failed:" not in output, output
    landed = rows(tmp_path / "data")
    assert sorted(canon(rebuild_record(row)) for row in landed) == sorted(canon(r) for r in RECORDS)
    wrappers = [wrapper_of(row) for row in landed]
    expected_shape = next(v for k, v in SHAPE_OF.items() if shape.startswith(k))
    assert {w["shape"] if w else None for w in wrappers} == {expected_shape}
    rewrapped = [normal(rewrap(rebuild_record(row), w)) for row, w in zip(landed, wrappers, strict=True) if w]
    assert sorted(map(canon, rewrapped)) == sorted(canon(normal(item)) for item in items)
    with Dataset(tmp_path / "data") as dataset:
        assert list(dataset.quarantined()) == []


def test_eventbridge_envelope_is_recoverable_exactly(tmp_path: Path) -> None:
    files, events = eventbridge_files(RECORDS[:5], "array")
    write(tmp_path / "in", files)
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    by_id = {e["detail"]["eventID"]: e for e in events}
    for row in rows(tmp_path / "data"):
        wrapper = wrapper_of(row)
        assert wrapper is not None
        event = by_id[row["eventID"]]
        assert wrapper["envelope"] == {k: v for k, v in event.items() if k != "detail"}
        assert rewrap(rebuild_record(row), wrapper) == event


def test_bad_inner_records_are_quarantined_by_index(tmp_path: Path) -> None:
    good = RECORDS[:6]
    events = [log_event(r, i) for i, r in enumerate(good)]
    events.insert(2, {"id": "x2", "timestamp": 1, "message": text(good[0])[:-40]})  # truncated record
    events.insert(4, {"id": "x4", "timestamp": 2, "message": "[INFO] app started"})  # not JSON
    cwl = payload([], 0)
    cwl["logEvents"] = events
    write(tmp_path / "in", [("cwl/0.gz", gzip.compress(json.dumps(cwl).encode()))])
    lookups = [
        {"EventId": "e0", "CloudTrailEvent": text(good[0])},
        {"EventId": "e1", "CloudTrailEvent": '{"eventID": '},
    ]
    write(tmp_path / "in", [("lookup.json", json.dumps({"Events": lookups}).encode())])
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    assert (stats.ingested, stats.failed, stats.events, stats.quarantined) == (2, 0, 7, 3)
    with Dataset(tmp_path / "data") as dataset:
        held = sorted(
            (Path(q["source_object"]).name, q["record_index"], q["reason"], q["raw"]) for q in dataset.quarantined()
        )
    assert [(name, index) for name, index, _, _ in held] == [("0.gz", 2), ("0.gz", 4), ("lookup.json", 1)]
    assert "CloudWatch Logs log event: invalid JSON" in held[0][2] and json.loads(held[0][3])["id"] == "x2"
    assert "the message is not JSON" in held[1][2] and json.loads(held[1][3])["id"] == "x4"
    assert "lookup-events event: invalid JSON" in held[2][2] and json.loads(held[2][3])["EventId"] == "e1"


def test_non_cloudtrail_documents_are_skipped_or_quarantined_with_a_reason(tmp_path: Path) -> None:
    ec2 = {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2026-11-20T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"instance-id": "i-0123456789abcdef0", "state": "running"},
    }
    lines = [
        json.dumps(eventbridge_event(RECORDS[0], 0)),
        json.dumps(ec2),
        json.dumps(eventbridge_event(RECORDS[1], 1)),
    ]
    write(
        tmp_path / "in",
        [
            ("ec2.json", json.dumps(ec2).encode()),
            ("mixed.jsonl", "\n".join(lines).encode()),
            ("control.gz", gzip.compress(json.dumps(payload([], 0, "CONTROL_MESSAGE")).encode())),
        ],
    )
    (tmp_path / "in" / "lambda.json").write_bytes((SHAPES / "lambda-awslogs.aws-doc-example.json").read_bytes())
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    skips = {Path(uri).name: reason for uri, reason in stats.skips}
    assert set(skips) == {"ec2.json", "control.gz", "lambda.json"}
    assert (
        "'EC2 Instance State-change Notification' from 'aws.ec2': its detail is not a CloudTrail record"
        in skips["ec2.json"]
    )
    assert "CONTROL_MESSAGE" in skips["control.gz"]
    assert (
        "2 item(s) not CloudTrail records" in skips["lambda.json"] and "the message is not JSON" in skips["lambda.json"]
    )
    assert (stats.events, stats.quarantined) == (2, 1)
    with Dataset(tmp_path / "data") as dataset:
        [held] = list(dataset.quarantined())
    assert held["record_index"] == 1 and held["reason"].startswith("line 2: EventBridge event")
    assert json.loads(held["raw"]) == ec2


def test_the_aws_cli_lookup_events_example_is_read(tmp_path: Path) -> None:
    source = SHAPES / "lookup-events.aws-cli-example.json"
    document = json.loads(source.read_text())
    stats = ingest_objects(walk([source]), tmp_path / "data", workers=1)
    assert (stats.ingested, stats.events, stats.quarantined) == (1, 1, 0)
    [row] = rows(tmp_path / "data")
    assert rebuild_record(row) == json.loads(document["Events"][0]["CloudTrailEvent"])
    assert row["eventName"] == "ConsoleLogin" and row["userIdentity"]["type"] == "AssumedRole"
    assert normal(rewrap(rebuild_record(row), wrapper_of(row) or {})) == normal(document["Events"][0])


def test_one_event_delivered_in_two_shapes_counts_once(tmp_path: Path) -> None:
    files, _ = eventbridge_files(RECORDS, "json-lines")
    write(tmp_path / "eventbridge", files)
    ingest_objects(walk([AWSLOGS, tmp_path / "eventbridge"]), tmp_path / "data", workers=1)
    con = connect(tmp_path / "data")
    unique = {(r["eventID"], r["eventTime"], r["eventName"]) for r in RECORDS}
    assert con.execute("select count(*) from events").fetchone() == (len(unique),)
    assert con.execute("select count(*) from events_all").fetchone() == (2 * len(RECORDS),)
    distinct = con.execute("select count(*) from (select distinct eventID, eventTime, eventName from events)")
    assert distinct.fetchone() == (len(unique),)


def test_a_record_with_the_reserved_key_of_its_own_round_trips(tmp_path: Path) -> None:
    own = {**record(1), WRAPPER_KEY: {"shape": "forged", "key": "detail"}}
    write_log(tmp_path / "in", log_key(), [own])
    event = eventbridge_event({**record(2), WRAPPER_KEY: "mine"}, 2)
    write(tmp_path / "in", [("eb.json", json.dumps(event).encode())])
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    landed = {row["eventID"]: row for row in rows(tmp_path / "data")}
    plain, wrapped = landed[own["eventID"]], landed[event["detail"]["eventID"]]
    assert rebuild_record(plain) == own and wrapper_of(plain) is None
    assert rebuild_record(wrapped) == event["detail"]
    assert rewrap(rebuild_record(wrapped), wrapper_of(wrapped) or {}) == event


SHAPE_NAMES = sorted(BUILDERS)
FAST_TMP = "/dev/shm" if Path("/dev/shm").is_dir() else None  # a hundred small datasets: memory, not disk


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(SHAPE_NAMES),
            st.lists(st.integers(0, len(RECORDS) - 1), min_size=1, max_size=12, unique=True),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_random_records_in_random_shapes_land_once_and_round_trip(groups: list[tuple[str, list[int]]]) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as folder:
        root = Path(folder)
        expected: list[dict[str, Any]] = []
        for number, (shape, picks) in enumerate(groups):
            chosen = [RECORDS[i] for i in picks]
            files, _ = BUILDERS[shape](chosen)
            write(root / "in" / f"g{number}", files)
            expected.extend(chosen)
        stats = ingest_objects(walk([root / "in"]), root / "data", workers=1, compact_partitions=False)
        assert (stats.failed, stats.quarantined) == (0, 0)
        assert sorted(canon(rebuild_record(row)) for row in rows(root / "data")) == sorted(map(canon, expected))


def test_sniffing_leaves_plain_logs_alone(tmp_path: Path) -> None:
    """A plain log whose records mention the wrappers' key names is read as records, nothing else."""
    tricky = [
        record(1, requestParameters={"entries": [{"detail-type": "x", "detail": "{}", "source": "app"}]}),
        record(2, requestParameters={"logEvents": [{"message": "m"}], "messageType": "DATA_MESSAGE"}),
    ]
    path = tmp_path / "in" / "lines.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(r) for r in tricky))
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    assert (stats.events, stats.quarantined) == (2, 0)
    assert sorted(map(canon, map(rebuild_record, rows(tmp_path / "data")))) == sorted(map(canon, tricky))
    assert all(wrapper_of(row) is None for row in rows(tmp_path / "data"))


def test_odd_records_inside_wrappers_keep_their_originals(tmp_path: Path) -> None:
    """A lone surrogate in a log event's message, a duplicate key in an EventBridge detail: the record
    keeps its original (as any record does) and its wrapper; one without eventTime is quarantined."""
    odd = {**record(1), "eventName": "\ud800"}
    message = json.dumps(odd)  # the surrogate as its \\ud800 escape, as CloudWatch Logs carries it
    cwl = payload([], 0)
    cwl["logEvents"] = [{"id": "1", "timestamp": 1, "message": message}]
    detail = json.dumps(record(2))[:-1] + ', "eventName": "Twice"}'
    event = json.dumps({**eventbridge_event(record(2), 2), "detail": None})[:-5] + detail + "}"
    timeless = eventbridge_event({k: v for k, v in record(3).items() if k != "eventTime"}, 3)
    write(
        tmp_path / "in",
        [
            ("cwl.gz", gzip.compress(json.dumps(cwl).encode())),
            ("eb.json", event.encode()),
            ("timeless.json", json.dumps(timeless).encode()),
        ],
    )
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    assert (stats.events, stats.quarantined) == (2, 1)
    landed = {row["eventID"]: row for row in rows(tmp_path / "data")}
    surrogate = landed[odd["eventID"]]
    assert rebuild_record(surrogate) == odd and surrogate["eventName"] == "\ufffd"
    assert (wrapper_of(surrogate) or {})["item"] == {"id": "1", "timestamp": 1}
    twice = landed[record(2)["eventID"]]
    assert rebuild_record(twice) == json.loads(detail) and twice["eventName"] == "Twice"
    assert (wrapper_of(twice) or {})["shape"] == "eventbridge"
    with Dataset(tmp_path / "data") as dataset:
        [held] = list(dataset.quarantined())
    assert Path(held["source_object"]).name == "timeless.json" and "eventTime" in held["reason"]
