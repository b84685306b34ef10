"""Property: whatever is done to some objects of a batch, the others land exactly once.

The bundled fixture objects (real CloudTrail shapes) are mutated as an attacker or a broken
exporter would (bit flips, truncation, random bytes after a gzip header, deep nesting, odd
timestamps and numbers, a BOM, several gzip members) and mixed into one batch with untouched
copies. Invariants: every good object's events land exactly once, as they do alone; every bad
object is named (failed or skipped with a reason, or the record at fault quarantined); nothing
else fails; a second run adds nothing and changes nothing (failures are retried, and fail again).
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import ingest_objects
from analyzer.sources.local import walk
from analyzer.store import Dataset

from records import log_key

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "AWSLogs"
SOURCES = sorted(p for p in FIXTURES.rglob("*.json.gz") if "CloudTrail-Digest" not in str(p))
ODD_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "", "2026-13-45T99:99:99Z", "yesterday",
             "2026-11-20T10:00:00.123456+05:30", "2026-11-20 10:00:00", 1732096800, None, {"t": 1}]
ODD_NUMBERS = ["1e400", "-1e400", "-0", "1.0000000000000000000001", "123456789012345678901234567890", "NaN",
               "1E-400", "0.1e1", "-0.0"]

Rows = set[tuple[int, str]]


def rows_of(data: Path) -> dict[str, Rows]:
    """(record_index, eventID) of every row in the dataset, by source object."""
    files = list(data.glob("event_date=*/*.parquet"))
    out: dict[str, Rows] = {}
    if not files:
        return out
    table = ds.dataset(files, format="parquet").to_table(columns=["source_object", "record_index", "eventID"])
    listed = list(zip(*(table[c].to_pylist() for c in table.column_names), strict=True))
    for uri, index, event_id in listed:
        out.setdefault(uri, set()).add((index, event_id))
    assert len(listed) == sum(map(len, out.values())), "a row landed twice"
    return out


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, tuple[Rows, list[dict[str, Any]]]]:
    """Each fixture object's rows when ingested alone, and its records."""
    data = tmp_path_factory.mktemp("truth")
    objects = [obj for obj in walk([FIXTURES]) if Path(obj.uri) in SOURCES]
    ingest_objects(objects, data, workers=1, compact_partitions=False)
    rows = rows_of(data)
    return {p: (rows[str(p)], json.loads(gzip.decompress(p.read_bytes()))["Records"]) for p in SOURCES}


class Case:
    """One object of a batch: its bytes and what must become of it."""

    def __init__(self, body: bytes, expect: str, source: Path, extra_source: Path | None = None,
                 record: int = -1) -> None:
        self.body = body
        self.expect = expect  # "lands" (as its source), "fails", "lands or fails", "one record out"
        self.source = source
        self.extra_source = extra_source  # a second member's source (multi-member gzip)
        self.record = record  # the record at fault, for "one record out"
        self.kind = ""

    def __repr__(self) -> str:  # the bytes would flood the report
        return f"Case({self.kind}, {self.expect}, {self.source.name}, {len(self.body)} bytes, record={self.record})"


def _gz(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


def _with_record(source: Path, index: int, change: Any) -> bytes:
    doc = json.loads(gzip.decompress(source.read_bytes()))
    index %= len(doc["Records"])
    return change(doc, index)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    source = draw(st.sampled_from(SOURCES))
    data = source.read_bytes()
    kind = draw(st.sampled_from(["good", "bitflip", "truncate", "garbage", "deep", "time", "number", "bom",
                                 "members", "plain"]))
    case = _case(draw, kind, source, data)
    case.kind = kind
    return case


def _case(draw: st.DrawFn, kind: str, source: Path, data: bytes) -> Case:
    if kind == "good":
        return Case(data, "lands", source)
    if kind == "bitflip":  # gzip's CRC catches a flip in the stream; one in the header's mtime changes nothing
        bit = draw(st.integers(0, len(data) * 8 - 1))
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        return Case(bytes(flipped), "lands or fails", source)
    if kind == "truncate":
        return Case(data[: draw(st.integers(1, len(data) - 1))], "fails", source)
    if kind == "garbage":
        return Case(data[:10] + draw(st.binary(min_size=1, max_size=2000)), "fails", source)
    index = draw(st.integers(0, 10_000))
    if kind == "deep":
        depth = draw(st.sampled_from([10, 200, 900, 1000, 5000, 50_000]))

        def nest(doc: dict[str, Any], i: int) -> bytes:
            doc["Records"][i]["deepField"] = "MARK"  # unknown to the schema: this record goes lenient
            return _gz(json.dumps(doc).replace('"MARK"', "[" * depth + "]" * depth).encode())

        return Case(_with_record(source, index, nest), "lands" if depth <= 200 else "lands or fails", source)
    if kind == "time":
        odd = draw(st.sampled_from(ODD_TIMES))

        def retime(doc: dict[str, Any], i: int) -> bytes:
            doc["Records"][i]["eventTime"] = odd
            return _gz(json.dumps(doc).encode())

        body = _with_record(source, index, retime)
        return Case(body, "one record out", source, record=index % len(json.loads(gzip.decompress(body))["Records"]))
    if kind == "number":
        odd = draw(st.sampled_from(ODD_NUMBERS))

        def renumber(doc: dict[str, Any], i: int) -> bytes:
            doc["Records"][i]["requestParameters"] = {"n": "MARK", "list": ["MARK", 1]}
            return _gz(json.dumps(doc).replace('"MARK"', odd).encode())

        return Case(_with_record(source, index, renumber), "lands", source)
    if kind == "bom":
        return Case(_gz(b"\xef\xbb\xbf" + gzip.decompress(data)), "lands", source)
    if kind == "plain":
        return Case(gzip.decompress(data), "lands", source)
    second = draw(st.sampled_from(SOURCES))
    return Case(data + second.read_bytes(), "lands", source, extra_source=second)


def expected_rows(case: Case, truth: dict[Path, tuple[Rows, list[dict[str, Any]]]]) -> Rows:
    rows, records = truth[case.source]
    if case.extra_source is None:
        return rows
    offset = len(records)
    return rows | {(index + offset, event_id) for index, event_id in truth[case.extra_source][0]}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(cases(), min_size=2, max_size=6))
def test_no_object_takes_another_down(batch: list[Case], truth: dict[Path, tuple[Rows, list[dict[str, Any]]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root, data = Path(folder) / "in", Path(folder) / "data"
        uris = []
        for number, case in enumerate(batch):
            path = root / log_key(number % 60, f"Case{number:012d}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(case.body)
            uris.append(str(path))
        stats = ingest_objects(walk([root]), data, workers=1, compact_partitions=False)
        failed = dict(stats.failures) | dict(stats.skips)  # named, with the reason (a flipped magic byte: not gzip)
        landed = rows_of(data)
        with Dataset(data) as dataset:
            quarantined = {(q["source_object"], q["record_index"]) for q in dataset.quarantined()}

        for uri, case in zip(uris, batch, strict=True):
            rows = landed.get(uri, set())
            out = {i for u, i in quarantined if u == uri}
            if case.expect == "lands":
                assert uri not in failed and rows == expected_rows(case, truth) and not out, (case.expect, uri)
            elif case.expect == "fails":
                assert uri in failed and failed[uri] and not rows and not out
            elif case.expect == "lands or fails":  # named when it fails, whole when it lands
                assert (uri in failed and failed[uri] and not rows) or rows == expected_rows(case, truth)
            else:  # one record out: quarantined by name, or readable after all; every other record lands
                source_rows = expected_rows(case, truth)
                assert uri not in failed
                assert {r for r in source_rows if r[0] != case.record} <= rows
                assert out <= {case.record} and (out or any(i == case.record for i, _ in rows))
                assert {i for i, _ in rows}.isdisjoint(out)
        assert set(failed) <= {u for u, c in zip(uris, batch, strict=True) if c.expect != "lands"}
        assert all(reason.strip() and "\n" not in reason for reason in failed.values())

        again = ingest_objects(walk([root]), data, workers=1, compact_partitions=False)  # a rerun converges
        assert (again.ingested, again.events, again.quarantined) == (0, 0, 0)
        assert dict(again.failures) == dict(stats.failures) and again.unchanged == len(batch) - len(stats.failures)
        assert rows_of(data) == landed
