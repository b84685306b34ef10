"""Writing reports and outputs atomically: a reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from analyzer.errors import AnalyzerError


def write_text_atomic(path: Path, text: str, *, make_parents: bool = False) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder, fsync, and a rename."""
    path = path.expanduser()
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AnalyzerError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
