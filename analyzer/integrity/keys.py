"""The public keys digests are checked with: ``cloudtrail:ListPublicKeys``, or the JSON it printed.

CloudTrail signs each region's digests with a private key of that region and publishes the public
keys (DER, PKCS #1) with a fingerprint and a validity period; a digest names the fingerprint of the
key that signed it (``digestPublicKeyFingerprint``). ``aws cloudtrail list-public-keys --region R``
prints them as JSON (``{"PublicKeyList": [{"Value": base64, "Fingerprint": …, "ValidityStartTime":
…, "ValidityEndTime": …}]}``): saved once, that file lets ``--public-key`` check signatures without
CloudTrail API access. A key is only ever chosen by the fingerprint a digest names.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from analyzer.errors import AnalyzerError


@dataclass(frozen=True)
class PublicKey:
    """One CloudTrail public key; ``where`` says where it came from (a file, ListPublicKeys in a region)."""

    fingerprint: str
    der: bytes
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    where: str = ""

    def rsa(self) -> RSAPublicKey:
        """The key, loaded (PKCS #1 as CloudTrail publishes it, or SubjectPublicKeyInfo)."""
        key = serialization.load_der_public_key(self.der)
        if not isinstance(key, RSAPublicKey):
            raise AnalyzerError(f"public key {self.fingerprint} ({self.where}): not an RSA key")
        return key


@dataclass
class KeyRing:
    """Public keys by fingerprint, and what was asked where (for the summary)."""

    keys: dict[str, PublicKey] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # "2 keys from keys.json", "ListPublicKeys eu-west-1: 3 keys"
    failed_regions: set[str] = field(default_factory=set)  # regions whose keys could not be listed
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, why) for the summary

    def add(self, keys: Iterable[PublicKey], source: str) -> None:
        added = 0
        for key in keys:
            added += key.fingerprint not in self.keys
            self.keys.setdefault(key.fingerprint, key)
        self.sources.append(f"{source}: {added} key{'' if added == 1 else 's'}")

    def get(self, fingerprint: str) -> PublicKey | None:
        return self.keys.get(fingerprint.lower())

    def __len__(self) -> int:
        return len(self.keys)


def _when(value: Any) -> datetime | None:
    """A validity time as the CLI prints it (ISO 8601), as the API returns it (a datetime), or as
    the user guide's sample shows it (epoch seconds, ``"1436317441.0"``)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
        return datetime.fromtimestamp(float(value), UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def key_from(entry: Mapping[str, Any], where: str) -> PublicKey:
    """One ``PublicKeyList`` entry (the API's, with bytes, or the CLI's JSON, with base64)."""
    value, fingerprint = entry.get("Value"), entry.get("Fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise AnalyzerError(f"{where}: a public key without Fingerprint")
    if isinstance(value, str):
        try:
            der = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise AnalyzerError(f"{where}: public key {fingerprint}: Value is not base64") from None
    elif isinstance(value, bytes | bytearray):
        der = bytes(value)
    else:
        raise AnalyzerError(f"{where}: public key {fingerprint}: no Value")
    try:
        key = PublicKey(fingerprint.lower(), der, _when(entry.get("ValidityStartTime")),
                        _when(entry.get("ValidityEndTime")), where)
    except (ValueError, OverflowError, OSError) as exc:
        raise AnalyzerError(f"{where}: public key {fingerprint}: bad validity time ({exc})") from None
    try:
        key.rsa()
    except ValueError as exc:
        raise AnalyzerError(f"{where}: public key {fingerprint}: not a DER RSA public key ({exc})") from None
    return key


def load_key_file(path: Path | str) -> list[PublicKey]:
    """The keys of a file that ``aws cloudtrail list-public-keys`` printed (or a list of its entries)."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AnalyzerError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise AnalyzerError(f"{where}: not JSON ({exc}); save what `aws cloudtrail list-public-keys` prints") from None
    entries = doc
    if isinstance(doc, dict):
        entries = doc.get("PublicKeyList", doc.get("publicKeyList"))
    if not isinstance(entries, list):
        raise AnalyzerError(f"{where}: no PublicKeyList; save what `aws cloudtrail list-public-keys` prints")
    return [key_from(entry, where) for entry in entries if isinstance(entry, Mapping)]


def keys_from_api(client: Any, start: datetime, end: datetime) -> list[PublicKey]:
    """The keys ``cloudtrail:ListPublicKeys`` returns for ``[start, end]`` in the client's region."""
    where = f"ListPublicKeys {client.meta.region_name}"
    keys: list[PublicKey] = []
    params: dict[str, Any] = {"StartTime": start, "EndTime": end}
    while True:
        page = client.list_public_keys(**params)
        keys.extend(key_from(entry, where) for entry in page.get("PublicKeyList", []))
        token = page.get("NextToken")
        if not token:
            return keys
        params["NextToken"] = token
