"""The pure parts of a pull: the window and watermark, the key layout, the date folders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer.errors import AnalyzerError
from analyzer.sources.layout import S3Location, date_prefixes, position
from analyzer.sources.window import Window, resolve_window

NOW = datetime(2024, 6, 10, 15, 30, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_first_pull_defaults_to_the_last_24_hours() -> None:
    assert resolve_window(None, None, None, now=NOW) == Window(NOW - timedelta(hours=24), NOW)


def test_next_pull_starts_a_day_before_the_watermark() -> None:
    mark = NOW - timedelta(hours=3)
    assert resolve_window(None, None, mark, now=NOW) == Window(mark - timedelta(days=1), NOW)


def test_explicit_since_wins_over_the_watermark() -> None:
    assert resolve_window(t("2024-01-01T00:00"), None, NOW, now=NOW).since == t("2024-01-01T00:00")


def test_a_backfill_before_the_watermark_still_gets_a_window() -> None:
    until = t("2024-05-01T00:00")
    assert resolve_window(None, until, NOW, now=NOW) == Window(until - timedelta(days=1), until)


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="empty window"):
        Window(NOW, NOW)


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("s3://b", "b", ""),
    ("s3://b/", "b", ""),
    ("s3://b/trail", "b", "trail/"),
    ("s3://b/a/b/", "b", "a/b/"),
])
def test_s3_location(url: str, bucket: str, prefix: str) -> None:
    assert S3Location.parse(url) == S3Location(bucket, prefix)


@pytest.mark.parametrize("url", ["b/prefix", "s3://", "s3:///x", "https://b/x"])
def test_s3_location_rejects_non_s3_urls(url: str) -> None:
    with pytest.raises(AnalyzerError):
        S3Location.parse(url)


def test_position_reads_each_level_of_the_layout() -> None:
    pos = position("logs/AWSLogs/o-abcdef1234/111122223333/CloudTrail/eu-west-1/2024/05/")
    assert (pos.trail_prefix, pos.org, pos.account, pos.region, pos.date_parts) == (
        "logs/", "o-abcdef1234", "111122223333", "eu-west-1", ("2024", "05"))
    assert position("").awslogs == "AWSLogs/"
    assert position("trail/").awslogs == "trail/AWSLogs/"


@pytest.mark.parametrize("prefix", [
    "AWSLogs/111122223333/CloudTrail-Digest/",
    "AWSLogs/111122223333/Config/",
    "AWSLogs/not-an-account/",
    "AWSLogs/111122223333/CloudTrail/us-east-1/24/",
])
def test_position_refuses_prefixes_without_event_logs(prefix: str) -> None:
    with pytest.raises(AnalyzerError):
        position(prefix)


def test_date_prefixes_are_days_at_the_edges_and_months_in_between() -> None:
    window = Window(t("2024-04-29T10:00"), t("2024-06-02T00:00"))
    assert date_prefixes(window, now=NOW) == [
        "2024/04/29/", "2024/04/30/", "2024/05/", "2024/06/01/", "2024/06/02/"]


def test_date_prefixes_cover_late_delivery_after_until_but_not_the_future() -> None:
    assert date_prefixes(Window(t("2024-06-01T08:00"), t("2024-06-01T23:30")), now=NOW) == [
        "2024/06/01/", "2024/06/02/"]
    assert date_prefixes(Window(t("2024-06-01T08:00"), t("2024-06-01T12:00")), now=NOW) == ["2024/06/01/"]
    late = datetime(2024, 6, 10, 23, 30, tzinfo=UTC)
    assert date_prefixes(Window(late - timedelta(hours=1), late), now=late) == ["2024/06/10/"]


def test_date_prefixes_narrowed_by_a_given_date_folder() -> None:
    window = Window(t("2024-04-29T00:00"), t("2024-06-02T00:00"))
    assert date_prefixes(window, now=NOW, within="2024/05/") == ["2024/05/"]
    assert date_prefixes(window, now=NOW, within="2024/05/07/") == ["2024/05/07/"]
    assert date_prefixes(window, now=NOW, within="2023/") == []


def test_date_prefixes_never_before_cloudtrail_existed() -> None:
    assert date_prefixes(Window(t("2001-01-01T00:00"), t("2013-11-02T00:00")), now=NOW)[0] == "2013/11/01/"
