"""Arrow's allocator, set up before pyarrow is first imported (mimalloc reads its options once).

pyarrow allocates through mimalloc, which by default commits each new arena's memory eagerly and
backs it with transparent huge pages where the kernel allows them (``madvise``, the common default).
Every first touch of such memory is then a huge-page fault, and the kernel compacts memory to serve
it. Measured in an ingest worker (2-core VM, THP ``madvise``): sorting a fresh 64k-row table cost
11.8 µs a row, 0.7 s of it system time in 75 faults (230 MB in huge pages), against 1.9 µs with
arenas committed on demand; a worker's CPU per event fell from 22.9-26.9 µs to 16.0-17.6 µs
(``bench/ingest_stages.py``). A setting already in the environment is left as it is.
"""

from __future__ import annotations

import os

#: mimalloc options (environment variables) and the values this process and its workers get.
MIMALLOC_DEFAULTS = {"MIMALLOC_ARENA_EAGER_COMMIT": "0"}


def tune_arrow_allocator() -> None:
    """Set :data:`MIMALLOC_DEFAULTS` where unset: in effect for pyarrow imported after this call,
    here and in every process started from here (the ingest workers)."""
    for name, value in MIMALLOC_DEFAULTS.items():
        os.environ.setdefault(name, value)
