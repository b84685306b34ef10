"""The severities, least to most urgent: a module without Polars, because the CLI's options name them at start."""

from __future__ import annotations

#: Severities from least to most urgent, with what each asks of the reader.
SEVERITY_MEANINGS: dict[str, str] = {
    "info": "context only; no action expected (e.g. for hunting or dashboards)",
    "low": "review in a periodic pass; usually benign, worth knowing about",
    "medium": "investigate within a working day; often benign but security-relevant",
    "high": "investigate promptly; likely security-relevant activity by or against a privileged identity",
    "critical": "act now; a likely compromise or a loss of control over the most privileged identity",
}
SEVERITIES: tuple[str, ...] = tuple(SEVERITY_MEANINGS)
