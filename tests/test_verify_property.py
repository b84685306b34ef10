"""Property (issue 16): for any subset of the tamperings an intruder can make after delivery, each at a
chain position of its own, `verify` reports exactly those findings: nothing missed, nothing extra,
nothing doubled. On the moto server, with a chain signed by a key made for the test."""

from __future__ import annotations

import gzip
import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.integrity.stores import S3Store
from analyzer.jobs.verify import public_keys, run_verify
from analyzer.sources.s3 import S3Source
from analyzer.window import Window

from s3_server import S3Server, SignedChain, signed_chain

START = datetime(2026, 11, 20, 0, 0, 31, tzinfo=UTC)
HOURS = 14
SLOTS = list(range(0, HOURS, 2))  # a digest apart: no two tamperings see each other
LAST = SLOTS[-1]
#: Removing the newest digest, or forging the newest's content, leaves nothing that names it: those two
#: never take the last slot (what a later digest would reveal is outside any window).
KINDS = ("digest removed", "link forged", "modified", "deleted", "unknown key", "log injected", "appended")
BUCKETS = itertools.count()


@pytest.fixture(scope="module")
def keys() -> tuple[Any, Any]:
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


def tamper(trail: SignedChain, kind: str, slot: int, which: int, other_key: Any, rng: random.Random) -> tuple[str, str]:
    """Make one tampering at ``slot``; returns the finding it must give (detection id, key)."""
    digest = trail.digests[slot]
    log = trail.logs[digest][which]
    if kind == "digest removed":
        trail.delete(digest)
        return "digest-missing", digest
    if kind == "link forged":
        trail.forge_link(digest)
        return "digest-chain-broken", digest
    if kind == "modified":
        trail.modify_log(log, rng)
        return "log-file-modified", log
    if kind == "deleted":
        trail.delete(log)
        return "log-file-deleted", log
    if kind == "unknown key":
        trail.resign(digest, other_key)
        return "digest-invalid", digest
    if kind == "log injected":
        return "log-file-not-in-digest", trail.inject_log(START + timedelta(hours=slot, minutes=20), rng)
    body, metadata = trail.objects[log]
    trail.objects[log] = (body + gzip.compress(b'{"Records": [{"eventName": "Added"}]}'), metadata)
    return "log-file-modified", log


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sets(st.sampled_from(KINDS)), order=st.permutations(SLOTS), which=st.integers(0, 1),
       seed=st.integers(0, 2**16))
def test_any_tamperings_give_exactly_their_findings(s3: S3Server, keys: tuple[Any, Any], tmp_path: Path,
                                                    chosen: set[str], order: list[int], which: int,
                                                    seed: int) -> None:
    trail_key, other_key = keys
    rng = random.Random(seed)
    trail = signed_chain(rng, trail_key, start=START, hours=HOURS, bucket=f"trail-{next(BUCKETS)}")
    slots = dict(zip(KINDS, order, strict=True))
    for kind in ("digest removed", "link forged"):  # one kind at most holds the last slot
        if slots[kind] == LAST:
            slots[kind], slots["modified"] = slots["modified"], LAST
    expected = {tamper(trail, kind, slots[kind], which, other_key, rng) for kind in sorted(chosen)}
    trail.upload(s3.client())
    key_file = SignedChain.key_file(trail_key, tmp_path / "keys.json", start=START - timedelta(days=1),
                                    end=START + timedelta(days=1))
    source = S3Source(s3.client(), f"s3://{trail.bucket}")
    result = run_verify(S3Store(source, workers=4), window=Window(START, START + timedelta(hours=HOURS)),
                        keys=public_keys([key_file]), workers=4, now=START + timedelta(hours=HOURS + 2))
    got = [(f.detection_id, f.uri.removeprefix(f"s3://{trail.bucket}/")) for f in result.findings]
    assert sorted(got) == sorted(expected)  # exactly those, each once
    assert result.problems == []
    assert result.exit_code == (3 if expected else 0)
