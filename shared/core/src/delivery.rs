//! At-least-once delivery made exactly-once in effect.
//!
//! S3 and EventBridge deliver every event at least once, in no particular order, and Lambda
//! retries a failed invocation. What this module keeps, all under `runs/<product>/`:
//!
//! * **Sequencers.** S3 orders the events of one key by their `sequencer` (hex, compared after
//!   right-padding the shorter with zeros). Ingest leaves a marker per version of a raw key
//!   (`_sources/<key hash>/<sequencer>.json`); an event whose sequencer is older than a marker's
//!   is stale (a newer version of the key was already taken) and is dropped. A product keeps, for
//!   each raw key, only the version with the newest sequencer ([`crate::publish::live_files`]),
//!   so the end state does not depend on the order events arrived in.
//! * **Attempts.** Before a stage works on an input it counts the attempt
//!   (`_attempts/<stage>/<run id>.json`, with the last error); success removes the count. An
//!   input that has used up its attempts (`mesh.max_attempts`, 3 by default: Lambda's first try
//!   and its two retries) is poison: it is refused with its last error (a quarantine report and
//!   an `InputFailed` event) instead of being tried again. The count is written before the work,
//!   so an attempt that killed its process (a timeout, an out-of-memory) counts too.
//!
//! Embedded runs have no S3 to number events: [`next_sequencer`] numbers them from the clock,
//! strictly increasing within a process.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::keys::Zone;
use crate::storage::Storage;

/// Attempts an input gets when the mesh does not say (Lambda's asynchronous invocation: the
/// first try and two retries).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A sequencer for an event of the embedded store: nanoseconds since the epoch, 20 hex digits,
/// never equal to or below one this process issued before.
pub fn next_sequencer() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST.load(AtomicOrdering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(
            last,
            next,
            AtomicOrdering::Relaxed,
            AtomicOrdering::Relaxed,
        ) {
            Ok(_) => return format!("{next:020X}"),
            Err(seen) => last = seen,
        }
    }
}

/// Orders two sequencers of one key as S3 says: the shorter right-padded with zeros, then
/// compared as text (case-insensitively: both are hex).
pub fn compare_sequencers(a: &str, b: &str) -> Ordering {
    let width = a.len().max(b.len());
    let pad = |s: &str| {
        let mut s = s.to_ascii_uppercase();
        s.extend(std::iter::repeat_n('0', width - s.len()));
        s
    };
    pad(a).cmp(&pad(b))
}

/// A short stable name for a raw key, for the per-key folders.
fn key_hash(key: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

fn sources_prefix(product: &str, key: &str) -> String {
    format!(
        "{}{product}/_sources/{}/",
        Zone::Runs.prefix(),
        key_hash(key)
    )
}

/// One version of a raw key that ingest took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceVersion {
    /// The raw key.
    pub key: String,
    /// Its version (version id or etag).
    pub version: String,
    /// Its sequencer.
    pub sequencer: String,
}

/// Whether an event about a raw key is the newest seen for that key.
#[derive(Debug, Clone, PartialEq)]
pub enum Freshness {
    /// Not older than any version taken before: go on.
    Fresh,
    /// A newer version of the key was taken already.
    Stale(SourceVersion),
}

/// Compares a version of a raw key with the versions ingest took before, and records it when
/// it is not stale. Racing deliveries of two versions can both be fresh here: the product still
/// keeps only the newest ([`crate::publish::live_files`]); this check only saves work.
pub async fn observe_source(
    storage: &Storage,
    bucket: &str,
    product: &str,
    source: &SourceVersion,
) -> Result<Freshness> {
    let prefix = sources_prefix(product, &source.key);
    let mut newest: Option<String> = None;
    for meta in storage.list(bucket, &prefix).await? {
        let name = meta.location.filename().unwrap_or_default();
        let Some(seq) = name.strip_suffix(".json") else {
            continue;
        };
        if newest
            .as_deref()
            .is_none_or(|n| compare_sequencers(seq, n) == Ordering::Greater)
        {
            newest = Some(seq.to_owned());
        }
    }
    if let Some(newest) = newest
        && compare_sequencers(&newest, &source.sequencer) == Ordering::Greater
    {
        let key = format!("{prefix}{newest}.json");
        let taken: SourceVersion = serde_json::from_slice(&storage.get(bucket, &key).await?)?;
        return Ok(Freshness::Stale(taken));
    }
    let marker = format!("{prefix}{}.json", source.sequencer.to_ascii_uppercase());
    storage
        .put(bucket, &marker, Bytes::from(serde_json::to_vec(source)?))
        .await?;
    Ok(Freshness::Fresh)
}

/// A sequencer as a key segment accepts it (hex only), or `None`.
pub fn valid_sequencer(seq: &str) -> Option<&str> {
    (!seq.is_empty() && seq.len() <= 64 && seq.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(seq)
}

/// How long an attempt may run before one that never reported back counts as crashed:
/// Lambda's longest timeout. A delivery arriving sooner may be a duplicate running beside it.
pub const ATTEMPT_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// The attempts made at one input by one stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempts {
    /// Attempts started, this one included.
    pub attempts: u32,
    /// Why the last attempt failed, when it failed with an error (not a crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last attempt started.
    #[serde(default)]
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl Attempts {
    /// Whether the input has used up `max` attempts, each of them over: failed with an error,
    /// or started longer than [`ATTEMPT_TIMEOUT`] ago without a word (a crash). Deliveries of an
    /// input that is still being worked on are duplicates, not failures.
    pub fn used_up(&self, max: u32, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.attempts >= max
            && (self.last_error.is_some() || now - self.started_at > ATTEMPT_TIMEOUT)
    }
}

/// Key of the attempt count of a stage's input.
pub fn attempts_key(product: &str, stage: &str, run_id: &str) -> String {
    format!(
        "{}{product}/_attempts/{stage}/{run_id}.json",
        Zone::Runs.prefix()
    )
}

/// The attempts made so far (none when there is no count).
pub async fn attempts(storage: &Storage, bucket: &str, key: &str) -> Result<Attempts> {
    Ok(match storage.get_opt(bucket, key).await? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => Attempts::default(),
    })
}

/// Stores an attempt count.
pub async fn record_attempts(
    storage: &Storage,
    bucket: &str,
    key: &str,
    attempts: &Attempts,
) -> Result<()> {
    storage
        .put(bucket, key, Bytes::from(serde_json::to_vec(attempts)?))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequencers_compare_after_padding() {
        assert_eq!(compare_sequencers("0A", "0A00"), Ordering::Equal);
        assert_eq!(compare_sequencers("0B", "0A99"), Ordering::Greater);
        assert_eq!(compare_sequencers("0a1", "0A0F"), Ordering::Greater);
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
    }

    #[test]
    fn embedded_sequencers_increase() {
        let mut last = next_sequencer();
        for _ in 0..1000 {
            let next = next_sequencer();
            assert_eq!(compare_sequencers(&next, &last), Ordering::Greater);
            last = next;
        }
    }

    #[test]
    fn attempts_are_used_up_only_when_over() {
        let now = chrono::Utc::now();
        let mut a = Attempts {
            attempts: 3,
            last_error: None,
            started_at: now,
        };
        assert!(!a.used_up(3, now), "the last attempt may still be running");
        assert!(a.used_up(3, now + ATTEMPT_TIMEOUT + chrono::TimeDelta::seconds(1)));
        a.last_error = Some("S3 timed out".into());
        assert!(a.used_up(3, now));
        assert!(!a.used_up(4, now));
    }

    #[test]
    fn only_hex_sequencers_name_markers() {
        assert_eq!(valid_sequencer("00AF"), Some("00AF"));
        for bad in ["", "../x", "0G", &"A".repeat(65)] {
            assert_eq!(valid_sequencer(bad), None, "{bad}");
        }
    }
}
