-- root-activity: calls made by the root user itself (CIS: any root usage), grouped per session.
-- Selects userIdentity.type = 'Root' with no invokedBy, or invokedBy = signin.amazonaws.com (root's
-- console session: a deliberate difference from CIS), not a service acting for root, and an
-- eventType other than AwsServiceEvent, excluding sign-in events (root-console-login covers
-- those). Calls from one source IP with gaps shorter than $session_gap_minutes form one alert.
with root_calls as (
    select
        eventID,
        eventTime,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.arn as identity_arn,
        userIdentity.accessKeyId as access_key_id,
        userIdentity.sessionContext.attributes.mfaAuthenticated as mfa_authenticated,
        userIdentity.sessionContext.assumedRoot as assumed_root,
        userIdentity.invokedBy as invoked_by,
        eventSource,
        eventName,
        errorCode,
        readOnly,
        sourceIPAddress,
        userAgent
    from events
    where userIdentity.type = 'Root'
      -- root's own console session: deliberately included (CIS and Panther drop it; see the metadata)
      and coalesce(userIdentity.invokedBy, '') in ('', 'signin.amazonaws.com')
      and lower(coalesce(eventType, '')) <> 'awsserviceevent'
      and eventSource <> 'signin.amazonaws.com'
),

selected_calls as (
    select *
    from root_calls
    where $include_read_only or readOnly is distinct from true
),

gaps as (
    select
        *,
        lag(eventTime) over (
            partition by account_id, sourceIPAddress order by eventTime, eventID
        ) as previous_time
    from selected_calls
),

sessions as (
    select
        *,
        sum(
            case when previous_time is null or eventTime - previous_time > to_minutes($session_gap_minutes) then 1 else 0 end
        ) over (
            partition by account_id, sourceIPAddress order by eventTime, eventID rows unbounded preceding
        ) as session_number
    from gaps
)

select
    null as severity,
    account_id,
    first(awsRegion order by eventTime, eventID) as region,
    coalesce(
        max(nullif(identity_arn, '')),
        'arn:aws:iam::' || account_id || ':root'
    ) as principal,
    'root' as user_name,
    sourceIPAddress as source_ip,
    first(userAgent order by eventTime, eventID) as user_agent,
    min(eventTime) as first_seen,
    max(eventTime) as last_seen,
    count(*) as count,
    list(eventID order by eventTime, eventID) as event_ids,
    json_object(
        'event_names', list_sort(list(distinct eventSource || ':' || eventName)),
        'regions', coalesce(list_sort(list(distinct awsRegion) filter (where awsRegion is not null)), []),
        'write_calls', count(*) filter (where readOnly is distinct from true),
        'failed_calls', count(*) filter (where coalesce(errorCode, '') <> ''),
        'access_key_ids', coalesce(list_sort(list(distinct access_key_id) filter (where coalesce(access_key_id, '') <> '')), []),
        'mfa_authenticated', coalesce(list_sort(list(distinct mfa_authenticated) filter (where mfa_authenticated is not null)), []),
        'assumed_root', bool_or(lower(coalesce(assumed_root, '')) = 'true'),
        'console_session_calls', count(*) filter (where invoked_by = 'signin.amazonaws.com'),
        'session_gap_minutes', $session_gap_minutes
    ) as details
from sessions
group by account_id, sourceIPAddress, session_number
