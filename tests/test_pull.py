"""Pulling from a real S3-protocol server through the library API (injected boto3 client)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from analyzer.errors import AnalyzerError, ExitCode
from analyzer.jobs.pull import read_watermark, run_pull
from analyzer.sources.s3 import S3Source, make_client
from analyzer.sources.window import Window
from analyzer.store import Dataset

from s3_server import FaultProxy, S3Server, dataset_rows, put_trail

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
DAYS = [date(2024, 5, 31), date(2024, 6, 1), date(2024, 6, 2)]
ORG = "o-abcdef1234"
A, B, C = "111111111111", "222222222222", "333333333333"
REGIONS = ["us-east-1", "eu-west-1"]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


Listing = list[tuple[str, str | None, str | None]]


def recorded(client: Any) -> Listing:
    """Every ListObjectsV2 call the client makes: (Prefix, Delimiter, ContinuationToken)."""
    calls: Listing = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        calls.append((params.get("Prefix", ""), params.get("Delimiter"), params.get("ContinuationToken")))

    client.meta.events.register("provide-client-params.s3.ListObjectsV2", hook)
    return calls


def first_pages(calls: Listing) -> set[tuple[str, str | None]]:
    return {(prefix, delimiter) for prefix, delimiter, token in calls if token is None}


def ingested(data: Path) -> set[str]:
    with Dataset(data) as dataset:
        return {row["uri"] for row in dataset.manifest.objects("ingested")}


@pytest.fixture
def mixed(s3: S3Server) -> dict[str, Any]:
    """Plain and organization trails side by side in one bucket, with digests, Insights, Config
    files and unrelated objects beside them."""
    plain = put_trail(s3, "trail", accounts=[A, B], regions=REGIONS, days=DAYS, seed=1)
    org = put_trail(s3, "trail", accounts=[A, C], regions=REGIONS, days=DAYS, org=ORG, seed=2, create=False)
    s3.seed("trail", [("README.txt", b"not a log"), (f"AWSLogs/{A}/elasticloadbalancing/x.log", b"x")])
    return {"files": {**plain.files, **org.files}, "decoys": plain.decoys + org.decoys}


def digests(mixed: dict[str, Any]) -> list[str]:
    return [k for k in mixed["decoys"] if "/CloudTrail-Digest/" in k]


def test_plain_and_org_layouts_side_by_side_digests_listed_never_events(s3: S3Server, mixed: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    client = s3.client()
    calls = recorded(client)
    source = S3Source(client, "s3://trail")
    result = run_pull(source, tmp_path, since=t("2024-05-31T00:00"), until=t("2024-06-03T00:00"), workers=1, now=NOW)
    assert ingested(tmp_path) == {f"s3://trail/{key}" for key in mixed["files"]}  # digests never become events
    assert result.stats.events == sum(len(ids) for ids in mixed["files"].values())
    assert result.listing.orgs == {ORG} and result.listing.accounts == {A, B, C}
    assert not any("Insight" in p or "Config" in p for p, _, _ in calls)
    # the digest folders of the window's days, as the log folders (the decoys are no readable digests: skipped)
    assert {p for p, d, _ in calls if "Digest" in p and d is None} == {
        p.replace("/CloudTrail/", "/CloudTrail-Digest/") for p, d, _ in calls if "/CloudTrail/" in p and d is None}
    assert result.listing.digests_listed == result.listing.digests_fetched == len(digests(mixed))
    assert result.listing.objects_listed == len(mixed["files"])
    assert result.stats.skipped == len(digests(mixed)) and result.exit_code == ExitCode.OK


def test_filters_list_exactly_the_prefixes_they_need(s3: S3Server, mixed: dict[str, Any], tmp_path: Path) -> None:
    client = s3.client()
    calls = recorded(client)
    source = S3Source(client, "s3://trail", accounts=[A], regions=["eu-west-1"])
    run_pull(source, tmp_path, since=t("2024-06-01T00:00"), until=t("2024-06-01T12:00"), workers=1, now=NOW)
    assert first_pages(calls) == {
        ("AWSLogs/", "/"),
        (f"AWSLogs/{ORG}/", "/"),
        *{(f"AWSLogs/{root}{A}/{kind}/", "/") for root in ("", f"{ORG}/")
          for kind in ("CloudTrail", "CloudTrail-Digest")},
        *{(f"AWSLogs/{root}{A}/{kind}/eu-west-1/2024/06/01/", None) for root in ("", f"{ORG}/")
          for kind in ("CloudTrail", "CloudTrail-Digest")},
    }
    wanted = {k for k in mixed["files"] if f"/{A}/CloudTrail/eu-west-1/2024/06/01/" in k}
    assert ingested(tmp_path) == {f"s3://trail/{k}" for k in wanted} and len(wanted) == 4


def test_org_id_and_a_deep_prefix_skip_discovery(s3: S3Server, mixed: dict[str, Any], tmp_path: Path) -> None:
    client = s3.client()
    calls = recorded(client)
    source = S3Source(client, "s3://trail", org_id=ORG, regions=["us-east-1"])
    run_pull(source, tmp_path, since=t("2024-06-02T00:00"), until=t("2024-06-02T06:00"), workers=1, now=NOW)
    kinds = ("CloudTrail", "CloudTrail-Digest")
    assert first_pages(calls) == {
        (f"AWSLogs/{ORG}/", "/"),
        *{(f"AWSLogs/{ORG}/{acct}/{kind}/", "/") for acct in (A, C) for kind in kinds},
        *{(f"AWSLogs/{ORG}/{acct}/{kind}/us-east-1/2024/06/02/", None) for acct in (A, C) for kind in kinds},
    }
    calls.clear()
    deep = S3Source(client, f"s3://trail/AWSLogs/{B}/CloudTrail/eu-west-1/")  # and its digests, beside it
    run_pull(deep, tmp_path, since=t("2024-05-31T00:00"), until=t("2024-06-01T00:00"), workers=1, now=NOW)
    assert first_pages(calls) == {(f"AWSLogs/{B}/{kind}/eu-west-1/2024/{day}/", None)
                                  for kind in kinds for day in ("05/31", "06/01")}


def test_whole_months_are_listed_in_one_go(s3: S3Server, mixed: dict[str, Any], tmp_path: Path) -> None:
    client = s3.client()
    calls = recorded(client)
    source = S3Source(client, "s3://trail", accounts=[B], regions=["us-east-1"])
    run_pull(source, tmp_path, since=t("2024-05-01T00:00"), until=t("2024-06-01T00:00"), workers=1, now=NOW)
    assert {p for p, d in first_pages(calls) if d is None} == {
        f"AWSLogs/{B}/{kind}/us-east-1/{folder}" for kind in ("CloudTrail", "CloudTrail-Digest")
        for folder in ("2024/05/", "2024/06/01/")}


def test_pagination_past_1000_keys_in_one_day(s3: S3Server, tmp_path: Path) -> None:
    trail = put_trail(s3, "big", accounts=[A], regions=["us-east-1"], days=[date(2024, 6, 1)],
                      files_per_day=1_050, events_per_file=1, decoys=False)
    client = s3.client()
    calls = recorded(client)
    source = S3Source(client, "s3://big")
    listed = [o.key for o in source.objects(Window(t("2024-06-01T00:00"), t("2024-06-01T12:00")), now=NOW)]
    day = f"AWSLogs/{A}/CloudTrail/us-east-1/2024/06/01/"
    assert [token is not None for prefix, _, token in calls if prefix == day] == [False, True]
    assert sorted(listed) == sorted(trail.files) and len(listed) == 1_050


def test_incremental_rerun_fetches_nothing(s3: S3Server, mixed: dict[str, Any], tmp_path: Path) -> None:
    window = {"since": t("2024-05-31T00:00"), "until": t("2024-06-03T00:00"), "workers": 1, "now": NOW}
    first = run_pull(S3Source(s3.client(), "s3://trail"), tmp_path, **window)
    again = run_pull(S3Source(s3.client(), "s3://trail"), tmp_path, **window)
    assert first.listing.objects_fetched == len(mixed["files"])
    assert again.listing.objects_fetched == 0 and again.stats.ingested == 0
    assert first.listing.digests_fetched == len(digests(mixed)) and again.listing.digests_fetched == 0
    assert again.stats.unchanged == len(mixed["files"]) + len(digests(mixed)) and again.exit_code == ExitCode.OK


def test_the_watermark_moves_and_late_files_are_picked_up(s3: S3Server, tmp_path: Path) -> None:
    client = s3.client()
    put_trail(s3, "wmark", accounts=[A], regions=["us-east-1"], days=[date(2024, 6, 9), date(2024, 6, 10)],
              decoys=False)
    source = S3Source(client, "s3://wmark")
    first = run_pull(source, tmp_path, workers=1, now=NOW)  # a first pull: the last 24 hours
    assert first.window.since == t("2024-06-09T12:00") and first.watermark == NOW
    assert read_watermark(tmp_path, source) == NOW
    late = put_trail(s3, "wmark", accounts=[A], regions=["us-east-1"], days=[date(2024, 6, 10)],
                     files_per_day=1, seed=9, decoys=False, create=False)
    later = datetime(2024, 6, 11, 6, 0, tzinfo=UTC)
    calls = recorded(client)
    second = run_pull(source, tmp_path, workers=1, now=later)
    assert second.window.since == t("2024-06-09T12:00")  # a day before the watermark
    assert second.listing.objects_fetched == 1 and ingested(tmp_path) >= {f"s3://wmark/{k}" for k in late.files}
    assert {p for p, d in first_pages(calls) if d is None} == {
        f"AWSLogs/{A}/CloudTrail/us-east-1/2024/06/{d}/" for d in ("09", "10", "11")}
    assert read_watermark(tmp_path, source) == later


def test_access_denied_on_one_prefix_is_reported_and_the_rest_pulled(s3: S3Server, mixed: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    denied = f"AWSLogs/{B}/"
    with FaultProxy(s3.endpoint_url, deny_prefixes=[denied]) as proxy:
        source = S3Source(s3.client(proxy.endpoint_url), "s3://trail")
        result = run_pull(source, tmp_path, since=t("2024-05-31T00:00"), until=t("2024-06-03T00:00"), workers=1,
                      now=NOW)
    assert result.listing.problems == [
        (f"s3://trail/{denied}{kind}/", "access denied (needs s3:ListBucket): AccessDenied: Access Denied")
        for kind in ("CloudTrail", "CloudTrail-Digest")]
    assert ingested(tmp_path) == {f"s3://trail/{k}" for k in mixed["files"] if not k.startswith(denied)}
    assert result.exit_code == ExitCode.PARTIAL and result.watermark is None
    assert read_watermark(tmp_path, source) is None


def test_a_denied_object_fails_alone_and_holds_the_watermark(s3: S3Server, mixed: dict[str, Any],
                                                              tmp_path: Path) -> None:
    key = sorted(mixed["files"])[0]
    with FaultProxy(s3.endpoint_url, deny_keys=[key]) as proxy:
        source = S3Source(s3.client(proxy.endpoint_url), "s3://trail")
        result = run_pull(source, tmp_path, since=t("2024-05-31T00:00"), until=t("2024-06-03T00:00"), workers=1,
                      now=NOW)
    assert result.stats.failures == [(f"s3://trail/{key}",
                                      "cannot read: access denied (needs s3:GetObject): AccessDenied: Access Denied")]
    assert result.stats.ingested == len(mixed["files"]) - 1 and result.exit_code == ExitCode.PARTIAL
    folder = datetime.strptime("/".join(key.split("/")[-4:-1]), "%Y/%m/%d").replace(tzinfo=UTC)
    assert result.watermark == folder and result.failing == 1 and not result.listing.problems  # held at its day


def test_faults_throttling_resets_truncation_and_timeouts_every_event_once(s3: S3Server, mixed: dict[str, Any],
                                                                           tmp_path: Path) -> None:
    kinds = ("slowdown", "drop", "truncate", "stall")
    with FaultProxy(s3.endpoint_url, fault_every=4, kinds=kinds, max_faults=80, stall=1.5) as proxy:
        client = make_client(endpoint_url=proxy.endpoint_url, pool=8, read_timeout=0.5, connect_timeout=2)
        result = run_pull(S3Source(client, "s3://trail", list_threads=4), tmp_path, since=t("2024-05-31T00:00"),
                      until=t("2024-06-03T00:00"), fetch_threads=4, workers=1, now=NOW)
    assert set(proxy.faults) == set(kinds), proxy.faults
    assert result.exit_code == ExitCode.OK and result.listing.complete, result.listing.problems
    rows = dataset_rows(tmp_path)
    assert sorted(e for e, _, _ in rows) == sorted(e for ids in mixed["files"].values() for e in ids)


def test_keep_raw_saves_each_fetched_object(s3: S3Server, mixed: dict[str, Any], tmp_path: Path) -> None:
    source = S3Source(s3.client(), "s3://trail", accounts=[C], keep_raw=tmp_path / "raw")
    run_pull(source, tmp_path / "data", since=t("2024-06-01T00:00"), until=t("2024-06-01T12:00"), workers=1, now=NOW)
    saved = sorted(str(p.relative_to(tmp_path / "raw" / "trail")) for p in (tmp_path / "raw").rglob("*.gz"))
    assert saved == sorted(k for k in [*mixed["files"], *digests(mixed)]
                           if f"/{C}/CloudTrail" in k and "/2024/06/01/" in k)  # the logs and their digests
    assert len(saved) == 4 + 2


def test_an_object_changed_since_listing_fails_and_is_fetched_next_time(s3: S3Server, tmp_path: Path) -> None:
    client = s3.client()
    trail = put_trail(client, "changed", accounts=[A], regions=["us-east-1"], days=[date(2024, 6, 1)], files_per_day=1,
                      decoys=False)
    key = next(iter(trail.files))
    source = S3Source(client, "s3://changed")
    objects = list(source.objects(Window(t("2024-06-01T00:00"), t("2024-06-01T12:00")), now=NOW))
    client.put_object(Bucket="changed", Key=key, Body=b'{"Records": []}')
    with pytest.raises(OSError, match="changed since it was listed"):
        objects[0].read()
    assert source.counters.read_failures == 1 and not source.counters.complete


@pytest.mark.parametrize(("url", "options", "first"), [
    ("s3://b", {}, "AWSLogs/"),
    ("s3://b/trail/", {"org_id": ORG}, f"trail/AWSLogs/{ORG}/"),
    (f"s3://b/AWSLogs/{ORG}/{A}", {}, f"AWSLogs/{ORG}/{A}/CloudTrail/"),
    (f"s3://b/AWSLogs/{A}/CloudTrail/eu-west-1/2024", {}, f"AWSLogs/{A}/CloudTrail/eu-west-1/2024/"),
])
def test_every_request_stays_under_the_first_prefix(s3: S3Server, url: str, options: dict[str, Any],
                                                     first: str) -> None:
    assert S3Source(s3.client(), url, **options).first_prefix == first  # IAM s3:prefix conditions work


def test_fatal_errors_are_one_clear_line(s3: S3Server, tmp_path: Path) -> None:
    source = S3Source(s3.client(), "s3://no-such-bucket")
    with pytest.raises(AnalyzerError, match=r"^s3://no-such-bucket/: no such bucket \(NoSuchBucket"):
        source.check()
    with pytest.raises(AnalyzerError, match="no such bucket"):
        run_pull(source, tmp_path, workers=1, now=NOW)
    s3.client().create_bucket(Bucket="empty")
    with pytest.raises(AnalyzerError, match="no CloudTrail logs here"):
        run_pull(S3Source(s3.client(), "s3://empty/wrong"), tmp_path, workers=1, now=NOW)
