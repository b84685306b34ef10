-- logging-redirected: a trail re-pointed or narrowed, or another log sink turned off.
-- UpdateTrail with: a new S3 bucket (compared with the trail's previous CreateTrail/UpdateTrail
-- bucket when one was read), a KMS key removed or replaced, isMultiRegionTrail or
-- includeGlobalServiceEvents or enableLogFileValidation set to false, or its CloudWatch Logs
-- delivery removed. Other sinks: AWS Config recorder stopped or deleted, delivery channel deleted;
-- CloudTrail Lake ingestion stopped or event data store deleted; VPC flow logs deleted; Route 53
-- Resolver query logging deleted or disassociated.
-- Successful calls only. cloudtrail-tampering reports every UpdateTrail; this says what changed.
with calls as (
    select
        eventID,
        eventTime,
        eventSource,
        eventName,
        coalesce(recipientAccountId, userIdentity.accountId) as account_id,
        awsRegion,
        coalesce(nullif(userIdentity.arn, ''), userIdentity.userName) as principal,
        coalesce(
            nullif(userIdentity.userName, ''),
            case when userIdentity.type = 'Root' then 'root' end,
            nullif(regexp_extract(userIdentity.arn, '[^/]+$'), '')
        ) as user_name,
        sourceIPAddress,
        userAgent,
        requestParameters,
        -- a trail is named by name or ARN; compare by its last path segment
        regexp_extract(coalesce(json_extract_string(requestParameters, '$.name'), ''), '[^/]+$') as trail
    from events
    where eventSource in (
          'cloudtrail.amazonaws.com', 'config.amazonaws.com', 'ec2.amazonaws.com', 'route53resolver.amazonaws.com'
      )
      and eventName in (
          'CreateTrail', 'UpdateTrail', 'StopEventDataStoreIngestion', 'DeleteEventDataStore',
          'StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel', 'DeleteFlowLogs',
          'DeleteResolverQueryLogConfig', 'DisassociateResolverQueryLogConfig'
      )
      and coalesce(errorCode, '') = ''
),

trail_history as (
    select
        *,
        json_extract_string(requestParameters, '$.s3BucketName') as bucket,
        lag(json_extract_string(requestParameters, '$.s3BucketName') ignore nulls) over (
            partition by account_id, trail order by eventTime, eventID
        ) as previous_bucket
    from calls
    where eventName in ('CreateTrail', 'UpdateTrail')
),

trail_changes as (
    select
        * exclude (bucket, previous_bucket),
        bucket,
        previous_bucket,
        list_filter([
            case when bucket is not null and bucket is distinct from previous_bucket then 's3_bucket' end,
            case when json_extract_string(requestParameters, '$.kmsKeyId') is not null then 'kms_key' end,
            case when lower(json_extract_string(requestParameters, '$.isMultiRegionTrail')) = 'false'
                then 'multi_region_off' end,
            case when lower(json_extract_string(requestParameters, '$.includeGlobalServiceEvents')) = 'false'
                then 'global_service_events_off' end,
            case when lower(json_extract_string(requestParameters, '$.enableLogFileValidation')) = 'false'
                then 'log_file_validation_off' end,
            case when json_extract_string(requestParameters, '$.cloudWatchLogsLogGroupArn') = ''
                then 'cloudwatch_logs_removed' end
        ], lambda x: x is not null) as changes
    from trail_history
    where eventName = 'UpdateTrail'
),

sink_changes as (
    select
        *,
        null as bucket,
        null as previous_bucket,
        [case
            when eventName like '%EventDataStore%' then 'cloudtrail_lake_off'
            when eventSource = 'config.amazonaws.com' then 'config_recording_off'
            when eventSource = 'route53resolver.amazonaws.com' then 'dns_query_logs_off'
            else 'flow_logs_deleted'
        end] as changes
    from calls
    where eventName not in ('CreateTrail', 'UpdateTrail')
),

redirected as (
    select * from trail_changes where len(changes) > 0
    union all by name
    select * from sink_changes
)

select
    case when list_has_any(changes, ['kms_key', 'cloudwatch_logs_removed', 'flow_logs_deleted', 'dns_query_logs_off'])
        and not
        list_has_any(changes, ['s3_bucket', 'multi_region_off', 'global_service_events_off',
                               'log_file_validation_off', 'cloudtrail_lake_off', 'config_recording_off'])
        then 'medium' end as severity,
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
        'changes', changes,
        'trail', nullif(trail, ''),
        's3_bucket', bucket,
        'previous_s3_bucket', previous_bucket,
        'kms_key_id', json_extract_string(requestParameters, '$.kmsKeyId'),
        'request', requestParameters
    ) as details
from redirected
