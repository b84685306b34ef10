"""Start-up: the CLI imports what a command needs when the command runs, not everything at start."""

from __future__ import annotations

import json
import subprocess
import sys

from analyzer.cli import ingest as cli_ingest
from analyzer.cli import pull as cli_pull
from analyzer.ingest import pipeline
from analyzer.sources import s3

#: Modules that `analyzer --help` and `analyzer detect --help` must not import (each costs 0.1 s or more).
HEAVY = ["boto3", "botocore", "analyzer.ingest.pipeline", "polars", "duckdb"]

SCRIPT = """
import json, sys
heavy = json.loads(sys.argv[1])
import analyzer.cli.app
from analyzer.cli import app
found = {"import analyzer.cli.app": [name for name in heavy if name in sys.modules]}
try:
    app(["detect", "--help"])
except SystemExit:
    pass
found["detect --help"] = [name for name in heavy if name in sys.modules]
print(json.dumps(found))
"""


def test_the_cli_starts_without_the_heavy_modules() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(HEAVY)], capture_output=True, text=True,
                            check=True)
    found = json.loads(result.stdout.splitlines()[-1])
    assert found == {"import analyzer.cli.app": [], "detect --help": []}


def test_the_help_defaults_are_the_library_defaults() -> None:
    """The CLI keeps copies so that its help needs neither the pipeline nor boto3: they must agree."""
    assert cli_ingest.BATCH_BYTES == pipeline.BATCH_BYTES
    assert cli_pull.DEFAULT_WORKERS == s3.DEFAULT_WORKERS
