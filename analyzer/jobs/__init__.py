"""Jobs: what the commands do, as functions the CLI, notebooks and schedulers call.

A job takes plain values (paths, time specs such as ``"7d"``, settings), runs the stations
(sources → ingest → store → detect → alerts) and returns what happened as an object; it prints
nothing and never exits. Each ``analyzer`` command parses its flags, calls one job and renders the
result, so a notebook gets exactly what the command does::

    from analyzer.jobs import run_detect, run_ingest
    run_ingest(["./AWSLogs"], "./ctdata")
    result = run_detect("./ctdata", since="7d")
    result.alerts                     # Polars, most urgent first
    result.extent.describe(result.window)   # how many event records the window held, where the data ends

- :func:`run_ingest`: local files into the dataset (``analyzer ingest``);
- :func:`run_pull`: an S3 trail into the dataset, incrementally (``analyzer pull``), from the
  source :func:`s3_source` assembles (flags over ``[pull]``);
- :func:`run_detect`: the catalogue over a window, as a report (``analyzer detect``);
- :func:`run_nightly`: pull, detect, report, notify what is new (``analyzer nightly``);
- :func:`run_posture`: who still needs MFA, from IAM and the dataset's sign-ins (``analyzer posture``);
- :func:`run_verify`: log integrity from CloudTrail's digests, a :class:`VerifyResult` (``analyzer verify``);
- :func:`run_watch`: S3 notifications from SQS, ingested, detected and announced as they come
  (``analyzer watch``); :func:`handle_s3_event` does the same for one event (S3 → Lambda, a webhook).

Ctrl-C raises KeyboardInterrupt out of a job, with the worker processes kept quiet; a rerun resumes.
"""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.jobs.detect import DataExtent, DetectReport, run_detect
    from analyzer.jobs.ingest import run_ingest
    from analyzer.jobs.nightly import NightlyResult, NightlySettings, run_nightly
    from analyzer.jobs.posture import PostureResult, run_posture
    from analyzer.jobs.progress import Progress
    from analyzer.jobs.pull import PullResult, run_pull
    from analyzer.jobs.sources import s3_source, trail_url
    from analyzer.jobs.verify import VerifyResult, run_verify
    from analyzer.jobs.watch import EventResult, WatchSettings, WatchStatus, handle_s3_event, run_watch
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "analyzer.jobs.detect": ["DataExtent", "DetectReport", "run_detect"],
            "analyzer.jobs.ingest": ["run_ingest"],
            "analyzer.jobs.nightly": ["NightlyResult", "NightlySettings", "run_nightly"],
            "analyzer.jobs.posture": ["PostureResult", "run_posture"],
            "analyzer.jobs.progress": ["Progress"],
            "analyzer.jobs.pull": ["PullResult", "run_pull"],
            "analyzer.jobs.sources": ["s3_source", "trail_url"],
            "analyzer.jobs.watch": ["EventResult", "WatchSettings", "WatchStatus", "handle_s3_event", "run_watch"],
            "analyzer.jobs.verify": ["VerifyResult", "run_verify"],
        },
    )

__all__ = [
    "DataExtent",
    "DetectReport",
    "EventResult",
    "NightlyResult",
    "NightlySettings",
    "PostureResult",
    "Progress",
    "PullResult",
    "VerifyResult",
    "WatchSettings",
    "WatchStatus",
    "handle_s3_event",
    "run_detect",
    "run_ingest",
    "run_nightly",
    "run_posture",
    "run_pull",
    "run_verify",
    "run_watch",
    "s3_source",
    "trail_url",
]
