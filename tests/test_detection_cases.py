"""Every detection's own cases (in queries/<id>.toml), run through the ingest path and the engine."""

from __future__ import annotations

import pytest

from analyzer.detect import CatalogueError, case_problems, load_catalogue, run_case


def _cases() -> list[object]:
    try:
        catalogue = load_catalogue()
    except CatalogueError:  # reported by the test below as a failure, not as a collection error
        return [pytest.param(None, None, None, id="catalogue-loads")]
    return [
        pytest.param(catalogue, detection, case, id=f"{detection.id}: {case.name}")
        for detection in catalogue.values()
        for case in detection.cases
    ]


@pytest.mark.parametrize(("catalogue", "detection", "case"), _cases())
def test_detection_case(catalogue, detection, case) -> None:
    if catalogue is None:
        load_catalogue()  # raises CatalogueError listing every problem
    run = run_case(catalogue, detection, case)
    problems = case_problems(case, run.alerts)
    assert not problems, f"{detection.id} / {case.name}: " + "; ".join(problems) + f"\nalerts: {run.alerts.to_dicts()}"
