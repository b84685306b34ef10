"""Shared fixtures: the bundled corpus, a dataset ingested from it, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import ingest_objects
from analyzer.sources.local import walk

pytest_plugins = ["s3_server"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def fixtures_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled AWSLogs corpus ingested once per session (treat as read-only)."""
    data = tmp_path_factory.mktemp("fixtures-dataset")
    stats = ingest_objects(walk([FIXTURES / "AWSLogs"]), data, workers=1)
    assert stats.failed == 0 and stats.events > 0
    return data


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
