"""Digest files on their way into the manifest, and back out for ``analyzer verify --data``.

Ingest reads a digest file instead of skipping it unread: :func:`digest_outcome` turns its bytes into
the object's outcome (``skipped``: it holds no events) with a :class:`~analyzer.store.manifest.DigestRecord`
that the batch's commit writes to the ``digests`` and ``digest_logs`` tables in its one transaction.
A digest read from S3 (``pull``) comes as :class:`DigestBytes`: its bytes with the signature S3 keeps
in the object's metadata, which the record keeps too (it travels with the bytes to the worker).
"""

from __future__ import annotations

from collections.abc import Mapping

from analyzer.integrity.digest import Digest, DigestFormatError, LogEntry, parse_digest, parse_name
from analyzer.store.manifest import DigestRecord, ObjectOutcome

#: The reason a digest object is skipped (it holds no events); recorded ones say so.
DIGEST_SKIP = "CloudTrail digest file"
RECORDED = f"{DIGEST_SKIP} (recorded for analyzer verify)"


class DigestBytes(bytes):
    """A digest object's bytes, with what its S3 metadata said (``x-amz-meta-signature`` and
    ``x-amz-meta-signature-algorithm``; None: the object had none). Pickles with its attributes."""

    signature: str | None
    signature_algorithm: str | None

    @classmethod
    def from_metadata(cls, data: bytes, metadata: Mapping[str, str]) -> DigestBytes:
        """From a GetObject response's ``Metadata`` (user metadata, names without ``x-amz-meta-``)."""
        lowered = {str(k).lower(): str(v) for k, v in metadata.items()}
        made = cls(data)
        made.signature = lowered.get("signature")
        made.signature_algorithm = lowered.get("signature-algorithm")
        return made


def to_record(digest: Digest, signature: str | None = None, *, from_s3: bool = False) -> DigestRecord:
    name = parse_name(digest.key)
    return DigestRecord(
        digest.bucket, digest.key, digest.account or (name.account if name else None), name.region if name else None,
        name.trail if name else None, digest.start.isoformat(), digest.end_text, digest.fingerprint,
        digest.previous_bucket, digest.previous_key, digest.previous_hash, digest.previous_signature, digest.sha256,
        tuple((e.bucket, e.key, e.hash_value, e.hash_algorithm) for e in digest.logs), signature, from_s3,
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
    signed = isinstance(data, DigestBytes)
    record = to_record(digest, data.signature if isinstance(data, DigestBytes) else None, from_s3=signed)
    return (ObjectOutcome(uri, size, version, "skipped", reason=RECORDED, content_hash=content_hash,
                          digest=record, content_sha256=digest.sha256), None)
