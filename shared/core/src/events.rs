//! The events that chain the stages, in the shapes EventBridge delivers them.
//!
//! Events carry pointers (bucket, key, version, counts), never data. Three kinds flow:
//!
//! * `Object Created` from `aws.s3`: an object landed in a zone (S3's EventBridge notification);
//! * `DataProductPublished` from `tessera`: a product version was committed;
//! * `ContractViolated` from `tessera`: a product version failed its contract and was quarantined.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `source` of S3 events.
pub const S3_SOURCE: &str = "aws.s3";
/// `source` of Tessera's own events.
pub const TESSERA_SOURCE: &str = "tessera";
/// `detail-type` of an S3 object creation.
pub const OBJECT_CREATED: &str = "Object Created";
/// `detail-type` of a committed product version.
pub const PRODUCT_PUBLISHED: &str = "DataProductPublished";
/// `detail-type` of a product version refused by its contract.
pub const CONTRACT_VIOLATED: &str = "ContractViolated";
/// `detail-type` of an input a stage gave up on after its attempts (poison input).
pub const INPUT_FAILED: &str = "InputFailed";
/// Detail type of the event an EventBridge schedule (a rule with a schedule expression) sends.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// An EventBridge event with a JSON detail, as delivered to a Lambda target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BusEvent {
    /// Always `"0"`.
    #[serde(default = "zero")]
    pub version: String,
    /// Event id.
    #[serde(default)]
    pub id: String,
    /// What happened.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// Who says so.
    pub source: String,
    /// Account id.
    #[serde(default)]
    pub account: String,
    /// When.
    pub time: DateTime<Utc>,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// ARNs of the resources concerned.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The payload.
    pub detail: serde_json::Value,
}

fn zero() -> String {
    "0".to_owned()
}

impl BusEvent {
    /// A new event with a fresh id.
    pub fn new(source: &str, detail_type: &str, detail: serde_json::Value) -> BusEvent {
        let time = Utc::now();
        let id = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(
                format!(
                    "{detail_type}{detail}{}",
                    time.timestamp_nanos_opt().unwrap_or(0)
                )
                .as_bytes()
            )
        );
        BusEvent {
            version: zero(),
            id,
            detail_type: detail_type.to_owned(),
            source: source.to_owned(),
            account: "000000000000".to_owned(),
            time,
            region: "local".to_owned(),
            resources: Vec::new(),
            detail,
        }
    }

    /// The event as the JSON a Lambda function receives.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Detail of S3's `Object Created` event (AWS field names; emulator variants tolerated).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectCreated {
    /// The bucket.
    pub bucket: BucketRef,
    /// The object.
    pub object: ObjectRef,
    /// Why it was created (`PutObject`, `CompleteMultipartUpload`, ...).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A bucket in an S3 event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BucketRef {
    /// Bucket name.
    pub name: String,
}

/// An object in an S3 event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectRef {
    /// URL-encoded key.
    pub key: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Entity tag (moto writes `eTag`).
    #[serde(default, alias = "eTag")]
    pub etag: Option<String>,
    /// Version id when the bucket is versioned.
    #[serde(default, rename = "version-id", alias = "versionId")]
    pub version_id: Option<String>,
    /// Orders events of one key.
    #[serde(default)]
    pub sequencer: Option<String>,
}

impl ObjectCreated {
    /// The event for a new object.
    pub fn event(bucket: &str, key: &str, size: u64, etag: Option<String>) -> BusEvent {
        let detail = ObjectCreated {
            bucket: BucketRef {
                name: bucket.to_owned(),
            },
            object: ObjectRef {
                key: encode_key(key),
                size: Some(size),
                etag,
                version_id: None,
                sequencer: Some(crate::delivery::next_sequencer()),
            },
            reason: Some("PutObject".to_owned()),
        };
        let mut e = BusEvent::new(
            S3_SOURCE,
            OBJECT_CREATED,
            serde_json::to_value(detail).unwrap_or_default(),
        );
        e.resources = vec![format!("arn:aws:s3:::{bucket}")];
        e
    }

    /// The version of the object this event is about: version id, else etag, else size. S3's
    /// `null` version id (an unversioned bucket, where every overwrite is version `null`) does
    /// not tell versions apart: the etag does.
    pub fn version(&self) -> String {
        self.object
            .version_id
            .clone()
            .filter(|v| v != "null")
            .or_else(|| {
                self.object
                    .etag
                    .clone()
                    .map(|e| e.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| format!("size-{}", self.object.size.unwrap_or(0)))
    }
}

/// A record of a classic S3 event notification (`{"Records": [...]}`), as S3 sends it to SQS,
/// SNS or Lambda. Only the fields Tessera uses are read, so emulators' variants (moto omits
/// `userIdentity` and friends) parse too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct S3Record {
    /// `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`, `ObjectRemoved:Delete`, ...
    #[serde(rename = "eventName")]
    pub event_name: String,
    /// Bucket and object.
    pub s3: S3Entity,
}

/// The `s3` part of a notification record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct S3Entity {
    /// The bucket.
    pub bucket: BucketRef,
    /// The object (`eTag`, `versionId` spellings).
    pub object: ObjectRef,
}

/// Encodes a key the way S3 writes it into events (space as `+`).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'=' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Check counts carried by product events.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckCounts {
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
}

/// Detail of `DataProductPublished`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProductPublished {
    /// Owning domain.
    pub domain: String,
    /// Product name.
    pub product: String,
    /// Stage that published it (`contract-check` or `aggregate`).
    pub stage: String,
    /// Contract id.
    pub contract_id: String,
    /// Contract version.
    pub contract_version: String,
    /// The domain bucket.
    pub bucket: String,
    /// Key prefix of the product's data (`products/<product>/`).
    pub location: String,
    /// The committed product version.
    pub version: String,
    /// Key of the commit record.
    pub commit_key: String,
    /// Rows in this version.
    pub rows: u64,
    /// Partition values written (`col=value/...` paths relative to the location).
    pub partitions: Vec<String>,
    /// Check counts.
    pub checks: CheckCounts,
    /// Run that published it.
    pub run_id: String,
    /// When the version was decided (orders publications and violations of one product).
    #[serde(default = "Utc::now")]
    pub at: DateTime<Utc>,
}

/// Detail of `ContractViolated`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContractViolated {
    /// Owning domain.
    pub domain: String,
    /// Product name.
    pub product: String,
    /// Contract id.
    pub contract_id: String,
    /// Contract version.
    pub contract_version: String,
    /// The domain bucket.
    pub bucket: String,
    /// The input that failed.
    pub input_key: String,
    /// Where the refused rows were put.
    pub quarantine_key: String,
    /// Where the full check report is.
    pub report_key: String,
    /// Rows checked.
    pub rows: u64,
    /// Names of the failed checks with what was observed.
    pub failed_checks: Vec<String>,
    /// Check counts.
    pub checks: CheckCounts,
    /// Run that refused it.
    pub run_id: String,
    /// When the version was refused.
    #[serde(default = "Utc::now")]
    pub at: DateTime<Utc>,
}

impl ProductPublished {
    /// As a bus event.
    pub fn event(&self) -> BusEvent {
        BusEvent::new(
            TESSERA_SOURCE,
            PRODUCT_PUBLISHED,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }
}

impl ContractViolated {
    /// As a bus event.
    pub fn event(&self) -> BusEvent {
        BusEvent::new(
            TESSERA_SOURCE,
            CONTRACT_VIOLATED,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }
}

/// An input a stage refused after using up its attempts: each failed (or never finished), so
/// the input is kept where it is, with a report of why, and not tried again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputFailed {
    /// Owning domain.
    pub domain: String,
    /// Product.
    pub product: String,
    /// The stage that gave up.
    pub stage: String,
    /// Bucket of the input.
    pub bucket: String,
    /// Key of the input.
    pub key: String,
    /// Version of the input.
    pub version: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, or that the function never finished.
    pub reason: String,
    /// The quarantine report.
    pub report_key: String,
    /// When the stage gave up.
    pub at: DateTime<Utc>,
}

impl InputFailed {
    /// As a bus event.
    pub fn event(&self) -> BusEvent {
        BusEvent::new(
            TESSERA_SOURCE,
            INPUT_FAILED,
            serde_json::to_value(self).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_event_encoding() {
        let key = "raw/orders/May 2024 (v2)+.csv";
        let encoded = encode_key(key);
        assert_eq!(encoded, "raw/orders/May+2024+%28v2%29%2B.csv");
        assert_eq!(crate::keys::decode_event_key(&encoded).unwrap(), key);
    }

    #[test]
    fn the_null_version_of_an_unversioned_bucket_falls_back_to_the_etag() {
        let d: ObjectCreated = serde_json::from_value(serde_json::json!({
            "bucket": {"name": "b"},
            "object": {"key": "raw/x/y.csv", "etag": "abc", "version-id": "null", "size": 3}
        }))
        .unwrap();
        assert_eq!(d.version(), "abc");
        let d: ObjectCreated = serde_json::from_value(serde_json::json!({
            "bucket": {"name": "b"},
            "object": {"key": "raw/x/y.csv", "etag": "abc", "version-id": "v2", "size": 3}
        }))
        .unwrap();
        assert_eq!(d.version(), "v2");
    }

    #[test]
    fn moto_spelling_of_etag_is_accepted() {
        let d: ObjectCreated = serde_json::from_value(serde_json::json!({
            "bucket": {"name": "b"}, "object": {"key": "raw/x/y.csv", "eTag": "\"abc\"", "size": 3}
        }))
        .unwrap();
        assert_eq!(d.version(), "abc");
    }
}
