"""`pull` fetches the digest files with their S3 signatures, and `verify --data` then checks a pulled
dataset as `verify s3://` checks the trail (issue 16, gaps 1 and 2): signatures, the chain, and each
listed log file's SHA-256 against the one ingest recorded of its content. On the moto server, with a
chain signed by a key made in the test."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.integrity.stores import DatasetStore
from analyzer.jobs.pull import run_pull
from analyzer.jobs.verify import VerifyResult, public_keys, run_verify
from analyzer.sources.s3 import S3Source
from analyzer.store.dataset import Dataset

from s3_server import S3Server, SignedChain, signed_chain

START = datetime(2026, 11, 20, 0, 0, 31, tzinfo=UTC)
HOURS = 6
NOW = START + timedelta(hours=HOURS + 2)


@pytest.fixture(scope="module")
def trail_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, trail_key: Any) -> Path:
    return SignedChain.key_file(trail_key, tmp_path / "keys.json", start=START - timedelta(days=30),
                                end=START + timedelta(days=30))


def pull(s3: S3Server, trail: SignedChain, data: Path, *, upload: bool = True) -> Any:
    if upload:
        trail.upload(s3.client())
    calls: list[str] = []
    client = s3.client()
    client.meta.events.register("provide-client-params.s3.ListObjectsV2",
                                lambda params, **_: calls.append(params.get("Prefix", "")))
    result = run_pull(S3Source(client, f"s3://{trail.bucket}"), data, since=START - timedelta(hours=1),
                      until=START + timedelta(hours=HOURS), workers=1, now=NOW)
    result.calls = calls
    return result


def verify_data(data: Path, key_file: Path) -> VerifyResult:
    return run_verify(DatasetStore(data), window=None, keys=public_keys([key_file]), workers=2, now=NOW)


def found(result: VerifyResult) -> set[tuple[str, str]]:
    return {(f.detection_id, f.uri[f.uri.index("AWSLogs/"):]) for f in result.findings}


def test_pull_lists_and_records_the_window_digests_with_their_signatures(s3: S3Server, trail_key: Any,
                                                                         tmp_path: Path) -> None:
    trail = signed_chain(random.Random(1), trail_key, start=START, hours=HOURS)
    result = pull(s3, trail, tmp_path)
    root = "AWSLogs/111122223333/CloudTrail-Digest/"
    assert {p for p in result.calls if p.startswith(root)} == {root, *(f"{root}eu-west-1/2026/11/{day}/"
                                                                       for day in ("19", "20"))}  # the window's days
    assert result.listing.digests_listed == result.listing.digests_fetched == HOURS
    assert result.listing.objects_listed == result.listing.objects_fetched == 2 * HOURS  # digests are no log objects
    assert result.stats.ingested == 2 * HOURS and result.stats.skipped == HOURS  # digests: no events
    assert result.stats.events == 2 * HOURS * 3 and result.exit_code == 0
    with Dataset(tmp_path) as dataset:
        recorded = dict(dataset.manifest.digests())
        ingested = {row["uri"] for row in dataset.manifest.objects("ingested")}
    assert sorted(recorded) == [f"s3://{trail.bucket}/{key}" for key in trail.digests]
    for uri, record in recorded.items():
        key = uri.removeprefix(f"s3://{trail.bucket}/")
        assert record.from_s3 and record.signature == trail.objects[key][1]["signature"]
    assert not any("CloudTrail-Digest" in uri for uri in ingested)
    again = pull(s3, trail, tmp_path, upload=False)  # incremental: nothing fetched again
    assert again.listing.digests_fetched == 0 and again.listing.objects_fetched == 0


def test_verify_data_on_pulled_data_checks_signatures_and_log_hashes(s3: S3Server, trail_key: Any, other_key: Any,
                                                                     key_file: Path, tmp_path: Path,
                                                                     runner: CliRunner) -> None:
    clean = signed_chain(random.Random(2), trail_key, start=START, hours=HOURS, bucket="clean")
    pull(s3, clean, tmp_path / "clean")
    untouched = verify_data(tmp_path / "clean", key_file)
    assert untouched.findings == [] and untouched.problems == [] and untouched.online
    assert (untouched.digests_valid, untouched.logs_valid, untouched.chain.unhashed) == (HOURS, 2 * HOURS, 0)
    assert untouched.chain.signatures_checked == HOURS  # every one by its own x-amz-meta-signature

    trail = signed_chain(random.Random(3), trail_key, start=START, hours=HOURS, bucket="tampered")
    modified, deleted = trail.logs[trail.digests[1]][0], trail.logs[trail.digests[2]][1]
    trail.modify_log(modified, random.Random(4))
    trail.delete(deleted)
    trail.resign(trail.digests[3], other_key)  # an unknown key
    body, _ = trail.objects[trail.digests[4]]
    trail.objects[trail.digests[4]] = (body, {})  # no signature metadata
    pull(s3, trail, tmp_path / "tampered")
    result = verify_data(tmp_path / "tampered", key_file)
    assert found(result) == {("log-file-modified", modified), ("log-file-deleted", deleted),
                             ("digest-invalid", trail.digests[3]), ("digest-invalid", trail.digests[4])}
    assert "hash value doesn't match" in next(f.reason for f in result.findings if f.uri.endswith(modified))
    assert result.exit_code == 3
    out = runner.invoke(app, ["verify", "--data", str(tmp_path / "tampered"), "--public-key", str(key_file)])
    assert out.exit_code == 3, out.output
    assert "log-file-modified (critical)" in out.stderr and "log-file-deleted (critical)" in out.stderr
    assert f"{2 * HOURS - 2}/{2 * HOURS} log files valid, 2/{2 * HOURS} log files INVALID" in out.stdout
    assert f"signatures: {HOURS - 2} checked" in out.stdout  # the unknown key's and the unsigned one's are findings


def test_a_log_changed_after_it_was_pulled_is_found_modified(s3: S3Server, trail_key: Any, key_file: Path,
                                                             tmp_path: Path) -> None:
    trail = signed_chain(random.Random(5), trail_key, start=START, hours=HOURS, bucket="later")
    pull(s3, trail, tmp_path)
    assert verify_data(tmp_path, key_file).findings == []
    changed = trail.logs[trail.digests[2]][0]
    trail.modify_log(changed, random.Random(6))
    again = pull(s3, trail, tmp_path)  # a new ETag: ingested again (a rewrite), with its new content hash
    assert [r.uri for r in again.stats.rewrites] == [f"s3://later/{changed}"]
    assert found(verify_data(tmp_path, key_file)) == {("log-file-modified", changed)}


def test_a_dataset_without_content_hashes_says_so(s3: S3Server, trail_key: Any, key_file: Path, tmp_path: Path,
                                                  runner: CliRunner) -> None:
    """An object ingested before the manifest kept its content SHA-256: present, never passed as valid."""
    trail = signed_chain(random.Random(7), trail_key, start=START, hours=HOURS, bucket="old")
    pull(s3, trail, tmp_path)
    with sqlite3.connect(tmp_path / "_analyzer" / "manifest.sqlite") as db:
        db.execute("update objects set content_sha256 = null")
    result = verify_data(tmp_path, key_file)
    assert result.findings == [] and result.logs_valid == 0 and result.chain.unhashed == 2 * HOURS
    out = runner.invoke(app, ["verify", "--data", str(tmp_path), "--public-key", str(key_file)])
    assert out.exit_code == 0, out.output
    assert f"0/{2 * HOURS} log files valid" in out.stdout and "content hash not recorded" in out.stdout
