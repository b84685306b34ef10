"""This project's pySigma processing pipeline: CloudTrail field names onto the dataset's schema.

SigmaHQ's CloudTrail rules write CloudTrail's own field paths, which are the dataset's column and
struct names (:mod:`analyzer.schema`), so most fields pass unchanged. The pipeline spells each
known part the schema's way whatever its case (``useridentity.Type`` → ``userIdentity.type``),
applied to rules whose log source is ``product: aws, service: cloudtrail`` only. Where a field is
then read (column, struct, JSON path, ``extra``) is :mod:`analyzer.sigma.fields`' job.
"""

from __future__ import annotations

import pyarrow as pa
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldFunctionTransformation

from analyzer.schema import SCHEMA, is_json


def _by_lower(fields: list[pa.Field]) -> dict[str, pa.Field]:
    return {f.name.lower(): f for f in fields}


def schema_spelling(name: str | None) -> str:
    """``name`` with every part the schema knows spelled as the schema does (JSON paths untouched)."""
    if name is None:
        return ""
    parts = name.split(".")
    known = _by_lower(list(SCHEMA))
    out: list[str] = []
    for i, part in enumerate(parts):
        field = known.get(part.lower())
        if field is None:
            return ".".join(out + parts[i:])
        out.append(field.name)
        if is_json(field) or not pa.types.is_struct(field.type):
            return ".".join(out + parts[i + 1 :])
        known = _by_lower(list(field.type))
    return ".".join(out)


def cloudtrail_pipeline() -> ProcessingPipeline:
    """The pipeline the converter runs before the backend (``analyzer.sigma.backend``)."""
    return ProcessingPipeline(
        name="analyzer CloudTrail schema",
        priority=20,
        items=[
            ProcessingItem(
                identifier="analyzer_cloudtrail_field_spelling",
                transformation=FieldFunctionTransformation({}, schema_spelling),
                rule_conditions=[LogsourceCondition(product="aws", service="cloudtrail")],
            ),
        ],
    )
