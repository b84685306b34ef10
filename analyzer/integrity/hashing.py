"""The SHA-256 a CloudTrail digest records: of a file's *uncompressed* content, every gzip member.

AWS hashes the content a log or digest file holds, not the gzip bytes as stored (the digest file
structure: ``hashValue`` is "the hexadecimal encoded hash value of the uncompressed log file
content"), so a copy that someone decompressed still verifies. ``aws cloudtrail validate-logs``
inflates only the first gzip member; here every member is hashed, as ingest reads every member:
records appended as a second member change the hash instead of passing unseen.

Inflating uses ISA-L (as ingest does) in 1 MiB steps, so memory stays small whatever the file's
size; both ISA-L and hashlib release the GIL on large buffers, so threads hash files in parallel.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from isal import isal_zlib

from analyzer.errors import AnalyzerError

GZIP_MAGIC = b"\x1f\x8b"
STEP = 1 << 20  # bytes read, and bytes inflated, per call
_GZIP_WBITS = 31  # a gzip header and trailer, checked


class HashError(AnalyzerError):
    """The file is not what it claims: a gzip stream that is corrupt or cut short."""


class _Hasher:
    """SHA-256 of the uncompressed content of a stream fed in pieces (gzip members, or plain bytes)."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.inflater: Any = None
        self.plain: bool | None = None  # decided by the first two bytes
        self.head = b""
        self.size = 0

    def feed(self, data: bytes) -> None:
        if self.plain is None:
            self.head += data
            if len(self.head) < 2:
                return
            self.plain = self.head[:2] != GZIP_MAGIC
            data, self.head = self.head, b""
        if self.plain:
            self.sha.update(data)
            self.size += len(data)
            return
        while data:
            if self.inflater is None:
                if data[:1] == b"\0" and not data.strip(b"\0"):
                    return  # zero padding after the last member
                if data[:2] != GZIP_MAGIC and len(data) >= 2:
                    raise HashError(f"corrupt gzip: {len(data)} bytes after the last member")
                self.inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
            try:
                out = self.inflater.decompress(data, STEP)
                while out:
                    self.sha.update(out)
                    self.size += len(out)
                    out = self.inflater.decompress(self.inflater.unconsumed_tail, STEP)
            except (isal_zlib.IsalError, ValueError) as exc:  # type: ignore[misc]
                raise HashError(f"corrupt gzip: {exc}") from None
            if self.inflater.eof:
                data = self.inflater.unused_data
                self.inflater = None
            else:
                data = b""

    def hexdigest(self) -> str:
        if self.plain is None:  # fewer than two bytes in all: plain
            self.sha.update(self.head)
            self.size += len(self.head)
        elif self.inflater is not None:
            raise HashError("corrupt gzip: the file ends inside a member (truncated?)")
        return self.sha.hexdigest()


def content_sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``'s uncompressed content (gzip, every member; plain bytes as they are)."""
    hasher = _Hasher()
    hasher.feed(data)
    return hasher.hexdigest()


def file_sha256(path: Path | str) -> str:
    """:func:`content_sha256` of a file, read in steps (memory stays small for any size)."""
    hasher = _Hasher()
    with open(path, "rb") as handle:
        while chunk := handle.read(STEP):
            hasher.feed(chunk)
    return hasher.hexdigest()


def inflate(data: bytes, limit: int) -> bytes:
    """``data``'s uncompressed content (every gzip member; plain bytes as they are), at most ``limit``
    bytes: past it, :class:`HashError` (a small file that inflates without end is not a digest)."""
    if data[:2] != GZIP_MAGIC:
        if len(data) > limit:
            raise HashError(f"larger than {limit:,} bytes")
        return data
    out: list[bytes] = []
    total = 0
    rest = data
    while rest and rest.strip(b"\0"):
        if rest[:2] != GZIP_MAGIC:
            raise HashError(f"corrupt gzip: {len(rest)} bytes after the last member")
        inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            piece = inflater.decompress(rest, limit - total + 1)
        except (isal_zlib.IsalError, ValueError) as exc:  # type: ignore[misc]
            raise HashError(f"corrupt gzip: {exc}") from None
        total += len(piece)
        if total > limit:
            raise HashError(f"larger than {limit:,} bytes uncompressed")
        if not inflater.eof:
            raise HashError("corrupt gzip: the file ends inside a member (truncated?)")
        out.append(piece)
        rest = inflater.unused_data
    return b"".join(out)
