"""The detection catalogue on the Parquet dataset vs. the same SQL over the raw ``.json.gz`` files.

    python bench/detect.py [--events 5000000] [--raw-fraction 0.02] [--raw-timeout 900]

Generates (and caches under bench/out/) a synthetic corpus with ``synth.write_corpus`` and
ingests it once with ``analyzer ingest`` (also cached). Then, in one run:

1. ``analyzer detect`` as a whole process (the full catalogue, a JSON report with the MFA summary
   written to a file), three times: median wall time and the peak RSS of the process tree.
2. The same catalogue in-process, for the time of each detection (which query is slow).
3. The same detection SQL run by DuckDB directly over the raw files: a view named ``events`` over
   ``read_json(glob)`` with ``unnest(Records)``, typed with the canonical schema so every query runs
   unchanged (no deduplication: the raw side is given the benefit of the doubt). Reading raw JSON
   is slow, so by default this runs on a deterministic subset of the objects (every k-th file) and
   its time is scaled to the full corpus by the event count, and the output says so. Use
   ``--raw-fraction 1`` to run it on everything (with ``--raw-timeout`` seconds as the limit).

Targets (issue 4): full catalogue over 5M events <= 4 s on 2 cores, >= 50x faster than raw JSON,
peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import OUT, Run, corpus, cpu_note, gz_files, median_run, run

ROOT = Path(__file__).resolve().parent.parent  # subprocesses run here, so `analyzer` is this checkout

#: Runs the catalogue on a connection whose ``events`` view reads raw CloudTrail files.
RAW_RUNNER = r"""
import json, sys, time
import duckdb, pyarrow as pa
from analyzer.detect import run_detections
from analyzer.schema import EVENT_FIELDS, is_json
from analyzer.store.views import install_views

def duck_type(field):
    t = field.type
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f'"{f.name}" {duck_type(f)}' for f in t) + ")"
    if is_json(field):
        return "JSON"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return "VARCHAR"

record = "STRUCT(" + ", ".join(f'"{f.name}" {duck_type(f)}' for f in EVENT_FIELDS) + ")"
files = [line for line in open(sys.argv[1]).read().splitlines() if line]
paths = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]" if len(files) > 1 else f"'{files[0]}'"
con = duckdb.connect()
con.execute("set enable_progress_bar = false")
con.execute(f'''
    create view events as
    select r.*, cast(timezone('UTC', r.eventTime) as date) as event_date
    from (select unnest(Records) as r
          from read_json({paths}, columns = {{'Records': '{record}[]'}}, maximum_object_size = 268435456))
''')
# the staging views the catalogue reads (and an empty superseded-evidence view for log-object-rewritten)
con.execute("create view events_superseded as select *, null::varchar as source_object, null::bigint as record_index, "
            "null::varchar as superseded_by, null::timestamptz as superseded_at from events where false")
install_views(con)
started = time.perf_counter()
result = run_detections(con)
print(json.dumps({"seconds": time.perf_counter() - started, "alerts": result.alerts.height,
                  "counts": result.counts, "durations": result.durations}))
"""

PROFILE = r"""
import json, sys, time
from analyzer.alerts import console_signins
from analyzer.detect import run_detections
from analyzer.store import connect
con = connect(sys.argv[1])
started = time.perf_counter()
result = run_detections(con)
detect_seconds = time.perf_counter() - started
started = time.perf_counter()
signins = console_signins(con)
print(json.dumps({"seconds": detect_seconds, "signins_seconds": time.perf_counter() - started,
                  "signins": signins.height, "alerts": result.alerts.height, "counts": result.counts,
                  "durations": result.durations}))
"""


def layout_version() -> str:
    """A hash of the code that decides the dataset's layout: a cached dataset is re-ingested when it changes."""
    digest = hashlib.sha256()
    for name in ("schema.py", "ingest/columns.py", "ingest/decode.py", "ingest/pipeline.py", "ingest/records.py",
                 "store/compact.py", "store/dataset.py", "store/dedup.py"):
        digest.update((ROOT / "analyzer" / name).read_bytes())
    return digest.hexdigest()[:16]


def dataset(events: int) -> Path:
    """The corpus ingested with ``analyzer ingest`` (cached while the ingest and store code are unchanged)."""
    root = corpus(events)
    data = OUT / f"detect-data-{events}"
    done = data / ".bench-complete"
    version = layout_version()
    if not done.exists() or done.read_text().strip() != version:
        shutil.rmtree(data, ignore_errors=True)
        print(f"ingesting {root} into {data} (layout {version}) ...", flush=True)
        result = run([sys.executable, "-m", "analyzer", "ingest", str(root), "--data", str(data), "--quiet"],
                     cwd=ROOT, stdout=subprocess.DEVNULL)
        if result.returncode not in (0, 4):
            raise SystemExit(f"ingest failed with exit {result.returncode}")
        print(f"ingested (and compacted) in {result.seconds:.0f} s (peak RSS {result.peak_rss_mb:.0f} MB)", flush=True)
        done.write_text(version + "\n")
    return data


def layout(data: Path) -> str:
    """How the dataset is laid out: what each scan pays for (files and row groups)."""
    import pyarrow.parquet as pq

    files = sorted(data.glob("event_date=*/*.parquet"))
    groups = sum(pq.read_metadata(f).num_row_groups for f in files)
    return f"{len(files)} files, {groups} row groups"


def line(label: str, result: Run, extra: str = "") -> None:
    text = f"{label:<34} {result.seconds:8.2f} s   peak RSS {result.peak_rss_mb:7.0f} MB"
    print(text + (f"   {extra}" if extra else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--raw-fraction", type=float, default=0.02, help="share of the objects read raw (0..1]")
    parser.add_argument("--raw-timeout", type=float, default=900.0, help="seconds before the raw run is stopped")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    data = dataset(args.events)
    files = gz_files(corpus(args.events))
    print(f"\n{args.events:,} events in {len(files):,} objects; dataset {data} ({layout(data)}); {cpu_note()}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)

    report = OUT / "detect-report.json"
    command = [sys.executable, "-m", "analyzer", "detect", "--data", str(data), "--format", "json",
               "--output", str(report), "--quiet"]
    runs, cpu = [], []
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append(run(command, cwd=ROOT))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    ours = median_run(runs)
    alerts = len(json.loads(report.read_text())["alerts"])
    line("analyzer detect (whole process)", ours,
         f"median of {len(runs)}: {', '.join(f'{r.seconds:.2f}' for r in runs)} s; {alerts} alerts; "
         f"exit {runs[0].returncode}")
    print(f"  CPU time (user + sys) per run: {', '.join(f'{c:.1f}' for c in cpu)} s; on an idle 2-core machine "
          f"the wall time would be about {statistics.median(cpu) / 2:.1f}-{statistics.median(cpu):.1f} s; "
          f"peak RSS of children (getrusage) {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB",
          flush=True)

    profile = json.loads(subprocess.run([sys.executable, "-c", PROFILE, str(data)], check=True,
                                        capture_output=True, text=True, cwd=ROOT).stdout)
    print(f"  in-process: catalogue {profile['seconds']:.2f} s, MFA sign-in summary "
          f"{profile['signins_seconds']:.2f} s ({profile['signins']:,} sign-ins)")
    for det_id, seconds in sorted(profile["durations"].items(), key=lambda kv: -kv[1]):
        print(f"    {det_id:<32} {seconds:6.2f} s  {profile['counts'][det_id]:>5} alerts")

    step = max(1, round(1 / args.raw_fraction))
    subset = files[::step]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        if step > 1:
            handle.write("\n".join(str(p) for p in subset))
        else:
            handle.write(str(corpus(args.events) / "AWSLogs" / "**" / "*.json.gz"))
    result_file = OUT / "detect-raw.json"
    with open(result_file, "w") as out:
        raw = run([sys.executable, "-c", RAW_RUNNER, handle.name], timeout=args.raw_timeout, stdout=out, cwd=ROOT)
    Path(handle.name).unlink()
    if raw.returncode != 0:
        print(f"raw JSON run: stopped or failed after {raw.seconds:.0f} s (exit {raw.returncode})")
        print(f"  so raw JSON takes > {raw.seconds:.0f} s: at least {raw.seconds / ours.seconds:.0f}x slower")
        return
    measured = json.loads(result_file.read_text())
    label = "DuckDB over raw .json.gz"
    if step > 1:
        events_subset = _events_in(subset)
        scale = args.events / max(events_subset, 1)
        line(label + " (subset)", raw, f"{len(subset):,} of {len(files):,} objects, {events_subset:,} events, "
             f"{measured['alerts']} alerts")
        estimated = raw.seconds * scale
        print(f"  scaled to {args.events:,} events (x{scale:.1f}, linear in events read): ~{estimated:.0f} s")
    else:
        line(label, raw, f"{measured['alerts']} alerts")
        estimated = raw.seconds
    for det_id, seconds in sorted(measured["durations"].items(), key=lambda kv: -kv[1])[:3]:
        print(f"    slowest raw: {det_id:<28} {seconds:6.1f} s")
    print(f"\nanalyzer detect: {ours.seconds:.2f} s (target <= 4 s), peak RSS {ours.peak_rss_mb:.0f} MB "
          f"(target <= 1024 MB); raw JSON {'~' if step > 1 else ''}{estimated:.0f} s; "
          f"ratio {'~' if step > 1 else ''}{estimated / ours.seconds:.0f}x (target >= 50x)")


def _events_in(files: list[Path]) -> int:
    """Events in some objects (read with the ingest decoder, which is fast)."""
    from analyzer.ingest import decode_object

    return sum(len(decode_object(p.read_bytes()).records) for p in files)


if __name__ == "__main__":
    main()
