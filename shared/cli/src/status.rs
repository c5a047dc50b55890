//! `tessera status`: per product, the last run, the last publication, freshness against the
//! contract's service levels, quality, and the failures of recent runs, read from the run
//! records, the commit logs and the catalog (so the same on a warehouse and on AWS).

use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tessera_core::Context;
use tessera_core::mesh::ProductKind;
use tessera_core::publish::commits;
use tessera_core::runs::{RunRecord, RunStatus, history};
use tessera_core::sla::{SlaStatus, evaluate};

/// How far back failures count as recent.
pub const RECENT: TimeDelta = TimeDelta::days(7);

/// The status of one product.
#[derive(Debug, Clone, Serialize)]
pub struct ProductStatus {
    /// `<domain>.<product>`.
    pub product: String,
    /// The most recent run of any of its stages.
    pub last_run: Option<LastRun>,
    /// Its last committed version.
    pub last_publish: Option<Publication>,
    /// Freshness against the contract (`freshness`, `frequency`, `latency`): `met`, `breached`,
    /// `not_evaluated`, or `no_sla` when the contract promises none of them.
    pub freshness: String,
    /// What the service levels about freshness observed, or why they were not evaluated.
    pub freshness_detail: Vec<String>,
    /// The catalog's quality status (`passed`, `failed`), when registered.
    pub quality: Option<String>,
    /// Runs of the last [`RECENT`] that refused their input, newest first: (stage, time, why).
    pub recent_failures: Vec<(String, DateTime<Utc>, String)>,
}

/// A committed version.
#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    /// When it was committed.
    pub at: DateTime<Utc>,
    /// Its version id.
    pub version: String,
}

/// The last run of a product.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// Stage.
    pub stage: String,
    /// Outcome.
    pub status: RunStatus,
    /// When it started.
    pub at: DateTime<Utc>,
}

/// The status of every product the context serves, at `now`.
pub async fn status(ctx: &Context, now: DateTime<Utc>) -> Result<Vec<ProductStatus>> {
    let mut out = Vec::new();
    for (domain, product) in ctx.mesh.products() {
        if !ctx.serves(domain) {
            continue;
        }
        let stages: &[&str] = match product.kind {
            ProductKind::Source { .. } => {
                &["ingest", "clean", "contract-check", "catalog-register"]
            }
            ProductKind::Aggregate { .. } => &["aggregate", "catalog-register"],
        };
        let mut runs: Vec<RunRecord> = Vec::new();
        for stage in stages {
            runs.extend(history(&ctx.storage, &domain.bucket, &product.name, stage).await?);
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        let last_run = runs
            .iter()
            .find(|r| r.status != RunStatus::Skipped)
            .map(|r| LastRun {
                stage: r.stage.clone(),
                status: r.status,
                at: r.started_at,
            });
        let log = commits(&ctx.storage, &domain.bucket, &product.name).await?;
        let last_publish = log
            .iter()
            .max_by_key(|(_, c)| c.committed_at)
            .map(|(_, c)| Publication {
                at: c.committed_at,
                version: c.version.clone(),
            });
        let report = evaluate(ctx, domain, product, now).await?;
        let about_freshness: Vec<_> = report
            .checks
            .iter()
            .filter(|c| matches!(c.property.as_str(), "freshness" | "frequency" | "latency"))
            .collect();
        let freshness = if about_freshness.is_empty() {
            "no_sla".to_owned()
        } else if about_freshness
            .iter()
            .any(|c| c.status == SlaStatus::Breached)
        {
            "breached".to_owned()
        } else if about_freshness.iter().all(|c| c.status == SlaStatus::Met) {
            "met".to_owned()
        } else {
            "not_evaluated".to_owned()
        };
        let freshness_detail = about_freshness
            .iter()
            .map(|c| {
                let seen = c
                    .observed
                    .clone()
                    .or_else(|| c.detail.clone())
                    .unwrap_or_else(|| "-".into());
                format!("{} {}: {seen}", c.property, c.expectation)
            })
            .collect();
        let quality = ctx
            .catalog
            .get_table(&domain.database, &product.name)
            .await?
            .and_then(|t| t.parameters.get("quality_status").cloned());
        let recent_failures = runs
            .iter()
            .filter(|r| r.status == RunStatus::Quarantined && now - r.started_at <= RECENT)
            .map(|r| {
                (
                    r.stage.clone(),
                    r.started_at,
                    r.notes.first().cloned().unwrap_or_default(),
                )
            })
            .collect();
        out.push(ProductStatus {
            product: format!("{}.{}", domain.name, product.name),
            last_run,
            last_publish,
            freshness,
            freshness_detail,
            quality,
            recent_failures,
        });
    }
    Ok(out)
}
