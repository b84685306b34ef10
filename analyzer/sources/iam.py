"""IAM posture from AWS: per account, the credential report, MFA devices, the account summary and
the password policy, read-only.

Everything runs on an injected boto3 session (the CLI makes one from ``--profile``; tests point
``endpoint_url`` at a local server), as :mod:`analyzer.sources.s3` does::

    from analyzer.sources.iam import PostureSource
    source = PostureSource.connect(profile="audit", role_name="PostureAudit", organization=True)
    accounts = source.collect()        # one AccountPosture per account: ok, denied or failed

Which accounts: the caller's own (``sts:GetCallerIdentity``); ``accounts=[...]``; or, with
``organization=True``, every ACTIVE account ``organizations:ListAccounts`` returns. Another account
is read through ``sts:AssumeRole`` on ``arn:PARTITION:iam::ACCOUNT:role/ROLE_NAME``; the caller's own
account with the caller's credentials.

Failures are named, never raised past the account they concern: a denied ``AssumeRole`` or
credential report makes that account ``denied`` (the message names the action), anything else that
keeps its report from being read makes it ``failed``, and a call that only adds detail (the summary,
the password policy, one user's MFA devices) becomes a problem line of an account that is otherwise
read. Only what makes the whole run pointless raises :class:`PostureError`: the caller's
credentials, an unreachable endpoint before anything was read, a denied ``ListAccounts``.
Throttling is botocore's standard retry mode (10 attempts unless ``AWS_MAX_ATTEMPTS`` or the
profile say otherwise; ``AWS_RETRY_MODE=adaptive`` is honoured); a call still throttled after that
is named like any other failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from analyzer.alerts.sanitize import secrets, visible
from analyzer.errors import AnalyzerError
from analyzer.posture import credential_report
from analyzer.posture.model import (
    DENIED,
    FAILED,
    OK,
    ROOT_NAME,
    UNKNOWN_KIND,
    VIRTUAL,
    AccountPosture,
    MfaDevice,
    Principal,
    mfa_kind,
)
from analyzer.sources.layout import is_account

SESSION_NAME = "analyzer-posture"
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_THREADS = 4
#: How long a credential report may take to be generated (AWS: seconds to minutes for large accounts).
REPORT_TIMEOUT = 300.0
FIRST_POLL, MAX_POLL = 0.5, 5.0

DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AuthorizationError",
    "Forbidden",
    "403",
}
CREDENTIAL_CODES = {
    "InvalidClientTokenId": "credentials rejected",
    "SignatureDoesNotMatch": "credentials rejected",
    "InvalidAccessKeyId": "credentials rejected",
    "UnrecognizedClientException": "credentials rejected",
    "ExpiredToken": "credentials expired",
    "ExpiredTokenException": "credentials expired",
    "RequestExpired": "credentials expired (or the clock is off)",
}
THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
}
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound)
UNREACHABLE_ERRORS = (EndpointConnectionError, ConnectTimeoutError)
#: Organizations account states other than ACTIVE: listed, not read (no role to assume there).
SKIPPED_STATES = ("SUSPENDED", "PENDING_CLOSURE", "CLOSED")
#: The permissions the README's policy grants, by the call that needs them.
ACTIONS = {
    "GetCallerIdentity": "sts:GetCallerIdentity",
    "AssumeRole": "sts:AssumeRole",
    "ListAccounts": "organizations:ListAccounts",
    "GenerateCredentialReport": "iam:GenerateCredentialReport",
    "GetCredentialReport": "iam:GetCredentialReport",
    "ListMFADevices": "iam:ListMFADevices",
    "ListVirtualMFADevices": "iam:ListVirtualMFADevices",
    "GetAccountSummary": "iam:GetAccountSummary",
    "GetAccountPasswordPolicy": "iam:GetAccountPasswordPolicy",
}


class PostureError(AnalyzerError):
    """Nothing can be read: the caller's credentials, the endpoint, the account listing."""


class AccountError(Exception):
    """One account cannot be read: ``status`` is denied or failed, the message says why (one line)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(error.get("Code") or status or "") or None
    return None


def describe(exc: BaseException, call: str | None = None, attempts: int | None = None) -> str:
    """One line for a failed call: a denial names the permission it needs, throttling the attempts
    made; AWS's message loses anything that looks like a secret (:func:`~analyzer.alerts.sanitize.secrets`)."""
    operation = call or getattr(exc, "operation_name", None) or "the call"
    action = ACTIONS.get(operation, operation)
    if isinstance(exc, ClientError):
        code = error_code(exc) or "error"
        message = secrets(exc.response.get("Error", {}).get("Message") or "")
        detail = f"{code}: {message}" if message else code
        if code in DENIED_CODES:
            return f"access denied: {action} ({detail})"
        if code in CREDENTIAL_CODES:
            return f"{CREDENTIAL_CODES[code]} calling {action} ({code})"
        if code in THROTTLING_CODES:
            tries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
            made = (
                f" after {int(tries) + 1} attempts"
                if tries is not None
                else (f" after {attempts} attempts" if attempts else "")
            )
            return f"throttled{made}: {action} ({code})"
        return f"{action} failed ({detail})"
    if isinstance(exc, CREDENTIAL_ERRORS):
        return f"no usable AWS credentials for {action} ({secrets(exc)})"
    if isinstance(exc, UNREACHABLE_ERRORS):
        return f"cannot reach AWS for {action} ({secrets(exc)})"
    return f"{action} failed ({type(exc).__name__}: {secrets(exc)})"


def is_denied(exc: BaseException) -> bool:
    return error_code(exc) in DENIED_CODES


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    """A boto3 session on the standard credential chain (``--profile`` or AWS_PROFILE)."""
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise PostureError(f"AWS profile not found: {visible(exc)}") from None


@dataclass(frozen=True)
class Target:
    """An account to read: through the caller's credentials (``role_arn`` None) or an assumed role."""

    account_id: str
    name: str | None = None
    role_arn: str | None = None
    partition: str = "aws"


@dataclass(frozen=True)
class Caller:
    account_id: str
    arn: str
    partition: str = "aws"


def _paginate(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(key) or [])
    return items


def _utc(value: object) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


class PostureSource:
    """Reads the MFA posture of one or more accounts (see the module docstring)."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        role_name: str | None = None,
        accounts: Sequence[str] = (),
        organization: bool = False,
        session_name: str = SESSION_NAME,
        threads: int = DEFAULT_THREADS,
        max_attempts: int | None = None,
        report_timeout: float = REPORT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for account in accounts:
            if not is_account(account):
                raise AnalyzerError(f"{visible(account)!r}: an account id is 12 digits")
        self.session = session
        self.endpoint_url = endpoint_url
        self.region = region or session.region_name or "us-east-1"
        self.role_name = role_name.strip("/") if role_name else None
        self.accounts = list(dict.fromkeys(accounts))
        self.organization = organization
        self.session_name = session_name
        self.threads = max(1, threads)
        self.report_timeout = report_timeout
        self.sleep = sleep
        configured = session._session.get_config_variable("max_attempts")
        self.max_attempts = max_attempts or (int(configured) if configured else DEFAULT_MAX_ATTEMPTS)
        mode = session._session.get_config_variable("retry_mode")
        self.config = Config(
            retries={"mode": "adaptive" if mode == "adaptive" else "standard", "total_max_attempts": self.max_attempts},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=max(10, self.threads * 2),
            user_agent_extra="analyzer-posture",
        )
        self.skipped: list[str] = []  # organization accounts not read (suspended...), one line each
        self._lock = threading.Lock()  # a boto3 Session is not thread-safe; the clients it makes are

    @classmethod
    def connect(cls, *, profile: str | None = None, region: str | None = None, **options: Any) -> PostureSource:
        """A source on the standard credential chain (``profile``: an AWS CLI profile)."""
        return cls(make_session(profile, region), region=region, **options)

    def client(self, service: str, session: boto3.Session | None = None) -> Any:
        chosen: Any = session or self.session  # the service name is a plain string here, not a stub's literal
        try:
            with self._lock:  # accounts are read in threads: one client made at a time
                return chosen.client(
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=self.config
                )
        except (NoRegionError, ValueError) as exc:  # a malformed endpoint URL, an unknown region
            raise PostureError(f"cannot make a {service} client: {secrets(exc)}") from None

    # -- which accounts ---------------------------------------------------------------------------
    def caller(self) -> Caller:
        """Who the credentials are (``sts:GetCallerIdentity``, which needs no permission)."""
        try:
            identity = self.client("sts").get_caller_identity()
        except (ClientError, BotoCoreError) as exc:
            raise PostureError(describe(exc, "GetCallerIdentity") + _hint(exc)) from None
        arn = str(identity.get("Arn") or "")
        partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
        return Caller(str(identity.get("Account") or ""), arn, partition or "aws")

    def targets(self, caller: Caller) -> list[Target]:
        """The accounts to read, in order: the caller's own, the given ones, or the organization's."""
        names: dict[str, str | None] = {}
        if self.organization:
            try:
                listed = _paginate(self.client("organizations"), "list_accounts", "Accounts")
            except (ClientError, BotoCoreError) as exc:
                raise PostureError(describe(exc, "ListAccounts")) from None
            for account in listed:
                account_id, status = str(account.get("Id") or ""), str(account.get("Status") or "ACTIVE")
                if not is_account(account_id):
                    self.skipped.append(f"{visible(account_id)!r}: not an account id, skipped")
                elif status in SKIPPED_STATES:
                    self.skipped.append(f"{account_id}: {status.lower()}, skipped")
                else:
                    names[account_id] = account.get("Name")
            wanted = self.accounts or list(names)
        else:
            wanted = self.accounts or [caller.account_id]
        targets = []
        for account_id in wanted:
            role = None
            if account_id != caller.account_id:
                if not self.role_name:
                    raise PostureError(
                        f"{account_id} is another account than the caller's ({caller.account_id}): "
                        "give --role-name (a role to assume there)"
                    )
                role = f"arn:{caller.partition}:iam::{account_id}:role/{self.role_name}"
            targets.append(Target(account_id, names.get(account_id), role, caller.partition))
        return targets

    # -- reading ----------------------------------------------------------------------------------
    def collect(self, *, progress: Callable[[AccountPosture], None] | None = None) -> list[AccountPosture]:
        """Every target account's posture (in the targets' order), read ``threads`` accounts at a time."""
        caller = self.caller()
        targets = self.targets(caller)
        with ThreadPoolExecutor(
            max_workers=min(self.threads, max(1, len(targets))), thread_name_prefix="posture"
        ) as pool:
            results = []
            for account in pool.map(self.read_account, targets):
                if progress is not None:
                    progress(account)
                results.append(account)
        return results

    def read_account(self, target: Target) -> AccountPosture:
        """One account, never raising: a failure is the account's status and error."""
        try:
            return self._read(target)
        except AccountError as exc:
            return AccountPosture(target.account_id, target.name, exc.status, str(exc))
        except Exception as exc:  # a bug or an odd response must not lose the other accounts
            return AccountPosture(
                target.account_id, target.name, FAILED, f"internal error: {type(exc).__name__}: {secrets(exc)}"
            )

    def _session_for(self, target: Target) -> boto3.Session:
        if target.role_arn is None:
            return self.session
        try:
            credentials = self.client("sts").assume_role(
                RoleArn=target.role_arn, RoleSessionName=self.session_name, DurationSeconds=3600
            )["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            status = DENIED if is_denied(exc) else FAILED
            raise AccountError(status, f"{describe(exc, 'AssumeRole')} on {target.role_arn}") from None
        with self._lock:
            return boto3.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=self.region,
            )

    def _read(self, target: Target) -> AccountPosture:
        iam = self.client("iam", self._session_for(target))
        problems: list[str] = []
        try:
            generated_at, content = self._report(iam)
            principals, report_problems = credential_report.parse(content)
        except (ClientError, BotoCoreError) as exc:
            raise AccountError(DENIED if is_denied(exc) else FAILED, describe(exc)) from None
        except credential_report.ReportError as exc:
            raise AccountError(FAILED, str(exc)) from None
        problems += [f"credential report {line}" for line in report_problems]

        root_mfa = root_keys = None
        try:
            summary = iam.get_account_summary().get("SummaryMap") or {}
            root_mfa = _flag(summary.get("AccountMFAEnabled"))
            root_keys = _flag(summary.get("AccountAccessKeysPresent"))
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"{describe(exc, 'GetAccountSummary')}: root MFA and keys from the credential report only")

        policy: dict[str, Any] | None = None
        try:
            policy = dict(iam.get_account_password_policy().get("PasswordPolicy") or {})
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":  # NoSuchEntity: no policy set, AWS's default applies
                problems.append(describe(exc, "GetAccountPasswordPolicy"))
        except BotoCoreError as exc:
            problems.append(describe(exc, "GetAccountPasswordPolicy"))

        virtual: dict[str, list[MfaDevice]] = {}
        try:
            for device in _paginate(iam, "list_virtual_mfa_devices", "VirtualMFADevices", AssignmentStatus="Assigned"):
                owner = str((device.get("User") or {}).get("Arn") or "")
                serial = str(device.get("SerialNumber") or "")  # the seed and QR code are never read
                if owner and serial:
                    virtual.setdefault(owner, []).append(MfaDevice(serial, VIRTUAL, _utc(device.get("EnableDate"))))
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"{describe(exc, 'ListVirtualMFADevices')}: the root user's MFA kind is not known")

        account = target.account_id
        root_arn = (
            next((p.arn for p in principals if p.is_root and p.arn), None)
            or f"arn:{target.partition}:iam::{account}:root"
        )
        read: list[Principal] = []
        if not any(p.is_root for p in principals):  # some reports (and mocks) leave the root row out
            principals.insert(0, Principal(ROOT_NAME, root_arn, is_root=True))
        for principal in principals:
            if principal.is_root:
                devices = virtual.get(root_arn, [])
                mfa = root_mfa if root_mfa is not None else principal.mfa_active
                if mfa and not devices:
                    devices = [MfaDevice("", UNKNOWN_KIND)]  # hardware or a security key: IAM lists neither for root
                read.append(replace(principal, mfa_active=mfa, mfa_devices=tuple(devices)))
                continue
            if not (principal.password_enabled or principal.mfa_active or any(k.active for k in principal.access_keys)):
                read.append(principal)  # can neither sign in nor call: its MFA devices change nothing
                continue
            try:
                listed = _paginate(iam, "list_mfa_devices", "MFADevices", UserName=principal.user_name)
            except (ClientError, BotoCoreError) as exc:
                problems.append(
                    f"user {visible(principal.user_name)!r}: {describe(exc, 'ListMFADevices')}: "
                    "MFA from the credential report only"
                )
                read.append(principal)
                continue
            devices = [
                MfaDevice(
                    str(d.get("SerialNumber") or ""),
                    mfa_kind(str(d.get("SerialNumber") or "")),
                    _utc(d.get("EnableDate")),
                )
                for d in listed
            ]
            # the device list is current; the report may be up to four hours old
            read.append(replace(principal, mfa_active=bool(devices), mfa_devices=tuple(devices)))
        if len(problems) > credential_report.MAX_PROBLEMS:
            problems = [
                *problems[: credential_report.MAX_PROBLEMS],
                f"… and {len(problems) - credential_report.MAX_PROBLEMS} more problem(s)",
            ]
        return AccountPosture(
            account, target.name, OK, None, tuple(problems), generated_at, root_mfa, root_keys, policy, tuple(read)
        )

    def _report(self, iam: Any) -> tuple[datetime | None, bytes]:
        """Generate the credential report (AWS reuses one up to four hours old), wait until it is
        complete, and fetch it."""
        deadline = time.monotonic() + self.report_timeout
        wait = FIRST_POLL
        while True:
            state = str(iam.generate_credential_report().get("State") or "")
            if state == "COMPLETE":
                try:
                    report = iam.get_credential_report()
                except ClientError as exc:
                    # ReportInProgress, ReportExpired, ReportNotPresent: generate again
                    if error_code(exc) not in ("ReportInProgress", "ReportExpired", "ReportNotPresent"):
                        raise
                else:
                    if str(report.get("ReportFormat") or "text/csv") != "text/csv":
                        raise AccountError(
                            FAILED, f"credential report in {visible(report.get('ReportFormat'))!r}, not text/csv"
                        )
                    content = report.get("Content") or b""
                    return _utc(report.get("GeneratedTime")), content
            if time.monotonic() + wait > deadline:
                raise AccountError(
                    FAILED,
                    f"credential report not ready after {self.report_timeout:.0f} s "
                    f"(state {visible(state) or 'unknown'}): run again later",
                )
            self.sleep(wait)
            wait = min(wait * 2, MAX_POLL)


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return None


def _hint(exc: BaseException) -> str:
    if isinstance(exc, CREDENTIAL_ERRORS) or error_code(exc) in CREDENTIAL_CODES:
        return "; set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    return ""


def count(accounts: Iterable[AccountPosture], status: str = OK) -> int:
    return sum(1 for a in accounts if a.status == status)
