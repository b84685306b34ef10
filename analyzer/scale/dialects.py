"""The catalogue in Spark SQL and Trino/Athena SQL: sqlglot, plus the rewrites its DuckDB reader lacks.

The detections (``queries/*.sql``) and the staging views they read (:mod:`analyzer.store.views`) are
written once, in DuckDB's dialect. sqlglot parses them, its optimizer qualifies every column and types
every expression against the views' real columns (DuckDB's own ``describe``), and this module rewrites
what sqlglot's generators would otherwise get wrong, so the result means on Spark and Trino what it
means on DuckDB:

- ``json_object(k, v, ...)``: Spark ``to_json(named_struct(...))`` (nulls kept, nested objects nested),
  Trino ``json_format(cast(map(...) as json))``; timestamps in it printed as DuckDB prints them;
- ``list(x order by ...)`` and ``first(x order by ...)``: ordered (Spark has no ordered aggregate:
  ``array_sort`` of structs, ``min_by``), NULLs last as DuckDB sorts them;
- ``count(distinct x) over w`` (neither engine has it): the size of the window's distinct set;
- ``json_extract_string(x, '$.a[*]')``/``json_extract(x, '$.a[*]')``: a list (``from_json``/``cast``);
- ``list_distinct`` (DuckDB drops NULLs), ``list_has_any``, ``list_append``, ``list_concat`` (NULL is
  empty), ``len`` of a list, ``to_minutes`` (an interval; a window frame's offset on Spark);
- ``union all by name``, ``* exclude (...)``, ``as materialized``: spelled out from the known columns.

A construct left that neither engine knows is a :class:`TranspileError` naming the detection and the
construct, raised when the catalogue is loaded for that engine (:func:`check_catalogue`), never a query
that fails half-way through a run.

Parameters (``$name``): shown as ``:name`` for Spark (its named parameter markers) and ``?`` for
Trino/Athena (execution parameters, in the order :attr:`Transpiled.params` lists). To run on Spark,
:func:`transpile` substitutes each value as a literal node of the tree (``values=``): a value is never
pasted into SQL text, and a frame offset such as ``to_minutes($window_minutes)`` stays a constant, as
Spark requires.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.tokens import TokenType

from analyzer.errors import AnalyzerError
from analyzer.timespec import utc

if TYPE_CHECKING:
    from analyzer.detect.catalogue import Detection

#: The dialects ``analyzer detections show --dialect`` prints; athena is Trino's SQL (engine v3).
DIALECTS = ("duckdb", "spark", "trino", "athena")
TARGETS = {"spark": "spark", "trino": "trino", "athena": "athena"}

#: The relations a query may read, whose columns :func:`relation_columns` asks DuckDB for.
RELATIONS = (
    "events",
    "events_all",
    "events_superseded",
    "console_signins",
    "identity_center_signins",
    "identity_center_workflows",
    "identity_changes",
    "signins",
    "data_extent",
    "log_object_rewrites",
)
#: The staging views, in the order they must be created (each reads only those before it).
VIEW_ORDER = (
    "console_signins",
    "identity_center_signins",
    "identity_center_workflows",
    "identity_changes",
    "signins",
    "data_extent",
    "log_object_rewrites",
)

_JSON_OBJECT = "__analyzer_json_object"
_PARAM_MARK = "__analyzer_param_"


class TranspileError(AnalyzerError):
    """A query uses a construct with no translation to the target dialect: named, with the query."""


@dataclass(frozen=True)
class Transpiled:
    """A query in one dialect; ``params``: its parameters, in the order of its ``?`` (Trino/Athena) or
    as its ``:name`` markers (Spark); empty when the values were substituted."""

    sql: str
    params: tuple[str, ...] = ()


# -- the columns of every relation, from DuckDB itself ------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def relation_columns() -> dict[str, dict[str, str]]:
    """Every relation a detection may read, column → DuckDB type, as DuckDB defines them over the
    canonical schema (an empty table: no data is read)."""
    import pyarrow as pa

    from analyzer.schema import PARTITION_COLUMN, SCHEMA
    from analyzer.store.engine import connect

    empty = SCHEMA.empty_table().append_column(PARTITION_COLUMN, pa.array([], pa.date32()))
    con = connect(table=empty)
    try:
        return {
            name: {row[0]: row[1] for row in con.execute(f"describe {name}").fetchall()}  # our names
            for name in RELATIONS
        }
    finally:
        con.close()


# -- parsing ------------------------------------------------------------------------------------------------------


def _rename_json_object(sql: str) -> str:
    """``json_object(`` as a plain function name: sqlglot reads ``json_object('k', x is not null, ...)``
    as SQL/JSON's ``KEY ... VALUE ... NULL ON NULL`` syntax and fails. Tokens, not text: a string or
    comment holding the word stays as it is."""
    tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)
    pieces: list[str] = []
    last = 0
    for i, token in enumerate(tokens):
        if (
            token.text.lower() == "json_object"
            and i + 1 < len(tokens)
            and tokens[i + 1].token_type == TokenType.L_PAREN
        ):
            pieces += [sql[last : token.start], _JSON_OBJECT]
            last = token.end + 1
    pieces.append(sql[last:])
    return "".join(pieces)


def parse(sql: str, name: str = "query") -> exp.Expression:
    """DuckDB SQL, qualified and typed against :func:`relation_columns` (a copy: callers may change it)."""
    return _parsed(sql, name).copy()


@functools.lru_cache(maxsize=256)
def _parsed(sql: str, name: str) -> exp.Expression:
    try:
        tree = sqlglot.parse_one(_rename_json_object(sql), read="duckdb")
    except SqlglotError as exc:
        raise TranspileError(f"{name}: sqlglot cannot read it: {_first_line(exc)}") from None
    schema: dict[str, object] = dict(relation_columns())
    try:
        tree = qualify(tree, schema=schema, dialect="duckdb", identify=False, validate_qualify_columns=False)
        return _typed(tree, schema)
    except SqlglotError as exc:
        raise TranspileError(f"{name}: its columns cannot be resolved: {_first_line(exc)}") from None


def _typed(tree: Any, schema: dict[str, object]) -> exp.Expression:
    typed = annotate_types(tree, schema=schema, dialect="duckdb")
    assert isinstance(typed, exp.Expression)
    return typed


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n")[0].split())


# -- the rewrites ----------------------------------------------------------------------------------------------------


def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _str(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _is_array(node: exp.Expression) -> bool:
    return node.type is not None and node.type.is_type(exp.DataType.Type.ARRAY)


def _maybe_array(node: exp.Expression) -> bool:
    """A list, or of a type sqlglot could not infer (a list_filter's result: strings' types are known)."""
    kind = node.type
    return kind is None or kind.is_type(exp.DataType.Type.ARRAY, exp.DataType.Type.UNKNOWN)


def _is_timestamp(node: exp.Expression) -> bool:
    return (
        node.type is not None
        and node.type.is_type(*exp.DataType.TEMPORAL_TYPES)
        and not node.type.is_type(exp.DataType.Type.DATE)
    )


def _lambda(var: str, body: Callable[[exp.Expression], exp.Expression]) -> exp.Lambda:
    ident = exp.to_identifier(var)
    return exp.Lambda(this=body(exp.column(var)), expressions=[ident])


def _not_null(array: exp.Expression) -> exp.Expression:
    return exp.ArrayFilter(
        this=array, expression=_lambda("_e", lambda e: exp.Not(this=exp.Is(this=e, expression=exp.null())))
    )


def _copy_type(new: exp.Expression, old: exp.Expression) -> exp.Expression:
    if old.type is not None and not old.type.is_type(exp.DataType.Type.UNKNOWN) and new.type is None:
        new.type = old.type.copy()
    return new


@dataclass
class _Context:
    target: str  # "spark" or "trino" (athena is trino)
    name: str
    values: Mapping[str, Any] | None

    def fail(self, construct: exp.Expression | str, why: str) -> TranspileError:
        text = construct if isinstance(construct, str) else construct.sql("duckdb")
        text = text if len(text) <= 80 else text[:77] + "..."
        engine = "Spark SQL" if self.target == "spark" else "Trino/Athena SQL"
        return TranspileError(f"{self.name}: `{text}` has no {engine} translation: {why}")


def _order_keys(ctx: _Context, order: exp.Order) -> tuple[list[exp.Expression], bool]:
    """The sort keys of an ordered aggregate as struct fields that sort as DuckDB does (NULLs last
    unless NULLS FIRST: a flag field before each key); True when every key is descending."""
    keys = list(order.expressions)
    directions = {bool(k.args.get("desc")) for k in keys}
    if len(directions) > 1:
        construct: exp.Expression = order.parent if isinstance(order.parent, exp.Expression) else order
        raise ctx.fail(construct, "ascending and descending keys in one ordered aggregate")
    descending = directions == {True}
    fields: list[exp.Expression] = []
    for i, key in enumerate(keys):
        value = key.this
        nulls_first = bool(key.args.get("nulls_first"))
        # ascending: min of (is null, key) puts NULLs last; descending: max of (is not null, key)
        flag: exp.Expression = exp.Is(this=value.copy(), expression=exp.null())
        if descending != nulls_first:
            flag = exp.Not(this=flag)
        fields += [_str(f"n{i}"), flag, _str(f"k{i}"), value.copy()]
    return fields, descending


def _spark_sorted_list(ctx: _Context, value: exp.Expression, order: exp.Order) -> tuple[exp.Expression, exp.Anonymous]:
    """``list(value order by ...)`` on Spark: transform(array_sort(collect_list(struct)), s -> s.v)."""
    fields, descending = _order_keys(ctx, order)
    struct = _fn("NAMED_STRUCT", *fields, _str("v"), value)
    collected = _fn("COLLECT_LIST", struct)
    ordered = _fn("SORT_ARRAY", collected, exp.false()) if descending else _fn("ARRAY_SORT", collected)
    lam = exp.Lambda(
        this=exp.Dot(this=exp.column("_s"), expression=exp.to_identifier("v")), expressions=[exp.to_identifier("_s")]
    )
    return _fn("TRANSFORM", ordered, lam), collected


def _json_value(ctx: _Context, value: exp.Expression) -> exp.Expression:
    """One value of a JSON object, as the target renders what DuckDB's json_object renders."""
    nested = value.meta.get("json_object")
    if nested is not None:
        return nested  # an object inside an object: the struct (Spark) or JSON (Trino) itself
    if isinstance(value, exp.Case) and any(
        isinstance(branch, exp.Expression) and branch.meta.get("json_object") is not None
        for branch in [*(i.args.get("true") for i in value.args.get("ifs", [])), value.args.get("default")]
    ):
        for if_ in value.args.get("ifs", []):
            if_.set("true", _json_value(ctx, if_.args["true"]))
        if value.args.get("default") is not None:
            value.set("default", _json_value(ctx, value.args["default"]))
        return value
    if value.type is not None and value.type.is_type(exp.DataType.Type.JSON):
        raise ctx.fail(value, "a JSON value inside json_object (only a nested json_object is)")
    if isinstance(value, exp.Null):
        return exp.cast(value, "varchar")
    if _is_timestamp(value):  # DuckDB: "2024-05-01 12:00:00.12+00" (fraction only when there is one)
        if ctx.target == "spark":
            text: exp.Expression = _fn("DATE_FORMAT", value, _str("yyyy-MM-dd HH:mm:ss.SSSSSS"))
        else:
            text = exp.TimeToStr(this=value, format=_str("%Y-%m-%d %H:%M:%S.%f"))
        trimmed = exp.RegexpReplace(this=text, expression=_str(r"\.?0+$"), replacement=_str(""))
        value = exp.DPipe(this=trimmed, expression=_str("+00"))
    if ctx.target == "spark":
        return value
    # Trino: the value as a JSON value. CAST(text AS JSON) would be a JSON string on Trino but parsed as
    # JSON text by DuckDB (the round trip's reader); one-element array to JSON, element 0, is the same in both.
    as_array = exp.cast(exp.Array(expressions=[value]), "json")
    return exp.JSONExtract(
        this=as_array, expression=exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathSubscript(this=0)])
    )


def _json_object(ctx: _Context, node: exp.Anonymous) -> exp.Expression:
    args = list(node.expressions)
    if len(args) % 2 or not all(isinstance(k, exp.Literal) and k.is_string for k in args[::2]):
        raise ctx.fail("json_object(...)", "its keys must be string literals, one value each")
    keys = [k.copy() for k in args[::2]]
    values = [_json_value(ctx, v) for v in args[1::2]]
    if ctx.target == "spark":
        struct = _fn("NAMED_STRUCT", *[x for pair in zip(keys, values, strict=True) for x in pair])
        options = _fn("MAP", _str("ignoreNullFields"), _str("false"))
        result: exp.Expression = _fn("TO_JSON", struct.copy(), options)
        result.meta["json_object"] = struct
    else:
        mapping = _fn("MAP", exp.Array(expressions=keys), exp.Array(expressions=values))
        as_json = exp.cast(mapping, "json")
        result = _fn("JSON_FORMAT", as_json.copy())
        result.meta["json_object"] = as_json
    return result


def _wildcard_path(ctx: _Context, node: exp.Expression) -> exp.Expression | None:
    """A JSON path ending in ``[*]`` without it (None when there is no wildcard)."""
    path = node.args.get("expression")
    if not isinstance(path, exp.JSONPath):
        return None
    parts = list(path.expressions)
    wildcards = [
        i
        for i, p in enumerate(parts)
        if isinstance(p, exp.JSONPathWildcard)
        or (isinstance(p, exp.JSONPathSubscript) and isinstance(p.this, exp.JSONPathWildcard))
    ]
    if not wildcards:
        return None
    if wildcards != [len(parts) - 1]:
        raise ctx.fail(node, "a JSON path with a wildcard before its end")
    return exp.JSONPath(expressions=parts[:-1])


def _json_path_text(path: exp.Expression) -> exp.Literal:
    return _str(path.sql("duckdb").strip("'"))


def _rewrite(ctx: _Context, node: exp.Expression) -> exp.Expression:
    """One node, its children already rewritten (see :func:`_post_order`)."""
    spark = ctx.target == "spark"
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == _JSON_OBJECT:
            return _json_object(ctx, node)
        if name == "to_minutes" and len(node.expressions) == 1:
            minutes = node.expressions[0]
            if spark and isinstance(minutes, exp.Literal) and not minutes.is_string:
                return exp.Interval(this=_str(minutes.name), unit=exp.var("MINUTE"))  # a frame bound: a literal
            if spark:
                return _fn("MAKE_DT_INTERVAL", exp.Literal.number(0), exp.Literal.number(0), minutes)
            return exp.Mul(this=minutes, expression=exp.Interval(this=_str("1"), unit=exp.var("MINUTE")))
        raise ctx.fail(node, f"{node.name}() is not a function sqlglot knows in DuckDB's dialect")
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
        return node
    if isinstance(node, exp.Select) and node.args.get("qualify") is not None:
        _unqualify_qualify(node)
        return node
    if isinstance(node, exp.Union) and node.args.get("by_name"):
        return _union_by_name(ctx, node)
    if isinstance(node, exp.Placeholder):
        return _parameter(ctx, node)
    if (
        isinstance(node, exp.Alias)
        and isinstance(node.this, exp.Column)
        and node.this.name.lower() == node.alias.lower()
        and not node.this.this.quoted
    ):
        # ``t.x AS x``, as qualify writes every column: Spark's optimizer (RemoveRedundantAliases, Spark 4.x)
        # turns ``SELECT t.x AS x, size(collect_set(t.x) OVER w)`` into an invalid plan
        return node.this
    if isinstance(node, exp.JSONExtractScalar | exp.JSONExtract):
        path = _wildcard_path(ctx, node)
        if path is None:
            return node
        if spark:
            text = _fn("GET_JSON_OBJECT", node.this, _json_path_text(path))
            return _fn("FROM_JSON", text, _str("array<string>"))
        if isinstance(node, exp.JSONExtractScalar):
            return exp.cast(_fn("JSON_EXTRACT", node.this, _json_path_text(path)), "array(varchar)", dialect="trino")
        elements = exp.cast(_fn("JSON_EXTRACT", node.this, _json_path_text(path)), "array(json)", dialect="trino")
        return _fn("TRANSFORM", elements, _lambda("_j", lambda j: _fn("JSON_FORMAT", j)))  # JSON text, as Spark's
    if isinstance(node, exp.ArrayAgg):
        return _array_agg(ctx, node)
    if isinstance(node, exp.First) and isinstance(node.this, exp.Order):
        value, order = node.this.this, node.this
        if spark:
            fields, descending = _order_keys(ctx, order)
            return _fn("MAX_BY" if descending else "MIN_BY", value, _fn("NAMED_STRUCT", *fields))
        agg = exp.ArrayAgg(this=exp.Order(this=value, expressions=order.expressions))
        result = _fn("ELEMENT_AT", agg, exp.Literal.number(1))
        result.meta["aggregate"] = agg
        return result
    if isinstance(node, exp.Filter | exp.Window):
        return _wrapped_aggregate(ctx, node)
    if (
        isinstance(node, exp.Bracket)
        and len(node.expressions) == 1
        and _maybe_array(node.this)
        and not node.args.get("offset")
    ):  # DuckDB's l[i]: 1-based, l[-1] the last, NULL out of range
        if isinstance(node.expressions[0], exp.Slice):
            raise ctx.fail(node, "a list slice (l[a:b])")
        return _fn("TRY_ELEMENT_AT" if spark else "ELEMENT_AT", node.this, _duckdb_index(node.expressions[0]))
    if isinstance(node, exp.TimeToStr) and spark and isinstance(node.args.get("format"), exp.Literal):
        return _fn("DATE_FORMAT", node.this, _str(java_pattern(ctx, node.args["format"].name)))
    if isinstance(node, exp.RegexpFullMatch):  # the whole string: an anchored search
        pattern = node.expression
        anchored: exp.Expression = (
            _str(f"^(?:{pattern.name})$")
            if isinstance(pattern, exp.Literal)
            else exp.DPipe(this=exp.DPipe(this=_str("^(?:"), expression=pattern), expression=_str(")$"))
        )
        return exp.RegexpLike(this=node.this, expression=anchored)
    if isinstance(node, exp.ArrayDistinct):  # DuckDB's list_distinct drops NULLs
        return exp.ArrayDistinct(this=_not_null(node.this))
    if isinstance(node, exp.ArrayOverlaps):
        if spark:
            return _fn("ARRAYS_OVERLAP", node.this, node.expression)
        # Trino has arrays_overlap, which sqlglot's Trino reader does not know: the same, in what it knows
        common = exp.ArrayIntersect(expressions=[node.this, node.expression])
        return exp.GT(this=_fn("CARDINALITY", common), expression=exp.Literal.number(0))
    if isinstance(node, exp.Length) and _maybe_array(node.this):
        return _fn("SIZE" if spark else "CARDINALITY", node.this)
    if isinstance(node, exp.ArrayAppend):
        return _fn("CONCAT", _empty_if_null(ctx, node.this), exp.Array(expressions=[node.expression]))
    if isinstance(node, exp.ArrayConcat):
        return _fn("CONCAT", *[_empty_if_null(ctx, a) for a in [node.this, *node.expressions]])
    if isinstance(node, exp.ArrayContains) and not spark:
        return _fn("CONTAINS", node.this, node.expression)
    return node


_STRFTIME = {
    "Y": "yyyy",
    "y": "yy",
    "m": "MM",
    "d": "dd",
    "H": "HH",
    "M": "mm",
    "S": "ss",
    "f": "SSSSSS",
    "j": "DDD",
    "b": "MMM",
    "B": "MMMM",
    "a": "EEE",
    "A": "EEEE",
    "z": "xx",
    "Z": "zzz",
    "%": "%",
}


def java_pattern(ctx: _Context, strftime: str) -> str:
    """A strftime format as a Spark (Java) datetime pattern, literal letters quoted (``'T'``)."""
    out: list[str] = []
    literal_run: list[str] = []

    def flush() -> None:
        if literal_run:
            text = "".join(literal_run).replace("'", "''")
            out.append(f"'{text}'" if any(c.isalpha() or c == "'" for c in text) else text)
            literal_run.clear()

    i = 0
    while i < len(strftime):
        char = strftime[i]
        if char == "%" and i + 1 < len(strftime):
            code = strftime[i + 1]
            if code not in _STRFTIME:
                raise ctx.fail(f"strftime(..., '{strftime}')", f"the format code %{code}")
            flush()
            out.append(_STRFTIME[code])
            i += 2
            continue
        literal_run.append(char)
        i += 1
    flush()
    return "".join(out)


def _duckdb_index(index: exp.Expression) -> exp.Expression:
    """The index as written in DuckDB (1-based, -1 the last): sqlglot's reader shifted a literal one down
    (``l[-1]`` is read as ``l[-2]``, ``l[1]`` as ``l[0]``) and left any other expression as it was."""
    negative = isinstance(index, exp.Neg) and isinstance(index.this, exp.Literal)
    literal = index.this if negative else index
    if isinstance(literal, exp.Literal) and not literal.is_string:
        value = (-int(literal.name) if negative else int(literal.name)) + 1
        return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))
    return index


def _unqualify_qualify(select: exp.Select) -> None:
    """Columns of a QUALIFY condition (outside its window functions) by their output name: sqlglot turns
    QUALIFY into a filter over a subquery, where ``t.x`` no longer resolves but the output ``x`` does."""
    names = {p.alias_or_name.lower() for p in select.expressions}
    condition = select.args["qualify"]
    for column in list(condition.find_all(exp.Column)):
        if column.find_ancestor(exp.Window) is None and column.table and column.name.lower() in names:
            column.set("table", None)


def _empty_if_null(ctx: _Context, array: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=array, expressions=[exp.Array(expressions=[])])


def _array_agg(ctx: _Context, node: exp.ArrayAgg) -> exp.Expression:
    inner = node.this
    if isinstance(inner, exp.Order):
        if ctx.target != "spark":
            return node  # Trino: array_agg(x ORDER BY ...), NULLs last as in DuckDB
        result, collected = _spark_sorted_list(ctx, inner.this, inner)
        result.meta["aggregate"] = collected
        return result
    if isinstance(inner, exp.Distinct) and ctx.target == "spark":
        if len(inner.expressions) != 1:
            raise ctx.fail(node, "list(distinct ...) of more than one value")
        return _fn("COLLECT_SET", inner.expressions[0])
    return node


def _wrapped_aggregate(ctx: _Context, node: exp.Filter | exp.Window) -> exp.Expression:
    """``agg FILTER (...)`` / ``agg OVER (...)`` where ``agg`` became ``f(agg')``: ``f(agg' FILTER/OVER)``."""
    child = node.this
    if isinstance(node, exp.Window) and isinstance(child, exp.Count) and isinstance(child.this, exp.Distinct):
        distinct = child.this.expressions
        if len(distinct) != 1:
            raise ctx.fail(child, "count(distinct ...) of more than one value over a window")
        if ctx.target == "spark":
            node.set("this", _fn("COLLECT_SET", distinct[0]))
            return _fn("SIZE", node)
        node.set("this", exp.ArrayAgg(this=distinct[0]))
        return _fn("CARDINALITY", exp.ArrayDistinct(this=_not_null(node)))
    if isinstance(node, exp.Window) and any(isinstance(a, exp.Distinct) for a in child.iter_expressions()):
        raise ctx.fail(child, "a DISTINCT aggregate over a window")
    inner = child.meta.get("aggregate") if isinstance(child, exp.Expression) else None
    if inner is None:
        return node
    parent = inner.parent
    wrapped = node.copy()
    wrapped.set("this", inner.copy())
    if parent is None:
        return wrapped
    inner.replace(wrapped)
    child.meta.pop("aggregate", None)
    return child


def _union_by_name(ctx: _Context, node: exp.Union) -> exp.Expression:
    left, right = node.this, node.expression
    if not isinstance(left, exp.Select) or not isinstance(right, exp.Select):
        raise ctx.fail("union all by name", "only between two selects")
    names = [p.alias_or_name for p in left.expressions]
    by_name = {p.alias_or_name: p for p in right.expressions}
    if sorted(names) != sorted(by_name) or "*" in names:
        raise ctx.fail("union all by name", "both sides must name the same columns")
    right.set("expressions", [by_name[n] for n in names])
    node.set("by_name", None)
    return node


def _parameter(ctx: _Context, node: exp.Placeholder) -> exp.Expression:
    name = node.name
    if not name:
        raise ctx.fail("?", "a positional parameter (write $name)")
    if ctx.values is None:
        return exp.column(f"{_PARAM_MARK}{name}")
    if name not in ctx.values:
        raise AnalyzerError(f"{ctx.name}: no value for parameter ${name}")
    return literal(ctx.values[name])


def literal(value: Any) -> exp.Expression:
    """A parameter value as a literal node (the generator quotes and escapes it)."""
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if value is None:
        return exp.null()
    if isinstance(value, datetime):
        stamp = utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
        return exp.cast(exp.Literal.string(stamp), "timestamp")  # the session's time zone is UTC
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), "date")
    raise AnalyzerError(f"a parameter value of type {type(value).__name__} cannot be a literal")


def _post_order(node: exp.Expression, visit: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _post_order(value, visit))
        elif isinstance(value, list):
            node.set(key, [_post_order(v, visit) if isinstance(v, exp.Expression) else v for v in value])
    new = visit(node)
    return new if new is node else _copy_type(new, node)


# -- the entry points ------------------------------------------------------------------------------------------------

#: Functions the rewrites emit or sqlglot passes through by name, that each target has.
_KNOWN = {
    "spark": {
        "NAMED_STRUCT",
        "TO_JSON",
        "MAP",
        "COLLECT_LIST",
        "COLLECT_SET",
        "ARRAY_SORT",
        "TRANSFORM",
        "MIN_BY",
        "MAX_BY",
        "SIZE",
        "ARRAYS_OVERLAP",
        "CONCAT",
        "GET_JSON_OBJECT",
        "FROM_JSON",
        "MAKE_DT_INTERVAL",
        "DATE_FORMAT",
        "TRY_ELEMENT_AT",
        "SORT_ARRAY",
    },
    "trino": {
        "MAP",
        "JSON_FORMAT",
        "TRANSFORM",
        "ELEMENT_AT",
        "CARDINALITY",
        "ARRAYS_OVERLAP",
        "CONCAT",
        "JSON_EXTRACT",
        "CONTAINS",
        "FORMAT_DATETIME",
    },
}


def rewrite(
    tree: exp.Expression, dialect: str, *, name: str = "query", values: Mapping[str, Any] | None = None
) -> exp.Expression:
    """A parsed (:func:`parse`) DuckDB tree rewritten for ``dialect`` (spark, trino or athena)."""
    target = "spark" if dialect == "spark" else "trino"
    ctx = _Context(target, name, values)
    result = _post_order(tree.copy(), lambda node: _rewrite(ctx, node))
    for fn in result.find_all(exp.Anonymous):
        if fn.name.upper() not in _KNOWN[target]:
            raise ctx.fail(fn, f"{fn.name}() is not known to this translation")
    return result


def _generate(tree: exp.Expression, dialect: str, name: str, pretty: bool) -> str:
    try:
        return tree.sql(dialect=TARGETS[dialect], pretty=pretty, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        engine = "Spark SQL" if dialect == "spark" else "Trino/Athena SQL"
        raise TranspileError(f"{name}: no {engine} translation: {_first_line(exc)}") from None


_MARK = re.compile(re.escape(_PARAM_MARK) + r"([A-Za-z_][A-Za-z0-9_]*)")


def _markers_to_parameters(sql: str, dialect: str) -> tuple[str, tuple[str, ...]]:
    """The parameter markers of generated SQL as ``:name`` (Spark) or ``?`` (Trino), by tokens (a string
    literal that happens to hold a marker's text stays as it is)."""
    tokens = sqlglot.Dialect.get_or_raise(TARGETS[dialect]).tokenize(sql)
    pieces: list[str] = []
    names: list[str] = []
    last = 0
    for token in tokens:
        match = _MARK.fullmatch(token.text) if token.token_type in (TokenType.VAR, TokenType.IDENTIFIER) else None
        if match is None:
            continue
        start = token.start - (1 if token.token_type == TokenType.IDENTIFIER else 0)
        pieces += [sql[last:start], f":{match[1]}" if dialect == "spark" else "?"]
        last = token.end + 1 + (1 if token.token_type == TokenType.IDENTIFIER else 0)
        names.append(match[1])
    pieces.append(sql[last:])
    if dialect == "spark":
        names = list(dict.fromkeys(names))
    return "".join(pieces), tuple(names)


def transpile(
    sql: str, dialect: str, *, name: str = "query", values: Mapping[str, Any] | None = None, pretty: bool = True
) -> Transpiled:
    """DuckDB ``sql`` in ``dialect``. ``values``: substitute the parameters as literals (to run it);
    without, they stay parameters (``:name`` for Spark, ``?`` for Trino/Athena, in ``params`` order)."""
    if dialect not in DIALECTS:
        raise AnalyzerError(f"unknown dialect {dialect!r} (one of {', '.join(DIALECTS)})")
    if dialect == "duckdb":
        return Transpiled(sql)
    tree = rewrite(parse(sql, name), dialect, name=name, values=values)
    text = _generate(tree, dialect, name, pretty)
    if values is not None:
        return Transpiled(text)
    text, params = _markers_to_parameters(text, dialect)
    return Transpiled(text, params)


def detection_sql(detection: Detection) -> str:
    """What runs for a detection: its SQL in the alert shape's select (:func:`~analyzer.detect.shape.wrap_query`)."""
    from analyzer.detect.shape import wrap_query

    return wrap_query(detection.sql, detection.severity)


def _label(detection: Detection) -> str:
    where = detection.sql_path.name if detection.origin == "bundled" else str(detection.sql_path)
    return f"detection {detection.id} ({where})"


def transpile_detection(
    detection: Detection, dialect: str, *, values: Mapping[str, Any] | None = None, pretty: bool = True
) -> Transpiled:
    """A detection (in the alert shape) in ``dialect``; ``values`` as for :func:`transpile`. The
    fixed values of a Sigma rule (``detection.bound``) are always substituted."""
    bound = dict(detection.bound)
    if values is not None:
        bound.update(values)
    if dialect == "duckdb":
        return Transpiled(detection_sql(detection))
    if bound and values is None:  # a Sigma rule's own values are part of its query: substituted either way
        tree = parse(detection_sql(detection), _label(detection))
        tree = _bind_some(tree, bound)
        rewritten = rewrite(tree, dialect, name=_label(detection))
        text, params = _markers_to_parameters(_generate(rewritten, dialect, _label(detection), pretty), dialect)
        return Transpiled(text, params)
    return transpile(
        detection_sql(detection),
        dialect,
        name=_label(detection),
        values=bound if values is not None else None,
        pretty=pretty,
    )


def _bind_some(tree: exp.Expression, values: Mapping[str, Any]) -> exp.Expression:
    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in values:
            return literal(values[node.name])
        return node

    return tree.transform(bind)


def check_catalogue(detections: Iterable[Detection], dialects: Iterable[str] = ("spark", "trino")) -> None:
    """Transpile every detection to every dialect; one :class:`~analyzer.detect.catalogue.CatalogueError`
    naming each detection and construct that has no translation (at load time, before any query runs)."""
    from analyzer.detect.catalogue import CatalogueError

    problems: list[str] = []
    wanted = list(dialects)
    for detection in detections:
        for dialect in wanted:
            try:
                transpile_detection(detection, dialect)
            except TranspileError as exc:
                problems.append(str(exc))
    if problems:
        raise CatalogueError(problems)


# -- the views ---------------------------------------------------------------------------------------------------------


def _view_select(name: str) -> str:
    """A staging view's query (DuckDB), from its ``create or replace view NAME as`` statement."""
    from analyzer.store import views

    for statement in views.STATEMENTS:
        match = re.match(r"\s*create or replace view (\w+) as\s", statement, re.IGNORECASE)
        if match and match[1] == name:
            return statement[match.end() :]
    raise AnalyzerError(f"no staging view {name}")


@functools.lru_cache(maxsize=16)
def view_queries(dialect: str, *, pretty: bool = True) -> list[tuple[str, str]]:
    """Every staging view a detection may read, (name, query in ``dialect``), in creation order."""
    return [
        (name, transpile(_view_select(name), dialect, name=f"view {name}", values={}, pretty=pretty).sql)
        for name in VIEW_ORDER
    ]


@functools.lru_cache(maxsize=16)
def events_query(dialect: str, *, duplicates: str | None = None, pretty: bool = True) -> str:
    """The deduplicating ``events`` query over ``events_all``: an anti join with the relation
    ``duplicates`` (the duplicate index: ``source_object``, ``record_index``), or without it the
    window over the event's identity (:data:`analyzer.store.engine.DEDUP_BY_WINDOW`)."""
    from analyzer.store.engine import DEDUP_BY_WINDOW

    if duplicates is None:
        sql = DEDUP_BY_WINDOW
    else:
        sql = (
            f"select e.* from events_all as e where not exists (select 1 from {duplicates} as d "  # noqa: S608
            "where d.source_object = e.source_object and d.record_index = e.record_index)"
        )
    schema: dict[str, object] = dict(relation_columns())
    if duplicates:
        schema[duplicates] = {"source_object": "VARCHAR", "record_index": "BIGINT"}
    tree = qualify(sqlglot.parse_one(sql, read="duckdb"), schema=schema, dialect="duckdb", identify=False)
    rewritten = rewrite(_typed(tree, schema), dialect, name="view events", values={})
    return _generate(rewritten, dialect, "view events", pretty)


def shown(detection: Detection, text: str, dialect: str) -> str:
    """``analyzer detections show`` text (:func:`analyzer.cli.docs.detection_text`) with the SQL in ``dialect``."""
    head, marker, _ = text.partition(f"SQL ({detection.sql_path.name}):")
    transpiled = transpile_detection(detection, dialect)
    if dialect == "spark":
        how = "named parameters :" + ", :".join(transpiled.params) if transpiled.params else "no parameters"
    else:
        how = (
            ("execution parameters, in order: " + ", ".join(transpiled.params))
            if transpiled.params
            else ("no execution parameters")
        )
    title = f"SQL ({dialect}, transpiled from {detection.sql_path.name}; {how}):"
    return (head if marker else text + "\n") + f"{title}\n\n{transpiled.sql.rstrip()}\n"
