//! The organisation's policy where products are decided and registered.
//!
//! * contract-check: a [`PiiScan`] runs the policy's detectors over the data about to be
//!   published (already masked, as it would be written). A text column whose values look like
//!   personal data, and that is neither classified as personal data nor masked, fails the version
//!   with a `pii.unclassified` check in the report: the version is refused like any contract
//!   violation (quarantine, report, `ContractViolated`). Masks that the policy's classifications
//!   require are applied with the recipe's (see [`crate::policy`]).
//! * catalog-register: [`refuse_registration`] keeps a product that breaks the policy out of the
//!   catalog, and records the refusal with every violation.

use arrow::array::{AsArray, RecordBatch};
use bytes::Bytes;
use serde_json::json;
use tessera_contract::policy::{Detector, Policy, Rule, ValueScan};
use tessera_contract::{CheckReport, CheckResult, CheckStatus};

use crate::context::Context;
use crate::error::Result;
use crate::keys::{Zone, input_id, stem};
use crate::mesh::Product;
use crate::runs::{self, InputRef, RunRecord, RunStatus};

/// The policy's detectors over the text columns a version would publish readable.
#[derive(Debug)]
pub struct PiiScan<'a> {
    policy: Option<&'a Policy>,
    detectors: Vec<Detector>,
    columns: Vec<(String, ValueScan)>,
}

impl<'a> PiiScan<'a> {
    /// The scan of a product: every text column that is not masked and not classified as
    /// personal data. Without a policy (or detectors), nothing is scanned.
    pub fn new(ctx: &'a Context, product: &Product) -> PiiScan<'a> {
        let policy = ctx.mesh.policy.as_ref();
        let detectors = policy.map(Policy::detectors).unwrap_or_default();
        let columns = match policy {
            Some(policy) if !detectors.is_empty() => product
                .schema()
                .properties
                .iter()
                .filter(|p| {
                    p.data_type()
                        .is_ok_and(|t| t == arrow::datatypes::DataType::Utf8)
                        && !product.mask.contains_key(&p.name)
                        && !policy.is_personal(p.classification.as_deref())
                })
                .map(|p| (p.name.clone(), ValueScan::default()))
                .collect(),
            _ => Vec::new(),
        };
        PiiScan {
            policy,
            detectors,
            columns,
        }
    }

    /// Looks at the values of one (masked) batch, up to the policy's `pii.sample_values` per
    /// column.
    pub fn update(&mut self, batch: &RecordBatch) {
        let Some(policy) = self.policy else {
            return;
        };
        let limit = policy.pii.sample_values;
        for (name, scan) in &mut self.columns {
            if scan.values() >= limit {
                continue;
            }
            let Some(strings) = batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                continue;
            };
            for value in strings.iter().flatten() {
                if scan.values() >= limit {
                    break;
                }
                scan.add(value);
            }
        }
    }

    /// Adds a failed `pii.unclassified` check to the report for every column whose values look
    /// like personal data; columns that pass add nothing.
    pub fn finish(self, report: &mut CheckReport) {
        let Some(policy) = self.policy else {
            return;
        };
        let threshold = policy.pii.threshold;
        for (column, scan) in self.columns {
            let Some(found) = scan.finding(&self.detectors, threshold) else {
                continue;
            };
            let proposed = policy.proposal(found.detector).unwrap_or("pii");
            let rule = Rule::PiiUnclassified;
            report.checks.push(CheckResult {
                name: format!("{column}.policy.{rule}"),
                rule: format!("policy.{rule}"),
                property: Some(column.clone()),
                observed: Some(found.share() * 100.0),
                expectation: format!("< {}", threshold * 100.0),
                unit: "percent".into(),
                severity: "error".into(),
                status: CheckStatus::Failed,
                detail: Some(format!(
                    "organisation policy, rule `{rule}`: {} of {} values of `{column}` look like {} and would be published unmasked: classify the column `{proposed}` in the contract, or mask it in the recipe",
                    found.matches,
                    found.values,
                    found.detector.describe()
                )),
            });
        }
    }
}

/// catalog-register's gate: when the product an event names breaks the policy, no catalog table
/// is written; a report with every violation goes to
/// `quarantine/<product>/catalog-register/<name>-<id>.policy.json` and the run is recorded as
/// quarantined. `None` when the product complies (or the mesh has no policy).
pub async fn refuse_registration(
    ctx: &Context,
    (domain, product, bucket): (&str, &str, &str),
    input: InputRef,
) -> Result<Option<RunRecord>> {
    let (domain, product) = super::product_of(ctx, domain, product, bucket)?;
    if product.violations.is_empty() {
        return Ok(None);
    }
    let id = input_id(&input.bucket, &input.key, "catalog");
    let file = input.key.rsplit('/').next().unwrap_or(&input.key);
    let report_key = format!(
        "{}{}/catalog-register/{}-{id}.policy.json",
        Zone::Quarantine.prefix(),
        product.name,
        stem(file)
    );
    let reason = format!(
        "`{}.{}` breaks the organisation policy ({} violations): its table is not registered",
        domain.name,
        product.name,
        product.violations.len()
    );
    let report = json!({
        "stage": "catalog-register",
        "input": input.key,
        "version": input.version,
        "reason": reason,
        "policy": ctx.mesh.policy_path,
        "violations": product.violations,
    });
    ctx.storage
        .put(
            &input.bucket,
            &report_key,
            Bytes::from(serde_json::to_vec_pretty(&report)?),
        )
        .await?;
    tracing::warn!(product = %product.name, violations = product.violations.len(), "registration refused by the policy");
    let bucket = input.bucket.clone();
    let (mut record, started) =
        RunRecord::start(&id, "catalog-register", &domain.name, &product.name, input);
    record.status = RunStatus::Quarantined;
    record.outputs.push(report_key);
    record.notes.push(reason);
    record
        .notes
        .extend(product.violations.iter().map(|v| v.located()));
    runs::save(&ctx.storage, &bucket, record, started)
        .await
        .map(Some)
}
