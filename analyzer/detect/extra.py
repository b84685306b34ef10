"""The catalogue one run uses: the bundled detections, the folders users bring, and Sigma rules.

A user's folder (``analyzer detect --queries DIR``) holds the same ``<id>.sql`` + ``<id>.toml``
pairs as ``queries/`` and gets the same checks: the metadata and cases at load
(:func:`~analyzer.detect.catalogue.load_catalogue`), the SQL's binding, columns and first step
against an empty ``events`` (:mod:`analyzer.detect.lint`, which CI runs for the bundled ones).
Sigma rules (``--sigma DIR``) are converted by :mod:`analyzer.sigma` into detections of the same
kind. All of them then run the same way, on the sealed connection (:mod:`analyzer.store.sandbox`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.detect.catalogue import Catalogue, load_catalogue
from analyzer.detect.lint import check_user_detections
from analyzer.errors import AnalyzerError


@dataclass
class RunCatalogue:
    """What :func:`load_run_catalogue` loaded, and the Sigma rules it could not run (path, reason)."""

    catalogue: Catalogue
    sigma_skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def user_detections(self) -> int:
        return sum(1 for d in self.catalogue.values() if d.origin == "user")

    @property
    def sigma_detections(self) -> int:
        return sum(1 for d in self.catalogue.values() if d.origin == "sigma")


def load_run_catalogue(queries: Iterable[Path | str] = (), sigma: Sequence[Path | str] = ()) -> RunCatalogue:
    """The bundled catalogue plus ``queries`` folders (validated and linted; an id clash names both
    files) plus the Sigma rules under ``sigma`` (needs the ``analyzer[sigma]`` extra)."""
    folders = [Path(q) for q in queries]
    catalogue = load_catalogue(extra=folders)
    if folders:
        check_user_detections(catalogue)
    skipped: list[tuple[Path, str]] = []
    if sigma:
        try:
            importlib.import_module("sigma.rule")  # pySigma is optional: imported only when asked for
        except ImportError as exc:
            raise AnalyzerError(f"--sigma needs pySigma ({exc}): pip install 'analyzer[sigma]'") from None
        from analyzer.sigma import load_sigma_rules

        loaded = load_sigma_rules([Path(s) for s in sigma])
        catalogue = catalogue.with_detections(loaded.detections)
        skipped = loaded.skipped
    return RunCatalogue(catalogue, skipped)
