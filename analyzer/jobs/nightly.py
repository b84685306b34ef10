"""The nightly job: pull what is new, detect over the new window, write a report, notify new alerts.

One function, :func:`run_nightly`, that cron, a systemd timer or a scheduled container calls
through ``analyzer nightly``; notebooks can call it too. The order matters:

1. **pull** (S3, through :func:`analyzer.jobs.pull.run_pull` and its watermark) or **ingest** a local
   directory (the manifest makes both incremental);
2. **detect** over ``[since, until)``: ``since`` defaults to the end of the last *complete* run minus
   the late-delivery margin (``late_margin``); before any run completed, to where the first
   incomplete run started, or to ``until - first_run_lookback`` (see :func:`detection_window`);
2b. the **posture** section (``[posture]``) and the **verify** section (``[nightly] verify``: the
   window's log integrity, :func:`analyzer.jobs.verify.scheduled_verify`), whose findings join the alerts;
3. **record** the alerts in :mod:`analyzer.alerts.state` (which are new, escalated or grown since
   the last run), then the **report**: ``report-YYYY-MM-DDTHHMMZ.html`` and ``.md`` (named after
   ``until``, marking what is new), written atomically; a rerun of the same window never replaces
   an earlier report: its pair is ``report-…Z-2.html`` and ``.md``, and so on;
4. **notify**: each notifier sends what it has pending (new, escalated or grown alerts, plus
   whatever it failed to send before), naming the report by its absolute path, or by
   ``report_url`` + its file name when the reports are published somewhere;
5. the run is recorded as finished last. A run is *complete* (the next default window starts from
   its end) when every object was listed, fetched and ingested: events of an object that failed
   tonight and is ingested tomorrow may be older than tomorrow's window, so the window stays where
   it was (for at most ``max_lookback``: a permanently broken object must not grow it forever). A
   notifier failure does not make a run incomplete: the alerts it could not send stay pending and
   go out with the next run.

A crash anywhere before step 5 leaves the next run's default window where it was.

``forget_alerts_after`` (formerly ``retention``) is how long the *alert state* remembers an alert
that stopped firing (so that it is not announced again when it comes back within that time): it
deletes no data and no report.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import duckdb

from analyzer.alerts import build_report, console_signins, render
from analyzer.alerts.notify import Delivery, Notifier, NotifyContext
from analyzer.alerts.shape import severity_rank
from analyzer.alerts.state import DEFAULT_GROWTH, AlertState, Pending, TrackedAlert
from analyzer.config import validate
from analyzer.detect import Allowlist, Catalogue, DetectionRun, run_detections
from analyzer.detect.params import Overrides
from analyzer.errors import AnalyzerError, ExitCode
from analyzer.files import write_text_atomic
from analyzer.ingest import IngestStats
from analyzer.ingest.decode import MAX_OBJECT_BYTES
from analyzer.jobs.detect import DataExtent, data_extent
from analyzer.jobs.ingest import run_ingest
from analyzer.jobs.posture import nightly_section, with_findings, write_reports
from analyzer.jobs.progress import Progress
from analyzer.jobs.pull import PullResult, run_pull
from analyzer.jobs.stream import send_pending
from analyzer.settings import Settings, seconds
from analyzer.settings import parse_duration as parse_duration_text
from analyzer.sources.s3 import DEFAULT_WORKERS, S3Source
from analyzer.store.engine import read_snapshot
from analyzer.store.layout import Layout
from analyzer.timespec import utc
from analyzer.window import TimeLike, Window, parse_time

if TYPE_CHECKING:
    from analyzer.jobs.posture import PostureJob
    from analyzer.jobs.verify import VerifyJob, VerifyResult

DEFAULT_LATE_MARGIN = timedelta(hours=2)
DEFAULT_FIRST_RUN_LOOKBACK = timedelta(hours=24)
DEFAULT_FORGET_ALERTS_AFTER = timedelta(days=90)
DEFAULT_RETENTION = DEFAULT_FORGET_ALERTS_AFTER  # its former name
DEFAULT_MAX_LOOKBACK = timedelta(days=7)
LOCK_FILE = "nightly.lock"
REPORTS_DIR = "reports"  # under DATA/_analyzer/ when no report directory is given


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``90m``, ``2h``, ``7d``, ``2w`` or ``30s`` (the unit is required); never negative."""
    try:
        value = parse_duration_text(text)
        return timedelta(value.days, value.seconds, value.microseconds)
    except ValueError as exc:
        raise AnalyzerError(f"{what} = {text!r}: {exc}") from None


@dataclass(frozen=True)
class NightlySettings:
    """What a nightly run needs from the configuration (``[nightly]``, with ``[detect]``, ``[pull]``
    and ``[ingest]`` as fallbacks; see :mod:`analyzer.settings`)."""

    late_margin: timedelta = DEFAULT_LATE_MARGIN
    first_run_lookback: timedelta = DEFAULT_FIRST_RUN_LOOKBACK
    max_lookback: timedelta = DEFAULT_MAX_LOOKBACK  # a default window never starts earlier than this
    fail_on: str = "high"
    renotify_growth: float = DEFAULT_GROWTH
    forget_alerts_after: timedelta = DEFAULT_FORGET_ALERTS_AFTER  # alert state only: no data, no report
    workers: int | None = None  # ingest worker processes (default: one per core)
    fetch_threads: int = DEFAULT_WORKERS  # concurrent S3 downloads
    timeout: float | None = None  # seconds the detections may run (None: no limit)
    max_object_bytes: int = MAX_OBJECT_BYTES  # one log object's uncompressed size
    report_url: str | None = None  # where the report folder is published: notifications link report_url + name

    @property
    def retention(self) -> timedelta:
        """The former name of :attr:`forget_alerts_after`."""
        return self.forget_alerts_after

    @classmethod
    def from_settings(cls, settings: Settings) -> NightlySettings:
        """From the checked configuration (:func:`analyzer.config.load`)."""
        table = settings.nightly

        def duration(value: timedelta | None, default: timedelta) -> timedelta:
            return timedelta(value.days, value.seconds, value.microseconds) if value is not None else default

        growth = table.renotify_growth
        return cls(
            late_margin=duration(table.late_margin, DEFAULT_LATE_MARGIN),
            first_run_lookback=duration(table.first_run_lookback, DEFAULT_FIRST_RUN_LOOKBACK),
            max_lookback=duration(table.max_lookback, DEFAULT_MAX_LOOKBACK),
            fail_on=str(table.fail_on or settings.detect.fail_on or "high"),
            renotify_growth=float(growth) if growth is not None else DEFAULT_GROWTH,
            forget_alerts_after=duration(table.forget_alerts_after or table.retention, DEFAULT_FORGET_ALERTS_AFTER),
            workers=table.workers or settings.ingest.workers,
            fetch_threads=table.fetch_threads or settings.pull.workers or DEFAULT_WORKERS,
            timeout=seconds(table.timeout if table.timeout is not None else settings.detect.timeout),
            max_object_bytes=int(settings.ingest.max_object_size or MAX_OBJECT_BYTES),
            report_url=table.report_url,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NightlySettings:
        """From a configuration mapping (parsed TOML), checked like a file."""
        return cls.from_settings(validate(config))


@dataclass
class NightlyResult:
    """What one nightly run did, stage by stage."""

    since: datetime
    until: datetime
    stats: IngestStats
    run: DetectionRun
    alerts: list[TrackedAlert]
    reports: list[Path]
    deliveries: list[Delivery]
    fail_on: str
    pull: PullResult | None = None
    complete: bool = True
    pruned: int = 0
    problems: list[str] = field(default_factory=list)  # one line each: listing problems, failed objects
    warnings: list[str] = field(default_factory=list)
    extent: DataExtent | None = None  # what the detection window held
    delivered_late: list[Pending] = field(default_factory=list)  # sent now, announced by an earlier run
    posture_problems: list[str] = field(default_factory=list)  # the posture section's ([posture]): partial
    verify: VerifyResult | None = None  # the verify section's result ([nightly] verify)
    verify_problems: list[str] = field(default_factory=list)  # what it could not read or check: partial

    @property
    def announced(self) -> list[TrackedAlert]:
        """Alerts this run announced: new ones, and old ones that escalated or grew."""
        return [a for a in self.alerts if a.announced]

    @property
    def findings(self) -> int:
        """Alerts at or above ``fail_on`` this run announced or delivered (what exit code 3 is about):
        alerts an earlier run announced but a notifier failed to send count when they go out."""
        bar = severity_rank(self.fail_on)
        urgent = {a.fingerprint for a in self.announced if severity_rank(a.alert.get("severity")) >= bar}
        urgent |= {p.fingerprint for p in self.delivered_late if severity_rank(p.alert.get("severity")) >= bar}
        return len(urgent)

    @property
    def no_data(self) -> bool:
        """The detection window held no events (a wrong source or dataset, or a quiet account)."""
        return self.extent is not None and self.extent.events == 0

    @property
    def ingest_partial(self) -> bool:
        code = self.pull.exit_code if self.pull is not None else self.stats.exit_code
        return code == ExitCode.PARTIAL

    @property
    def failed_notifiers(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    @property
    def exit_code(self) -> ExitCode:
        """4 when ingest was partial or a notifier failed (it wins over 3: alerts may be unsent),
        else 3 when this run announced or delivered alerts at or above ``fail_on``, else 5 when the
        window held no events, else 0."""
        if self.ingest_partial or self.failed_notifiers or self.posture_problems or self.verify_problems:
            return ExitCode.PARTIAL
        if self.findings:
            return ExitCode.FINDINGS
        return ExitCode.NO_DATA if self.no_data else ExitCode.OK

    def summary(self) -> dict[str, Any]:
        """Plain values for the run's record in the alert state."""
        return {
            "events": self.stats.events,
            "ingested": self.stats.ingested,
            "failed_objects": self.stats.failed,
            "quarantined": self.stats.quarantined,
            "alerts": len(self.alerts),
            "announced": len(self.announced),
            "rewrites": [str(r) for r in self.stats.rewrites],
            "retried_failures": self.stats.retried,
            "remaining_failures": self.stats.still_failing,
            "findings": self.findings,
            "reports": [str(p) for p in self.reports],
            "window_events": self.extent.events if self.extent else None,
            "delivered_late": len(self.delivered_late),
            "integrity_findings": len(self.verify.findings) if self.verify is not None else None,
            "deliveries": {
                d.notifier: {"sent": len(d.sent), "failed": len(d.failed), "error": d.error} for d in self.deliveries
            },
            "exit_code": int(self.exit_code),
        }


def report_stem(until: datetime) -> str:
    """``report-2026-11-28T0200Z``: sortable, named after the window's end."""
    return f"report-{utc(until):%Y-%m-%dT%H%MZ}"


def report_paths(folder: Path, until: datetime) -> list[Path]:
    """The report pair of a run ending at ``until``: ``report-…Z.html`` and ``.md``, or, when an earlier
    run (a rerun of the same window) wrote either, ``report-…Z-2``, ``-3``…: a report is never replaced."""
    stem = report_stem(until)
    for n in range(1, 10_000):
        name = stem if n == 1 else f"{stem}-{n}"
        pair = [folder / f"{name}.html", folder / f"{name}.md"]
        if not any(path.exists() for path in pair):
            return pair
    raise AnalyzerError(f"{folder}: 10,000 reports for the window ending {until:%Y-%m-%dT%H:%MZ}: clean it up")


def report_links(reports: Sequence[Path], report_url: str | None) -> tuple[str, ...]:
    """How notifications name the reports: ``report_url`` + the file name when the folder is
    published, else the absolute path (a relative one means nothing on the reader's machine)."""
    if report_url:
        return tuple(f"{report_url.rstrip('/')}/{quote(path.name)}" for path in reports)
    return tuple(str(path.absolute()) for path in reports)


@contextmanager
def _nightly_lock(data: Path) -> Iterator[None]:
    """One nightly run per dataset at a time (a slow run must not overlap the next night's)."""
    layout = Layout(data)
    layout.create()
    with open(layout.internal / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AnalyzerError(f"{data}: another `analyzer nightly` is running on this dataset") from None
        yield


def detection_window(
    state: AlertState, settings: NightlySettings, *, since: datetime | None, until: datetime
) -> tuple[datetime, str | None]:
    """Where detection starts, and a warning when the default start was capped.

    ``since`` when given; else the end of the last complete run (of those ending before ``until``:
    a replay of a past night gets that night's window) minus the late margin; else, while no run
    has completed, the earliest start of the runs that did not; else ``until`` minus the first-run
    look-back. A default start is never more than ``max_lookback`` before ``until``.
    """
    warning = None
    if since is None:
        last = state.last_success(before=until)
        if last is not None:
            since = last - settings.late_margin
        else:
            since = state.earliest_start(before=until) or until - settings.first_run_lookback
        if since < until - settings.max_lookback:
            warning = (
                f"window capped at [nightly] max_lookback ({until - settings.max_lookback:%Y-%m-%dT%H:%MZ}); "
                f"it would start at {since:%Y-%m-%dT%H:%MZ} (runs have not completed since): give --since to "
                "cover it"
            )
            since = until - settings.max_lookback
    if since >= until:
        raise AnalyzerError(
            f"empty detection window: {since:%Y-%m-%dT%H:%MZ} is not before {until:%Y-%m-%dT%H:%MZ} "
            "(give --since for a window before the last run)"
        )
    return since, warning


def run_nightly(
    data: Path | str,
    source: S3Source | Path | str,
    *,
    notifiers: Sequence[Notifier] = (),
    settings: NightlySettings | None = None,
    report_dir: Path | str | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    now: datetime | None = None,
    catalogue: Catalogue | None = None,
    params: Overrides | None = None,
    allowlist: Allowlist | Mapping[str, Any] | None = None,
    progress: Callable[[Progress], None] | None = None,
    posture: PostureJob | None = None,
    verify: VerifyJob | None = None,
) -> NightlyResult:
    """One nightly run over the dataset at ``data`` (see the module docstring for the steps).

    ``verify`` (:func:`analyzer.jobs.verify.verify_job`): the log integrity section, run over the
    detection window after the pull; its findings (``log-file-deleted``...) are recorded and notified
    with the alerts and shown in the report, and what it could not check makes the run partial.

    ``posture`` (:func:`analyzer.jobs.posture.nightly_job`): the MFA posture section, run after the
    detections; its findings are recorded and notified with the alerts, its report pair written beside
    theirs, and what it could not read makes the run partial.

    ``source`` is a connected :class:`S3Source`, an ``s3://`` URL, or a local directory.
    ``since``/``until`` are datetimes or time specs (``"7d"``); ``until`` defaults to ``now``
    (default: the clock). Raises :class:`AnalyzerError` for what stops the run (the source is
    unreachable, the dataset or state is unreadable, a detection fails); partial ingests and
    notifier failures are in the result instead.
    """
    settings = settings or NightlySettings()
    data = Path(data)
    now = utc(now) if now else datetime.now(UTC)
    window = Window(parse_time(since, option="--since", now=now), parse_time(until, option="--until", now=now) or now)
    since, until = window.since, window.until or now
    if isinstance(source, str) and source.startswith("s3://"):
        from analyzer.jobs.sources import s3_source

        source = s3_source(source, workers=settings.fetch_threads)
    with _nightly_lock(data), AlertState(data) as state:
        start, warning = detection_window(state, settings, since=since, until=until)
        run_id = state.begin_run(now=now)
        try:
            result = _run(
                data,
                source,
                state,
                notifiers,
                settings,
                report_dir,
                since,
                start,
                until,
                now,
                catalogue,
                params,
                allowlist,
                progress,
                posture,
                verify,
            )
        except BaseException:
            state.finish_run(run_id, status="failed", since=start, until=until, complete=False, now=datetime.now(UTC))
            raise
        result.warnings += [warning] if warning else []
        status = "partial" if result.exit_code == ExitCode.PARTIAL else "ok"
        state.finish_run(
            run_id,
            status=status,
            since=result.since,
            until=result.until,
            complete=result.complete,
            summary=result.summary(),
            now=datetime.now(UTC),
        )
        return result


def _run(
    data: Path,
    source: S3Source | Path | str,
    state: AlertState,
    notifiers: Sequence[Notifier],
    settings: NightlySettings,
    report_dir: Path | str | None,
    since: datetime | None,
    start: datetime,
    until: datetime,
    now: datetime,
    catalogue: Catalogue | None,
    params: Overrides | None,
    allowlist: Allowlist | Mapping[str, Any] | None,
    progress: Callable[[Progress], None] | None,
    posture: PostureJob | None = None,
    verify: VerifyJob | None = None,
) -> NightlyResult:
    # 1. pull or ingest
    problems: list[str] = []
    pulled: PullResult | None = None
    if isinstance(source, S3Source):
        pulled = run_pull(
            source,
            data,
            since=since,
            until=until,
            fetch_threads=settings.fetch_threads,
            workers=settings.workers,
            progress=progress,
            now=now,
            max_object_bytes=settings.max_object_bytes,
        )
        stats = pulled.stats
        complete = pulled.listing.complete and not stats.failed
        problems += [f"{where}: {reason}" for where, reason in pulled.listing.problems]
    else:
        stats = run_ingest(
            [Path(source)],
            data,
            workers=settings.workers,
            progress=progress,
            max_object_bytes=settings.max_object_bytes,
        )
        complete = not stats.failed
    problems += [f"{uri}: {reason}" for uri, reason in stats.failures]

    # 2. detect
    window = Window(start, until)

    def read(con: duckdb.DuckDBPyConnection) -> tuple[DetectionRun, Any, DataExtent]:
        run = run_detections(
            con,
            since=start,
            until=until,
            params=params,
            allowlist=allowlist,
            catalogue=catalogue,
            timeout=settings.timeout,
        )
        return run, console_signins(con, since=start, until=until), data_extent(con, window)

    try:  # the committed snapshot; once more on the new one should a writer replace its files meanwhile
        run, signins, extent = read_snapshot(data, read)
    except duckdb.Error as exc:
        raise AnalyzerError(f"{data}: cannot read the dataset: {exc}") from exc

    section, posture_problems = nightly_section(posture, now)  # 2b. MFA posture, when [posture] is configured
    alerts = with_findings(run.alerts, section)
    problems += posture_problems
    from analyzer.jobs.verify import finding_counts, verify_section, with_integrity

    checked, verify_problems = verify_section(verify, window, now)  # 2c. log integrity, when [nightly] verify
    alerts = with_integrity(alerts, checked)
    problems += verify_problems

    # 3. record (what is new since the last run), then the report that marks it
    tracked = state.record(
        alerts, subscribers={n.name: n.min_severity for n in notifiers}, now=now, growth=settings.renotify_growth
    )
    report = build_report(
        alerts,
        suppressed=run.suppressed,
        signins=signins,
        since=start,
        until=until,
        generated_at=datetime.now(UTC),
        detections={**run.counts, **finding_counts(checked)},
        params=run.params,
        changes=[t.change for t in tracked],
        data_start=extent.first,
        data_end=extent.last,
    )
    folder = Path(report_dir).expanduser() if report_dir else Layout(data).internal / REPORTS_DIR
    reports = report_paths(folder, until)
    write_text_atomic(reports[0], render(report, "html"), make_parents=True)
    write_text_atomic(reports[1], render(report, "markdown"), make_parents=True)
    reports += write_reports(section, folder, reports[0].stem)

    # 4. notify
    context = NotifyContext(since=start, until=until, reports=report_links(reports, settings.report_url))
    announced = {t.fingerprint for t in tracked if t.announced}
    deliveries: list[Delivery] = []
    late: dict[str, Pending] = {}
    for notifier in notifiers:
        delivery, pending = send_pending(state, notifier, context, now=now)  # a notifier's bug fails its alerts only
        sent = set(delivery.sent)
        late.update((p.fingerprint, p) for p in pending if p.fingerprint in sent and p.fingerprint not in announced)
        deliveries.append(delivery)
    pruned = state.prune(now - settings.forget_alerts_after)

    warnings = [str(rewrite) for rewrite in stats.rewrites]  # also alerted: log-object-rewritten
    if extent.events == 0:
        warnings.append(extent.describe(window))
    return NightlyResult(
        since=start,
        until=until,
        stats=stats,
        run=run,
        alerts=tracked,
        reports=reports,
        deliveries=deliveries,
        fail_on=settings.fail_on,
        pull=pulled,
        complete=complete,
        pruned=pruned,
        problems=problems,
        warnings=warnings,
        extent=extent,
        delivered_late=list(late.values()),
        posture_problems=posture_problems,
        verify=checked,
        verify_problems=verify_problems,
    )
