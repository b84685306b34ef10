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
    select
        s.*,
        (select count(*) from signins as h
         where h.principal_key = s.principal_key
           and h.eventTime < s.eventTime and h.eventTime >= s.eventTime - to_minutes($history_minutes)) as history,
        (select count(*) from signins as h
         where h.principal_key = s.principal_key and h.source_ip = s.source_ip
           and h.eventTime < s.eventTime and h.eventTime >= s.eventTime - to_minutes($history_minutes)) as ip_seen,
        (select count(*) from signins as h
         where h.principal_key = s.principal_key and h.user_agent is not distinct from s.user_agent
           and h.eventTime < s.eventTime and h.eventTime >= s.eventTime - to_minutes($history_minutes)) as agent_seen
    from signins as s
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
    from judged
    where history >= $min_history_signins
      and (ip_seen = 0 or agent_seen = 0)
),

session_calls as (
    select
        eventID,
        eventTime,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        nullif(userIdentity.arn, '') as arn,
        coalesce(
            nullif(userIdentity.userName, ''),
            case when userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(userIdentity.arn, '[^/]+$'), '')
        ) as user_name,
        userIdentity.accessKeyId as access_key_id,
        sourceIPAddress,
        userAgent
    from events
    where userIdentity.type in ('AssumedRole', 'FederatedUser', 'IAMUser', 'Root', 'IdentityCenterUser')
      and starts_with(userIdentity.accessKeyId, 'ASIA')
      and coalesce(userIdentity.invokedBy, '') = ''
      and regexp_full_match(sourceIPAddress, '[0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*')
      and not regexp_full_match(
          sourceIPAddress,
          '(10\..*|127\..*|169\.254\..*|192\.168\..*|172\.(1[6-9]|2[0-9]|3[01])\..*|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\..*|(?i:f[cd][0-9a-f]{2}:.*|fe80:.*|::1))'
      )
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
    having count(distinct sourceIPAddress) >= $session_ip_threshold
)

select * from first_seen
union all by name
select * from sessions
