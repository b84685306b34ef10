"""The one configuration file every command reads (TOML).

Looked up in this order: ``--config PATH``; ``$ANALYZER_CONFIG``; ``./analyzer.toml``;
``~/.config/analyzer/config.toml``. A missing default file is fine (built-in defaults apply); a
missing file named explicitly, or a file that is not valid TOML, is an error. Each station reads
its own table (``[detect]``, ``[allowlist]``, ``[pull]``, ``[nightly]``...); see the README for
the documented keys. Secrets never go here: notifiers read them from the environment.

``[nightly]`` and ``[notify.*]`` (``analyzer nightly``; flags win over these)::

    [nightly]
    source = "s3://my-trail-bucket/org"   # or a local directory; default: [pull] bucket/prefix
    report_dir = "/var/lib/analyzer/reports"  # default: DATA/_analyzer/reports
    late_margin = "2h"           # the window reaches this far back before the last complete run's end
    first_run_lookback = "24h"   # the window of the very first run
    max_lookback = "7d"          # a default window never starts earlier (runs that keep failing)
    fail_on = "high"             # exit 3 when a run announces an alert this severe (else [detect] fail_on)
    renotify_growth = 2.0        # re-notify an alert whose events reach 2x those last announced; 0: never
    retention = "90d"            # forget alerts not seen for this long (nothing pending)
    workers = 4                  # ingest worker processes (default: one per core)
    fetch_threads = 32           # concurrent S3 downloads (default: [pull] workers, else 32)

    [notify.sns]
    topic_arn = "arn:aws:sns:eu-west-1:111122223333:cloudtrail-alerts"
    min_severity = "medium"      # only alerts at least this severe (default: info, i.e. all)
    # profile = "audit"          # default: [pull] profile, else the standard credential chain
    # endpoint_url = "..."       # an SNS-compatible endpoint (default: AWS_ENDPOINT_URL_SNS/AWS_ENDPOINT_URL)

    [notify.webhook]             # Slack-compatible: {"text": ..., "blocks": [...]}
    url_env = "ANALYZER_WEBHOOK_URL"  # the NAME of the variable holding the URL (the URL is a secret)
    min_severity = "low"
    timeout = 10                 # seconds per attempt
    retries = 3                  # more attempts on 5xx, 429, timeouts and connection errors
    backoff = 1.0                # seconds before the first retry, doubling (with jitter)
    max_alerts = 20              # alerts per message (Slack allows 50 blocks)
    blocks = true                # false: {"text"} only, for receivers that know no blocks
    include_alerts = false       # true: add "alerts" (the JSON alert shape) for non-Slack receivers
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
