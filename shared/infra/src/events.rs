//! Domain events into the raw zone: for each product whose source declares `events`, an
//! EventBridge rule on the mesh's bus matching the events' `source` and `detail-type`, whose
//! target (input `$.detail`) is a Kinesis Data Firehose delivery stream writing NDJSON to
//! `raw/<product>/` of the domain bucket under Firehose's default time layout
//! (`YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<id>`), encrypted with the domain key. Ingest
//! picks the objects up like any raw file ([`tessera_core::domain_events`] is the embedded
//! equivalent).

use serde_json::{Value, json};
use tessera_core::domain_events::stream_name;
use tessera_core::keys::Zone;
use tessera_core::mesh::{Domain, EventSource, Mesh, ProductKind};

use crate::cfn::{Statement, Tags, Template, get_att, import, policy, reference, s3_arn, sub};
use crate::domain::{BUCKET, EVENT_DLQ, KEY, RULE_MAX_EVENT_AGE_SECONDS, RULE_RETRY_ATTEMPTS};
use crate::names::{domain_rule_name, pascal};
use crate::platform::bus_name_export;
use crate::{Error, Result};

/// Longest Firehose delivery stream name.
const MAX_STREAM_NAME: usize = 64;

/// Logical id of one of a product's event-delivery resources: `OrderEventsEventsRule`.
pub fn events_id(product: &str, suffix: &str) -> String {
    format!("{}Events{suffix}", pascal(product))
}

/// The products of a domain that take events, with their rule.
pub fn event_products(domain: &Domain) -> Vec<(&str, &EventSource)> {
    domain
        .products
        .iter()
        .filter_map(|p| match &p.kind {
            ProductKind::Source { source, .. } => {
                source.events.as_deref().map(|e| (p.name.as_str(), e))
            }
            ProductKind::Aggregate { .. } => None,
        })
        .collect()
}

/// Logical ids of the event rules of a domain (their dead letters go to the domain's queue).
pub fn rule_ids(domain: &Domain) -> Vec<String> {
    event_products(domain)
        .into_iter()
        .map(|(p, _)| events_id(p, "Rule"))
        .collect()
}

/// Adds the rule, the delivery stream and their two roles for every product of the domain that
/// takes events.
pub fn add(t: &mut Template, mesh: &Mesh, domain: &Domain, tags: &Tags) -> Result<()> {
    for (product, events) in event_products(domain) {
        add_product(
            t,
            mesh,
            domain,
            product,
            events,
            &tags.clone().product(product),
        )?;
    }
    Ok(())
}

fn add_product(
    t: &mut Template,
    mesh: &Mesh,
    domain: &Domain,
    product: &str,
    events: &EventSource,
    tags: &Tags,
) -> Result<()> {
    let d = &domain.name;
    let name = stream_name(&mesh.name, d, product);
    if name.len() > MAX_STREAM_NAME {
        return Err(Error::Config(format!(
            "delivery stream name `{name}` is longer than {MAX_STREAM_NAME} characters: shorten \
             the mesh, domain or product name"
        )));
    }
    let stream = events_id(product, "DeliveryStream");
    let delivery_role = events_id(product, "DeliveryRole");
    let rule = events_id(product, "Rule");
    let rule_role = events_id(product, "RuleRole");
    let prefix = format!("{}{product}/", Zone::Raw.prefix());
    let errors = format!("{}{product}/firehose/", Zone::Quarantine.prefix());
    let key_arn = get_att(KEY, "Arn");
    let bucket = &domain.bucket;
    let region_account = "${AWS::Region}:${AWS::AccountId}";
    let stream_arn = sub(format!(
        "arn:${{AWS::Partition}}:firehose:{region_account}:deliverystream/{name}"
    ));

    // Firehose writes the product's raw prefix (and its error prefix), nothing else.
    t.resource(
        &delivery_role,
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": format!("Tessera {d}: Firehose delivers {product}'s events to its raw zone"),
                "AssumeRolePolicyDocument": policy(&[
                    Statement::allow("FirehoseAssumesRole", &["sts:AssumeRole"], vec![])
                        .to(json!({ "Service": "firehose.amazonaws.com" }))
                        .when(json!({ "StringEquals": { "sts:ExternalId": reference("AWS::AccountId") } })),
                ]),
                "Policies": [{
                    "PolicyName": "deliver-to-raw-zone",
                    "PolicyDocument": policy(&[
                        Statement::allow(
                            "LocateBucket",
                            &["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                            vec![s3_arn(bucket, None)],
                        ),
                        Statement::allow(
                            "WriteRawAndErrorPrefixes",
                            &["s3:PutObject", "s3:AbortMultipartUpload"],
                            vec![
                                s3_arn(bucket, Some(&format!("{prefix}*"))),
                                s3_arn(bucket, Some(&format!("{errors}*"))),
                            ],
                        ),
                        Statement::allow(
                            "EncryptWithDomainKeyThroughS3",
                            &["kms:GenerateDataKey", "kms:Decrypt"],
                            vec![key_arn.clone()],
                        )
                        .when(json!({
                            "StringEquals": { "kms:ViaService": sub("s3.${AWS::Region}.amazonaws.com") },
                            "StringLike": {
                                "kms:EncryptionContext:aws:s3:arn": [
                                    s3_arn(bucket, Some(&format!("{prefix}*"))),
                                    s3_arn(bucket, Some(&format!("{errors}*"))),
                                ],
                            },
                        })),
                    ]),
                }],
                "Tags": tags.list(),
            },
        }),
    )?;
    t.resource(
        &stream,
        json!({
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            // The destination is named, not referenced: the bucket must exist first.
            "DependsOn": [BUCKET],
            "Properties": {
                "DeliveryStreamName": name,
                "DeliveryStreamType": "DirectPut",
                "DeliveryStreamEncryptionConfigurationInput": {
                    "KeyType": "CUSTOMER_MANAGED_CMK",
                    "KeyARN": key_arn.clone(),
                },
                "ExtendedS3DestinationConfiguration": {
                    "BucketARN": s3_arn(bucket, None),
                    "RoleARN": get_att(&delivery_role, "Arn"),
                    // No expression: Firehose appends its default `YYYY/MM/DD/HH/` (UTC).
                    "Prefix": prefix,
                    "ErrorOutputPrefix": errors,
                    "BufferingHints": {
                        "IntervalInSeconds": events.buffer_seconds,
                        "SizeInMBs": events.buffer_mib,
                    },
                    "CompressionFormat": "UNCOMPRESSED",
                    "EncryptionConfiguration": {
                        "KMSEncryptionConfig": { "AWSKMSKeyARN": key_arn.clone() },
                    },
                    // One record per line: the batch is NDJSON.
                    "ProcessingConfiguration": {
                        "Enabled": true,
                        "Processors": [{ "Type": "AppendDelimiterToRecord" }],
                    },
                    "S3BackupMode": "Disabled",
                },
                "Tags": tags.list(),
            },
        }),
    )?;

    // EventBridge may put records into this stream only.
    t.resource(
        &rule_role,
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": format!("Tessera {d}: EventBridge puts {product}'s events into its delivery stream"),
                "AssumeRolePolicyDocument": policy(&[
                    Statement::allow("EventBridgeAssumesRole", &["sts:AssumeRole"], vec![])
                        .to(json!({ "Service": "events.amazonaws.com" }))
                        .when(json!({ "StringEquals": { "aws:SourceAccount": reference("AWS::AccountId") } })),
                ]),
                "Policies": [{
                    "PolicyName": "put-into-delivery-stream",
                    "PolicyDocument": policy(&[
                        Statement::allow(
                            "PutRecords",
                            &["firehose:PutRecord", "firehose:PutRecordBatch"],
                            vec![stream_arn],
                        ),
                    ]),
                }],
                "Tags": tags.list(),
            },
        }),
    )?;
    t.resource(
        &rule,
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": domain_rule_name(&mesh.name, d, &format!("events-{product}"))?,
                "Description": format!(
                    "Tessera {d}: {} events of {} to {product}'s raw zone (Firehose)",
                    events.detail_type.to_vec().join(", "),
                    events.source
                ),
                "EventBusName": import(&bus_name_export(&mesh.name)),
                "EventPattern": event_pattern(events),
                "State": "ENABLED",
                "Targets": [{
                    "Id": "firehose",
                    "Arn": get_att(&stream, "Arn"),
                    "RoleArn": get_att(&rule_role, "Arn"),
                    "InputPath": "$.detail",
                    "RetryPolicy": {
                        "MaximumRetryAttempts": RULE_RETRY_ATTEMPTS,
                        "MaximumEventAgeInSeconds": RULE_MAX_EVENT_AGE_SECONDS,
                    },
                    "DeadLetterConfig": { "Arn": get_att(EVENT_DLQ, "Arn") },
                }],
            },
        }),
    )?;
    Ok(())
}

/// The rule's pattern: the events' source and detail-types.
pub fn event_pattern(events: &EventSource) -> Value {
    json!({
        "source": [events.source],
        "detail-type": events.detail_type.to_vec(),
    })
}
