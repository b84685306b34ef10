"""CloudTrail digest files: their names, their JSON, and the hash the next digest records of them.

A digest is delivered every hour per trail, account and region (``…/CloudTrail-Digest/REGION/
YYYY/MM/DD/ACCOUNT_CloudTrail-Digest_REGION_TRAIL_HOMEREGION_YYYYMMDDTHHMMSSZ.json.gz``, a
``_backfill`` suffix for a late one), lists the log files delivered in that hour with their
SHA-256, and names the previous digest (bucket, key, hash of its uncompressed content, its
signature): the chain. Field names and semantics follow AWS's "CloudTrail digest file structure".
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analyzer.errors import AnalyzerError
from analyzer.integrity.hashing import HashError, inflate

DIGEST_FOLDER = "CloudTrail-Digest"
#: A digest lists an hour's log files: a few KB, a few MB for the busiest trails. Larger is not a digest.
MAX_DIGEST_BYTES = 64 * 1024 * 1024
#: The fields a digest must hold before it can be checked at all (the ones ``validate-logs`` requires).
REQUIRED = ("digestPublicKeyFingerprint", "digestS3Bucket", "digestS3Object", "previousDigestSignature",
            "digestEndTime", "digestStartTime")
_NAME = re.compile(
    r"(?:^|/)(?P<account>\d{12})_CloudTrail-Digest_(?P<region>[a-z0-9-]+)_(?P<trail>.+)_"
    r"(?P<home>[a-z]{2}(?:-[a-z]+)+-\d+)_(?P<end>\d{8}T\d{6}Z)(?P<backfill>_backfill)?\.json(?:\.gz)?$"
)
_LOG_NAME = re.compile(r"(?:^|/)(?P<account>\d{12})_CloudTrail_(?P<region>[a-z0-9-]+)_(?P<time>\d{8}T\d{4}Z)_"
                       r"[^/]*\.json(?:\.gz)?$")


class DigestFormatError(AnalyzerError):
    """Not a readable digest: not gzip or JSON, or a required field missing or of the wrong type."""


@dataclass(frozen=True)
class DigestName:
    """What a digest's file name says: whose chain it belongs to and the hour it ends."""

    account: str
    region: str  # the region that delivered it (and signed it)
    trail: str
    home_region: str
    end: datetime
    backfill: bool

    @property
    def stream(self) -> tuple[str, str, str, str]:
        """One chain: a trail's digests of one account and one region."""
        return (self.account, self.region, self.trail, self.home_region)


def _stamp(text: str) -> datetime | None:
    """``YYYYMMDDTHHMM[SS]Z`` (strptime costs a third of a run's checks on a large copy)."""
    try:
        return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]),
                        int(text[13:15]) if len(text) > 14 else 0, tzinfo=UTC)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1 << 16)
def parse_name(key: str) -> DigestName | None:
    """The parts of a digest key (None when the key is not named like a digest)."""
    match = _NAME.search(key)
    if not match:
        return None
    end = _stamp(match["end"])
    if end is None:
        return None
    return DigestName(match["account"], match["region"], match["trail"], match["home"], end,
                      bool(match["backfill"]))


def is_digest_key(key: str) -> bool:
    """A key in the digest folder, or named like a digest."""
    return f"/{DIGEST_FOLDER}/" in key or f"_{DIGEST_FOLDER}_" in key


def layout_tail(key: str) -> str:
    """The part of a key from ``AWSLogs/`` on: the same for an object in S3 and for its copy on a disk,
    whatever the trail prefix, the bucket folder or the root the copy was made under ("" if none)."""
    parts = key.replace("\\", "/").split("/")
    return "/".join(parts[parts.index("AWSLogs"):]) if "AWSLogs" in parts else ""


def log_name_time(key: str) -> tuple[str, str, datetime] | None:
    """A log file's account, region and the time in its name (its newest event, about when it was delivered)."""
    match = _LOG_NAME.search(key)
    when = _stamp(match["time"]) if match else None
    if match is None or when is None:
        return None
    return match["account"], match["region"], when


@dataclass(frozen=True)
class LogEntry:
    """One log file a digest vouches for."""

    bucket: str
    key: str
    hash_value: str
    hash_algorithm: str


@dataclass(frozen=True)
class Digest:
    """A parsed digest file. ``end_text`` is ``digestEndTime`` exactly as written: it is signed."""

    bucket: str
    key: str
    account: str | None
    start: datetime
    end: datetime
    end_text: str
    fingerprint: str
    algorithm: str | None
    previous_bucket: str | None
    previous_key: str | None
    previous_hash: str | None
    previous_hash_algorithm: str | None
    previous_signature: str | None
    logs: tuple[LogEntry, ...]
    sha256: str  # of the uncompressed file: what the next digest's previousDigestHashValue must be

    @property
    def name(self) -> DigestName | None:
        return parse_name(self.key)

    @property
    def starts_chain(self) -> bool:
        """A starting digest (validation turned on, or logging restarted): it names no previous one."""
        return self.previous_key is None


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise DigestFormatError(f"{field} is not a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DigestFormatError(f"{field} is not a time: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(doc: dict[str, Any], field: str, *, optional: bool = False) -> str | None:
    value = doc.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DigestFormatError(f"{field} is {'missing' if value is None else 'not a string'}")
    return value


def parse_digest(data: bytes) -> Digest:
    """A digest from its bytes (gzip as delivered, or a decompressed copy); :class:`DigestFormatError`
    names what is wrong."""
    try:
        content = inflate(data, MAX_DIGEST_BYTES)
    except HashError as exc:
        raise DigestFormatError(str(exc)) from None
    sha = hashlib.sha256(content).hexdigest()
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise DigestFormatError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DigestFormatError("not a JSON object")
    missing = [f for f in REQUIRED if f not in doc]
    if missing:
        raise DigestFormatError(f"no {', '.join(missing)}")
    logs = doc.get("logFiles") or []
    if not isinstance(logs, list):
        raise DigestFormatError("logFiles is not a list")
    entries = []
    for position, entry in enumerate(logs):
        if not isinstance(entry, dict):
            raise DigestFormatError(f"logFiles[{position}] is not an object")
        entries.append(LogEntry(
            str(_text(entry, "s3Bucket")), str(_text(entry, "s3Object")), str(_text(entry, "hashValue")).lower(),
            _text(entry, "hashAlgorithm", optional=True) or "SHA-256",
        ))
    end_text = str(_text(doc, "digestEndTime"))
    return Digest(
        bucket=str(_text(doc, "digestS3Bucket")),
        key=str(_text(doc, "digestS3Object")),
        account=_text(doc, "awsAccountId", optional=True),
        start=_time(doc["digestStartTime"], "digestStartTime"),
        end=_time(end_text, "digestEndTime"),
        end_text=end_text,
        fingerprint=str(_text(doc, "digestPublicKeyFingerprint")),
        algorithm=_text(doc, "digestSignatureAlgorithm", optional=True),
        previous_bucket=_text(doc, "previousDigestS3Bucket", optional=True),
        previous_key=_text(doc, "previousDigestS3Object", optional=True),
        previous_hash=(_text(doc, "previousDigestHashValue", optional=True) or "").lower() or None,
        previous_hash_algorithm=_text(doc, "previousDigestHashAlgorithm", optional=True),
        previous_signature=_text(doc, "previousDigestSignature", optional=True),
        logs=tuple(entries),
        sha256=sha,
    )

