"""analyzer posture against the moto server on 127.0.0.1 (IAM, STS, Organizations), with moto's IAM
authorization on: an organization of three accounts, one of which denies the AssumeRole.

The world (see :func:`world`): the management account 111122223333 (the fixture corpus's account,
so its CloudTrail sign-ins join) holds alice (console password, a key, no MFA: she signed in
without MFA on 2026-11-20), bob (virtual MFA, signed in with it), victor (a hardware MFA device,
yet he signed in without MFA), greg (no MFA, signed in without it), dora (no MFA, last signed in
2025-06-01: dormant), ci-bot (a key, no MFA) and auditor (the caller: a key with the read-only
policy of the README); its root user has no MFA and has access keys. "prod" lets the auditor in
through the PostureAudit role and holds erin (console password, no MFA); its root user has MFA.
"dev" has no such role: AssumeRole is denied.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.jobs.posture import run_posture
from analyzer.posture import store
from analyzer.sources.iam import PostureSource

from s3_server import (
    IAM_READ_ACTIONS,
    S3Server,
    ThrottleProxy,
    authorization,
    aws_client,
    credentials,
    in_account,
    set_root,
    set_user,
)

MANAGEMENT = "111122223333"
ROLE = "PostureAudit"
SINCE = "2026-11-01"


@dataclass
class World:
    server: S3Server
    prod: str
    dev: str
    auditor: dict[str, str]

    def source(self, **options: Any) -> PostureSource:
        import boto3

        session = boto3.Session(region_name="us-east-1", **self.auditor)
        options.setdefault("organization", True)
        options.setdefault("role_name", ROLE)
        return PostureSource(session, endpoint_url=self.server.endpoint_url, sleep=lambda _: None, **options)


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _mfa(iam: Any, user: str, serial: str | None = None) -> None:
    if serial is None:
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=user, SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )


def _console(iam: Any, user: str) -> None:
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Correct-Horse-9!")


@pytest.fixture
def world(s3: S3Server, aws_root_rows: None, monkeypatch: pytest.MonkeyPatch) -> World:
    iam = aws_client(s3, "iam", in_account(s3, MANAGEMENT))
    iam.create_user(UserName="auditor")
    auditor = credentials(iam.create_access_key(UserName="auditor"))
    orgs = aws_client(s3, "organizations", auditor)
    orgs.create_organization(FeatureSet="ALL")
    prod = orgs.create_account(Email="prod@example.com", AccountName="prod")["CreateAccountStatus"]["AccountId"]
    dev = orgs.create_account(Email="dev@example.com", AccountName="dev")["CreateAccountStatus"]["AccountId"]
    iam.put_user_policy(
        UserName="auditor",
        PolicyName="posture",
        PolicyDocument=_policy(  # the README's policy
            {"Effect": "Allow", "Action": [*IAM_READ_ACTIONS, "organizations:ListAccounts"], "Resource": "*"},
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{prod}:role/{ROLE}"},
        ),
    )
    for user in ("alice", "bob", "victor", "greg", "dora"):
        _console(iam, user)
    iam.create_access_key(UserName="alice")
    _mfa(iam, "bob")
    _mfa(iam, "victor", "GAHT12345678")  # a hardware token's serial is no ARN
    iam.create_user(UserName="ci-bot")
    iam.create_access_key(UserName="ci-bot")
    set_user(
        MANAGEMENT,
        "dora",
        created=datetime(2025, 1, 1, tzinfo=UTC),
        password_last_used=datetime(2025, 6, 1, 9, 0, tzinfo=UTC),
    )
    set_user(MANAGEMENT, "alice", password_last_used=datetime(2026, 11, 19, 8, 0, tzinfo=UTC))
    set_root(MANAGEMENT, mfa=False, access_keys=True, password_last_used=datetime(2026, 11, 20, 0, 55, tzinfo=UTC))

    inside = aws_client(s3, "iam", in_account(s3, prod))
    inside.create_role(
        RoleName=ROLE,
        AssumeRolePolicyDocument=_policy(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MANAGEMENT}:root"}, "Action": "sts:AssumeRole"}
        ),
    )
    inside.put_role_policy(
        RoleName=ROLE,
        PolicyName="read",
        PolicyDocument=_policy({"Effect": "Allow", "Action": IAM_READ_ACTIONS, "Resource": "*"}),
    )
    _console(inside, "erin")
    set_root(prod, mfa=True)

    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auditor["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auditor["aws_secret_access_key"])
    with authorization(s3):
        yield World(s3, prod, dev, auditor)


@pytest.fixture
def dataset(fixtures_dataset: Path, tmp_path: Path) -> Path:
    """The fixture corpus's dataset, copied (posture stores its snapshots in it)."""
    target = tmp_path / "ctdata"
    shutil.copytree(fixtures_dataset, target)
    return target


# -- the source ------------------------------------------------------------------------------------


def test_every_account_is_read_or_named_and_the_rows_are_iams(world: World) -> None:
    accounts = world.source().collect()
    by_id = {a.account_id: a for a in accounts}
    assert [(a.account_id, a.name, a.status) for a in accounts] == [
        (MANAGEMENT, "master", "ok"),
        (world.prod, "prod", "ok"),
        (world.dev, "dev", "denied"),
    ]
    assert by_id[world.dev].error == (
        f"access denied: sts:AssumeRole (AccessDenied: User: arn:aws:iam::{MANAGEMENT}:user/auditor is not "
        f"authorized to perform: sts:AssumeRole) on arn:aws:iam::{world.dev}:role/{ROLE}"
    )
    management = by_id[MANAGEMENT]
    assert management.problems == ()
    assert (management.root_mfa_enabled, management.root_access_keys_present, management.password_policy) == (
        False,
        True,
        None,
    )
    rows = [
        (
            p.user_name,
            p.is_root,
            p.password_enabled,
            p.mfa_active,
            tuple(d.kind for d in p.mfa_devices),
            tuple(k.slot for k in p.access_keys if k.active),
        )
        for p in management.principals
    ]
    assert rows == [
        ("root", True, None, False, (), (1,)),
        ("auditor", False, False, False, (), (1,)),
        ("alice", False, True, False, (), (1,)),
        ("bob", False, True, True, ("virtual",), ()),
        ("victor", False, True, True, ("hardware",), ()),
        ("greg", False, True, False, (), ()),
        ("dora", False, True, False, (), ()),
        ("ci-bot", False, False, False, (), (1,)),
    ]
    root = management.principals[0]
    assert (root.arn, root.password_last_used) == (
        f"arn:aws:iam::{MANAGEMENT}:root",
        datetime(2026, 11, 20, 0, 55, tzinfo=UTC),
    )
    users = {p.user_name: p for p in management.principals}
    assert users["dora"].password_last_used == datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    assert users["dora"].user_created == datetime(2025, 1, 1, tzinfo=UTC)
    assert users["greg"].password_last_used is None and users["greg"].password_last_used_note == "no_information"
    assert users["bob"].mfa_devices[0].serial == f"arn:aws:iam::{MANAGEMENT}:mfa/bob"
    assert users["auditor"].access_keys[0].last_used is not None  # moto records the key's use, as IAM does
    prod = by_id[world.prod]
    assert [(p.user_name, p.password_enabled, p.mfa_active) for p in prod.principals] == [
        ("root", None, True),
        ("erin", True, False),
    ]


def test_only_the_callers_account_without_org(world: World) -> None:
    accounts = world.source(organization=False, role_name=None).collect()
    assert [(a.account_id, a.status) for a in accounts] == [(MANAGEMENT, "ok")]


def test_another_account_without_a_role_name_is_one_line(world: World) -> None:
    from analyzer.sources.iam import PostureError

    with pytest.raises(
        PostureError,
        match=rf"^{world.prod} is another account than the caller's "
        rf"\({MANAGEMENT}\): give --role-name",
    ):
        world.source(organization=False, role_name=None, accounts=[world.prod]).collect()


# -- the job: the join with the dataset, the ranked list, the findings -------------------------------


def _needs(result: Any) -> list[tuple[Any, ...]]:
    return [
        (n["rank"], n["tier"], n["severity"], n["account_id"], n["user_name"], tuple(n["detections"]))
        for n in result.assessment.needs
    ]


def test_who_needs_mfa_now_joins_iam_with_the_logs(world: World, dataset: Path) -> None:
    result = run_posture(dataset, world.source(), since=SINCE)
    assert _needs(result) == [
        (1, 1, "critical", MANAGEMENT, "root", ("root-without-mfa", "root-access-keys-present")),
        (2, 3, "high", MANAGEMENT, "greg", ("mfa-not-enabled",)),  # signed in without MFA 11-20 18:26
        (3, 3, "high", MANAGEMENT, "alice", ("mfa-not-enabled",)),  # ... 11-20 01:01 (IAM says 11-19)
        (4, 4, "medium", world.prod, "erin", ("mfa-not-enabled",)),  # never signed in
        (5, 4, "medium", MANAGEMENT, "dora", ("mfa-not-enabled", "console-password-unused")),  # since 2025-06-01
        (6, 5, "low", MANAGEMENT, "auditor", ("mfa-not-enabled",)),  # a key in use
        (7, 5, "low", MANAGEMENT, "ci-bot", ("mfa-not-enabled",)),  # a key never used
    ]
    rows = {(p["account_id"], p["user_name"]): p for p in result.assessment.principals}
    seen = [
        (name, p["mfa_active"], p["last_signin_iam"], p["last_signin_logs"], p["signins_without_mfa"])
        for (account, name), p in sorted(rows.items())
        if account == MANAGEMENT
    ]
    at = datetime
    assert seen == [
        ("alice", False, at(2026, 11, 19, 8, 0, tzinfo=UTC), at(2026, 11, 20, 1, 1, 12, tzinfo=UTC), 1),
        ("auditor", False, None, None, 0),
        ("bob", True, None, at(2026, 11, 20, 0, 58, 52, tzinfo=UTC), 0),
        ("ci-bot", False, None, None, 0),
        ("dora", False, at(2025, 6, 1, 9, 0, tzinfo=UTC), None, 0),
        ("greg", False, None, at(2026, 11, 20, 18, 26, 10, tzinfo=UTC), 1),  # delivered twice, counted once
        ("root", False, at(2026, 11, 20, 0, 55, tzinfo=UTC), at(2026, 11, 20, 14, 0, 5, tzinfo=UTC), 1),
        ("victor", True, None, at(2026, 11, 20, 9, 29, 30, tzinfo=UTC), 1),  # a device, yet without it
    ]
    assert rows[(MANAGEMENT, "alice")]["last_signin"] == at(2026, 11, 20, 1, 1, 12, tzinfo=UTC)  # the later
    assert rows[(MANAGEMENT, "alice")]["last_ip_without_mfa"] == "203.0.113.10"
    assert rows[(MANAGEMENT, "alice")]["without_mfa_event_ids"] == ["c0de0001-0000-4000-8000-000000000001"]
    assert rows[(MANAGEMENT, "victor")]["mfa_kinds"] == ["hardware"]
    # denied: named, and the run is partial
    assert result.problems == [
        f"{world.dev} (dev): denied: access denied: sts:AssumeRole (AccessDenied: User: "
        f"arn:aws:iam::{MANAGEMENT}:user/auditor is not authorized to perform: sts:AssumeRole) on "
        f"arn:aws:iam::{world.dev}:role/{ROLE}"
    ]
    assert int(result.exit_code("high")) == 4
    # the findings are alerts: the one shape, fingerprints, stable first_seen
    findings = result.assessment.findings
    from analyzer.detect.shape import ALERT_COLUMNS

    assert tuple(findings.columns) == ALERT_COLUMNS
    assert findings.height == 9
    assert findings["first_seen"].unique().to_list() == [result.assessment.taken_at]


def test_an_allowlisted_principal_leaves_the_list(world: World, dataset: Path) -> None:
    result = run_posture(dataset, world.source(), since=SINCE, allowlist={"principals": ["ci-bot"]})
    assert result.assessment.suppressed == 1
    assert "ci-bot" not in [n["user_name"] for n in result.assessment.needs]


def test_history_gives_coverage_over_time_and_stable_first_seen(world: World, dataset: Path) -> None:
    first = run_posture(dataset, world.source(), since=SINCE)
    iam = aws_client(world.server, "iam", world.auditor)
    with pytest.raises(Exception, match="AccessDenied"):  # the auditor is read-only: enabling MFA is not its to do
        _mfa(iam, "greg")
    from s3_server import set_authorization

    set_authorization(world.server, False)
    _mfa(aws_client(world.server, "iam", in_account(world.server, MANAGEMENT)), "greg")
    set_authorization(world.server, True)
    second = run_posture(dataset, world.source(), since=SINCE)

    assert [n["user_name"] for n in second.assessment.needs if n["tier"] == 3] == ["alice"]  # greg has MFA now
    points = [
        (
            c["snapshot_id"],
            c["console_users"],
            c["console_users_with_mfa"],
            c["roots"],
            c["roots_with_mfa"],
            c["needs_mfa"],
        )
        for c in second.assessment.coverage
    ]
    assert points == [(first.assessment.snapshot_id, 6, 2, 2, 1, 7), (second.assessment.snapshot_id, 6, 3, 2, 1, 6)]
    before = {(f["detection_id"], f["user_name"]): f["first_seen"] for f in first.assessment.findings.to_dicts()}
    after = {(f["detection_id"], f["user_name"]): f["first_seen"] for f in second.assessment.findings.to_dicts()}
    assert ("mfa-not-enabled", "greg") not in after
    assert all(after[key] == before[key] == first.assessment.taken_at for key in after)  # the run's start
    assert all(f["last_seen"] == second.assessment.taken_at for f in second.assessment.findings.to_dicts())


def test_snapshots_are_committed_files_no_event_reader_sees(world: World, dataset: Path) -> None:
    import duckdb

    from analyzer import connect

    before = duckdb.sql(f"select count(*) from read_parquet('{dataset}/**/*.parquet')").fetchall()
    result = run_posture(dataset, world.source(), since=SINCE)
    assert result.stored is not None and result.stored.parent == dataset / "_analyzer" / "posture"
    assert result.stored.suffix == ".posture"
    assert [s.path for s in store.stored(dataset)] == [str(result.stored.relative_to(dataset))]
    table = pq.read_table(result.stored)
    assert table.num_rows == 13  # 3 accounts + 8 principals of the management account + 2 of prod
    assert duckdb.sql(f"select count(*) from read_parquet('{dataset}/**/*.parquet')").fetchall() == before
    con = connect(dataset)
    assert con.sql("select count(*) from events_all").fetchall() == before


# -- failures: one line each, never a traceback -----------------------------------------------------


def test_bad_credentials_are_one_line(
    world: World, dataset: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    result = runner.invoke(app, ["posture", "--data", str(dataset), "--endpoint-url", world.server.endpoint_url])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "error: credentials rejected calling sts:GetCallerIdentity (InvalidClientTokenId); set AWS_PROFILE or "
        "--profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    ]
    assert "Traceback" not in result.output


def test_an_unreachable_endpoint_is_one_line(
    tmp_path: Path, runner: CliRunner, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = runner.invoke(app, ["posture", "--data", str(tmp_path), "--endpoint-url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot reach AWS for sts:GetCallerIdentity (Could not connect to the endpoint URL")


def test_throttling_is_retried(world: World, dataset: Path) -> None:
    throttle = {"GenerateCredentialReport": 2, "GetAccountSummary": 2, "ListMFADevices": 1, "AssumeRole": 1}
    with ThrottleProxy(world.server.endpoint_url, throttle) as proxy:
        source = world.source()
        source.endpoint_url = proxy.endpoint_url
        result = run_posture(dataset, source, since=SINCE)
    assert dict(proxy.throttled) == throttle
    assert [a["status"] for a in result.assessment.accounts] == ["ok", "ok", "denied"]
    assert result.problems == [line for line in result.problems if "dev" in line]  # only the denied account


def test_throttling_that_never_ends_is_named(world: World, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with ThrottleProxy(world.server.endpoint_url, {"ListMFADevices": -1}) as proxy:
        source = world.source(organization=False, role_name=None)
        source.endpoint_url = proxy.endpoint_url
        result = run_posture(dataset, source, since=SINCE)
    assert result.problems[0] == (
        f"{MANAGEMENT}: user 'auditor': throttled after 2 attempts: iam:ListMFADevices "
        "(Throttling): MFA from the credential report only"
    )
    assert len(result.problems) == 7  # every user who can sign in or holds a key
    assert int(result.exit_code("high")) == 4
    with ThrottleProxy(world.server.endpoint_url, {"GenerateCredentialReport": -1}) as proxy:
        source = world.source(organization=False, role_name=None)
        source.endpoint_url = proxy.endpoint_url
        from analyzer.errors import AnalyzerError

        with pytest.raises(
            AnalyzerError,
            match=rf"^no account could be read \(failed\): {MANAGEMENT}: throttled "
            r"after 2 attempts: iam:GenerateCredentialReport \(Throttling\)$",
        ):
            run_posture(dataset, source, since=SINCE)


# -- the command ------------------------------------------------------------------------------------


def _run(runner: CliRunner, world: World, dataset: Path, *args: str) -> Any:
    return runner.invoke(
        app,
        [
            "posture",
            "--data",
            str(dataset),
            "--endpoint-url",
            world.server.endpoint_url,
            "--org",
            "--role-name",
            ROLE,
            "--since",
            SINCE,
            *args,
        ],
    )


def test_the_command_reads_the_organization(world: World, dataset: Path, runner: CliRunner) -> None:
    result = _run(runner, world, dataset)
    assert result.exit_code == 4, result.output  # dev was denied: 4 wins over 3
    out = result.stdout
    assert "Who needs MFA now (7)" in out
    table = out[out.index("Who needs MFA now") : out.index("Accounts")]
    names = [
        re.split(r"\s{2,}", line.strip())[3]
        for line in table.splitlines()
        if re.match(r"\s*\d+\s+(critical|high|medium|low)", line)
    ]
    assert names == ["root", "greg", "alice", "erin", "dora", "auditor", "ci-bot"]
    assert result.stderr.splitlines()[0].startswith(f"error: {world.dev} (dev): denied: access denied: sts:AssumeRole")
    assert "Traceback" not in result.output


def test_the_command_writes_every_format(world: World, dataset: Path, runner: CliRunner, tmp_path: Path) -> None:
    html = tmp_path / "posture.html"
    assert _run(runner, world, dataset, "-o", str(html)).exit_code == 4
    page = html.read_text()
    assert "Content-Security-Policy" in page and "script-src 'none'" in page and "<script" not in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page and "root users with MFA" in page
    offline = ["--offline", "--format"]
    lines = runner.invoke(app, ["posture", "--data", str(dataset), "--since", SINCE, *offline, "jsonl"]).stdout
    findings = [json.loads(line) for line in lines.splitlines()]
    assert [(f["detection_id"], f["user_name"]) for f in findings][:3] == [
        ("root-access-keys-present", "root"),
        ("root-without-mfa", "root"),
        ("mfa-not-enabled", "alice"),
    ]
    assert all(len(f["fingerprint"]) == 32 for f in findings) and len(findings) == 9
    document = json.loads(
        runner.invoke(app, ["posture", "--data", str(dataset), "--since", SINCE, *offline, "json"]).stdout
    )
    assert document["summary"] == {"accounts": 3, "accounts_read": 2, "needs_mfa": 7, "findings": 9, "suppressed": 0}
    assert [n["user_name"] for n in document["needs_mfa"]] == [
        "root",
        "greg",
        "alice",
        "erin",
        "dora",
        "auditor",
        "ci-bot",
    ]
    markdown = runner.invoke(app, ["posture", "--data", str(dataset), "--since", SINCE, *offline, "markdown"]).stdout
    assert markdown.startswith("# MFA posture") and "| 2 | high | 111122223333 (master) | greg |" in markdown
    assert len(store.stored(dataset)) == 1  # offline stores nothing


def test_usage_errors_are_one_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["posture", "--data", str(tmp_path), "--account", "12345"])
    assert (result.exit_code, result.stderr.strip()) == (2, "error: --account: '12345': an account id is 12 digits")
    result = runner.invoke(app, ["posture", "--data", str(tmp_path), "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and result.stderr.startswith("error: --output: ")
    result = runner.invoke(app, ["posture", "--data", str(tmp_path), "--offline"])
    assert (result.exit_code, result.stderr.strip()) == (
        1,
        f"error: {tmp_path}: no posture snapshot stored yet: run `analyzer posture` without --offline",
    )


# -- the nightly job's posture section --------------------------------------------------------------


def test_nightly_notifies_posture_findings_once(
    world: World, tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_notify import WebhookServer

    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "AWSLogs"
    config = tmp_path / "analyzer.toml"
    config.write_text(
        "\n".join(
            [
                "[nightly]",
                "workers = 1",
                "",
                "[notify.webhook]",
                'url_env = "POSTURE_HOOK"',
                "include_alerts = true",
                "max_alerts = 45",
                "",
                "[allowlist]",
                'principals = ["ci-bot"]',
                "",
                "[posture]",
                f'endpoint_url = "{world.server.endpoint_url}"',
                "organization = true",
                f'role_name = "{ROLE}"',
                'since = "3650d"',
                "",
            ]
        )
    )
    args = [
        "nightly",
        "--source",
        str(fixtures),
        "--data",
        str(tmp_path / "data"),
        "--report-dir",
        str(tmp_path / "reports"),
        "--config",
        str(config),
        "--since",
        "2026-11-19",
        "--until",
        "2026-11-22T00:00Z",
    ]
    with WebhookServer() as hook:
        monkeypatch.setenv("POSTURE_HOOK", hook.url)
        first = runner.invoke(app, args)
        sent = [(a["detection_id"], a["user_name"]) for a in hook.alerts()]
        second = runner.invoke(app, args)
        again = [(a["detection_id"], a["user_name"]) for a in hook.alerts()][len(sent) :]
    assert first.exit_code == 4, first.output  # dev is denied: the run is partial
    assert f"error: posture: {world.dev} (dev): denied: access denied: sts:AssumeRole" in first.stderr
    posture = sorted(
        pair
        for pair in sent
        if pair[0] in ("root-without-mfa", "root-access-keys-present", "mfa-not-enabled", "console-password-unused")
    )
    assert posture == [  # dora signed in within ten years: not dormant; ci-bot is allowlisted
        ("mfa-not-enabled", "alice"),
        ("mfa-not-enabled", "auditor"),
        ("mfa-not-enabled", "dora"),
        ("mfa-not-enabled", "erin"),
        ("mfa-not-enabled", "greg"),
        ("root-access-keys-present", "root"),
        ("root-without-mfa", "root"),
    ]
    assert ("console-login-without-mfa", "alice") in sent  # the detections' alerts go out beside them
    assert again == [] and second.exit_code == 4  # announced once: the next night has nothing new to say
    reports = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert reports == [
        "posture-2026-11-22T0000Z-2.html",
        "posture-2026-11-22T0000Z-2.md",
        "posture-2026-11-22T0000Z.html",
        "posture-2026-11-22T0000Z.md",
        "report-2026-11-22T0000Z-2.html",
        "report-2026-11-22T0000Z-2.md",
        "report-2026-11-22T0000Z.html",
        "report-2026-11-22T0000Z.md",
    ]
    assert len(store.stored(tmp_path / "data")) == 2


def test_nightly_without_posture_reads_no_iam(tmp_path: Path, runner: CliRunner, s3: S3Server) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "AWSLogs"
    result = runner.invoke(
        app,
        [
            "nightly",
            "--source",
            str(fixtures),
            "--data",
            str(tmp_path / "data"),
            "--since",
            "2026-11-19",
            "--until",
            "2026-11-22T00:00Z",
            "--quiet",
        ],
    )
    assert result.exit_code == 3, result.output
    assert store.stored(tmp_path / "data") == []
    assert not [p for p in (tmp_path / "data" / "_analyzer" / "reports").iterdir() if p.name.startswith("posture")]


def test_a_user_name_that_shifts_the_csv_is_refused_not_misread(world: World, dataset: Path) -> None:
    """IAM allows ',' in user names; moto writes the report without quoting them (in the name and the
    ARN), so the row has two values too many: a reader going by position would misread her columns. It
    is skipped and named instead (the other rows are read)."""
    from s3_server import set_authorization

    set_authorization(world.server, False)
    aws_client(world.server, "iam", in_account(world.server, MANAGEMENT)).create_user(UserName="mallory,true")
    set_authorization(world.server, True)
    result = run_posture(dataset, world.source(organization=False, role_name=None), since=SINCE)
    assert result.problems == [f"{MANAGEMENT}: credential report line 10: 24 values for 22 columns: skipped"]
    assert "mallory,true" not in [p["user_name"] for p in result.assessment.principals]
    assert len(result.assessment.principals) == 8
