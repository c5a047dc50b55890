//! Run records: what each stage did with each input.
//!
//! Every stage invocation writes one record under `runs/<product>/<stage>/<run id>.json`. The
//! run id derives from the input object and its version, so a retried event overwrites its own
//! record instead of adding a second one. History, lineage, freshness and quality trends are
//! read back from these records.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::CheckCounts;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Output written (possibly with some rows quarantined).
    Succeeded,
    /// Published a product version.
    Published,
    /// The whole input was refused and kept in quarantine with the reason.
    Quarantined,
    /// Nothing to do (already done, or nothing consumes this input).
    Skipped,
}

/// An object a run read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRef {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id or etag.
    pub version: String,
}

/// What one stage did with one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Stable id of the run (derived from the input).
    pub run_id: String,
    /// Stage (function) name.
    pub stage: String,
    /// Domain.
    pub domain: String,
    /// Product.
    pub product: String,
    /// Input object.
    pub input: InputRef,
    /// Objects written.
    pub outputs: Vec<String>,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written to the next zone or product.
    pub rows_out: u64,
    /// Rows moved to quarantine.
    pub quarantined: u64,
    /// Rows kept but flagged (outliers under `flag`).
    pub flagged: u64,
    /// Rows dropped as duplicates or superseded versions.
    pub dropped: u64,
    /// Contract checks.
    pub checks: CheckCounts,
    /// Outcome.
    pub status: RunStatus,
    /// Why, for anything but plain success (reasons, drift, skipped because ...).
    pub notes: Vec<String>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Schema drift an ingest found between the file and the contract (empty otherwise).
    #[serde(default, skip_serializing_if = "Drift::is_empty")]
    pub drift: Drift,
}

/// Columns (or JSON keys) where an input file and the product's contract disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// In the file, not declared by the contract (dropped, or kept in the extras column).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// Declared by the contract, absent from the file (read as null).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

impl Drift {
    /// Whether the file and the contract agree.
    pub fn is_empty(&self) -> bool {
        self.unknown.is_empty() && self.missing.is_empty()
    }
}

impl RunRecord {
    /// A record for a run starting now.
    pub fn start(
        run_id: &str,
        stage: &str,
        domain: &str,
        product: &str,
        input: InputRef,
    ) -> (RunRecord, Instant) {
        (
            RunRecord {
                run_id: run_id.into(),
                stage: stage.into(),
                domain: domain.into(),
                product: product.into(),
                input,
                outputs: Vec::new(),
                rows_in: 0,
                rows_out: 0,
                quarantined: 0,
                flagged: 0,
                dropped: 0,
                checks: CheckCounts::default(),
                status: RunStatus::Succeeded,
                notes: Vec::new(),
                started_at: Utc::now(),
                duration_ms: 0,
                drift: Drift::default(),
            },
            Instant::now(),
        )
    }
}

/// Stores a run record under its deterministic key (a retry overwrites its own record).
pub async fn save(
    storage: &crate::storage::Storage,
    bucket: &str,
    mut record: RunRecord,
    started: Instant,
) -> crate::error::Result<RunRecord> {
    record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let key = crate::keys::run_key(&record.product, &record.stage, &record.run_id);
    storage
        .put(
            bucket,
            &key,
            bytes::Bytes::from(serde_json::to_vec_pretty(&record)?),
        )
        .await?;
    Ok(record)
}

/// Every run record of a product and stage, oldest first.
pub async fn history(
    storage: &crate::storage::Storage,
    bucket: &str,
    product: &str,
    stage: &str,
) -> crate::error::Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for meta in storage
        .list(
            bucket,
            &format!("{}{product}/{stage}/", crate::keys::Zone::Runs.prefix()),
        )
        .await?
    {
        let bytes = storage.get(bucket, meta.location.as_ref()).await?;
        out.push(serde_json::from_slice::<RunRecord>(&bytes)?);
    }
    out.sort_by_key(|r| r.started_at);
    Ok(out)
}
