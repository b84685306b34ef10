"""The ``analyzer`` command line: thin Typer commands over the library API.

Each module registers its commands on the one app; add a module here to add commands.
"""

from analyzer.allocator import tune_arrow_allocator

tune_arrow_allocator()  # before any command module imports pyarrow

import analyzer.cli.pull  # noqa: E402, F401  (registers pull)
from analyzer.cli import (  # noqa: E402
    athena,  # noqa: F401  (registers athena ddl, athena queries)
    detect,  # noqa: F401
    detections,  # noqa: F401  (registers detections test, detections new)
    failures,  # noqa: F401
    ingest,  # noqa: F401  (registers ingest, schema, quarantine)
    nightly,  # noqa: F401
    posture,  # noqa: F401  (registers posture)
    publish,  # noqa: F401  (registers publish)
    sql,  # noqa: F401
    verify,  # noqa: F401  (registers verify)
    watch,  # noqa: F401  (registers watch)
)
from analyzer.cli.app import app  # noqa: E402


def main() -> None:
    app()


__all__ = ["app", "main"]
