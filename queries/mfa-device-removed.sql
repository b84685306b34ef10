-- mfa-device-removed: an MFA device deactivated or a virtual MFA device deleted (successfully).
-- Critical when the root user's device is the target (requestParameters.userName 'AWS ROOT USER'
-- or a root-account-mfa-device serial) or when root itself made the call.
with mfa_removals as (
    select
        eventID,
        eventTime,
        eventName,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        userIdentity.arn as identity_arn,
        userIdentity.userName as identity_user_name,
        sourceIPAddress,
        userAgent,
        errorCode,
        requestParameters
    from events
    where eventSource = 'iam.amazonaws.com'
      and eventName in ('DeactivateMFADevice', 'DeleteVirtualMFADevice')
),

successful as (
    select
        *,
        json_extract_string(requestParameters, '$.userName') as target_user_name,
        json_extract_string(requestParameters, '$.serialNumber') as serial_number
    from mfa_removals
    where coalesce(errorCode, '') = ''
),

classified as (
    select
        *,
        (
            upper(coalesce(target_user_name, '')) = 'AWS ROOT USER'
            or coalesce(serial_number, '') like '%:mfa/root-account-mfa-device'
            or (identity_type = 'Root' and target_user_name is null)
        ) as root_target
    from successful
)

select
    case when root_target or identity_type = 'Root' then 'critical' end as severity,
    account_id,
    awsRegion as region,
    coalesce(nullif(identity_arn, ''), nullif(identity_user_name, '')) as principal,
    coalesce(
        nullif(identity_user_name, ''),
        case when identity_type = 'Root' then 'root' end,
        nullif(regexp_extract(identity_arn, '[^/]+$'), '')
    ) as user_name,
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
        'root_target', root_target,
        'identity_type', identity_type
    ) as details
from classified
