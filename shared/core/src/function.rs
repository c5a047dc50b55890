//! What every Lambda handler shares: reading its trigger, mapping failures to retry or not.
//!
//! A handler receives one of the events it is wired to: S3's `Object Created` delivered by
//! EventBridge, or Tessera's `DataProductPublished` / `ContractViolated`. Bad data never fails an
//! invocation: it is quarantined and reported in the outcome. Only infrastructure failures (and
//! defects) come back as errors, with a small fixed set of error types Lambda reports.

use serde::Serialize;
use serde_json::Value;

use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::events::{
    BusEvent, CONTRACT_VIOLATED, ContractViolated, OBJECT_CREATED, ObjectCreated,
    PRODUCT_PUBLISHED, ProductPublished,
};
use crate::keys::{Zone, decode_event_key};
use crate::routing::Function;
use crate::runs::RunRecord;
use crate::stages;

/// What an invocation did: one run record per input handled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Run records.
    pub runs: Vec<RunRecord>,
    /// Inputs that were not for this function, with why (ignored, not failed).
    pub ignored: Vec<String>,
}

/// A failed invocation, as Lambda reports it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    /// Who is at fault.
    pub kind: ErrorKind,
    /// What happened, with its causes.
    pub message: String,
}

impl FunctionError {
    /// The Lambda `errorType`: `Retryable`, `NonRetryable` or `Internal`.
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::Retryable => "Retryable",
            ErrorKind::BadData => "NonRetryable",
            ErrorKind::Internal => "Internal",
        }
    }
}

impl From<Error> for FunctionError {
    fn from(e: Error) -> Self {
        FunctionError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Runs `function` on one event.
pub async fn handle(
    ctx: &Context,
    function: Function,
    event: &Value,
) -> Result<Outcome, FunctionError> {
    let bus_event: BusEvent = serde_json::from_value(event.clone()).map_err(|e| FunctionError {
        kind: ErrorKind::BadData,
        message: format!("not an EventBridge event: {e}"),
    })?;
    let mut outcome = Outcome::default();
    match function {
        Function::Ingest | Function::Clean | Function::ContractCheck => {
            if bus_event.detail_type != OBJECT_CREATED {
                outcome.ignored.push(format!(
                    "`{}` is not an object creation",
                    bus_event.detail_type
                ));
                return Ok(outcome);
            }
            let detail: ObjectCreated =
                serde_json::from_value(bus_event.detail).map_err(|e| FunctionError {
                    kind: ErrorKind::BadData,
                    message: format!("malformed `Object Created` detail: {e}"),
                })?;
            let key = decode_event_key(&detail.object.key)?;
            if ctx.mesh.domain_of_bucket(&detail.bucket.name).is_none() {
                // Not ours: nothing is written there, the event is refused.
                return Err(Error::BadEvent(format!(
                    "bucket `{}` belongs to no domain of the mesh",
                    detail.bucket.name
                ))
                .into());
            }
            let version = detail.version();
            let bucket = detail.bucket.name.as_str();
            let (zone, result) = match function {
                Function::Ingest => (
                    Zone::Raw,
                    stages::ingest::run(ctx, bucket, &key, &version).await,
                ),
                Function::Clean => (
                    Zone::Staged,
                    stages::clean::run(ctx, bucket, &key, &version).await,
                ),
                _ => (
                    Zone::Clean,
                    stages::check::run(ctx, bucket, &key, &version).await,
                ),
            };
            match result {
                Ok(run) => outcome.runs.push(run),
                Err(e) if e.kind() == ErrorKind::BadData => {
                    tracing::warn!(stage = function.name(), %bucket, %key, error = %e, "input refused");
                    outcome.runs.push(
                        stages::refuse(ctx, function, zone, bucket, &key, &version, &e.to_string())
                            .await?,
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Function::CatalogRegister if bus_event.detail_type == CONTRACT_VIOLATED => {
            let violated: ContractViolated =
                serde_json::from_value(bus_event.detail).map_err(|e| FunctionError {
                    kind: ErrorKind::BadData,
                    message: format!("malformed `ContractViolated` detail: {e}"),
                })?;
            outcome
                .runs
                .push(stages::register::record_violation(ctx, &violated).await?);
        }
        Function::Aggregate | Function::CatalogRegister => {
            if bus_event.detail_type != PRODUCT_PUBLISHED {
                outcome.ignored.push(format!(
                    "`{}` is not a product publication",
                    bus_event.detail_type
                ));
                return Ok(outcome);
            }
            let published: ProductPublished =
                serde_json::from_value(bus_event.detail).map_err(|e| FunctionError {
                    kind: ErrorKind::BadData,
                    message: format!("malformed `DataProductPublished` detail: {e}"),
                })?;
            let result = if function == Function::Aggregate {
                stages::aggregate::run(ctx, &published).await
            } else {
                stages::register::run(ctx, &published)
                    .await
                    .map(|r| vec![r])
            };
            match result {
                Ok(runs) => outcome.runs.extend(runs),
                Err(e) if e.kind() == ErrorKind::BadData => {
                    tracing::warn!(stage = function.name(), product = %published.product, error = %e, "publication refused");
                    let key = published.commit_key.clone();
                    outcome.runs.push(
                        stages::refuse(
                            ctx,
                            function,
                            Zone::Products,
                            &published.bucket,
                            &key,
                            &published.version,
                            &e.to_string(),
                        )
                        .await?,
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    for run in &outcome.runs {
        tracing::info!(
            stage = %run.stage, product = %run.product, run_id = %run.run_id, status = ?run.status,
            rows_in = run.rows_in, rows_out = run.rows_out, quarantined = run.quarantined, "run finished"
        );
    }
    Ok(outcome)
}
