"""Every log value is attacker-controlled: mutated records may change what fires, never break a detection.

Property test (hypothesis, bounded): take the catalogue's own case records, replace some leaf values with
hostile ones (wrong types, huge numbers, odd strings, JSON-looking text, NULLs) and run every detection
over them. The catalogue must run without an error and return alerts in the alert shape.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.detect import ALERT_SCHEMA, events_connection, load_catalogue, run_detections

CATALOGUE = load_catalogue()
RECORDS: list[list[dict[str, Any]]] = [case.records for d in CATALOGUE.values() for case in d.cases if case.records]
#: Fields the ingest path itself owns (a record without a usable time or id is quarantined, by design).
KEEP = {"eventTime", "eventID", "eventVersion"}

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "YES", "no", "true", "False", "HIDDEN_DUE_TO_SECURITY_REASONS", "AWS ROOT USER",
                     "signin.amazonaws.com", "ASIA", "::1", "10.0.0.1", "999.999.999.999", "'; drop table x; --",
                     "{\"a\": 1}", "[1,2]", "\x1b[31m", "%", "_", "\\", "ü" * 300]),
    st.text(max_size=40),
)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() if k not in KEEP or path for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def _set(record: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        record = record[key]
    record[path[-1]] = value


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_records_never_break_the_catalogue(data: st.DataObject) -> None:
    records = copy.deepcopy(data.draw(st.sampled_from(RECORDS)))
    for record in records:
        leaves = [p for p in _leaves(record) if p and p[0] not in KEEP]
        for path in data.draw(st.lists(st.sampled_from(leaves), max_size=6, unique=True)) if leaves else []:
            _set(record, path, data.draw(HOSTILE))
    try:
        con = events_connection(records)
    except ValueError:  # the ingest path quarantined a record: not the catalogue's business
        return
    try:
        alerts = run_detections(con).alerts
    finally:
        con.close()
    assert dict(alerts.schema) == ALERT_SCHEMA


JSON_FIELDS = ("requestParameters", "responseElements", "additionalEventData", "serviceEventDetails")


def _retype(value: Any, replacement: Any) -> Any:
    if isinstance(value, dict):
        return {k: _retype(v, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [_retype(v, replacement) for v in value]
    return replacement


def _mutants() -> list[Any]:
    out = []
    for detection in CATALOGUE.values():
        for case in detection.cases:
            for label, replacement in (("text", "not-a-number"), ("object", {"x": [1]})):
                records = copy.deepcopy(case.records)
                for record in records:
                    for name in JSON_FIELDS:
                        if isinstance(record.get(name), dict):
                            record[name] = _retype(record[name], replacement)
                name = f"{detection.id}: {case.name}: every JSON leaf {label}"
                out.append(pytest.param(detection.id, records, id=name))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("detection_id", "records"), _mutants())
def test_wrongly_typed_json_fields_never_break_a_detection(detection_id: str, records: list[dict[str, Any]]) -> None:
    """Every leaf of the JSON columns retyped at once (text where a number is expected, objects, numbers)."""
    con = events_connection(records)
    try:
        alerts = run_detections(con, only=[detection_id]).alerts
    finally:
        con.close()
    assert dict(alerts.schema) == ALERT_SCHEMA
