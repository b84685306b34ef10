"""Failures are retried by every run that covers them until they land or a person gives up.

Regression of issue 10: ``pull`` moved its watermark whenever listing succeeded, even when objects
failed to decode, so after two nights of failures their folder was never listed again, the pull
exited 0 and the events were lost for good.
"""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.jobs.pull import read_watermark, run_pull
from analyzer.sources.local import walk
from analyzer.sources.s3 import S3Source
from analyzer.store import Dataset

from records import log_key, record, write_log
from s3_server import S3Server, cloudtrail_key, log_bytes, make_events

A = "111111111111"
BROKEN = gzip.compress(b'{"Records": [{"eventID": ')  # a cut-off log: fails to decode


def night(day: int) -> datetime:
    return datetime(2024, 6, day, 12, 0, tzinfo=UTC)


def test_two_nights_of_failures_then_the_object_lands_and_the_watermark_moves(s3: S3Server, tmp_path: Path) -> None:
    client = s3.client()
    client.create_bucket(Bucket="trail")
    when = datetime(2024, 6, 8, 20, 5, tzinfo=UTC)
    bad_key = cloudtrail_key(A, "us-east-1", when)
    client.put_object(Bucket="trail", Key=bad_key, Body=BROKEN)
    good = make_events(random.Random(1), 3, A, "us-east-1", when)
    other = cloudtrail_key(A, "us-east-1", datetime(2024, 6, 9, 3, 5, tzinfo=UTC), unique="1" * 16)
    client.put_object(Bucket="trail", Key=other, Body=log_bytes(make_events(random.Random(2), 2, A, "us-east-1", when)))
    source = S3Source(s3.client(), "s3://trail")

    first = run_pull(source, tmp_path, workers=1, now=night(9))
    assert first.stats.failed == 1 and first.stats.ingested == 1
    assert read_watermark(tmp_path, source) == datetime(2024, 6, 8, tzinfo=UTC)  # held at the failure's day
    assert first.failing == 1

    second = run_pull(source, tmp_path, workers=1, now=night(10))
    assert second.stats.retried == 1 and second.stats.failed == 1 and second.stats.still_failing == 1
    assert read_watermark(tmp_path, source) == datetime(2024, 6, 8, tzinfo=UTC)

    client.put_object(Bucket="trail", Key=bad_key, Body=log_bytes(good))  # delivered whole at last
    third = run_pull(source, tmp_path, workers=1, now=night(11))
    assert third.stats.retried == 1 and third.stats.ingested == 1 and third.stats.still_failing == 0
    ids = {row[0] for row in connect(tmp_path).execute("select eventID from events").fetchall()}
    assert {e["eventID"] for e in good} <= ids and len(ids) == 5
    assert read_watermark(tmp_path, source) == night(11) and third.failing == 0


def test_a_failure_of_another_scope_does_not_hold_this_watermark(s3: S3Server, tmp_path: Path) -> None:
    client = s3.client()
    client.create_bucket(Bucket="trail")
    when = datetime(2024, 6, 8, 20, 5, tzinfo=UTC)
    client.put_object(Bucket="trail", Key=cloudtrail_key(A, "us-east-1", when), Body=BROKEN)
    client.put_object(Bucket="trail", Key=cloudtrail_key(A, "eu-west-1", when),
                      Body=log_bytes(make_events(random.Random(2), 2, A, "eu-west-1", when)))
    everything = run_pull(S3Source(s3.client(), "s3://trail"), tmp_path, workers=1, now=night(9))
    assert everything.stats.failed == 1
    europe = S3Source(s3.client(), "s3://trail", regions=["eu-west-1"])
    assert run_pull(europe, tmp_path, workers=1, now=night(9)).watermark == night(9)


def test_giving_up_is_explicit_listed_and_releases_the_watermark(s3: S3Server, tmp_path: Path,
                                                                 runner: CliRunner) -> None:
    client = s3.client()
    client.create_bucket(Bucket="trail")
    key = cloudtrail_key(A, "us-east-1", datetime(2024, 6, 8, 20, 5, tzinfo=UTC))
    client.put_object(Bucket="trail", Key=key, Body=BROKEN)
    source = S3Source(s3.client(), "s3://trail")
    run_pull(source, tmp_path, workers=1, now=night(9))
    listed = runner.invoke(app, ["failures", "--data", str(tmp_path)])
    assert listed.exit_code == 0 and f"s3://trail/{key}  retried  since" in listed.output, listed.output
    assert "1 failure(s) being retried" in listed.output
    none_old = runner.invoke(app, ["failures", "--data", str(tmp_path), "--give-up", "--older-than", "7d"])
    assert "gave up on 0 failure(s)" in none_old.output  # too recent to give up on by default
    gave = runner.invoke(app, ["failures", "--data", str(tmp_path), "--give-up", "--older-than", "2100-01-01"])
    assert gave.exit_code == 0 and f"given up: s3://trail/{key}" in gave.output, gave.output
    later = run_pull(source, tmp_path, workers=1, now=night(10))
    assert later.stats.retried == 0 and later.stats.failed == 0 and later.stats.still_failing == 0
    assert read_watermark(tmp_path, source) == night(10)
    assert "0 failure(s) being retried" in runner.invoke(app, ["failures", "--data", str(tmp_path)]).output
    assert "given up" in runner.invoke(app, ["failures", "--data", str(tmp_path), "--all"]).output


def test_local_failures_are_retried_and_counted_until_they_land(tmp_path: Path, runner: CliRunner) -> None:
    logs, data = tmp_path / "logs", tmp_path / "data"
    write_log(logs, log_key(0), [record(1)])
    bad = logs / log_key(5, suffix="Broken0000000001")
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(BROKEN)
    assert ingest_objects(walk([logs]), data, workers=1).failed == 1
    again = runner.invoke(app, ["ingest", str(logs), "--data", str(data)])
    assert "retries: 1 earlier failure(s) tried again; 1 failure(s) remain" in again.output, again.output
    with Dataset(data) as dataset:
        [failure] = dataset.manifest.failures()
    assert failure.uri == str(bad) and failure.attempts == 2 and not failure.given_up
    write_log(logs, log_key(5, suffix="Broken0000000001"), [record(2)])
    stats = ingest_objects(walk([logs]), data, workers=1)
    assert stats.retried == 1 and stats.ingested == 1 and stats.still_failing == 0
    with Dataset(data) as dataset:
        assert dataset.manifest.failures(given_up=None) == []


def test_failures_recorded_by_an_older_version_are_adopted(tmp_path: Path) -> None:
    import sqlite3

    with Dataset(tmp_path):
        pass
    db = sqlite3.connect(tmp_path / "_analyzer" / "manifest.sqlite")
    db.execute("insert into objects(uri, size, version, status, reason, updated_at)"
               " values ('s3://trail/x.json.gz', 1, 'e1', 'failed', 'cannot read', 1000.0)")
    db.execute("delete from state")
    db.commit()
    db.close()
    with Dataset(tmp_path) as dataset:
        [failure] = dataset.manifest.failures()
    assert (failure.uri, failure.version, failure.first_failed_at, failure.given_up) == (
        "s3://trail/x.json.gz", "e1", 1000.0, False)
