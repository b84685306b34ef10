-- cloudtrail-tampering: a trail stopped, deleted or updated, or its event selectors changed so
-- that management events (or write management events) are no longer logged.
-- Basic selectors: management events are logged when some selector has includeManagementEvents
-- true (the default when absent), write events only if its readWriteType is not ReadOnly.
-- Advanced selectors: logged only when some selector has eventCategory equals Management,
-- write events only if that selector does not restrict readOnly to true.
with trail_changes as (
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
    where eventSource = 'cloudtrail.amazonaws.com'
      and eventName in ('StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors')
),

successful as materialized (
    select
        *,
        row_number() over (order by eventTime, eventID) as change_key
    from trail_changes
    where coalesce(errorCode, '') = ''
),

basic_selectors as (
    select
        s.change_key,
        unnest(json_extract(s.requestParameters, '$.eventSelectors[*]')) as selector
    from successful as s
    where s.eventName = 'PutEventSelectors'
),

basic_coverage as (
    select
        change_key,
        bool_or(coalesce(json_extract_string(selector, '$.includeManagementEvents'), 'true') = 'true')
            as management_logged,
        bool_or(
            coalesce(json_extract_string(selector, '$.includeManagementEvents'), 'true') = 'true'
            and coalesce(json_extract_string(selector, '$.readWriteType'), 'All') <> 'ReadOnly'
        ) as management_writes_logged
    from basic_selectors
    group by change_key
),

advanced_selectors as (
    select
        s.change_key,
        unnest(json_extract(s.requestParameters, '$.advancedEventSelectors[*]')) as selector
    from successful as s
    where s.eventName = 'PutEventSelectors'
),

advanced_fields as (
    select
        change_key,
        selector,
        unnest(json_extract(selector, '$.fieldSelectors[*]')) as field_selector
    from advanced_selectors
),

advanced_selector_scope as (
    select
        change_key,
        selector,
        bool_or(
            json_extract_string(field_selector, '$.field') = 'eventCategory'
            and list_contains(json_extract_string(field_selector, '$.equals[*]'), 'Management')
        ) as is_management,
        bool_or(
            json_extract_string(field_selector, '$.field') = 'readOnly'
            and json_extract_string(field_selector, '$.equals[*]') = ['true']
        ) as reads_only
    from advanced_fields
    group by change_key, selector
),

advanced_coverage as (
    select
        change_key,
        bool_or(is_management) as management_logged,
        bool_or(is_management and not reads_only) as management_writes_logged
    from advanced_selector_scope
    group by change_key
),

advanced_present as (
    select distinct change_key
    from advanced_selectors
),

classified as (
    select
        s.*,
        case
            when s.eventName <> 'PutEventSelectors' then null
            when p.change_key is not null and not coalesce(a.management_logged, false) then 'none'
            when p.change_key is null and b.change_key is not null and not b.management_logged then 'none'
            when p.change_key is not null and not coalesce(a.management_writes_logged, false) then 'read-only'
            when p.change_key is null and b.change_key is not null and not b.management_writes_logged then 'read-only'
            else 'all'
        end as management_events_logged
    from successful as s
    left join basic_coverage as b on b.change_key = s.change_key
    left join advanced_coverage as a on a.change_key = s.change_key
    left join advanced_present as p on p.change_key = s.change_key
),

tampering as (
    select *
    from classified
    where eventName <> 'PutEventSelectors'
       or management_events_logged in ('none', 'read-only')
)

select
    null as severity,
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
        'trail', coalesce(
            json_extract_string(requestParameters, '$.name'),
            json_extract_string(requestParameters, '$.trailName')
        ),
        'management_events_logged', management_events_logged,
        'identity_type', identity_type
    ) as details
from tampering
