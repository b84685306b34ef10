"""The synthetic corpus generator: deterministic, exact counts, real CloudTrail shapes and key layout."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from synth import CorpusStats, write_corpus

EVENTS = 4000
SEED = 11
SHAPE: dict[str, Any] = {"accounts": 2, "regions": ("us-east-1", "eu-west-1"), "days": 3}  # small: fast

KEY = re.compile(
    r"AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<acct>\d{12})/CloudTrail/(?P<region>[a-z]{2}-[a-z]+-\d)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=acct)_CloudTrail_(?P=region)_(?P=y)(?P=m)(?P=d)T(?P<hh>\d{2})(?P<mm>\d{2})Z_[A-Za-z0-9]{16}\.json\.gz"
)
REQUIRED = (
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "eventID",
    "eventType",
    "recipientAccountId",
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json.gz"))}


def records(data: bytes) -> list[dict[str, Any]]:
    doc = json.loads(gzip.decompress(data))
    assert list(doc) == ["Records"]
    assert isinstance(doc["Records"], list)
    return doc["Records"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusStats]:
    root = tmp_path_factory.mktemp("synth")
    return root, write_corpus(root, EVENTS, SEED, workers=1, **SHAPE)


@pytest.fixture(scope="module")
def parsed(corpus: tuple[Path, CorpusStats]) -> dict[str, list[dict[str, Any]]]:
    """S3 key → its records, read once for all the tests."""
    return {key: records(data) for key, data in objects(corpus[0]).items()}


def test_same_seed_same_bytes_whatever_the_workers(
    corpus: tuple[Path, CorpusStats], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root, stats = corpus
    again = tmp_path_factory.mktemp("synth-again")
    assert write_corpus(again, EVENTS, SEED, workers=2, **SHAPE) == stats
    first, second = objects(root), objects(again)
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_another_seed_another_corpus(corpus: tuple[Path, CorpusStats], tmp_path: Path) -> None:
    root, _ = corpus
    write_corpus(tmp_path, 200, SEED + 1, workers=1, **SHAPE)
    assert not set(objects(root)) & set(objects(tmp_path))


def test_counts(corpus: tuple[Path, CorpusStats], parsed: dict[str, list[dict[str, Any]]]) -> None:
    root, stats = corpus
    all_records = [r for recs in parsed.values() for r in recs]
    ids = [r["eventID"] for r in all_records]
    assert stats.files == len(parsed)
    assert stats.events == EVENTS == len(all_records)
    assert stats.compressed_bytes == sum(p.stat().st_size for p in root.rglob("*.json.gz"))
    duplicated = len(ids) - len(set(ids))
    assert duplicated == round(EVENTS * 0.001)
    assert stats.unique_event_ids == len(set(ids)) == EVENTS - duplicated


def test_second_deliveries_are_identical_global_events_in_another_object(
    parsed: dict[str, list[dict[str, Any]]],
) -> None:
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    pairs = 0
    for key, recs in parsed.items():
        for r in recs:
            if r["eventID"] in seen:
                other_key, other = seen[r["eventID"]]
                assert other == r and other_key != key
                assert r["eventSource"] in ("signin.amazonaws.com", "iam.amazonaws.com", "sts.amazonaws.com")
                assert {other_key.startswith("AWSLogs/o-"), key.startswith("AWSLogs/o-")} == {True, False}
                pairs += 1
            seen[r["eventID"]] = (key, r)
    assert pairs == round(EVENTS * 0.001)


def test_records_have_cloudtrail_shape(parsed: dict[str, list[dict[str, Any]]]) -> None:
    kinds: set[str] = set()
    for recs in parsed.values():
        assert 1 <= len(recs) <= 400
        for r in recs:
            missing = [f for f in REQUIRED if f not in r]
            assert not missing, (missing, r)
            assert UUID.fullmatch(r["eventID"])
            datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
            assert re.fullmatch(r"\d{12}", r["recipientAccountId"])
            kinds.add(r["userIdentity"].get("type", "-"))
    assert {"AssumedRole", "AWSService", "IAMUser"} <= kinds


def test_key_layout_and_delivery_time(parsed: dict[str, list[dict[str, Any]]]) -> None:
    for key, recs in parsed.items():
        m = KEY.fullmatch(key)
        assert m, key
        assert m["org"] in (None, "o-synth12345")
        delivered = datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["hh"]), int(m["mm"]), tzinfo=UTC)
        for r in recs:
            assert r["awsRegion"] == m["region"] or r["eventSource"] in ("iam.amazonaws.com", "sso.amazonaws.com")
            assert r["recipientAccountId"] == m["acct"]
            when = datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            assert 0 <= (delivered - when).total_seconds() <= 15 * 60


def test_account_trail_layout_without_org(tmp_path: Path) -> None:
    stats = write_corpus(tmp_path, 1500, 3, org_id=None, accounts=1, regions=("us-east-1",), days=1)
    keys = list(objects(tmp_path))
    assert len(keys) == stats.files
    assert all(KEY.fullmatch(k) and k.startswith("AWSLogs/") and "/o-" not in k for k in keys)
    assert stats.unique_event_ids == 1500 - 2
