"""Athena (issue 14), which cannot be reached from here: the DDL's column types checked field by field against
the Parquet files' schema, partition projection on event_date, the views in Trino SQL, and the query files
with their execution parameters in order (the round trip of the SQL itself: tests/test_dialects.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.detect import load_catalogue
from analyzer.errors import UsageError
from analyzer.scale import athena
from analyzer.schema import PARTITION_COLUMN, SCHEMA
from analyzer.store import snapshot as snapshots
from analyzer.store.layout import Layout

LOCATION = "s3://lake/cloudtrail"


def expected_type(kind: pa.DataType) -> exp.DataType:
    """What Athena must declare for an Arrow type, as sqlglot's tree (written independently of the code)."""
    if pa.types.is_struct(kind):
        fields = [exp.ColumnDef(this=exp.to_identifier(f.name), kind=expected_type(f.type)) for f in kind]
        return exp.DataType(this=exp.DataType.Type.STRUCT, expressions=fields, nested=True)
    simple = {pa.string(): "TEXT", pa.bool_(): "BOOLEAN", pa.int32(): "INT", pa.int64(): "BIGINT",
              pa.date32(): "DATE"}
    if pa.types.is_timestamp(kind):
        return exp.DataType.build("TIMESTAMP")
    return exp.DataType.build(simple[kind])


def declared(statement: str) -> tuple[list[tuple[str, exp.DataType]], exp.Expression]:
    tree = sqlglot.parse_one(statement, read="athena")
    assert isinstance(tree, exp.Create)
    schema = tree.this
    assert isinstance(schema, exp.Schema)
    return [(c.name, c.args["kind"]) for c in schema.expressions], tree


def walk(name: str, got: exp.DataType, want: exp.DataType) -> None:
    """Field by field: the same names in the same order, the same types, nested ones included."""
    assert got.this == want.this, f"{name}: declared {got.sql('athena')}, the files hold {want.sql('athena')}"
    if want.this == exp.DataType.Type.STRUCT:
        got_fields = [(f.name, f.args["kind"]) for f in got.expressions]
        want_fields = [(f.name, f.args["kind"]) for f in want.expressions]
        assert [n for n, _ in got_fields] == [n for n, _ in want_fields], f"{name}: struct fields differ"
        for (field, g), (_, w) in zip(got_fields, want_fields, strict=True):
            walk(f"{name}.{field}", g, w)


@pytest.fixture(scope="module")
def file_schema(fixtures_dataset: Path) -> pa.Schema:
    """The schema of a data file the dataset really holds (what `analyzer publish` uploads)."""
    snap = snapshots.read(Layout(fixtures_dataset))
    return pq.read_schema(fixtures_dataset / snap.paths()[0].removeprefix(str(fixtures_dataset) + "/"))


def test_table_columns_match_the_parquet_schema_field_by_field(file_schema: pa.Schema) -> None:
    assert file_schema.names == SCHEMA.names
    columns, tree = declared(athena.table_ddl(LOCATION))
    assert [name for name, _ in columns] == file_schema.names
    for (name, kind), field in zip(columns, file_schema, strict=True):
        walk(name, kind, expected_type(field.type))
    partitions = tree.find(exp.PartitionedByProperty)
    assert partitions is not None
    [partition] = partitions.this.expressions
    assert partition.name == PARTITION_COLUMN and partition.args["kind"].this == exp.DataType.Type.DATE


def test_the_superseded_table_matches_evidence_files() -> None:
    columns, _ = declared(athena.superseded_ddl(LOCATION))
    want = [*SCHEMA, pa.field(PARTITION_COLUMN, pa.date32()), pa.field("superseded_by", pa.string()),
            pa.field("superseded_at", pa.timestamp("us", tz="UTC"))]  # analyzer/store/versions.py writes these
    assert [n for n, _ in columns] == [f.name for f in want]
    for (name, kind), field in zip(columns, want, strict=True):
        walk(name, kind, expected_type(field.type))


def test_partition_projection_and_location() -> None:
    text = athena.table_ddl(LOCATION + "/", athena.Names("security", "trail_events"))
    assert "`security`.`trail_events`" in text and "LOCATION 's3://lake/cloudtrail/'" in text
    for key, value in {"projection.enabled": "true", "projection.event_date.type": "date",
                       "projection.event_date.format": "yyyy-MM-dd", "projection.event_date.range": "2013-11-01,NOW",
                       "storage.location.template": "s3://lake/cloudtrail/event_date=${event_date}/"}.items():
        assert f"'{key}' = '{value}'" in text
    for bad in ("lake/cloudtrail", "https://lake/x", "s3://"):
        with pytest.raises(UsageError):
            athena.table_ddl(bad)
    with pytest.raises(UsageError):
        athena.Names("db; drop", "t")


def test_views_read_the_named_table_and_parse_as_trino() -> None:
    names = athena.Names("security", "trail_events")
    statements = athena.view_ddl(names)
    assert statements[0].startswith("CREATE OR REPLACE VIEW `security`.`events` AS")
    events = sqlglot.parse_one(statements[0].split(" AS\n", 1)[1].rstrip(";"), read="trino")
    assert {t.name for t in events.find_all(exp.Table)} == {"trail_events"}  # deduplicates the table's rows
    assert events.find(exp.Window) is not None
    for statement in statements[1:]:
        sqlglot.parse_one(statement.split(" AS\n", 1)[1].rstrip(";"), read="trino")
    created = [s.split("`.`", 1)[1].split("`", 1)[0] for s in statements]
    assert created == ["events", "console_signins", "identity_center_signins", "identity_center_workflows",
                       "identity_changes", "signins", "data_extent", "log_object_rewrites"]


def test_query_files_list_execution_parameters_in_order(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["athena", "queries", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    catalogue = load_catalogue()
    assert sorted(p.stem for p in tmp_path.glob("*.sql")) == sorted(catalogue)
    text = (tmp_path / "console-brute-force.sql").read_text()
    header = next(line for line in text.splitlines() if "Execution parameters" in line)
    names = [pair.split("=")[0] for pair in header.split(": ", 1)[1].split(", ")]
    query = athena.queries([catalogue["console-brute-force"]])[0]
    assert names == list(query.params) and names.count("window_minutes") == 4
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    tree = sqlglot.parse_one(body.rstrip().rstrip(";"), read="trino")
    assert len(list(tree.find_all(exp.Placeholder))) == len(names)
    assert query.execution_parameters(catalogue["console-brute-force"].defaults)[0] == "15"


def test_ddl_command_prints_everything_in_order(runner: CliRunner) -> None:
    result = runner.invoke(app, ["athena", "ddl", "--location", LOCATION, "--database", "security"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.index("CREATE EXTERNAL TABLE IF NOT EXISTS `security`.`events_all`") < text.index(
        "`security`.`events_superseded`") < text.index("VIEW `security`.`events`") < text.index("`signins`")
    bad = runner.invoke(app, ["athena", "ddl", "--location", "lake/x"])
    assert bad.exit_code == 2 and "expected s3://BUCKET/PREFIX" in bad.output
