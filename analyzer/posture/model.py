"""What one posture snapshot holds: every account tried, and per account its root user and IAM users.

One Arrow table per snapshot (one row per account, one per principal: ``record`` says which), so a
snapshot is one Parquet file in the dataset (:mod:`analyzer.posture.store`) and every later step
reads the same columns whether the snapshot was just taken or read back from history. Everything in
it came from AWS APIs whose values (user names, the credential report's CSV) anyone with IAM write
access chose: renderers escape them, nothing here interprets them.

No secret is ever held: the credential report has no key ids, and of the MFA devices only serial
numbers, kinds and dates are kept (never a virtual device's seed or QR code).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

#: Parquet key-value metadata naming the table's layout, so an older snapshot can be read on.
SCHEMA_KEY = b"analyzer.posture"
SCHEMA_VERSION = b"1"
ACCOUNT, PRINCIPAL = "account", "principal"
#: How an account went: read whole, or not at all (denied: a permission is missing; failed: anything else).
OK, DENIED, FAILED = "ok", "denied", "failed"
#: MFA device kinds, from the serial number's form (IAM says no more than that).
VIRTUAL, SECURITY_KEY, HARDWARE, UNKNOWN_KIND = "virtual", "security-key", "hardware", "unknown"
ROOT_NAME = "root"

_TIME = pa.timestamp("us", tz="UTC")
MFA_DEVICE = pa.struct([("serial", pa.string()), ("kind", pa.string()), ("enabled_at", _TIME)])
ACCESS_KEY = pa.struct(
    [
        ("slot", pa.int8()),
        ("active", pa.bool_()),
        ("last_rotated", _TIME),
        ("last_used", _TIME),
        ("last_used_region", pa.string()),
        ("last_used_service", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("record", pa.string()),  # account | principal
        ("snapshot_id", pa.string()),
        ("taken_at", _TIME),
        ("account_id", pa.string()),
        ("account_name", pa.string()),
        # account rows
        ("status", pa.string()),  # ok | denied | failed
        ("error", pa.string()),
        ("problems", pa.list_(pa.string())),  # what was read only in part (one line each)
        ("report_generated_at", _TIME),
        ("root_mfa_enabled", pa.bool_()),  # GetAccountSummary AccountMFAEnabled
        ("root_access_keys_present", pa.bool_()),  # GetAccountSummary AccountAccessKeysPresent
        ("password_policy", pa.string()),  # GetAccountPasswordPolicy as JSON; NULL: none set (AWS's default)
        # principal rows
        ("is_root", pa.bool_()),
        ("user_name", pa.string()),
        ("arn", pa.string()),
        ("user_created", _TIME),
        ("password_enabled", pa.bool_()),  # NULL for root (the report says not_supported)
        ("password_last_used", _TIME),
        ("password_last_used_note", pa.string()),  # the report's word when it is no date: N/A, no_information
        ("password_last_changed", _TIME),
        ("mfa_active", pa.bool_()),
        ("mfa_devices", pa.list_(MFA_DEVICE)),
        ("access_keys", pa.list_(ACCESS_KEY)),
    ]
)


def mfa_kind(serial: str) -> str:
    """``virtual`` (``arn:…:mfa/NAME``), ``security-key`` (FIDO: ``arn:…:u2f/…``) or ``hardware`` (a
    serial that is no ARN, such as ``GAHT12345678``)."""
    if serial.startswith("arn:"):
        resource = serial.split(":", 5)[-1]
        if resource.startswith("mfa/"):
            return VIRTUAL
        if resource.startswith("u2f/"):
            return SECURITY_KEY
        return UNKNOWN_KIND
    return HARDWARE


@dataclass(frozen=True)
class MfaDevice:
    serial: str
    kind: str
    enabled_at: datetime | None = None


@dataclass(frozen=True)
class AccessKey:
    """One of a principal's two key slots, as the credential report describes it (no key id)."""

    slot: int
    active: bool
    last_rotated: datetime | None = None
    last_used: datetime | None = None
    last_used_region: str | None = None
    last_used_service: str | None = None


@dataclass(frozen=True)
class Principal:
    """The root user or an IAM user of one account."""

    user_name: str
    arn: str | None = None
    is_root: bool = False
    user_created: datetime | None = None
    password_enabled: bool | None = None
    password_last_used: datetime | None = None
    password_last_used_note: str | None = None
    password_last_changed: datetime | None = None
    mfa_active: bool | None = None
    mfa_devices: tuple[MfaDevice, ...] = ()
    access_keys: tuple[AccessKey, ...] = ()


@dataclass(frozen=True)
class AccountPosture:
    """One account as read (``status`` ok), or why it could not be (denied or failed, ``error``)."""

    account_id: str
    name: str | None = None
    status: str = OK
    error: str | None = None
    problems: tuple[str, ...] = ()
    report_generated_at: datetime | None = None
    root_mfa_enabled: bool | None = None
    root_access_keys_present: bool | None = None
    password_policy: Mapping[str, Any] | None = None
    principals: tuple[Principal, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status == OK


def to_table(snapshot_id: str, taken_at: datetime, accounts: Iterable[AccountPosture]) -> pa.Table:
    """The snapshot as one Arrow table (:data:`SCHEMA`): per account its row, then its principals'."""
    rows: list[dict[str, Any]] = []
    for account in accounts:
        common = {
            "snapshot_id": snapshot_id,
            "taken_at": taken_at,
            "account_id": account.account_id,
            "account_name": account.name,
        }
        policy = (
            json.dumps(dict(account.password_policy), sort_keys=True, default=str)
            if account.password_policy is not None
            else None
        )
        rows.append(
            {
                **common,
                "record": ACCOUNT,
                "status": account.status,
                "error": account.error,
                "problems": list(account.problems),
                "report_generated_at": account.report_generated_at,
                "root_mfa_enabled": account.root_mfa_enabled,
                "root_access_keys_present": account.root_access_keys_present,
                "password_policy": policy,
            }
        )
        for p in account.principals:
            rows.append(
                {
                    **common,
                    "record": PRINCIPAL,
                    "is_root": p.is_root,
                    "user_name": p.user_name,
                    "arn": p.arn,
                    "user_created": p.user_created,
                    "password_enabled": p.password_enabled,
                    "password_last_used": p.password_last_used,
                    "password_last_used_note": p.password_last_used_note,
                    "password_last_changed": p.password_last_changed,
                    "mfa_active": p.mfa_active,
                    "mfa_devices": [
                        {"serial": d.serial, "kind": d.kind, "enabled_at": d.enabled_at} for d in p.mfa_devices
                    ],
                    "access_keys": [
                        {
                            "slot": k.slot,
                            "active": k.active,
                            "last_rotated": k.last_rotated,
                            "last_used": k.last_used,
                            "last_used_region": k.last_used_region,
                            "last_used_service": k.last_used_service,
                        }
                        for k in p.access_keys
                    ],
                }
            )
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    return table.replace_schema_metadata({SCHEMA_KEY: SCHEMA_VERSION})


def conform(table: pa.Table, columns: Sequence[str] | None = None) -> pa.Table:
    """A stored snapshot in today's :data:`SCHEMA` (``columns``: only those): a column an older file
    lacks is NULL, an unknown one dropped."""
    fields = [SCHEMA.field(name) for name in columns] if columns is not None else list(SCHEMA)
    arrays = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in fields
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
