"""The verify job: a window's digests and log files checked, findings as alerts, a summary like validate-logs'.

``analyzer verify``, and a notebook or the nightly job, call :func:`run_verify` on a store
(:mod:`analyzer.integrity.stores`: a trail's bucket, or a copy on a disk). The order is the one
``aws cloudtrail validate-logs`` follows, in bulk: list the window's digests, read them (with their
S3 signatures) in parallel, get the public keys their regions need, check each digest and the chain
(:func:`~analyzer.integrity.chain.check_digests`), then hash every log file they list in parallel
and look for log files of the window that none lists (:func:`~analyzer.integrity.chain.check_logs`).

Exit codes: 0 everything valid; 3 findings; 4 partial (a prefix, object or region's keys could not
be read: nothing is claimed about those); 1 an error that stopped the run.

Scheduled jobs (``nightly``, ``watch``) call :func:`scheduled_verify` (or the job :func:`verify_job`
makes from the configuration): the dataset's recorded digests of a window, or the source itself,
with what went wrong as problem lines instead of exceptions, and the findings as alerts
(:meth:`VerifyResult.alerts`) for the alert state, the notifiers and the reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from analyzer.errors import AnalyzerError, ExitCode
from analyzer.integrity.chain import ChainReport, FoundDigest, LogResult, check_digests, check_logs
from analyzer.integrity.findings import Finding, alerts
from analyzer.integrity.keys import KeyRing, keys_from_api, load_key_file
from analyzer.window import Window

if TYPE_CHECKING:
    import polars as pl

    from analyzer.settings import Settings
    from analyzer.sources.s3 import S3Source

DEFAULT_WORKERS = 16


class Store(Protocol):
    """What :func:`run_verify` reads through (:class:`~analyzer.integrity.stores.S3Store`, ``LocalStore``)."""

    online: bool
    problems: list[tuple[str, str]]
    regions: set[str]

    def uri(self, bucket: str | None, key: str) -> str: ...

    def digest_keys(self, window: Window, *, now: datetime | None = None) -> list[str]: ...

    def read_digest(self, key: str, bucket: str | None = None) -> FoundDigest | None: ...

    def resolve(self, bucket: str | None, key: str) -> FoundDigest | None: ...

    def log_result(self, bucket: str, key: str) -> LogResult: ...

    def log_keys(self, window: Window, *, now: datetime | None = None) -> Any: ...


@dataclass
class VerifyResult:
    """What one verification found, with the counts its summary prints."""

    target: str
    window: Window | None
    online: bool
    chain: ChainReport
    findings: list[Finding] = field(default_factory=list)
    logs_valid: int = 0
    logs_invalid: int = 0
    keys: KeyRing | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def digests_valid(self) -> int:
        return len(self.chain.valid)

    @property
    def digests_invalid(self) -> int:
        return len(self.chain.invalid)

    @property
    def found_span(self) -> tuple[datetime | None, datetime | None]:
        """From the first digest's start to the last one's end (what the results cover)."""
        digests = [f.digest for f in [*self.chain.valid, *self.chain.invalid] if f.digest is not None]
        if not digests:
            return None, None
        return min(d.start for d in digests), max(d.end for d in digests)

    @property
    def exit_code(self) -> ExitCode:
        if self.findings:
            return ExitCode.FINDINGS
        if self.problems:
            return ExitCode.PARTIAL
        return ExitCode.OK

    def alerts(self) -> pl.DataFrame:
        """The findings in the one alert shape (for reports, ``nightly``'s state and notifications)."""
        return alerts(self.findings)


def public_keys(files: Sequence[Path | str]) -> KeyRing | None:
    """The keys of ``--public-key`` files (None when none is given)."""
    if not files:
        return None
    ring = KeyRing()
    for path in files:
        ring.add(load_key_file(path), str(path))
    return ring


def api_keys(
    session: Any, regions: Sequence[str], start: datetime, end: datetime, endpoint_url: str | None = None
) -> KeyRing:
    """``cloudtrail:ListPublicKeys`` in each region whose digests are checked; a region whose keys cannot
    be listed is recorded (its signatures are not checked: a partial result), never a fatal error."""
    from analyzer.alerts.sanitize import secrets
    from analyzer.sources.s3 import describe

    ring = KeyRing()
    for region in sorted(regions):
        client = session.client("cloudtrail", region_name=region, endpoint_url=endpoint_url)
        try:
            ring.add(keys_from_api(client, start, end), f"ListPublicKeys {region}")
        except Exception as exc:
            ring.failed_regions.add(region)
            reason = describe(exc, "cloudtrail:ListPublicKeys") if hasattr(exc, "response") else secrets(exc)
            ring.problems.append((f"ListPublicKeys {region}", reason))
    return ring


def run_verify(
    store: Store,
    *,
    window: Window | None,
    keys: KeyRing | None = None,
    key_source: Callable[[Sequence[str], datetime, datetime], KeyRing] | None = None,
    workers: int = DEFAULT_WORKERS,
    now: datetime | None = None,
) -> VerifyResult:
    """Verify the digests of ``window`` in ``store`` and the log files they list.

    ``keys``: the public keys to check signatures with; else ``key_source(regions, start, end)``
    is asked (ListPublicKeys), after the digests are read; with neither, signatures are not checked.
    """
    now = now or datetime.now(UTC)
    listing_window = window if window is not None else Window(None, None)
    keys_listed = store.digest_keys(listing_window, now=now)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="verify") as pool:
        read = [f for f in pool.map(store.read_digest, keys_listed) if f is not None]
        ends = [f.digest.end for f in read if f.digest is not None]
        if keys is None and key_source is not None and ends:
            regions = sorted({r for r in store.regions} or {"us-east-1"})
            keys = key_source(regions, min(ends) - timedelta(hours=1), max(ends))
        since = window.since if window is not None else None
        chain = check_digests(read, keys, since=since, resolve=store.resolve, uri=store.uri)
        wanted = list(dict.fromkeys((entry.bucket, entry.key) for entry, _ in chain.logs))
        results = dict(zip(wanted, pool.map(lambda bk: store.log_result(*bk), wanted), strict=True))
    listed: list[tuple[str, str, str]] = []
    if window is None or (window.since is not None and window.until is not None):
        listed = list(store.log_keys(window if window is not None else listing_window, now=now))
    log_findings, logs_valid, logs_invalid = check_logs(chain, results, listed, uri=store.uri)
    problems = [*store.problems, *chain.problems, *(keys.problems if keys is not None else [])]
    return VerifyResult(
        str(store),
        window,
        store.online,
        chain,
        [*chain.findings, *log_findings],
        logs_valid,
        logs_invalid,
        keys,
        problems,
    )


#: What a scheduled job runs: ``job(window, now)`` → (the result, or None when it could not run; problem lines).
VerifyJob = Callable[[Window, datetime], tuple["VerifyResult | None", list[str]]]
KeySource = Callable[[Sequence[str], datetime, datetime], KeyRing]


def scheduled_verify(
    data: Path | str,
    window: Window,
    *,
    source: S3Source | Path | str | None = None,
    keys: KeyRing | None = None,
    key_source: KeySource | None = None,
    workers: int = DEFAULT_WORKERS,
    now: datetime | None = None,
) -> tuple[VerifyResult | None, list[str]]:
    """Verify ``window`` for a scheduled job (``nightly``, ``watch``); never raises :class:`AnalyzerError`.

    Without ``source``: the digests the dataset at ``data`` recorded (``verify --data``; ``key_source``
    is asked only when they were pulled with their signatures). With ``source`` (an
    :class:`~analyzer.sources.s3.S3Source`, or a directory in the S3 layout): the source itself, every
    log file read and hashed again. Returns the result (None when verification could not run) and one
    line per problem (``verify: …``): a scheduled run reports them and is partial, its other work goes on.
    """
    from analyzer.integrity.stores import DatasetStore, LocalStore, S3Store
    from analyzer.sources.s3 import S3Source

    try:
        store: Store
        if source is None:
            dataset = DatasetStore(data)
            key_source = key_source if dataset.signed else None
            store = dataset
        elif isinstance(source, S3Source):
            store = S3Store(source, workers=workers)
        else:
            store = LocalStore(Path(source))
        result = run_verify(store, window=window, keys=keys, key_source=key_source, workers=workers, now=now)
    except AnalyzerError as exc:
        return None, [f"verify: {exc}"]
    return result, [f"verify: {where}: {reason}" for where, reason in result.problems]


def verify_job(
    data: Path | str, settings: Settings, *, source: S3Source | Path | str | None = None, base: Path | None = None
) -> VerifyJob | None:
    """The verify section ``nightly`` (and ``watch``) run when ``[nightly] verify`` (the dataset's digests) or
    ``verify_source`` (``source`` itself) is on; None when neither is. Public keys: ``[verify] public_keys``
    (relative to ``base``, the configuration file's folder), else ListPublicKeys with ``[pull] profile``."""
    table = settings.nightly
    if not (table.verify or table.verify_source):
        return None
    named = settings.verify.public_keys
    names = [] if named is None else [named] if isinstance(named, str) else list(named)
    files = [(base or Path()) / Path(p).expanduser() for p in names]
    keys = public_keys(files)
    workers = settings.verify.workers or DEFAULT_WORKERS
    profile = settings.pull.profile

    def from_api(regions: Sequence[str], start: datetime, end: datetime) -> KeyRing:
        from analyzer.sources.s3 import make_session

        return api_keys(make_session(profile), regions, start, end)

    def job(window: Window, now: datetime) -> tuple[VerifyResult | None, list[str]]:
        return scheduled_verify(data, window, source=source if table.verify_source else None, keys=keys,
                                key_source=None if keys is not None else from_api, workers=workers, now=now)

    return job


def verify_section(job: VerifyJob | None, window: Window, now: datetime) -> tuple[VerifyResult | None, list[str]]:
    """Run the section (when there is one): (None, []) without a job."""
    return job(window, now) if job is not None else (None, [])


def with_integrity(alerts: pl.DataFrame, result: VerifyResult | None) -> pl.DataFrame:
    """``alerts`` and the verification's findings, one frame in the alert shape, most urgent first."""
    if result is None or not result.findings:
        return alerts
    import polars as pl

    from analyzer.alerts.shape import by_urgency

    return by_urgency(pl.concat([alerts, result.alerts().select(alerts.columns)], how="vertical_relaxed"))


def finding_counts(result: VerifyResult | None) -> dict[str, int]:
    """Findings per integrity detection (0 included), for a report's list of what ran; {} without a result."""
    from analyzer.integrity.findings import DETECTIONS

    if result is None:
        return {}
    return {d: sum(f.detection_id == d for f in result.findings) for d in DETECTIONS}
