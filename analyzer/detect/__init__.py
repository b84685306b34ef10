"""Detections: the catalogue in ``queries/`` (SQL + TOML metadata), run over the ``events`` view.

    from analyzer import connect
    from analyzer.detect import run_detections, load_catalogue
    run = run_detections(connect("./ctdata"), since="7d")   # or a datetime, "2026-11-20", "T-2h"
    run.alerts            # Polars DataFrame in the alert shape (ALERT_COLUMNS), most urgent first
"""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.detect.allowlist import Allowlist
    from analyzer.detect.cases import case_problems, events_connection, run_case
    from analyzer.detect.catalogue import (
        Case,
        Catalogue,
        CatalogueError,
        CisControl,
        Detection,
        Parameter,
        Technique,
        default_queries_dir,
        load_catalogue,
    )
    from analyzer.detect.engine import DetectionRun, run_detections
    from analyzer.detect.lint import lint_catalogue
    from analyzer.detect.params import merge_overrides, params_from_config, parse_param_overrides, resolve_params
    from analyzer.detect.severity import SEVERITIES, SEVERITY_MEANINGS
    from analyzer.detect.shape import (
        ALERT_COLUMNS,
        ALERT_SCHEMA,
        QUERY_COLUMNS,
        STATUS_MEANINGS,
        STATUSES,
        empty_alerts,
        severity_rank,
    )
    from analyzer.timespec import parse_timespec
    from analyzer.window import Window
else:
    __getattr__, __dir__ = lazy_exports(__name__, {
        "analyzer.detect.allowlist": ["Allowlist"],
        "analyzer.detect.cases": ["case_problems", "events_connection", "run_case"],
        "analyzer.detect.catalogue": [
            "Case", "Catalogue", "CatalogueError", "CisControl", "Detection", "Parameter", "Technique",
            "default_queries_dir", "load_catalogue",
        ],
        "analyzer.detect.engine": ["DetectionRun", "run_detections"],
        "analyzer.detect.lint": ["lint_catalogue"],
        "analyzer.detect.params": ["merge_overrides", "params_from_config", "parse_param_overrides", "resolve_params"],
        "analyzer.detect.severity": ["SEVERITIES", "SEVERITY_MEANINGS"],
        "analyzer.detect.shape": [
            "ALERT_COLUMNS", "ALERT_SCHEMA", "QUERY_COLUMNS", "STATUS_MEANINGS", "STATUSES", "empty_alerts",
            "severity_rank",
        ],
        "analyzer.timespec": ["parse_timespec"],
        "analyzer.window": ["Window"],
    })

__all__ = [
    "ALERT_COLUMNS",
    "ALERT_SCHEMA",
    "QUERY_COLUMNS",
    "SEVERITIES",
    "SEVERITY_MEANINGS",
    "STATUSES",
    "STATUS_MEANINGS",
    "Allowlist",
    "Case",
    "Catalogue",
    "CatalogueError",
    "CisControl",
    "Detection",
    "DetectionRun",
    "Parameter",
    "Technique",
    "Window",
    "case_problems",
    "default_queries_dir",
    "empty_alerts",
    "events_connection",
    "lint_catalogue",
    "load_catalogue",
    "merge_overrides",
    "params_from_config",
    "parse_param_overrides",
    "parse_timespec",
    "resolve_params",
    "run_case",
    "run_detections",
    "severity_rank",
]
