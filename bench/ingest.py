"""Ingest throughput and memory, against the decompression floor and the DuckDB one-liner.

    python bench/ingest.py [--events 1000000] [--small 200000] [--repeats 3] [--skip-duckdb] [--compare DIR]

Generates (and caches under bench/out/) a corpus of many small gzipped CloudTrail files, reads it
once so that every measurement starts from a warm page cache, then runs, ``--repeats`` times and
interleaved (so that a burst of load on the shared machine hits every contestant alike), on the
same files:

- ``zcat`` to /dev/null on both cores: the floor (decompression alone, no parsing);
- ``analyzer ingest`` until the dataset is query-ready (a fresh dataset; compaction included);
- the one-liner a user would write instead: DuckDB read_json over the glob, unnest(Records), COPY
  to Parquet partitioned by date (with ignore_errors, which auto-detection needs on heterogeneous
  CloudTrail: without it, it fails on a requestID it sampled as a UUID, or on keys that differ
  only by case). It writes final partitioned files, as ingest does. (It is not lossless: it
  re-serialises the JSON it reads, ``1.0e5`` becomes ``100000.0``.)
- with ``--compare DIR``: ``analyzer ingest`` from another copy of the package (``DIR/analyzer``,
  e.g. ``git archive HEAD~1 analyzer | tar -x -C DIR``), so that a change is measured against the
  code before it in the same run.

Each process tree's peak RSS and CPU time (the process and all its descendants, sampled every
20 ms) are recorded: on a shared machine CPU time is the steadier comparison of work done.
Printed: the median of each, the ratios (median of the per-repeat ratios, so that each ratio
compares runs made side by side), ingest's own split between ingesting and compacting (from its
summary), and the load average before and after. A second, smaller corpus (``--small``) shows
whether peak memory grows with the corpus.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import OUT, Run, corpus, gz_files, run, uncompressed_bytes

DUCKDB_ONE_LINER = """
import sys, duckdb
con = duckdb.connect()
con.execute("set enable_progress_bar = false")
con.execute(f"set temp_directory = '{sys.argv[2]}.tmp'")
con.execute(f'''
    copy (
        select unnest(r), cast(r.eventTime as date) as event_date
        from (select unnest(Records) as r
              from read_json('{sys.argv[1]}/**/*.json.gz', maximum_object_size = 268435456, ignore_errors = true))
    ) to '{sys.argv[2]}' (format parquet, partition_by (event_date), compression zstd)
''')
"""

_COMPACTED = re.compile(rb"compacted: .* rows in ([0-9.,]+) s")


@dataclass
class Ingest:
    run: Run
    compact_seconds: float  # from the summary; 0 when nothing was compacted


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def ingest_run(root: Path, data: Path, *options: str, source: Path | None = None) -> Ingest:
    """``analyzer ingest`` into a fresh ``data``; ``source``: a folder holding another copy of the package."""
    shutil.rmtree(data, ignore_errors=True)
    log = data.with_suffix(".log")
    # ``python -m`` puts the working directory first on sys.path: run the other copy from its own folder
    # (from the checkout's root, its PYTHONPATH loses to ./analyzer and the same code is measured twice)
    env = dict(os.environ, PYTHONPATH=str(source)) if source else None
    with open(log, "wb") as out:
        result = run([sys.executable, "-m", "analyzer", "ingest", str(root.resolve()), "--data", str(data.resolve()),
                      *options], stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=str(source) if source else None)
    found = _COMPACTED.search(b" ".join(log.read_bytes().split()))  # the console may wrap lines
    return Ingest(result, float(found.group(1).replace(b",", b"")) if found else 0.0)


def duckdb_run(root: Path) -> Run:
    target = OUT / "duckdb-data"
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(f"{target}.tmp", ignore_errors=True)
    return run([sys.executable, "-c", DUCKDB_ONE_LINER, str(root), str(target)], timeout=1800)


def line(label: str, runs: list[Run], events: int, megabytes: float) -> str:
    seconds = statistics.median(r.seconds for r in runs)
    cpu = statistics.median(r.cpu_seconds for r in runs)
    peak = max(r.peak_rss_mb for r in runs)
    text = (f"{label:<26} {seconds:8.2f} s  {events / seconds:>10,.0f} events/s  {megabytes / seconds:7.1f} MB/s  "
            f"CPU {cpu:7.2f} s  peak RSS {peak:6.0f} MB   (runs: {', '.join(f'{r.seconds:.2f}' for r in runs)})")
    failed = [r.returncode for r in runs if r.returncode not in (0,)]
    return text + (f"  [exit {failed}]" if failed else "")


def measure(events: int, *, duckdb: bool, repeats: int, compare: Path | None = None) -> list[Ingest]:
    root = corpus(events)
    files = gz_files(root)
    megabytes = uncompressed_bytes(files) / 1e6  # also warms the page cache
    print(f"\ncorpus: {events:,} events in {len(files):,} files, {megabytes:,.0f} MB uncompressed ({root})")
    print(f"{os.cpu_count()} cores; before: {load()}", flush=True)
    floors: list[Run] = []
    ours: list[Ingest] = []
    liners: list[Run] = []
    others: list[Ingest] = []
    for _ in range(repeats):
        floors.append(run(f"find {root} -name '*.json.gz' -print0 | xargs -0 -P 2 -n 500 zcat > /dev/null",
                          shell=True))
        ours.append(ingest_run(root, OUT / "ingest-data"))
        if compare:
            others.append(ingest_run(root, OUT / "ingest-compare-data", source=compare))
        if duckdb:
            liners.append(duckdb_run(root))
        print(f"  repeat {len(ours)}: zcat {floors[-1].seconds:.2f} s, ingest {ours[-1].run.seconds:.2f} s"
              + (f", compared {others[-1].run.seconds:.2f} s" if compare else "")
              + (f", one-liner {liners[-1].seconds:.2f} s" if duckdb else "") + f"; {load()}", flush=True)
    print(line("zcat (2 processes, floor)", floors, events, megabytes))
    print(line("analyzer ingest", [o.run for o in ours], events, megabytes))
    compacting = statistics.median(o.compact_seconds for o in ours)
    ingesting = statistics.median(o.run.seconds - o.compact_seconds for o in ours)
    print(f"{'':<26} of which ingest {ingesting:.2f} s, compaction {compacting:.2f} s (medians)")
    if compare:
        print(line("ingest from --compare", [o.run for o in others], events, megabytes))
        speed = statistics.median(c.run.seconds / o.run.seconds for c, o in zip(others, ours, strict=True))
        work = statistics.median(c.run.cpu_seconds / max(o.run.cpu_seconds, 1e-9)
                                 for c, o in zip(others, ours, strict=True))
        print(f"{'':<26} analyzer ingest runs at {speed:.2f}x the speed of --compare {compare}, "
              f"using {1 / max(work, 1e-9):.2f}x its CPU time")
    if duckdb:
        print(line("duckdb one-liner", liners, events, megabytes))
    floor_ratio = statistics.median(f.seconds / o.run.seconds for f, o in zip(floors, ours, strict=True))
    print(f"{'':<26} analyzer ingest runs at {floor_ratio:.2f}x the speed of zcat (the floor)")
    if duckdb:
        ratio = statistics.median(d.seconds / o.run.seconds for d, o in zip(liners, ours, strict=True))
        memory = max(o.run.peak_rss_mb for o in ours) / max(max(d.peak_rss_mb for d in liners), 1)
        cpu = statistics.median(d.cpu_seconds / max(o.run.cpu_seconds, 1e-9) for d, o in zip(liners, ours, strict=True))
        print(f"{'':<26} analyzer ingest runs at {ratio:.2f}x the speed of the DuckDB one-liner "
              f"(goal >= 2x), at {memory:.2f}x its peak memory")
        print(f"{'':<26} the one-liner uses {cpu:.2f}x the CPU time of analyzer ingest (process trees; less "
              f"sensitive to the other load on the machine than wall time)")
    print(f"after: {load()}", flush=True)
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=200_000, help="a second corpus for the memory check (0: none)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each contestant (medians are reported)")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--compare", type=Path, help="a folder holding another copy of the package, also measured")
    args = parser.parse_args()
    big = measure(args.events, duckdb=not args.skip_duckdb, repeats=args.repeats, compare=args.compare)
    if args.small:
        small = measure(args.small, duckdb=False, repeats=args.repeats)
        big_peak = max(o.run.peak_rss_mb for o in big)
        small_peak = max(o.run.peak_rss_mb for o in small)
        print(f"\npeak RSS of the ingest process tree: {args.small:,} events {small_peak:.0f} MB, "
              f"{args.events:,} events {big_peak:.0f} MB (ratio {big_peak / small_peak:.2f}; goal <= 1.2, "
              f"and <= 1024 MB)")


if __name__ == "__main__":
    main()
