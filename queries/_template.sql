-- template-example: copy this file and _template.toml to queries/<your-id>.sql / .toml.
-- (Files starting with "_" are not loaded.) Conventions, checked by tests/test_detection_metadata.py:
--   * read only the events view; the first step filters eventSource / eventName with plain = or IN
--     directly on events (that is what lets DuckDB skip Parquet row groups), and names its columns;
--   * lowercase SQL, one CTE per step, an explicit final column list;
--   * parameters are DuckDB named parameters ($name), declared in [params] of the .toml, never pasted;
--   * the final select returns exactly these columns (analyzer/detect/shape.py casts them):
--     severity (NULL = the metadata default), account_id, region, principal, user_name, source_ip,
--     user_agent, first_seen, last_seen, count, event_ids (list of every eventID covered),
--     details (a JSON object);
--   * a principal is an ARN, or a name; NULL when AWS hides the user name;
--   * never filter by one Region; compare AWS's free-text flags case-insensitively.
with access_key_creations as (
    select
        eventID,
        eventTime,
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
    where eventSource = 'iam.amazonaws.com'
      and eventName = 'CreateAccessKey'
),

for_other_users as (
    select
        *,
        json_extract_string(requestParameters, '$.userName') as target_user_name
    from access_key_creations
    where coalesce(errorCode, '') = ''
      and lower(coalesce(json_extract_string(requestParameters, '$.userName'), '')) <> lower(coalesce(identity_user_name, ''))
      and json_extract_string(requestParameters, '$.userName') is not null
)

select
    case when identity_type = 'Root' then $root_severity end as severity,
    account_id,
    awsRegion as region,
    coalesce(nullif(identity_arn, ''), nullif(identity_user_name, '')) as principal,
    nullif(identity_user_name, '') as user_name,
    sourceIPAddress as source_ip,
    userAgent as user_agent,
    eventTime as first_seen,
    eventTime as last_seen,
    1 as count,
    [eventID] as event_ids,
    json_object('target_user_name', target_user_name) as details
from for_other_users
