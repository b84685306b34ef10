-- console-login-without-mfa: successful console sign-ins where MFA was not used.
-- Reads the console_signins view (analyzer/store/views.py), which compares MFAUsed
-- case-insensitively (AWS's own root example says "YES"), counts a session with
-- mfaAuthenticated = 'true' as MFA, and leaves mfa_used NULL when MFAUsed is missing ("unknown",
-- not "without MFA"). Federated sign-ins (SAML, IAM Identity Center, web identity) report
-- MFAUsed = No because MFA happens at the identity provider: excluded unless $include_federated.
with without_mfa as (
    select *
    from console_signins
    where outcome = 'Success'
      and not mfa_used
      and (federation is null or $include_federated)
)

select
    case when identity_type = 'Root' then 'critical' end as severity,
    account_id,
    region,
    principal,
    user_name,
    source_ip,
    user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'mfa_used', mfa_used_reported,
        'identity_type', identity_type,
        'federation', federation,
        'saml_provider_arn', saml_provider_arn,
        'session_mfa_authenticated', session_mfa_authenticated,
        'login_to', login_to
    ) as details
from without_mfa
