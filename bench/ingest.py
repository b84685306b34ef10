"""Ingest throughput and memory, against the decompression floor and the DuckDB one-liner.

    python bench/ingest.py [--events 1000000] [--small 200000] [--skip-duckdb]

Generates (and caches under bench/out/) a corpus of many small gzipped CloudTrail files, then in
one run, on the same files: `zcat` to /dev/null on both cores (the floor), `analyzer ingest`
end to end (a fresh dataset, the whole process tree's peak RSS sampled; then again with
`--no-compact`, to show what merging the days into sorted files costs), and the one-liner a user
would write instead: DuckDB read_json over the glob, unnest(Records), COPY to Parquet partitioned
by date (with ignore_errors, which auto-detection needs on heterogeneous CloudTrail: without it,
it fails on a requestID it sampled as a UUID, or on keys that differ only by case). A second,
smaller corpus shows that peak memory does not grow with the corpus.
"""

from __future__ import annotations

import argparse
import shutil
import sys
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


def ingest_run(root: Path, data: Path, *options: str) -> Run:
    shutil.rmtree(data, ignore_errors=True)
    return run([sys.executable, "-m", "analyzer", "ingest", str(root), "--data", str(data), "--quiet", *options])


def report(label: str, result: Run, events: int, megabytes: float) -> None:
    line = (f"{label:<28} {result.seconds:8.2f} s  {events / result.seconds:>10,.0f} events/s  "
            f"{megabytes / result.seconds:7.1f} MB/s  peak RSS {result.peak_rss_mb:7.0f} MB")
    if result.returncode:
        line += f"  [exit {result.returncode}]"
    print(line, flush=True)


def measure(events: int, *, duckdb: bool) -> Run:
    root = corpus(events)
    files = gz_files(root)
    megabytes = uncompressed_bytes(files) / 1e6
    print(f"\ncorpus: {events:,} events in {len(files):,} files, {megabytes:,.0f} MB uncompressed ({root})")
    floor = run(f"find {root} -name '*.json.gz' -print0 | xargs -0 -P 2 -n 500 zcat > /dev/null", shell=True)
    report("zcat (2 processes, floor)", floor, events, megabytes)
    ours = ingest_run(root, OUT / "ingest-data")
    report("analyzer ingest", ours, events, megabytes)
    print(f"{'':<28} ingest reaches {floor.seconds / ours.seconds:.0%} of the decompression floor's speed")
    loose = ingest_run(root, OUT / "ingest-data", "--no-compact")
    report("analyzer ingest --no-compact", loose, events, megabytes)
    print(f"{'':<28} compacting the days afterwards costs {ours.seconds - loose.seconds:.1f} s "
          f"({ours.seconds / loose.seconds - 1:.0%} of the ingest)")
    if duckdb:
        target = OUT / "duckdb-data"
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(f"{target}.tmp", ignore_errors=True)
        one_liner = run([sys.executable, "-c", DUCKDB_ONE_LINER, str(root), str(target)], timeout=1800)
        report("duckdb one-liner", one_liner, events, megabytes)
        print(f"{'':<28} analyzer ingest is {one_liner.seconds / ours.seconds:.2f}x the one-liner's speed, "
              f"at {ours.peak_rss_mb / max(one_liner.peak_rss_mb, 1):.2f}x its peak memory")
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=200_000, help="a second corpus for the memory check (0: none)")
    parser.add_argument("--skip-duckdb", action="store_true")
    args = parser.parse_args()
    big = measure(args.events, duckdb=not args.skip_duckdb)
    if args.small:
        small = measure(args.small, duckdb=False)
        print(f"\npeak RSS {args.small:,} events: {small.peak_rss_mb:.0f} MB; {args.events:,} events: "
              f"{big.peak_rss_mb:.0f} MB (ratio {big.peak_rss_mb / small.peak_rss_mb:.2f})")


if __name__ == "__main__":
    main()
