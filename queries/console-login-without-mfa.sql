-- console-login-without-mfa: successful console sign-ins where MFA was not used.
-- MFAUsed is compared case-insensitively (AWS's own root example says "YES"); a sign-in whose
-- MFAUsed is missing is "unknown", not "without MFA". Federated sign-ins (SAML, IAM Identity
-- Center) report MFAUsed = No because MFA happens at the identity provider: excluded unless
-- $include_federated. Sessions already MFA-authenticated (mfaAuthenticated = 'true') are excluded.
with console_logins as (
    select
        eventID,
        eventTime,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        userIdentity.arn as identity_arn,
        userIdentity.userName as identity_user_name,
        userIdentity.onBehalfOf.userId as identity_center_user_id,
        userIdentity.sessionContext.sessionIssuer.arn as issuer_arn,
        userIdentity.sessionContext.attributes.mfaAuthenticated as mfa_authenticated,
        sourceIPAddress,
        userAgent,
        responseElements,
        additionalEventData
    from events
    where eventSource = 'signin.amazonaws.com'
      and eventName = 'ConsoleLogin'
),

successes as (
    select
        *,
        json_extract_string(additionalEventData, '$.MFAUsed') as mfa_used,
        nullif(json_extract_string(additionalEventData, '$.SamlProviderArn'), '') as saml_provider_arn,
        json_extract_string(additionalEventData, '$.LoginTo') as login_to
    from console_logins
    where lower(json_extract_string(responseElements, '$.ConsoleLogin')) = 'success'
),

classified as (
    select
        *,
        case
            when saml_provider_arn is not null then 'saml'
            when identity_type = 'AssumedRole'
                and (
                    coalesce(identity_arn, '') like '%:assumed-role/AWSReservedSSO\_%' escape '\'
                    or coalesce(issuer_arn, '') like '%:role/aws-reserved/sso.amazonaws.com/%'
                )
                then 'identity-center'
        end as federation,
        identity_user_name = 'HIDDEN_DUE_TO_SECURITY_REASONS' as user_name_hidden
    from successes
),

without_mfa as (
    select *
    from classified
    where mfa_used is not null
      and lower(trim(mfa_used)) <> 'yes'
      and lower(coalesce(mfa_authenticated, '')) <> 'true'
      and (federation is null or $include_federated)
)

select
    case when identity_type = 'Root' then 'critical' end as severity,
    account_id,
    awsRegion as region,
    case when not coalesce(user_name_hidden, false)
        then coalesce(nullif(identity_arn, ''), nullif(identity_user_name, ''), identity_center_user_id)
    end as principal,
    case when not coalesce(user_name_hidden, false)
        then coalesce(
            nullif(identity_user_name, ''),
            case when identity_type = 'Root' then 'root' end,
            nullif(regexp_extract(identity_arn, '[^/]+$'), '')
        )
    end as user_name,
    sourceIPAddress as source_ip,
    userAgent as user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'mfa_used', mfa_used,
        'identity_type', identity_type,
        'federation', federation,
        'saml_provider_arn', saml_provider_arn,
        'session_mfa_authenticated', mfa_authenticated,
        'login_to', login_to
    ) as details
from without_mfa
