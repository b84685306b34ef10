"""What a source hands to the ingest pipeline: named objects that can produce their bytes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

#: Parts of a CloudTrail key that mark objects which are not event logs and are skipped unread.
#: (Digest files are read: ingest records them in the manifest, for ``analyzer verify``.)
NOT_EVENT_LOGS = {
    "CloudTrail-Insight": "CloudTrail Insights file",
}


@runtime_checkable
class SourceObject(Protocol):
    """One log object: a stable ``uri``, its ``size``, a ``version`` (ETag, or size+mtime for a
    local file: the same uri at the same version is never ingested twice) and its bytes."""

    @property
    def uri(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def version(self) -> str: ...

    def read(self) -> bytes: ...


def skip_reason(key: str) -> str | None:
    """Why an object is not a CloudTrail event log, judged from its key alone (or None)."""
    for marker, reason in NOT_EVENT_LOGS.items():
        if f"/{marker}/" in key or f"_{marker}_" in key:
            return reason
    return None
