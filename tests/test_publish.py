"""`analyzer publish` against the moto S3 server (issue 14): the committed snapshot lands as whole objects,
a rerun uploads nothing, retired files go only after their replacements are up, a kill -9 at any point
then a rerun converges, the manifest records what was published, and DuckDB reading the prefix through
pyarrow's S3 filesystem counts what the local dataset counts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing, suppress
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.jobs import publish as job
from analyzer.scale.spark import SNAPSHOT_LISTING
from analyzer.sources.local import walk
from analyzer.store import Dataset
from analyzer.store import snapshot as snapshots
from analyzer.store.compact import compact
from analyzer.store.dedup import IDENTITY_SQL
from analyzer.store.layout import Layout

from records import log_key, record, write_log
from s3_server import S3Server

BUCKET = "lake"
URL = f"s3://{BUCKET}/cloudtrail"
CRASH_ENV = "ANALYZER_CRASH_AT"


def logs(root: Path, first: int, files: int, per_file: int = 40, days: tuple[str, ...] = ("20", "21")) -> None:
    for f in range(first, first + files):
        day = days[f % len(days)]
        records = [
            record(
                f * per_file + i,
                time=f"2026-11-{day}T{f % 24:02d}:{i % 60:02d}:00Z",
                requestParameters={"blob": "x" * (i * 37 % 900)},
            )
            for i in range(per_file)
        ]
        write_log(root, log_key(f % 60, f"K{f:015d}", day), records)
    duplicate = record(
        first * per_file,
        time=f"2026-11-{days[first % len(days)]}T{first % 24:02d}:00:00Z",
        requestParameters={"blob": "x" * 0},
    )
    write_log(root, log_key(59, f"D{first:015d}", days[first % len(days)]), [duplicate])  # a second delivery


def dataset(tmp_path: Path, files: int = 12, *, compacted: bool = False, runs: int = 3) -> Path:
    """A dataset ingested in ``runs`` runs (a file per day each, unless ``compacted``)."""
    data = tmp_path / "data"
    for run in range(runs):
        logs(tmp_path / f"in{run}", run * files, files)
        ingest_objects(walk([tmp_path / f"in{run}"]), data, workers=1, compact_partitions=compacted)
    return data


def remote(s3: S3Server) -> dict[str, bytes]:
    client = s3.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return found


def expected(data: Path) -> dict[str, bytes]:
    """The prefix a publish of the committed snapshot must leave: its files, byte for byte (and the listing)."""
    snap = snapshots.read(Layout(data))
    return {f"cloudtrail/{f.path}": (data / f.path).read_bytes() for f in snap.files}


def assert_published(s3: S3Server, data: Path) -> dict:
    objects = remote(s3)
    listing = json.loads(objects.pop(f"cloudtrail/{SNAPSHOT_LISTING}"))
    assert objects == expected(data)
    snap = snapshots.read(Layout(data))
    assert sorted(e["path"] for e in listing["files"] + listing["evidence"]) == sorted(f.path for f in snap.files)
    assert not s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    return listing


def recorded(data: Path) -> dict[str, tuple[int, str]]:
    with closing(sqlite3.connect(Layout(data).manifest)) as db:
        return {
            path: (size, state)
            for path, size, state in db.execute(
                "select path, size, state from published_files where target = ?", (f"{URL}/",)
            )
        }


@pytest.fixture
def bucket(s3: S3Server) -> S3Server:
    s3.client().create_bucket(Bucket=BUCKET)
    return s3


def test_publish_uploads_the_snapshot_and_a_rerun_uploads_nothing(bucket: S3Server, tmp_path: Path) -> None:
    data = dataset(tmp_path)
    first = job.publish(data, URL, endpoint_url=bucket.endpoint_url, workers=4)
    snap = snapshots.read(Layout(data))
    assert first.uploaded == len(snap.files) > 2 and first.deleted == 0
    listing = assert_published(bucket, data)
    assert sum(e["rows"] for e in listing["files"]) == sum(f.rows for f in snap.files)
    assert recorded(data) == {f.path: ((data / f.path).stat().st_size, "done") for f in snap.files}
    again = job.publish(data, URL, endpoint_url=bucket.endpoint_url)
    assert (again.uploaded, again.uploaded_bytes, again.deleted) == (0, 0, 0)
    assert "nothing to upload or delete" in again.describe()
    assert_published(bucket, data)


def test_compaction_uploads_the_merged_day_then_deletes_its_inputs(
    bucket: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dataset(tmp_path)
    job.publish(data, URL, endpoint_url=bucket.endpoint_url)
    before = set(remote(bucket))
    with Dataset(data) as writer:
        compact(writer)
    order: list[str] = []
    real_put = job._upload

    def put(client, target, source, key, size, part_size, advance):
        order.append(f"put {key}")
        return real_put(client, target, source, key, size, part_size, advance)

    monkeypatch.setattr(job, "_upload", put)
    client = bucket.client()
    real_delete = client.delete_objects

    def delete(**kwargs):
        order.append("delete " + " ".join(o["Key"] for o in kwargs["Delete"]["Objects"]))
        return real_delete(**kwargs)

    client.delete_objects = delete  # type: ignore[method-assign]
    result = job.publish(data, URL, client=client)
    assert result.uploaded >= 1 and result.deleted >= 2
    listing = assert_published(bucket, data)
    after = set(remote(bucket))
    assert before - after and all(k.endswith(".parquet") for k in before - after)
    assert order[-1].startswith("delete") and all(o.startswith("put") for o in order[:-1])  # replacements first
    assert len(listing["files"]) == len({e["day"] for e in listing["files"]})  # one merged file per day


def test_a_reader_of_the_prefix_counts_what_the_dataset_counts(bucket: S3Server, tmp_path: Path) -> None:
    """DuckDB through pyarrow's S3 filesystem (pointed at moto), on the files the listing names."""
    data = dataset(tmp_path)
    job.publish(data, URL, endpoint_url=bucket.endpoint_url)
    host = bucket.endpoint_url.removeprefix("http://")
    fs = pafs.S3FileSystem(
        endpoint_override=host, scheme="http", access_key="testing", secret_key="testing", region="us-east-1"
    )
    with fs.open_input_stream(f"{BUCKET}/cloudtrail/{SNAPSHOT_LISTING}") as handle:
        listing = json.loads(handle.read())
    files = [f"{BUCKET}/cloudtrail/{e['path']}" for e in listing["files"]]
    published = ds.dataset(
        files, filesystem=fs, format="parquet", partitioning="hive", partition_base_dir=f"{BUCKET}/cloudtrail"
    )
    folder = ds.dataset(
        f"{BUCKET}/cloudtrail/", filesystem=fs, format="parquet", partitioning="hive", ignore_prefixes=["_", "."]
    )  # _analyzer/: the listing and the evidence
    with closing(duckdb.connect()) as con:
        con.register("published", published)
        con.register("folder", folder)
        remote_all = con.execute("select count(*), count(distinct event_date) from published").fetchone()
        remote_folder = con.execute("select count(*) from folder").fetchone()
        remote_events = con.execute(
            f"select count(*) from (select eventID from published qualify eventID is null or row_number() over ("
            f"partition by {IDENTITY_SQL} order by source_object, record_index) = 1)"
        ).fetchone()
    local = connect(data)
    try:
        local_all = local.execute("select count(*), count(distinct event_date) from events_all").fetchone()
        local_events = local.execute("select count(*) from events").fetchone()
    finally:
        local.close()
    assert remote_all == local_all and remote_folder is not None and remote_folder[0] == local_all[0]
    assert remote_events == local_events and local_events[0] < local_all[0]  # the second deliveries hidden


def kill_during(command: list[str], point: str, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        command,
        env={**env, CRASH_ENV: point},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = process.communicate(timeout=300)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, f"{point} never reached: {err.decode()[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["publish.uploaded:1", "publish.part:2", "publish.listed"])
def test_kill_9_mid_publish_then_rerun_converges(
    bucket: S3Server, tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)  # parts of 16 KiB, for the test
    data = dataset(tmp_path)
    job.publish(data, URL, endpoint_url=bucket.endpoint_url)
    first = remote(bucket)  # the files before compaction: gone locally once it commits
    with Dataset(data) as writer:
        compact(writer)  # the next publish uploads merged days (multipart: 16 KiB parts) and retires the inputs
    script = (
        f"from analyzer.jobs.publish import publish; publish({str(data)!r}, {URL!r}, "
        f"endpoint_url={bucket.endpoint_url!r}, workers=2, part_size=16 * 1024)"
    )
    kill_during([sys.executable, "-c", script], point, dict(os.environ))
    now = expected(data)
    for key, body in remote(bucket).items():  # whatever a reader finds is a whole published file, byte for byte
        if key.endswith(".parquet"):
            assert body in (first.get(key), now.get(key)), f"{key}: not a whole file of either snapshot"
    if point.startswith("publish.part"):
        assert bucket.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # left by the kill
    rerun = job.publish(data, URL, endpoint_url=bucket.endpoint_url, part_size=16 * 1024)
    assert rerun.aborted_uploads >= point.startswith("publish.part")  # (workers=2: another may be mid-way too)
    assert_published(bucket, data)
    assert recorded(data) == {
        f.path: ((data / f.path).stat().st_size, "done") for f in snapshots.read(Layout(data)).files
    }
    assert job.publish(data, URL, endpoint_url=bucket.endpoint_url).uploaded == 0


def test_publish_cli_says_what_it_did(bucket: S3Server, tmp_path: Path, runner: CliRunner) -> None:
    data = dataset(tmp_path, files=4, compacted=True)
    result = runner.invoke(app, ["publish", URL, "--data", str(data), "--endpoint-url", bucket.endpoint_url])
    assert result.exit_code == 0, result.output
    assert f"{URL}/: " in result.output and "uploaded" in result.output
    again = runner.invoke(app, ["publish", URL, "--data", str(data), "--endpoint-url", bucket.endpoint_url])
    assert "nothing to upload or delete" in again.output
    bad = runner.invoke(app, ["publish", "https://example.com/x", "--data", str(data)])
    assert bad.exit_code == 2 and "expected s3://BUCKET/PREFIX" in bad.output
    missing = runner.invoke(
        app,
        ["publish", f"s3://no-such-bucket-{os.getpid()}/x", "--data", str(data), "--endpoint-url", bucket.endpoint_url],
    )
    assert missing.exit_code == 1 and missing.output.startswith("error: s3://no-such-bucket")
    assert len(missing.output.strip().splitlines()) == 1
