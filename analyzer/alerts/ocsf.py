"""The ``ocsf`` format: each alert as an OCSF Detection Finding (class 2004), one JSON object per line.

OCSF (the Open Cybersecurity Schema Framework) is what Security Lake, prowler and most SIEMs read
without a mapping. Version :data:`OCSF_VERSION`; the test suite checks every object against that
version's schema (``fixtures/ocsf/``): required attributes, types, enums, no unknown attribute.

Mapping (one alert, one finding; the finding is *created* by this run, hence activity 1, status New):

===========================  ====================================================================
finding_info.uid             the alert's fingerprint (as ``jsonl`` and SNS carry it): SIEMs dedupe
finding_info.analytic        the detection (uid = detection id, type Rule)
finding_info.related_events  one per CloudTrail eventID the alert covers
severity_id / severity       info 1, low 2, medium 3, high 4, critical 5
time                         when the report was made (the finding's creation), epoch milliseconds
start_time / end_time        first_seen / last_seen; ``count`` the alert's events
evidences[0]                 actor.user (ARN as uid, user name, AWS account), src_endpoint (ip, or
                             name when CloudTrail records a service name), http_request.user_agent,
                             data = the detection's details
observables                  the source IP, user name, principal ARN and user agent, each named
                             by its path in the finding
resources[0]                 the AWS account the events were recorded in
unmapped                     the region (a resource's region belongs to OCSF's cloud profile, which
                             these findings do not declare), and the details when there is no evidence
===========================  ====================================================================
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from analyzer.alerts.records import dumps, fingerprints
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import UNKNOWN, Report

OCSF_VERSION = "1.7.0"
CATEGORY_UID, CATEGORY_NAME = 2, "Findings"
CLASS_UID, CLASS_NAME = 2004, "Detection Finding"
ACTIVITY_ID, ACTIVITY_NAME = 1, "Create"  # a run reports what it found: each finding is created
STATUS_ID, STATUS = 1, "New"
SEVERITY_IDS = {"info": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High"),
                "critical": (5, "Critical")}
ANALYTIC_RULE = 1
AWS_ACCOUNT = 10  # account.type_id
OBSERVABLE_IP, OBSERVABLE_USER_NAME, OBSERVABLE_RESOURCE_UID, OBSERVABLE_USER_AGENT = 2, 4, 10, 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(value: datetime | None) -> int | None:
    """OCSF ``timestamp_t``: milliseconds since the epoch."""
    if value is None:
        return None
    return (value.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _product() -> dict[str, str]:
    try:
        version = metadata.version("analyzer")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without an install
        version = "0"
    return {"name": "analyzer", "vendor_name": "analyzer", "version": version}


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    """Without the keys whose value is None or empty: OCSF leaves out what is unknown."""
    return {k: v for k, v in value.items() if v is not None and v != {} and v != []}


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def finding(alert: dict[str, Any], fingerprint: str, created: datetime | None) -> dict[str, Any]:
    """One alert (a row of the alert frame) as a Detection Finding (a JSON-ready dict)."""
    from analyzer.alerts.records import details_object

    severity_id, severity = SEVERITY_IDS.get(str(alert["severity"]).lower(), (99, str(alert["severity"])))
    first, last = _ms(alert["first_seen"]), _ms(alert["last_seen"])
    principal, user_name = alert["principal"], alert["user_name"]
    arn = principal if isinstance(principal, str) and principal.startswith("arn:") else None
    account = _compact({"uid": alert["account_id"], "type_id": AWS_ACCOUNT, "type": "AWS Account"}) \
        if alert["account_id"] else None
    user = _compact({"uid": arn, "name": user_name or (principal if not arn else None), "account": account})
    source = alert["source_ip"]
    endpoint = ({"ip": source} if _is_ip(source) else {"name": source}) if source else None
    evidence = _compact({
        "actor": {"user": user} if user else None,
        "src_endpoint": endpoint,
        "http_request": {"user_agent": alert["user_agent"]} if alert["user_agent"] else None,
        "data": details_object(alert["details"]) or None,
    })
    observables = [
        {"name": path, "type_id": type_id, "type": caption, "value": value}
        for path, type_id, caption, value in (
            ("evidences.src_endpoint.ip", OBSERVABLE_IP, "IP Address", endpoint and endpoint.get("ip")),
            ("evidences.actor.user.name", OBSERVABLE_USER_NAME, "User Name", user.get("name")),
            ("evidences.actor.user.uid", OBSERVABLE_RESOURCE_UID, "Resource UID", arn),
            ("evidences.http_request.user_agent", OBSERVABLE_USER_AGENT, "HTTP User-Agent", alert["user_agent"]),
        )
        if value
    ]
    event_ids = [e for e in alert["event_ids"] or [] if e]
    evidences = [evidence] if {"actor", "src_endpoint"} & evidence.keys() else None  # the schema asks one of them
    who = principal or user_name or UNKNOWN
    return _compact({
        "activity_id": ACTIVITY_ID,
        "activity_name": ACTIVITY_NAME,
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "class_uid": CLASS_UID,
        "class_name": CLASS_NAME,
        "type_uid": CLASS_UID * 100 + ACTIVITY_ID,
        "type_name": f"{CLASS_NAME}: {ACTIVITY_NAME}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": STATUS_ID,
        "status": STATUS,
        "is_alert": True,
        "time": _ms(created) if created else last,
        "timezone_offset": 0,
        "start_time": first,
        "end_time": last,
        "count": alert["count"],
        "message": f"{alert['title']}: {who}" + (f" from {source}" if source else ""),
        "metadata": {"version": OCSF_VERSION, "product": _product(), "log_provider": "AWS CloudTrail"},
        "finding_info": _compact({
            "uid": fingerprint,
            "title": alert["title"],
            "analytic": {"uid": alert["detection_id"], "name": alert["detection_id"], "type_id": ANALYTIC_RULE,
                         "type": "Rule"},
            "types": [alert["detection_id"]],
            "data_sources": ["AWS CloudTrail"],
            "created_time": _ms(created),
            "first_seen_time": first,
            "last_seen_time": last,
            "related_events": [{"uid": e} for e in event_ids],
            "related_events_count": len(event_ids) or None,
        }),
        "evidences": evidences,
        "unmapped": _compact({"region": alert["region"],
                              "details": evidence.get("data") if evidences is None else None}),
        "observables": observables,
        "resources": [{"uid": alert["account_id"], "type": "AWS Account"}] if alert["account_id"] else None,
    })


def render_ocsf(report: Report) -> str:
    """The alerts as OCSF Detection Findings, JSON Lines, most urgent first (empty text when no alerts)."""
    alerts = by_urgency(report.alerts)
    names = fingerprints(alerts)
    rows = alerts.to_dicts()
    return "".join(dumps(finding(row, name, report.generated_at)) + "\n" for row, name in zip(rows, names, strict=True))
