"""Object versions: a new version with the same bytes is recorded, not ingested again; new content
under a known key replaces the old rows, which stay as evidence and raise an alert.

Regressions of issue 10: after a ``touch`` the bundled fixtures went from 327 events and 48 alerts
to 0 and 0 (both copies' rows were marked duplicates of each other); a rewritten key kept its old
rows beside the new ones, without a word.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.detect import run_detections
from analyzer.jobs.pull import run_pull
from analyzer.sources.local import walk
from analyzer.sources.s3 import S3Source
from analyzer.store import Dataset
from analyzer.store.manifest import Rewrite

from records import log_key, record, write_log
from s3_server import S3Server, cloudtrail_key, log_bytes, make_events

A = "111111111111"


def counts(data: Path) -> tuple[int, int, int]:
    con = connect(data)
    try:
        events = con.execute("select count(*) from events").fetchone()[0]
        every = con.execute("select count(*) from events_all").fetchone()[0]
        return events, every, run_detections(con).alerts.height
    finally:
        con.close()


def manifest_records(data: Path) -> int:
    with Dataset(data) as dataset:
        return sum(int(row["records"]) for row in dataset.manifest.objects("ingested"))


@pytest.mark.parametrize("how", ["touch", "re-download"])
def test_a_new_version_with_the_same_bytes_keeps_every_event_and_alert(fixtures_dir: Path, tmp_path: Path,
                                                                       how: str) -> None:
    logs = tmp_path / "AWSLogs"
    shutil.copytree(fixtures_dir / "AWSLogs", logs)
    data = tmp_path / "data"
    first = ingest_objects(walk([logs]), data, workers=1)
    before = counts(data)
    assert first.failed == 0 and before[0] > 300 and before[2] > 40
    files = sorted(p for p in logs.rglob("*") if p.is_file())
    for path in files:
        if how == "touch":
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        else:  # deleted and fetched again: the same bytes, a new file
            body = path.read_bytes()
            path.unlink()
            path.write_bytes(body)
    again = ingest_objects(walk([logs]), data, workers=1)
    assert again.ingested == 0 and again.events == 0 and again.same_content == (
        first.ingested + first.skipped)  # the digest file too
    assert counts(data) == before
    assert ingest_objects(walk([logs]), data, workers=1).unchanged == (
        first.ingested + first.skipped)  # the new versions are recorded


def rewrite_scenario(tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]], list[dict[str, Any]]]:
    logs, data = tmp_path / "logs", tmp_path / "data"
    old = [record(i) for i in range(3)]
    new = [record(0), record(2), record(9)]  # one record gone, one put in
    write_log(logs, log_key(0), old)
    write_log(logs, log_key(7, suffix="Neighbour0000001"), [record(20), record(21)])
    assert ingest_objects(walk([logs]), data, workers=1).failed == 0
    return logs, data, old, new


def test_new_content_under_a_known_key_replaces_its_rows_and_keeps_the_old_as_evidence(tmp_path: Path) -> None:
    logs, data, old, new = rewrite_scenario(tmp_path)
    path = write_log(logs, log_key(0), new)
    stats = ingest_objects(walk([logs]), data, workers=1)
    assert stats.rewrites == [Rewrite(str(path), 3, 3, 3)]
    assert str(stats.rewrites[0]) == f"log object rewritten: {path}, 3 → 3 records"
    con = connect(data)
    live = con.execute("select eventID from events where source_object = ? order by 1", [str(path)]).fetchall()
    assert [r[0] for r in live] == sorted(r["eventID"] for r in new)
    assert con.execute("select count(*) from events_all").fetchone() == (5,)  # 3 new + 2 of the neighbour
    evidence = con.execute("select eventID, record_index from events_superseded order by 2").fetchall()
    assert evidence == [(r["eventID"], i) for i, r in enumerate(old)]
    assert manifest_records(data) == 5
    alerts = run_detections(con, only=["log-object-rewritten"]).alerts
    assert alerts.height == 1 and alerts["severity"][0] == "high"
    assert json.loads(alerts["details"][0])["object"] == str(path)
    assert sorted(alerts["event_ids"][0]) == sorted(r["eventID"] for r in old)


def test_a_second_rewrite_and_compaction_keep_one_live_version(tmp_path: Path) -> None:
    logs, data, _old, new = rewrite_scenario(tmp_path)
    write_log(logs, log_key(0), new)
    ingest_objects(walk([logs]), data, workers=1)
    path = write_log(logs, log_key(0), [record(5)])
    stats = ingest_objects(walk([logs]), data, workers=1, compact_partitions=True)
    assert stats.rewrites == [Rewrite(str(path), 3, 1, 3)]
    con = connect(data)
    assert con.execute("select count(*) from events_all where source_object = ?", [str(path)]).fetchone() == (1,)
    assert con.execute("select count(*) from events_superseded").fetchone() == (6,)
    assert run_detections(con, only=["log-object-rewritten"]).alerts.height == 2
    with Dataset(data) as dataset:
        assert [r[1:4] for r in dataset.manifest.rewrites()] == [(3, 3, 3), (3, 1, 3)]


def test_a_crash_between_moving_the_old_rows_and_the_commit_heals_on_the_rerun(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    logs, data, _old, new = rewrite_scenario(tmp_path)
    path = write_log(logs, log_key(0), new)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Dataset, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest_objects(walk([logs]), data, workers=1)
    monkeypatch.undo()
    stats = ingest_objects(walk([logs]), data, workers=1)
    assert [r.uri for r in stats.rewrites] == [str(path)]
    con = connect(data)
    assert con.execute("select count(*) from events_all where source_object = ?", [str(path)]).fetchone() == (3,)
    assert con.execute("select count(*) from events_superseded").fetchone() == (3,)
    with Dataset(data) as dataset:
        assert len(dataset.manifest.rewrites()) == 1


def test_the_cli_summary_names_the_rewrite(tmp_path: Path, runner: CliRunner) -> None:
    logs, data, _old, new = rewrite_scenario(tmp_path)
    path = write_log(logs, log_key(0), new[:2])
    result = runner.invoke(app, ["ingest", str(logs), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert f"log object rewritten: {path}, 3 → 2 records" in result.output


def test_s3_re_upload_as_multipart_with_a_new_etag_then_a_rewrite(s3: S3Server, tmp_path: Path) -> None:
    import random
    from datetime import UTC, datetime

    client = s3.client()
    client.create_bucket(Bucket="trail")
    when = datetime(2024, 6, 10, 1, 5, tzinfo=UTC)
    key = cloudtrail_key(A, "us-east-1", when)
    events = make_events(random.Random(3), 4, A, "us-east-1", when)
    body = log_bytes(events)
    client.put_object(Bucket="trail", Key=key, Body=body)
    window = {"since": datetime(2024, 6, 10, tzinfo=UTC), "until": datetime(2024, 6, 11, tzinfo=UTC), "workers": 1,
              "now": datetime(2024, 6, 11, 6, tzinfo=UTC)}
    first = run_pull(S3Source(s3.client(), "s3://trail"), tmp_path, **window)
    assert first.stats.ingested == 1 and first.stats.events == 4
    etag = client.head_object(Bucket="trail", Key=key)["ETag"]
    upload = client.create_multipart_upload(Bucket="trail", Key=key)
    part = client.upload_part(Bucket="trail", Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=body)
    client.complete_multipart_upload(Bucket="trail", Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    assert client.head_object(Bucket="trail", Key=key)["ETag"] != etag
    again = run_pull(S3Source(s3.client(), "s3://trail"), tmp_path, **window)
    assert again.listing.objects_fetched == 1 and again.stats.same_content == 1 and again.stats.events == 0
    assert counts(tmp_path)[:2] == (4, 4)
    client.put_object(Bucket="trail", Key=key, Body=log_bytes(events[:1]))
    third = run_pull(S3Source(s3.client(), "s3://trail"), tmp_path, **window)
    assert [str(r) for r in third.stats.rewrites] == [f"log object rewritten: s3://trail/{key}, 4 → 1 records"]
    assert counts(tmp_path)[:2] == (1, 1)
    con = connect(tmp_path)
    assert con.execute("select count(*) from events_superseded").fetchone() == (4,)


def test_a_failed_new_version_keeps_the_old_rows_and_the_known_content(tmp_path: Path) -> None:
    logs, data, _old, _new = rewrite_scenario(tmp_path)
    path = logs / log_key(0)
    good = path.read_bytes()
    path.write_bytes(gzip.compress(b"{not json"))
    assert ingest_objects(walk([logs]), data, workers=1).failed == 1
    assert counts(data)[:2] == (5, 5)  # the old version stays until a new one lands
    path.write_bytes(good)  # the original bytes come back: nothing to ingest again
    stats = ingest_objects(walk([logs]), data, workers=1)
    assert stats.same_content == 1 and stats.rewrites == [] and stats.still_failing == 0
    assert counts(data)[:2] == (5, 5)


def test_nightly_names_the_rewrite_and_its_report_carries_the_alert(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from analyzer.jobs.nightly import run_nightly

    logs, data, _old, new = rewrite_scenario(tmp_path)
    until = datetime(2026, 11, 21, tzinfo=UTC)
    run_nightly(data, logs, until=until, since=datetime(2026, 11, 20, tzinfo=UTC), report_dir=tmp_path / "r1")
    path = write_log(logs, log_key(0), new)
    result = run_nightly(data, logs, until=until, since=datetime(2026, 11, 20, tzinfo=UTC), report_dir=tmp_path / "r2")
    line = f"log object rewritten: {path}, 3 → 3 records"
    assert line in result.warnings and result.summary()["rewrites"] == [line]
    assert [a.alert["detection_id"] for a in result.announced] == ["log-object-rewritten"]
    report = next((tmp_path / "r2").glob("*.md")).read_text()
    assert "CloudTrail log object rewritten" in report


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_inside_the_rewrite_commit_leaves_one_copy_of_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        crash_at: int) -> None:
    """Killed after the first (1) or second (2) file of the commit is moved into place."""
    import analyzer.store.dataset as dataset_module

    logs, data, old, new = rewrite_scenario(tmp_path)
    path = write_log(logs, log_key(0), new)
    calls = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == crash_at:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(dataset_module.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        ingest_objects(walk([logs]), data, workers=1, compact_partitions=False)
    monkeypatch.undo()
    stats = ingest_objects(walk([logs]), data, workers=1)
    assert [r.uri for r in stats.rewrites] == [str(path)]
    con = connect(data)
    live = con.execute("select eventID from events_all where source_object = ? order by 1", [str(path)]).fetchall()
    assert [r[0] for r in live] == sorted(r["eventID"] for r in new)
    assert con.execute("select count(*) from events_all").fetchone() == (5,)
    evidence = con.execute("select eventID from events_superseded order by 1").fetchall()
    assert [r[0] for r in evidence] == sorted(r["eventID"] for r in old)
