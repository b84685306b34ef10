"""Alert state: which alerts were already announced, and which notifier has delivered each one.

Kept next to the dataset, in ``DATA/_analyzer/alerts.sqlite``, so that a nightly job that reruns,
or whose detection window overlaps the previous one (it does, by the late-delivery margin), never
notifies the same alert twice, and so that an alert a failing notifier could not deliver is sent by
the next run while the notifiers that did deliver it do not send it again.

Identity of an alert
--------------------
A detection run cannot give an alert a stable id: the same brute-force burst comes back with more
events when the window grows, with fewer when it slides past the burst's start, and with a
different principal text once an event carrying the ARN shows up. So an alert is matched to the
stored ones in this order:

1. **Fingerprint**: ``sha256(v1 · detection_id · account · lower(principal or user_name) ·
   source_ip · first event id)`` (32 hex characters). Detections list ``event_ids`` in event-time
   order, so the first event is the alert's anchor: a rerun, or a window that grows at the end,
   yields the same fingerprint.
2. **Shared events**: otherwise, a stored alert of the same detection that shares at least one
   event id is the same alert (the most shared events wins). This covers a window that slid past
   the first event, and a principal that changed from ``victor`` to its ARN. Every event id an
   alert has ever covered is kept, so the match survives any number of overlapping runs.
3. Otherwise the alert is new, stored under its fingerprint. A stored alert is claimed by at most
   one alert per run: two alerts of one run are never merged into one.

Announcing
----------
An alert is *announced* (queued for every notifier whose ``min_severity`` it reaches) when it is
new, when its severity rises above the one last announced (``escalated``), or when the number of
distinct events it covers reaches ``growth`` times the number last announced (``grew``; growth 2
re-notifies a burst at 10, 20, 40... events; 0 turns this off). Otherwise it is only ``seen``.
A delivery stays ``pending`` for a notifier until that notifier reports it sent: failures are
retried by every later run, whatever its window. Delivery is at least once: a crash between a
send and its bookkeeping sends that alert again next time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from analyzer.alerts import sanitize
from analyzer.alerts.records import alert_dicts, dumps
from analyzer.alerts.shape import severity_rank
from analyzer.errors import AnalyzerError
from analyzer.store.layout import Layout

STATE_FILE = "alerts.sqlite"
SCHEMA_VERSION = "1"
DEFAULT_GROWTH = 2.0
_CHUNK = 500  # SQLite host parameters per IN (...) list

Change = Literal["new", "escalated", "grew", "seen"]

SCHEMA_SQL = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists alerts (
    fingerprint text primary key,
    detection_id text not null,
    group_key text not null,
    severity text not null,             -- as last seen
    events integer not null,            -- distinct event ids covered, over every sighting
    announced_events integer not null,  -- ... when last announced
    announced_severity text not null,
    change text not null,               -- new | escalated | grew: why it was last announced
    payload text not null,              -- the alert (JSON, alert shape) as last seen in full
    first_seen text,
    last_seen text,
    created_at text not null,
    announced_at text not null,
    updated_at text not null
);
create table if not exists alert_events (
    detection_id text not null,
    event_id text not null,
    fingerprint text not null,
    primary key (detection_id, event_id, fingerprint)
) without rowid;
create index if not exists alert_events_by_fingerprint on alert_events (fingerprint);
create table if not exists deliveries (
    fingerprint text not null,
    notifier text not null,
    status text not null,               -- pending | sent
    change text not null,
    queued_at text not null,
    sent_at text,
    attempts integer not null default 0,
    last_error text,
    primary key (fingerprint, notifier)
) without rowid;
create table if not exists runs (
    id integer primary key autoincrement,
    started_at text not null,
    finished_at text,
    status text not null,               -- running | ok | partial | failed
    since text,
    until text,
    complete integer not null default 0,  -- everything was pulled: the next default window starts here
    summary text
);
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def group_key(alert: Mapping[str, Any]) -> str:
    """Who and from where: account, lower-cased principal (else user name), source IP."""
    who = str(alert.get("principal") or alert.get("user_name") or "").lower()
    return "\x1f".join([str(alert.get("account_id") or ""), who, str(alert.get("source_ip") or "")])


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def fingerprint(alert: Mapping[str, Any]) -> str:
    """The alert's stable name: detection, group key and first event (see the module docstring)."""
    ids = alert.get("event_ids") or []
    anchor = str(ids[0]) if ids else f"first_seen={alert.get('first_seen') or ''}"
    return _digest("v1", str(alert.get("detection_id") or ""), group_key(alert), anchor)


def _alternate(base: str, alert: Mapping[str, Any]) -> str:
    """The name of a second alert whose fingerprint collides with another's in the same run."""
    return _digest("v1-alt", base, *sorted(str(e) for e in alert.get("event_ids") or []))


@dataclass(frozen=True)
class TrackedAlert:
    """An alert of this run, with its stored identity and what this run made of it."""

    fingerprint: str
    change: Change
    alert: dict[str, Any]

    @property
    def announced(self) -> bool:
        return self.change != "seen"


@dataclass(frozen=True)
class Pending:
    """An alert waiting to be delivered by one notifier (the latest full version of it)."""

    fingerprint: str
    change: str  # new | escalated | grew
    alert: dict[str, Any]
    queued_at: datetime
    attempts: int


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    since: datetime | None
    until: datetime | None
    complete: bool
    summary: dict[str, Any]


class AlertState:
    """The alert state of one dataset (``DATA/_analyzer/alerts.sqlite``); one writer at a time."""

    def __init__(self, data: Path | str, *, path: Path | str | None = None) -> None:
        layout = Layout(Path(data))
        if path is None:
            layout.internal.mkdir(parents=True, exist_ok=True)
        self.path = Path(path) if path is not None else layout.internal / STATE_FILE
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("pragma journal_mode=wal")
            self.db.execute("pragma synchronous=normal")
            self.db.executescript(SCHEMA_SQL)
            self.db.execute("insert or ignore into meta(key, value) values ('schema_version', ?)", (SCHEMA_VERSION,))
        except sqlite3.Error as exc:
            raise AnalyzerError(f"{self.path}: cannot open the alert state: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AlertState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("begin immediate")
        try:
            yield
        except BaseException:
            self.db.execute("rollback")
            raise
        self.db.execute("commit")

    # -- alerts -----------------------------------------------------------------------------------
    def record(
        self,
        alerts: pl.DataFrame | Sequence[Mapping[str, Any]],
        *,
        subscribers: Mapping[str, str] | None = None,
        now: datetime | None = None,
        growth: float = DEFAULT_GROWTH,
    ) -> list[TrackedAlert]:
        """Match this run's alerts to the stored ones, store them, and queue the announced ones for
        each subscriber (notifier name → minimum severity). Returns the alerts in the given order."""
        rows = alert_dicts(alerts) if isinstance(alerts, pl.DataFrame) else [dict(a) for a in alerts]
        now = now or datetime.now(UTC)
        subscribers = dict(subscribers or {})
        claimed: set[str] = set()
        names: list[str | None] = [None] * len(rows)
        bases = [fingerprint(row) for row in rows]
        stored = self._existing(bases)
        for i, (base, row) in enumerate(zip(bases, rows, strict=True)):  # 1. by fingerprint
            candidate = base
            while candidate in stored or (candidate != base and self._existing([candidate])):
                if candidate not in claimed:
                    names[i] = candidate
                    claimed.add(candidate)
                    break
                candidate = _alternate(candidate, row)
        for i, row in enumerate(rows):  # 2. by shared events
            if names[i] is None and (match := self._sharing(row, claimed)):
                names[i] = match
                claimed.add(match)
        tracked: list[TrackedAlert] = []
        with self._transaction():
            for i, row in enumerate(rows):
                name = names[i]
                if name is None:  # 3. new
                    name = bases[i]
                    while name in claimed or self._existing([name]):
                        name = _alternate(name, row)
                    claimed.add(name)
                    change: Change = "new"
                    self._insert(name, row, now)
                else:
                    change = self._update(name, row, now, growth)
                if change != "seen":
                    self._queue(name, row, change, subscribers, now)
                tracked.append(TrackedAlert(name, change, row))
        return tracked

    def _existing(self, names: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(names))):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(
                f"select fingerprint from alerts where fingerprint in ({marks})", chunk))  # noqa: S608
        return found

    def _sharing(self, row: Mapping[str, Any], claimed: set[str]) -> str | None:
        """The stored alert of the same detection sharing the most events with ``row`` (oldest on a tie)."""
        shared: dict[str, int] = {}
        for chunk in _chunks([str(e) for e in row.get("event_ids") or []]):
            marks = ",".join("?" * len(chunk))
            query = (f"select fingerprint, count(*) from alert_events where detection_id = ? "  # noqa: S608
                     f"and event_id in ({marks}) group by fingerprint")
            for name, count in self.db.execute(query, [row.get("detection_id"), *chunk]):
                if name not in claimed:
                    shared[name] = shared.get(name, 0) + int(count)
        if not shared:
            return None
        created = dict(self.db.execute(
            f"select fingerprint, created_at from alerts where fingerprint in ({','.join('?' * len(shared))})",  # noqa: S608
            list(shared)).fetchall())
        return min(shared, key=lambda name: (-shared[name], created.get(name, ""), name))

    def _add_events(self, name: str, row: Mapping[str, Any]) -> int:
        detection = str(row.get("detection_id") or "")
        self.db.executemany(
            "insert or ignore into alert_events(detection_id, event_id, fingerprint) values (?, ?, ?)",
            [(detection, str(e), name) for e in row.get("event_ids") or []],
        )
        (count,) = self.db.execute("select count(*) from alert_events where fingerprint = ?", (name,)).fetchone()
        return max(int(count), 1)

    def _insert(self, name: str, row: Mapping[str, Any], now: datetime) -> None:
        self.db.execute(
            "insert into alerts(fingerprint, detection_id, group_key, severity, events, announced_events, "
            "announced_severity, change, payload, first_seen, last_seen, created_at, announced_at, updated_at) "
            "values (?, ?, ?, ?, 0, 0, ?, 'new', ?, ?, ?, ?, ?, ?)",
            (name, row.get("detection_id"), group_key(row), row.get("severity") or "", row.get("severity") or "",
             dumps(row), row.get("first_seen"), row.get("last_seen"), _iso(now), _iso(now), _iso(now)),
        )
        events = self._add_events(name, row)
        self.db.execute("update alerts set events = ?, announced_events = ? where fingerprint = ?",
                        (events, events, name))

    def _update(self, name: str, row: Mapping[str, Any], now: datetime, growth: float) -> Change:
        announced_events, announced_severity, payload, first, last = self.db.execute(
            "select announced_events, announced_severity, payload, first_seen, last_seen from alerts "
            "where fingerprint = ?", (name,)).fetchone()
        events = self._add_events(name, row)
        severity = str(row.get("severity") or "")
        change: Change = "seen"
        if severity_rank(severity) > severity_rank(announced_severity):
            change = "escalated"
        elif growth > 0 and events > announced_events and events >= announced_events * growth:
            change = "grew"
        previous = json.loads(payload)
        # a sighting cut short by the window (fewer events) does not replace the fuller one
        keep = change == "seen" and int(row.get("count") or 0) < int(previous.get("count") or 0)
        self.db.execute(
            "update alerts set severity = ?, events = ?, payload = ?, first_seen = ?, last_seen = ?, "
            "updated_at = ? where fingerprint = ?",
            (severity, events, payload if keep else dumps(row), _min(first, row.get("first_seen")),
             _max(last, row.get("last_seen")), _iso(now), name),
        )
        if change != "seen":
            self.db.execute(
                "update alerts set announced_events = ?, announced_severity = ?, change = ?, announced_at = ? "
                "where fingerprint = ?", (events, severity, change, _iso(now), name))
        return change

    def _queue(self, name: str, row: Mapping[str, Any], change: Change, subscribers: Mapping[str, str],
               now: datetime) -> None:
        rank = severity_rank(str(row.get("severity") or ""))
        for notifier, minimum in subscribers.items():
            if rank < severity_rank(minimum):
                continue
            # an alert still pending as "new" stays "new": that notifier's readers never saw it
            self.db.execute(
                "insert into deliveries(fingerprint, notifier, status, change, queued_at) "
                "values (?, ?, 'pending', ?, ?) "
                "on conflict (fingerprint, notifier) do update set "
                "change = case when deliveries.status = 'pending' and deliveries.change = 'new' then 'new' "
                "else excluded.change end, status = 'pending', queued_at = excluded.queued_at",
                (name, notifier, change, _iso(now)),
            )

    # -- deliveries -------------------------------------------------------------------------------
    def pending(self, notifier: str) -> list[Pending]:
        """What ``notifier`` has yet to deliver, most urgent first, then oldest first."""
        rows = self.db.execute(
            "select d.fingerprint, d.change, a.payload, d.queued_at, d.attempts from deliveries d "
            "join alerts a using (fingerprint) where d.notifier = ? and d.status = 'pending'", (notifier,)).fetchall()
        items = [Pending(name, change, json.loads(payload), datetime.fromisoformat(queued), int(attempts))
                 for name, change, payload, queued, attempts in rows]
        return sorted(items, key=lambda p: (-severity_rank(p.alert.get("severity")), p.alert.get("first_seen") or "",
                                            p.fingerprint))

    def mark_sent(self, notifier: str, fingerprints: Iterable[str], *, now: datetime | None = None) -> None:
        when = _iso(now or datetime.now(UTC))
        with self._transaction():
            self.db.executemany(
                "update deliveries set status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = null "
                "where notifier = ? and fingerprint = ?", [(when, notifier, f) for f in fingerprints])

    def mark_failed(self, notifier: str, fingerprints: Iterable[str], error: str) -> None:
        with self._transaction():
            self.db.executemany(
                "update deliveries set attempts = attempts + 1, last_error = ? where notifier = ? and fingerprint = ?",
                [(sanitize.secrets(error), notifier, f) for f in fingerprints])  # no secret is stored

    def delivery_status(self, fingerprint_: str) -> dict[str, str]:
        """Notifier → pending/sent for one alert (for tests and troubleshooting)."""
        return dict(self.db.execute("select notifier, status from deliveries where fingerprint = ?", (fingerprint_,)))

    def prune(self, before: datetime) -> int:
        """Forget alerts not seen since ``before`` that nothing still has to deliver.

        A detection window reaching further back than the retention would announce them again.
        """
        with self._transaction():
            doomed = [r[0] for r in self.db.execute(
                "select fingerprint from alerts a where updated_at < ? and not exists (select 1 from deliveries d "
                "where d.fingerprint = a.fingerprint and d.status = 'pending')", (_iso(before),))]
            for chunk in _chunks(doomed):
                marks = ",".join("?" * len(chunk))
                for table in ("alert_events", "deliveries", "alerts"):
                    self.db.execute(f"delete from {table} where fingerprint in ({marks})", chunk)  # noqa: S608
        return len(doomed)

    # -- runs -------------------------------------------------------------------------------------
    def begin_run(self, *, now: datetime | None = None) -> int:
        cursor = self.db.execute("insert into runs(started_at, status) values (?, 'running')",
                                 (_iso(now or datetime.now(UTC)),))
        return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        since: datetime | None,
        until: datetime | None,
        complete: bool,
        summary: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record how a run ended; only a ``complete`` run moves the next run's default window."""
        self.db.execute(
            "update runs set finished_at = ?, status = ?, since = ?, until = ?, complete = ?, summary = ? where id = ?",
            (_iso(now or datetime.now(UTC)), status, _iso(since) if since else None, _iso(until) if until else None,
             int(complete), dumps(dict(summary or {})), run_id),
        )

    def last_success(self, before: datetime | None = None) -> datetime | None:
        """The end of the latest window a complete run covered, among those ending before ``before``
        (so that replaying a past night finds the window it had); None before the first."""
        query = "select max(until) from runs where complete = 1 and finished_at is not null"
        args: tuple[str, ...] = ()
        if before is not None:
            query += " and until < ?"
            args = (_iso(before),)
        (value,) = self.db.execute(query, args).fetchone()
        return _parse(value)

    def earliest_start(self, before: datetime) -> datetime | None:
        """The earliest window start of finished runs that started before ``before``: where the
        next window begins while no run has completed yet."""
        (value,) = self.db.execute(
            "select min(since) from runs where since is not null and finished_at is not null and since < ?",
            (_iso(before),)).fetchone()
        return _parse(value)

    def runs(self) -> list[RunRecord]:
        rows = self.db.execute(
            "select id, started_at, finished_at, status, since, until, complete, summary from runs order by id")
        return [RunRecord(int(i), datetime.fromisoformat(s), _parse(f), st, _parse(a), _parse(b), bool(c),
                          json.loads(m) if m else {}) for i, s, f, st, a, b, c, m in rows]


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _min(a: str | None, b: object) -> str | None:
    values = [v for v in (a, b) if isinstance(v, str) and v]
    return min(values) if values else None


def _max(a: str | None, b: object) -> str | None:
    values = [v for v in (a, b) if isinstance(v, str) and v]
    return max(values) if values else None
