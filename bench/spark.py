"""The detection catalogue on Spark (local mode) vs. DuckDB, on the same dataset, in the same run.

    python bench/spark.py [--events 1000000] [--duckdb-runs 3] [--spark-runs 2] [--data DIR]

Each side is one ``analyzer detect`` process over the same committed snapshot (the full catalogue, a jsonl
report to a file): ``--engine duckdb`` and ``--engine spark`` with the [spark] settings below (local[2]:
this machine's cores; no UI). Wall time (median of the runs, interleaved) and the peak RSS of the whole
process tree (Python and Spark's JVM) are printed, with the ratio, the load average, and whether the two
reports are identical. Spark's time includes starting its JVM (printed separately, from an empty run).

No target: Spark on 2 cores is not its habitat; this is what it costs to get the same alerts there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import OUT, Run, cpu_note, run
from detect import ROOT, dataset

SPARK_CONFIG = """\
[spark]
master = "local[2]"
conf = ["spark.driver.memory=4g", "spark.sql.shuffle.partitions=8", "spark.ui.enabled=false",
        "spark.ui.showConsoleProgress=false", "spark.log.level=ERROR"]
"""


def detect(engine: str, data: Path, config: Path, report: Path, only: list[str] | None = None) -> Run:
    command = [
        sys.executable,
        "-m",
        "analyzer",
        "detect",
        "--data",
        str(data),
        "--engine",
        engine,
        "--config",
        str(config),
        "-f",
        "jsonl",
        "-o",
        str(report),
        "--quiet",
    ]
    for detection in only or []:
        command += ["--only", detection]
    result = run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if result.returncode not in (0, 3, 5):
        raise SystemExit(f"detect --engine {engine} failed with exit {result.returncode}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="an existing dataset instead of the generated one")
    parser.add_argument("--duckdb-runs", type=int, default=3)
    parser.add_argument("--spark-runs", type=int, default=2)
    args = parser.parse_args()
    data = args.data or dataset(args.events)
    config = OUT / "spark-bench.toml"
    config.write_text(SPARK_CONFIG)
    print(f"dataset {data}; {cpu_note()}; load average before: {os.getloadavg()}", flush=True)
    empty = detect("spark", data, config, OUT / "spark-empty.jsonl", only=["root-console-login"])
    print(f"spark start-up and one detection: {empty.seconds:.1f} s", flush=True)
    duck: list[Run] = []
    spark: list[Run] = []
    for i in range(max(args.duckdb_runs, args.spark_runs)):
        if i < args.duckdb_runs:
            duck.append(detect("duckdb", data, config, OUT / "spark-bench-duckdb.jsonl"))
            print(f"duckdb run {i + 1}: {duck[-1].seconds:.1f} s, peak RSS {duck[-1].peak_rss_mb:.0f} MB", flush=True)
        if i < args.spark_runs:
            spark.append(detect("spark", data, config, OUT / "spark-bench-spark.jsonl"))
            print(
                f"spark run {i + 1}: {spark[-1].seconds:.1f} s, peak RSS {spark[-1].peak_rss_mb:.0f} MB (Python + JVM)",
                flush=True,
            )
    same = sorted((OUT / "spark-bench-duckdb.jsonl").read_text().splitlines()) == sorted(
        (OUT / "spark-bench-spark.jsonl").read_text().splitlines()
    )
    d = statistics.median(r.seconds for r in duck)
    s = statistics.median(r.seconds for r in spark)
    alerts = len((OUT / "spark-bench-duckdb.jsonl").read_text().splitlines())
    print(
        f"\ncatalogue, {alerts:,} alerts: DuckDB {d:.1f} s (peak {max(r.peak_rss_mb for r in duck):.0f} MB), "
        f"Spark local[2] {s:.1f} s (peak {max(r.peak_rss_mb for r in spark):.0f} MB): Spark/DuckDB {s / d:.1f}x; "
        f"reports identical: {same}; load average after: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
