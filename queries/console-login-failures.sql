-- console-login-failures: failed console sign-ins, one alert per principal and source IP.
-- Reads the console_signins view: the outcome is responseElements.ConsoleLogin (not errorMessage,
-- which misses unknown users). AWS replaces a user name that does not exist with
-- HIDDEN_DUE_TO_SECURITY_REASONS: such failures have no principal (principal_key NULL) and are
-- grouped by source IP alone. A principal is keyed by account and lower-cased user name
-- (principal_key), because failures usually carry no ARN while successes do.
with keyed as (
    select
        eventID,
        eventTime,
        account_id,
        region as awsRegion,
        identity_type,
        principal,
        user_name,
        user_name_hidden,
        principal_key,
        source_ip as sourceIPAddress,
        user_agent as userAgent,
        failure_reason as errorMessage,
        mfa_used_reported as mfa_used
    from console_signins
    where outcome = 'Failure'
)

select
    case when bool_or(identity_type = 'Root') then 'medium' end as severity,
    account_id,
    first(awsRegion order by eventTime, eventID) as region,
    coalesce(max(principal) filter (where principal like 'arn:%'), max(principal)) as principal,
    coalesce(
        max(user_name) filter (where principal like 'arn:%'),
        first(user_name order by eventTime, eventID)
    ) as user_name,
    sourceIPAddress as source_ip,
    first(userAgent order by eventTime, eventID) as user_agent,
    min(eventTime) as first_seen,
    max(eventTime) as last_seen,
    count(*) as count,
    list(eventID order by eventTime, eventID) as event_ids,
    json_object(
        'grouped_by', case when principal_key is null then 'source_ip' else 'principal_and_source_ip' end,
        'user_name_hidden', bool_or(coalesce(user_name_hidden, false)),
        'principal_note', case when principal_key is null
            then 'unknown: AWS hid the user name (HIDDEN_DUE_TO_SECURITY_REASONS), so the name typed does not exist in this account'
        end,
        'failure_reasons', coalesce(list_sort(list(distinct errorMessage) filter (where errorMessage is not null)), []),
        'mfa_used', coalesce(list_sort(list(distinct mfa_used) filter (where mfa_used is not null)), []),
        'identity_types', coalesce(list_sort(list(distinct identity_type) filter (where identity_type is not null)), [])
    ) as details
from keyed
group by account_id, principal_key, sourceIPAddress
