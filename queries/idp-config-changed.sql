-- idp-config-changed: who may sign in, and how, changed at the identity-provider level.
-- IAM SAML and OIDC providers created, updated or deleted (a new trusted IdP lets its owner
-- assume any role that trusts it); IAM Identity Center's identity source switched (external IdP
-- enabled/disabled, a directory associated/disassociated) or its MFA settings changed
-- (PutMfaDeviceManagementForDirectory). Successful calls only.
with changes as (
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
        sourceIPAddress,
        userAgent,
        coalesce(
            json_extract_string(requestParameters, '$.sAMLProviderArn'),
            json_extract_string(responseElements, '$.sAMLProviderArn'),
            json_extract_string(requestParameters, '$.openIDConnectProviderArn'),
            json_extract_string(responseElements, '$.openIDConnectProviderArn'),
            json_extract_string(requestParameters, '$.name'),
            json_extract_string(requestParameters, '$.url'),
            json_extract_string(requestParameters, '$.directoryId')
        ) as provider
    from events
    where eventSource in ('iam.amazonaws.com', 'sso.amazonaws.com', 'sso-directory.amazonaws.com')
      and eventName in (
          'CreateSAMLProvider', 'UpdateSAMLProvider', 'DeleteSAMLProvider',
          'CreateOpenIDConnectProvider', 'UpdateOpenIDConnectProviderThumbprint', 'DeleteOpenIDConnectProvider',
          'AddClientIDToOpenIDConnectProvider', 'RemoveClientIDFromOpenIDConnectProvider',
          'AssociateDirectory', 'DisassociateDirectory',
          'EnableExternalIdPConfigurationForDirectory', 'DisableExternalIdPConfigurationForDirectory',
          'PutMfaDeviceManagementForDirectory'
      )
      and coalesce(errorCode, '') = ''
)

select
    null as severity,
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
        'event_source', eventSource,
        'event_name', eventName,
        'change', case
            when eventSource = 'iam.amazonaws.com' and eventName like '%SAML%' then 'saml_provider'
            when eventSource = 'iam.amazonaws.com' then 'oidc_provider'
            when eventName = 'PutMfaDeviceManagementForDirectory' then 'identity_center_mfa'
            else 'identity_center_identity_source'
        end,
        'provider', provider,
        'identity_type', identity_type
    ) as details
from changes
