"""`analyzer verify`'s hashing throughput beside `sha256sum` over the same files, in one run.

    python bench/verify.py [--events 200000] [--repeat 5] [--threads 2]

CloudTrail digests record the SHA-256 of each log file's *uncompressed* content, so verify inflates
and hashes (:func:`analyzer.integrity.hashing.file_sha256`). On the generated corpus (``synth``,
cached under bench/out/) and on uncompressed copies of the same files, each timed ``--repeat`` times
with a warm page cache, interleaved, medians reported:

- same files, same bytes: ``file_sha256`` over the uncompressed copies against ``sha256sum`` over
  them (one process; and ``--threads`` threads against ``xargs -P --threads sha256sum``);
- the digest's hash: ``file_sha256`` over the stored ``.json.gz`` (inflate + hash) against
  ``sha256sum`` over the uncompressed copies (the bytes the digest hash covers);
- for the record, ``sha256sum`` over the stored ``.json.gz`` (a hash of other bytes: compressed).

The target (issue 16): hashing throughput >= 80 % of ``sha256sum``'s over the same files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, corpus, gz_files

from analyzer.integrity.hashing import file_sha256


def plain_copies(files: list[Path], root: Path, target: Path) -> list[Path]:
    """Uncompressed copies of ``files`` (cached): the bytes a digest's hash covers, as files."""
    from isal import igzip

    done = target / ".complete"
    copies = [target / p.relative_to(root).with_suffix("") for p in files]
    if not done.exists():
        for source, copy in zip(files, copies, strict=True):
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(igzip.decompress(source.read_bytes()))
        done.write_text("ok\n")
    return copies


def ours(files: list[Path], threads: int) -> Callable[[], None]:
    def go() -> None:
        if threads <= 1:
            for path in files:
                file_sha256(path)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(file_sha256, files, chunksize=16))

    return go


def sha256sum(files: list[Path], processes: int) -> Callable[[], None]:
    listing = b"\0".join(str(p).encode() for p in files) + b"\0"

    def go() -> None:
        subprocess.run(["xargs", "-0", "-P", str(processes), "-n", str(max(1, len(files) // (processes * 4))),
                        "sha256sum"], input=listing, stdout=subprocess.DEVNULL, check=True)

    return go


def timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    root = corpus(args.events)
    files = gz_files(root)
    plain = plain_copies(files, root, OUT / f"verify-plain-{args.events}")
    stored = sum(p.stat().st_size for p in files)
    content = sum(p.stat().st_size for p in plain)
    with open("/proc/loadavg") as load:
        before = load.read().split()[:3]
    print(f"{len(files):,} files: {stored / 1e6:,.1f} MB stored (.json.gz), {content / 1e6:,.1f} MB uncompressed; "
          f"{os.cpu_count()} cores; load average before: {' '.join(before)}")
    cases: dict[str, tuple[Callable[[], None], int]] = {
        "sha256sum, uncompressed copies, 1 process": (sha256sum(plain, 1), content),
        "file_sha256, uncompressed copies, 1 thread": (ours(plain, 1), content),
        "file_sha256, stored .json.gz (inflate + hash), 1 thread": (ours(files, 1), content),
        "sha256sum, stored .json.gz, 1 process": (sha256sum(files, 1), stored),
        f"sha256sum, uncompressed copies, {args.threads} processes": (sha256sum(plain, args.threads), content),
        f"file_sha256, uncompressed copies, {args.threads} threads": (ours(plain, args.threads), content),
        f"file_sha256, stored .json.gz, {args.threads} threads": (ours(files, args.threads), content),
    }
    for step, _ in cases.values():  # warm the page cache and the code paths
        step()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):  # interleaved: a noisy neighbour costs every case alike
        for name, (step, _) in cases.items():
            times[name].append(timed(step))
    medians = {name: statistics.median(values) for name, values in times.items()}
    rate = {name: cases[name][1] / medians[name] / 1e6 for name in cases}
    for name in cases:
        files_rate = len(files) / medians[name]
        print(f"  {name:<58} {medians[name]:7.3f} s  {rate[name]:8.1f} MB/s  {files_rate:9,.0f} files/s")
    with open("/proc/loadavg") as load:
        after = load.read().split()[:3]
    base1 = rate["sha256sum, uncompressed copies, 1 process"]
    baseN = rate[f"sha256sum, uncompressed copies, {args.threads} processes"]
    print("ratios (target >= 0.80):")
    print(f"  same files (uncompressed copies), 1 thread vs 1 process:   "
          f"{rate['file_sha256, uncompressed copies, 1 thread'] / base1:.2f}")
    print(f"  same files, {args.threads} threads vs {args.threads} processes:"
          f"{'':22}{rate[f'file_sha256, uncompressed copies, {args.threads} threads'] / baseN:.2f}")
    print(f"  the digest's hash (inflate + hash of .json.gz) vs sha256sum of the content, 1 vs 1: "
          f"{rate['file_sha256, stored .json.gz (inflate + hash), 1 thread'] / base1:.2f}")
    print(f"  the digest's hash, {args.threads} threads vs {args.threads} processes:{'':28}"
          f"{rate[f'file_sha256, stored .json.gz, {args.threads} threads'] / baseN:.2f}")
    gz_files_rate = len(files) / medians["sha256sum, stored .json.gz, 1 process"]
    print(f"  (files/s, inflate + hash of .json.gz vs sha256sum of the .json.gz bytes, 1 vs 1: "
          f"{len(files) / medians['file_sha256, stored .json.gz (inflate + hash), 1 thread'] / gz_files_rate:.2f})")
    print(f"load average after: {' '.join(after)}")


if __name__ == "__main__":
    main()
