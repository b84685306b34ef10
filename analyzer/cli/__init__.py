"""The ``analyzer`` command line: thin Typer commands over the library API.

Each module registers its commands on the one app; add a module here to add commands.
"""

from analyzer.cli import (
    ingest,  # noqa: F401  (registers ingest, schema, quarantine)
    sql,  # noqa: F401
)
from analyzer.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
