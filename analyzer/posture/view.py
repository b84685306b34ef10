"""How posture values read in every report for people (the renderers escape them for their consumer).

Machine formats (json, jsonl) keep the values as they are; these helpers only word them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analyzer.posture.model import UNKNOWN_KIND

if TYPE_CHECKING:
    from analyzer.jobs.posture import PostureResult


def day(value: datetime | None, never: str = "never") -> str:
    return f"{value:%Y-%m-%d}" if value is not None else never


def minute(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else ""


def who(row: Mapping[str, Any]) -> str:
    """``root`` or the user name (the account is its own column)."""
    return str(row.get("user_name") or row.get("principal") or "?")


def mfa(row: Mapping[str, Any]) -> str:
    """``virtual``, ``security-key, virtual``, ``yes (not virtual)``, ``no`` or ``unknown``."""
    if row.get("mfa_active") is None:
        return "unknown"
    if not row["mfa_active"]:
        return "no"
    kinds = [k for k in row.get("mfa_kinds") or [] if k != UNKNOWN_KIND]
    return ", ".join(kinds) if kinds else "yes (not virtual)"  # IAM lists only a root user's virtual device


def console(row: Mapping[str, Any]) -> str:
    if row.get("is_root"):
        return "n/a"
    value = row.get("console_password")
    return "unknown" if value is None else ("yes" if value else "no")


def keys(row: Mapping[str, Any]) -> str:
    """``2 active, oldest 2025-01-04, used 2026-11-30 (s3)``, or ``none``."""
    if row.get("is_root"):
        return "present" if row.get("root_access_keys") else "none"
    count = row.get("keys_active") or 0
    if not count:
        return "none"
    text = f"{count} active, oldest {day(row.get('keys_oldest'), '?')}"
    used = row.get("keys_last_used")
    text += f", used {day(used)}" if used else ", never used"
    if used and row.get("keys_last_service"):
        text += f" ({row['keys_last_service']})"
    return text


def without_mfa(row: Mapping[str, Any]) -> str:
    count = row.get("signins_without_mfa") or 0
    return f"{count} (last {day(row.get('last_without_mfa'))})" if count else "0"


def account(row: Mapping[str, Any]) -> str:
    name = row.get("account_name")
    return f"{row.get('account_id')} ({name})" if name else str(row.get("account_id") or "")


def policy(value: Mapping[str, Any] | None) -> str:
    """``min 14, symbols, numbers, upper, lower, reuse 24, max age 90d`` or ``none set (AWS default)``."""
    if not value:
        return "none set (AWS default)"
    parts = [f"min {value.get('MinimumPasswordLength', '?')}"]
    for key, word in (
        ("RequireSymbols", "symbols"),
        ("RequireNumbers", "numbers"),
        ("RequireUppercaseCharacters", "upper"),
        ("RequireLowercaseCharacters", "lower"),
    ):
        if value.get(key):
            parts.append(word)
    if value.get("PasswordReusePrevention"):
        parts.append(f"reuse {value['PasswordReusePrevention']}")
    if value.get("MaxPasswordAge"):
        parts.append(f"max age {value['MaxPasswordAge']}d")
    return ", ".join(parts)


def status(row: Mapping[str, Any]) -> str:
    problems = len(row.get("problems") or [])
    return row["status"] + (f" ({problems} problem(s))" if problems else "")


def headline(result: PostureResult) -> list[str]:
    """The lines every report opens with: what was read, when, the window, what the logs could say."""
    a = result.assessment
    tried = len(a.accounts)
    denied = sum(1 for x in a.accounts if x["status"] == "denied")
    failed = sum(1 for x in a.accounts if x["status"] == "failed")
    read = (
        f"{a.accounts_read} of {tried} account(s) read"
        + (f", {denied} denied" if denied else "")
        + (f", {failed} failed" if failed else "")
    )
    console_users = sum(1 for p in a.principals if p["console_password"])
    console_mfa = sum(1 for p in a.principals if p["console_password"] and p["mfa_active"])
    roots = sum(1 for p in a.principals if p["is_root"])
    roots_mfa = sum(1 for p in a.principals if p["is_root"] and p["mfa_active"])
    return [
        f"Snapshot {minute(a.taken_at)} UTC{' (stored, read offline)' if result.offline else ''}: {read}; "
        f"window since {day(a.since)}",
        f"MFA: {console_mfa} of {console_users} console user(s) and {roots_mfa} of {roots} root user(s); "
        f"{len(a.needs)} principal(s) need MFA now; {a.suppressed} finding(s) suppressed by allowlists",
        f"CloudTrail: {result.extent.describe()}",
    ]


def tail(values: Sequence[Any], limit: int) -> list[Any]:
    return list(values)[-limit:]
