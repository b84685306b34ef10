"""`analyzer verify`'s hashing throughput beside `sha256sum` over the same files, in one run.

    python bench/verify.py [--events 200000] [--repeat 5] [--threads 2]
    python bench/verify.py --ingest-cost [--events 200000] [--repeat 5]

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

``--ingest-cost``: what recording each object's content SHA-256 costs ingest (issue 16, gap 2). The
worker side (:func:`analyzer.ingest.batch.process_batch`: decode, build, write Parquet) runs in this
one process over the same files in 12 MB batches, with the decoder's hashing and with it replaced by
a hasher that does nothing, interleaved; CPU seconds (``time.process_time``) and wall, medians.
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


def signed_copy(files: list[Path], root: Path, target: Path) -> tuple[Path, Path]:
    """``files`` hard-linked into ``target`` with hourly digests per account and region, chained and
    signed with a key made here (cached): what `analyzer verify DIR` reads. Returns (root, key file)."""
    import base64
    import gzip
    import hashlib
    import json
    from collections import defaultdict
    from datetime import datetime, timedelta

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from analyzer.integrity.digest import log_name_time

    keys = target / "keys.json"
    if (target / ".complete").exists():
        return target, keys
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    fingerprint = hashlib.md5(der).hexdigest()  # a name for the key
    hours: dict[tuple[str, str], dict[datetime, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in files:
        rel = path.relative_to(root).as_posix()
        named = log_name_time(rel)
        if named is None:
            continue
        account, region, when = named
        hours[(account, region)][when.replace(minute=0)].append(path)
        copy = target / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.exists():
            os.link(path, copy)
    bucket = "bench-trail"
    for (account, region), by_hour in hours.items():
        previous: tuple[str, str, str] | None = None
        first_rel = by_hour[min(by_hour)][0].relative_to(root).as_posix()
        base = first_rel[: first_rel.index(f"{account}/CloudTrail/")]
        for hour in sorted(by_hour):
            begin, end = hour, hour + timedelta(hours=1)
            key_name = (f"{base}{account}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/{account}_CloudTrail-Digest_"
                        f"{region}_bench_{region}_{end:%Y%m%dT%H%M%SZ}.json.gz")
            logs = [{"s3Bucket": bucket, "s3Object": p.relative_to(root).as_posix(), "hashAlgorithm": "SHA-256",
                     "hashValue": file_sha256(p)} for p in by_hour[hour]]
            doc = {"awsAccountId": account, "digestStartTime": f"{begin:%Y-%m-%dT%H:%M:%SZ}",
                   "digestEndTime": f"{end:%Y-%m-%dT%H:%M:%SZ}", "digestS3Bucket": bucket, "digestS3Object": key_name,
                   "digestPublicKeyFingerprint": fingerprint, "digestSignatureAlgorithm": "SHA256withRSA",
                   "previousDigestS3Bucket": bucket if previous else None,
                   "previousDigestS3Object": previous[0] if previous else None,
                   "previousDigestHashValue": previous[1] if previous else None,
                   "previousDigestHashAlgorithm": "SHA-256" if previous else None,
                   "previousDigestSignature": previous[2] if previous else None, "logFiles": logs}
            content = json.dumps(doc, separators=(",", ":")).encode()
            text = (f"{doc['digestEndTime']}\n{bucket}/{key_name}\n{hashlib.sha256(content).hexdigest()}\n"
                    f"{previous[2] if previous else 'null'}")
            signature = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
            out = target / key_name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(gzip.compress(content))
            previous = (key_name, hashlib.sha256(content).hexdigest(), signature)
    keys.write_text(json.dumps({"PublicKeyList": [{"Value": base64.b64encode(der).decode(),
                                                   "Fingerprint": fingerprint}]}))
    (target / ".complete").write_text("ok\n")
    return target, keys


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


class _NoHash:
    """Stands in for hashlib.sha256 in the decoder: the baseline without hashing."""

    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


def ingest_cost(files: list[Path], repeat: int) -> None:
    import shutil
    import tempfile
    import types

    import analyzer.ingest.decode as decode
    from analyzer.ingest.batch import process_batch

    batches: list[list[tuple[str, int, str, bytes]]] = [[]]
    size = 0
    for path in files:
        data = path.read_bytes()
        if size >= 12 << 20:
            batches.append([])
            size = 0
        batches[-1].append((str(path), len(data), "v", data))
        size += len(data)
    real = decode.hashlib
    fake = types.SimpleNamespace(sha256=_NoHash)

    def run(hashing: bool) -> tuple[float, float, int]:
        decode.hashlib = real if hashing else fake  # type: ignore[assignment]
        folder = Path(tempfile.mkdtemp(dir=OUT))
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            events = 0
            for n, batch in enumerate(batches):
                events += process_batch(f"b{n}", batch, str(folder / f"b{n}")).events
            return time.process_time() - cpu, time.perf_counter() - wall, events
        finally:
            decode.hashlib = real  # type: ignore[assignment]
            shutil.rmtree(folder)

    with open("/proc/loadavg") as load:
        before = load.read().split()[:3]
    print(f"ingest cost of the content SHA-256: {len(files):,} files in {len(batches)} batches, one process; "
          f"load average before: {' '.join(before)}")
    run(True)  # warm up
    run(False)
    from analyzer.ingest.decode import decompress

    def hash_alone() -> float:  # the same hashing on its own: every file inflated, then its members hashed
        members = [decompress(data) for batch in batches for _, _, _, data in batch]
        started = time.process_time()
        for parts in members:
            sha = real.sha256()
            for part in parts:
                sha.update(part)
            sha.hexdigest()
        return time.process_time() - started

    alone = statistics.median(hash_alone() for _ in range(repeat))
    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for hashing in (False, True):
            c, w, events = run(hashing)
            cpu[hashing].append(c)
            wall[hashing].append(w)
    ratios = [h / b for h, b in zip(cpu[True], cpu[False], strict=True)]
    for hashing in (False, True):
        print(f"  {'with' if hashing else 'without'} hashing: {statistics.median(cpu[hashing]):.2f} CPU s, "
              f"{statistics.median(wall[hashing]):.2f} s wall (median of {repeat}; {events:,} events)")
    print(f"  CPU with / without, per round: {', '.join(f'{r:.3f}' for r in ratios)}; median "
          f"{statistics.median(ratios):.3f}")
    print(f"  the SHA-256 alone over the same inflated content: {alone:.3f} CPU s, "
          f"{alone / statistics.median(cpu[False]):.1%} of ingest's CPU without it")
    with open("/proc/loadavg") as load:
        print(f"load average after: {' '.join(load.read().split()[:3])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ingest-cost", action="store_true", help="the cost of ingest's content SHA-256")
    args = parser.parse_args()
    if args.ingest_cost:
        ingest_cost(gz_files(corpus(args.events)), args.repeat)
        return

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
    signed, key_file = signed_copy(files, root, OUT / f"verify-signed-{args.events}")
    from analyzer.integrity.stores import LocalStore
    from analyzer.jobs.verify import public_keys, run_verify

    ring = public_keys([key_file])
    checks: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = run_verify(LocalStore(signed), window=None, keys=ring, workers=args.threads)
        checks.append(time.perf_counter() - started)
    assert not result.findings and result.logs_valid == len(files), (result.findings[:3], result.logs_valid)
    whole = statistics.median(checks)
    hashing = medians[f"file_sha256, stored .json.gz, {args.threads} threads"]
    print(f"analyzer verify DIR (run_verify, {args.threads} threads): {result.digests_valid:,} digests, "
          f"{result.logs_valid:,} log files, {result.chain.signatures_checked:,} signatures: {whole:.3f} s median "
          f"({content / whole / 1e6:,.1f} MB/s of content; hashing alone {hashing:.3f} s: "
          f"{hashing / whole:.0%} of it)")
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
