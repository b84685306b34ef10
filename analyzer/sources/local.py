"""Log files on a local disk: files and directories, walked recursively."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import AnalyzerError


@dataclass(frozen=True)
class LocalFile:
    uri: str  # the absolute path
    size: int
    version: str

    def read(self) -> bytes:
        with open(self.uri, "rb") as handle:
            return handle.read()


def _entry(path: Path) -> LocalFile:
    stat = path.stat()
    return LocalFile(str(path), stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}")


def walk(paths: Iterable[Path | str]) -> Iterator[LocalFile]:
    """Every regular file under ``paths`` (sorted, hidden files and ``_analyzer`` skipped).

    A path that does not exist is an error now, before any work starts.
    """
    roots = [Path(given).absolute() for given in paths]
    for root in roots:
        if not root.exists():
            raise AnalyzerError(f"{root}: no such file or directory")
    return _walk(roots)


def _walk(roots: list[Path]) -> Iterator[LocalFile]:
    for root in roots:
        if root.is_file():
            yield _entry(root)
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_analyzer")))
            for name in sorted(files):
                if not name.startswith("."):
                    yield _entry(Path(folder) / name)
