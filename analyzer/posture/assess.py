"""From a snapshot and the sign-ins in the logs to what people act on.

* **principals**: per root user and IAM user, IAM's posture (console password, MFA and its kind,
  access keys) beside the console sign-ins the CloudTrail dataset holds (the last one, and those
  without MFA in the window), and the later of IAM's and the logs' last sign-in;
* **findings** in the alert shape (:data:`analyzer.detect.shape.ALERT_SCHEMA`), so allowlists,
  the alert state and the notifiers treat them like any detection's alerts: :data:`RULES`;
* **who needs MFA now**, ranked: root users without MFA first, then root access keys, console
  users without MFA who signed in within the window, dormant console passwords of users without
  MFA, and access keys of users without MFA (:data:`TIERS`);
* **coverage over time**, one point per stored snapshot.

A finding's ``first_seen`` is when the stored snapshots first showed it, in its latest unbroken run
(an account not read in a snapshot does not break a run): stable from run to run, so the nightly
alert state announces a finding once, and again only when its severity rises. ``last_seen`` is the
snapshot's time; ``count`` is 1 (a finding is a state, not events: the sign-ins are in ``details``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from analyzer.detect.shape import ALERT_SCHEMA, severity_rank
from analyzer.posture.model import ACCOUNT, OK, PRINCIPAL, ROOT_NAME

ROOT_WITHOUT_MFA = "root-without-mfa"
ROOT_ACCESS_KEYS = "root-access-keys-present"
MFA_NOT_ENABLED = "mfa-not-enabled"
PASSWORD_UNUSED = "console-password-unused"  # noqa: S105 - a detection id, not a password


@dataclass(frozen=True)
class Rule:
    detection_id: str
    title: str
    needs_mfa: bool  # part of "who needs MFA now" (and of exit code 3)


RULES: dict[str, Rule] = {
    r.detection_id: r
    for r in (
        Rule(ROOT_WITHOUT_MFA, "Root user without MFA", True),
        Rule(ROOT_ACCESS_KEYS, "Root user has access keys (they work without MFA)", True),
        Rule(MFA_NOT_ENABLED, "IAM user without MFA", True),
        Rule(PASSWORD_UNUSED, "Console password not used in the window", False),
    )
}

#: The ranked list's tiers, most urgent first: (tier, what it is).
TIERS: dict[int, str] = {
    1: "root user without MFA",
    2: "root user with access keys",
    3: "console sign-ins without MFA in the window",
    4: "console password, no MFA, no sign-in in the window",
    5: "access keys, no MFA",
}
#: Sign-in event ids kept in a finding's details (the newest first).
EVENT_IDS_KEPT = 20

SIGNIN_COLUMNS = {
    "principal_key": pl.String(),
    "last_signin_logs": pl.Datetime("us", "UTC"),
    "last_with_mfa": pl.Datetime("us", "UTC"),
    "last_without_mfa": pl.Datetime("us", "UTC"),
    "signins": pl.Int64(),
    "without_mfa": pl.Int64(),
    "last_ip_without_mfa": pl.String(),
    "without_mfa_event_ids": pl.List(pl.String()),
}


def principal_key(account_id: str | None, user_name: str | None, is_root: bool) -> str:
    """``<account>/<lower-cased user name>`` or ``<account>/#root``: the key the ``console_signins``
    view gives every sign-in (IAM user names are unique regardless of case)."""
    return f"{account_id or ''}/#root" if is_root else f"{account_id or ''}/{(user_name or '').lower()}"


def empty_signins() -> pl.DataFrame:
    return pl.DataFrame(schema=SIGNIN_COLUMNS)


def _later(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _rows(table: pa.Table, record: str) -> list[dict[str, Any]]:
    return [row for row in table.to_pylist() if row["record"] == record]


@dataclass(frozen=True)
class Assessment:
    """Everything a posture report shows (see the module docstring)."""

    snapshot_id: str
    taken_at: datetime
    since: datetime
    accounts: list[dict[str, Any]]
    principals: list[dict[str, Any]]
    findings: pl.DataFrame
    suppressed: int
    needs: list[dict[str, Any]]
    coverage: list[dict[str, Any]]

    @property
    def accounts_read(self) -> int:
        return sum(1 for a in self.accounts if a["status"] == OK)

    def failing(self, fail_on: str) -> list[dict[str, Any]]:
        """Entries of the ranked list at or above ``fail_on`` (what exit code 3 is about)."""
        bar = severity_rank(fail_on)
        return [n for n in self.needs if severity_rank(n["severity"]) >= bar]


def principals(table: pa.Table, signins: pl.DataFrame, since: datetime) -> list[dict[str, Any]]:
    """One row per principal of the snapshot's readable accounts, joined with the logs' sign-ins."""
    accounts = {a["account_id"]: a for a in _rows(table, ACCOUNT)}
    logs = {row["principal_key"]: row for row in signins.iter_rows(named=True)}
    rows = []
    for p in _rows(table, PRINCIPAL):
        account = accounts.get(p["account_id"], {})
        key = principal_key(p["account_id"], p["user_name"], bool(p["is_root"]))
        seen = logs.get(key, {})
        keys = [k for k in p["access_keys"] or [] if k["active"]]
        devices = p["mfa_devices"] or []
        last_iam = p["password_last_used"]
        last_logs = seen.get("last_signin_logs")
        is_root = bool(p["is_root"])
        rows.append(
            {
                "account_id": p["account_id"],
                "account_name": p["account_name"],
                "is_root": is_root,
                "user_name": ROOT_NAME if is_root else p["user_name"],
                "arn": p["arn"],
                "principal": p["arn"] or p["user_name"],
                "key": key,
                "console_password": None if is_root else p["password_enabled"],
                "mfa_active": p["mfa_active"],
                "mfa_kinds": sorted({d["kind"] for d in devices}),
                "mfa_enabled_at": min((d["enabled_at"] for d in devices if d["enabled_at"] is not None), default=None),
                "last_signin_iam": last_iam,
                "last_signin_logs": last_logs,
                "last_signin": _later(last_iam, last_logs),
                "signins": int(seen.get("signins") or 0),
                "signins_without_mfa": int(seen.get("without_mfa") or 0),
                "last_without_mfa": seen.get("last_without_mfa"),
                "last_ip_without_mfa": seen.get("last_ip_without_mfa"),
                "without_mfa_event_ids": list(seen.get("without_mfa_event_ids") or [])[:EVENT_IDS_KEPT],
                "keys_active": len(keys),
                "keys_oldest": min((k["last_rotated"] for k in keys if k["last_rotated"] is not None), default=None),
                "keys_last_used": max((k["last_used"] for k in keys if k["last_used"] is not None), default=None),
                "keys_last_service": next(
                    (
                        k["last_used_service"]
                        for k in sorted(
                            (k for k in keys if k["last_used"] is not None), key=lambda k: k["last_used"], reverse=True
                        )
                    ),
                    None,
                ),
                "root_access_keys": (bool(keys) or bool(account.get("root_access_keys_present"))) if is_root else None,
                "user_created": p["user_created"],
                "password_last_changed": p["password_last_changed"],
                "recent": bool(_later(last_iam, last_logs) and _later(last_iam, last_logs) >= since),  # type: ignore[operator]
            }
        )
    rows.sort(key=lambda r: (r["account_id"] or "", not r["is_root"], (r["user_name"] or "").lower()))
    return rows


def _dormant(row: Mapping[str, Any], since: datetime) -> bool:
    """A console password not used since ``since`` (never used: set before it)."""
    if not row["console_password"] or row["recent"]:
        return False
    reference = row["last_signin"] or row["password_last_changed"] or row["user_created"]
    return reference is None or reference < since


def _day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "never"


def judge(row: Mapping[str, Any], since: datetime) -> list[tuple[str, str, int, str]]:
    """The findings one principal raises: (detection id, severity, tier or 0, why), most urgent first."""
    found: list[tuple[str, str, int, str]] = []
    mfa = bool(row["mfa_active"])
    if row["is_root"]:
        if not mfa:
            found.append((ROOT_WITHOUT_MFA, "critical", 1, "no MFA"))
        if row["root_access_keys"]:
            found.append((ROOT_ACCESS_KEYS, "critical", 2, "access keys present"))
        return found
    dormant = _dormant(row, since)
    if not mfa and row["console_password"]:
        if row["recent"]:
            count = row["signins_without_mfa"]
            why = (
                f"signed in {count} time(s) without MFA since {_day(since)}"
                if count
                else f"console password, last signed in {_day(row['last_signin'])}"
            )
            found.append((MFA_NOT_ENABLED, "high", 3, why))
        else:
            last = row["last_signin"]
            found.append(
                (
                    MFA_NOT_ENABLED,
                    "medium",
                    4,
                    f"console password, no sign-in since {_day(since)} (last: {_day(last)})"
                    if last
                    else "console password, never used to sign in",
                )
            )
    elif not mfa and row["keys_active"]:
        used = row["keys_last_used"]
        found.append((MFA_NOT_ENABLED, "low", 5, f"{row['keys_active']} active access key(s), last used {_day(used)}"))
    if dormant:
        found.append(
            (
                PASSWORD_UNUSED,
                "low" if mfa else "medium",
                0,
                f"console password unused since {_day(row['last_signin'] or row['password_last_changed'])}",
            )
        )
    return found


ACTIONS = {
    1: "enable MFA on the root user",
    2: "delete the root user's access keys",
    3: "enable MFA",
    4: "enable MFA, or remove the console password",
    5: "enable MFA, or use a role instead of keys",
}


def _details(row: Mapping[str, Any], why: str, snapshot_id: str) -> str:
    details = {
        "why": why,
        "account_name": row["account_name"],
        "console_password": row["console_password"],
        "mfa_active": row["mfa_active"],
        "mfa_kinds": row["mfa_kinds"],
        "last_signin_iam": row["last_signin_iam"],
        "last_signin_logs": row["last_signin_logs"],
        "signins_without_mfa": row["signins_without_mfa"],
        "last_without_mfa": row["last_without_mfa"],
        "last_ip_without_mfa": row["last_ip_without_mfa"],
        "signin_event_ids": row["without_mfa_event_ids"],
        "access_keys_active": row["keys_active"],
        "access_keys_last_used": row["keys_last_used"],
        "access_keys_last_service": row["keys_last_service"],
        "snapshot_id": snapshot_id,
    }
    return json.dumps({k: v for k, v in details.items() if v not in (None, [], "")}, default=_iso, sort_keys=False)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def conditions(table: pa.Table, window: timedelta) -> pl.DataFrame:
    """(snapshot_id, taken_at, account_id, key, detection_id) of what each snapshot in ``table`` shows,
    judged from IAM's view alone (the logs are not part of the history), for ``first_seen``: the
    rules of :func:`judge`, vectorised (a year of nightly snapshots is hundreds of thousands of rows;
    tests/test_posture_report.py checks that both agree)."""
    columns = ["snapshot_id", "taken_at", "account_id", "key", "detection_id"]
    if table.num_rows == 0:
        return pl.DataFrame(schema={c: (pl.Datetime("us", "UTC") if c == "taken_at" else pl.String()) for c in columns})
    frame = pl.from_arrow(
        table.select(
            [
                "record",
                "snapshot_id",
                "taken_at",
                "account_id",
                "root_access_keys_present",
                "is_root",
                "user_name",
                "password_enabled",
                "password_last_used",
                "password_last_changed",
                "user_created",
                "mfa_active",
                "access_keys",
            ]
        )
    )
    assert isinstance(frame, pl.DataFrame)
    accounts = frame.filter(pl.col("record") == ACCOUNT).select(
        "snapshot_id", "account_id", pl.col("root_access_keys_present").fill_null(False).alias("summary_keys")
    )
    people = frame.filter(pl.col("record") == PRINCIPAL).join(accounts, on=["snapshot_id", "account_id"], how="left")
    root = pl.col("is_root").fill_null(False)
    mfa = pl.col("mfa_active").fill_null(False)
    console = pl.col("password_enabled").fill_null(False) & ~root
    keys = (
        pl.col("access_keys")
        .list.eval(pl.element().struct.field("active").fill_null(False))
        .list.any()
        .fill_null(False)
    )
    since = pl.col("taken_at") - pl.lit(window)
    recent = pl.col("password_last_used").is_not_null() & (pl.col("password_last_used") >= since)
    reference = pl.coalesce("password_last_used", "password_last_changed", "user_created")
    dormant = console & ~recent & (reference.is_null() | (reference < since))
    judged = people.select(
        "snapshot_id",
        "taken_at",
        "account_id",
        pl.when(root)
        .then(pl.col("account_id") + "/#root")
        .otherwise(pl.col("account_id") + "/" + pl.col("user_name").str.to_lowercase())
        .alias("key"),
        (root & ~mfa).alias(ROOT_WITHOUT_MFA),
        (root & (keys | pl.col("summary_keys").fill_null(False))).alias(ROOT_ACCESS_KEYS),
        (~root & ~mfa & (console | keys)).alias(MFA_NOT_ENABLED),
        dormant.alias(PASSWORD_UNUSED),
    )
    held = judged.unpivot(
        index=["snapshot_id", "taken_at", "account_id", "key"], variable_name="detection_id", value_name="held"
    )
    return held.filter(pl.col("held")).select(columns)


def first_seen(history: pa.Table, window: timedelta, current: str) -> dict[tuple[str, str, str], datetime]:
    """For each (account, principal key, detection) the current snapshot shows: the start of its
    latest unbroken run through the stored snapshots that read its account."""
    if history.num_rows == 0:
        return {}
    held = conditions(history, window)
    frame = pl.from_arrow(history.select(["record", "snapshot_id", "taken_at", "account_id", "status"]))
    assert isinstance(frame, pl.DataFrame)
    reads = (
        frame.filter((pl.col("record") == ACCOUNT) & (pl.col("status") == OK))
        .sort("taken_at", "snapshot_id")
        .with_columns(pl.int_range(pl.len()).over("account_id").alias("read"))
    )  # the account's nth read
    group = ["account_id", "key", "detection_id"]
    runs = (
        held.join(reads.select("snapshot_id", "account_id", "read"), on=["snapshot_id", "account_id"])
        .sort([*group, "read"])
        .with_columns((pl.col("read") - pl.int_range(pl.len()).over(group)).alias("run"))
    )  # consecutive: one run
    now = runs.filter(pl.col("snapshot_id") == current).select([*group, "run"])
    starts = runs.join(now, on=[*group, "run"]).group_by(group).agg(pl.col("taken_at").min())
    return {(a, k, d): t for a, k, d, t in starts.iter_rows()}


def findings(
    rows: Iterable[Mapping[str, Any]],
    since: datetime,
    taken_at: datetime,
    snapshot_id: str,
    started: Mapping[tuple[str, str, str], datetime] | None = None,
) -> pl.DataFrame:
    """Every principal's findings in the alert shape (unsuppressed, unsorted)."""
    started = started or {}
    out = []
    for row in rows:
        for detection, severity, tier, why in judge(row, since):
            out.append(
                {
                    "detection_id": detection,
                    "severity": severity,
                    "title": RULES[detection].title,
                    "account_id": row["account_id"],
                    "region": None,
                    "principal": row["principal"],
                    "user_name": row["user_name"],
                    "source_ip": None,
                    "user_agent": None,
                    "first_seen": started.get((row["account_id"], row["key"], detection), taken_at),
                    "last_seen": taken_at,
                    "count": 1,
                    "event_ids": [],
                    "details": _details(row, why, snapshot_id),
                    "_tier": tier,
                    "_key": row["key"],
                }
            )
    schema = {**ALERT_SCHEMA, "_tier": pl.Int64(), "_key": pl.String()}
    return pl.DataFrame(out, schema=schema) if out else pl.DataFrame(schema=schema)


def ranked(frame: pl.DataFrame, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Who needs MFA now: one entry per principal with a (not suppressed) needs-MFA finding, at its
    most urgent tier; within a tier, the most exposed first (most sign-ins without MFA, the latest
    sign-in, the longest-dormant password, the most recently used keys)."""
    by_key = {r["key"]: r for r in rows}
    entries: dict[str, dict[str, Any]] = {}
    found = list(frame.iter_rows(named=True))
    for f in sorted(found, key=lambda f: not f["_tier"]):  # a finding without a tier adds to an entry, never makes one
        if not f["_tier"]:
            if f["_key"] in entries:
                entries[f["_key"]]["why"].append(json.loads(f["details"])["why"])
                entries[f["_key"]]["detections"].append(f["detection_id"])
            continue
        row = by_key[f["_key"]]
        why = json.loads(f["details"])["why"]
        entry = entries.get(f["_key"])
        if entry is None:
            entries[f["_key"]] = {
                "tier": f["_tier"],
                "severity": f["severity"],
                "account_id": row["account_id"],
                "account_name": row["account_name"],
                "principal": row["principal"],
                "user_name": row["user_name"],
                "why": [why],
                "action": ACTIONS[f["_tier"]],
                "detections": [f["detection_id"]],
                "last_signin": row["last_signin"],
                "signins_without_mfa": row["signins_without_mfa"],
                "keys_active": row["keys_active"],
                "keys_last_used": row["keys_last_used"],
                "mfa_kinds": row["mfa_kinds"],
            }
            continue
        entry["why"].append(why)
        entry["detections"].append(f["detection_id"])
        if f["_tier"] < entry["tier"]:
            entry["tier"], entry["action"] = f["_tier"], ACTIONS[f["_tier"]]
        if severity_rank(f["severity"]) > severity_rank(entry["severity"]):
            entry["severity"] = f["severity"]

    def order(e: dict[str, Any]) -> tuple[Any, ...]:
        tier = e["tier"]
        stamp = e["last_signin"].timestamp() if e["last_signin"] else float("-inf")
        used = e["keys_last_used"].timestamp() if e["keys_last_used"] else float("-inf")
        within = {3: (-e["signins_without_mfa"], -stamp), 4: (stamp,), 5: (-used,)}.get(tier, ())
        return (tier, *within, e["account_id"] or "", (e["user_name"] or "").lower())

    listed = sorted(entries.values(), key=order)
    for rank, entry in enumerate(listed, 1):
        entry["rank"] = rank
        entry["tier_name"] = TIERS[entry["tier"]]
    return listed


def coverage(history: pa.Table) -> list[dict[str, Any]]:
    """MFA coverage per snapshot, oldest first: console users (and root users) with MFA of all, and
    how many principals needed MFA. Only the accounts a snapshot read count."""
    if history.num_rows == 0:
        return []
    frame = pl.from_arrow(
        history.select(
            ["record", "snapshot_id", "taken_at", "status", "is_root", "password_enabled", "mfa_active", "access_keys"]
        )
    )
    assert isinstance(frame, pl.DataFrame)
    accounts = (
        frame.filter(pl.col("record") == ACCOUNT)
        .group_by("snapshot_id", "taken_at")
        .agg((pl.col("status") == OK).sum().alias("accounts"), pl.len().alias("accounts_tried"))
    )
    people = frame.filter(pl.col("record") == PRINCIPAL).with_columns(
        pl.col("mfa_active").fill_null(False).alias("mfa"),
        pl.col("access_keys")
        .list.eval(pl.element().struct.field("active").fill_null(False))
        .list.any()
        .fill_null(False)
        .alias("keys"),
        pl.col("is_root").fill_null(False).alias("root"),
        pl.col("password_enabled").fill_null(False).alias("console"),
    )
    counts = people.group_by("snapshot_id").agg(
        (~pl.col("root") & pl.col("console")).sum().alias("console_users"),
        (~pl.col("root") & pl.col("console") & pl.col("mfa")).sum().alias("console_users_with_mfa"),
        pl.col("root").sum().alias("roots"),
        (pl.col("root") & pl.col("mfa")).sum().alias("roots_with_mfa"),
        (~pl.col("root") & ~pl.col("console") & pl.col("keys") & ~pl.col("mfa")).sum().alias("key_users_without_mfa"),
        (~pl.col("mfa") & (pl.col("root") | pl.col("console") | pl.col("keys"))).sum().alias("needs_mfa"),
    )
    joined = accounts.join(counts, on="snapshot_id", how="left").sort("taken_at", "snapshot_id")
    out = []
    for row in joined.iter_rows(named=True):
        row = {k: (0 if v is None and k not in ("taken_at", "snapshot_id") else v) for k, v in row.items()}
        people_total = row["console_users"] + row["roots"]
        covered = row["console_users_with_mfa"] + row["roots_with_mfa"]
        row["coverage"] = round(100.0 * covered / people_total, 1) if people_total else None
        out.append(row)
    return out


def account_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The snapshot's accounts, as read or not, with their principals counted."""
    people = _rows(table, PRINCIPAL)
    out = []
    for a in _rows(table, ACCOUNT):
        mine = [p for p in people if p["account_id"] == a["account_id"]]
        out.append(
            {
                "account_id": a["account_id"],
                "account_name": a["account_name"],
                "status": a["status"],
                "error": a["error"],
                "problems": list(a["problems"] or []),
                "report_generated_at": a["report_generated_at"],
                "root_mfa_enabled": a["root_mfa_enabled"],
                "root_access_keys_present": a["root_access_keys_present"],
                "password_policy": json.loads(a["password_policy"]) if a["password_policy"] else None,
                "users": sum(1 for p in mine if not p["is_root"]),
                "console_users": sum(1 for p in mine if not p["is_root"] and p["password_enabled"]),
            }
        )
    return out
