-- mfa-failure: a sign-in that failed at the MFA step.
-- IAM/root console: a ConsoleLogin Failure whose MFAUsed is 'yes' (any case): the peers'
-- convention for "the password was right, the second factor was not". IAM Identity Center: a
-- CredentialVerification Failure whose CredentialType is a second factor (TOTP, WEBAUTHN,
-- RESYNC_TOTP, EMAIL_OTP...; not PASSWORD or EXTERNAL_IDP). CheckMfa is not a pass/fail result
-- and is ignored.
with sign_in_steps as (
    select
        eventID,
        eventTime,
        eventName,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        userIdentity.arn as identity_arn,
        userIdentity.userName as identity_user_name,
        userIdentity.onBehalfOf.userId as identity_center_user_id,
        userIdentity.onBehalfOf.identityStoreArn as identity_store_arn,
        sourceIPAddress,
        userAgent,
        errorCode,
        errorMessage,
        responseElements,
        additionalEventData,
        serviceEventDetails
    from events
    where eventSource = 'signin.amazonaws.com'
      and eventName in ('ConsoleLogin', 'CredentialVerification')
),

console_mfa_failures as (
    select
        *,
        'console' as sign_in_kind,
        json_extract_string(additionalEventData, '$.MFAUsed') as mfa_used,
        null as credential_type
    from sign_in_steps
    where eventName = 'ConsoleLogin'
      and lower(json_extract_string(responseElements, '$.ConsoleLogin')) = 'failure'
      and lower(trim(json_extract_string(additionalEventData, '$.MFAUsed'))) = 'yes'
),

identity_center_mfa_failures as (
    select
        *,
        'identity-center' as sign_in_kind,
        null as mfa_used,
        json_extract_string(additionalEventData, '$.CredentialType') as credential_type
    from sign_in_steps
    where eventName = 'CredentialVerification'
      and lower(json_extract_string(serviceEventDetails, '$.CredentialVerification')) = 'failure'
      and upper(trim(coalesce(json_extract_string(additionalEventData, '$.CredentialType'), 'PASSWORD')))
          not in ('PASSWORD', 'EXTERNAL_IDP')
),

mfa_failures as (
    select * from console_mfa_failures
    union all
    select * from identity_center_mfa_failures
)

select
    null as severity,
    account_id,
    awsRegion as region,
    case when coalesce(identity_user_name, '') <> 'HIDDEN_DUE_TO_SECURITY_REASONS'
        then coalesce(nullif(identity_arn, ''), nullif(identity_user_name, ''), identity_center_user_id)
    end as principal,
    case when coalesce(identity_user_name, '') <> 'HIDDEN_DUE_TO_SECURITY_REASONS'
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
        'sign_in_kind', sign_in_kind,
        'event_name', eventName,
        'mfa_used', mfa_used,
        'credential_type', credential_type,
        'failure_reason', coalesce(errorMessage, errorCode),
        'identity_type', identity_type,
        'identity_store_arn', identity_store_arn,
        'auth_workflow_id', json_extract_string(additionalEventData, '$.AuthWorkflowID')
    ) as details
from mfa_failures
