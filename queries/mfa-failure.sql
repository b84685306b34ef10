-- mfa-failure: a sign-in that failed at the MFA step (reads console_signins and identity_center_signins).
-- IAM/root console: a ConsoleLogin Failure whose MFAUsed is 'yes' (any case): the peers'
-- convention for "the password was right, the second factor was not". IAM Identity Center: a
-- CredentialVerification Failure whose CredentialType is a second factor (TOTP, WEBAUTHN,
-- RESYNC_TOTP, EMAIL_OTP...; not PASSWORD or EXTERNAL_IDP; an unrecorded CredentialType counts as
-- PASSWORD). CheckMfa is not a pass/fail result and is ignored.
with console_mfa_failures as (
    select
        eventID, eventTime, 'ConsoleLogin' as eventName, account_id, region as awsRegion, identity_type,
        principal, user_name, null as identity_store_arn, source_ip as sourceIPAddress, user_agent as userAgent,
        coalesce(failure_reason, error_code) as failure_reason, null as auth_workflow_id,
        'console' as sign_in_kind,
        mfa_used_reported as mfa_used,
        null as credential_type
    from console_signins
    where outcome = 'Failure'
      and lower(trim(mfa_used_reported)) = 'yes'
),

identity_center_mfa_failures as (
    select
        eventID, eventTime, step as eventName, account_id, region as awsRegion, identity_type,
        principal, user_name, identity_store_arn, source_ip as sourceIPAddress, user_agent as userAgent,
        coalesce(failure_reason, error_code) as failure_reason, auth_workflow_id,
        'identity-center' as sign_in_kind,
        null as mfa_used,
        credential_type
    from identity_center_signins
    where step = 'CredentialVerification'
      and outcome = 'Failure'
      and upper(trim(coalesce(credential_type, 'PASSWORD'))) not in ('PASSWORD', 'EXTERNAL_IDP')
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
    principal,
    user_name,
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
        'failure_reason', failure_reason,
        'identity_type', identity_type,
        'identity_store_arn', identity_store_arn,
        'auth_workflow_id', auth_workflow_id
    ) as details
from mfa_failures
