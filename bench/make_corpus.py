#!/usr/bin/env python3
"""Write a deterministic synthetic CloudTrail corpus (S3 key layout) for benchmarks.

    python bench/make_corpus.py bench/out/corpus-1m --events 1000000 --seed 7

The same arguments always produce the same bytes (see ``synth``). Prints what was written
and how fast.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import common  # noqa: F401  (puts the repository root, where synth/ lives, on sys.path)

from synth import write_corpus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="directory to write AWSLogs/ into")
    p.add_argument("--events", type=int, required=True, help="number of records, second deliveries included")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--accounts", type=int, default=3)
    p.add_argument("--regions", default="us-east-1,eu-west-1,us-west-2", help="comma-separated")
    p.add_argument("--start", default="2026-10-01", help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--per-file", type=int, default=50, help="median events per object (they vary 1..400)")
    p.add_argument("--org-id", default="o-synth12345", help="organization trail layout; '' for account trails only")
    p.add_argument("--dup-rate", type=float, default=0.001, help="share of events delivered a second time")
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 2); output is the same")
    p.add_argument("--force", action="store_true", help="delete ROOT/AWSLogs first if it exists")
    p.add_argument("--json", action="store_true", help="print the stats as one JSON object")
    args = p.parse_args(argv)

    logs = args.root / "AWSLogs"
    if logs.exists() and any(logs.iterdir()):
        if not args.force:
            print(f"{logs} is not empty; use --force to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(logs)

    started = time.perf_counter()
    stats = write_corpus(
        args.root,
        args.events,
        args.seed,
        accounts=args.accounts,
        regions=tuple(r for r in args.regions.split(",") if r),
        start=args.start,
        days=args.days,
        events_per_file=args.per_file,
        org_id=args.org_id or None,
        dup_rate=args.dup_rate,
        workers=args.workers,
    )
    seconds = time.perf_counter() - started
    rate = stats.events / seconds if seconds > 0 else 0.0
    if args.json:
        print(json.dumps({**asdict(stats), "seconds": round(seconds, 3), "events_per_second": round(rate)}))
    else:
        print(f"root              {args.root}")
        print(f"files             {stats.files:,}")
        print(f"events            {stats.events:,}")
        print(f"unique_event_ids  {stats.unique_event_ids:,}")
        print(f"compressed_bytes  {stats.compressed_bytes:,} ({stats.compressed_bytes / 2**20:.1f} MiB)")
        print(f"seconds           {seconds:.2f} ({rate:,.0f} events/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
