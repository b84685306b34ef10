"""Posture without AWS: the credential report as untrusted CSV, snapshots committed into the dataset
(and a crash between the rename and the commit), history (first_seen, coverage), and the renderers
escaping hostile IAM names. The AWS side is tests/test_posture_aws.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.jobs.posture import run_posture
from analyzer.posture import credential_report, store
from analyzer.posture.credential_report import ReportError, parse
from analyzer.posture.model import AccessKey, AccountPosture, MfaDevice, Principal, mfa_kind, to_table
from analyzer.posture.render import render

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,"
    "access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)
ROOT = (
    "<root_account>,arn:aws:iam::111122223333:root,2015-03-01T10:00:00+00:00,not_supported,"
    "2026-11-02T08:15:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,"
    "false,N/A,false,N/A"
)
ALICE = (
    "alice,arn:aws:iam::111122223333:user/alice,2024-01-05T09:00:00+00:00,true,N/A,2024-01-05T09:00:00+00:00,"
    "N/A,false,true,2024-01-05T09:01:00+00:00,2026-11-30T17:00:00+00:00,eu-west-1,s3,false,N/A,N/A,N/A,N/A,"
    "false,N/A,false,N/A"
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# -- the credential report --------------------------------------------------------------------------


def test_the_report_rows_as_aws_writes_them() -> None:
    principals, problems = parse(f"{HEADER}\n{ALICE}\n{ROOT}\n".encode())
    assert problems == []
    assert principals == [
        Principal(
            "root",
            "arn:aws:iam::111122223333:root",
            is_root=True,
            user_created=at(2015, 3, 1, 10),
            password_enabled=None,
            password_last_used=at(2026, 11, 2, 8, 15),
            mfa_active=True,
        ),
        Principal(
            "alice",
            "arn:aws:iam::111122223333:user/alice",
            user_created=at(2024, 1, 5, 9),
            password_enabled=True,
            password_last_used_note="N/A",
            password_last_changed=at(2024, 1, 5, 9),
            mfa_active=False,
            access_keys=(AccessKey(1, True, at(2024, 1, 5, 9, 1), at(2026, 11, 30, 17), "eu-west-1", "s3"),),
        ),
    ]


def test_columns_in_any_order_and_unknown_ones_ignored() -> None:
    text = "mfa_active,color,user,password_enabled,arn\r\nfalse,blue,bob,true,arn:aws:iam::1:user/bob\r\n"
    (bob,), problems = parse(text)
    assert (bob.user_name, bob.password_enabled, bob.mfa_active, bob.access_keys, problems) == (
        "bob",
        True,
        False,
        (),
        [],
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "credential report is empty (no header line)"),
        (
            b"user,arn,mfa_active\nbob,a,false\n",
            "credential report lacks the column(s) password_enabled (header: 'user,arn,mfa_active')",
        ),
        (b"\xff\xfeuser", "credential report is not UTF-8 text (byte 0)"),
    ],
)
def test_a_report_that_cannot_be_read_is_one_line(content: bytes, message: str) -> None:
    with pytest.raises(ReportError) as caught:
        parse(content)
    assert str(caught.value) == message


def test_a_report_too_large_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credential_report, "MAX_REPORT_BYTES", 100)
    with pytest.raises(ReportError, match=r"^credential report of 1,000 bytes \(more than 100\): not read$"):
        parse(b"x" * 1000)


def test_odd_values_are_named_and_left_unknown() -> None:
    lines = [
        "user,arn,password_enabled,mfa_active,password_last_used",
        "ann,arn:aws:iam::1:user/ann,yes,false,2026-11-02T08:15:00Z",  # yes is no boolean
        "ben,arn:aws:iam::1:user/ben,true,false,last tuesday",
        "\x1b[31mred,arn:aws:iam::1:user/red,true,false,N/A",
        "ANN,arn:aws:iam::1:user/ANN,true,true,N/A",  # the same user: IAM names ignore case
        "cat,arn:aws:iam::1:user/cat,true",
        ",arn:aws:iam::1:user/,true,false,N/A",
    ]
    principals, problems = parse("\n".join(lines))
    assert [(p.user_name, p.password_enabled, p.password_last_used) for p in principals] == [
        ("ann", None, at(2026, 11, 2, 8, 15)),
        ("ben", True, None),
        ("\x1b[31mred", True, None),
    ]
    assert problems == [
        "line 2: password_enabled = 'yes' is neither true nor false",
        "line 3: password_last_used = 'last tuesday' is not a date",
        "line 5: user 'ANN' listed twice: the first line kept",
        "line 6: 3 values for 5 columns: skipped",
        "line 7: no user name: skipped",
    ]


def test_problems_are_capped() -> None:
    rows = "\n".join(f"u{i},a,maybe,false" for i in range(50))
    _, problems = parse(f"user,arn,password_enabled,mfa_active\n{rows}")
    assert len(problems) == credential_report.MAX_PROBLEMS + 1 and problems[-1] == "… and 30 more problem(s)"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "B",
                ",",
                '"',
                "\n",
                "\r",
                "\x00",
                "\x1b",
                "<",
                "=",
                "é",
                "true",
                "false",
                "N/A",
                "<root_account>",
                "2026-11-02T08:15:00Z",
            ]
        ),
        max_size=80,
    )
)
def test_any_text_is_principals_problems_or_one_named_error(pieces: list[str]) -> None:
    """Whatever the report holds: parsed rows and problem lines, or a ReportError, never anything else."""
    content = "user,arn,password_enabled,mfa_active\n" + "".join(pieces)
    try:
        principals, problems = parse(content)
    except ReportError:
        return
    assert all(isinstance(line, str) and "\n" not in line for line in problems)
    names = [p.user_name.lower() for p in principals if not p.is_root]
    assert len(names) == len(set(names))  # nothing doubled
    assert sum(p.is_root for p in principals) <= 1 and (
        not principals or principals[0].is_root or not any(p.is_root for p in principals)
    )


def test_mfa_kinds_from_serials() -> None:
    assert [
        mfa_kind(s)
        for s in (
            "arn:aws:iam::1:mfa/bob",
            "arn:aws:iam::1:u2f/user/bob/key-ABC",
            "GAHT12345678",
            "arn:aws:iam::1:other/x",
        )
    ] == ["virtual", "security-key", "hardware", "unknown"]


# -- snapshots in the dataset ---------------------------------------------------------------------


def snapshot(
    taken: datetime,
    *,
    alice_mfa: bool = False,
    prod_status: str = "ok",
    name: str = "alice",
    snapshot_id: str | None = None,
) -> object:
    people = (
        Principal("root", "arn:aws:iam::111122223333:root", is_root=True, mfa_active=True),
        Principal(
            name,
            f"arn:aws:iam::111122223333:user/{name}",
            user_created=at(2024, 1, 1),
            password_enabled=True,
            password_last_used=taken - timedelta(days=3),
            mfa_active=alice_mfa,
            mfa_devices=(MfaDevice("arn:aws:iam::111122223333:mfa/a", "virtual"),) if alice_mfa else (),
        ),
    )
    accounts = [
        AccountPosture("111122223333", "main", principals=people, root_mfa_enabled=True, root_access_keys_present=False)
    ]
    if prod_status == "ok":
        accounts.append(
            AccountPosture(
                "444455556666",
                "prod",
                principals=(Principal("root", "arn:aws:iam::444455556666:root", is_root=True, mfa_active=False),),
            )
        )
    else:
        accounts.append(
            AccountPosture("444455556666", "prod", status=prod_status, error="access denied: sts:AssumeRole")
        )
    return to_table(snapshot_id or f"s{taken:%m%d}", taken, accounts)


def test_snapshots_commit_into_the_manifest_and_stay_out_of_event_globs(fixtures_dataset: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "ctdata"
    shutil.copytree(fixtures_dataset, data)
    events = duckdb.sql(f"select count(*) from read_parquet('{data}/**/*.parquet')").fetchall()
    first = run_posture(data, table=snapshot(at(2026, 11, 20)), now=at(2026, 11, 20, 1))
    second = run_posture(data, table=snapshot(at(2026, 11, 21), alice_mfa=True), now=at(2026, 11, 21, 1))
    stored = store.stored(data)
    assert [s.path for s in stored] == [str(first.stored.relative_to(data)), str(second.stored.relative_to(data))]
    assert [s.day for s in stored] == ["2026-11-20", "2026-11-21"]
    import sqlite3

    with sqlite3.connect(data / "_analyzer" / "manifest.sqlite") as db:
        kinds = db.execute("select kind, count(*) from files where retired_by is null group by kind").fetchall()
    assert dict(kinds)["posture"] == 2
    assert duckdb.sql(f"select count(*) from read_parquet('{data}/**/*.parquet')").fetchall() == events
    assert not list(data.glob("**/*.parquet.staged"))


def test_a_snapshot_whose_commit_fails_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.store.manifest import Manifest

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Manifest, "commit_batch", broken)
    with pytest.raises(OSError, match="disk full"):
        store.save(tmp_path, snapshot(at(2026, 11, 20)))
    assert store.stored(tmp_path) == [] and not list((tmp_path / "_analyzer" / "posture").glob("*"))


@pytest.mark.parametrize("point", ["posture.moved", "posture.committed"])
def test_a_kill_at_the_commit_points_leaves_whole_snapshots_only(tmp_path: Path, point: str) -> None:
    """A real SIGKILL after the rename (before the commit) or after the commit: a reader lists the
    snapshot only in the second case, and the next writer removes the uncommitted file."""
    code = (
        "import sys; from datetime import datetime, UTC; sys.path.insert(0, 'tests');"
        "from test_posture_report import snapshot; from analyzer.posture import store;"
        f"store.save({str(tmp_path)!r}, snapshot(datetime(2026, 11, 20, tzinfo=UTC)))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ANALYZER_CRASH_AT": point},
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.returncode == -signal.SIGKILL
    on_disk = list((tmp_path / "_analyzer" / "posture").glob("*.posture"))
    assert len(on_disk) == 1  # renamed into place either way
    listed = store.stored(tmp_path)
    assert len(listed) == (1 if point == "posture.committed" else 0)
    run_posture(tmp_path, table=snapshot(at(2026, 11, 21)), now=at(2026, 11, 21, 1))  # the next writer
    files = sorted(p.name for p in (tmp_path / "_analyzer" / "posture").glob("*.posture"))
    assert files == sorted(Path(s.path).name for s in store.stored(tmp_path))
    assert len(files) == (2 if point == "posture.committed" else 1)


def test_first_seen_is_the_start_of_the_unbroken_run(tmp_path: Path) -> None:
    days = [at(2026, 11, d) for d in (1, 2, 3, 4, 5)]
    run_posture(tmp_path, table=snapshot(days[0]), now=days[0])  # alice without MFA
    run_posture(tmp_path, table=snapshot(days[1], alice_mfa=True), now=days[1])  # with: the run breaks
    run_posture(tmp_path, table=snapshot(days[2]), now=days[2])  # without again: a new run starts
    run_posture(tmp_path, table=snapshot(days[3], prod_status="denied"), now=days[3])  # prod unread
    last = run_posture(tmp_path, table=snapshot(days[4]), now=days[4])
    started = {
        (f["account_id"], f["detection_id"], f["user_name"]): f["first_seen"]
        for f in last.assessment.findings.to_dicts()
    }
    assert started == {
        ("111122223333", "mfa-not-enabled", "alice"): days[2],
        ("444455556666", "root-without-mfa", "root"): days[0],  # a denied snapshot does not break its run
    }
    coverage = [
        (c["accounts"], c["console_users_with_mfa"], c["roots_with_mfa"], c["needs_mfa"])
        for c in last.assessment.coverage
    ]
    assert coverage == [(2, 0, 1, 2), (2, 1, 1, 1), (2, 0, 1, 2), (1, 0, 1, 1), (2, 0, 1, 2)]


def test_a_rerun_of_the_same_findings_has_the_same_fingerprints(tmp_path: Path) -> None:
    from analyzer.alerts.records import fingerprints

    one = run_posture(tmp_path, table=snapshot(at(2026, 11, 1)), now=at(2026, 11, 1))
    two = run_posture(tmp_path, table=snapshot(at(2026, 11, 2)), now=at(2026, 11, 2))
    assert fingerprints(one.assessment.findings) == fingerprints(two.assessment.findings)


# -- rendering hostile names ------------------------------------------------------------------------

HOSTILE = "<img src=x onerror=alert(1)>|`*_[x](http://evil)\x1b]8;;http://evil\x07=HYPERLINK(1)"


def test_hostile_names_are_escaped_for_every_consumer(tmp_path: Path) -> None:
    result = run_posture(tmp_path, table=snapshot(at(2026, 11, 20), name=HOSTILE), now=at(2026, 11, 20, 1))
    html = render(result, "html")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "\x1b" not in html
    assert "script-src 'none'" in html and "<script" not in html
    markdown = render(result, "markdown")
    assert "<img" not in markdown and "\x1b" not in markdown and "\\|" in markdown and "http\\://evil" in markdown
    table = render(result, "table", width=400)
    assert "\x1b" not in table and "\x07" not in table
    document = json.loads(render(result, "json"))
    assert HOSTILE in [p["user_name"] for p in document["principals"]]  # exact in JSON
    assert "\\u001b" in render(result, "jsonl")  # and escaped there: no raw control character
    (line,) = [json.loads(x) for x in render(result, "jsonl").splitlines() if HOSTILE[:4] in x]
    assert line["user_name"] == HOSTILE and line["detection_id"] == "mfa-not-enabled"


def test_the_coverage_chart_has_a_point_per_day(tmp_path: Path) -> None:
    for day, mfa in ((1, False), (1, False), (2, True), (4, False)):
        result = run_posture(
            tmp_path,
            table=snapshot(
                at(2026, 11, day, 12), alice_mfa=mfa, snapshot_id=f"x{day}{mfa}{len(store.stored(tmp_path))}"
            ),
            now=at(2026, 11, day, 13),
        )
    html = render(result, "html")
    titles = [t for t in html.split("<title>")[1:] if "% console users with MFA" in t]
    assert [t.split("<")[0] for t in titles] == [
        "2026-11-01: 0% console users with MFA",
        "2026-11-02: 100% console users with MFA",
        "2026-11-04: 0% console users with MFA",
    ]


# -- the history's vectorised rules agree with judge() ------------------------------------------------


def reference_conditions(table: object, window: timedelta) -> set[tuple[str, str, str, str]]:
    """What judge() says of every principal of every snapshot: the oracle for assess.conditions."""
    from analyzer.posture.assess import judge, principal_key

    rows = table.to_pylist()  # type: ignore[attr-defined]
    accounts = {(r["snapshot_id"], r["account_id"]): r for r in rows if r["record"] == "account"}
    held = set()
    for p in (r for r in rows if r["record"] == "principal"):
        since = p["taken_at"] - window
        keys = [k for k in p["access_keys"] or [] if k["active"]]
        root = bool(p["is_root"])
        summary = accounts[(p["snapshot_id"], p["account_id"])]["root_access_keys_present"]
        row = {
            "is_root": root,
            "mfa_active": p["mfa_active"],
            "console_password": None if root else p["password_enabled"],
            "recent": bool(p["password_last_used"] and p["password_last_used"] >= since),
            "last_signin": p["password_last_used"],
            "password_last_changed": p["password_last_changed"],
            "user_created": p["user_created"],
            "keys_active": len(keys),
            "keys_last_used": None,
            "signins_without_mfa": 0,
            "root_access_keys": (bool(keys) or bool(summary)) if root else None,
        }
        for detection, *_ in judge(row, since):
            held.add(
                (p["snapshot_id"], p["account_id"], principal_key(p["account_id"], p["user_name"], root), detection)
            )
    return held


optional_time = st.none() | st.integers(0, 400).map(lambda d: at(2026, 1, 1) + timedelta(days=d))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from(["Ann", "bob", "ann"]),
            st.none() | st.booleans(),
            st.none() | st.booleans(),
            optional_time,
            optional_time,
            optional_time,
            st.booleans(),
            st.none() | st.booleans(),
        ),
        max_size=12,
    ),
    st.integers(1, 200),
)
def test_the_vectorised_history_rules_agree_with_judge(people: list[tuple], days: int) -> None:
    from analyzer.posture.assess import conditions

    principals = []
    seen = set()
    for root, name, password, mfa, used, changed, created, key, _summary in people:
        name = "root" if root else name
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        principals.append(
            Principal(
                name,
                None,
                is_root=root,
                password_enabled=password,
                mfa_active=mfa,
                password_last_used=used,
                password_last_changed=changed,
                user_created=created,
                access_keys=(AccessKey(1, True),) if key else (),
            )
        )
    summary = any(p[8] for p in people)
    table = to_table(
        "s1",
        at(2026, 12, 1),
        [AccountPosture("111122223333", principals=tuple(principals), root_access_keys_present=summary)],
    )
    window = timedelta(days=days)
    vectorised = {
        tuple(r)
        for r in conditions(table, window).select("snapshot_id", "account_id", "key", "detection_id").iter_rows()
    }
    assert vectorised == reference_conditions(table, window)


def test_the_cli_starts_without_importing_the_posture_machinery() -> None:
    """`analyzer posture --help` (and every other command's start) needs neither boto3 nor Arrow."""
    script = (
        "import sys; from analyzer.cli import app\n"
        "try:\n    app(['posture', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('boto3', 'pyarrow', 'polars', 'duckdb', 'analyzer.posture.model') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]"
