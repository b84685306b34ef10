-- log-object-rewritten: a CloudTrail log object that came back under its key with other content.
-- A delivered log file never changes, so the older version's rows are kept as evidence
-- (events_superseded) and summarised one row per rewrite by the log_object_rewrites view, which
-- this reads. No time window applies: a rewrite is reported whatever period its events cover.
with rewrites as (
    select
        object,
        superseded_by,
        rewritten_at,
        superseded_records,
        first_event_time,
        last_event_time,
        account_id,
        region,
        event_ids
    from log_object_rewrites
)

select
    null as severity,
    account_id,
    region,
    null as principal,
    null as user_name,
    null as source_ip,
    null as user_agent,
    coalesce(first_event_time, rewritten_at) as first_seen,
    coalesce(last_event_time, rewritten_at) as last_seen,
    superseded_records as count,
    coalesce(event_ids, []) as event_ids,
    json_object(
        'object', object,
        'superseded_records', superseded_records,
        'rewritten_at', strftime(rewritten_at, '%Y-%m-%dT%H:%M:%SZ'),
        'batch', superseded_by
    ) as details
from rewrites
