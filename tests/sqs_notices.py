"""S3 notifications as AWS sends them, a queue with a dead-letter queue on the moto server, and log
objects that make alerts: what the watch tests and bench/watch.py put on the wire.

The message shapes follow AWS's documentation (the S3 event notification structure, version 2.1;
SNS's HTTP/SQS envelope; EventBridge's "Object Created" event), including the URL encoding S3 applies
to keys in notifications (``+`` for a space, ``%XX``) and not in EventBridge events.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

ACCOUNT = "111122223333"
REGION = "us-east-1"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def s3_record(bucket: str, key: str, etag: str, size: int, *, when: datetime | None = None,
              name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """One record of an S3 event notification (what S3 → SQS and S3 → SNS carry)."""
    when = when or datetime.now(UTC)
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION, "eventTime": iso(when),
        "eventName": name, "userIdentity": {"principalId": "AWS:AROAEXAMPLE:cloudtrail"},
        "requestParameters": {"sourceIPAddress": "198.51.100.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "analyzer-watch",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag,
                       "sequencer": f"{int(when.timestamp() * 1e6):X}"},
        },
    }


def s3_event(bucket: str, key: str, etag: str, size: int, **options: Any) -> dict[str, Any]:
    return {"Records": [s3_record(bucket, key, etag, size, **options)]}


def s3_test_event(bucket: str) -> dict[str, Any]:
    """What S3 sends once when a notification configuration is saved."""
    return {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": iso(datetime.now(UTC)), "Bucket": bucket,
            "RequestId": "5582815E1AEA5ADF", "HostId": "EXAMPLE"}


def sns_envelope(message: dict[str, Any], topic: str = f"arn:aws:sns:{REGION}:{ACCOUNT}:ct-new-logs") -> dict[str, Any]:
    """An SNS notification as an SQS subscription without raw message delivery receives it."""
    return {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
        "Subject": "Amazon S3 Notification", "Message": json.dumps(message),
        "Timestamp": iso(datetime.now(UTC)), "SignatureVersion": "1", "Signature": "EXAMPLE==",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=EXAMPLE",
    }


def eventbridge_event(bucket: str, key: str, etag: str, size: int, *, when: datetime | None = None,
                      kind: str = "Object Created") -> dict[str, Any]:
    """An EventBridge "Object Created" event (the key is not URL-encoded)."""
    when = when or datetime.now(UTC)
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": kind, "source": "aws.s3", "account": ACCOUNT,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket},
                   "object": {"key": key, "size": size, "etag": etag, "sequencer": "00617F08299329D189"},
                   "request-id": "N4N7GDK58NMKJ12R", "requester": ACCOUNT, "source-ip-address": "198.51.100.1",
                   "reason": "PutObject"},
    }


def make_queue(sqs: Any, name: str, *, max_receive: int = 3, visibility: int = 30) -> tuple[str, str]:
    """A queue with a redrive policy to its own dead-letter queue: (queue URL, DLQ URL)."""
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive)}),
    })["QueueUrl"]
    return url, dlq


def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def signin(when: datetime, *, user: str = "anaya", event_id: str | None = None, mfa: str = "No",
           account: str = ACCOUNT) -> dict[str, Any]:
    """A successful console sign-in (without MFA by default: console-login-without-mfa alerts on it)."""
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDACKCEVSQ6C2EXAMPLE",
                         "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account, "userName": user},
        "eventTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": REGION,
        "sourceIPAddress": "192.0.2.10", "userAgent": "Mozilla/5.0", "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/", "MobileVersion": "No", "MFAUsed": mfa},
        "eventID": event_id or str(uuid.uuid4()), "eventType": "AwsConsoleSignIn", "managementEvent": True,
        "recipientAccountId": account, "eventCategory": "Management",
    }


def log_object(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(json.dumps({"Records": records}).encode())


def put_log(s3: Any, bucket: str, key: str, records: list[dict[str, Any]]) -> tuple[str, int]:
    """Put a log object; (its ETag without quotes, its size)."""
    body = log_object(records)
    response = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return str(response["ETag"]).strip('"'), len(body)


class Hook:
    """A local webhook (127.0.0.1, port 0) that records each JSON body it is posted, and when."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                import time

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.bodies.append(json.loads(body))
                    hook.times.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/services/T000/B000/SECRET"

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for body in self.bodies for a in body.get("alerts", [])]

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
