//! What contract-check and aggregate share: a checked product version is either refused
//! (quarantine, report, `ContractViolated`) or written and committed (`DataProductPublished`).

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use chrono::Utc;
use serde_json::json;
use tessera_contract::CheckReport;

use crate::context::Context;
use crate::error::Result;
use crate::events::{ContractViolated, ProductPublished};
use crate::keys::Zone;
use crate::mesh::Product;
use crate::publish::{self, Commit, CommitMode, PartitionedWriter, Pending};
use crate::runs::{RunRecord, RunStatus};

/// A product version being decided.
#[derive(Debug)]
pub struct Version<'a> {
    /// The ports.
    pub ctx: &'a Context,
    /// Owning domain.
    pub domain: &'a str,
    /// The product.
    pub product: &'a Product,
    /// The domain bucket.
    pub bucket: &'a str,
    /// Version id (derived from the input).
    pub id: &'a str,
    /// The input the version comes from.
    pub input_key: &'a str,
    /// The stage deciding (`contract-check` or `aggregate`).
    pub stage: &'static str,
    /// The raw object and the sequencer of its version, for a source product's version: a newer
    /// version of that key supersedes this one.
    pub source: Option<(String, Option<String>)>,
    /// This delivery's id ([`crate::delivery::next_sequencer`]): its pending files are in a
    /// folder of their own, which it removes if it fails ([`Version::abandon`]).
    pub delivery: String,
}

impl Version<'_> {
    /// A writer of this version's files, partitioned as the contract says.
    pub fn writer(&self, schema: SchemaRef) -> Result<PartitionedWriter> {
        let partition_columns: Vec<String> = self
            .product
            .schema()
            .partition_columns()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let folders = partition_columns
            .iter()
            .map(|c| self.product.partition_folder(c).to_owned())
            .collect();
        Ok(PartitionedWriter::new(
            &self.ctx.storage,
            self.bucket,
            &self.product.name,
            self.id,
            schema,
            &partition_columns,
        )?
        .with_folders(folders)
        .with_delivery(&self.delivery))
    }

    /// Removes this delivery's pending files after it failed (best effort: a delivery killed
    /// before it could is cleaned up by the next one after [`crate::delivery::ATTEMPT_TIMEOUT`]).
    pub async fn abandon(&self) {
        if let Err(e) = publish::clear_pending(
            &self.ctx.storage,
            self.bucket,
            &self.product.name,
            self.id,
            Some(&self.delivery),
        )
        .await
        {
            tracing::warn!(product = %self.product.name, version = %self.id, error = %e, "pending files of a failed delivery not removed");
        }
    }

    /// Stores a check report as JSON.
    pub async fn write_report(&self, key: &str, report: &CheckReport) -> Result<()> {
        let body = json!({
            "product": self.product.name,
            "domain": self.domain,
            "contract_id": self.product.contract.id,
            "contract_version": self.product.contract.version,
            "version": self.id,
            "input": self.input_key,
            "passed": report.passed(),
            "report": report,
        });
        self.ctx
            .storage
            .put(
                self.bucket,
                key,
                Bytes::from(serde_json::to_vec_pretty(&body)?),
            )
            .await?;
        Ok(())
    }

    /// The quarantine folder of a refused version named `name`.
    pub fn quarantine_folder(&self, name: &str) -> String {
        format!(
            "{}{}/{}/{name}/",
            Zone::Quarantine.prefix(),
            self.product.name,
            self.stage
        )
    }

    /// Refuses the version: its report goes to [`Version::quarantine_folder`], beside its data
    /// when it has some (`data`: the files [`Pending::quarantine`] moved to `data/` there,
    /// masked as they would have been published, for the consumers the violation is sent to);
    /// `ContractViolated` is sent, naming the data folder (else the report).
    pub async fn refuse(
        &self,
        name: &str,
        report: &CheckReport,
        data: &[String],
        record: &mut RunRecord,
    ) -> Result<()> {
        let base = self.quarantine_folder(name);
        let report_key = format!("{base}report.json");
        self.write_report(&report_key, report).await?;
        record.outputs.extend(data.iter().cloned());
        let quarantine_key = if data.is_empty() {
            report_key.clone()
        } else {
            format!("{base}data/")
        };
        record.outputs.push(report_key.clone());
        let failed_checks: Vec<String> = report
            .failed()
            .map(|c| {
                let observed = c.observed.map_or("-".into(), |v| v.to_string());
                format!(
                    "{}: observed {observed} (expected {})",
                    c.name, c.expectation
                )
            })
            .collect();
        let violation = ContractViolated {
            domain: self.domain.into(),
            product: self.product.name.clone(),
            contract_id: self.product.contract.id.clone(),
            contract_version: self.product.contract.version.clone(),
            bucket: self.bucket.into(),
            input_key: self.input_key.into(),
            quarantine_key,
            report_key,
            rows: record.rows_in,
            failed_checks: failed_checks.clone(),
            checks: record.checks,
            run_id: self.id.into(),
            at: Utc::now(),
        };
        self.ctx.bus.publish(vec![violation.event()]).await?;
        record.status = RunStatus::Quarantined;
        record.notes = failed_checks;
        Ok(())
    }

    /// Moves the version's complete files into their partitions, commits them (at most once per
    /// version) and sends `DataProductPublished`.
    pub async fn commit(
        &self,
        pending: Pending,
        mode: CommitMode,
        record: &mut RunRecord,
    ) -> Result<()> {
        let (source_key, sequencer) = self.source.clone().unzip();
        let sequencer = sequencer.flatten();
        // A source product's log, read once: a stale version is not published, and the versions
        // a new one supersedes are removed after its commit.
        let mut log = match &source_key {
            Some(_) => {
                Some(publish::commits(&self.ctx.storage, self.bucket, &self.product.name).await?)
            }
            None => None,
        };
        if let (Some(key), Some(log)) = (&source_key, &log)
            && let Some(newer) = publish::superseded_by(log, key, sequencer.as_deref())
        {
            pending.discard().await?;
            record.status = RunStatus::Skipped;
            record.notes.push(format!(
                "stale: version `{}` of `{key}` (sequencer {}) is published already",
                newer.version,
                newer.sequencer.as_deref().unwrap_or("-")
            ));
            return Ok(());
        }
        let (partitions, files) = pending.publish().await?;
        let commit = Commit {
            version: self.id.into(),
            mode,
            files,
            partitions,
            rows: record.rows_in,
            contract_id: self.product.contract.id.clone(),
            contract_version: self.product.contract.version.clone(),
            source: self.input_key.into(),
            source_key,
            sequencer,
            committed_at: Utc::now(),
            checks: record.checks,
        };
        match publish::commit(&self.ctx.storage, self.bucket, &self.product.name, &commit).await? {
            Some(commit_key) => {
                self.announce(&commit_key, &commit).await?;
                record.status = RunStatus::Published;
                record.rows_out = commit.rows;
                record.outputs.extend(commit.files.iter().cloned());
                record.outputs.push(commit_key.clone());
                if let Some(log) = &mut log {
                    // Commits that raced in between did their own removals.
                    log.push((commit_key, commit));
                    self.remove_superseded(log, record).await?;
                }
            }
            None => {
                // The same version, committed by a delivery of this input running beside this
                // one: its run record and this one say the same.
                record.status = RunStatus::Published;
                record.rows_out = commit.rows;
                record.outputs.extend(commit.files.iter().cloned());
                record.notes.push(format!(
                    "version `{}` was committed by another delivery",
                    self.id
                ));
            }
        }
        // What deliveries killed half-way left in the version's pending folder.
        publish::clear_pending(
            &self.ctx.storage,
            self.bucket,
            &self.product.name,
            self.id,
            None,
        )
        .await?;
        Ok(())
    }

    /// Deletes the files of the versions of `log` (this product's commit log) that newer
    /// versions of their raw keys superseded ([`publish::remove_superseded`]), noting how many.
    pub async fn remove_superseded(
        &self,
        log: &[(String, Commit)],
        record: &mut RunRecord,
    ) -> Result<()> {
        let removed = publish::remove_superseded(&self.ctx.storage, self.bucket, log).await?;
        if removed > 0 {
            record
                .notes
                .push(format!("{removed} file(s) of superseded versions removed"));
        }
        Ok(())
    }

    /// Sends `DataProductPublished` for a commit (again, when a retried event finds it done).
    pub async fn announce(&self, commit_key: &str, commit: &Commit) -> Result<()> {
        let detail = ProductPublished {
            domain: self.domain.into(),
            product: self.product.name.clone(),
            stage: self.stage.into(),
            contract_id: self.product.contract.id.clone(),
            contract_version: self.product.contract.version.clone(),
            bucket: self.bucket.into(),
            location: publish::product_prefix(&self.product.name),
            version: self.id.into(),
            commit_key: commit_key.into(),
            rows: commit.rows,
            partitions: commit.partitions.clone(),
            checks: commit.checks,
            run_id: self.id.into(),
            at: commit.committed_at,
        };
        self.ctx.bus.publish(vec![detail.event()]).await
    }
}
