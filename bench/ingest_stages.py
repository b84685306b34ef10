"""Where a worker's CPU goes: the stages of process_batch timed one by one, in one process.

    python bench/ingest_stages.py [--events 200000] [--files N]

Reads a cached corpus (bench/out/), then for each object, as a worker does (cyclic GC off, freed
memory kept): read, blake2b of the bytes, decompress (with the content SHA-256), decode (the
strict fast path or the raw split), add to the table builder (values to Arrow every 1,024
records), finish each 4k-record chunk (eventTime parsed, extra, lineage columns), concatenate and
write (sort + Parquet) every 64k rows. Prints CPU seconds (process time) and µs per event per
stage. Not the pool, the main process or compaction: bench/ingest.py measures those end to end.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from common import corpus, gz_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=0, help="only the first N files (0: all)")
    args = parser.parse_args()

    from analyzer.ingest.workers import retain_freed_memory

    retain_freed_memory()  # before pyarrow is imported, as in a worker
    import gc

    import pyarrow as pa

    from analyzer.ingest import decode
    from analyzer.ingest.batch import CHUNK_RECORDS, FILE_ROWS
    from analyzer.ingest.columns import TableBuilder
    from analyzer.store.dataset import write_batch

    files = gz_files(corpus(args.events))
    files = files[: args.files] if args.files else files
    gc.disable()
    spent = dict.fromkeys(["read", "hash", "decompress", "decode", "build_add", "build_finish", "concat", "write"], 0.0)
    clock = time.process_time
    out = Path(tempfile.mkdtemp(prefix="ingest-stages-"))
    builder, tables, pending, sequence, events = TableBuilder(), [], 0, 0, 0

    def timed(stage: str, fn, *a):  # type: ignore[no-untyped-def]
        start = clock()
        result = fn(*a)
        spent[stage] += clock() - start
        return result

    def write() -> None:
        nonlocal sequence
        table = timed("concat", pa.concat_tables, tables)
        tables.clear()
        timed("write", write_batch, table, out, sequence)
        sequence += 1

    for path in files:
        data = timed("read", path.read_bytes)
        timed("hash", lambda d: hashlib.blake2b(d, digest_size=16).hexdigest(), data)
        members = timed("decompress", lambda d: decode.decompress(d, sha=hashlib.sha256()), data)
        parts = timed("decode", lambda m: list(decode._decode_text(m, CHUNK_RECORDS)), b"".join(members))
        for part in parts:
            timed("build_add", builder.add, str(path), part)
            events += len(part.records)
            if len(builder) >= CHUNK_RECORDS:
                tables.append(timed("build_finish", builder.finish)[0])
                builder = TableBuilder()
                pending += tables[-1].num_rows
                if pending >= FILE_ROWS:
                    write()
                    pending = 0
    tables.append(timed("build_finish", builder.finish)[0])
    write()
    total = sum(spent.values())
    print(f"{events:,} events in {len(files):,} files: {total:.2f} CPU s, {total / events * 1e6:.2f} µs/event")
    for stage, seconds in spent.items():
        print(f"  {stage:<13} {seconds:7.2f} s  {seconds / events * 1e6:6.2f} µs/event  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
