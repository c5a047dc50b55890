//! What every Lambda handler shares: reading its trigger, mapping failures to retry or not.
//!
//! A handler receives one of the events it is wired to: S3's `Object Created` delivered by
//! EventBridge, or Tessera's `DataProductPublished` / `ContractViolated`. Bad data never fails an
//! invocation: it is quarantined and reported in the outcome. Only infrastructure failures (and
//! defects) come back as errors, with a small fixed set of error types Lambda reports.

use serde::Serialize;
use serde_json::Value;

use crate::context::Context;
use crate::delivery;
use crate::error::{Error, ErrorKind};
use crate::events::S3Record;
use crate::events::{
    BusEvent, CONTRACT_VIOLATED, ContractViolated, InputFailed, OBJECT_CREATED, ObjectCreated,
    PRODUCT_PUBLISHED, ProductPublished, SCHEDULED_EVENT,
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
    /// The schedule fired (an EventBridge schedule's `Scheduled Event`): time for the service
    /// level check of the domain its detail names (`{"domain": "sales"}`), or of every domain.
    Scheduled {
        /// When the schedule fired.
        at: chrono::DateTime<chrono::Utc>,
        /// The domain to check.
        domain: Option<String>,
    },
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
        SCHEDULED_EVENT => Trigger::Scheduled {
            at: bus_event.time,
            domain: bus_event.detail["domain"].as_str().map(str::to_owned),
        },
        other => Trigger::Other(format!("`{other}`")),
    };
    Ok(vec![trigger])
}

/// The stage behind one Lambda function. Each function crate calls [`handle`] with its own
/// stage type, so a binary links only the code of its stage (the aggregate stage's query engine
/// stays out of the other four).
pub trait Stage {
    /// The function this stage is.
    const FUNCTION: Function;

    /// Acts on one trigger meant for this function; `None` when the trigger is not for it.
    fn on_trigger(
        ctx: &Context,
        trigger: Trigger,
    ) -> impl Future<Output = Option<Result<Vec<RunRecord>, FunctionError>>> + Send;
}

/// The stages, one type per function.
pub mod stage {
    use super::*;

    /// `ingest`: raw files → typed Parquet.
    #[derive(Debug)]
    pub struct Ingest;
    /// `clean`: typed → cleaned Parquet.
    #[derive(Debug)]
    pub struct Clean;
    /// `contract-check`: cleaned Parquet → published product or quarantine.
    #[derive(Debug)]
    pub struct ContractCheck;
    /// `aggregate`: publications → aggregations.
    #[derive(Debug)]
    pub struct Aggregate;
    /// `catalog-register`: publications and violations → the catalog.
    #[derive(Debug)]
    pub struct CatalogRegister;

    impl Stage for Ingest {
        const FUNCTION: Function = Function::Ingest;
        async fn on_trigger(
            ctx: &Context,
            trigger: Trigger,
        ) -> Option<Result<Vec<RunRecord>, FunctionError>> {
            on_object(
                ctx,
                Self::FUNCTION,
                Zone::Raw,
                trigger,
                stages::ingest::run_at,
            )
            .await
        }
    }

    impl Stage for Clean {
        const FUNCTION: Function = Function::Clean;
        async fn on_trigger(
            ctx: &Context,
            trigger: Trigger,
        ) -> Option<Result<Vec<RunRecord>, FunctionError>> {
            on_object(
                ctx,
                Self::FUNCTION,
                Zone::Staged,
                trigger,
                async |ctx: &Context, bucket: &str, key: &str, version: &str, _: Option<&str>| {
                    stages::clean::run(ctx, bucket, key, version).await
                },
            )
            .await
        }
    }

    impl Stage for ContractCheck {
        const FUNCTION: Function = Function::ContractCheck;
        async fn on_trigger(
            ctx: &Context,
            trigger: Trigger,
        ) -> Option<Result<Vec<RunRecord>, FunctionError>> {
            on_object(
                ctx,
                Self::FUNCTION,
                Zone::Clean,
                trigger,
                async |ctx: &Context, bucket: &str, key: &str, version: &str, _: Option<&str>| {
                    stages::check::run(ctx, bucket, key, version).await
                },
            )
            .await
        }
    }

    impl Stage for Aggregate {
        const FUNCTION: Function = Function::Aggregate;
        async fn on_trigger(
            ctx: &Context,
            trigger: Trigger,
        ) -> Option<Result<Vec<RunRecord>, FunctionError>> {
            let Trigger::Published(published) = trigger else {
                return None;
            };
            Some(match stages::aggregate::run(ctx, &published).await {
                Ok(runs) => Ok(runs),
                Err(e) => refuse_publication(ctx, Self::FUNCTION, &published, e)
                    .await
                    .map(|run| vec![run]),
            })
        }
    }

    impl Stage for CatalogRegister {
        const FUNCTION: Function = Function::CatalogRegister;
        async fn on_trigger(
            ctx: &Context,
            trigger: Trigger,
        ) -> Option<Result<Vec<RunRecord>, FunctionError>> {
            Some(match trigger {
                Trigger::Published(published) => {
                    match stages::register::run(ctx, &published).await {
                        Ok(run) => Ok(vec![run]),
                        Err(e) => refuse_publication(ctx, Self::FUNCTION, &published, e)
                            .await
                            .map(|run| vec![run]),
                    }
                }
                Trigger::Violated(violated) => stages::register::record_violation(ctx, &violated)
                    .await
                    .map(|run| vec![run])
                    .map_err(FunctionError::from),
                Trigger::Scheduled { at, domain } => {
                    crate::sla::scheduled_check(ctx, domain.as_deref(), at)
                        .await
                        .map_err(FunctionError::from)
                }
                _ => return None,
            })
        }
    }
}

/// Runs the stage of `function` on one event. This links every stage: for in-process callers
/// (tests, tools); a Lambda binary calls [`handle`] with its own stage.
pub async fn handle_any(
    ctx: &Context,
    function: Function,
    event: &Value,
) -> Result<Outcome, FunctionError> {
    match function {
        Function::Ingest => handle::<stage::Ingest>(ctx, event).await,
        Function::Clean => handle::<stage::Clean>(ctx, event).await,
        Function::ContractCheck => handle::<stage::ContractCheck>(ctx, event).await,
        Function::Aggregate => handle::<stage::Aggregate>(ctx, event).await,
        Function::CatalogRegister => handle::<stage::CatalogRegister>(ctx, event).await,
    }
}

/// Runs stage `S` on one event.
pub async fn handle<S: Stage>(ctx: &Context, event: &Value) -> Result<Outcome, FunctionError> {
    let function = S::FUNCTION;
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
        let what = describe(&trigger);
        match S::on_trigger(ctx, trigger).await {
            Some(runs) => outcome.runs.extend(runs?),
            None => outcome
                .ignored
                .push(format!("{what} is not for `{}`", function.name())),
        }
    }
    for run in &outcome.runs {
        tracing::info!(
            stage = %run.stage, domain = %run.domain, product = %run.product, run_id = %run.run_id,
            status = ?run.status, rows_in = run.rows_in, rows_out = run.rows_out,
            quarantined = run.quarantined, dropped = run.dropped,
            checks_failed = run.checks.failed, duration_ms = run.duration_ms, "run finished"
        );
    }
    crate::lineage::emit(ctx, &outcome.runs).await;
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
            detail_type == PRODUCT_PUBLISHED
                || detail_type == CONTRACT_VIOLATED
                || detail_type == SCHEDULED_EVENT
        }
    }
}

fn describe(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Object(o) => format!("object creation `{}`", o.object.key),
        Trigger::Published(p) => format!("publication of `{}`", p.product),
        Trigger::Violated(v) => format!("violation of `{}`", v.product),
        Trigger::Scheduled { at, .. } => format!("schedule at {at}"),
        Trigger::Other(what) => what.clone(),
    }
}

/// ingest, clean or contract-check (`run`) on the object a trigger names; `None` for any other
/// trigger. Exactly once in effect ([`crate::delivery`]): an input the stage has finished (its
/// run record exists) is not done again, and one that has used up its attempts is refused.
async fn on_object<F>(
    ctx: &Context,
    function: Function,
    zone: Zone,
    trigger: Trigger,
    run: F,
) -> Option<Result<Vec<RunRecord>, FunctionError>>
where
    F: AsyncFn(&Context, &str, &str, &str, Option<&str>) -> crate::Result<RunRecord>,
{
    let Trigger::Object(object) = trigger else {
        return None;
    };
    Some(
        async {
            let (bucket, key, version) = object_input(ctx, &object).await?;
            let input = Input {
                function,
                zone,
                bucket,
                key: &key,
                version: &version,
            };
            // S3's sequencer orders the versions of a key: ingest drops a stale one.
            let sequencer = object.object.sequencer.as_deref();
            let Ok(zk) = crate::keys::parse_zone_key(&key, zone) else {
                // Not a key of this zone: the stage refuses it with the reason.
                let result = run(ctx, bucket, &key, &version, sequencer).await;
                return input.outcome(ctx, result).await;
            };
            let id = crate::keys::object_run_id(zone, bucket, &key, &version);
            let attempts_key = delivery::attempts_key(&zk.product, function.name(), &id);
            if let Some(done) = finished(ctx, bucket, &zk.product, function.name(), &id).await? {
                // A repeated delivery. What a delivery that failed half-way beside the one that
                // finished may have left is removed: its attempt count, its pending files.
                ctx.storage.delete(bucket, &attempts_key).await?;
                if zone == Zone::Clean {
                    crate::publish::clear_pending(&ctx.storage, bucket, &zk.product, &id, None)
                        .await?;
                }
                return Ok(vec![done]);
            }
            let mut attempts = delivery::attempts(&ctx.storage, bucket, &attempts_key).await?;
            if attempts.used_up(ctx.mesh.max_attempts, chrono::Utc::now()) {
                let run = input.give_up(ctx, &zk.product, &attempts).await?;
                ctx.storage.delete(bucket, &attempts_key).await?;
                return Ok(vec![run]);
            }
            attempts.attempts += 1;
            attempts.last_error = None;
            attempts.started_at = chrono::Utc::now();
            delivery::record_attempts(&ctx.storage, bucket, &attempts_key, &attempts).await?;
            let result = run(ctx, bucket, &key, &version, sequencer).await;
            if let Some(e) = result.as_ref().err().filter(|e| e.kind() != ErrorKind::BadData) {
                attempts.last_error = Some(e.to_string());
                // The error is what the invocation reports; the count is best effort.
                if let Err(store) =
                    delivery::record_attempts(&ctx.storage, bucket, &attempts_key, &attempts).await
                {
                    tracing::warn!(%bucket, key = %attempts_key, error = %store, "attempt count not stored");
                }
            }
            let outcome = input.outcome(ctx, result).await;
            if outcome.is_ok() {
                ctx.storage.delete(bucket, &attempts_key).await?;
            }
            outcome
        }
        .await,
    )
}

/// The run of a stage that already finished with an input, reported as skipped (not stored
/// again: the first record stays).
async fn finished(
    ctx: &Context,
    bucket: &str,
    product: &str,
    stage: &str,
    id: &str,
) -> Result<Option<RunRecord>, FunctionError> {
    let key = crate::keys::run_key(product, stage, id);
    let Some(bytes) = ctx.storage.get_opt(bucket, &key).await? else {
        return Ok(None);
    };
    let Ok(mut run) = serde_json::from_slice::<RunRecord>(&bytes) else {
        // An unreadable record is no proof of a finished run: do the work again.
        return Ok(None);
    };
    let note = format!(
        "already done: {:?} at {} (a repeated delivery)",
        run.status,
        run.started_at.to_rfc3339()
    );
    run.status = crate::runs::RunStatus::Skipped;
    run.notes = vec![note];
    Ok(Some(run))
}

/// One object a zone stage is asked to handle.
#[derive(Debug, Clone, Copy)]
struct Input<'a> {
    function: Function,
    zone: Zone,
    bucket: &'a str,
    key: &'a str,
    version: &'a str,
}

impl Input<'_> {
    /// What the stage did with the object: bad data is quarantined, not failed.
    async fn outcome(
        &self,
        ctx: &Context,
        result: crate::Result<RunRecord>,
    ) -> Result<Vec<RunRecord>, FunctionError> {
        match result {
            Ok(run) => Ok(vec![run]),
            Err(e) if e.kind() == ErrorKind::BadData => {
                tracing::warn!(stage = self.function.name(), bucket = %self.bucket, key = %self.key, error = %e, "input refused");
                Ok(vec![self.refuse(ctx, &e.to_string()).await?])
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The object refused whole with `reason` ([`stages::refuse`]).
    async fn refuse(&self, ctx: &Context, reason: &str) -> crate::Result<RunRecord> {
        stages::refuse(
            ctx,
            self.function,
            self.zone,
            self.bucket,
            self.key,
            self.version,
            reason,
        )
        .await
    }

    /// Refuses an object whose attempts are used up: a quarantine report with the last error, a
    /// quarantined run record, and `InputFailed`.
    async fn give_up(
        &self,
        ctx: &Context,
        product: &str,
        attempts: &delivery::Attempts,
    ) -> Result<RunRecord, FunctionError> {
        let reason = format!(
            "gave up after {} attempts: {}",
            attempts.attempts,
            attempts
                .last_error
                .as_deref()
                .unwrap_or("the function did not finish (a crash or a timeout)")
        );
        tracing::error!(stage = self.function.name(), bucket = %self.bucket, key = %self.key, %reason, "poison input refused");
        let run = self.refuse(ctx, &reason).await?;
        let failed = InputFailed {
            domain: run.domain.clone(),
            product: product.to_owned(),
            stage: self.function.name().to_owned(),
            bucket: self.bucket.to_owned(),
            key: self.key.to_owned(),
            version: self.version.to_owned(),
            attempts: attempts.attempts,
            reason,
            report_key: run.outputs.first().cloned().unwrap_or_default(),
            at: chrono::Utc::now(),
        };
        ctx.bus.publish(vec![failed.event()]).await?;
        Ok(run)
    }
}

/// The input an `Object Created` trigger names: its bucket (one of the mesh's), its decoded key
/// and its version.
async fn object_input<'a>(
    ctx: &Context,
    object: &'a ObjectCreated,
) -> Result<(&'a str, String, String), FunctionError> {
    let bucket = object.bucket.name.as_str();
    if ctx.mesh.domain_of_bucket(bucket).is_none() {
        // Not ours: nothing is written there, the event is refused.
        return Err(Error::BadEvent(format!(
            "bucket `{bucket}` belongs to no domain of the mesh"
        ))
        .into());
    }
    let key = event_key(ctx, bucket, &object.object.key).await?;
    Ok((bucket, key, object.version()))
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
