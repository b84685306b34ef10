"""The ingest job: local log files and directories into the dataset.

The files are walked before the pipeline starts, so a progress display has its final total from
the first update, and a path that is no local file (``s3://…``: that is ``pull``'s job) is a usage
error before anything is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from analyzer.errors import UsageError
from analyzer.ingest.decode import MAX_OBJECT_BYTES
from analyzer.ingest.pipeline import BATCH_BYTES, IngestStats, ingest_objects
from analyzer.jobs.interrupt import quiet_workers_on_ctrl_c
from analyzer.jobs.progress import Found, Progress, reporter
from analyzer.sources.local import walk

#: ``s3://bucket``, ``https://…``: what a shell passes on unchanged and a Path would mangle (``s3:/bucket``).
_URL = re.compile(r"^[a-z][a-z0-9+.-]*:/", re.IGNORECASE)


def local_paths(paths: Sequence[Path | str]) -> list[Path]:
    """``paths`` as local paths; a URL among them is a usage error (an S3 one points to ``analyzer pull``)."""
    checked: list[Path] = []
    for given in paths:
        text = str(given)
        if _URL.match(text) and not Path(text).exists():
            if text.lower().startswith("s3:"):
                url = "s3://" + re.sub(r"^s3:/+", "", text, flags=re.IGNORECASE)
                raise UsageError(f"{url}: ingest reads local files; to read S3: analyzer pull {url}")
            raise UsageError(f"{text}: ingest reads local files and directories, not URLs")
        checked.append(Path(given))
    return checked


def run_ingest(
    paths: Sequence[Path | str],
    data: Path | str,
    *,
    workers: int | None = None,
    batch_bytes: int = BATCH_BYTES,
    compact: bool = True,
    max_object_bytes: int = MAX_OBJECT_BYTES,
    progress: Callable[[Progress], None] | None = None,
) -> IngestStats:
    """Ingest the log files under ``paths`` (files or directories, walked recursively) into ``data``.

    Objects already in the dataset are not read again; Ctrl-C stops the run (KeyboardInterrupt) and
    the next run resumes it. ``compact``: merge the days the run touched afterwards.
    """
    found = Found(list(walk(local_paths(paths))))
    quiet_workers_on_ctrl_c()
    return ingest_objects(
        found,
        data,
        workers=workers,
        batch_bytes=batch_bytes,
        progress=reporter(found, progress),
        compact_partitions=compact,
        max_object_bytes=max_object_bytes,
    )
