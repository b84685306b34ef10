-- mfa-device-added: a virtual MFA device created, or an MFA device enabled or resynced
-- (successfully). An attacker with a password registers their own factor to keep access;
-- details say whether the target is the root user and whether the caller changed their own user.
-- High when the device is registered for another user (a role session is never the user), or
-- from temporary credentials that are not a console session (stolen keys turned into a factor).
with mfa_additions as (
    select
        eventID,
        eventTime,
        eventName,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        userIdentity.arn as identity_arn,
        userIdentity.userName as identity_user_name,
        userIdentity.accessKeyId as access_key_id,
        lower(coalesce(sessionCredentialFromConsole, '')) = 'true'
            or coalesce(userIdentity.invokedBy, '') = 'signin.amazonaws.com' as console_session,
        sourceIPAddress,
        userAgent,
        errorCode,
        requestParameters,
        responseElements
    from events
    where eventSource = 'iam.amazonaws.com'
      and eventName in ('CreateVirtualMFADevice', 'EnableMFADevice', 'ResyncMFADevice')
),

successful as (
    select
        *,
        json_extract_string(requestParameters, '$.userName') as target_user_name,
        coalesce(
            json_extract_string(requestParameters, '$.serialNumber'),
            json_extract_string(responseElements, '$.virtualMFADevice.serialNumber')
        ) as serial_number,
        json_extract_string(requestParameters, '$.virtualMFADeviceName') as device_name
    from mfa_additions
    where coalesce(errorCode, '') = ''
),

classified as (
    select
        *,
        (
            upper(coalesce(target_user_name, '')) = 'AWS ROOT USER'
            or coalesce(serial_number, '') like '%:mfa/root-account-mfa-device'
            or coalesce(device_name, '') = 'root-account-mfa-device'
        ) as root_target,
        coalesce(
            nullif(identity_user_name, ''),
            case when identity_type = 'Root' then 'root' end,
            nullif(regexp_extract(identity_arn, '[^/]+$'), '')
        ) as caller_user_name
    from successful
),

judged as (
    select
        *,
        -- temporary credentials (ASIA...) that are not a console session: keys turned into an MFA device
        starts_with(coalesce(access_key_id, ''), 'ASIA') and not console_session as temporary_non_console,
        case
            when root_target then identity_type <> 'Root'
            when target_user_name is null then false  -- CreateVirtualMFADevice names no user
            when identity_type <> 'IAMUser' then true  -- a role or federated session is never the user
            else lower(target_user_name) <> lower(coalesce(caller_user_name, ''))
        end as for_other_user
    from classified
)

select
    case when temporary_non_console or for_other_user then 'high' end as severity,
    account_id,
    awsRegion as region,
    coalesce(nullif(identity_arn, ''), nullif(identity_user_name, '')) as principal,
    caller_user_name as user_name,
    sourceIPAddress as source_ip,
    userAgent as user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'event_name', eventName,
        'target_user_name', target_user_name,
        'serial_number', serial_number,
        'device_name', device_name,
        'root_target', root_target,
        'own_user', case
            when target_user_name is null then null
            else lower(target_user_name) = lower(coalesce(caller_user_name, ''))
        end,
        'identity_type', identity_type,
        'for_other_user', for_other_user,
        'temporary_non_console', temporary_non_console,
        'console_session', console_session
    ) as details
from judged
