//! Resources both kinds of stack use, each with its controls built in: KMS keys with rotation,
//! buckets that are encrypted, versioned, private, owner-enforced, logged and TLS-only, and the
//! buckets their access logs go to.

use serde_json::{Map, Value, json};

use crate::Result;
use crate::cfn::{Statement, Tags, Template, account_root, checkov_skips, get_att, policy, sub};

/// Days after which an incomplete multipart upload is aborted.
pub const ABORT_MULTIPART_DAYS: u32 = 1;
/// Days a replaced or deleted object version is kept.
pub const NONCURRENT_DAYS: u32 = 30;
/// Days S3 access logs are kept.
pub const ACCESS_LOG_DAYS: u32 = 365;

/// How a bucket encrypts objects by default.
#[derive(Debug, Clone)]
pub enum Encryption {
    /// SSE-KMS with this key (its ARN), with an S3 bucket key.
    Kms(Value),
    /// SSE-S3: the only default encryption S3 server access logging can deliver to.
    S3Managed,
}

/// A bucket to create.
#[derive(Debug, Clone)]
pub struct BucketSpec<'a> {
    /// Logical id.
    pub id: &'a str,
    /// Bucket name; CloudFormation names it when `None`.
    pub name: Option<&'a str>,
    /// Default encryption.
    pub encryption: Encryption,
    /// Logical id of the bucket its access logs go to, and their key prefix there.
    pub access_log: Option<(&'a str, String)>,
    /// Lifecycle rules beyond the ones every bucket has (abort incomplete multipart uploads,
    /// expire noncurrent versions and their delete markers).
    pub lifecycle: Vec<Value>,
    /// Whether S3 sends its events to EventBridge.
    pub event_bridge: bool,
    /// Tags.
    pub tags: &'a Tags,
    /// checkov checks that do not apply, with the reason.
    pub skips: &'a [(&'a str, &'a str)],
}

/// The S3 bucket resource.
pub fn bucket(spec: &BucketSpec<'_>) -> Value {
    let mut p = Map::new();
    if let Some(name) = spec.name {
        p.insert("BucketName".into(), json!(name));
    }
    let rule = match &spec.encryption {
        Encryption::Kms(key) => json!({
            "BucketKeyEnabled": true,
            "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key },
        }),
        Encryption::S3Managed => json!({
            "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" },
        }),
    };
    p.insert(
        "BucketEncryption".into(),
        json!({ "ServerSideEncryptionConfiguration": [rule] }),
    );
    p.insert(
        "VersioningConfiguration".into(),
        json!({ "Status": "Enabled" }),
    );
    p.insert(
        "PublicAccessBlockConfiguration".into(),
        json!({
            "BlockPublicAcls": true,
            "BlockPublicPolicy": true,
            "IgnorePublicAcls": true,
            "RestrictPublicBuckets": true,
        }),
    );
    p.insert(
        "OwnershipControls".into(),
        json!({ "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] }),
    );
    if let Some((destination, prefix)) = &spec.access_log {
        p.insert(
            "LoggingConfiguration".into(),
            json!({ "DestinationBucketName": { "Ref": destination }, "LogFilePrefix": prefix }),
        );
    }
    let mut rules = vec![
        json!({
            "Id": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": ABORT_MULTIPART_DAYS },
        }),
        json!({
            "Id": "expire-noncurrent-versions",
            "Status": "Enabled",
            "NoncurrentVersionExpiration": { "NoncurrentDays": NONCURRENT_DAYS },
            "ExpiredObjectDeleteMarker": true,
        }),
    ];
    rules.extend(spec.lifecycle.iter().cloned());
    p.insert("LifecycleConfiguration".into(), json!({ "Rules": rules }));
    if spec.event_bridge {
        p.insert(
            "NotificationConfiguration".into(),
            json!({ "EventBridgeConfiguration": { "EventBridgeEnabled": true } }),
        );
    }
    p.insert("Tags".into(), spec.tags.list());
    let mut r = Map::new();
    r.insert("Type".into(), json!("AWS::S3::Bucket"));
    if !spec.skips.is_empty() {
        r.insert("Metadata".into(), checkov_skips(spec.skips));
    }
    // Data outlives the stack: deleting or replacing the stack leaves the bucket.
    r.insert("DeletionPolicy".into(), json!("Retain"));
    r.insert("UpdateReplacePolicy".into(), json!("Retain"));
    r.insert("Properties".into(), Value::Object(p));
    Value::Object(r)
}

/// Expires objects under `prefix` (every object when empty) after `days`.
pub fn expire(id: &str, prefix: &str, days: u32) -> Value {
    let mut rule = json!({ "Id": id, "Status": "Enabled", "ExpirationInDays": days });
    if !prefix.is_empty() {
        rule["Prefix"] = json!(prefix);
    }
    rule
}

/// Denies every request to the bucket and its objects that does not use TLS.
pub fn tls_only(bucket_id: &str) -> Statement {
    Statement::deny(
        "DenyInsecureTransport",
        &["s3:*"],
        vec![
            get_att(bucket_id, "Arn"),
            sub(format!("${{{bucket_id}.Arn}}/*")),
        ],
    )
    .to(json!("*"))
    .when(json!({ "Bool": { "aws:SecureTransport": "false" } }))
}

/// The bucket policy of `bucket_id`: TLS only, plus `statements`.
pub fn bucket_policy(bucket_id: &str, statements: Vec<Statement>) -> Value {
    let mut all = vec![tls_only(bucket_id)];
    all.extend(statements);
    json!({
        "Type": "AWS::S3::BucketPolicy",
        "Properties": { "Bucket": { "Ref": bucket_id }, "PolicyDocument": policy(&all) },
    })
}

/// Adds a bucket for S3 server access logs, with its policy letting S3's log delivery write
/// the logs of `sources` (each a bucket ARN and the key prefix its logs go under).
pub fn add_access_log_bucket(
    t: &mut Template,
    id: &str,
    tags: &Tags,
    sources: &[(Value, String)],
) -> Result<()> {
    t.resource(
        id,
        bucket(&BucketSpec {
            id,
            name: None,
            encryption: Encryption::S3Managed,
            access_log: None,
            lifecycle: vec![expire("expire-access-logs", "", ACCESS_LOG_DAYS)],
            event_bridge: false,
            tags,
            skips: &[
                (
                    "CKV_AWS_18",
                    "This bucket is the destination of S3 server access logs; logging its own \
                     access into itself would loop, and into another bucket only moves the question.",
                ),
            ],
        }),
    )?;
    let statement = Statement::allow(
        "AllowS3ServerAccessLogs",
        &["s3:PutObject"],
        sources
            .iter()
            .map(|(_, prefix)| sub(format!("${{{id}.Arn}}/{prefix}*")))
            .collect(),
    )
    .to(json!({ "Service": "logging.s3.amazonaws.com" }))
    .when(json!({
        "ArnLike": { "aws:SourceArn": sources.iter().map(|(arn, _)| arn.clone()).collect::<Vec<_>>() },
        "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } },
    }));
    t.resource(&format!("{id}Policy"), bucket_policy(id, vec![statement]))
}

/// A customer-managed symmetric key with yearly rotation. `statements` follow the statement
/// that lets the account administer the key (and lets IAM policies of the account grant its use).
pub fn kms_key(description: &str, statements: Vec<Statement>, tags: &Tags) -> Value {
    let mut all = vec![
        Statement::allow("AccountAdministersKey", &["kms:*"], vec![json!("*")]).to(account_root()),
    ];
    all.extend(statements);
    json!({
        "Type": "AWS::KMS::Key",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": description,
            "EnableKeyRotation": true,
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "PendingWindowInDays": 30,
            "KeyPolicy": policy(&all),
            "Tags": tags.list(),
        },
    })
}

/// An alias of a key.
pub fn kms_alias(name: &str, key_id: &str) -> Value {
    json!({
        "Type": "AWS::KMS::Alias",
        "Properties": { "AliasName": format!("alias/{name}"), "TargetKeyId": { "Ref": key_id } },
    })
}
