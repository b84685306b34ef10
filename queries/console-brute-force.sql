-- console-brute-force: bursts of failed console sign-ins inside a sliding window.
-- Reads the console_signins view. Each failure counts towards its source IP and, when AWS names the user, towards its principal
-- (account + lower-cased user name; hidden user names never form a principal). Within any
-- $window_minutes window: >= $ip_threshold failures from one IP, or >= $spray_distinct_users
-- distinct user names failing from one IP (password spraying), or >= $principal_threshold
-- failures against one principal, or >= $root_threshold against the root user, or one IP failing
-- the root user of >= $root_spray_accounts accounts (root spraying). IAM Identity Center PASSWORD
-- verification failures count like console failures. The failures
-- inside qualifying windows are collapsed into one alert per IP or principal and burst (a new
-- burst starts after a gap longer than the window). A burst from one IP against one user is both
-- an IP group and a principal group with the same failures: it is reported once, with both.
with keyed as (
    -- console_signins: hidden user names have no principal_key; the root user is its own
    -- principal ('<account>/#root'), even if an IAM user is called "root"
    select
        eventID,
        eventTime,
        account_id,
        region as awsRegion,
        principal,
        user_name,
        user_name_hidden,
        is_root,
        case when is_root then '#root' else lower(user_name) end as user_key,
        source_ip as sourceIPAddress,
        user_agent as userAgent,
        failure_reason as errorMessage,
        'console' as sign_in_kind
    from console_signins
    where outcome = 'Failure'
    union all
    -- IAM Identity Center password failures (a wrong second factor is mfa-failure's business)
    select
        eventID,
        eventTime,
        account_id,
        region as awsRegion,
        principal,
        user_name,
        user_name_hidden,
        false as is_root,
        lower(user_name) as user_key,
        source_ip as sourceIPAddress,
        user_agent as userAgent,
        coalesce(failure_reason, error_code) as errorMessage,
        'identity-center' as sign_in_kind
    from identity_center_signins
    where step = 'CredentialVerification'
      and outcome = 'Failure'
      and (password_factor or credential_type is null)
),

grouped as (
    select 'source_ip' as group_kind, coalesce(account_id, '') || '/' || sourceIPAddress as group_key, *
    from keyed
    where sourceIPAddress is not null
    union all
    select 'principal' as group_kind, coalesce(account_id, '') || '/' || user_key as group_key, *
    from keyed
    where user_key is not null
    union all
    -- one IP failing the root user of several accounts: spraying root across an organisation
    select 'root_spray' as group_kind, sourceIPAddress as group_key, *
    from keyed
    where is_root and sourceIPAddress is not null
),

windowed as (
    select
        *,
        count(*) over recent as failures_in_window,
        count(distinct user_key) over recent as user_names_in_window,
        count(distinct account_id) over recent as accounts_in_window
    from grouped
    window recent as (
        partition by group_kind, group_key
        order by eventTime
        range between to_minutes($window_minutes) preceding and current row
    )
),

triggers as (
    select
        *,
        group_kind = 'source_ip' and failures_in_window >= $ip_threshold as failures_from_ip,
        group_kind = 'source_ip' and user_names_in_window >= $spray_distinct_users as password_spraying,
        group_kind = 'principal' and not is_root and failures_in_window >= $principal_threshold as failures_against_principal,
        group_kind = 'principal' and is_root and failures_in_window >= $root_threshold as failures_against_root,
        group_kind = 'root_spray' and accounts_in_window >= $root_spray_accounts as root_spraying
    from windowed
),

flagged as (
    select
        *,
        failures_from_ip or password_spraying or failures_against_principal or failures_against_root or root_spraying
            as is_trigger
    from triggers
),

covered as (
    -- a failure is covered when a qualifying window (ending at a trigger) contains it
    select
        *,
        bool_or(is_trigger) over (
            partition by group_kind, group_key
            order by eventTime
            range between current row and to_minutes($window_minutes) following
        ) as in_burst
    from flagged
),

bursts as (
    select
        *,
        case
            when lag(eventTime) over (partition by group_kind, group_key order by eventTime, eventID)
                >= eventTime - to_minutes($window_minutes)
                then 0
            else 1
        end as starts_burst
    from covered
    where in_burst
),

numbered as (
    select
        *,
        sum(starts_burst) over (
            partition by group_kind, group_key order by eventTime, eventID rows unbounded preceding
        ) as burst_number
    from bursts
),

burst_alerts as (
    select
        group_kind,
        case when count(distinct account_id) = 1 then max(account_id) end as account_id,
        first(awsRegion order by eventTime, eventID) as region,
        case when count(distinct user_key) = 1 and bool_and(user_key is not null) and count(distinct account_id) <= 1
            then coalesce(max(principal) filter (where principal like 'arn:%'), first(principal order by eventTime, eventID))
        end as principal,
        case when count(distinct user_key) = 1 and bool_and(user_key is not null) and count(distinct account_id) <= 1
            then coalesce(max(user_name) filter (where principal like 'arn:%'), first(user_name order by eventTime, eventID))
        end as user_name,
        case when count(distinct sourceIPAddress) = 1 and bool_and(sourceIPAddress is not null)
            then max(sourceIPAddress)
        end as source_ip,
        first(userAgent order by eventTime, eventID) as user_agent,
        min(eventTime) as first_seen,
        max(eventTime) as last_seen,
        count(*) as count,
        list(eventID order by eventTime, eventID) as event_ids,
        list_distinct([
            case when bool_or(failures_from_ip) then 'failures_from_ip' end,
            case when bool_or(password_spraying) then 'password_spraying' end,
            case when bool_or(failures_against_principal) then 'failures_against_principal' end,
            case when bool_or(failures_against_root) then 'failures_against_root' end,
            case when bool_or(root_spraying) then 'root_spraying' end
        ]) as conditions,
        coalesce(list_sort(list(distinct account_id) filter (where account_id is not null)), []) as accounts,
        list_sort(list(distinct sign_in_kind)) as sign_in_kinds,
        max(failures_in_window) as max_failures_in_window,
        max(user_names_in_window) as max_user_names_in_window,
        count(distinct user_key) as distinct_user_names,
        coalesce(list_sort(list(distinct user_name) filter (where user_name is not null)), []) as user_names,
        count(*) filter (where user_name_hidden) as hidden_user_name_failures,
        coalesce(list_sort(list(distinct sourceIPAddress) filter (where sourceIPAddress is not null)), []) as source_ips,
        coalesce(list_sort(list(distinct errorMessage) filter (where errorMessage is not null)), []) as failure_reasons
    from numbered
    group by group_kind, group_key, burst_number
),

merged as (
    -- a burst from one IP against one user qualifies both ways with the same failures: report it once
    select
        *,
        list_sort(list_distinct(flatten(list(conditions) over same_failures))) as all_conditions,
        list_sort(list(group_kind) over same_failures) as grouped_by
    from burst_alerts
    window same_failures as (partition by event_ids)
    qualify row_number() over (partition by event_ids order by group_kind desc) = 1
)

select
    null as severity,
    account_id,
    region,
    principal,
    user_name,
    source_ip,
    user_agent,
    first_seen,
    last_seen,
    count,
    event_ids,
    json_object(
        'grouped_by', grouped_by,
        'conditions', all_conditions,
        'window_minutes', $window_minutes,
        'max_failures_in_window', max_failures_in_window,
        'max_user_names_in_window', max_user_names_in_window,
        'distinct_user_names', distinct_user_names,
        'user_names', user_names,
        'hidden_user_name_failures', hidden_user_name_failures,
        'source_ips', source_ips,
        'failure_reasons', failure_reasons,
        'accounts', accounts,
        'sign_in_kinds', sign_in_kinds
    ) as details
from merged
