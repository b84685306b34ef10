"""Ctrl-C for the jobs that start worker processes: this process stops the run, the workers stay quiet.

A terminal sends SIGINT to the whole foreground process group, so every ingest worker would get a
KeyboardInterrupt of its own and print a multiprocessing traceback while this process is already
stopping the run (the batch in flight is rolled back; the next run resumes). Workers are forked
from multiprocessing's fork server, which they inherit their signal dispositions from, and an
ignored signal stays ignored across ``exec``: starting the fork server with SIGINT ignored makes
every worker ignore it, and this process alone turns it into KeyboardInterrupt.
"""

from __future__ import annotations

import signal
import threading


def quiet_workers_on_ctrl_c() -> None:
    """Start multiprocessing's fork server (if it is not running yet) with SIGINT ignored.

    A no-op outside the main thread (only it may change signal handlers) and when the server is
    already running (workers then behave as that server was started).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    from multiprocessing import forkserver

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)
