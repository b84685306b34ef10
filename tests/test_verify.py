"""`analyzer verify` (issue 16): a chain signed in the test with its own RSA key, in the S3 layout on the
moto server and on a disk. Untouched, everything is valid; each tampering an intruder could make after
delivery gives exactly its finding, and nothing else."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.detect.shape import ALERT_COLUMNS
from analyzer.integrity.chain import FoundDigest, check_digests
from analyzer.integrity.digest import DigestFormatError, parse_digest, parse_name
from analyzer.integrity.hashing import content_sha256
from analyzer.integrity.keys import KeyRing, load_key_file
from analyzer.integrity.signature import signing_string
from analyzer.integrity.stores import LocalStore, S3Store
from analyzer.jobs.verify import VerifyResult, public_keys, run_verify
from analyzer.sources.s3 import S3Source
from analyzer.window import Window

from s3_server import S3Server, SignedChain, signed_chain

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
START = datetime(2026, 11, 20, 0, 0, 31, tzinfo=UTC)
HOURS = 6
WINDOW = Window(START, START + timedelta(hours=HOURS))
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


def chain(trail_key: Any, seed: int = 7, **options: Any) -> SignedChain:
    return signed_chain(random.Random(seed), trail_key, start=START, hours=HOURS, **options)


def verify_s3(s3: S3Server, trail: SignedChain, keys: KeyRing | None, **options: Any) -> VerifyResult:
    trail.upload(s3.client())
    source = S3Source(s3.client(), f"s3://{trail.bucket}")
    return run_verify(S3Store(source, workers=4), window=WINDOW, keys=keys, workers=4, now=NOW, **options)


def found(result: VerifyResult) -> set[tuple[str, str]]:
    """(detection id, the object's key from AWSLogs/ on) of every finding."""
    return {(f.detection_id, f.uri[f.uri.index("AWSLogs/"):]) for f in result.findings}


# -- S3 ---------------------------------------------------------------------------------------------
def test_untouched_chain_is_all_valid(s3: S3Server, trail_key: Any, key_file: Path) -> None:
    result = verify_s3(s3, chain(trail_key), public_keys([key_file]))
    assert result.findings == [] and result.problems == []
    assert (result.digests_valid, result.digests_invalid, result.logs_valid, result.logs_invalid) == (HOURS, 0,
                                                                                                       2 * HOURS, 0)
    assert result.chain.signatures_checked == HOURS and result.chain.signatures_unchecked == 0
    assert result.exit_code == 0


@pytest.mark.parametrize("tampering", ["modified", "deleted", "digest removed", "link forged", "unknown key",
                                       "log injected", "appended gzip member"])
def test_one_tampering_gives_exactly_its_finding(s3: S3Server, trail_key: Any, other_key: Any, key_file: Path,
                                                 tampering: str) -> None:
    trail = chain(trail_key)
    rng = random.Random(tampering)
    digest = trail.digests[2]
    log = trail.logs[digest][1]
    if tampering == "modified":
        trail.modify_log(log, rng)
        expected = {("log-file-modified", log)}
    elif tampering == "deleted":
        trail.delete(log)
        expected = {("log-file-deleted", log)}
    elif tampering == "digest removed":
        trail.delete(digest)
        expected = {("digest-missing", digest)}  # its logs are that finding's, not one each
    elif tampering == "link forged":
        trail.forge_link(digest)
        expected = {("digest-chain-broken", digest)}
    elif tampering == "unknown key":
        trail.resign(digest, other_key)
        expected = {("digest-invalid", digest)}
    elif tampering == "log injected":
        log = trail.inject_log(START + timedelta(hours=3, minutes=20), rng)
        expected = {("log-file-not-in-digest", log)}
    else:  # records added as a second gzip member: validate-logs hashes the first member only
        body, metadata = trail.objects[log]
        trail.objects[log] = (body + gzip.compress(b'{"Records": []}'), metadata)
        expected = {("log-file-modified", log)}
    result = verify_s3(s3, trail, public_keys([key_file]))
    assert found(result) == expected
    assert result.problems == [] and result.exit_code == 3


def test_a_digest_without_its_signature_metadata_is_invalid(s3: S3Server, trail_key: Any, key_file: Path) -> None:
    trail = chain(trail_key)
    body, _ = trail.objects[trail.digests[1]]
    trail.objects[trail.digests[1]] = (body, {})
    result = verify_s3(s3, trail, public_keys([key_file]))
    assert found(result) == {("digest-invalid", trail.digests[1])}
    assert "no x-amz-meta-signature" in result.findings[0].reason


def test_a_digest_moved_from_where_it_was_delivered_is_invalid(s3: S3Server, trail_key: Any, key_file: Path) -> None:
    trail = chain(trail_key)
    moved = trail.digests[3].replace("T040031Z", "T043031Z")
    trail.objects[moved] = trail.objects[trail.digests[3]]
    result = verify_s3(s3, trail, public_keys([key_file]))
    assert ("digest-invalid", moved) in found(result)
    assert any("moved from where it was delivered" in f.reason for f in result.findings)


def test_without_list_public_keys_signatures_are_unchecked_and_the_run_partial(s3: S3Server, trail_key: Any) -> None:
    """moto does not implement cloudtrail:ListPublicKeys: the region's keys cannot be listed, which is
    said (exit 4) and never taken for a forgery."""
    import boto3

    session = boto3.Session(region_name="us-east-1")
    from analyzer.jobs.verify import api_keys

    def keys(regions: Any, start: datetime, end: datetime) -> KeyRing:
        return api_keys(session, regions, start, end, endpoint_url=s3.endpoint_url)

    result = verify_s3(s3, chain(trail_key), None, key_source=keys)
    assert result.findings == []
    assert result.chain.signatures_checked == 0 and result.chain.signatures_unchecked == HOURS
    assert [where for where, _ in result.problems] == ["ListPublicKeys eu-west-1"]
    assert result.exit_code == 4


def test_cli_summary_and_exit_codes(s3: S3Server, runner: CliRunner, trail_key: Any, key_file: Path,
                                    tmp_path: Path) -> None:
    trail = chain(trail_key)
    trail.upload(s3.client())
    args = ["verify", f"s3://{trail.bucket}", "--endpoint-url", s3.endpoint_url, "--public-key", str(key_file),
            "--since", f"{START:%Y-%m-%dT%H:%M:%SZ}", "--until", f"{WINDOW.until:%Y-%m-%dT%H:%M:%SZ}"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert f"{HOURS}/{HOURS} digest files valid" in ok.stdout
    assert f"{2 * HOURS}/{2 * HOURS} log files valid" in ok.stdout
    assert f"signatures: {HOURS} checked" in ok.stdout
    s3.client().delete_object(Bucket=trail.bucket, Key=trail.logs[trail.digests[4]][0])
    report = tmp_path / "integrity.jsonl"
    bad = runner.invoke(app, [*args, "-o", str(report)])
    assert bad.exit_code == 3
    assert f"{2 * HOURS - 1}/{2 * HOURS} log files valid, 1/{2 * HOURS} log files INVALID" in bad.stdout
    assert "log-file-deleted (critical)" in bad.stderr
    alerts = [json.loads(line) for line in report.read_text().splitlines()]
    assert [a["detection_id"] for a in alerts] == ["log-file-deleted"] and alerts[0]["severity"] == "critical"
    assert set(ALERT_COLUMNS) <= set(alerts[0])


def test_every_account_region_and_organization_under_a_prefix(s3: S3Server, trail_key: Any, key_file: Path) -> None:
    """Digests are found as pull finds logs: organizations, accounts and regions discovered under the prefix,
    only the window's day folders listed; --account and --region narrow them."""
    plain = chain(trail_key, seed=1, prefix="logs")
    org = chain(trail_key, seed=2, prefix="logs", org="o-abcd123456", account="444455556666", region="us-east-1")
    other = chain(trail_key, seed=3, prefix="elsewhere")  # outside the prefix: never listed
    for trail in (plain, org, other):
        trail.upload(s3.client())
    client = s3.client()
    for options, digests in (({}, 2 * HOURS), ({"accounts": ["444455556666"]}, HOURS), ({"regions": ["eu-west-1"]},
                                                                                        HOURS)):
        source = S3Source(client, "s3://trail-bucket/logs", **options)
        result = run_verify(S3Store(source), window=WINDOW, keys=public_keys([key_file]), now=NOW)
        assert (result.findings, result.problems, result.digests_valid) == ([], [], digests), options
        assert result.logs_valid == 2 * digests


# -- a copy on a disk ---------------------------------------------------------------------------------
def test_offline_copy_checks_every_signature_but_the_newest(tmp_path: Path, trail_key: Any, key_file: Path) -> None:
    trail = chain(trail_key, prefix="org-trail")
    root = trail.write(tmp_path / "copy" / trail.bucket)  # pull --keep-raw's DIR/BUCKET/KEY
    result = run_verify(LocalStore(tmp_path / "copy"), window=None, keys=public_keys([key_file]))
    assert result.findings == [] and result.exit_code == 0 and root.is_dir()
    assert (result.chain.signatures_checked, result.chain.signatures_unchecked) == (HOURS - 1, 1)
    assert result.logs_valid == 2 * HOURS


def test_offline_without_keys_says_signatures_were_not_checked(tmp_path: Path, runner: CliRunner,
                                                               trail_key: Any) -> None:
    trail = chain(trail_key)
    trail.write(tmp_path / "copy")
    out = runner.invoke(app, ["verify", str(tmp_path / "copy")])
    assert out.exit_code == 0, out.output
    assert "signatures were not checked" in out.stdout and f"{HOURS}/{HOURS} digest files valid" in out.stdout


def test_a_partial_decompressed_copy(tmp_path: Path, trail_key: Any, key_file: Path) -> None:
    """A copy of the last hours only, some files decompressed (``x.json`` for ``x.json.gz``): the chain is
    followed back to the first digest there is, and a decompressed file still has the content CloudTrail hashed."""
    trail = chain(trail_key)
    for key in [trail.digests[0], *trail.logs[trail.digests[0]]]:
        trail.delete(key)  # the copy starts an hour later
    for key in (trail.digests[3], trail.logs[trail.digests[2]][1]):
        body, metadata = trail.objects.pop(key)
        trail.objects[key.removesuffix(".gz")] = (gzip.decompress(body), metadata)
    trail.write(tmp_path / "copy")
    result = run_verify(LocalStore(tmp_path / "copy" / "AWSLogs"), window=None, keys=public_keys([key_file]))
    assert result.findings == [] and result.problems == []
    assert (result.digests_valid, result.logs_valid) == (HOURS - 1, 2 * (HOURS - 1))
    later = run_verify(LocalStore(tmp_path / "copy"), window=Window(START + timedelta(minutes=30), None),
                       keys=public_keys([key_file]))
    assert found(later) == {("digest-missing", trail.digests[0])}  # inside the window given: it should be there


@pytest.mark.parametrize("tampering", ["modified", "deleted", "digest removed", "link forged"])
def test_offline_tamperings(tmp_path: Path, trail_key: Any, key_file: Path, tampering: str) -> None:
    trail = chain(trail_key)
    digest = trail.digests[2]
    log = trail.logs[digest][0]
    if tampering == "modified":
        trail.modify_log(log, random.Random(1))
        expected = {("log-file-modified", log)}
    elif tampering == "deleted":
        trail.delete(log)
        expected = {("log-file-deleted", log)}
    elif tampering == "digest removed":
        trail.delete(digest)
        expected = {("digest-missing", digest)}
    else:  # offline the signature a copy is checked with is the one the next digest recorded
        trail.forge_link(digest)
        expected = {("digest-invalid", digest)}
    trail.write(tmp_path / "copy")
    for keys in (public_keys([key_file]), None):
        result = run_verify(LocalStore(tmp_path / "copy"), window=None, keys=keys)
        want = expected if keys or tampering != "link forged" else {("digest-chain-broken", digest)}
        assert found(result) == want, keys
    shutil.rmtree(tmp_path / "copy")


# -- the format, as AWS documents it -------------------------------------------------------------------
def test_the_signing_string_is_the_documented_one(trail_key: Any) -> None:
    trail = chain(trail_key, bucket="S3-bucket-name")
    digest = parse_digest(trail.objects[trail.digests[0]][0])
    content = gzip.decompress(trail.objects[trail.digests[0]][0])
    lines = signing_string(digest).decode().split("\n")
    assert lines == [digest.end_text, f"S3-bucket-name/{trail.digests[0]}", hashlib.sha256(content).hexdigest(),
                     "null"]  # the first digest of a chain: "null", as the Java implementation writes it
    later = parse_digest(trail.objects[trail.digests[1]][0])
    assert signing_string(later).decode().split("\n")[3] == trail.objects[trail.digests[0]][1]["signature"]


def test_a_real_digest_parses() -> None:
    """A digest CloudTrail delivered (fixtures/digests/PROVENANCE.txt), with its escaped slashes."""
    path = next((FIXTURES / "digests").rglob("*CloudTrail-Digest*.json"))
    digest = parse_digest(path.read_bytes())
    name = parse_name(digest.key)
    assert name is not None and (name.region, name.home_region, name.trail) == ("ap-northeast-1", "us-west-2",
                                                                               "llm-guard-trail")
    assert digest.key.endswith(path.name + ".gz") and len(digest.logs) == 5
    assert all(len(entry.hash_value) == 64 for entry in digest.logs) and len(digest.previous_signature or "") == 512
    assert digest.sha256 == content_sha256(gzip.compress(path.read_bytes()))  # the same content, gzipped or not


def test_key_files_as_the_cli_and_the_user_guide_print_them(tmp_path: Path, trail_key: Any) -> None:
    cli = SignedChain.key_file(trail_key, tmp_path / "cli.json", start=START, end=START + timedelta(days=30))
    [key] = load_key_file(cli)
    assert key.fingerprint == SignedChain.fingerprint(trail_key) and key.valid_from == START
    guide = tmp_path / "guide.json"  # the user guide's sample: a real CloudTrail key, epoch-second times
    guide.write_text(json.dumps({"publicKeyList": [{
        "ValidityStartTime": "1436317441.0", "ValidityEndTime": "1438909441.0",
        "Value": "MIIBCgKCAQEAn11L2YZ9h7onug2ILi1MWyHiMRsTQjfWE+pHVRLk1QjfWhirG+lpOa8NrwQ/r7Ah5bNL6HepznOU9XTDSfmmnP97m"
                 "qyc7z/upfZdS/AHhYcGaz7n6Wc/RRBU6VmiPCrAUojuSk6/GjvA8iOPFsYDuBtviXarvuLPlrT9kAd4Lb+rFfR5peEgBEkhlzc5Hu"
                 "WO7S0y+KunqxX6jQBnXGMtxmPBPP0FylgWGNdFtks/4YSKcgqwH0YDcawP9GGGDAeCIqPWIXDLG1jOjRRzWfCmD0iJUkz8vTsn4h"
                 "q/5ZxRFE7UBAUiVcGbdnDdvVfhF9C3dQiDq3k7adQIziLT0cShgQIDAQAB",
        "Fingerprint": "8eba5db5bea9b640d1c96a77256fe7f2"}]}))
    [sample] = load_key_file(guide)
    assert sample.rsa().key_size == 2048 and sample.valid_from == datetime(2015, 7, 8, 1, 4, 1, tzinfo=UTC)


def test_a_broken_digest_is_named() -> None:
    for data, words in ((b"\x1f\x8b\x08\x00 cut", "corrupt gzip"), (b"[]", "not a JSON object"),
                        (gzip.compress(b'{"digestEndTime": "x"}'), "no digestPublicKeyFingerprint")):
        with pytest.raises(DigestFormatError, match=words):
            parse_digest(data)
    unreadable = FoundDigest("s3://b/k", "k", "b", error="not JSON")
    assert [f.detection_id for f in check_digests([unreadable], None).findings] == ["digest-invalid"]
