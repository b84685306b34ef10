"""--since/--until values: ISO dates and times, relative ages, now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analyzer.errors import AnalyzerError
from analyzer.timespec import parse_timespec

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:30", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01 12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00+02:00", datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
        ("36h", datetime(2024, 5, 9, 0, 0, tzinfo=UTC)),
        ("7d", datetime(2024, 5, 3, 12, 0, tzinfo=UTC)),
        ("90m", datetime(2024, 5, 10, 10, 30, tzinfo=UTC)),
        ("2w", datetime(2024, 4, 26, 12, 0, tzinfo=UTC)),
        (" 45S ", datetime(2024, 5, 10, 11, 59, 15, tzinfo=UTC)),
        ("now", NOW),
        ("1y", datetime(2023, 5, 10, 12, 0, tzinfo=UTC)),
        ("6mo", datetime(2023, 11, 10, 12, 0, tzinfo=UTC)),
        ("T-2Y", datetime(2022, 5, 10, 12, 0, tzinfo=UTC)),
        ("T-10M", datetime(2023, 7, 10, 12, 0, tzinfo=UTC)),
        ("T-10m", datetime(2024, 5, 10, 11, 50, tzinfo=UTC)),
        ("T-9H", datetime(2024, 5, 10, 3, 0, tzinfo=UTC)),
        ("T-180d", datetime(2023, 11, 12, 12, 0, tzinfo=UTC)),
        ("T-2w", datetime(2024, 4, 26, 12, 0, tzinfo=UTC)),
    ],
)
def test_time_specs(text: str, expected: datetime) -> None:
    parsed = parse_timespec(text, now=NOW)
    assert parsed == expected and parsed.tzinfo is UTC


def test_months_clamp_to_the_end_of_the_month() -> None:
    assert parse_timespec("1mo", now=datetime(2024, 3, 31, tzinfo=UTC)) == datetime(2024, 2, 29, tzinfo=UTC)
    assert parse_timespec("1y", now=datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2023, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-3h", "2024-13-01", "", "T+2h", "T-", "1x"])
def test_bad_time_specs_say_what_is_accepted(text: str) -> None:
    with pytest.raises(AnalyzerError, match="ISO date"):
        parse_timespec(text, now=NOW)


@pytest.mark.parametrize("text", ["3000y", "99999999d", "T-30000Y"])
def test_ages_before_year_one_are_refused_plainly(text: str) -> None:
    with pytest.raises(AnalyzerError, match="too far in the past"):
        parse_timespec(text, now=NOW)
