"""Sigma rule files → detections the engine runs like the catalogue's.

Each CloudTrail rule becomes a :class:`~analyzer.detect.catalogue.Detection` whose SQL selects the
matching events with the converted condition (:mod:`analyzer.sigma.backend`) and reports them in
the one alert shape: one alert per account, principal and source IP, ``detection_id =
"sigma:<rule id>"``, the severity from the rule's ``level`` (``informational`` → ``info``), the
rule's ``author`` in ``details`` (the Detection Rule License asks matches to name it). The
rule's values are bound parameters of that query. A rule that cannot be converted is skipped with
its reason (a file, not the run, is what fails); two files with one rule id are an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.detect.catalogue import TACTICS, TECHNIQUE_PATTERN, CatalogueError, Detection, Technique

LEVELS = {"informational": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
STATUSES = {
    "stable": "stable",
    "test": "test",
    "experimental": "experimental",
    "deprecated": "deprecated",
    "unsupported": "deprecated",
}
PREFIX = "sigma:"

QUERY = """\
-- {detection_id}: Sigma rule {file}, converted by analyzer.sigma (values are bound parameters)
with matched as (
    select
        e.eventID,
        e.eventTime,
        coalesce(e.userIdentity.accountId, e.recipientAccountId) as account_id,
        e.awsRegion,
        e.eventSource,
        e.eventName,
        case when e.userIdentity.userName = 'HIDDEN_DUE_TO_SECURITY_REASONS' then null
             else coalesce(nullif(e.userIdentity.arn, ''), nullif(e.userIdentity.userName, '')) end as principal,
        case when e.userIdentity.userName = 'HIDDEN_DUE_TO_SECURITY_REASONS' then null
             else nullif(e.userIdentity.userName, '') end as user_name,
        e.sourceIPAddress,
        e.userAgent
    from events as e
    where {where}
)

select
    null as severity,
    account_id,
    first(awsRegion order by eventTime, eventID) as region,
    principal,
    first(user_name order by eventTime, eventID) as user_name,
    sourceIPAddress as source_ip,
    first(userAgent order by eventTime, eventID) as user_agent,
    min(eventTime) as first_seen,
    max(eventTime) as last_seen,
    count(*) as count,
    list(eventID order by eventTime, eventID) as event_ids,
    json_object(
        'sigma_rule_id', $sigma_rule_id,
        'sigma_author', $sigma_author,
        'events', list_sort(list(distinct eventSource || ' ' || eventName))
    ) as details
from matched
group by account_id, principal, sourceIPAddress
"""


@dataclass
class SigmaLoad:
    """The detections made from Sigma rules, and the files skipped with the reason."""

    detections: list[Detection] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Every ``*.yml``/``*.yaml`` under ``paths`` (files given by name are taken as they are), sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise CatalogueError([f"{path}: no such Sigma rule file or folder"])
    return out


def load_sigma_rules(paths: Iterable[Path]) -> SigmaLoad:
    """Convert every rule under ``paths``; see the module docstring."""
    from sigma.exceptions import SigmaError

    from analyzer.sigma.backend import CloudTrailDuckDBBackend
    from analyzer.sigma.pipeline import cloudtrail_pipeline

    backend = CloudTrailDuckDBBackend(cloudtrail_pipeline())
    loaded = SigmaLoad()
    seen: dict[str, Path] = {}
    problems: list[str] = []
    for path in rule_files(paths):
        try:
            detection = rule_detection(path, backend)
        except (SigmaError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            loaded.skipped.append((path, _reason(exc)))
            continue
        if detection.id in seen:
            rule_id = detection.id[len(PREFIX) :]
            problems.append(f"{path}: Sigma rule id {rule_id} is also the id of {seen[detection.id]}")
            continue
        seen[detection.id] = path
        loaded.detections.append(detection)
    if problems:
        raise CatalogueError(problems)
    return loaded


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def rule_detection(path: Path, backend: Any) -> Detection:
    """One rule file as a detection (raises pySigma's errors, or ValueError, for a rule that cannot be)."""
    from sigma.rule import SigmaRule

    from analyzer.sigma.backend import convert

    text = path.read_text(encoding="utf-8")
    if "\n---" in "\n" + text:
        raise ValueError("multi-document files (rule collections, correlations) are not supported: one rule a file")
    rule = SigmaRule.from_yaml(text)
    logsource = rule.logsource
    if (logsource.product or "").lower() != "aws" or (logsource.service or "").lower() != "cloudtrail":
        raise ValueError(f"not a CloudTrail rule (logsource product={logsource.product}, service={logsource.service})")
    if rule.id is None:
        raise ValueError("the rule has no id (the alerts' detection_id is sigma:<id>)")
    converted = convert(rule, backend)
    detection_id = PREFIX + str(rule.id)
    # the rule's author travels with every alert: SigmaHQ's Detection Rule License asks it of matches
    params = {"sigma_rule_id": str(rule.id), "sigma_author": str(rule.author or ""), **converted.params}
    level = LEVELS.get(rule.level.name.lower() if rule.level else "", "medium")
    status = STATUSES.get(rule.status.name.lower() if rule.status else "", "experimental")
    return Detection(
        id=detection_id,
        uuid=str(rule.id),
        title=(rule.title or detection_id).strip(),
        severity=level,
        status=status,
        description=" ".join(str(rule.description or "").split()),
        blind_spots=(),
        false_positives=tuple(str(f) for f in (rule.falsepositives or [])),
        references=tuple(str(r) for r in (rule.references or [])),
        summary_fields=("principal", "source_ip", "count"),
        attack=_techniques(rule),
        cis=(),
        params={},
        cases=(),
        sql=QUERY.format(detection_id=detection_id, file=re.sub(r"[^\w.\-]", "_", path.name), where=converted.where),
        sql_path=path,
        meta_path=path,
        origin="sigma",
        bound=params,
    )


def _techniques(rule: Any) -> tuple[Technique, ...]:
    """ATT&CK techniques from the rule's ``attack.tNNNN`` tags, with its ``attack.<tactic>`` tags."""
    names = [t.name.lower().replace("_", "-") for t in rule.tags if t.namespace == "attack"]
    tactics = tuple(n for n in names if n in TACTICS)
    return tuple(Technique(n.upper(), "", tactics) for n in names if TECHNIQUE_PATTERN.match(n.upper()))
