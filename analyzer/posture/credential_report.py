"""IAM's credential report (``GetCredentialReport``): CSV text read as untrusted input.

The report is AWS's, but its values are not: user names and ARNs were chosen by whoever could
create users, and a proxy, a mock or a future format may send anything. So the reader is strict
and bounded: the size is capped, the header must name the columns it relies on (in any order;
unknown columns are ignored), a boolean is ``true`` or ``false``, a date is ISO 8601 or one of the
report's own words (``N/A``, ``no_information``, ``not_supported``), and anything else is a named
problem on its line (that value is left unknown; a line that cannot be read at all is skipped),
never a guess. The root user's row (``<root_account>``) becomes the principal ``root``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from analyzer.alerts.sanitize import visible
from analyzer.errors import AnalyzerError
from analyzer.posture.model import ROOT_NAME, AccessKey, Principal

#: Far above any real report (5,000 users is IAM's quota; a row is a few hundred bytes).
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: Problems listed per report; the rest are counted.
MAX_PROBLEMS = 20
ROOT_ROW = "<root_account>"
REQUIRED = ("user", "arn", "password_enabled", "mfa_active")
#: The report's words for "no date here", by what they mean.
NO_DATE = {"n/a": "N/A", "no_information": "no_information", "not_supported": "not_supported", "": ""}
_SHOWN = 60  # characters of an odd value quoted in a problem line


class ReportError(AnalyzerError):
    """The report as a whole cannot be read (too large, not CSV, a required column missing)."""


def _quote(value: str) -> str:
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
    return repr(visible(shown))


class _Row:
    """One CSV line and where problems with it are reported."""

    def __init__(self, line: int, values: dict[str, str], problems: list[str]) -> None:
        self.line = line
        self.values = values
        self.problems = problems

    def text(self, column: str) -> str | None:
        value = self.values.get(column)
        return None if value is None or value.strip().lower() in NO_DATE else value

    def flag(self, column: str) -> bool | None:
        value = self.values.get(column)
        if value is None:
            return None
        word = value.strip().lower()
        if word in ("true", "false"):
            return word == "true"
        if word in NO_DATE:  # not_supported (root's password_enabled), N/A
            return None
        self.problems.append(f"line {self.line}: {column} = {_quote(value)} is neither true nor false")
        return None

    def date(self, column: str) -> tuple[datetime | None, str | None]:
        """The column as a UTC datetime, or None and the report's word for it."""
        value = self.values.get(column)
        if value is None:
            return None, None
        word = value.strip()
        if word.lower() in NO_DATE:
            return None, NO_DATE[word.lower()] or None
        try:
            moment = datetime.fromisoformat(word)
        except ValueError:
            self.problems.append(f"line {self.line}: {column} = {_quote(value)} is not a date")
            return None, None
        return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)), None


def _keys(row: _Row) -> tuple[AccessKey, ...]:
    keys = []
    for slot in (1, 2):
        active = row.flag(f"access_key_{slot}_active")
        rotated, _ = row.date(f"access_key_{slot}_last_rotated")
        if active is None and rotated is None:
            continue  # the report has no such columns, or says nothing about this slot
        used, _ = row.date(f"access_key_{slot}_last_used_date")
        keys.append(
            AccessKey(
                slot,
                bool(active),
                rotated,
                used,
                row.text(f"access_key_{slot}_last_used_region"),
                row.text(f"access_key_{slot}_last_used_service"),
            )
        )
    # a slot that never held a key reads active=false with no dates: not a key
    return tuple(k for k in keys if k.active or k.last_rotated is not None)


def parse(content: bytes | str) -> tuple[list[Principal], list[str]]:
    """The report's principals (root first when present) and the problems met, one line each.

    Raises :class:`ReportError` when the report cannot be read at all."""
    if len(content) > MAX_REPORT_BYTES:
        raise ReportError(f"credential report of {len(content):,} bytes (more than {MAX_REPORT_BYTES:,}): not read")
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ReportError(f"credential report is not UTF-8 text (byte {exc.start})") from None
    else:
        text = content
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ReportError(f"credential report header is not CSV: {exc}") from None
    if not header:
        raise ReportError("credential report is empty (no header line)")
    columns = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ReportError(
            f"credential report lacks the column(s) {', '.join(missing)} (header: {_quote(','.join(header))})"
        )
    principals: list[Principal] = []
    problems: list[str] = []
    seen: set[str] = set()
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            problems.append(f"line {line}: not CSV ({exc}): skipped")
            continue
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(columns):
            problems.append(f"line {line}: {len(values)} values for {len(columns)} columns: skipped")
            continue
        row = _Row(line, dict(zip(columns, values, strict=True)), problems)
        name = values[columns.index("user")]
        is_root = name == ROOT_ROW
        if not name.strip():
            problems.append(f"line {line}: no user name: skipped")
            continue
        key = ROOT_ROW if is_root else name.lower()  # IAM user names are unique regardless of case
        if key in seen:
            problems.append(f"line {line}: user {_quote(name)} listed twice: the first line kept")
            continue
        seen.add(key)
        created, _ = row.date("user_creation_time")
        used, note = row.date("password_last_used")
        changed, _ = row.date("password_last_changed")
        principals.append(
            Principal(
                user_name=ROOT_NAME if is_root else name,
                arn=row.text("arn"),
                is_root=is_root,
                user_created=created,
                password_enabled=None if is_root else row.flag("password_enabled"),
                password_last_used=used,
                password_last_used_note=note,
                password_last_changed=changed,
                mfa_active=row.flag("mfa_active"),
                access_keys=_keys(row),
            )
        )
    principals.sort(key=lambda p: not p.is_root)  # stable: the report's order otherwise
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"… and {len(problems) - MAX_PROBLEMS} more problem(s)"]
    return principals, problems
