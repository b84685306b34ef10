"""What verification found, as alerts in the one alert shape (:mod:`analyzer.detect.shape`).

Each kind of finding is a detection id of its own, so that reports group them, ``nightly``'s alert
state announces each one once, and a SIEM can route them: a deleted or changed log file and a broken
chain are critical (evidence was removed or rewritten); a missing or invalid digest is high (the
proof for an hour is gone or forged); a log file no digest vouches for is medium (added after
delivery, or a second trail without validation writing beside this one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

#: detection id → (default severity, title).
DETECTIONS: dict[str, tuple[str, str]] = {
    "log-file-deleted": ("critical", "CloudTrail log file deleted after delivery"),
    "log-file-modified": ("critical", "CloudTrail log file changed after delivery"),
    "digest-chain-broken": ("critical", "CloudTrail digest chain broken"),
    "digest-missing": ("high", "CloudTrail digest file missing"),
    "digest-invalid": ("high", "CloudTrail digest file invalid"),
    "log-file-not-in-digest": ("medium", "CloudTrail log file in no digest"),
}


@dataclass(frozen=True)
class Finding:
    """One finding: which detection, the object concerned (``s3://…`` or a path), why, and the hour."""

    detection_id: str
    uri: str
    reason: str
    account: str | None = None
    region: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    severity: str | None = None  # None: the detection's default
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.detection_id not in DETECTIONS:
            raise ValueError(f"unknown integrity detection {self.detection_id!r}")

    @property
    def level(self) -> str:
        return self.severity or DETECTIONS[self.detection_id][0]

    def line(self) -> str:
        """One line for a terminal (escape it with :func:`~analyzer.alerts.sanitize.visible` to print)."""
        return f"{self.detection_id} ({self.level}): {self.uri}: {self.reason}"


def alerts(findings: list[Finding]) -> pl.DataFrame:
    """The findings as alerts (``principal`` and the like are empty: no event is behind a finding)."""
    from analyzer.alerts.shape import alerts_frame, empty_alerts

    if not findings:
        return empty_alerts()
    rows: list[dict[str, Any]] = []
    for f in findings:
        details = {"object": f.uri, "reason": f.reason, **f.details}
        rows.append({
            "detection_id": f.detection_id, "severity": f.level, "title": DETECTIONS[f.detection_id][1],
            "account_id": f.account, "region": f.region, "principal": None, "user_name": None,
            "source_ip": None, "user_agent": None, "first_seen": f.first_seen, "last_seen": f.last_seen or f.first_seen,
            "count": 1, "event_ids": [], "details": json.dumps(details, sort_keys=True, default=str),
        })
    return alerts_frame(rows)
