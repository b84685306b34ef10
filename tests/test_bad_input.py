"""Bad input gets a clear message naming the file (and record), loses nothing, and the run goes on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from analyzer import ExitCode, connect, ingest
from analyzer.ingest import rebuild_record
from analyzer.sources.local import walk
from analyzer.store import Dataset

from records import log_key, record, write_log


def run(root: Path, data: Path):  # type: ignore[no-untyped-def]
    return ingest(walk([root]), data, workers=1)


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
