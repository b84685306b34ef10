"""Shared helpers for the benchmarks: corpora cached under bench/out/, timing, peak RSS of a tree."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
ROOT = OUT.parent.parent
if str(ROOT) not in sys.path:  # the corpus generator (synth/) lives beside the package, not in it
    sys.path.append(str(ROOT))


def corpus(events: int, seed: int = 7) -> Path:
    """A generated CloudTrail corpus of ``events`` events, cached across runs."""
    from synth import write_corpus

    root = OUT / f"corpus-{events}-{seed}"
    done = root / ".complete"
    if not done.exists():
        stats = write_corpus(root, events, seed)
        done.write_text(f"{stats}\n")
    return root


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (kB)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int, seen: dict[int, float]) -> None:
    """Note in ``seen`` the CPU seconds (user + system) each process of the tree has used so far."""
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            seen[current] = (int(fields[11]) + int(fields[12])) / _TICK
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    cpu_seconds: float = 0.0  # of the process tree, sampled (a process's last 20 ms may be missed)


def run(command: list[str], *, timeout: float | None = None, shell: bool = False, **kwargs: object) -> Run:
    """Run a command, sampling the peak RSS of its whole process tree every 20 ms."""
    started = time.perf_counter()
    process = subprocess.Popen(command, shell=shell, **kwargs)  # type: ignore[call-overload]
    peak = 0
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_kb(process.pid))
            tree_cpu(process.pid, cpu)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
        code = -9
    stop.set()
    sampler.join()
    return Run(time.perf_counter() - started, peak / 1024, code, sum(cpu.values()))


def median_run(runs: list[Run]) -> Run:
    seconds = statistics.median(r.seconds for r in runs)
    return Run(seconds, max(r.peak_rss_mb for r in runs), max(r.returncode for r in runs))


def gz_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json.gz"))


def uncompressed_bytes(files: list[Path]) -> int:
    from isal import igzip

    return sum(len(igzip.decompress(p.read_bytes())) for p in files)


def cpu_note() -> str:
    return f"{os.cpu_count()} cores"
