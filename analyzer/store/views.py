"""Investigation views and macros over ``events``: sign-in analysis and JSON fields as one-liners.

People investigating CloudTrail ask the same few questions ("who signed in, from where, with MFA?",
"what did this principal do next?") and trip over the same field facts (the outcome of a console
sign-in is in ``responseElements``, ``MFAUsed`` is ``Yes``/``No``/``YES``, hidden user names are not
principals, Identity Center reports its result in ``serviceEventDetails``). These definitions encode
those facts once (see ``DETECTIONS.md``), so ad-hoc SQL does not have to.

Installed by :func:`install_views` on any connection that has the ``events`` view; every
definition is plain DuckDB SQL (``CREATE OR REPLACE``), so installing twice is harmless.

``signins``: one row per console sign-in (``ConsoleLogin``) and IAM Identity Center sign-in event
(``CredentialChallenge``, ``CredentialVerification``, ``UserAuthentication``); ``CheckMfa`` is left
out (it is not a pass/fail result). Columns:

=================  ==============================================================================
eventTime          when (UTC)
event_date         the partition key (UTC date): filter on it to skip whole days
account            ``recipientAccountId``, else ``userIdentity.accountId``
principal          ``userIdentity.arn``; NULL when empty or the user name is hidden
user_name          ``userIdentity.userName``, else Identity Center's ``onBehalfOf.userId``; NULL
                   when it is ``HIDDEN_DUE_TO_SECURITY_REASONS`` (group those by ``source_ip``)
identity_type      ``userIdentity.type`` (``IAMUser``, ``Root``, ``AssumedRole``, ``IdentityCenterUser``…)
event_name         ``ConsoleLogin`` or the Identity Center step
outcome            ``Success`` / ``Failure``: ``responseElements.ConsoleLogin`` or
                   ``serviceEventDetails.<eventName>``; ``Failure`` when only an error is recorded
mfa_used           boolean. ConsoleLogin: ``MFAUsed`` compared case-insensitively (``YES`` counts),
                   or a session that says ``mfaAuthenticated = true``; NULL when not recorded
                   (unknown is not "no"). Identity Center: true when
                   ``CredentialType`` names an MFA factor (TOTP, WEBAUTHN, EMAIL_OTP, RESYNC_TOTP);
                   false for a ``UserAuthentication`` by password alone; NULL otherwise
federated          a ConsoleLogin through ``SAML``, ``IdentityCenter`` (``AWSReservedSSO_`` roles) or
                   ``WebIdentity``; an Identity Center step with an ``ExternalIdP``. MFA happens at
                   the identity provider there, so ``MFAUsed = No`` means nothing; NULL when not
failure_reason     ``errorMessage`` (``Failed authentication``, ``No username found in supplied account``…)
source_ip          ``sourceIPAddress``
user_agent         ``userAgent``
credential_type    Identity Center ``CredentialType`` (``PASSWORD``, ``TOTP``, ``PASSWORD,TOTP``…)
auth_workflow_id   Identity Center ``AuthWorkflowID``: the steps of one sign-in share it
eventID            join back to ``events`` for the whole record
=================  ==============================================================================

JSON helpers: the first argument is the row (the table or its alias), the second a path into one
of the JSON columns, written ``'userName'``, ``'policy.Statement[0].Effect'`` or as a full JSONPath
``'$."odd key"'``. They return text (JSON text for objects and arrays) and NULL when absent.
DuckDB inlines them, so they cost the same as ``json_extract_string`` on the column::

    select req(e, 'userName'), resp(e, 'ConsoleLogin'), addl(e, 'MFAUsed') from events e
    -- same as: json_extract_string(requestParameters, '$.userName'), ...

``req`` (requestParameters), ``resp`` (responseElements), ``addl`` (additionalEventData),
``svc`` (serviceEventDetails), ``extra_field`` (``extra``: fields the schema does not know), and
``json_path(path)`` (the path normalisation they share).

``principal_timeline(who, since := NULL, until := NULL)``: every event of one principal, oldest
first, in ``[since, until)``. ``who`` matches the ARN, the role behind a session
(``sessionIssuer.arn``: give a role ARN to see all its sessions), the user name, the principal id,
the access key id or the Identity Center user id. Times without an offset are read in the
session's ``TimeZone`` (``analyzer sql`` sets UTC)::

    select * from principal_timeline('arn:aws:iam::111122223333:user/anaya', since := '2024-05-01')
"""

from __future__ import annotations

import duckdb

#: The JSON columns the helpers read, by macro name.
JSON_HELPERS: dict[str, str] = {
    "req": "requestParameters",
    "resp": "responseElements",
    "addl": "additionalEventData",
    "svc": "serviceEventDetails",
    "extra_field": "extra",
}

JSON_PATH_MACRO = """
create or replace macro json_path(path) as
    case when starts_with(path, '$') then path else '$.' || path end
"""

SIGNINS_VIEW = """
create or replace view signins as
with raw as (
    select
        eventTime,
        event_date,
        coalesce(recipientAccountId, userIdentity.accountId) as account,
        userIdentity.userName = 'HIDDEN_DUE_TO_SECURITY_REASONS' as hidden,
        nullif(userIdentity.arn, '') as arn,
        coalesce(nullif(userIdentity.userName, ''), userIdentity.onBehalfOf.userId) as user_name,
        userIdentity.type as identity_type,
        eventName as event_name,
        case when eventName = 'ConsoleLogin'
             then json_extract_string(responseElements, '$.ConsoleLogin')
             when eventName = 'CredentialChallenge'
             then json_extract_string(serviceEventDetails, '$.CredentialChallenge')
             when eventName = 'CredentialVerification'
             then json_extract_string(serviceEventDetails, '$.CredentialVerification')
             when eventName = 'UserAuthentication'
             then json_extract_string(serviceEventDetails, '$.UserAuthentication')
        end as reported_outcome,
        errorCode is not null or errorMessage is not null as has_error,
        lower(json_extract_string(additionalEventData, '$.MFAUsed')) as mfa_flag,
        lower(userIdentity.sessionContext.attributes.mfaAuthenticated) = 'true' as mfa_session,
        json_extract_string(additionalEventData, '$.SamlProviderArn') as saml_provider,
        json_extract_string(additionalEventData, '$.CredentialType') as credential_type,
        json_extract_string(additionalEventData, '$.AuthWorkflowID') as auth_workflow_id,
        errorMessage as failure_reason,
        sourceIPAddress as source_ip,
        userAgent as user_agent,
        eventID
    from events
    where eventSource = 'signin.amazonaws.com'
      and eventName in ('ConsoleLogin', 'CredentialChallenge', 'CredentialVerification', 'UserAuthentication')
),
classified as (
    select
        *,
        string_split(upper(coalesce(credential_type, '')), ',') as factors
    from raw
)
select
    eventTime,
    event_date,
    account,
    case when hidden then null else arn end as principal,
    case when hidden then null else user_name end as user_name,
    identity_type,
    event_name,
    coalesce(reported_outcome, case when has_error then 'Failure' end) as outcome,
    case
        when event_name = 'ConsoleLogin' then
            case when mfa_flag = 'yes' or mfa_session then true when mfa_flag = 'no' then false end
        when list_has_any(factors, ['TOTP', 'WEBAUTHN', 'EMAIL_OTP', 'RESYNC_TOTP']) then true
        when event_name = 'UserAuthentication' and factors = ['PASSWORD'] then false
    end as mfa_used,
    case
        when event_name <> 'ConsoleLogin' then
            case when list_contains(factors, 'EXTERNAL_IDP') then 'ExternalIdP' end
        when saml_provider is not null or identity_type = 'SAMLUser' then 'SAML'
        when identity_type = 'IdentityCenterUser'
          or (identity_type = 'AssumedRole' and contains(coalesce(arn, ''), 'AWSReservedSSO_'))
            then 'IdentityCenter'
        when identity_type = 'WebIdentityUser' then 'WebIdentity'
    end as federated,
    failure_reason,
    source_ip,
    user_agent,
    credential_type,
    auth_workflow_id,
    eventID
from classified
"""

PRINCIPAL_TIMELINE_MACRO = """
create or replace macro principal_timeline(who, since := null, until := null) as table
select
    eventTime,
    eventSource,
    eventName,
    awsRegion,
    sourceIPAddress,
    userAgent,
    errorCode,
    errorMessage,
    readOnly,
    userIdentity.type as identity_type,
    userIdentity.arn as principal,
    userIdentity.accessKeyId as access_key_id,
    case lower(userIdentity.sessionContext.attributes.mfaAuthenticated)
        when 'true' then true when 'false' then false end as mfa_authenticated,
    requestParameters,
    coalesce(recipientAccountId, userIdentity.accountId) as account,
    event_date,
    eventID
from events
where (userIdentity.arn = who
       or userIdentity.sessionContext.sessionIssuer.arn = who
       or userIdentity.userName = who
       or userIdentity.principalId = who
       or userIdentity.accessKeyId = who
       or userIdentity.onBehalfOf.userId = who)
  -- one day of slack: the partition is the UTC date, the bound may be in another time zone
  and (since is null or event_date >= cast(cast(since as timestamptz) as date) - 1)
  and (since is null or eventTime >= cast(since as timestamptz))
  and (until is null or event_date <= cast(cast(until as timestamptz) as date) + 1)
  and (until is null or eventTime < cast(until as timestamptz))
order by eventTime, eventID
"""


def _json_helper(name: str, column: str) -> str:
    return f"create or replace macro {name}(e, path) as json_extract_string(e.{column}, json_path(path))"


#: Every statement :func:`install_views` runs, in order (the macros first: views may use them).
STATEMENTS: tuple[str, ...] = (
    JSON_PATH_MACRO,
    *(_json_helper(name, column) for name, column in JSON_HELPERS.items()),
    SIGNINS_VIEW,
    PRINCIPAL_TIMELINE_MACRO,
)

#: What :func:`install_views` defines, for listings (``.tables`` in the prompt, docs, tests).
VIEWS = ("signins",)
MACROS = ("json_path", *JSON_HELPERS, "principal_timeline")


def install_views(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Define the investigation views and macros on ``con`` (which must have ``events``); returns it.

    They are temporary objects of this connection, like ``events`` itself: nothing is written.
    """
    for statement in STATEMENTS:
        con.execute(statement)
    return con
