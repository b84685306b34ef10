-- access-key-for-other-user: an access key created for another IAM user, or for the root user.
-- From identity_changes: a successful CreateAccessKey whose target (requestParameters.userName,
-- else responseElements.accessKey.userName, else the calling IAM user) is not the caller, or is
-- root (root calling CreateAccessKey without userName). Access keys never need MFA, so a key
-- made for someone else is a backdoor that survives a password reset and MFA enforcement.
select
    case when target_is_root then 'critical' end as severity,
    account_id,
    region,
    case when caller_type = 'Root' then coalesce(caller_principal, 'arn:aws:iam::' || account_id || ':root')
        else caller_principal end as principal,
    caller_user_name as user_name,
    source_ip,
    user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'target_user_name', target_user_name,
        'target_is_root', target_is_root,
        'access_key_id', target_access_key_id,
        'caller_type', caller_type,
        'caller_temporary', caller_temporary,
        'caller_mfa_authenticated', caller_mfa_authenticated
    ) as details
from identity_changes
where change_kind = 'access_key'
  and event_name = 'CreateAccessKey'
  and succeeded
  and (target_is_root or not target_is_caller)
