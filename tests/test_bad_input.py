"""Bad input gets a clear message naming the file (and record), loses nothing, and the run goes on."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from analyzer import ExitCode, connect, ingest_objects
from analyzer.ingest import rebuild_record
from analyzer.ingest.records import original_bytes
from analyzer.sources.local import walk
from analyzer.store import Dataset

from records import log_key, record, write_log


def run(root: Path, data: Path):  # type: ignore[no-untyped-def]
    return ingest_objects(walk([root]), data, workers=1)


def good_file(root: Path) -> Path:
    return write_log(root, log_key(0, "Good000000000000"), [record(1), record(2)])


def test_corrupt_gzip_fails_that_object_only(tmp_path: Path) -> None:
    good_file(tmp_path / "in")
    bad = tmp_path / "in" / log_key(5, "Corrupt000000000")
    bad.write_bytes(gzip.compress(b'{"Records": []}')[:12] + b"garbage")
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.failed, stats.events) == (1, 1, 2)
    assert stats.failures[0][0] == str(bad) and "corrupt gzip" in stats.failures[0][1]
    assert stats.exit_code == ExitCode.PARTIAL


def test_truncated_json_is_failed_and_retried_once_fixed(tmp_path: Path) -> None:
    path = write_log(tmp_path / "in", log_key(), [record(1), record(2)], compress=False)
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 2])
    stats = run(tmp_path / "in", tmp_path / "data")
    assert stats.failed == 1 and "invalid JSON" in stats.failures[0][1]
    with Dataset(tmp_path / "data") as dataset:
        assert [row["status"] for row in dataset.manifest.objects()] == ["failed"]
    path.write_bytes(full)  # the object is repaired (re-delivered): the next run picks it up
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.events) == (1, 2)


def test_json_without_records_is_skipped_with_reason(tmp_path: Path) -> None:
    good_file(tmp_path / "in")
    (tmp_path / "in" / "config.json").write_text('{"configurationItems": []}')
    stats = run(tmp_path / "in", tmp_path / "data")
    assert stats.skipped == 1 and stats.failed == 0
    assert "without 'Records'" in stats.skips[0][1]


def test_records_that_is_not_an_array_fails(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "odd.json").write_text('{"Records": {"eventTime": "x"}}')
    stats = run(tmp_path / "in", tmp_path / "data")
    assert stats.failed == 1 and "'Records' is a dict" in stats.failures[0][1]


def test_record_without_event_time_is_quarantined_raw(tmp_path: Path) -> None:
    broken = record(2)
    del broken["eventTime"]
    path = write_log(tmp_path / "in", log_key(), [record(1), broken, record(3)])
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.quarantined, stats.exit_code) == (2, 1, ExitCode.PARTIAL)
    with Dataset(tmp_path / "data") as dataset:
        [item] = list(dataset.quarantined())
    assert item["source_object"] == str(path) and item["record_index"] == 1
    assert item["reason"] == "record has no eventTime"
    assert json.loads(item["raw"]) == broken


def test_unreadable_event_time_is_quarantined(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1, time="yesterday"), record(2)])
    stats = run(tmp_path / "in", tmp_path / "data")
    with Dataset(tmp_path / "data") as dataset:
        [item] = list(dataset.quarantined())
    assert stats.events == 1 and "unreadable eventTime 'yesterday'" in item["reason"]


def test_a_record_that_is_not_an_object_is_quarantined(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1), 42, "text"])  # type: ignore[list-item]
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.quarantined) == (1, 2)


def test_lone_surrogate_is_kept_losslessly(tmp_path: Path) -> None:
    odd = record(1, userAgent="agent-\ud800-x", requestParameters={"name": "a\udfffb"})
    path = tmp_path / "in" / log_key()
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": [odd, record(2)]}).encode()))  # \\ud800 escapes
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.failed, stats.quarantined) == (2, 0, 0)
    con = connect(tmp_path / "data")
    row = con.sql("select * from events where eventID = ?", params=[odd["eventID"]]).to_arrow_table()
    assert row["userAgent"][0].as_py() == "agent-\ufffd-x"  # the typed column is valid UTF-8
    assert rebuild_record(row.to_pylist()[0]) == odd  # ... and the original is kept in `extra`


def test_ten_megabyte_record(tmp_path: Path) -> None:
    big = record(1, requestParameters={"policy": "x" * 10_000_000, "n": [1, 2.5, -3e10]})
    write_log(tmp_path / "in", log_key(), [big, record(2)])
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.failed) == (2, 0)
    row = connect(tmp_path / "data").sql(
        "select * from events where eventID = ?", params=[big["eventID"]]).to_arrow_table()
    assert rebuild_record(row.to_pylist()[0]) == big


@pytest.mark.parametrize("shape", ["plain", "array", "jsonl", "gzip-jsonl"])
def test_content_is_sniffed_not_the_extension(shape: str, tmp_path: Path) -> None:
    records = [record(1), record(2), record(3)]
    body = {
        "plain": json.dumps({"Records": records}).encode(),
        "array": json.dumps(records, indent=2).encode(),
        "jsonl": "\n".join(json.dumps(r) for r in records).encode(),
        "gzip-jsonl": gzip.compress("\n".join(json.dumps(r) for r in records).encode()),
    }[shape]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "events.log").write_bytes(body)
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.events) == (1, 3)


def test_bad_line_in_json_lines_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    lines = [json.dumps(record(1)), '{"eventTime": "2026-11-20T10:00:00Z", "eventID": ', json.dumps(record(3))]
    (tmp_path / "in" / "events.jsonl").write_text("\n".join(lines))
    stats = run(tmp_path / "in", tmp_path / "data")
    with Dataset(tmp_path / "data") as dataset:
        [item] = list(dataset.quarantined())
    assert (stats.events, stats.quarantined) == (2, 1)
    assert item["reason"].startswith("line 2: invalid JSON")


def test_digest_and_insight_objects_are_skipped_unread(tmp_path: Path) -> None:
    good_file(tmp_path / "in")
    digest = tmp_path / "in/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/x_CloudTrail-Digest_y.json.gz"
    digest.parent.mkdir(parents=True)
    digest.write_bytes(b"not even gzip")
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.skipped, stats.failed) == (1, 1, 0)
    assert stats.skips == [(str(digest), "CloudTrail digest file")]


def test_odd_types_are_normalised_and_kept(tmp_path: Path) -> None:
    odd = record(
        1,
        readOnly="true",
        eventVersion=1.08,
        responseElements="a plain string",
        errorCode=None,
        newTopLevelField={"a": 1},
        userIdentity={"type": "IdentityCenterUser", "onBehalfOf": {"userId": "u-1", "identityStoreArn": "arn:x"},
                      "sessionContext": {"attributes": {"mfaAuthenticated": False}}, "futureField": 1},
    )
    write_log(tmp_path / "in", log_key(), [odd])
    run(tmp_path / "in", tmp_path / "data")
    con = connect(tmp_path / "data")
    row = con.sql("select * from events").to_arrow_table().to_pylist()[0]
    assert row["readOnly"] is True and row["eventVersion"] == "1.08"
    assert row["userIdentity"]["onBehalfOf"]["userId"] == "u-1"
    assert row["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
    assert json.loads(row["responseElements"]) == "a plain string"
    assert rebuild_record(row) == odd


def test_rerun_is_a_no_op(tmp_path: Path) -> None:
    good_file(tmp_path / "in")
    run(tmp_path / "in", tmp_path / "data")
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.unchanged, stats.events) == (0, 1, 0)
    assert connect(tmp_path / "data").execute("select count(*) from events_all").fetchone() == (2,)


# Regressions of issue 9: each of these failed on the code before it (a whole batch lost, a value
# silently changed, a valid file skipped).

def gzip_bad_deflate(payload: bytes) -> bytes:
    """A gzip header followed by a broken deflate stream: isal raises its own IsalError."""
    return gzip.compress(payload)[:10] + bytes([0xFF] * 64)


def test_a_broken_deflate_stream_fails_that_object_only(tmp_path: Path) -> None:
    good_file(tmp_path / "in")
    bad = tmp_path / "in" / log_key(5, "Deflate000000000")
    bad.write_bytes(gzip_bad_deflate(json.dumps({"Records": [record(3)]}).encode()))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.failed, stats.events) == (1, 1, 2)
    assert stats.failures[0][0] == str(bad) and stats.failures[0][1].startswith("corrupt gzip")


def test_one_bad_file_beside_the_fixtures_loses_none_of_them(tmp_path: Path, fixtures_dir: Path) -> None:
    shutil.copytree(fixtures_dir / "AWSLogs", tmp_path / "in" / "AWSLogs")
    expected = run(tmp_path / "in", tmp_path / "clean")
    bad = tmp_path / "in" / log_key(5, "Deflate000000000")
    bad.write_bytes(gzip_bad_deflate(b'{"Records": []}'))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.failed, stats.events) == (expected.ingested, 1, expected.events)
    assert expected.events > 300


def test_json_nested_too_deep_fails_that_object_only(tmp_path: Path) -> None:
    good_file(tmp_path / "in")
    deep = record(3, requestParameters={"a": "MARK"})
    text = json.dumps({"Records": [deep]}).replace('"MARK"', "[" * 5000 + "]" * 5000)
    write_bytes(tmp_path / "in" / log_key(5, "Deep000000000000"), gzip.compress(text.encode()))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.failed, stats.events) == (1, 1, 2)
    assert "nested deeper than" in stats.failures[0][1]


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_event_time_out_of_range_in_utc_is_quarantined(time: str, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1, time=time), record(2)])
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.events, stats.quarantined) == (1, 1, 1)
    with Dataset(tmp_path / "data") as dataset:
        [item] = list(dataset.quarantined())
    assert item["reason"] == f"unreadable eventTime {time!r}"


def test_an_object_whose_every_record_lacks_event_time_quarantines_them(tmp_path: Path) -> None:
    records = [record(i) for i in range(3)]  # a Logstash or Event-history export without eventTime
    for r in records:
        del r["eventTime"]
    path = write_log(tmp_path / "in", log_key(), records)
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.failed, stats.events, stats.quarantined) == (1, 0, 0, 3)
    with Dataset(tmp_path / "data") as dataset:
        quarantined = list(dataset.quarantined())
    assert [(q["source_object"], q["record_index"]) for q in quarantined] == [(str(path), i) for i in range(3)]
    assert [json.loads(q["raw"]) for q in quarantined] == records


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    body = b"\xef\xbb\xbf" + json.dumps({"Records": [record(1), record(2)]}).encode()
    write_bytes(tmp_path / "in" / log_key(), gzip.compress(body))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.skipped, stats.events) == (1, 0, 2)


def test_every_member_of_a_multi_member_gzip_is_read(tmp_path: Path) -> None:
    first, second = [record(1), record(2)], [record(3)]
    body = b"".join(gzip.compress(json.dumps({"Records": part}).encode()) for part in (first, second))
    path = write_bytes(tmp_path / "in" / log_key(), body)  # `cat a.json.gz b.json.gz`
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.events, stats.quarantined) == (1, 3, 0)
    rows = connect(tmp_path / "data").execute(
        "select source_object, record_index, eventID from events order by record_index").fetchall()
    assert rows == [(str(path), i, r["eventID"]) for i, r in enumerate(first + second)]


def test_log_files_run_together_on_one_line_are_all_read(tmp_path: Path) -> None:
    body = json.dumps({"Records": [record(1)]}) + json.dumps({"Records": [record(2), record(3)]})  # zcat *.gz
    write_bytes(tmp_path / "in" / "concatenated.json", body.encode())
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.ingested, stats.events, stats.quarantined) == (1, 3, 0)


def test_invalid_utf8_inside_a_blob_is_kept_losslessly(tmp_path: Path) -> None:
    body = json.dumps({"Records": [record(1, requestParameters={"name": "MARK"}), record(2)]}).encode()
    write_bytes(tmp_path / "in" / log_key(), gzip.compress(body.replace(b"MARK", b"a\xffb")))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.failed, stats.quarantined) == (2, 0, 0)
    assert "invalid UTF-8" in stats.warnings[0][1] and "kept in extra" in stats.warnings[0][1]
    con = connect(tmp_path / "data")
    assert con.execute("select json_extract_string(requestParameters, '$.name') from events "
                       "where record_index = 0").fetchall() == [("a\ufffdb",)]  # visibly replaced, queryable
    row = con.sql("select * from events where record_index = 0").to_arrow_table().to_pylist()[0]
    original = rebuild_record(row)["requestParameters"]["name"]
    assert original.encode("utf-8", "surrogateescape") == b"a\xffb"  # the original bytes, recoverable


def test_a_duplicate_key_is_kept_losslessly(tmp_path: Path) -> None:
    text = json.dumps({"Records": [record(1), record(2)]})
    twice = '"eventName": "ConsoleLogin", "eventName": "DescribeInstances"'
    text = text.replace('"eventName": "DescribeInstances"', twice, 1)
    write_bytes(tmp_path / "in" / log_key(), gzip.compress(text.encode()))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.quarantined) == (2, 0)
    assert "duplicate key" in stats.warnings[0][1]
    row = connect(tmp_path / "data").sql("select * from events where record_index = 0").to_arrow_table().to_pylist()[0]
    assert row["eventName"] == "DescribeInstances"  # JSON's usual reading: the last one
    original = original_bytes(json.loads(row["extra"]))
    assert original is not None and twice.encode() in original


def test_one_odd_record_does_not_send_its_file_down_the_lenient_path(tmp_path: Path) -> None:
    records = [record(i, requestParameters={"ratio": "MARK"}) for i in range(5)]
    records[2]["newTopLevelField"] = 1  # unknown to the schema: this record alone is lenient
    text = json.dumps({"Records": records}).replace('"MARK"', "1.50")
    write_bytes(tmp_path / "in" / log_key(), gzip.compress(text.encode()))
    stats = run(tmp_path / "in", tmp_path / "data")
    assert (stats.events, stats.quarantined) == (5, 0)
    blobs = connect(tmp_path / "data").execute(
        "select record_index, requestParameters from events order by record_index").fetchall()
    verbatim = [i for i, blob in blobs if '"ratio": 1.50' in blob]  # the strict path keeps the bytes as sent
    assert verbatim == [0, 1, 3, 4]


def test_a_lone_surrogate_in_a_blob_keeps_it_queryable(tmp_path: Path) -> None:
    odd = record(1, requestParameters={"userName": "a\ud800b"})
    write_bytes(tmp_path / "in" / log_key(), gzip.compress(json.dumps({"Records": [odd, record(2)]}).encode()))
    run(tmp_path / "in", tmp_path / "data")
    con = connect(tmp_path / "data")
    names = con.execute("select json_extract_string(requestParameters, '$.userName') from events "
                        "order by record_index").fetchall()  # DuckDB refuses JSON with a lone surrogate
    assert names == [("a\ufffdb",), (None,)]
    row = con.sql("select * from events where record_index = 0").to_arrow_table().to_pylist()[0]
    assert rebuild_record(row) == odd
