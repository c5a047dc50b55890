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
use crate::events::S3Record;
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

/// What an invocation was triggered by, whatever envelope it came in.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// An object was created (S3 via EventBridge, or a classic S3 notification record).
    Object(ObjectCreated),
    /// A product version was published.
    Published(ProductPublished),
    /// A product version was refused by its contract.
    Violated(ContractViolated),
    /// Something this pipeline does not act on (another S3 event, another detail type).
    Other(String),
}

fn malformed(what: &str, e: serde_json::Error) -> FunctionError {
    FunctionError {
        kind: ErrorKind::BadData,
        message: format!("malformed {what}: {e}"),
    }
}

/// Reads the triggers of an event: an EventBridge event (S3 `Object Created`, or Tessera's own
/// events), or a classic S3 notification (`{"Records": [...]}`), one trigger per record.
pub fn triggers(event: &Value) -> Result<Vec<Trigger>, FunctionError> {
    if let Some(records) = event.get("Records") {
        let records: Vec<S3Record> = serde_json::from_value(records.clone())
            .map_err(|e| malformed("S3 notification records", e))?;
        return Ok(records
            .into_iter()
            .map(|r| {
                if r.event_name.starts_with("ObjectCreated:") {
                    Trigger::Object(ObjectCreated {
                        bucket: r.s3.bucket,
                        object: r.s3.object,
                        reason: Some(r.event_name),
                    })
                } else {
                    Trigger::Other(format!("S3 `{}`", r.event_name))
                }
            })
            .collect());
    }
    let bus_event: BusEvent = serde_json::from_value(event.clone()).map_err(|e| FunctionError {
        kind: ErrorKind::BadData,
        message: format!("neither an EventBridge event nor an S3 notification: {e}"),
    })?;
    let trigger = match bus_event.detail_type.as_str() {
        OBJECT_CREATED => Trigger::Object(
            serde_json::from_value(bus_event.detail)
                .map_err(|e| malformed("`Object Created` detail", e))?,
        ),
        PRODUCT_PUBLISHED => Trigger::Published(
            serde_json::from_value(bus_event.detail)
                .map_err(|e| malformed("`DataProductPublished` detail", e))?,
        ),
        CONTRACT_VIOLATED => Trigger::Violated(
            serde_json::from_value(bus_event.detail)
                .map_err(|e| malformed("`ContractViolated` detail", e))?,
        ),
        other => Trigger::Other(format!("`{other}`")),
    };
    Ok(vec![trigger])
}

/// Runs `function` on one event.
pub async fn handle(
    ctx: &Context,
    function: Function,
    event: &Value,
) -> Result<Outcome, FunctionError> {
    let mut outcome = Outcome::default();
    // An EventBridge event of a kind this function does not handle is ignored unread.
    if let Some(detail_type) = event.get("detail-type").and_then(Value::as_str)
        && !wants(function, detail_type)
    {
        outcome
            .ignored
            .push(format!("`{detail_type}` is not for `{}`", function.name()));
        return Ok(outcome);
    }
    for trigger in triggers(event)? {
        match (function, trigger) {
            (
                Function::Ingest | Function::Clean | Function::ContractCheck,
                Trigger::Object(object),
            ) => {
                outcome.runs.push(on_object(ctx, function, &object).await?);
            }
            (Function::Aggregate, Trigger::Published(published)) => {
                match stages::aggregate::run(ctx, &published).await {
                    Ok(runs) => outcome.runs.extend(runs),
                    Err(e) => outcome
                        .runs
                        .push(refuse_publication(ctx, function, &published, e).await?),
                }
            }
            (Function::CatalogRegister, Trigger::Published(published)) => {
                match stages::register::run(ctx, &published).await {
                    Ok(run) => outcome.runs.push(run),
                    Err(e) => outcome
                        .runs
                        .push(refuse_publication(ctx, function, &published, e).await?),
                }
            }
            (Function::CatalogRegister, Trigger::Violated(violated)) => {
                outcome
                    .runs
                    .push(stages::register::record_violation(ctx, &violated).await?);
            }
            (_, Trigger::Other(what)) => outcome
                .ignored
                .push(format!("{what} is not for `{}`", function.name())),
            (_, other) => outcome.ignored.push(format!(
                "{} is not for `{}`",
                describe(&other),
                function.name()
            )),
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

/// Whether `function` acts on EventBridge events of `detail_type`.
fn wants(function: Function, detail_type: &str) -> bool {
    match function {
        Function::Ingest | Function::Clean | Function::ContractCheck => {
            detail_type == OBJECT_CREATED
        }
        Function::Aggregate => detail_type == PRODUCT_PUBLISHED,
        Function::CatalogRegister => {
            detail_type == PRODUCT_PUBLISHED || detail_type == CONTRACT_VIOLATED
        }
    }
}

fn describe(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Object(o) => format!("object creation `{}`", o.object.key),
        Trigger::Published(p) => format!("publication of `{}`", p.product),
        Trigger::Violated(v) => format!("violation of `{}`", v.product),
        Trigger::Other(what) => what.clone(),
    }
}

/// ingest, clean or contract-check on one new object; bad data is quarantined, not failed.
async fn on_object(
    ctx: &Context,
    function: Function,
    object: &ObjectCreated,
) -> Result<RunRecord, FunctionError> {
    let bucket = object.bucket.name.as_str();
    if ctx.mesh.domain_of_bucket(bucket).is_none() {
        // Not ours: nothing is written there, the event is refused.
        return Err(Error::BadEvent(format!(
            "bucket `{bucket}` belongs to no domain of the mesh"
        ))
        .into());
    }
    let key = event_key(ctx, bucket, &object.object.key).await?;
    let version = object.version();
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
        Ok(run) => Ok(run),
        Err(e) if e.kind() == ErrorKind::BadData => {
            tracing::warn!(stage = function.name(), %bucket, %key, error = %e, "input refused");
            Ok(stages::refuse(ctx, function, zone, bucket, &key, &version, &e.to_string()).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The object key an S3 event names. AWS URL-encodes keys (`+` for a space); some emulators send
/// them unencoded (moto's EventBridge events), so when the decoded key differs from the raw one
/// and names no object while the raw one does, the raw key is the object's.
async fn event_key(ctx: &Context, bucket: &str, raw: &str) -> crate::Result<String> {
    let key = decode_event_key(raw)?;
    if key == raw || crate::keys::validate_key(raw).is_err() {
        return Ok(key);
    }
    match ctx.storage.head(bucket, &key).await {
        Err(Error::Storage(object_store::Error::NotFound { .. })) => {
            match ctx.storage.head(bucket, raw).await {
                Ok(_) => Ok(raw.to_owned()),
                Err(_) => Ok(key),
            }
        }
        _ => Ok(key),
    }
}

/// A publication a stage cannot act on for bad-data reasons is recorded, not retried.
async fn refuse_publication(
    ctx: &Context,
    function: Function,
    published: &ProductPublished,
    e: Error,
) -> Result<RunRecord, FunctionError> {
    if e.kind() != ErrorKind::BadData {
        return Err(e.into());
    }
    tracing::warn!(stage = function.name(), product = %published.product, error = %e, "publication refused");
    let key = &published.commit_key;
    Ok(stages::refuse(
        ctx,
        function,
        Zone::Products,
        &published.bucket,
        key,
        &published.version,
        &e.to_string(),
    )
    .await?)
}
