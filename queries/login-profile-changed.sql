-- login-profile-changed: a console password (login profile) created or reset for another user.
-- From identity_changes: successful CreateLoginProfile / UpdateLoginProfile whose target user is
-- not the caller (a role session is never the user it changes; a user resetting their own
-- profile is self-service). Critical when a successful console sign-in of that user, from the
-- caller's source IP, follows within $window_minutes: the takeover pattern (set a password, then
-- sign in as the victim). One alert per change.
with changes as (
    select *
    from identity_changes
    where change_kind = 'login_profile'
      and event_name in ('CreateLoginProfile', 'UpdateLoginProfile')
      and succeeded
      and not target_is_caller
      and target_user_name is not null
),

follow_ups as (
    select
        c.eventID as change_id,
        s.eventID as signin_id,
        s.eventTime as signin_time,
        s.principal as signin_principal
    from changes as c
    join console_signins as s
        on s.outcome = 'Success'
        and s.principal_key = coalesce(c.account_id, '') || '/' || lower(c.target_user_name)
        and s.source_ip = c.source_ip
        and s.eventTime >= c.eventTime
        and s.eventTime <= c.eventTime + to_minutes($window_minutes)
),

evidence as (
    select
        change_id,
        min(signin_time) as first_signin,
        max(signin_time) as last_signin,
        list(signin_id order by signin_time, signin_id) as signin_ids,
        max(signin_principal) as signin_principal
    from follow_ups
    group by change_id
)

select
    case when e.change_id is not null then 'critical' end as severity,
    c.account_id,
    c.region,
    c.caller_principal as principal,
    c.caller_user_name as user_name,
    c.source_ip,
    c.user_agent,
    c.eventTime as first_seen,
    coalesce(e.last_signin, c.eventTime) as last_seen,
    1 + coalesce(len(e.signin_ids), 0) as count,
    list_concat([c.eventID], coalesce(e.signin_ids, [])) as event_ids,
    json_object(
        'event_name', c.event_name,
        'target_user_name', c.target_user_name,
        'target_is_root', c.target_is_root,
        'caller_type', c.caller_type,
        'password_reset_required', c.password_reset_required,
        'followed_by_signin', e.change_id is not null,
        'signin_principal', e.signin_principal,
        'first_signin', e.first_signin,
        'window_minutes', $window_minutes
    ) as details
from changes as c
left join evidence as e on e.change_id = c.eventID
