-- root-credential-change: the root user's own credentials created or changed.
-- From identity_changes (analyzer/store/views.py): root password recovery requested/completed and
-- PasswordUpdated (sign-in service events), a root access key created or re-activated (a
-- CreateAccessKey/UpdateAccessKey by root without userName acts on root itself), and from the
-- Account Management API a primary (root) email address update started or accepted. Removals
-- (DeleteAccessKey, deactivation) make root safer and are not reported; root MFA devices are
-- mfa-device-added / mfa-device-removed.
with email_updates as (
    select
        eventID,
        eventTime,
        coalesce(recipientAccountId, userIdentity.accountId) as account_id,
        awsRegion as region,
        eventName as event_name,
        'root_email' as change_kind,
        coalesce(nullif(userIdentity.arn, ''), userIdentity.userName) as caller_principal,
        coalesce(nullif(userIdentity.userName, ''), case when userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(userIdentity.arn, '[^/]+$'), '')) as caller_user_name,
        userIdentity.type as caller_type,
        json_extract_string(requestParameters, '$.accountId') as target_account_id,
        null as target_access_key_id,
        sourceIPAddress as source_ip,
        userAgent as user_agent
    from events
    where eventSource = 'account.amazonaws.com'
      and eventName in ('StartPrimaryEmailUpdate', 'AcceptPrimaryEmailUpdate')
      and coalesce(errorCode, '') = ''
),

root_changes as (
    select
        eventID, eventTime, account_id, region, event_name, change_kind, caller_principal, caller_user_name,
        caller_type, account_id as target_account_id, target_access_key_id, source_ip, user_agent
    from identity_changes
    where succeeded
      and target_is_root
      and (
          change_kind = 'root_password'
          or (change_kind = 'access_key' and (
              event_name = 'CreateAccessKey'
              or (event_name = 'UpdateAccessKey' and lower(coalesce(requested_status, '')) = 'active')))
      )
    union all
    select * from email_updates
)

select
    case when event_name = 'PasswordRecoveryRequested' or event_name = 'StartPrimaryEmailUpdate' then 'high' end
        as severity,
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
        'event_name', event_name,
        'change_kind', change_kind,
        'caller_type', caller_type,
        'target_account_id', target_account_id,
        'access_key_id', target_access_key_id
    ) as details
from root_changes
