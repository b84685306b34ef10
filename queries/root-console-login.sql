-- root-console-login: a successful console sign-in by the account's root user.
-- Reads the console_signins view (keyed on eventSource + eventName, since eventType is spelled
-- two ways in AWS's examples) for userIdentity.type = 'Root'; all Regions, since sign-ins land in
-- more than one.
with root_successes as (
    select
        * exclude (mfa_used),
        mfa_used_reported as mfa_used
    from console_signins
    where is_root
      and outcome = 'Success'
)

select
    null as severity,
    account_id,
    region,
    coalesce(arn, 'arn:aws:iam::' || account_id || ':root') as principal,
    coalesce(user_name, 'root') as user_name,
    source_ip,
    user_agent,
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
