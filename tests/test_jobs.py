"""The jobs layer (issue 17): what the commands do, called as a notebook would, and the one Window,
order and source assembly they share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from analyzer import connect
from analyzer.errors import ExitCode, UsageError
from analyzer.jobs import run_detect, run_ingest, run_pull, s3_source
from analyzer.jobs.progress import Progress

from records import log_key, record, write_log
from s3_server import S3Server, put_trail


def test_run_detections_takes_the_clis_time_specs(fixtures_dataset: Path) -> None:
    """The README's example, run_detections(con, since="2026-11-20"), raised AttributeError."""
    from analyzer.detect import run_detections

    con = connect(fixtures_dataset)
    by_text = run_detections(con, since="2026-11-20", until="2026-11-21T00:00Z")
    by_time = run_detections(con, since=datetime(2026, 11, 20, tzinfo=UTC), until=datetime(2026, 11, 21, tzinfo=UTC))
    assert by_text.alerts.height > 0 and by_text.alerts.equals(by_time.alerts)
    assert (by_text.since, by_text.until) == (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    with pytest.raises(UsageError, match="empty window") as refused:
        run_detections(con, since="2026-11-21", until="2026-11-20")
    assert refused.value.option == "--since"


def test_there_is_one_window() -> None:
    import analyzer.detect
    import analyzer.sources.window
    import analyzer.window

    assert analyzer.detect.Window is analyzer.sources.window.Window is analyzer.window.Window


def test_the_engine_returns_alerts_in_the_one_order(fixtures_dataset: Path) -> None:
    from analyzer.alerts.shape import by_urgency
    from analyzer.detect import run_detections

    alerts = run_detections(connect(fixtures_dataset)).alerts
    assert alerts.height > 10 and alerts.equals(by_urgency(alerts))
    # ties on severity, first_seen and detection are broken by principal, then source IP (stable, every time)
    same = {"severity": "high", "first_seen": datetime(2026, 11, 20, tzinfo=UTC), "detection_id": "d"}
    frame = pl.DataFrame(
        [
            {**same, "principal": "b", "source_ip": "1"},
            {**same, "principal": "a", "source_ip": "2"},
            {**same, "principal": "a", "source_ip": "1"},
        ]
    )
    assert by_urgency(frame).select("principal", "source_ip").rows() == [("a", "1"), ("a", "2"), ("b", "1")]


def test_a_window_past_the_data_says_where_the_data_ends(fixtures_dataset: Path) -> None:
    everything = run_detect(fixtures_dataset)
    assert everything.extent.events > 0 and not everything.no_data
    last = everything.extent.last
    assert last is not None and everything.report.data_end == last
    assert f"{everything.extent.events:,} event records in the window" in everything.extent.describe(everything.window)

    later = run_detect(fixtures_dataset, since="2030-01-01")
    assert later.no_data and later.alerts.is_empty() and later.exit_code("high") is ExitCode.NO_DATA
    assert later.extent.last == last
    assert later.extent.describe(later.window) == (
        "no events in the window 2030-01-01T00:00Z → end of data: "
        f"the data ends {last:%Y-%m-%dT%H:%MZ}, before it starts"
    )
    assert run_detect(fixtures_dataset, until="2026-11-20T10:00Z", since="2026-11-20T09:00Z").extent.events >= 0


def test_an_empty_dataset_is_no_data(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    stats = run_ingest([tmp_path / "logs"], tmp_path / "data")
    assert stats.ingested == 0
    result = run_detect(tmp_path / "data")
    assert result.no_data and result.exit_code("high") is ExitCode.NO_DATA
    assert "the dataset holds none" in result.extent.describe(result.window)


def test_the_ingest_total_is_final_from_the_first_update(tmp_path: Path) -> None:
    """The progress total grew while the walk went on ("551/1,796 files" of 2,841)."""
    for n in range(1200):  # more than a walk chunk (512): the old total grew in steps
        write_log(tmp_path / "logs", log_key(n % 60, suffix=f"S{n:015d}"), [record(n)])
    updates: list[Progress] = []
    stats = run_ingest([tmp_path / "logs"], tmp_path / "data", workers=1, progress=updates.append)
    assert stats.ingested == 1200
    assert updates and {u.total for u in updates} == {1200}
    assert updates[-1].done == 1200 and all(u.done <= 1200 for u in updates)


def test_a_listing_has_no_total_until_it_has_ended(s3: S3Server, tmp_path: Path) -> None:
    from datetime import date

    trail = put_trail(
        s3,
        "trail",
        accounts=["111111111111"],
        regions=["us-east-1"],
        days=[date(2024, 5, 31), date(2024, 6, 1)],
        files_per_day=3,
    )
    source = s3_source("s3://trail", endpoint_url=s3.endpoint_url)
    updates: list[Progress] = []
    result = run_pull(
        source,
        tmp_path,
        since="2024-05-31",
        until="2024-06-02",
        fetch_threads=2,
        workers=1,
        progress=updates.append,
        now=datetime(2024, 6, 3, tzinfo=UTC),
    )
    assert result.exit_code == 0 and result.stats.ingested == len(trail.files)
    totals = [u.total for u in updates]
    listed = len(trail.files) + len(trail.digests)  # the digest files are fetched too (for verify --data)
    assert totals[-1] == listed
    assert all(t is None or t == listed for t in totals)  # unknown, then final: never a growing number
    assert all(u.found <= listed for u in updates)


def test_one_region_is_the_s3_clients_region_too(s3: S3Server) -> None:
    """`pull --region` filtered logs but left the client in AWS_REGION's region (us-east-1 here)."""
    one = s3_source("s3://trail", endpoint_url=s3.endpoint_url, regions=["eu-west-1"], check=False)
    assert one.client.meta.region_name == "eu-west-1" and one.regions == {"eu-west-1"}
    several = s3_source("s3://trail", endpoint_url=s3.endpoint_url, regions=["eu-west-1", "us-west-2"], check=False)
    assert several.client.meta.region_name == "us-east-1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "s3://: no bucket name"),
        ("my-bucket", "my-bucket: not an s3:// URL (did you mean s3://my-bucket?)"),
        ("s3://b/AWSLogs/123/", "'123' is not an account id"),
    ],
)
def test_a_malformed_trail_url_is_a_usage_error(url: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        s3_source(url, check=False)
    assert message in str(refused.value)


def test_ingest_points_an_s3_url_to_pull(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as refused:
        run_ingest(["s3://my-trail/AWSLogs"], tmp_path)
    assert "analyzer pull s3://my-trail/AWSLogs" in str(refused.value)


def test_the_ingest_package_and_its_entry_point_have_two_names() -> None:
    """`import analyzer.ingest as m` bound the function, not the module (issue 17)."""
    import importlib
    import types

    import analyzer
    import analyzer.ingest as station
    from analyzer import ingest_objects
    from analyzer.ingest.pipeline import ingest_objects as defined

    assert isinstance(station, types.ModuleType) and station is importlib.import_module("analyzer.ingest")
    assert analyzer.ingest is station and ingest_objects is defined is station.ingest_objects
    assert callable(ingest_objects) and not callable(station)
