-- console-login-after-failures: a successful console sign-in for a principal, or from a source IP,
-- that had >= $threshold failed sign-ins in the preceding $window_minutes: a guessed password.
-- Reads the console_signins view: principals are keyed by account and lower-cased user name
-- (principal_key; failures usually carry no ARN); failures with a hidden user name count only
-- towards their source IP. One alert per success, listing the success and every failure that made
-- it qualify.
with keyed as (
    select
        eventID,
        eventTime,
        account_id,
        region as awsRegion,
        arn as identity_arn,
        user_name,
        principal_key,
        lower(outcome) as outcome,
        source_ip as sourceIPAddress,
        user_agent as userAgent,
        failure_reason as errorMessage,
        mfa_used_reported
    from console_signins
),
failures as (
    select eventID, eventTime, principal_key, sourceIPAddress, errorMessage
    from keyed
    where outcome = 'failure'
),

successes as (
    select *
    from keyed
    where outcome = 'success'
),

matches as (
    select s.eventID as success_id, 'principal' as matched_by, f.eventID as failure_id, f.eventTime as failure_time,
        f.errorMessage as failure_reason
    from successes as s
    join failures as f
        on f.principal_key = s.principal_key
        and f.eventTime between s.eventTime - to_minutes($window_minutes) and s.eventTime
    union all
    select s.eventID as success_id, 'source_ip' as matched_by, f.eventID as failure_id, f.eventTime as failure_time,
        f.errorMessage as failure_reason
    from successes as s
    join failures as f
        on f.sourceIPAddress = s.sourceIPAddress
        and f.eventTime between s.eventTime - to_minutes($window_minutes) and s.eventTime
),

qualifying as (
    select success_id, matched_by, count(*) as failures
    from matches
    group by success_id, matched_by
    having count(*) >= $threshold
),

evidence as (
    select
        q.success_id,
        list_sort(list(distinct q.matched_by)) as matched_by,
        max(q.failures) filter (where q.matched_by = 'principal') as failures_for_principal,
        max(q.failures) filter (where q.matched_by = 'source_ip') as failures_from_ip
    from qualifying as q
    group by q.success_id
),

failure_lists as (
    select
        m.success_id,
        min(m.failure_time) as first_failure,
        list(distinct m.failure_id) as failure_ids,
        coalesce(list_sort(list(distinct m.failure_reason) filter (where m.failure_reason is not null)), []) as failure_reasons
    from matches as m
    join qualifying as q on q.success_id = m.success_id and q.matched_by = m.matched_by
    group by m.success_id
)

select
    null as severity,
    s.account_id,
    s.awsRegion as region,
    coalesce(nullif(s.identity_arn, ''), s.user_name) as principal,
    s.user_name,
    s.sourceIPAddress as source_ip,
    s.userAgent as user_agent,
    least(l.first_failure, s.eventTime) as first_seen,
    s.eventTime as last_seen,
    len(l.failure_ids) + 1 as count,
    list_append(list_sort(l.failure_ids), s.eventID) as event_ids,
    json_object(
        'matched_by', e.matched_by,
        'failures_for_principal', e.failures_for_principal,
        'failures_from_ip', e.failures_from_ip,
        'threshold', $threshold,
        'window_minutes', $window_minutes,
        'success_event_id', s.eventID,
        'success_mfa_used', s.mfa_used_reported,
        'failure_reasons', l.failure_reasons
    ) as details
from successes as s
join evidence as e on e.success_id = s.eventID
join failure_lists as l on l.success_id = s.eventID
