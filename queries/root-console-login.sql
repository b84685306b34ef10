-- root-console-login: a successful console sign-in by the account's root user.
-- Keyed on eventSource + eventName (eventType is spelled two ways in AWS's examples) and on
-- userIdentity.type = 'Root'; all Regions, since sign-ins land in more than one.
with console_logins as (
    select
        eventID,
        eventTime,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        userIdentity.arn as identity_arn,
        userIdentity.userName as identity_user_name,
        sourceIPAddress,
        userAgent,
        responseElements,
        additionalEventData
    from events
    where eventSource = 'signin.amazonaws.com'
      and eventName = 'ConsoleLogin'
),

root_successes as (
    select
        *,
        json_extract_string(additionalEventData, '$.MFAUsed') as mfa_used,
        json_extract_string(additionalEventData, '$.LoginTo') as login_to
    from console_logins
    where identity_type = 'Root'
      and lower(json_extract_string(responseElements, '$.ConsoleLogin')) = 'success'
)

select
    null as severity,
    account_id,
    awsRegion as region,
    coalesce(nullif(identity_arn, ''), 'arn:aws:iam::' || account_id || ':root') as principal,
    coalesce(nullif(identity_user_name, ''), 'root') as user_name,
    sourceIPAddress as source_ip,
    userAgent as user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'mfa_used', mfa_used,
        'mfa_used_normalised', case
            when mfa_used is null then 'unknown'
            when lower(trim(mfa_used)) = 'yes' then 'yes'
            else 'no'
        end,
        'login_to', login_to
    ) as details
from root_successes
