"""--param strings and [detect.params."ID"] config tables."""

from __future__ import annotations

import pytest

from analyzer.detect import load_catalogue, merge_overrides, params_from_config, parse_param_overrides, resolve_params
from analyzer.errors import AnalyzerError


def test_param_strings_split_on_the_last_dot_before_equals() -> None:
    values = ["console-brute-force.ip_threshold=20", "root-activity.include_read_only = false"]
    assert parse_param_overrides(values) == {
        "console-brute-force": {"ip_threshold": "20"},
        "root-activity": {"include_read_only": "false"},
    }


@pytest.mark.parametrize("bad", ["ip_threshold=20", "console-brute-force.ip_threshold", ".x=1", "a.=1"])
def test_malformed_param_strings_are_errors(bad: str) -> None:
    with pytest.raises(AnalyzerError, match=r"ID\.NAME=VALUE"):
        parse_param_overrides([bad])


def test_command_line_overrides_config() -> None:
    config = {"detect": {"params": {"console-brute-force": {"ip_threshold": 30, "window_minutes": 30}}}}
    merged = merge_overrides(params_from_config(config), parse_param_overrides(["console-brute-force.ip_threshold=20"]))
    catalogue = load_catalogue()
    effective = resolve_params(catalogue, catalogue.select(["console-brute-force"]), merged)
    assert effective["console-brute-force"]["ip_threshold"] == 20
    assert effective["console-brute-force"]["window_minutes"] == 30
    assert effective["console-brute-force"]["root_threshold"] == 5


def test_config_params_must_be_tables() -> None:
    with pytest.raises(AnalyzerError, match="must be tables"):
        params_from_config({"detect": {"params": {"console-brute-force": 3}}})


def test_an_override_for_a_detection_not_run_is_still_checked() -> None:
    catalogue = load_catalogue()
    with pytest.raises(AnalyzerError, match="not a valid int"):
        overrides = {"console-brute-force": {"ip_threshold": "x"}}
        resolve_params(catalogue, catalogue.select(["root-console-login"]), overrides)
