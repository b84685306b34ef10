"""The checks: each digest on its own, the chain that links them, and the log files they list.

Pure functions over what a store (:mod:`analyzer.integrity.stores`) read, so every rule is tested
without S3. The rules, per chain (a trail's digests of one account and region, by end time):

- a digest must parse, sit where it says it was delivered (``digestS3Bucket``/``digestS3Object``)
  and carry a valid SHA256withRSA signature by the key its fingerprint names: else
  ``digest-invalid``. The signature is the object's ``x-amz-meta-signature``; a copy without S3
  metadata is checked with the one the next digest repeats (``previousDigestSignature``), so only
  the newest copy stays unchecked offline;
- the previous digest a digest names must exist (``digest-missing``), hash to its
  ``previousDigestHashValue`` and carry its ``previousDigestSignature`` (``digest-chain-broken``).
  A link to a digest that is itself invalid is not judged twice. A chain that starts again (a
  starting digest after earlier ones: validation was off, or logging stopped) is a gap
  (``digest-missing``, medium);
- every listed log file must exist (``log-file-deleted``) and hash to its ``hashValue``
  (``log-file-modified``); a log file of the window that no digest lists, delivered while digests
  of its account and region were being made, is ``log-file-not-in-digest`` (logs in the hours of a
  missing digest are that digest's finding, not one each).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from analyzer.integrity.digest import Digest, LogEntry, layout_tail, log_name_time, parse_name
from analyzer.integrity.findings import Finding
from analyzer.integrity.keys import KeyRing
from analyzer.integrity.signature import ALGORITHM, signature_valid

HOUR = timedelta(hours=1)
#: How long after the time in its name a log file may be delivered (and so digested).
DELIVERY_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class FoundDigest:
    """One digest file as a store read it: where, what it holds (or why not), its S3 signature."""

    uri: str
    key: str  # the key it was read at (offline: its path in the S3 layout, below the copy's root)
    bucket: str | None  # the bucket it was read from (None offline: a copy's bucket is unknown)
    digest: Digest | None = None
    error: str | None = None
    signature: str | None = None  # x-amz-meta-signature (None offline)
    signature_algorithm: str | None = None

    @property
    def end(self) -> datetime | None:
        if self.digest is not None:
            return self.digest.end
        name = parse_name(self.key)
        return name.end if name else None


@dataclass(frozen=True)
class LogResult:
    """One listed log file as a store read it: its hash, or that it is missing, corrupt or unreadable."""

    sha256: str | None = None
    present: bool = False  # there, its hash unknown (ingested before the dataset recorded content hashes)
    missing: bool = False
    corrupt: str | None = None  # not gzip any more, cut short...
    error: str | None = None  # could not be read (denied...): nothing can be said


@dataclass
class ChainReport:
    """What :func:`check_digests` decided."""

    findings: list[Finding] = field(default_factory=list)
    valid: list[FoundDigest] = field(default_factory=list)
    invalid: list[FoundDigest] = field(default_factory=list)
    signatures_checked: int = 0
    signatures_unchecked: int = 0
    unchecked_why: set[str] = field(default_factory=set)
    logs: list[tuple[LogEntry, FoundDigest]] = field(default_factory=list)  # every log a readable digest lists
    missing_spans: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)  # account, region, hours
    problems: list[tuple[str, str]] = field(default_factory=list)  # (uri, reason): nothing can be said
    unhashed: int = 0  # listed log files found, whose content hash was not recorded (verify --data, old datasets)


def _stream(found: FoundDigest) -> tuple[str, ...]:
    name = parse_name(found.digest.key if found.digest else found.key)
    if name is None:
        return ("?", found.key)
    return name.stream


def _context(found: FoundDigest) -> tuple[str | None, str | None]:
    name = parse_name(found.digest.key if found.digest else found.key)
    return (name.account, name.region) if name else (found.digest.account if found.digest else None, None)


def _finding(kind: str, found: FoundDigest, reason: str, **details: object) -> Finding:
    account, region = _context(found)
    start = found.digest.start if found.digest else None
    return Finding(kind, found.uri, reason, account, region, start, found.end, details=dict(details))


def check_digests(
    found: Sequence[FoundDigest],
    keys: KeyRing | None,
    *,
    since: datetime | None = None,
    resolve: Callable[[str | None, str], FoundDigest | None] | None = None,
    uri: Callable[[str | None, str], str] = lambda bucket, key: f"s3://{bucket}/{key}",
) -> ChainReport:
    """Check every digest of ``found`` and the links between them.

    ``keys``: the public keys (None: signatures are not checked). ``since``: a link to a digest
    that ended before it is not followed (the window starts there). ``resolve(bucket, key)``
    reads a named previous digest that the listing did not bring (None: it does not exist).
    """
    report = ChainReport()
    by_key = {f.key: f for f in found}
    successors: dict[str, FoundDigest] = {}
    for f in found:
        if f.digest and f.digest.previous_key and not _is_backfill(f):
            successors.setdefault(f.digest.previous_key, f)
    own_ok: dict[str, bool] = {}
    for f in found:
        own_ok[f.key] = _check_own(f, keys, successors.get(f.key), report)
        (report.valid if own_ok[f.key] else report.invalid).append(f)
        if f.digest is not None and f.digest.key == f.key:
            report.logs.extend((entry, f) for entry in f.digest.logs)

    streams: dict[tuple[str, ...], list[FoundDigest]] = defaultdict(list)
    for f in found:
        if f.digest is not None and not _is_backfill(f):
            streams[_stream(f)].append(f)
    for chain in streams.values():
        chain.sort(key=lambda f: (f.digest.end if f.digest else datetime.min, f.key))
        # No window start: the chain is followed back to its first digest present, not beyond it (a
        # copy of a few days starts somewhere; what came before it is not in question).
        start = since if since is not None else chain[0].digest.end if chain[0].digest else None
        for position, f in enumerate(chain):
            earlier = chain[position - 1] if position else None
            _check_link(f, earlier, by_key, own_ok, report, since=start, resolve=resolve, uri=uri)
    return report


def _is_backfill(found: FoundDigest) -> bool:
    name = parse_name(found.key)
    return bool(name and name.backfill)


def _check_own(found: FoundDigest, keys: KeyRing | None, successor: FoundDigest | None, report: ChainReport) -> bool:
    """The digest on its own: readable, in place, signed. Records a finding and returns False if not."""
    digest = found.digest
    if digest is None:
        report.findings.append(_finding("digest-invalid", found, f"unreadable: {found.error}"))
        return False
    if digest.key != found.key or (found.bucket is not None and digest.bucket != found.bucket):
        report.findings.append(_finding(
            "digest-invalid", found, f"moved from where it was delivered (it says s3://{digest.bucket}/{digest.key})"))
        return False
    algorithm = found.signature_algorithm or digest.algorithm
    if algorithm is not None and algorithm != ALGORITHM:
        report.findings.append(_finding("digest-invalid", found, f"unknown signature algorithm {algorithm[:40]!r}"))
        return False
    if found.bucket is not None:  # read from S3: the object's own metadata carries the signature
        if found.signature is None:
            report.findings.append(_finding("digest-invalid", found,
                                            "no x-amz-meta-signature: not signed by CloudTrail"))
            return False
        signature, where = found.signature, "x-amz-meta-signature"
    else:  # a copy: the next digest repeats the signature
        signature, where = None, "the next digest's previousDigestSignature"
        if successor is not None and successor.digest is not None:
            signature = successor.digest.previous_signature
    if signature is None:
        report.signatures_unchecked += 1
        report.unchecked_why.add("the newest copy of a chain: a copy keeps no S3 metadata, and no later digest "
                                 "repeats its signature")
        return True
    name = parse_name(digest.key)
    if keys is None or (name is not None and name.region in keys.failed_regions):
        report.signatures_unchecked += 1
        report.unchecked_why.add("no public keys" if keys is None else
                                 f"the public keys of {name.region if name else '?'} could not be listed")
        return True
    key = keys.get(digest.fingerprint)
    if key is None:
        report.findings.append(_finding(
            "digest-invalid", found, f"signed by an unknown key (fingerprint {digest.fingerprint[:64]!r} is none of "
            f"the {len(keys)} public keys given)", fingerprint=digest.fingerprint))
        return False
    report.signatures_checked += 1
    if not signature_valid(digest, signature, key):
        report.findings.append(_finding(
            "digest-invalid", found, f"signature verification failed ({where}, key {key.fingerprint})",
            fingerprint=key.fingerprint))
        return False
    return True


def _check_link(
    found: FoundDigest,
    earlier: FoundDigest | None,
    by_key: Mapping[str, FoundDigest],
    own_ok: Mapping[str, bool],
    report: ChainReport,
    *,
    since: datetime | None,
    resolve: Callable[[str | None, str], FoundDigest | None] | None,
    uri: Callable[[str | None, str], str],
) -> None:
    digest = found.digest
    assert digest is not None
    if not own_ok.get(found.key, False):
        return  # what an invalid digest says of its previous one is not evidence
    account, region = _context(found)
    if digest.previous_key is None:
        if earlier is not None and earlier.digest is not None:
            report.findings.append(Finding(
                "digest-missing", found.uri,
                f"the chain starts again: no digest from {earlier.digest.end:%Y-%m-%dT%H:%M:%SZ} to "
                f"{digest.start:%Y-%m-%dT%H:%M:%SZ} (log file validation was turned off, or logging stopped)",
                account, region, earlier.digest.end, digest.start, severity="medium"))
        return
    previous = by_key.get(digest.previous_key)
    if previous is None:
        name = parse_name(digest.previous_key)
        if since is not None and name is not None and name.end < since:
            return  # before the window (or before the first digest there is): not followed
        if found.bucket is not None and digest.previous_bucket not in (None, found.bucket):
            report.problems.append((uri(digest.previous_bucket, digest.previous_key),
                                    "the previous digest is in another bucket: not followed"))
            return
        previous = resolve(digest.previous_bucket, digest.previous_key) if resolve else None
        if previous is None:
            start = earlier.digest.end if earlier is not None and earlier.digest else digest.start - HOUR
            report.missing_spans.append((account or "", region or "", start, digest.start))
            report.findings.append(Finding(
                "digest-missing", uri(digest.previous_bucket, digest.previous_key),
                f"not found; {found.uri} names it as its previous digest", account, region, start, digest.start,
                details={"named_by": found.uri}))
            return
        own_ok = {**own_ok, previous.key: _check_own(previous, None, found, ChainReport())}
    if not own_ok.get(previous.key, False) or previous.digest is None:
        return  # an invalid digest is reported once, as such
    problems = []
    if (digest.previous_hash or "") != previous.digest.sha256:
        problems.append(f"its SHA-256 is {previous.digest.sha256}, {found.uri} recorded "
                        f"{(digest.previous_hash or 'none')[:64]}")
    if previous.signature is not None and (digest.previous_signature or "").lower() != previous.signature.lower():
        problems.append(f"its signature is not the previousDigestSignature {found.uri} recorded")
    if problems:
        report.findings.append(_finding("digest-chain-broken", previous, "; ".join(problems), next_digest=found.uri))


def check_logs(
    chain: ChainReport,
    results: Mapping[tuple[str, str], LogResult],
    listed: Iterable[tuple[str, str, str]],
    *,
    uri: Callable[[str | None, str], str],
) -> tuple[list[Finding], int, int]:
    """The log files the digests list (``results`` by (bucket, key)) and those ``listed`` (bucket,
    key, uri) that no digest lists; returns the findings, the logs valid and the logs invalid."""
    findings: list[Finding] = []
    valid = invalid = 0
    seen: set[str] = set()
    for entry, found in chain.logs:
        seen.add(layout_tail(entry.key).removesuffix(".gz"))  # a copy may hold it decompressed
        where = uri(entry.bucket, entry.key)
        named = log_name_time(entry.key)
        account, region = (named[0], named[1]) if named else _context(found)
        when = named[2] if named else None
        result = results.get((entry.bucket, entry.key))
        if result is None or result.error is not None:
            chain.problems.append((where, (result.error if result else None) or "not read"))
            continue
        if entry.hash_algorithm.upper().replace("_", "-") != "SHA-256":
            chain.problems.append((where, f"unknown hash algorithm {entry.hash_algorithm[:40]!r}"))
            continue
        if result.missing:
            findings.append(Finding("log-file-deleted", where, f"not found; {found.uri} lists it", account, region,
                                    when, when, details={"digest": found.uri, "expected_sha256": entry.hash_value}))
        elif result.present:
            chain.unhashed += 1
            continue
        elif result.corrupt is not None:
            findings.append(Finding("log-file-modified", where, f"{result.corrupt}; {found.uri} lists it", account,
                                    region, when, when, details={"digest": found.uri,
                                                                 "expected_sha256": entry.hash_value}))
        elif result.sha256 != entry.hash_value:
            findings.append(Finding("log-file-modified", where, f"hash value doesn't match the one {found.uri} lists",
                                    account, region, when, when,
                                    details={"digest": found.uri, "expected_sha256": entry.hash_value,
                                             "sha256": result.sha256}))
        else:
            valid += 1
            continue
        invalid += 1
    spans = _coverage(chain)
    for _bucket, key, where in listed:
        if layout_tail(key).removesuffix(".gz") in seen:
            continue
        named = log_name_time(key)
        if named is None:
            continue
        account, region, when = named
        covered = spans.get((account, region))
        if covered is None or not (covered[0] <= when and when + DELIVERY_MARGIN <= covered[1]):
            continue
        if any(a == account and r == region and start - DELIVERY_MARGIN <= when <= end + DELIVERY_MARGIN
               for a, r, start, end in chain.missing_spans):
            continue
        findings.append(Finding("log-file-not-in-digest", where,
                                "no digest lists it, though digests of its account and region cover its hour",
                                account, region, when, when))
    return findings, valid, invalid


def _coverage(chain: ChainReport) -> dict[tuple[str, str], tuple[datetime, datetime]]:
    """Per account and region, from the first digest's start to the last one's end."""
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for found in [*chain.valid, *chain.invalid]:
        if found.digest is None:
            continue
        name = parse_name(found.digest.key)
        if name is None:
            continue
        key = (name.account, name.region)
        start, end = spans.get(key, (found.digest.start, found.digest.end))
        spans[key] = (min(start, found.digest.start), max(end, found.digest.end))
    return spans
