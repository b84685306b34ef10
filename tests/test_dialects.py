"""The catalogue transpiled (issue 14): every detection and staging view in Spark SQL and Trino/Athena SQL,
the construct at fault named at load time, parameters bound per engine, and the Trino round trip:
Trino SQL transpiled back to DuckDB by sqlglot and run gives the same alerts as the catalogue itself."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from analyzer.detect import CatalogueError, load_catalogue, run_detections
from analyzer.detect.catalogue import sql_parameters
from analyzer.scale import dialects
from analyzer.scale.athena import literal_text
from analyzer.store import connect

CATALOGUE = load_catalogue()
DETECTIONS = list(CATALOGUE.values())


def user_detection(folder: Path, detection_id: str, sql: str | None = None) -> Path:
    """The template as a user's detection ``detection_id`` (its SQL replaced by ``sql``)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = (CATALOGUE.directory / "_template.toml").read_text().replace("template-example", detection_id)
    meta = re.sub(r'^uuid = "[^"]+"', f'uuid = "{uuid.uuid4()}"', meta, count=1, flags=re.MULTILINE)
    (folder / f"{detection_id}.toml").write_text(meta)
    body = sql if sql is not None else (CATALOGUE.directory / "_template.sql").read_text()
    (folder / f"{detection_id}.sql").write_text(body.replace("template-example", detection_id))
    return folder


def alert_keys(alerts: list[dict]) -> list[tuple]:
    """What must agree between engines: detection, principal, first/last seen, count, event ids."""
    return sorted(
        (
            a["detection_id"],
            a["principal"] or "",
            a["first_seen"],
            a["last_seen"],
            a["count"],
            tuple(sorted(a["event_ids"])),
        )
        for a in alerts
    )


@pytest.mark.parametrize("dialect", ["spark", "trino", "athena"])
def test_every_detection_and_view_transpiles(dialect: str) -> None:
    dialects.check_catalogue(DETECTIONS, [dialect])  # raises CatalogueError naming each failure
    names = [name for name, _ in dialects.view_queries(dialect)]
    assert names == list(dialects.VIEW_ORDER)
    assert dialects.events_query(dialect) and dialects.events_query(dialect, duplicates="d")


@pytest.mark.parametrize("detection", DETECTIONS, ids=lambda d: d.id)
def test_transpiled_sql_parses_in_its_dialect(detection) -> None:
    for dialect, reader in (("trino", "trino"), ("athena", "trino"), ("spark", "spark")):
        transpiled = dialects.transpile_detection(detection, dialect)
        tree = sqlglot.parse_one(transpiled.sql, read=reader)  # sqlglot's Trino (or Spark) reader accepts it
        assert isinstance(tree, exp.Select)
        assert (
            not list(tree.find_all(exp.Anonymous))
            or dialect == "spark"
            or all(f.name.upper() in dialects._KNOWN["trino"] for f in tree.find_all(exp.Anonymous))
        )
    for _, sql in dialects.view_queries("trino"):
        sqlglot.parse_one(sql, read="trino")


@pytest.mark.parametrize("detection", DETECTIONS, ids=lambda d: d.id)
def test_parameters_are_markers_or_literals(detection) -> None:
    names = sql_parameters(detection.sql)
    athena = dialects.transpile_detection(detection, "athena")
    tokens = sqlglot.Dialect.get_or_raise("trino").tokenize(athena.sql)
    marks = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER]
    assert len(marks) == len(athena.params)  # one execution parameter per '?', in order
    assert set(athena.params) == names
    spark = dialects.transpile_detection(detection, "spark")
    markers = {p.name for p in sqlglot.parse_one(spark.sql, read="spark").find_all(exp.Placeholder)}
    assert set(spark.params) == names == markers  # Spark's named parameter markers, :name
    bound = dialects.transpile_detection(detection, "spark", values=detection.defaults)
    assert not bound.params and not list(sqlglot.parse_one(bound.sql, read="spark").find_all(exp.Placeholder))
    assert "__analyzer" not in bound.sql + athena.sql + spark.sql


def test_a_hostile_value_is_a_literal_never_sql() -> None:
    hostile = "x' or '1'='1"
    sql = dialects.transpile("select * from events where eventName = $name", "spark", values={"name": hostile}).sql
    where = sqlglot.parse_one(sql, read="spark").find(exp.Where)
    assert where is not None
    literals = [lit.name for lit in where.find_all(exp.Literal)]
    assert literals == [hostile] and not list(where.find_all(exp.Or))
    assert literal_text(hostile) == "'x'' or ''1''=''1'"  # an Athena execution parameter, quoted
    assert literal_text(30) == "30" and literal_text(True) == "TRUE"


def test_a_frame_offset_is_a_literal_interval_on_spark() -> None:
    detection = CATALOGUE["console-brute-force"]
    sql = dialects.transpile_detection(detection, "spark", values={**detection.defaults, "window_minutes": 17}).sql
    assert "BETWEEN INTERVAL '17' MINUTE PRECEDING AND CURRENT ROW" in " ".join(sql.upper().split())


def test_a_construct_without_translation_is_named_at_load_time(tmp_path: Path) -> None:
    body = (
        (CATALOGUE.directory / "_template.sql")
        .read_text()
        .replace(
            "json_extract_string(requestParameters, '$.userName') as target_user_name",
            "damerau_levenshtein(coalesce(identity_user_name, ''), 'x')::varchar as target_user_name",
            1,
        )
    )
    assert "damerau_levenshtein" in body
    folder = user_detection(tmp_path / "mine", "edit-distance", sql=body)
    catalogue = load_catalogue(extra=[folder])  # DuckDB has the function: the detection loads and runs
    mine = catalogue["edit-distance"]
    with pytest.raises(CatalogueError) as raised:
        dialects.check_catalogue([mine], ["spark"])
    message = str(raised.value)
    assert "edit-distance" in message and str(mine.sql_path) in message
    assert "damerau_levenshtein(" in message and "Spark SQL" in message
    with pytest.raises(CatalogueError, match="damerau_levenshtein"):
        dialects.check_catalogue([mine], ["athena"])
    dialects.check_catalogue([catalogue["console-login-failures"]], ["spark"])  # the others still transpile


def test_mixed_sort_directions_in_one_ordered_aggregate_are_named(tmp_path: Path) -> None:
    sql = "select list(eventID order by eventTime, eventID desc) as ids from events"
    fault = r"`ARRAY_AGG\(events.eventid ORDER BY .*ascending and descending"
    with pytest.raises(dialects.TranspileError, match=fault):
        dialects.transpile(sql, "spark")
    assert "ARRAY_AGG" in dialects.transpile(sql, "trino").sql  # Trino orders an aggregate itself
    # the template a user starts from transpiles as it is
    dialects.check_catalogue([load_catalogue(extra=[user_detection(tmp_path / "t", "tpl")])["tpl"]])


@pytest.fixture(scope="module")
def dataset(fixtures_dataset: Path) -> Path:
    return fixtures_dataset


def test_trino_round_trip_gives_the_same_alerts(dataset: Path) -> None:
    """Athena cannot be reached from here: each detection's Trino SQL (and the events and staging views'),
    read back by sqlglot's Trino reader into DuckDB's dialect and run, alert by alert as the catalogue."""
    con = connect(dataset)
    try:
        expected = run_detections(con).alerts

        def back(sql: str) -> str:
            return sqlglot.transpile(sql, read="trino", write="duckdb")[0]

        con.execute("create or replace temp view events as " + back(dialects.events_query("trino")))
        for name, sql in dialects.view_queries("trino"):
            con.execute(f"create or replace temp view {name} as " + back(sql))
        found: list[dict] = []
        for detection in DETECTIONS:
            trino = dialects.transpile_detection(detection, "trino", values=detection.defaults).sql
            rows = con.sql(back(trino)).pl().to_dicts()
            found += [{**row, "detection_id": detection.id} for row in rows]
    finally:
        con.close()
    assert expected.height > 20
    assert alert_keys(found) == alert_keys(expected.to_dicts())


def test_the_window_deduplication_reads_back_as_the_index(dataset: Path) -> None:
    con = connect(dataset)
    try:
        indexed = con.execute("select count(*) from events").fetchone()
        sql = sqlglot.transpile(dialects.events_query("trino"), read="trino", write="duckdb")[0]
        windowed = con.execute(f"select count(*) from ({sql})").fetchone()
        total = con.execute("select count(*) from events_all").fetchone()
    finally:
        con.close()
    assert indexed == windowed and total is not None and indexed is not None and total[0] >= indexed[0]


def test_detections_show_prints_the_sql_in_a_dialect() -> None:
    from typer.testing import CliRunner

    from analyzer.cli import app

    runner = CliRunner()
    for dialect, reader, params in (
        ("athena", "trino", "execution parameters, in order: window_minutes"),
        ("spark", "spark", "named parameters :window_minutes"),
        ("trino", "trino", "execution parameters"),
    ):
        result = runner.invoke(app, ["detections", "show", "console-brute-force", "--dialect", dialect])
        assert result.exit_code == 0, result.output
        head, _, sql = result.output.partition(f"SQL ({dialect}, transpiled from console-brute-force.sql; ")
        assert "console-brute-force: " in head and "Parameters:" in head and sql.startswith(params)
        sqlglot.parse_one(sql.split("\n", 2)[2], read=reader)
    plain = runner.invoke(app, ["detections", "show", "console-brute-force"]).output
    assert "SQL (console-brute-force.sql):" in plain and "json_object(" in plain  # duckdb: as written
    bad = runner.invoke(app, ["detections", "show", "console-brute-force", "--dialect", "oracle"])
    assert bad.exit_code == 2


def test_list_indexes_keep_duckdb_meaning() -> None:
    """``l[-1]`` is the last element and ``l[1]`` the first in DuckDB (sqlglot's reader shifts literal
    indexes by one: signin-anomaly's ``event_ids[-1]`` once became the second to last on Spark)."""
    import duckdb

    sql = "select l[-1] as last, l[1] as first, l[2] as second, l[9] as beyond from (select ['a', 'b', 'c'] as l)"
    direct = duckdb.sql(sql).fetchall()
    assert direct == [("c", "a", "b", None)]
    trino = dialects.transpile(sql, "trino", values={}).sql
    assert "ELEMENT_AT(_0.l, -1)" in " ".join(trino.split())
    assert duckdb.sql(sqlglot.transpile(trino, read="trino", write="duckdb")[0]).fetchall() == direct
    spark = " ".join(dialects.transpile(sql, "spark", values={}).sql.split())
    assert "TRY_ELEMENT_AT(_0.l, -1)" in spark and "TRY_ELEMENT_AT(_0.l, 1)" in spark


def test_a_list_slice_is_named_not_mistranslated() -> None:
    """DuckDB's ``l[a:b]`` is inclusive and 1-based; an element index on the other engines would
    silently take one element, so the construct is refused by name."""
    sql = "select l[1:2] as head from (select ['a', 'b', 'c'] as l)"
    for dialect in ("spark", "trino"):
        with pytest.raises(dialects.TranspileError, match="list slice"):
            dialects.transpile(sql, dialect, values={})
