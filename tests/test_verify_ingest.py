"""Ingest keeps digests (issue 16, item 2): a digest file is read and recorded in the manifest (the
``digests`` and ``digest_logs`` tables, in its batch's commit) instead of being skipped unread, and
every object's content SHA-256 (gap 2), so `verify --data DIR` re-checks the dataset's own history."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from isal import igzip
from typer.testing import CliRunner

from analyzer import ingest_objects
from analyzer.cli import app
from analyzer.ingest.decode import BOM, ObjectError, decode_parts, decompress
from analyzer.integrity.hashing import HashError, content_sha256
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
    # every other log a digest lists was ingested with the SHA-256 that digest lists
    assert result.chain.unhashed == 0 and result.logs_valid == 2 * (HOURS - 1) - 1 and result.logs_invalid == 1
    out = runner.invoke(app, ["verify", "--data", str(tmp_path / "data")])
    assert out.exit_code == 3, out.output
    assert f"{2 * (HOURS - 1) - 1}/{2 * (HOURS - 1)} log files valid" in out.stdout


@settings(max_examples=60, deadline=None)
@given(members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4), gzipped=st.booleans(),
       padding=st.integers(0, 8), level=st.sampled_from([0, 1, 3]))
def test_the_decoder_hashes_the_content_as_verify_does(members: list[bytes], gzipped: bool, padding: int,
                                                         level: int) -> None:
    """The SHA-256 ingest takes while inflating (every member, padding ignored) is verify's of the same bytes."""
    data = (b"".join(igzip.compress(m, level) for m in members) + b"\0" * padding if gzipped else b"".join(members))
    sha = hashlib.sha256()
    try:
        decompress(data, sha=sha)
    except ObjectError:
        with pytest.raises(HashError):
            content_sha256(data)
        return
    assert sha.hexdigest() == content_sha256(data)
    if gzipped or data[:2] != b"\x1f\x8b":  # (plain bytes may happen to start like gzip: read as such by both)
        assert sha.hexdigest() == hashlib.sha256(b"".join(members)).hexdigest()


@settings(max_examples=30, deadline=None)
@given(spaces=st.lists(st.integers(0, 3), min_size=1, max_size=3), bom=st.booleans())
def test_every_decoded_log_carries_its_content_hash(spaces: list[int], bom: bool) -> None:
    documents = [(BOM if bom and n == 0 else b"") + b'{"Records": [{"eventTime": "2026-11-20T00:00:00Z"}]}'
                 + b" " * k for n, k in enumerate(spaces)]
    data = b"".join(igzip.compress(d) for d in documents)
    first = next(decode_parts(data))
    assert first.content_sha256 == content_sha256(data) == hashlib.sha256(b"".join(documents)).hexdigest()


def test_ingest_records_the_content_hash_the_digest_lists(tmp_path: Path, trail_key: Any) -> None:
    trail = signed_chain(random.Random(5), trail_key, start=START, hours=2)
    trail.write(tmp_path / "copy")
    ingest_objects(walk([tmp_path / "copy"]), tmp_path / "data", workers=1)
    listed = {log[1]: log[2] for d in trail.digests for log in
              [(e["s3Bucket"], e["s3Object"], e["hashValue"]) for e in trail.docs[d]["logFiles"]]}
    with Dataset(tmp_path / "data") as dataset:
        recorded = {row["uri"][row["uri"].index("AWSLogs/"):]: row["content_sha256"]
                    for row in dataset.manifest.objects("ingested")}
    assert recorded == listed
