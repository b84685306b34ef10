"""Investigation views and macros over ``events``: sign-in analysis and JSON fields as one-liners.

People investigating CloudTrail ask the same few questions ("who signed in, from where, with MFA?",
"what did this principal do next?") and trip over the same field facts (the outcome of a console
sign-in is in ``responseElements``, ``MFAUsed`` is ``Yes``/``No``/``YES``, hidden user names are not
principals, Identity Center reports its result in ``serviceEventDetails``). These definitions encode
those facts once (see ``DETECTIONS.md``), so ad-hoc SQL does not have to.

Installed by :func:`install_views` on any connection that has the ``events`` and
``events_superseded`` views (as :func:`analyzer.store.connect` makes them); every definition is
plain DuckDB SQL (``CREATE OR REPLACE``), so installing twice is harmless.

Staging views (one definition each; detections, summaries and ad-hoc SQL all read them, and a
time window shadowing ``events`` applies to them too, since a view binds ``events`` when queried):

``console_signins``: one row per ``ConsoleLogin``: ``outcome`` (``Success``/``Failure``; ``Failure``
when only an error is recorded), ``mfa_used`` (boolean; NULL when MFAUsed is missing),
``mfa_used_reported`` (the raw text), ``federation`` (``SAML`` / ``IdentityCenter`` / ``WebIdentity`` /
NULL: the one federation rule, an ``AWSReservedSSO_`` assumed-role ARN *or* an
``aws-reserved/sso.amazonaws.com`` issuer path), ``principal`` (ARN, else the user name; NULL when
hidden), ``user_name`` (``root`` for Root, else the last ARN segment), ``user_name_hidden``,
``principal_key`` (``<account>/<lower-cased user name>`` or ``<account>/#root``: failures carry no
ARN, successes do), ``account_id`` (``userIdentity.accountId``, else ``recipientAccountId``), region,
source_ip, user_agent, login_to, saml_provider_arn, error_code, failure_reason.

``identity_center_signins``: one row per Identity Center step (``step``, ``outcome``,
``credential_type``, ``factors`` list, ``password_factor``/``mfa_factor``/``external_idp``,
``workflow_id`` = ``AuthWorkflowID`` or the eventID, ``enrollment_required`` from
``DeviceEnrollmentRequired``). ``identity_center_workflows``: one row per account and workflow:
``authenticated``, ``authenticated_with``, ``verified_factors``, ``mfa_verified``,
``password_failures``, ``mfa_failures``, ``event_ids``, first source IP and user agent.

``identity_changes``: one row per credential change: IAM login profiles, passwords, access keys,
MFA devices, signing certificates, SSH keys, service-specific credentials, and the root password
events of the sign-in service; ``change_kind``, ``succeeded``, the caller (``caller_principal``,
``caller_type``, ``caller_temporary`` = an ``ASIA`` key, ``caller_mfa_authenticated``,
``caller_console``) and the target (``target_user_name``; ``root`` for the root user,
``target_is_root``, ``target_is_caller``: a request without ``userName`` acts on the caller).

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

Athena habits, so that queries pasted from AWS's CloudTrail examples for Athena run as written:
``cloudtrail_logs`` is ``events`` under the table name those examples use (column names are
CloudTrail's in both, and DuckDB matches them and struct fields case-insensitively:
``useridentity.username``); ``json_extract_scalar(json, path)`` is Presto's (the value as text,
NULL for an object or an array); ``from_iso8601_timestamp(t)`` and ``from_iso8601_date(t)`` read ISO
text, and leave ``eventTime`` (already a timestamp here, text in Athena's table) as it is::

    select useridentity.arn, eventname, json_extract_scalar(responseelements, '$.ConsoleLogin')
    from cloudtrail_logs where eventname = 'ConsoleLogin' and from_iso8601_timestamp(eventtime) >= '2026-11-20'
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

CONSOLE_SIGNINS_VIEW = r"""
create or replace view console_signins as
with raw as (
    select
        eventID,
        eventTime,
        event_date,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        recipientAccountId as recipient_account_id,
        awsRegion as region,
        userIdentity.type as identity_type,
        nullif(userIdentity.arn, '') as arn,
        nullif(userIdentity.userName, '') as reported_user_name,
        coalesce(userIdentity.userName = 'HIDDEN_DUE_TO_SECURITY_REASONS', false) as user_name_hidden,
        userIdentity.onBehalfOf.userId as identity_center_user_id,
        userIdentity.sessionContext.sessionIssuer.arn as issuer_arn,
        userIdentity.sessionContext.attributes.mfaAuthenticated as session_mfa_authenticated,
        json_extract_string(responseElements, '$.ConsoleLogin') as reported_outcome,
        coalesce(errorCode, errorMessage) is not null as has_error,
        errorCode as error_code,
        errorMessage as failure_reason,
        json_extract_string(additionalEventData, '$.MFAUsed') as mfa_used_reported,
        nullif(json_extract_string(additionalEventData, '$.SamlProviderArn'), '') as saml_provider_arn,
        json_extract_string(additionalEventData, '$.LoginTo') as login_to,
        sourceIPAddress as source_ip,
        userAgent as user_agent
    from events
    where eventSource = 'signin.amazonaws.com'
      and eventName = 'ConsoleLogin'
),
named as (
    select
        *,
        case when not user_name_hidden
            then coalesce(
                reported_user_name,
                case when identity_type = 'Root' then 'root' end,
                identity_center_user_id,
                nullif(regexp_extract(arn, '[^/]+$'), '')
            )
        end as user_name
    from raw
)
select
    eventID,
    eventTime,
    event_date,
    account_id,
    recipient_account_id,
    region,
    identity_type,
    arn,
    case when not user_name_hidden then coalesce(arn, user_name) end as principal,
    user_name,
    user_name_hidden,
    case
        when identity_type = 'Root' then coalesce(account_id, '') || '/#root'
        when user_name is not null then coalesce(account_id, '') || '/' || lower(user_name)
    end as principal_key,
    identity_type = 'Root' as is_root,
    case
        when lower(reported_outcome) = 'success' then 'Success'
        when lower(reported_outcome) = 'failure' then 'Failure'
        when reported_outcome is not null then reported_outcome
        when has_error then 'Failure'
    end as outcome,
    case
        when lower(trim(mfa_used_reported)) = 'yes' or lower(session_mfa_authenticated) = 'true' then true
        when mfa_used_reported is not null then false
    end as mfa_used,
    mfa_used_reported,
    session_mfa_authenticated,
    case
        when saml_provider_arn is not null or identity_type = 'SAMLUser' then 'SAML'
        when identity_type = 'IdentityCenterUser'
          or (identity_type = 'AssumedRole' and (
                coalesce(arn, '') like '%:assumed-role/AWSReservedSSO\_%' escape '\'
                or coalesce(issuer_arn, '') like '%:role/aws-reserved/sso.amazonaws.com/%'))
            then 'IdentityCenter'
        when identity_type = 'WebIdentityUser' then 'WebIdentity'
    end as federation,
    saml_provider_arn,
    issuer_arn,
    login_to,
    error_code,
    failure_reason,
    source_ip,
    user_agent
from named
"""

IDENTITY_CENTER_SIGNINS_VIEW = """
create or replace view identity_center_signins as
with raw as (
    select
        eventID,
        eventTime,
        event_date,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion as region,
        userIdentity.type as identity_type,
        nullif(userIdentity.arn, '') as arn,
        coalesce(userIdentity.userName = 'HIDDEN_DUE_TO_SECURITY_REASONS', false) as user_name_hidden,
        coalesce(nullif(userIdentity.userName, ''), userIdentity.onBehalfOf.userId) as reported_user_name,
        userIdentity.onBehalfOf.identityStoreArn as identity_store_arn,
        eventName as step,
        case when eventName = 'CredentialChallenge'
             then json_extract_string(serviceEventDetails, '$.CredentialChallenge')
             when eventName = 'CredentialVerification'
             then json_extract_string(serviceEventDetails, '$.CredentialVerification')
             else json_extract_string(serviceEventDetails, '$.UserAuthentication')
        end as reported_outcome,
        coalesce(errorCode, errorMessage) is not null as has_error,
        errorCode as error_code,
        errorMessage as failure_reason,
        json_extract_string(additionalEventData, '$.CredentialType') as credential_type,
        json_extract_string(additionalEventData, '$.AuthWorkflowID') as auth_workflow_id,
        lower(json_extract_string(additionalEventData, '$.DeviceEnrollmentRequired')) = 'true' as enrollment_required,
        sourceIPAddress as source_ip,
        userAgent as user_agent
    from events
    where eventSource = 'signin.amazonaws.com'
      and eventName in ('CredentialChallenge', 'CredentialVerification', 'UserAuthentication')
),
classified as (
    select
        *,
        case when user_name_hidden then null else reported_user_name end as user_name,
        list_filter(
            string_split(upper(replace(coalesce(credential_type, ''), ' ', '')), ','), lambda f: f <> ''
        ) as factors
    from raw
)
select
    eventID,
    eventTime,
    event_date,
    account_id,
    region,
    identity_type,
    arn,
    case when not user_name_hidden then coalesce(arn, user_name) end as principal,
    user_name,
    user_name_hidden,
    identity_store_arn,
    step,
    case
        when lower(reported_outcome) = 'success' then 'Success'
        when lower(reported_outcome) = 'failure' then 'Failure'
        when reported_outcome is not null then reported_outcome
        when has_error then 'Failure'
    end as outcome,
    credential_type,
    factors,
    list_has_any(factors, ['PASSWORD']) as password_factor,
    list_has_any(factors, ['TOTP', 'WEBAUTHN', 'EMAIL_OTP', 'RESYNC_TOTP', 'SMARTCARD']) as mfa_factor,
    list_has_any(factors, ['EXTERNAL_IDP']) as external_idp,
    coalesce(auth_workflow_id, eventID) as workflow_id,
    auth_workflow_id,
    coalesce(enrollment_required, false) as enrollment_required,
    error_code,
    failure_reason,
    source_ip,
    user_agent
from classified
"""

IDENTITY_CENTER_WORKFLOWS_VIEW = """
create or replace view identity_center_workflows as
select
    account_id,
    workflow_id,
    min(eventTime) as first_seen,
    max(eventTime) as last_seen,
    min(event_date) as event_date,
    coalesce(max(principal) filter (where step = 'UserAuthentication'), max(principal)) as principal,
    coalesce(max(user_name) filter (where step = 'UserAuthentication'), max(user_name)) as user_name,
    max(identity_store_arn) as identity_store_arn,
    first(region order by eventTime, eventID) as region,
    first(source_ip order by eventTime, eventID) as source_ip,
    first(user_agent order by eventTime, eventID) as user_agent,
    coalesce(list_sort(list(distinct source_ip) filter (where source_ip is not null)), []) as source_ips,
    bool_or(step = 'UserAuthentication' and outcome = 'Success') as authenticated,
    max(credential_type) filter (where step = 'UserAuthentication' and outcome = 'Success') as authenticated_with,
    list_sort(list_distinct(flatten(
        list(factors) filter (where step = 'CredentialVerification' and outcome = 'Success')
    ))) as verified_factors,
    bool_or(mfa_factor and outcome = 'Success' and step in ('CredentialVerification', 'UserAuthentication'))
        as mfa_verified,
    bool_or(external_idp and outcome = 'Success') as external_idp,
    bool_or(enrollment_required) as enrollment_required,
    count(*) filter (where step = 'CredentialVerification' and outcome = 'Failure' and password_factor)
        as password_failures,
    count(*) filter (where step = 'CredentialVerification' and outcome = 'Failure' and mfa_factor) as mfa_failures,
    count(*) as steps,
    list(eventID order by eventTime, eventID) as event_ids
from identity_center_signins
group by account_id, workflow_id
"""

IDENTITY_CHANGES_VIEW = """
create or replace view identity_changes as
with raw as (
    select
        eventID,
        eventTime,
        event_date,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion as region,
        eventSource as event_source,
        eventName as event_name,
        case
            when eventName in (
                'CreateLoginProfile', 'UpdateLoginProfile', 'DeleteLoginProfile'
            ) then 'login_profile'
            when eventName in (
                'ChangePassword'
            ) then 'password'
            when eventName in (
                'CreateAccessKey', 'UpdateAccessKey', 'DeleteAccessKey'
            ) then 'access_key'
            when eventName in (
                'CreateVirtualMFADevice', 'EnableMFADevice', 'ResyncMFADevice', 'DeactivateMFADevice',
                'DeleteVirtualMFADevice'
            ) then 'mfa_device'
            when eventName in (
                'UploadSigningCertificate', 'UpdateSigningCertificate', 'DeleteSigningCertificate'
            ) then 'signing_certificate'
            when eventName in (
                'UploadSSHPublicKey', 'UpdateSSHPublicKey', 'DeleteSSHPublicKey'
            ) then 'ssh_public_key'
            when eventName in (
                'CreateServiceSpecificCredential', 'ResetServiceSpecificCredential',
                'UpdateServiceSpecificCredential', 'DeleteServiceSpecificCredential'
            ) then 'service_specific_credential'
            else 'root_password'
        end as change_kind,
        coalesce(errorCode, '') = '' and coalesce(errorMessage, '') = ''
            and coalesce(lower(json_extract_string(responseElements, '$.' || eventName)), 'success') <> 'failure'
            as succeeded,
        errorCode as error_code,
        userIdentity.type as caller_type,
        nullif(userIdentity.arn, '') as caller_arn,
        coalesce(
            nullif(userIdentity.userName, ''),
            case when userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(userIdentity.arn, '[^/]+$'), '')
        ) as caller_user_name,
        userIdentity.sessionContext.sessionIssuer.arn as caller_issuer_arn,
        nullif(userIdentity.accessKeyId, '') as caller_access_key_id,
        case lower(userIdentity.sessionContext.attributes.mfaAuthenticated)
            when 'true' then true when 'false' then false end as caller_mfa_authenticated,
        userIdentity.invokedBy as invoked_by,
        lower(coalesce(sessionCredentialFromConsole, '')) = 'true'
            or coalesce(userIdentity.invokedBy, '') = 'signin.amazonaws.com' as caller_console,
        nullif(coalesce(
            json_extract_string(requestParameters, '$.userName'),
            json_extract_string(responseElements, '$.accessKey.userName')
        ), '') as requested_user_name,
        coalesce(
            json_extract_string(requestParameters, '$.serialNumber'),
            json_extract_string(responseElements, '$.virtualMFADevice.serialNumber')
        ) as serial_number,
        json_extract_string(requestParameters, '$.virtualMFADeviceName') as device_name,
        coalesce(
            json_extract_string(responseElements, '$.accessKey.accessKeyId'),
            json_extract_string(requestParameters, '$.accessKeyId')
        ) as target_access_key_id,
        json_extract_string(requestParameters, '$.passwordResetRequired') as password_reset_required,
        json_extract_string(requestParameters, '$.status') as requested_status,
        sourceIPAddress as source_ip,
        userAgent as user_agent
    from events
    where (eventSource = 'iam.amazonaws.com'
           and eventName in (
                'CreateLoginProfile', 'UpdateLoginProfile', 'DeleteLoginProfile', 'ChangePassword',
                'CreateAccessKey', 'UpdateAccessKey', 'DeleteAccessKey', 'CreateVirtualMFADevice',
                'EnableMFADevice', 'ResyncMFADevice', 'DeactivateMFADevice', 'DeleteVirtualMFADevice',
                'UploadSigningCertificate', 'UpdateSigningCertificate', 'DeleteSigningCertificate',
                'UploadSSHPublicKey', 'UpdateSSHPublicKey', 'DeleteSSHPublicKey',
                'CreateServiceSpecificCredential', 'ResetServiceSpecificCredential',
                'UpdateServiceSpecificCredential', 'DeleteServiceSpecificCredential'
            ))
       or (eventSource = 'signin.amazonaws.com' and eventName in (
                'PasswordRecoveryRequested', 'PasswordRecoveryCompleted', 'PasswordUpdated'
            ))
),
targeted as (
    select
        *,
        caller_type = 'Root' and (
            change_kind = 'root_password'
            or upper(coalesce(requested_user_name, '')) = 'AWS ROOT USER'
            or coalesce(serial_number, '') like '%:mfa/root-account-mfa-device'
            or coalesce(device_name, '') = 'root-account-mfa-device'
            or (requested_user_name is null and change_kind <> 'mfa_device')
        ) or upper(coalesce(requested_user_name, '')) = 'AWS ROOT USER'
          or coalesce(serial_number, '') like '%:mfa/root-account-mfa-device' as target_is_root
    from raw
)
select
    eventID,
    eventTime,
    event_date,
    account_id,
    region,
    event_source,
    event_name,
    change_kind,
    succeeded,
    error_code,
    caller_type,
    caller_arn,
    coalesce(caller_arn, caller_user_name) as caller_principal,
    caller_user_name,
    caller_issuer_arn,
    caller_access_key_id,
    starts_with(coalesce(caller_access_key_id, ''), 'ASIA') as caller_temporary,
    caller_mfa_authenticated,
    caller_console,
    invoked_by,
    case
        when target_is_root then 'root'
        when requested_user_name is not null then requested_user_name
        when caller_type = 'IAMUser' then caller_user_name
    end as target_user_name,
    target_is_root,
    case
        when target_is_root then caller_type = 'Root'
        when requested_user_name is null then caller_type = 'IAMUser'
        else caller_type = 'IAMUser' and lower(requested_user_name) = lower(coalesce(caller_user_name, ''))
    end as target_is_caller,
    serial_number,
    device_name,
    target_access_key_id,
    password_reset_required,
    requested_status,
    source_ip,
    user_agent
from targeted
"""


SIGNINS_VIEW = """
create or replace view signins as
select
    eventTime,
    event_date,
    account_id as account,
    principal,
    user_name,
    identity_type,
    'ConsoleLogin' as event_name,
    outcome,
    mfa_used,
    federation as federated,
    failure_reason,
    source_ip,
    user_agent,
    null::varchar as credential_type,
    null::varchar as auth_workflow_id,
    eventID
from console_signins
union all by name
select
    eventTime,
    event_date,
    account_id as account,
    principal,
    user_name,
    identity_type,
    step as event_name,
    outcome,
    case
        when mfa_factor then true
        when step = 'UserAuthentication' and factors = ['PASSWORD'] then false
    end as mfa_used,
    case when external_idp then 'ExternalIdP' end as federated,
    failure_reason,
    source_ip,
    user_agent,
    credential_type,
    auth_workflow_id,
    eventID
from identity_center_signins
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


#: Presto's json_extract_scalar: a scalar as text, NULL for an object or array (json_extract_string would
#: return their JSON text).
JSON_EXTRACT_SCALAR_MACRO = """
create or replace macro json_extract_scalar(json, path) as
    case when json_type(json, json_path(path)) in ('OBJECT', 'ARRAY') then null
         else json_extract_string(json, json_path(path)) end
"""
#: Presto's ISO 8601 readers; a value that already is a timestamp (eventTime here) passes unchanged.
ISO8601_MACROS = (
    "create or replace macro from_iso8601_timestamp(t) as cast(t as timestamptz)",
    "create or replace macro from_iso8601_date(t) as cast(t as date)",
)
#: The table name of AWS's Athena examples for CloudTrail.
CLOUDTRAIL_LOGS_VIEW = "create or replace view cloudtrail_logs as select * from events"


def _json_helper(name: str, column: str) -> str:
    return f"create or replace macro {name}(e, path) as json_extract_string(e.{column}, json_path(path))"


#: The first and last event time in ``events`` (under a time window: in the window): "the end of the
#: data", for detections that wait a while for something to happen (console-user-without-mfa).
DATA_EXTENT_VIEW = """
create or replace view data_extent as
select min(eventTime) as first_event, max(eventTime) as last_event from events
"""

#: Every statement :func:`install_views` runs, in order (the macros first: views may use them).
#: One row per rewritten log object version (its old rows are evidence in ``events_superseded``, which
#: :func:`analyzer.store.connect` defines): no time window applies, a rewrite is always news.
LOG_OBJECT_REWRITES_VIEW = """
create or replace view log_object_rewrites as
select
    source_object as object,
    superseded_by,
    min(superseded_at) as rewritten_at,
    count(*) as superseded_records,
    min(eventTime) as first_event_time,
    max(eventTime) as last_event_time,
    arg_min(coalesce(recipientAccountId, userIdentity.accountId), record_index) as account_id,
    arg_min(awsRegion, record_index) as region,
    list(eventID order by record_index) filter (where eventID is not null) as event_ids
from events_superseded
group by source_object, superseded_by
"""

STATEMENTS: tuple[str, ...] = (
    JSON_PATH_MACRO,
    *(_json_helper(name, column) for name, column in JSON_HELPERS.items()),
    JSON_EXTRACT_SCALAR_MACRO,
    *ISO8601_MACROS,
    CLOUDTRAIL_LOGS_VIEW,
    CONSOLE_SIGNINS_VIEW,
    IDENTITY_CENTER_SIGNINS_VIEW,
    IDENTITY_CENTER_WORKFLOWS_VIEW,
    IDENTITY_CHANGES_VIEW,
    SIGNINS_VIEW,
    DATA_EXTENT_VIEW,
    LOG_OBJECT_REWRITES_VIEW,
    PRINCIPAL_TIMELINE_MACRO,
)

#: What :func:`install_views` defines, for listings (``.tables`` in the prompt, docs, tests).
VIEWS = ("console_signins", "identity_center_signins", "identity_center_workflows", "identity_changes", "signins",
         "log_object_rewrites", "data_extent")
#: Other names for ``events``, for people's habits (not for detections: they read ``events``).
ALIASES = ("cloudtrail_logs",)
MACROS = ("json_path", *JSON_HELPERS, "principal_timeline", "json_extract_scalar", "from_iso8601_timestamp",
          "from_iso8601_date")


def install_views(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Define the investigation views and macros on ``con`` (which must have ``events``); returns it.

    They are temporary objects of this connection, like ``events`` itself: nothing is written.
    """
    for statement in STATEMENTS:
        con.execute(statement)
    return con
