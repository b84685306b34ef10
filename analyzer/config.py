"""The one configuration file every command reads (TOML).

Looked up in this order: ``--config PATH``; ``$ANALYZER_CONFIG``; ``./analyzer.toml``;
``~/.config/analyzer/config.toml``. A missing default file is fine (built-in defaults apply); a
missing file named explicitly, or a file that is not valid TOML, is an error. Each station reads
its own table (``[detect]``, ``[allowlist]``, ``[pull]``, ``[nightly]``...); see the README for
the documented keys. Secrets never go here: notifiers read them from the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from analyzer.errors import AnalyzerError

DEFAULT_LOCATIONS = (Path("analyzer.toml"), Path("~/.config/analyzer/config.toml"))


def config_path(explicit: Path | str | None = None) -> Path | None:
    """The configuration file in force, or None when there is none."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise AnalyzerError(f"{explicit}: configuration file not found")
        return path
    if env := os.environ.get("ANALYZER_CONFIG"):
        return config_path(env)
    for candidate in DEFAULT_LOCATIONS:
        if candidate.expanduser().is_file():
            return candidate.expanduser()
    return None


def load_config(explicit: Path | str | None = None) -> dict[str, Any]:
    """The parsed configuration (an empty dict when no file is in force)."""
    path = config_path(explicit)
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise AnalyzerError(f"{path}: invalid TOML: {exc}") from exc
