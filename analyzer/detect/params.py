"""Parameter overrides: ``--param ID.NAME=VALUE`` strings and ``[detect.params."ID"]`` config tables.

Values are typed by the parameter's default in the metadata (``10`` → int, ``false`` → bool), so a
threshold given on the command line as text and one given in TOML as a number mean the same thing.
An unknown detection id or parameter name is an error that names what exists: a typo must never
silently leave a default in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from analyzer.detect.catalogue import Catalogue, Detection, Parameter, check_bounds
from analyzer.errors import AnalyzerError

TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})

Overrides = Mapping[str, Mapping[str, Any]]


def parse_param_overrides(values: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["console-brute-force.threshold=20"]`` → ``{"console-brute-force": {"threshold": "20"}}``."""
    out: dict[str, dict[str, str]] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        det_id, dot, name = key.strip().rpartition(".")
        if not sep or not dot or not det_id or not name:
            raise AnalyzerError(f"--param {value!r}: expected ID.NAME=VALUE, e.g. console-brute-force.ip_threshold=20")
        out.setdefault(det_id, {})[name] = raw.strip()
    return out


def params_from_config(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``[detect.params."ID"]`` tables of a loaded configuration (empty when absent)."""
    detect = config.get("detect", {})
    if not isinstance(detect, Mapping):
        raise AnalyzerError("config: [detect] must be a table")
    tables = detect.get("params", {})
    if not isinstance(tables, Mapping) or not all(isinstance(v, Mapping) for v in tables.values()):
        raise AnalyzerError('config: [detect.params."ID"] must be tables of NAME = VALUE')
    return {str(k): dict(v) for k, v in tables.items()}


def merge_overrides(*layers: Overrides | None) -> dict[str, dict[str, Any]]:
    """Later layers win (config first, then the command line)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for det_id, values in (layer or {}).items():
            out.setdefault(det_id, {}).update(values)
    return out


def coerce(detection_id: str, parameter: Parameter, value: Any) -> bool | int | float | str:
    """``value`` (text from the command line, or a TOML value) as the parameter's type."""
    kind = parameter.kind
    label = f"{detection_id}.{parameter.name}"
    result: bool | int | float | str
    try:
        if kind is bool:
            if isinstance(value, bool):
                result = value
            elif isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
                result = value.strip().lower() in TRUE
            else:
                raise ValueError
        elif kind is int:
            if isinstance(value, bool | float):
                raise ValueError
            result = int(value.strip()) if isinstance(value, str) else int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
        else:
            if not isinstance(value, str):
                raise ValueError
            result = value
    except (ValueError, TypeError):
        raise AnalyzerError(f"parameter {label}: {value!r} is not a valid {kind.__name__}") from None
    try:
        check_bounds(parameter, result)
    except AnalyzerError as exc:
        raise AnalyzerError(f"parameter {detection_id}.{exc}") from None
    return result


def resolve_params(
    catalogue: Catalogue, selected: Iterable[Detection], overrides: Overrides | None
) -> dict[str, dict[str, Any]]:
    """Effective parameters of the selected detections: defaults overlaid with typed overrides."""
    overrides = overrides or {}
    for det_id, values in overrides.items():
        if det_id not in catalogue:
            raise AnalyzerError(f"parameter override for unknown detection {det_id!r} (known: {', '.join(catalogue)})")
        params = catalogue[det_id].params
        for name, raw in values.items():
            if name not in params:
                known = ", ".join(params) or "none"
                raise AnalyzerError(f"detection {det_id!r} has no parameter {name!r} (its parameters: {known})")
            coerce(det_id, params[name], raw)  # a bad value is an error even for a detection not run
    effective: dict[str, dict[str, Any]] = {}
    for detection in selected:
        values = dict(detection.defaults)
        for name, raw in overrides.get(detection.id, {}).items():
            values[name] = coerce(detection.id, detection.params[name], raw)
        effective[detection.id] = values
    return effective
