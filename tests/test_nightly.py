"""`analyzer nightly` end to end: the fixtures bucket split over nights on the local S3 server, SNS
read back through a subscribed SQS queue, a local webhook endpoint; plus a local-directory source."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from test_notify import SECRET_PATH, WebhookServer
from typer.testing import CliRunner

import analyzer.config
from analyzer.alerts.notify import JSON_MARKER, notifiers_from_config
from analyzer.alerts.state import AlertState
from analyzer.cli import app
from analyzer.jobs.nightly import NightlySettings

from s3_server import FaultProxy, S3Server

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NIGHT_1, NIGHT_2 = "/2026/11/20/", "/2026/11/21/"
UNTIL_1, UNTIL_2, UNTIL_3 = "2026-11-21T00:00Z", "2026-11-22T00:00Z", "2026-11-23T00:00Z"
HOOK_ENV = "TEST_NIGHTLY_WEBHOOK_URL"


def fixture_keys(night: str) -> list[str]:
    return sorted(str(p.relative_to(FIXTURES)) for p in (FIXTURES / "AWSLogs").rglob("*.json.gz")
                  if night in str(p))


@dataclass
class Aws:
    """The bucket, the topic and the queue subscribed to it, all on the local moto server."""

    s3: S3Server
    topic: str
    queue: str
    sqs: Any

    def upload(self, night: str) -> None:
        self.s3.seed("trail", [(key, (FIXTURES / key).read_bytes()) for key in fixture_keys(night)])

    def published(self) -> list[dict[str, Any]]:
        """Every SNS message since the last call, as (subject, JSON document)."""
        messages = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                envelope = json.loads(message["Body"])
                text = envelope["Message"]
                messages.append({"subject": envelope["Subject"], "text": text,
                                 "document": json.loads(text.split(JSON_MARKER + "\n", 1)[1])})
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def published_fingerprints(self) -> list[str]:
        return [a["fingerprint"] for m in self.published() for a in m["document"]["alerts"]]


@pytest.fixture
def aws(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Aws:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)  # boto3's own setting: S3 and SNS reach moto
    s3.client().create_bucket(Bucket="trail")
    options = {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"}
    sns, sqs = boto3.client("sns", **options), boto3.client("sqs", **options)
    topic = sns.create_topic(Name="cloudtrail-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return Aws(s3, topic, queue, sqs)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        monkeypatch.setenv(HOOK_ENV, server.url)
        yield server


def write_config(tmp_path: Path, *, topic: str | None = None, webhook: bool = False, extra: str = "") -> Path:
    lines = ["[nightly]", "workers = 1", "fetch_threads = 4", ""]
    if topic:
        lines += ["[notify.sns]", f'topic_arn = "{topic}"', ""]
    if webhook:
        lines += ["[notify.webhook]", f'url_env = "{HOOK_ENV}"', "timeout = 0.5", "retries = 2", "backoff = 0.01",
                  "max_alerts = 45", "include_alerts = true", ""]
    path = tmp_path / "analyzer.toml"
    path.write_text("\n".join(lines) + extra)
    return path


def nightly(runner: CliRunner, tmp_path: Path, config: Path, *args: str, source: str = "s3://trail") -> Any:
    return runner.invoke(app, ["nightly", "--source", source, "--data", str(tmp_path / "data"), "--report-dir",
                               str(tmp_path / "reports"), "--config", str(config), "--quiet", *args])


def announced(tmp_path: Path) -> int:
    """How many alerts the last run announced, by its own record (the catalogue grows: no constant)."""
    with AlertState(tmp_path / "data") as state:
        return int(state.runs()[-1].summary["announced"])


def error_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line]


@pytest.mark.slow
def test_each_night_notifies_only_new_alerts(runner: CliRunner, tmp_path: Path, aws: Aws,
                                             hook: WebhookServer) -> None:
    config = write_config(tmp_path, topic=aws.topic, webhook=True)

    aws.upload(NIGHT_1)
    first = nightly(runner, tmp_path, config, "--until", UNTIL_1)
    assert first.exit_code == 3, first.output  # new alerts at or above high
    assert first.stdout == "" and first.stderr == ""  # --quiet: nothing unless something failed
    alerts_1 = announced(tmp_path)
    assert alerts_1 > 40  # the scenarios of 2026-11-20 (fixtures/SCENARIOS.md)
    messages = aws.published()
    assert len(messages) == 1 and messages[0]["subject"].startswith(f"[analyzer] {alerts_1} new CloudTrail alerts: ")
    assert messages[0]["text"].startswith(f"{alerts_1} new CloudTrail alerts: ")
    night_1 = [a["fingerprint"] for a in messages[0]["document"]["alerts"]]
    assert len(set(night_1)) == alerts_1
    assert sorted(a["fingerprint"] for a in hook.alerts()) == sorted(night_1)
    assert len(hook.delivered) == 2  # 45 alerts per message
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "report-2026-11-21T0000Z.html", "report-2026-11-21T0000Z.md"]

    aws.upload(NIGHT_2)
    second = nightly(runner, tmp_path, config, "--until", UNTIL_2)
    assert second.exit_code == 3, second.output
    night_2 = aws.published_fingerprints()
    assert len(night_2) == announced(tmp_path) >= 2 and not set(night_2) & set(night_1)
    night_2_report = (tmp_path / "reports" / "report-2026-11-22T0000Z.md").read_text()  # a rerun keeps it
    assert f"Since the last report: {len(night_2)} new" in night_2_report
    assert night_2_report.count("| new |") == len(night_2)
    assert "new since the last report" in (tmp_path / "reports" / "report-2026-11-22T0000Z.html").read_text()
    assert sorted(a["fingerprint"] for a in hook.alerts()) == sorted(night_1 + night_2)
    alerts = {a["fingerprint"]: a for m in hook.delivered[2:] for a in m["alerts"]}
    assert {a["principal"] for a in alerts.values()} >= {"arn:aws:iam::111122223333:user/henry"}  # late 23:59:59

    rerun = nightly(runner, tmp_path, config, "--until", UNTIL_2)  # nothing new: nothing sent
    assert rerun.exit_code == 0, rerun.output
    overlapping = nightly(runner, tmp_path, config, "--since", "2026-11-20", "--until", UNTIL_3)
    assert overlapping.exit_code == 0, overlapping.output
    assert aws.published() == [] and len(hook.delivered) == 3
    assert sorted(p.name for p in (tmp_path / "reports").iterdir())[-2:] == [
        "report-2026-11-23T0000Z.html", "report-2026-11-23T0000Z.md"]
    report = (tmp_path / "reports" / "report-2026-11-23T0000Z.md").read_text()
    assert "Window: 2026-11-20T00:00:00Z to 2026-11-23T00:00:00Z" in report
    assert f"**{len(night_1) + len(night_2)} alert(s)**" in report
    assert "Since the last report: 0 new, 0 escalated, 0 grown." in report and "| new |" not in report
    # the quiet rerun of the 22nd wrote a report of its own: the one that announced night 2 is intact (issue 17)
    assert (tmp_path / "reports" / "report-2026-11-22T0000Z.md").read_text() == night_2_report
    assert "Since the last report: 0 new" in (tmp_path / "reports" / "report-2026-11-22T0000Z-2.md").read_text()


@pytest.mark.slow
def test_a_failing_webhook_is_retried_reported_and_sent_next_time(runner: CliRunner, tmp_path: Path, aws: Aws,
                                                                  hook: WebhookServer) -> None:
    config = write_config(tmp_path, topic=aws.topic, webhook=True)
    aws.upload(NIGHT_1)
    hook.script = [500, "timeout", 500]
    failed = nightly(runner, tmp_path, config, "--until", UNTIL_1)
    assert failed.exit_code == 4, failed.output
    alerts_1 = announced(tmp_path)
    assert error_lines(failed) == [
        f"error: notify webhook ${HOOK_ENV} (http://127.0.0.1:{hook.url.split(':')[2].split('/')[0]}/…): "
        f"HTTP 500 Internal Server Error after 3 attempts; 0 alerts sent, {alerts_1} alerts kept for the next run"]
    assert "SECRETTOKEN" not in failed.output and SECRET_PATH not in failed.output
    assert hook.attempts == 3 and hook.delivered == []
    assert len(aws.published_fingerprints()) == alerts_1  # SNS delivered regardless

    aws.upload(NIGHT_2)
    recovered = nightly(runner, tmp_path, config, "--until", UNTIL_2)
    assert recovered.exit_code == 3, recovered.output
    alerts_2 = announced(tmp_path)
    assert len(hook.alerts()) == alerts_1 + alerts_2  # last night's alerts, then tonight's
    assert len(aws.published_fingerprints()) == alerts_2  # SNS does not send last night's again
    with AlertState(tmp_path / "data") as state:
        assert [r.status for r in state.runs()] == ["partial", "ok"]
        assert all(not state.pending(name) for name in (f"sns:{aws.topic}", f"webhook:{HOOK_ENV}"))


def test_a_missing_topic_is_a_one_line_error_and_exit_4(runner: CliRunner, tmp_path: Path, aws: Aws) -> None:
    aws.upload(NIGHT_2)
    missing = aws.topic.replace("cloudtrail-alerts", "no-such-topic")
    result = nightly(runner, tmp_path, write_config(tmp_path), "--until", UNTIL_2, "--sns-topic-arn", missing)
    assert result.exit_code == 4, result.output
    [line] = error_lines(result)
    assert line.startswith(f"error: notify sns {missing}: topic not found (check the ARN and its region) (NotFound")
    assert re.search(r"; 0 alerts sent, [1-9]\d* alerts? kept for the next run$", line), line


def test_rejected_s3_credentials_are_a_one_line_error(runner: CliRunner, tmp_path: Path, aws: Aws) -> None:
    with FaultProxy(aws.s3.endpoint_url, reject_credentials="InvalidAccessKeyId") as proxy:
        config = write_config(tmp_path, extra=f'[pull]\nendpoint_url = "{proxy.endpoint_url}"\n')
        result = nightly(runner, tmp_path, config)
    assert result.exit_code == 1, result.output
    [line] = error_lines(result)
    assert line.startswith("error: s3://trail/: credentials rejected (InvalidAccessKeyId")
    assert not (tmp_path / "data").exists()


def test_an_unset_webhook_variable_stops_before_any_work(runner: CliRunner, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOOK_ENV, raising=False)
    result = nightly(runner, tmp_path, write_config(tmp_path, webhook=True), source=str(tmp_path))
    assert result.exit_code == 1, result.output
    assert error_lines(result) == [f"error: webhook: the environment variable {HOOK_ENV} (holding the webhook URL) "
                                   "is not set"]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("args, option", [
    (["--sns-topic-arn", "arn:aws:s3:::bucket"], "--sns-topic-arn"),
    (["--late-margin", "soon"], "--late-margin"),
    (["--since", "yesterday-ish"], "--since"),
    (["--source", "/no/such/directory"], "--source"),
])
def test_bad_options_are_usage_errors(runner: CliRunner, tmp_path: Path, args: list[str], option: str) -> None:
    result = runner.invoke(app, ["nightly", "--source", str(tmp_path), "--data", str(tmp_path / "d"), *args])
    assert result.exit_code == 2, result.output
    assert option in result.output


def copy_night(target: Path, night: str) -> None:
    for key in fixture_keys(night):
        (target / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / key, target / key)


def test_a_local_directory_source_works_the_same(runner: CliRunner, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    copy_night(logs, NIGHT_1)
    config = write_config(tmp_path)
    first = nightly(runner, tmp_path, config, "--until", UNTIL_1, source=str(logs))
    assert first.exit_code == 3, first.output
    alerts_1 = announced(tmp_path)
    again = runner.invoke(app, ["nightly", "--source", str(logs), "--data", str(tmp_path / "data"), "--until",
                                UNTIL_1, "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert f"{alerts_1} alerts (0 new, 0 escalated, 0 grown, {alerts_1} already reported)" in again.stdout
    assert "files: 0 ingested, 11 already in the dataset" in again.stdout  # 10 log files and the digest
    assert (tmp_path / "data" / "_analyzer" / "alerts.sqlite").is_file()


def test_a_partial_ingest_exits_4_and_does_not_move_the_window(runner: CliRunner, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    copy_night(logs, NIGHT_2)
    folder = logs / "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/21"
    broken = folder / "111122223333_CloudTrail_us-east-1_20261121T2355Z_broken.json.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    config = write_config(tmp_path)
    result = nightly(runner, tmp_path, config, "--until", UNTIL_2, source=str(logs))
    assert result.exit_code == 4, result.output
    assert any(line.startswith(f"error: {broken}: ") for line in error_lines(result))
    with AlertState(tmp_path / "data") as state:
        assert state.last_success() is None and state.runs()[-1].status == "partial"
    broken.unlink()
    later = nightly(runner, tmp_path, config, "--until", UNTIL_3, source=str(logs))
    assert later.exit_code == 0, later.output  # the 2 alerts were announced by the partial run
    with AlertState(tmp_path / "data") as state:
        assert [(r.status, r.since) for r in state.runs()] == [
            ("partial", datetime(2026, 11, 21, tzinfo=UTC)),
            ("ok", datetime(2026, 11, 21, tzinfo=UTC)),  # where the incomplete first night started
        ]


def test_help_has_examples_and_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(app, ["nightly", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for expected in ("Examples", "analyzer nightly --source s3://", "--webhook-url-env", "3 new alerts at or above",
                     "4 partial", "alerts.sqlite"):
        assert expected in text


def test_the_documented_configuration_is_valid() -> None:
    """The [nightly]/[notify.*] example in analyzer/config.py parses and builds what it says."""
    example = analyzer.config.__doc__.split("``[nightly]`` and ``[notify.*]``", 1)[1].split("::\n", 1)[1]
    config = tomllib.loads(textwrap.dedent(example))
    settings = NightlySettings.from_config(config)
    assert (settings.late_margin, settings.max_lookback, settings.workers) == (timedelta(hours=2), timedelta(days=7), 4)
    sns, webhook = notifiers_from_config(config, environ={"ANALYZER_WEBHOOK_URL": "https://hooks.example.com/x"},
                                         sns_client=object())  # type: ignore[arg-type]
    assert (sns.min_severity, webhook.min_severity) == ("medium", "low")


def test_nightly_verify_notifies_a_deleted_log_once(runner: CliRunner, tmp_path: Path, hook: WebhookServer) -> None:
    """[nightly] verify = true: the window's digests the dataset recorded are verified after the pull; a log
    file a digest lists but that was deleted before it was ingested is a critical alert, notified once."""
    import random

    from cryptography.hazmat.primitives.asymmetric import rsa

    from s3_server import SignedChain, signed_chain

    start = datetime(2026, 11, 20, 0, 0, 31, tzinfo=UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    trail = signed_chain(random.Random(11), key, start=start, hours=6)
    gone = trail.logs[trail.digests[2]][0]
    trail.delete(gone)
    trail.write(tmp_path / "logs")
    SignedChain.key_file(key, tmp_path / "keys.json", start=start - timedelta(days=1), end=start + timedelta(days=1))
    config = tmp_path / "analyzer.toml"
    config.write_text("\n".join([
        "[nightly]", "workers = 1", "verify = true", "",
        "[verify]", 'public_keys = "keys.json"', "",
        "[notify.webhook]", f'url_env = "{HOOK_ENV}"', "include_alerts = true", ""]))

    def integrity() -> list[dict[str, Any]]:
        return [a for a in hook.alerts() if a["detection_id"].startswith(("log-file", "digest"))]

    first = nightly(runner, tmp_path, config, "--since", "2026-11-19T23:00Z", "--until", "2026-11-20T07:00Z",
                    source=str(tmp_path / "logs"))
    assert first.exit_code == 3, first.output  # a critical alert announced
    assert [(a["detection_id"], a["severity"]) for a in integrity()] == [("log-file-deleted", "critical")]
    assert gone in integrity()[0]["details"]["object"]
    report = next((tmp_path / "reports").glob("report-*.md")).read_text()
    assert "log-file-deleted" in report
    with AlertState(tmp_path / "data") as state:
        assert state.runs()[-1].summary["integrity_findings"] == 1
    again = nightly(runner, tmp_path, config, "--since", "2026-11-19T23:00Z", "--until", "2026-11-20T08:00Z",
                    source=str(tmp_path / "logs"))  # the next night: found again, not notified again
    assert again.exit_code == 0, again.output
    assert len(integrity()) == 1
    with AlertState(tmp_path / "data") as state:
        assert state.runs()[-1].summary["integrity_findings"] == 1
