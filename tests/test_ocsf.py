"""``detect --format ocsf``: every finding is a valid OCSF 1.7.0 Detection Finding.

The validator below reads the OCSF schema's own definitions (``fixtures/ocsf/``, see PROVENANCE)
and checks what the schema says: the class's attributes through ``extends`` (base_event → finding →
detection_finding), required attributes, data types (with their regexes and ranges), enums and
their sibling captions, object constraints (at_least_one / just_one), the uid arithmetic
(class_uid = category*1000 + class, type_uid = class_uid*100 + activity_id), and no attribute the
schema does not define.
"""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from test_render import alert

from analyzer.alerts import build_report, render
from analyzer.alerts.ocsf import OCSF_VERSION
from analyzer.alerts.state import fingerprint

SCHEMA_FILE = Path(__file__).parents[1] / "fixtures" / "ocsf" / f"schema-{OCSF_VERSION}.json"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _merged(kind: str, name: str) -> dict[str, dict[str, Any]]:
    """An event class's or object's attributes, its ``extends`` chain merged (the child wins).

    Attributes bound to a profile (``"profile": "<name>"``) and profile includes are left out:
    the findings declare no profile (``metadata.profiles`` is absent)."""
    item = schema()[kind][name]
    parent = item.get("extends")
    attributes = _merged(kind, parent) if parent and parent in schema()[kind] else {}
    attributes = {k: dict(v) for k, v in attributes.items()}
    for key, value in item["attributes"].items():
        if key == "$include":
            continue
        attributes[key] = {**attributes.get(key, {}), **value}
    return {k: v for k, v in attributes.items() if not v.get("profile")}


def _constraints(kind: str, name: str) -> dict[str, list[str]]:
    item = schema()[kind][name]
    found: dict[str, list[str]] = {}
    while True:
        for rule, keys in item.get("constraints", {}).items():
            found.setdefault(rule, keys)
        parent = item.get("extends")
        if not parent or parent not in schema()[kind]:
            return found
        item = schema()[kind][parent]


def _observable_enum() -> dict[str, dict[str, str]]:
    """observable.type_id: 0, 99 and every type, object and attribute that carries an observable number."""
    types = schema()["dictionary"]["types"]["attributes"]
    found = {str(v["observable"]): {"caption": v["caption"]} for v in types.values() if "observable" in v}
    found |= {str(v["observable"]): {"caption": v["caption"]} for v in schema()["observable_objects"].values()}
    attributes = schema()["dictionary"]["attributes"]
    found |= {str(v["observable"]): {"caption": v["caption"]} for v in attributes.values() if "observable" in v}
    return {"0": {"caption": "Unknown"}, "99": {"caption": "Other"}, **found}


def _check_scalar(type_name: str, value: Any, path: str, errors: list[str]) -> None:
    types = schema()["dictionary"]["types"]["attributes"]
    spec = types.get(type_name, {})
    base = spec.get("type", type_name)
    ok = {
        "string_t": isinstance(value, str),
        "integer_t": isinstance(value, int) and not isinstance(value, bool),
        "long_t": isinstance(value, int) and not isinstance(value, bool),
        "float_t": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean_t": isinstance(value, bool),
        "json_t": True,
    }.get(base)
    if type_name == "timestamp_t":
        ok = isinstance(value, int) and not isinstance(value, bool)
    if ok is None:
        errors.append(f"{path}: type {type_name} unknown to the validator")
        return
    if not ok:
        errors.append(f"{path}: {value!r} is not {type_name}")
        return
    if "regex" in spec and isinstance(value, str) and not re.search(spec["regex"], value):
        errors.append(f"{path}: {value!r} does not match {type_name}")
    if "max_len" in spec and isinstance(value, str) and len(value) > spec["max_len"]:
        errors.append(f"{path}: longer than {type_name}'s {spec['max_len']}")
    if "range" in spec and not spec["range"][0] <= value <= spec["range"][1]:
        errors.append(f"{path}: {value} outside {spec['range']}")


def _check_value(attribute: str, spec: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    type_name = spec["type"]
    if spec.get("is_array"):
        if not isinstance(value, list):
            errors.append(f"{path}: must be an array")
            return
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        items = [(path, value)]
    for where, item in items:
        if type_name == "object":  # any object (``unmapped``): the root of every object, with no attributes
            if not isinstance(item, dict):
                errors.append(f"{where}: must be an object")
        elif type_name in schema()["objects"]:
            _check_object("objects", type_name, item, where, errors)
        else:
            _check_scalar(type_name, item, where, errors)
            enum = spec.get("enum")
            if enum is not None and attribute.endswith("_id") and str(item) not in enum:
                errors.append(f"{where}: {item!r} is not in the enum {sorted(enum, key=int)}")


def _check_object(kind: str, name: str, value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: must be an object ({name})")
        return
    attributes = _merged(kind, name)
    dictionary = schema()["dictionary"]["attributes"]
    for key in value.keys() - attributes.keys():
        errors.append(f"{path}.{key}: not an attribute of {name}")
    for key, spec in attributes.items():
        if spec.get("requirement") == "required" and key not in value:
            errors.append(f"{path}.{key}: required by {name}")
    for key, item in value.items():
        if key not in attributes:
            continue
        spec = {**dictionary[key], **attributes[key]}
        if name == "observable" and key == "type_id":
            spec["enum"] = _observable_enum()
        _check_value(key, spec, item, f"{path}.{key}", errors)
        sibling = spec.get("sibling")
        enum = spec.get("enum")
        if sibling and enum and str(item) in enum and str(item) != "99" and sibling in value \
                and value[sibling] != enum[str(item)]["caption"]:
            errors.append(f"{path}.{sibling}: {value[sibling]!r}, the caption of {key}={item} is "
                          f"{enum[str(item)]['caption']!r}")
    rules = _constraints(kind, name)
    if "at_least_one" in rules and not set(rules["at_least_one"]) & value.keys():
        errors.append(f"{path}: needs at least one of {rules['at_least_one']}")
    if "just_one" in rules and len(set(rules["just_one"]) & value.keys()) != 1:
        errors.append(f"{path}: needs exactly one of {rules['just_one']}")


def validate(finding: dict[str, Any]) -> list[str]:
    """What is wrong with ``finding`` as an OCSF Detection Finding (empty: nothing)."""
    errors: list[str] = []
    _check_object("events", "detection_finding", finding, "finding", errors)
    event = schema()["events"]["detection_finding"]
    category = schema()["categories"]["attributes"][schema()["events"]["finding"]["category"]]
    class_uid = category["uid"] * 1000 + event["uid"]
    if finding.get("category_uid") != category["uid"]:
        errors.append(f"category_uid: {finding.get('category_uid')!r}, not {category['uid']}")
    if finding.get("class_uid") != class_uid:
        errors.append(f"class_uid: {finding.get('class_uid')!r}, not {class_uid}")
    if finding.get("type_uid") != class_uid * 100 + finding.get("activity_id", -1):
        errors.append(f"type_uid: {finding.get('type_uid')!r}, not class_uid*100 + activity_id")
    if finding.get("metadata", {}).get("version") != schema()["version"]:
        errors.append(f"metadata.version: not {schema()['version']}")
    return errors


def findings(*alerts: dict[str, Any]) -> list[dict[str, Any]]:
    text = render(build_report(list(alerts), generated_at=NOW), "ocsf")
    return [json.loads(line) for line in text.splitlines()]


# --- the validator can fail ------------------------------------------------------------------------


def test_the_schema_subset_is_the_one_named() -> None:
    assert schema()["version"] == OCSF_VERSION and schema()["events"]["detection_finding"]["uid"] == 4


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda f: f["finding_info"].pop("uid"), "finding.finding_info.uid: required"),
    (lambda f: f.update(severity_id=7), "finding.severity_id: 7 is not in the enum"),
    (lambda f: f.update(severity="Low"), "the caption of severity_id=4 is 'High'"),
    (lambda f: f.update(status_id="1"), "'1' is not integer_t"),
    (lambda f: f.update(activity_id=2), "type_uid"),
    (lambda f: f.update(class_uid=2001), "class_uid"),
    (lambda f: f.update(colour="red"), "finding.colour: not an attribute of detection_finding"),
    (lambda f: f["evidences"][0]["src_endpoint"].update(ip="not an address"), "does not match ip_t"),
    (lambda f: f["evidences"][0].update(actor={}), "needs at least one of"),
    (lambda f: f["observables"][0].update(type_id=3000), "type_id: 3000 is not in the enum"),
    (lambda f: f.pop("time"), "finding.time: required"),
    (lambda f: f["metadata"]["product"].update(name=1), "metadata.product.name: 1 is not string_t"),
])
def test_the_validator_rejects_a_broken_finding(break_it: Any, message: str) -> None:
    [finding] = findings(alert())
    assert validate(finding) == []
    break_it(finding)
    assert any(message in error for error in validate(finding)), validate(finding)


# --- our findings ------------------------------------------------------------------------------------


def test_a_finding_is_valid_and_names_the_alert() -> None:
    [finding] = findings(alert())
    assert validate(finding) == []
    assert (finding["class_uid"], finding["type_uid"], finding["severity_id"], finding["status_id"]) == (
        2004, 200401, 4, 1)
    assert finding["finding_info"]["analytic"]["uid"] == "console-login-without-mfa"
    assert finding["finding_info"]["related_events"] == [{"uid": "e-1"}, {"uid": "e-2"}]
    assert finding["metadata"]["product"]["name"] == "analyzer" and finding["time"] == 1795334400000
    evidence = finding["evidences"][0]
    assert evidence["actor"]["user"]["uid"] == "arn:aws:iam::111122223333:user/alice"
    assert evidence["src_endpoint"] == {"ip": "203.0.113.9"} and evidence["data"] == {"mfa_used": "No"}
    assert {o["type"]: o["value"] for o in finding["observables"]} == {
        "IP Address": "203.0.113.9", "User Name": "alice", "Resource UID": "arn:aws:iam::111122223333:user/alice",
        "HTTP User-Agent": "Mozilla/5.0"}


def test_finding_uid_is_the_alert_fingerprint_jsonl_and_sns_carry() -> None:
    alerts = [alert(), alert(principal="arn:aws:iam::111122223333:user/bob", event_ids=["e-7"])]
    uids = [f["finding_info"]["uid"] for f in findings(*alerts)]
    jsonl = [json.loads(line)["fingerprint"] for line in render(build_report(alerts), "jsonl").splitlines()]
    from analyzer.alerts import alert_dicts, alerts_frame

    expected = [fingerprint(a) for a in alert_dicts(alerts_frame(alerts))]
    assert uids == jsonl == expected and len(set(uids)) == 2


@pytest.mark.parametrize("severity", ["info", "low", "medium", "high", "critical"])
def test_every_severity_maps_to_its_id(severity: str) -> None:
    [finding] = findings(alert(severity=severity))
    assert validate(finding) == [] and finding["severity"].lower() in (severity, "informational")


def test_sparse_and_odd_alerts_are_still_valid() -> None:
    odd = [
        alert(principal=None, user_name=None, source_ip="AWS Internal", user_agent=None, account_id=None),
        alert(source_ip="ec2.amazonaws.com", details="not json", event_ids=[]),
        alert(source_ip="2001:db8::1", principal="deploy-bot", details=None),
        alert(principal=None, user_name=None, source_ip=None, account_id=None, details='{"a": 1}'),
    ]
    for finding in findings(*odd):
        assert validate(finding) == [], (finding, validate(finding))
    assert findings(*odd)[3]["unmapped"] == {"region": "us-east-1", "details": {"a": 1}}  # no evidence for them


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    principal=st.one_of(st.none(), TEXT, TEXT.map(lambda s: f"arn:aws:iam::111122223333:user/{s}")),
    user_name=st.one_of(st.none(), TEXT),
    source_ip=st.one_of(st.none(), TEXT, st.ip_addresses().map(str)),
    account=st.one_of(st.none(), st.text(alphabet=string.digits, min_size=12, max_size=12)),
    agent=st.one_of(st.none(), TEXT),
    events=st.lists(TEXT, max_size=4),
)
def test_any_alert_is_a_valid_finding(principal: str | None, user_name: str | None, source_ip: str | None,
                                      account: str | None, agent: str | None, events: list[str]) -> None:
    [finding] = findings(alert(principal=principal, user_name=user_name, source_ip=source_ip, account_id=account,
                               user_agent=agent, event_ids=events))
    assert validate(finding) == []


@pytest.mark.slow
def test_every_fixture_alert_is_a_valid_finding(runner: Any, fixtures_dataset: Path) -> None:
    from analyzer.cli import app

    result = runner.invoke(app, ["detect", "--data", str(fixtures_dataset), "--format", "ocsf"])
    assert result.exit_code == 3, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    jsonl = runner.invoke(app, ["detect", "--data", str(fixtures_dataset), "--format", "jsonl"]).stdout.splitlines()
    assert len(lines) == len(jsonl) > 20
    assert [f["finding_info"]["uid"] for f in lines] == [json.loads(line)["fingerprint"] for line in jsonl]
    assert {e for f in lines for e in validate(f)} == set()
