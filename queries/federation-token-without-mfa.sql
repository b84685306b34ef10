-- federation-token-without-mfa: credentials minted from a password-less, MFA-less path.
-- GetSessionToken by an IAM user (or root) without an MFA serialNumber in the request (the
-- session it returns is not MFA-authenticated); GetFederationToken by an IAM user or root (its
-- sessions can never carry MFA); GetSigninToken (the federation endpoint turning temporary
-- credentials into a console session) from a session that is not MFA-authenticated, except the
-- IAM Identity Center portal's own (AWSReservedSSO_ roles, the same rule as console_signins).
-- Successful calls only. Root callers are high.
with token_calls as (
    select
        eventID,
        eventTime,
        eventSource,
        eventName,
        coalesce(userIdentity.accountId, recipientAccountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        nullif(userIdentity.arn, '') as identity_arn,
        coalesce(
            nullif(userIdentity.userName, ''),
            case when userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(userIdentity.arn, '[^/]+$'), '')
        ) as caller_user_name,
        userIdentity.accessKeyId as access_key_id,
        userIdentity.sessionContext.attributes.mfaAuthenticated as mfa_authenticated,
        userIdentity.sessionContext.sessionIssuer.arn as issuer_arn,
        json_extract_string(requestParameters, '$.serialNumber') as mfa_serial,
        json_extract_string(requestParameters, '$.name') as federated_name,
        json_extract_string(requestParameters, '$.durationSeconds') as duration_seconds,
        sourceIPAddress,
        userAgent
    from events
    where eventSource in ('sts.amazonaws.com', 'signin.amazonaws.com')
      and eventName in ('GetSessionToken', 'GetFederationToken', 'GetSigninToken')
      and coalesce(errorCode, '') = ''
),

selected as (
    select *
    from token_calls
    where (eventName = 'GetSessionToken' and eventSource = 'sts.amazonaws.com'
           and identity_type in ('IAMUser', 'Root') and coalesce(mfa_serial, '') = '')
       or (eventName = 'GetFederationToken' and eventSource = 'sts.amazonaws.com'
           and identity_type in ('IAMUser', 'Root'))
       or (eventName = 'GetSigninToken' and eventSource = 'signin.amazonaws.com'
           and lower(coalesce(mfa_authenticated, '')) <> 'true'
           and not (identity_type = 'AssumedRole' and (
               coalesce(identity_arn, '') like '%:assumed-role/AWSReservedSSO\_%' escape '\'
               or coalesce(issuer_arn, '') like '%:role/aws-reserved/sso.amazonaws.com/%')))
)

select
    case when identity_type = 'Root' then 'high' end as severity,
    account_id,
    awsRegion as region,
    coalesce(identity_arn, caller_user_name) as principal,
    caller_user_name as user_name,
    sourceIPAddress as source_ip,
    userAgent as user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'event_name', eventName,
        'identity_type', identity_type,
        'access_key_id', access_key_id,
        'session_mfa_authenticated', mfa_authenticated,
        'federated_name', federated_name,
        'duration_seconds', duration_seconds
    ) as details
from selected
