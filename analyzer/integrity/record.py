"""Digest files on their way into the manifest, and back out for ``analyzer verify --data``.

Ingest reads a digest file instead of skipping it unread: :func:`digest_outcome` turns its bytes into
the object's outcome (``skipped``: it holds no events) with a :class:`~analyzer.store.manifest.DigestRecord`
that the batch's commit writes to the ``digests`` and ``digest_logs`` tables in its one transaction.
"""

from __future__ import annotations

from analyzer.integrity.digest import Digest, DigestFormatError, LogEntry, parse_digest, parse_name
from analyzer.store.manifest import DigestRecord, ObjectOutcome

#: The reason a digest object is skipped (it holds no events); recorded ones say so.
DIGEST_SKIP = "CloudTrail digest file"
RECORDED = f"{DIGEST_SKIP} (recorded for analyzer verify)"


def to_record(digest: Digest, signature: str | None = None) -> DigestRecord:
    name = parse_name(digest.key)
    return DigestRecord(
        digest.bucket, digest.key, digest.account or (name.account if name else None), name.region if name else None,
        name.trail if name else None, digest.start.isoformat(), digest.end_text, digest.fingerprint,
        digest.previous_bucket, digest.previous_key, digest.previous_hash, digest.previous_signature, digest.sha256,
        tuple((e.bucket, e.key, e.hash_value, e.hash_algorithm) for e in digest.logs), signature,
    )


def from_record(record: DigestRecord) -> Digest:
    """The digest a record was made from (its signed fields as they were written)."""
    from datetime import UTC, datetime

    def when(text: str) -> datetime:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    return Digest(
        record.bucket, record.key, record.account, when(record.start_time), when(record.end_time), record.end_time,
        record.fingerprint, None, record.previous_bucket, record.previous_key, record.previous_hash, None,
        record.previous_signature, tuple(LogEntry(*log) for log in record.logs), record.sha256,
    )


def digest_outcome(uri: str, size: int, version: str, data: bytes, content_hash: str | None
                   ) -> tuple[ObjectOutcome, str | None]:
    """A digest object's outcome (skipped, with its record), and a warning when it could not be read as one."""
    try:
        digest = parse_digest(data)
    except DigestFormatError as exc:
        return (ObjectOutcome(uri, size, version, "skipped", reason=DIGEST_SKIP, content_hash=content_hash),
                f"not recorded for analyzer verify: not a readable digest ({exc})")
    return (ObjectOutcome(uri, size, version, "skipped", reason=RECORDED, content_hash=content_hash,
                          digest=to_record(digest)), None)
