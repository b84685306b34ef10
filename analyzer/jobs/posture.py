"""The posture job: IAM's MFA posture of every account, joined with the CloudTrail dataset's sign-ins.

:func:`run_posture` is what ``analyzer posture`` and the nightly job's posture section call; a
notebook can call it too::

    from analyzer.jobs.posture import run_posture
    from analyzer.sources.iam import PostureSource
    result = run_posture("./ctdata", PostureSource.connect(profile="audit"), since="90d")
    result.assessment.needs            # who needs MFA now, ranked
    result.assessment.findings         # the same, in the alert shape (allowlists applied)

The steps: read every account (:mod:`analyzer.sources.iam`: a denied account is a named partial
result, not an error); store the snapshot in the dataset, dated (:mod:`analyzer.posture.store`);
read the console sign-ins of the dataset (the ``console_signins`` view: the last sign-in of every
principal, those without MFA in the window) on the committed snapshot; then the assessment
(:mod:`analyzer.posture.assess`) over the snapshot and every stored one before it. ``offline``
skips AWS and assesses the newest stored snapshot again (a report rebuilt from the dataset alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.errors import AnalyzerError, ExitCode
from analyzer.posture import assess, store
from analyzer.posture.model import ACCOUNT, DENIED, OK, AccountPosture, conform, to_table
from analyzer.timespec import parse_timespec, utc

if TYPE_CHECKING:
    import duckdb

    from analyzer.detect.allowlist import Allowlist
    from analyzer.settings import PostureTable
    from analyzer.sources.iam import PostureSource

DEFAULT_SINCE = "90d"
#: The history columns the assessment reads (coverage over time, when a finding started).
HISTORY_COLUMNS = (
    "record",
    "snapshot_id",
    "taken_at",
    "account_id",
    "status",
    "root_access_keys_present",
    "is_root",
    "user_name",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "user_created",
    "mfa_active",
    "access_keys",
)

# The newest and oldest console sign-in per principal: the whole dataset; the counts: the window.
# IAM users and root only (a federated or Identity Center sign-in is no IAM user's).
SIGNINS_SQL = """
select
    principal_key,
    max(eventTime) filter (where outcome = 'Success') as last_signin_logs,
    max(eventTime) filter (where outcome = 'Success' and mfa_used) as last_with_mfa,
    max(eventTime) filter (where outcome = 'Success' and not mfa_used) as last_without_mfa,
    count(*) filter (where outcome = 'Success' and eventTime >= $since) as signins,
    count(*) filter (where outcome = 'Success' and not mfa_used and eventTime >= $since) as without_mfa,
    arg_max(source_ip, eventTime) filter (where outcome = 'Success' and not mfa_used) as last_ip_without_mfa,
    list(eventID order by eventTime desc) filter (where outcome = 'Success' and not mfa_used
                                                   and eventTime >= $since) as without_mfa_event_ids
from console_signins
where identity_type in ('IAMUser', 'Root') and principal_key is not null and federation is null
group by principal_key
"""
EXTENT_SQL = "select count(*), min(eventTime), max(eventTime) from console_signins"


@dataclass(frozen=True)
class SigninExtent:
    """What the dataset could say about sign-ins: how many console sign-ins it holds, and their span."""

    signins: int = 0
    first: datetime | None = None
    last: datetime | None = None
    dataset: bool = False  # there is a dataset with events at all

    def describe(self) -> str:
        if not self.dataset:
            return "no CloudTrail events in the dataset: last sign-ins are IAM's only"
        if not self.signins:
            return "the dataset holds no console sign-in: last sign-ins are IAM's only"
        return f"{self.signins:,} console sign-in event(s) in the dataset, {self.first:%Y-%m-%d} → {self.last:%Y-%m-%d}"


@dataclass
class PostureResult:
    """One posture run: the assessment, where its snapshot went, and what went wrong, one line each."""

    assessment: assess.Assessment
    table: pa.Table
    stored: Path | None
    extent: SigninExtent
    problems: list[str] = field(default_factory=list)  # accounts denied or read in part, the snapshot not stored
    notes: list[str] = field(default_factory=list)  # accounts skipped (suspended...), history read in part
    offline: bool = False

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    def exit_code(self, fail_on: str) -> ExitCode:
        """4 when some account was denied or read in part, or the snapshot was not stored (the picture
        is incomplete: it wins over 3); else 3 when someone at or above ``fail_on`` needs MFA; else 0."""
        if self.partial:
            return ExitCode.PARTIAL
        return ExitCode.FINDINGS if self.assessment.failing(fail_on) else ExitCode.OK


def _problems(table: pa.Table) -> list[str]:
    lines = []
    for account in table.filter(pc.equal(table["record"], ACCOUNT)).to_pylist():
        where = account["account_id"] + (f" ({account['account_name']})" if account["account_name"] else "")
        if account["status"] != OK:
            lines.append(f"{where}: {account['status']}: {account['error']}")
        lines += [f"{where}: {line}" for line in account["problems"] or []]
    return lines


def read_signins(data: Path | str, since: datetime) -> tuple[pl.DataFrame, SigninExtent]:
    """Per principal key, the dataset's console sign-ins (:data:`SIGNINS_SQL`), on the committed snapshot."""
    from analyzer.store import snapshot as snapshots
    from analyzer.store.engine import read_snapshot
    from analyzer.store.layout import Layout

    layout = Layout(Path(data))
    if not layout.internal.exists() or not snapshots.read(layout).paths():
        return assess.empty_signins(), SigninExtent()

    def work(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, tuple[Any, ...]]:
        rows = con.sql(SIGNINS_SQL, params={"since": since}).to_arrow_table()
        extent = con.execute(EXTENT_SQL).fetchall()
        return rows, tuple(extent[0]) if extent else (0, None, None)

    import duckdb

    try:
        rows, (count, first, last) = read_snapshot(data, work)
    except duckdb.Error as exc:
        raise AnalyzerError(f"{data}: cannot read the dataset's sign-ins: {exc}") from exc
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col(name).cast(dtype) for name, dtype in assess.SIGNIN_COLUMNS.items())
    return frame, SigninExtent(int(count or 0), utc(first) if first else None, utc(last) if last else None, True)


def collect(
    source: PostureSource, *, now: datetime | None = None, progress: Callable[[AccountPosture], None] | None = None
) -> pa.Table:
    """Read every account of ``source`` into one snapshot table (raises only when none could be read)."""
    taken_at = utc(now) if now else datetime.now(UTC)
    accounts = source.collect(progress=progress)
    if not any(a.status == OK for a in accounts):
        reasons = "; ".join(f"{a.account_id}: {a.error}" for a in accounts[:3]) or "no account to read"
        more = f" (and {len(accounts) - 3} more)" if len(accounts) > 3 else ""
        status = "denied" if accounts and all(a.status == DENIED for a in accounts) else "failed"
        raise AnalyzerError(f"no account could be read ({status}): {reasons}{more}")
    return to_table(uuid.uuid4().hex[:12], taken_at, accounts)


def run_posture(
    data: Path | str,
    source: PostureSource | None = None,
    *,
    since: datetime | str | None = DEFAULT_SINCE,
    now: datetime | None = None,
    save: bool = True,
    offline: bool = False,
    allowlist: Allowlist | Mapping[str, Any] | None = None,
    table: pa.Table | None = None,
    progress: Callable[[AccountPosture], None] | None = None,
) -> PostureResult:
    """Assess the MFA posture (see the module docstring).

    ``since``: the window for "recently" (sign-ins, dormant passwords): a datetime or a time spec
    (``"90d"``, ``"2026-09-01"``). ``source``: the accounts to read; ``offline`` (or ``table``: a
    snapshot already read) assesses without AWS. ``save``: store the snapshot in the dataset.
    """
    from analyzer.detect.allowlist import Allowlist

    now = utc(now) if now else datetime.now(UTC)
    start = since if isinstance(since, datetime) else parse_timespec(since or DEFAULT_SINCE, now=now)
    start = utc(start)
    if start >= now:
        raise AnalyzerError(
            f"the window must start before now ({start:%Y-%m-%dT%H:%MZ} is not before {now:%Y-%m-%dT%H:%MZ})"
        )
    problems: list[str] = []
    notes: list[str] = []
    saved: Path | None = None
    if table is None and offline:
        table = store.latest(data)
        if table is None:
            raise AnalyzerError(f"{data}: no posture snapshot stored yet: run `analyzer posture` without --offline")
        save = False
    elif table is None:
        if source is None:
            raise AnalyzerError("no posture source: give one (or offline=True)")
        table = collect(source, now=now, progress=progress)
        notes += list(source.skipped)
    table = conform(table)
    problems += _problems(table)
    if save:
        try:
            saved = store.save(data, table)
        except AnalyzerError as exc:
            problems.append(f"snapshot not stored: {exc}")

    signins, extent = read_signins(data, start)
    history, unreadable = store.history(data, HISTORY_COLUMNS)
    notes += [f"history: {line}" for line in unreadable]
    snapshot_id = str(table["snapshot_id"][0].as_py())
    if snapshot_id not in set(history["snapshot_id"].to_pylist()):
        history = pa.concat_tables([history, table.select(list(HISTORY_COLUMNS))])
    taken_at = utc(table["taken_at"][0].as_py())

    rows = assess.principals(table, signins, start)
    started = assess.first_seen(history, now - start, snapshot_id)
    found = assess.findings(rows, start, taken_at, snapshot_id, started)
    rules = allowlist if isinstance(allowlist, Allowlist) else Allowlist.from_mapping(allowlist)
    mask = rules.matches(found) if found.height else pl.Series([], dtype=pl.Boolean)
    suppressed = int(mask.sum()) if found.height else 0
    kept = found.filter(~mask) if found.height else found
    needs = assess.ranked(kept, rows)
    from analyzer.alerts.shape import by_urgency

    alerts = by_urgency(kept.drop("_tier", "_key"))
    assessment = assess.Assessment(
        snapshot_id=snapshot_id,
        taken_at=taken_at,
        since=start,
        accounts=assess.account_rows(table),
        principals=rows,
        findings=alerts,
        suppressed=suppressed,
        needs=needs,
        coverage=assess.coverage(history),
    )
    return PostureResult(assessment, table, saved, extent, problems, notes, offline=offline)


# -- the nightly job's posture section ([posture] in the configuration file) ---------------------------------------

#: What ``run_nightly`` calls for its posture section: a posture run at ``now``.
PostureJob = Callable[[datetime], PostureResult]


def nightly_job(data: Path | str, table: PostureTable, *, allowlist: Allowlist | None = None) -> PostureJob:
    """The posture section the nightly job runs when ``[posture]`` is configured: its source and window
    from the table (flags have no say there)."""

    def job(now: datetime) -> PostureResult:
        from analyzer.sources.iam import PostureSource

        source = PostureSource.connect(
            profile=table.profile,
            region=table.region,
            endpoint_url=table.endpoint_url,
            role_name=table.role_name,
            accounts=[table.accounts] if isinstance(table.accounts, str) else list(table.accounts or []),
            organization=bool(table.organization),
            threads=table.threads or 4,
        )
        since = now - table.since if table.since is not None else DEFAULT_SINCE
        return run_posture(data, source, since=since, now=now, allowlist=allowlist)

    return job


def nightly_section(job: PostureJob | None, now: datetime) -> tuple[PostureResult | None, list[str]]:
    """Run the section (when there is one); what went wrong as problem lines, never raised: the
    detections' report and notifications go out whatever IAM says."""
    if job is None:
        return None, []
    try:
        result = job(now)
    except AnalyzerError as exc:
        return None, [f"posture: {exc}"]
    return result, [f"posture: {line}" for line in result.problems]


def with_findings(alerts: pl.DataFrame, result: PostureResult | None) -> pl.DataFrame:
    """The detections' alerts and the posture findings, one frame in the alert shape, most urgent first."""
    from analyzer.alerts.shape import by_urgency

    if result is None or result.assessment.findings.is_empty():
        return alerts
    return by_urgency(pl.concat([alerts, result.assessment.findings.select(alerts.columns)], how="vertical_relaxed"))


def write_reports(result: PostureResult | None, folder: Path, stem: str) -> list[Path]:
    """``posture-….html`` and ``.md`` beside the nightly report pair ``stem`` (``report-…``), atomically."""
    if result is None:
        return []
    from analyzer.files import write_text_atomic
    from analyzer.posture.render import render

    name = stem.replace("report-", "posture-", 1)
    paths = [folder / f"{name}.html", folder / f"{name}.md"]
    write_text_atomic(paths[0], render(result, "html"), make_parents=True)
    write_text_atomic(paths[1], render(result, "markdown"), make_parents=True)
    return paths
