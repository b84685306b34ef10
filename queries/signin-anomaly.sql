-- signin-anomaly: a sign-in from a source never seen for its principal, or one session's
-- credentials used from several public IPs.
-- First-seen: a successful console sign-in (console_signins) or Identity Center sign-in
-- (identity_center_workflows) whose source IP, or user agent, did not appear in the principal's
-- successful sign-ins of the preceding $history_minutes, judged only for principals with at least
-- $min_history_signins sign-ins in that history (a new principal has no baseline). A new IP and a
-- new user agent together: medium; one of them: low. Session: one temporary access key (ASIA...)
-- whose calls come from >= $session_ip_threshold distinct public IP addresses (private, shared
-- and AWS-internal addresses and service names are ignored): its credentials were copied.
with signins as (
    select
        eventID, eventTime, account_id, region, principal, user_name, principal_key, source_ip, user_agent,
        'console' as kind
    from console_signins
    where outcome = 'Success' and principal_key is not null and source_ip is not null
    union all
    select
        event_ids[-1] as eventID, last_seen as eventTime, account_id, region, principal, user_name,
        coalesce(account_id, '') || '/' || lower(coalesce(user_name, principal)) as principal_key, source_ip,
        user_agent, 'identity-center' as kind
    from identity_center_workflows
    where authenticated and coalesce(user_name, principal) is not null and source_ip is not null
),

judged as (
    -- window functions, not correlated subqueries: the last earlier sign-in from the same IP / with the
    -- same user agent, and how many sign-ins precede this one within the history
    select
        *,
        count(*) over (
            partition by principal_key order by eventTime
            range between to_minutes($history_minutes) preceding and current row
        ) - 1 as history,
        lag(eventTime) over (partition by principal_key, source_ip order by eventTime, eventID) as ip_last_seen,
        lag(eventTime) over (
            partition by principal_key, coalesce(user_agent, '') order by eventTime, eventID
        ) as agent_last_seen
    from signins
),

flags as (
    select
        *,
        case when ip_last_seen >= eventTime - to_minutes($history_minutes) then 1 else 0 end as ip_seen,
        case when agent_last_seen >= eventTime - to_minutes($history_minutes) then 1 else 0 end as agent_seen
    from judged
),

first_seen as (
    select
        case when ip_seen = 0 and agent_seen = 0 then 'medium' else 'low' end as severity,
        account_id, region, principal, user_name, source_ip, user_agent,
        eventTime as first_seen, eventTime as last_seen, 1 as count, [eventID] as event_ids,
        json_object(
            'kind', 'first_seen_source',
            'sign_in', kind,
            'new_source_ip', ip_seen = 0,
            'new_user_agent', agent_seen = 0,
            'history_sign_ins', history,
            'history_minutes', $history_minutes
        ) as details
    from flags
    where history >= $min_history_signins
      and (ip_seen = 0 or agent_seen = 0)
),

session_keys as (
    -- pass 1, narrow: which temporary keys were used from which addresses
    select distinct userIdentity.accessKeyId as access_key_id, sourceIPAddress
    from events
    where userIdentity.type in ('AssumedRole', 'FederatedUser', 'IAMUser', 'Root', 'IdentityCenterUser')
      and starts_with(userIdentity.accessKeyId, 'ASIA')
      and coalesce(userIdentity.invokedBy, '') = ''
),

public_pairs as (
    -- each (session, address) pair judged once: IP literals that are not private, shared or internal
    select access_key_id, sourceIPAddress
    from session_keys
    where regexp_full_match(sourceIPAddress, '[0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*')
      and not regexp_full_match(
          sourceIPAddress,
          '(10\..*|127\..*|169\.254\..*|192\.168\..*|172\.(1[6-9]|2[0-9]|3[01])\..*|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\..*|(?i:f[cd][0-9a-f]{2}:.*|fe80:.*|::1))'
      )
),

copied_sessions as (
    select access_key_id
    from public_pairs
    group by access_key_id
    having count(*) >= $session_ip_threshold
),

session_calls as (
    -- pass 2, only the copied sessions' calls from public addresses
    select
        e.eventID,
        e.eventTime,
        coalesce(e.userIdentity.accountId, e.recipientAccountId) as account_id,
        e.awsRegion,
        nullif(e.userIdentity.arn, '') as arn,
        coalesce(
            nullif(e.userIdentity.userName, ''),
            case when e.userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(e.userIdentity.arn, '[^/]+$'), '')
        ) as user_name,
        e.userIdentity.accessKeyId as access_key_id,
        e.sourceIPAddress,
        e.userAgent
    from events as e
    semi join public_pairs as p
        on p.access_key_id = e.userIdentity.accessKeyId and p.sourceIPAddress = e.sourceIPAddress
    where e.userIdentity.type in ('AssumedRole', 'FederatedUser', 'IAMUser', 'Root', 'IdentityCenterUser')
      and starts_with(e.userIdentity.accessKeyId, 'ASIA')
      and coalesce(e.userIdentity.invokedBy, '') = ''
      and e.userIdentity.accessKeyId in (select access_key_id from copied_sessions)
),

sessions as (
    select
        null as severity,
        max(account_id) as account_id,
        first(awsRegion order by eventTime, eventID) as region,
        coalesce(max(arn), max(user_name)) as principal,
        max(user_name) as user_name,
        null as source_ip,
        first(userAgent order by eventTime, eventID) as user_agent,
        min(eventTime) as first_seen,
        max(eventTime) as last_seen,
        count(*) as count,
        list(eventID order by eventTime, eventID) as event_ids,
        json_object(
            'kind', 'session_multiple_ips',
            'access_key_id', access_key_id,
            'source_ips', list_sort(list(distinct sourceIPAddress)),
            'user_agents', list_sort(list(distinct userAgent) filter (where userAgent is not null))
        ) as details
    from session_calls
    group by access_key_id
)

select * from first_seen
union all by name
select * from sessions
