"""docs/sigma.md: every SigmaHQ CloudTrail rule, converted by analyzer.sigma or not, and run or not.

    python bench/sigma_table.py SIGMA_CHECKOUT > docs/sigma.md
    python bench/sigma_table.py SIGMA_CHECKOUT --baseline-python /tmp/sigvenv/bin/python > docs/sigma.md

SIGMA_CHECKOUT is a clone of https://github.com/SigmaHQ/sigma (its ``rules/cloud/aws/cloudtrail/``
is read; the rules are not copied into this repository). Each rule is converted with this
project's pipeline and backend, then run by the engine, on the sealed connection, over the
bundled fixture corpus (``fixtures/AWSLogs``, ingested into a temporary dataset): "ran" means the
query executed there; the alerts it raised on the fixtures are listed for reference (the fixtures
are not built for these rules).

With ``--baseline-python`` (a Python with ``pysigma-backend-duckdb`` installed, which needs
pySigma < 2), the same rules are also converted with that backend unmodified and run on the same
dataset (a ``logs`` view over the events), for the comparison column.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULES = Path("rules/cloud/aws/cloudtrail")

BASELINE = r"""
import json, sys, pathlib, duckdb
from sigma.collection import SigmaCollection
from sigma_backend_duckdb import DuckDBBackend
files, glob = json.loads(sys.argv[1]), sys.argv[2]
con = duckdb.connect()
con.execute(f"create view logs as select * from read_parquet('{glob}', hive_partitioning = true)")
out = {}
for f in files:
    try:
        queries = DuckDBBackend().convert(SigmaCollection.from_yaml(pathlib.Path(f).read_text()))
    except Exception as exc:
        out[f] = ["not converted", " ".join(str(exc).split())[:160]]
        continue
    try:
        for q in queries:
            con.execute(q).fetchall()
        out[f] = ["ran", ""]
    except Exception as exc:
        out[f] = ["converted, failed", " ".join(str(exc).split()).split(" LINE ")[0][:160]]
print(json.dumps(out))
"""


def fixture_dataset(folder: Path) -> Path:
    from analyzer import ingest_objects
    from analyzer.sources.local import walk

    data = folder / "data"
    stats = ingest_objects(walk([ROOT / "fixtures" / "AWSLogs"]), data, workers=1)
    assert stats.failed == 0
    return data


FIELD_LIKE = ("requestParameters.", "responseElements.", "userIdentity.", "additionalEventData.")


def notes_for(sql: str, bound: dict[str, Any]) -> list[str]:
    notes = []
    for value in bound.values():
        text = str(value).strip("%")
        if text.startswith(FIELD_LIKE):
            notes.append(f"compares with the text '{text}', a field name (|fieldref may be meant)")
    if 'e."eventSource" ' in sql or 'e."eventName" ' in sql:
        notes.append("eventSource/eventName kept exact: row groups pruned")
    else:
        notes.append("no eventSource/eventName filter: reads every row group")
    if 'e."extra"' in sql:
        notes.append("names a field CloudTrail does not write (read from extra: never matches)")
    return notes


def rows(checkout: Path, data: Path) -> list[dict[str, Any]]:
    import duckdb

    from analyzer.detect import load_catalogue, run_detections
    from analyzer.errors import AnalyzerError
    from analyzer.sigma.backend import CloudTrailDuckDBBackend
    from analyzer.sigma.pipeline import cloudtrail_pipeline
    from analyzer.sigma.rules import rule_detection
    from analyzer.store import connect

    backend = CloudTrailDuckDBBackend(cloudtrail_pipeline())
    bundled = load_catalogue()
    out = []
    for path in sorted((checkout / RULES).glob("*.yml")):
        row: dict[str, Any] = {"file": path.name, "id": "", "title": "", "converted": "no", "ran": "no",
                               "alerts": "", "why": ""}
        try:
            detection = rule_detection(path, backend)
        except Exception as exc:  # every failure is a row of the table
            row["why"] = " ".join(str(exc).split())
            out.append(row)
            continue
        row.update(id=detection.uuid, title=detection.title, converted="yes")
        con = connect(data)
        try:
            run = run_detections(con, only=[detection.id], catalogue=bundled.with_detections([detection]))
            notes = notes_for(detection.sql, dict(detection.bound))
            row.update(ran="yes", alerts=str(run.alerts.height), why="; ".join(notes))
        except (AnalyzerError, duckdb.Error) as exc:
            row["why"] = " ".join(str(exc).split())
        finally:
            con.close()
        out.append(row)
    return out


def baseline(python: str, checkout: Path, data: Path) -> dict[str, list[str]]:
    files = [str(p) for p in sorted((checkout / RULES).glob("*.yml"))]
    glob = str(data / "event_date=*" / "*.parquet")
    result = subprocess.run([python, "-c", BASELINE, json.dumps(files), glob], check=True, capture_output=True,
                            text=True)
    return {Path(f).name: v for f, v in json.loads(result.stdout).items()}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown(table: list[dict[str, Any]], commit: str, base: dict[str, list[str]] | None) -> str:
    converted = sum(r["converted"] == "yes" for r in table)
    ran = sum(r["ran"] == "yes" for r in table)
    lines = [
        "# Sigma rules: SigmaHQ's CloudTrail rules on this dataset",
        "",
        "Generated by `python bench/sigma_table.py SIGMA_CHECKOUT > docs/sigma.md`; do not edit by hand.",
        "",
        "Run Sigma rules beside the catalogue with `pip install 'analyzer[sigma]'` and "
        "`analyzer detect --sigma DIR` (a folder of rules or one file; repeatable; `nightly` takes it too). "
        "Rules whose log source is `product: aws, service: cloudtrail` are converted; each raises alerts in the "
        "one alert shape with `detection_id = \"sigma:<rule id>\"`, one per account, principal and source IP, "
        "the severity from the rule's `level`. A rule that cannot be converted (keyword search, correlation "
        "rules, time-part modifiers) is skipped with its reason on standard error.",
        "",
        f"SigmaHQ `rules/cloud/aws/cloudtrail/` at commit `{commit}`: **{len(table)} rules, {converted} converted, "
        f"{ran} ran** with `analyzer detect --sigma` (pySigma, this project's pipeline and DuckDB backend, "
        "`analyzer/sigma/`). \"Ran\" means the query executed, on the sealed connection, over the bundled "
        "fixture corpus; the alerts column is what it raised there (the fixtures were not built for these rules).",
    ]
    if base is not None:
        base_ran = sum(v[0] == "ran" for v in base.values())
        base_converted = sum(v[0] != "not converted" for v in base.values())
        lines += ["", f"Baseline, same run, same dataset: pySigma's DuckDB backend (`pysigma-backend-duckdb`) "
                  f"unmodified converted {base_converted} and ran {base_ran} of them (its default pipeline, over a "
                  "`logs` view of the events)."]
    lines += [
        "",
        "How fields are read (`analyzer/sigma/fields.py`): CloudTrail paths onto the schema's columns and "
        "structs (`userIdentity.sessionContext.sessionIssuer.type`); paths into JSON columns "
        "(`requestParameters.containerDefinitions.command`) read every value, through arrays at any level; "
        "fields the schema does not know are read from `extra`. Matching is case-insensitive as Sigma's is, "
        "except `eventSource`/`eventName`, which keep a plain `=`/`IN` so Parquet row groups are skipped; "
        "negations are NULL-safe. The rules are licensed by SigmaHQ under the "
        "[Detection Rule License 1.1](https://github.com/SigmaHQ/Detection-Rule-License) and are not shipped "
        "here; every alert a Sigma rule raises names the rule's author in `details.sigma_author`.",
        "",
        "| rule | title | converted | ran | alerts on fixtures | notes / why not |"
        + (" unmodified duckdb backend |" if base is not None else ""),
        "|---|---|---|---|---|---|" + ("---|" if base is not None else ""),
    ]
    for r in table:
        cells = [f"`{r['file']}`", _cell(r["title"]), r["converted"], r["ran"], r["alerts"], _cell(r["why"])]
        if base is not None:
            status, why = base.get(r["file"], ["-", ""])
            cells.append(_cell(status + (f": {why}" if why else "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a SigmaHQ/sigma checkout (or an export of its rules/)")
    parser.add_argument("--commit", default="", help="the checkout's commit, for the page (default: git rev-parse)")
    parser.add_argument("--baseline-python", help="a Python with pysigma-backend-duckdb, for the comparison column")
    args = parser.parse_args()
    commit = args.commit or subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.checkout, capture_output=True,
                                           text=True).stdout.strip() or "unknown"
    with tempfile.TemporaryDirectory() as folder:
        data = fixture_dataset(Path(folder))
        table = rows(args.checkout, data)
        base = baseline(args.baseline_python, args.checkout, data) if args.baseline_python else None
    sys.stdout.write(markdown(table, commit, base))


if __name__ == "__main__":
    main()
