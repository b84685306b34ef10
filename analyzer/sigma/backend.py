"""A pySigma backend that writes a Sigma rule's detection as a DuckDB condition over ``events``.

Sigma semantics, kept:

* string matching is case-insensitive (``lower(x) = lower($v)``, ``ILIKE`` with ``\\`` escaping
  every literal ``%``/``_``/``\\``) unless the rule says ``|cased``; except on ``eventSource`` and
  ``eventName``, which keep a plain ``=`` / ``IN`` / ``LIKE`` so DuckDB still skips Parquet row
  groups (CloudTrail writes them in one spelling; a rule spelling them otherwise does not match);
* a field matches when *any* of its values does (a JSON path through arrays has many);
* a negation is NULL-safe: ``not coalesce((…), false)``: an absent field makes a filter false, so
  ``selection and not filter`` keeps the event (SQL's ``not NULL`` would drop it);
* ``field: null`` is an absent (or JSON null) field.

Every value is a bound DuckDB parameter (``$sigma_0``…), never pasted into the SQL; field paths are
resolved by :mod:`analyzer.sigma.fields`, which accepts only CloudTrail-shaped names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.deferred import DeferredQueryExpression
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
)

from analyzer.sigma.fields import Field, FieldError, resolve

PARAMS_KEY = "analyzer_params"
ESCAPE = "\\"


@dataclass
class Converted:
    """One rule's condition: SQL over the alias ``e`` of ``events``, and the values it binds."""

    where: str
    params: dict[str, Any] = field(default_factory=dict)


def _unsupported(message: str) -> SigmaFeatureNotSupportedByBackendError:
    return SigmaFeatureNotSupportedByBackendError(message)


class CloudTrailDuckDBBackend(TextQueryBackend):
    """Sigma → a DuckDB ``where`` condition on the events view (see the module docstring)."""

    name: ClassVar[str] = "analyzer: DuckDB over the CloudTrail dataset"
    formats: ClassVar[dict[str, str]] = {"default": "a condition with bound parameters (Converted)"}
    requires_pipeline: ClassVar[bool] = False

    precedence: ClassVar[tuple[type[ConditionItem], type[ConditionItem], type[ConditionItem]]] = (
        ConditionNOT,
        ConditionAND,
        ConditionOR,
    )
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "  # noqa: S105 - a SQL token, not a password
    or_token: ClassVar[str] = "or"  # noqa: S105 - a SQL token, not a password
    and_token: ClassVar[str] = "and"  # noqa: S105 - a SQL token, not a password
    not_token: ClassVar[str] = "not"  # noqa: S105 - a SQL token, not a password
    eq_token: ClassVar[str] = " = "  # noqa: S105 - a SQL token, not a password
    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = ESCAPE
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"
    add_escaped: ClassVar[str] = ESCAPE
    convert_or_as_in: ClassVar[bool] = True
    convert_and_as_in: ClassVar[bool] = False
    in_expressions_allow_wildcards: ClassVar[bool] = False
    field_in_list_expression: ClassVar[str] = "{field} {op} ({list})"
    or_in_operator: ClassVar[str] = "in"
    list_separator: ClassVar[str] = ", "

    # -- parameters -------------------------------------------------------------------------------------------

    def _param(self, state: ConversionState, value: Any) -> str:
        params: dict[str, Any] = cast(dict[str, Any], state.processing_state).setdefault(PARAMS_KEY, {})
        name = f"sigma_{len(params)}"
        params[name] = value
        return "$" + name

    def _field(self, name: str) -> Field:
        try:
            return resolve(name)
        except FieldError as exc:
            raise _unsupported(str(exc)) from exc

    @staticmethod
    def _any(ref: Field, predicate: str) -> str:
        """``predicate`` (over ``v``) true for the field's value, or for any of its values."""
        if ref.values is None:
            return predicate.replace("{v}", ref.scalar)
        return f"len(list_filter({ref.values}, lambda v: {predicate.replace('{v}', 'v')})) > 0"

    def _pattern(self, value: SigmaString) -> str:
        return value.convert(escape_char=ESCAPE, wildcard_multi="%", wildcard_single="_", add_escaped=ESCAPE)

    # -- conditions -------------------------------------------------------------------------------------------

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> str | None:
        arg = cond.args[0]
        if arg is None:
            return None
        expr = self.convert_condition_group(arg, state)
        if expr is None:
            return None
        if isinstance(expr, DeferredQueryExpression):
            raise _unsupported("negated deferred expressions are not supported")
        return f"not coalesce({expr}, false)"

    def decide_convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> bool:
        fields = {arg.field for arg in cond.args if isinstance(arg, ConditionFieldEqualsValueExpression)}
        if len(fields) != 1 or not resolve_safe(next(iter(fields))).pruned:
            return False
        if not all(
            isinstance(arg, ConditionFieldEqualsValueExpression) and isinstance(arg.value, SigmaString)
            for arg in cond.args
        ):
            return False
        return super().decide_convert_condition_as_in_expression(cond, state)

    def convert_condition_as_in_expression(self, cond: ConditionOR | ConditionAND, state: ConversionState) -> str:
        args = [arg for arg in cond.args if isinstance(arg, ConditionFieldEqualsValueExpression)]
        ref = self._field(args[0].field)
        values = [self._param(state, str(arg.value.to_plain())) for arg in args]
        return f"{ref.scalar} in ({', '.join(values)})"

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        ref = self._field(cond.field)
        value = cast(SigmaString, cond.value)
        cased = isinstance(value, SigmaCasedString) or ref.pruned
        if not value.contains_special():
            text = value.to_plain()
            if cased:
                return self._any(ref, "{v} = " + self._param(state, text))
            return self._any(ref, "lower({v}) = lower(" + self._param(state, text) + ")")
        pattern = self._param(state, self._pattern(value))
        operator = "like" if cased else "ilike"
        return self._any(ref, f"{{v}} {operator} {pattern} escape '{ESCAPE}'")

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return self.convert_condition_field_eq_val_str(cond, state)

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        ref = self._field(cond.field)
        number = cast(SigmaNumber, cond.value)
        return self._any(ref, "try_cast({v} as double) = " + self._param(state, float(number.number)))

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        ref = self._field(cond.field)
        value = cast(SigmaBool, cond.value)
        return self._any(ref, "lower({v}) = " + self._param(state, "true" if value.boolean else "false"))

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"{self._field(cond.field).scalar} is null"

    def convert_condition_field_exists(self, cond: ConditionFieldEqualsValueExpression, state: ConversionState) -> str:
        return f"{self._field(cond.field).scalar} is not null"

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"{self._field(cond.field).scalar} is null"

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        ref = self._field(cond.field)
        regex = cast(SigmaRegularExpression, cond.value)
        flags = {
            SigmaRegularExpressionFlag.IGNORECASE: "i",
            SigmaRegularExpressionFlag.MULTILINE: "m",
            SigmaRegularExpressionFlag.DOTALL: "s",
        }
        prefix = "".join(flags[f] for f in sorted(regex.flags, key=lambda f: f.name) if f in flags)
        pattern = regex.regexp.to_plain() if isinstance(regex.regexp, SigmaString) else str(regex.regexp)
        text = f"(?{prefix}){pattern}" if prefix else pattern
        return self._any(ref, "regexp_matches({v}, " + self._param(state, text) + ")")

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        cidr = cast(SigmaCIDRExpression, cond.value)
        patterns = [SigmaString(p) for p in cidr.expand(wildcard="*")]
        terms = [
            self._any(self._field(cond.field), f"{{v}} ilike {self._param(state, self._pattern(p))} escape '{ESCAPE}'")
            for p in patterns
        ]
        return "(" + " or ".join(terms) + ")"

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        ref = self._field(cond.field)
        compare = cast(SigmaCompareExpression, cond.value)
        operators = {
            SigmaCompareExpression.CompareOperators.LT: "<",
            SigmaCompareExpression.CompareOperators.LTE: "<=",
            SigmaCompareExpression.CompareOperators.GT: ">",
            SigmaCompareExpression.CompareOperators.GTE: ">=",
        }
        value = self._param(state, float(compare.number.number))
        return self._any(ref, f"try_cast({{v}} as double) {operators[compare.op]} {value}")

    def convert_condition_field_eq_field(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        reference = cast(SigmaFieldReference, cond.value)
        left = self._field(cond.field).scalar
        right = self._field(reference.field).scalar
        if getattr(reference, "starts_with", False) and getattr(reference, "ends_with", False):
            return f"contains(lower({left}), lower({right}))"
        if getattr(reference, "starts_with", False):
            return f"starts_with(lower({left}), lower({right}))"
        if getattr(reference, "ends_with", False):
            return f"ends_with(lower({left}), lower({right}))"
        return f"lower({left}) = lower({right})"

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        raise _unsupported("time-part modifiers (|minute, |hour, ...) are not supported")

    def convert_condition_field_eq_query_expr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        raise _unsupported("query expressions (placeholders expanded by a pipeline) are not supported")

    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> str:
        raise _unsupported("keyword search (values without a field) is not supported: name the field")

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> str:
        raise _unsupported("keyword search (values without a field) is not supported: name the field")

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState) -> str:
        raise _unsupported("keyword search (values without a field) is not supported: name the field")

    # -- output ------------------------------------------------------------------------------------------------

    def finalize_query_default(self, rule: Any, query: Any, index: int, state: ConversionState) -> Converted:
        if isinstance(query, DeferredQueryExpression) or state.has_deferred():
            raise _unsupported("deferred expressions are not supported")
        return Converted(str(query), dict(state.processing_state.get(PARAMS_KEY, {})))

    def finalize_output_default(self, queries: list[Any]) -> list[Any]:
        return queries


def resolve_safe(name: str) -> Field:
    """:func:`resolve`, with an unplaceable field as a non-pruned one (the real conversion reports it)."""
    try:
        return resolve(name)
    except FieldError:
        return Field(name, "NULL")


def convert(rule: SigmaRule, backend: CloudTrailDuckDBBackend) -> Converted:
    """One rule's condition; several conditions (rare) are OR-ed, their parameters renumbered apart."""
    parts = backend.convert_rule(rule)
    if not parts:
        raise _unsupported("the rule converts to no condition")
    if len(parts) == 1:
        return parts[0]
    where, params = [], {}
    for i, part in enumerate(parts):
        text = part.where
        for name in sorted(part.params, key=len, reverse=True):
            text = text.replace("$" + name, f"$c{i}_{name}")
            params[f"c{i}_{name}"] = part.params[name]
        where.append(f"({text})")
    return Converted(" or ".join(where), params)
