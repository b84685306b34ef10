"""Ingest keeps digests (issue 16, item 2): a digest file is read and recorded in the manifest (the
``digests`` and ``digest_logs`` tables, in its batch's commit) instead of being skipped unread, so
`verify --data DIR` re-checks the dataset's own history."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from analyzer import ingest_objects
from analyzer.cli import app
from analyzer.integrity.stores import DatasetStore
from analyzer.jobs.verify import run_verify
from analyzer.sources.local import walk
from analyzer.store.dataset import Dataset

from s3_server import signed_chain

START = datetime(2026, 11, 20, 0, 0, 31, tzinfo=UTC)
HOURS = 6


@pytest.fixture(scope="module")
def trail_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_ingest_records_every_digest_with_its_logs_once(tmp_path: Path, trail_key: Any) -> None:
    trail = signed_chain(random.Random(3), trail_key, start=START, hours=HOURS)
    trail.write(tmp_path / "copy")
    first = ingest_objects(walk([tmp_path / "copy"]), tmp_path / "data", workers=1)
    assert (first.ingested, first.skipped, first.failed) == (2 * HOURS, HOURS, 0)
    again = ingest_objects(walk([tmp_path / "copy"]), tmp_path / "data", workers=1)
    assert again.unchanged == 3 * HOURS and again.planned_objects == 0
    with Dataset(tmp_path / "data") as dataset:
        recorded = dataset.manifest.digests()
    assert [record.key for _, record in recorded] == trail.digests  # by end time
    for uri, record in recorded:
        assert uri.endswith(record.key) and record.trail == "management-events" and record.region == "eu-west-1"
        assert [log[1] for log in record.logs] == sorted(trail.logs[record.key])
    assert recorded[0][1].previous_key is None and recorded[1][1].previous_key == trail.digests[0]
    with sqlite3.connect(tmp_path / "data" / "_analyzer" / "manifest.sqlite") as db:
        assert db.execute("select count(*) from digest_logs").fetchone() == (2 * HOURS,)


def test_a_file_named_like_a_digest_that_is_none_is_skipped_with_a_warning(tmp_path: Path) -> None:
    bogus = tmp_path / "in/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/x_CloudTrail-Digest_y.json.gz"
    bogus.parent.mkdir(parents=True)
    bogus.write_bytes(b"not even gzip")
    stats = ingest_objects(walk([tmp_path / "in"]), tmp_path / "data", workers=1)
    assert (stats.skipped, stats.failed) == (1, 0)
    assert [uri for uri, _ in stats.warnings] == [str(bogus)] and "not a readable digest" in stats.warnings[0][1]
    with Dataset(tmp_path / "data") as dataset:
        assert dataset.manifest.digests() == []


def test_verify_data_rechecks_the_datasets_own_history(tmp_path: Path, trail_key: Any, runner: CliRunner) -> None:
    rng = random.Random(4)
    trail = signed_chain(rng, trail_key, start=START, hours=HOURS)
    gone_log = trail.logs[trail.digests[1]][0]
    trail.delete(gone_log)  # deleted before it was ingested
    trail.delete(trail.digests[2])  # a digest deleted before it was ingested
    injected = trail.inject_log(START.replace(hour=4, minute=20), rng)  # a log no digest lists
    trail.write(tmp_path / "copy")
    ingest_objects(walk([tmp_path / "copy"]), tmp_path / "data", workers=1)
    result = run_verify(DatasetStore(tmp_path / "data"), window=None)
    found = {(f.detection_id, f.uri[f.uri.index("AWSLogs/"):]) for f in result.findings}
    assert found == {("log-file-deleted", gone_log), ("digest-missing", trail.digests[2]),
                     ("log-file-not-in-digest", injected)}
    assert result.chain.unhashed == 2 * (HOURS - 1) - 1
    out = runner.invoke(app, ["verify", "--data", str(tmp_path / "data")])
    assert out.exit_code == 3, out.output
    assert "log files in the dataset" in out.stdout and "hashes of the log files in the dataset are not compared" in (
        out.stdout)
