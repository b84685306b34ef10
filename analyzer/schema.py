"""The one canonical Arrow schema of the dataset.

Column names are CloudTrail's own field names, so queries written from the AWS documentation,
Athena or CloudTrail Lake carry over unchanged. Fields whose content is open-ended (request
parameters, response elements, ...) are JSON text, marked with the field metadata ``json``.
The parser's record types are derived from this module, so the two can never disagree.

Columns the analyzer adds are snake_case: ``extra`` (JSON: fields this schema does not know, and
the original of any value that had to be normalised), ``source_object`` (where the record came
from) and ``record_index`` (its position there). ``event_date`` is the Hive partition key.
"""

from __future__ import annotations

import pyarrow as pa

JSON_META = {b"json": b"true"}
PARTITION_COLUMN = "event_date"


def _s(name: str) -> pa.Field:
    return pa.field(name, pa.string())


def _json(name: str) -> pa.Field:
    return pa.field(name, pa.string(), metadata=JSON_META)


def _struct(name: str, *fields: pa.Field) -> pa.Field:
    return pa.field(name, pa.struct(list(fields)))


SESSION_ISSUER = _struct(
    "sessionIssuer", _s("type"), _s("principalId"), _s("arn"), _s("accountId"), _s("userName")
)

SESSION_CONTEXT = _struct(
    "sessionContext",
    _struct("attributes", _s("creationDate"), _s("mfaAuthenticated")),
    SESSION_ISSUER,
    _struct("webIdFederationData", _s("federatedProvider"), _json("attributes")),
    _s("sourceIdentity"),
    _s("ec2RoleDelivery"),
    _s("ec2IssuedInVPC"),
    _s("assumedRoot"),
)

USER_IDENTITY = _struct(
    "userIdentity",
    _s("type"),
    _s("principalId"),
    _s("arn"),
    _s("accountId"),
    _s("accessKeyId"),
    _s("userName"),
    _s("invokedBy"),
    _s("identityProvider"),
    _s("credentialId"),
    SESSION_CONTEXT,
    _struct("onBehalfOf", _s("userId"), _s("identityStoreArn")),
    _json("inScopeOf"),
)

TLS_DETAILS = _struct("tlsDetails", _s("tlsVersion"), _s("cipherSuite"), _s("clientProvidedHostHeader"))

#: The CloudTrail record fields, in the order of the AWS "record contents" documentation.
EVENT_FIELDS: list[pa.Field] = [
    _s("eventVersion"),
    USER_IDENTITY,
    pa.field("eventTime", pa.timestamp("us", tz="UTC")),
    _s("eventSource"),
    _s("eventName"),
    _s("awsRegion"),
    _s("sourceIPAddress"),
    _s("userAgent"),
    _s("errorCode"),
    _s("errorMessage"),
    _json("requestParameters"),
    _json("responseElements"),
    _json("additionalEventData"),
    _s("requestID"),
    _s("eventID"),
    _s("eventType"),
    _s("apiVersion"),
    pa.field("readOnly", pa.bool_()),
    pa.field("managementEvent", pa.bool_()),
    _json("resources"),
    _s("recipientAccountId"),
    _json("serviceEventDetails"),
    _s("sharedEventID"),
    _s("vpcEndpointId"),
    _s("vpcEndpointAccountId"),
    _s("eventCategory"),
    _json("addendum"),
    _s("sessionCredentialFromConsole"),
    _json("edgeDeviceDetails"),
    TLS_DETAILS,
    _json("insightDetails"),
]

#: Columns the analyzer adds to every row.
LINEAGE_FIELDS: list[pa.Field] = [
    _json("extra"),
    _s("source_object"),
    pa.field("record_index", pa.int32()),
]

#: The schema of every Parquet file in the dataset (the partition column lives in the path).
SCHEMA = pa.schema(EVENT_FIELDS + LINEAGE_FIELDS)

EVENT_FIELD_NAMES = frozenset(f.name for f in EVENT_FIELDS)


def is_json(field: pa.Field) -> bool:
    """True when the column holds JSON text rather than a typed value."""
    return bool(field.metadata) and field.metadata.get(b"json") == b"true"


def describe(schema: pa.Schema = SCHEMA) -> str:
    """A readable rendering of the schema: one line per column, nested fields indented."""
    lines: list[str] = []

    def walk(fields: list[pa.Field], depth: int) -> None:
        for f in fields:
            if pa.types.is_struct(f.type):
                lines.append(f"{'  ' * depth}{f.name}: struct")
                walk(list(f.type), depth + 1)
            else:
                kind = "json" if is_json(f) else str(f.type)
                lines.append(f"{'  ' * depth}{f.name}: {kind}")

    walk(list(schema), 0)
    lines.append(f"{PARTITION_COLUMN}: date (Hive partition: the event's UTC date)")
    return "\n".join(lines)


def leaf_paths(schema: pa.Schema = SCHEMA) -> list[tuple[str, pa.Field]]:
    """Every leaf column as (dotted path, field), e.g. ``userIdentity.sessionContext.sessionIssuer.arn``."""
    leaves: list[tuple[str, pa.Field]] = []

    def walk(fields: list[pa.Field], prefix: str) -> None:
        for f in fields:
            if pa.types.is_struct(f.type):
                walk(list(f.type), f"{prefix}{f.name}.")
            else:
                leaves.append((prefix + f.name, f))

    walk(list(schema), "")
    return leaves
