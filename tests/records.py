"""Tiny builders of CloudTrail records and log files for tests that need precise control."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def record(i: int, *, time: str = "2026-11-20T10:00:00Z", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice",
        },
        "eventTime": time,
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"maxResults": 5, "filterSet": {}},
        "responseElements": None,
        "requestID": f"req-{i}",
        "eventID": f"00000000-0000-0000-0000-{i:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
    }
    base.update(fields)
    return base


def log_key(minute: int = 0, suffix: str = "AbCdEfGh12345678", day: str = "20") -> str:
    return (
        f"AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/{day}/"
        f"111122223333_CloudTrail_us-east-1_202611{day}T10{minute:02d}Z_{suffix}.json.gz"
    )


def write_log(root: Path, key: str, records: list[dict[str, Any]], *, compress: bool = True) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"Records": records}).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path
