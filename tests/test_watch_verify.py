"""[watch] verify (issue 16): digest files that arrive by notification are recorded as pull records them
(with their S3 signature), and a batch that committed digests has their hours verified, the findings
announced once with the alerts; a log file a digest lists whose notification has not come yet is fetched,
never reported deleted."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqs_notices import Hook, counts, make_queue, s3_event
from typer.testing import CliRunner

from analyzer.cli import app

from s3_server import S3Server, SignedChain, dataset_rows, signed_chain

HOOK_ENV = "TEST_WATCH_VERIFY_WEBHOOK_URL"
START = datetime(2026, 11, 20, 0, 0, 31, tzinfo=UTC)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Any:
    with Hook() as server:
        monkeypatch.setenv(HOOK_ENV, server.url)
        yield server


def setup(s3: S3Server, tmp_path: Path, *, verify: bool) -> tuple[Any, str, SignedChain, str, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    trail = signed_chain(random.Random(7), key, start=START, hours=4)
    gone = trail.logs[trail.digests[2]][0]
    trail.delete(gone)
    client = s3.client()
    trail.upload(client)
    SignedChain.key_file(key, tmp_path / "keys.json", start=START - timedelta(days=1), end=START + timedelta(days=1))
    sqs = boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name="us-east-1")
    url, _ = make_queue(sqs, "ct-new-logs")
    config = tmp_path / "analyzer.toml"
    config.write_text(
        "\n".join(
            [
                "[watch]",
                f"verify = {'true' if verify else 'false'}",
                'retry_after = "0s"',
                "batch_window = 0.5",
                "",
                "[verify]",
                'public_keys = "keys.json"',
                "",
                "[notify.webhook]",
                f'url_env = "{HOOK_ENV}"',
                "include_alerts = true",
                "",
            ]
        )
    )
    return sqs, url, trail, gone, config


def announce(sqs: Any, url: str, trail: SignedChain, client: Any, keys: list[str]) -> None:
    for key in keys:
        head = client.head_object(Bucket=trail.bucket, Key=key)
        body = s3_event(trail.bucket, key, head["ETag"].strip('"'), head["ContentLength"])
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def run(s3: S3Server, url: str, tmp_path: Path, config: Path) -> Any:
    return CliRunner().invoke(
        app,
        [
            "watch",
            "--queue-url",
            url,
            "--data",
            str(tmp_path / "data"),
            "--once",
            "--wait-time",
            "1",
            "--endpoint-url",
            s3.endpoint_url,
            "--config",
            str(config),
        ],
    )


def integrity(hook: Hook) -> list[dict[str, Any]]:
    return [a for a in hook.alerts() if a["detection_id"].startswith(("log-file", "digest"))]


def recorded_digests(data: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data / "_analyzer" / "manifest.sqlite") as db:
        return sorted((str(k), int(s)) for k, s in db.execute("select key, from_s3 from digests"))


def test_watch_verifies_the_hours_of_the_digests_it_ingests(s3: S3Server, tmp_path: Path, hook: Hook) -> None:
    sqs, url, trail, gone, config = setup(s3, tmp_path, verify=True)
    client = s3.client()
    late = trail.logs[trail.digests[1]][1]  # its notification comes after its digest's
    first_keys = [k for k in trail.objects if k != late]
    announce(sqs, url, trail, client, first_keys)
    first = run(s3, url, tmp_path, config)
    assert first.exit_code == 3, first.output  # a critical finding announced; nothing failing
    assert [(a["detection_id"], a["severity"]) for a in integrity(hook)] == [("log-file-deleted", "critical")]
    assert gone in integrity(hook)[0]["details"]["object"]
    assert "verify: 4 digest files checked, 1 integrity findings" in first.output
    data = tmp_path / "data"
    assert recorded_digests(data) == [(k, 1) for k in sorted(trail.digests)]  # with their S3 signatures
    late_rows = [row for row in dataset_rows(data) if row[1].endswith(late)]
    assert len(late_rows) == 3  # fetched because its digest listed it
    assert counts(sqs, url) == (0, 0)

    announce(sqs, url, trail, client, [late, *trail.digests])  # the late notification; digests redelivered
    again = run(s3, url, tmp_path, config)
    assert again.exit_code == 0, again.output
    assert len(integrity(hook)) == 1  # found again, not announced again
    assert len([row for row in dataset_rows(data) if row[1].endswith(late)]) == 3
    assert counts(sqs, url) == (0, 0)


def test_without_verify_digests_are_recorded_not_verified(s3: S3Server, tmp_path: Path, hook: Hook) -> None:
    sqs, url, trail, _, config = setup(s3, tmp_path, verify=False)
    announce(sqs, url, trail, s3.client(), list(trail.objects))
    result = run(s3, url, tmp_path, config)
    assert result.exit_code == 0, result.output
    assert integrity(hook) == [] and "digest files checked" not in result.output
    assert recorded_digests(tmp_path / "data") == [(k, 1) for k in sorted(trail.digests)]
    assert counts(sqs, url) == (0, 0)
