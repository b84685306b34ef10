"""The posture report's formats and the file suffixes that name them: no heavy import (the CLI's start-up)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class PostureFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"
    html = "html"


SUFFIXES = {
    ".html": PostureFormat.html,
    ".htm": PostureFormat.html,
    ".json": PostureFormat.json,
    ".jsonl": PostureFormat.jsonl,
    ".ndjson": PostureFormat.jsonl,
    ".md": PostureFormat.markdown,
    ".markdown": PostureFormat.markdown,
    ".txt": PostureFormat.table,
}


def format_for(path: Path, given: PostureFormat | None) -> PostureFormat:
    """The format to write ``path`` in: ``given`` (checked against the suffix), else the suffix's.
    Raises ValueError with the reason."""
    suffix = path.suffix.lower()
    implied = SUFFIXES.get(suffix)
    if given is None:
        if implied is None:
            raise ValueError(
                f"{path}: the suffix {suffix or '(none)'!r} names no posture format (known: "
                f"{', '.join(sorted(SUFFIXES))}); give --format"
            )
        return implied
    if implied is not None and implied is not given and suffix != ".txt":
        raise ValueError(f"{path}: the suffix {suffix!r} means --format {implied.value}, not {given.value}")
    return given
