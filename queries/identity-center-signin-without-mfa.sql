-- identity-center-signin-without-mfa: an IAM Identity Center sign-in that succeeded without a
-- second factor, or that enrolled a new MFA device during the sign-in.
-- From identity_center_workflows (the steps of one sign-in share AuthWorkflowID): a successful
-- UserAuthentication with no successful MFA factor (TOTP, WEBAUTHN, EMAIL_OTP, ...) and no
-- external identity provider (MFA then happens at the IdP). A sign-in whose UserAuthentication
-- says DeviceEnrollmentRequired = true registered its first MFA device right then: whoever knew
-- the password now owns the second factor (high).
select
    case when enrollment_required then 'high' end as severity,
    account_id,
    region,
    principal,
    user_name,
    source_ip,
    user_agent,
    first_seen,
    last_seen,
    len(event_ids) as count,
    event_ids,
    json_object(
        'auth_workflow_id', workflow_id,
        'authenticated_with', authenticated_with,
        'verified_factors', verified_factors,
        'enrollment_required', enrollment_required,
        'password_failures', password_failures,
        'identity_store_arn', identity_store_arn,
        'source_ips', source_ips
    ) as details
from identity_center_workflows
where authenticated
  and not mfa_verified
  and not external_idp
