-- password-policy-weakened: the account password policy made weaker, or deleted.
-- UpdateAccountPasswordPolicy replaces the whole policy: a parameter left out reverts to its
-- default (minimum length 6, no character classes, no expiry, no reuse prevention, no hard
-- expiry), so every update is normalised with those defaults and compared, value by value, with
-- the account's previous successful update read (up to $history_minutes back). Without a previous
-- one, it is compared with the baseline ($baseline_min_length, $baseline_reuse_prevention: CIS).
-- DeleteAccountPasswordPolicy removes every requirement. Successful calls only.
with policy_calls as (
    select
        eventID,
        eventTime,
        eventName,
        coalesce(recipientAccountId, userIdentity.accountId) as account_id,
        awsRegion,
        userIdentity.type as identity_type,
        coalesce(nullif(userIdentity.arn, ''), userIdentity.userName) as principal,
        coalesce(
            nullif(userIdentity.userName, ''),
            case when userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(userIdentity.arn, '[^/]+$'), '')
        ) as user_name,
        sourceIPAddress,
        userAgent,
        requestParameters
    from events
    where eventSource = 'iam.amazonaws.com'
      and eventName in ('UpdateAccountPasswordPolicy', 'DeleteAccountPasswordPolicy')
      and coalesce(errorCode, '') = ''
),

normalised as (
    select
        * exclude (requestParameters),
        case when eventName = 'DeleteAccountPasswordPolicy' then 0
            else coalesce(try_cast(json_extract_string(requestParameters, '$.minimumPasswordLength') as integer), 6)
        end as min_length,
        coalesce(try_cast(json_extract_string(requestParameters, '$.requireSymbols') as boolean), false)
            and eventName <> 'DeleteAccountPasswordPolicy' as symbols,
        coalesce(try_cast(json_extract_string(requestParameters, '$.requireNumbers') as boolean), false)
            and eventName <> 'DeleteAccountPasswordPolicy' as numbers,
        coalesce(try_cast(json_extract_string(requestParameters, '$.requireUppercaseCharacters') as boolean), false)
            and eventName <> 'DeleteAccountPasswordPolicy' as uppercase,
        coalesce(try_cast(json_extract_string(requestParameters, '$.requireLowercaseCharacters') as boolean), false)
            and eventName <> 'DeleteAccountPasswordPolicy' as lowercase,
        -- 0 = passwords never expire (the weakest), else days
        case when eventName = 'DeleteAccountPasswordPolicy' then 0
            else coalesce(try_cast(json_extract_string(requestParameters, '$.maxPasswordAge') as integer), 0)
        end as max_age,
        case when eventName = 'DeleteAccountPasswordPolicy' then 0
            else coalesce(try_cast(json_extract_string(requestParameters, '$.passwordReusePrevention') as integer), 0)
        end as reuse_prevention,
        coalesce(try_cast(json_extract_string(requestParameters, '$.hardExpiry') as boolean), false)
            and eventName <> 'DeleteAccountPasswordPolicy' as hard_expiry
    from policy_calls
),

compared as (
    select
        *,
        lag(min_length) over previous as prev_min_length,
        lag(symbols) over previous as prev_symbols,
        lag(numbers) over previous as prev_numbers,
        lag(uppercase) over previous as prev_uppercase,
        lag(lowercase) over previous as prev_lowercase,
        lag(max_age) over previous as prev_max_age,
        lag(reuse_prevention) over previous as prev_reuse_prevention,
        lag(hard_expiry) over previous as prev_hard_expiry,
        lag(eventID) over previous as prev_event_id
    from normalised
    window previous as (partition by account_id order by eventTime, eventID)
),

weakened as (
    select
        *,
        list_filter([
            case when prev_event_id is not null and min_length < prev_min_length then 'minimum_password_length' end,
            case when prev_event_id is null and min_length < $baseline_min_length then 'minimum_password_length' end,
            case when prev_symbols and not symbols then 'require_symbols' end,
            case when prev_numbers and not numbers then 'require_numbers' end,
            case when prev_uppercase and not uppercase then 'require_uppercase_characters' end,
            case when prev_lowercase and not lowercase then 'require_lowercase_characters' end,
            case when prev_max_age > 0 and (max_age = 0 or max_age > prev_max_age) then 'max_password_age' end,
            case when prev_event_id is not null and reuse_prevention < prev_reuse_prevention
                then 'password_reuse_prevention' end,
            case when prev_event_id is null and reuse_prevention < $baseline_reuse_prevention
                then 'password_reuse_prevention' end,
            case when prev_hard_expiry and not hard_expiry then 'hard_expiry' end
        ], lambda x: x is not null) as weaker
    from compared
)

select
    case
        when eventName = 'DeleteAccountPasswordPolicy' or prev_event_id is not null then 'high'
    end as severity,
    account_id,
    awsRegion as region,
    principal,
    user_name,
    sourceIPAddress as source_ip,
    userAgent as user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object(
        'event_name', eventName,
        'weaker', weaker,
        'compared_with', case when prev_event_id is not null then 'previous_policy' else 'baseline' end,
        'previous_event_id', prev_event_id,
        'history_minutes', $history_minutes,
        'new_policy', json_object(
            'minimum_password_length', min_length, 'require_symbols', symbols, 'require_numbers', numbers,
            'require_uppercase_characters', uppercase, 'require_lowercase_characters', lowercase,
            'max_password_age', max_age, 'password_reuse_prevention', reuse_prevention, 'hard_expiry', hard_expiry
        ),
        'previous_policy', case when prev_event_id is not null then json_object(
            'minimum_password_length', prev_min_length, 'require_symbols', prev_symbols,
            'require_numbers', prev_numbers, 'require_uppercase_characters', prev_uppercase,
            'require_lowercase_characters', prev_lowercase, 'max_password_age', prev_max_age,
            'password_reuse_prevention', prev_reuse_prevention, 'hard_expiry', prev_hard_expiry
        ) end
    ) as details
from weakened
where eventName = 'DeleteAccountPasswordPolicy' or len(weaker) > 0
