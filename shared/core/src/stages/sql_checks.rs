//! The contract's `sql` quality rules, executed with DataFusion on the data being checked.
//!
//! The object is registered as a table named after the contract's schema object; `${object}` (or
//! `{object}`) in a query names it, `${property}` (or `{property}`) the column a rule is declared
//! on. The table streams the object from storage through the same masking as the write path, so a
//! rule sees exactly what would be published, and memory does not grow with the file: each rule
//! reads the object once more.
//!
//! A query that cannot run (bad SQL, an unknown column, no numeric answer) is a failed check
//! with the reason, never a pass; a storage failure while reading is an infrastructure error and
//! fails the invocation for a retry.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::MemTable;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use tessera_contract::{CheckReport, SchemaObject, SqlRule, sql_rules};

use super::check::Masker;
use crate::error::{Error, Result};
use crate::storage::Storage;

/// Runs every `sql` rule of `object` over the Parquet object `bucket/key` (masked as published)
/// and records the results in `report`. Returns how many rules ran.
pub async fn run(
    storage: &Storage,
    bucket: &str,
    key: &str,
    schema: SchemaRef,
    masker: Arc<Masker>,
    object: &SchemaObject,
    report: &mut CheckReport,
) -> Result<usize> {
    let rules = sql_rules(object);
    if rules.is_empty() {
        return Ok(0);
    }
    let (table, failure) = masked_table(storage, bucket, key, schema, masker)?;
    run_on(table, &failure, object, report).await
}

/// Runs every `sql` rule of `object` over the version's files as written (already masked), read
/// column by column: a rule reads only the columns it names. Returns how many rules ran.
pub async fn run_on_files(
    storage: &Storage,
    bucket: &str,
    keys: Vec<String>,
    schema: SchemaRef,
    object: &SchemaObject,
    report: &mut CheckReport,
) -> Result<usize> {
    if sql_rules(object).is_empty() {
        return Ok(0);
    }
    let failure: FailureSlot = Arc::new(Mutex::new(None));
    let table = Arc::new(WrittenFiles {
        storage: storage.clone(),
        bucket: bucket.to_owned(),
        keys,
        schema,
        failure: Arc::clone(&failure),
    });
    run_on(table, &failure, object, report).await
}

/// The Parquet object `bucket/key` as a streamed table, masked as it would be published, and the
/// slot where its stream leaves the first storage error it meets.
pub(crate) type FailureSlot = Arc<Mutex<Option<Error>>>;

/// See [`FailureSlot`].
pub(crate) fn masked_table(
    storage: &Storage,
    bucket: &str,
    key: &str,
    schema: SchemaRef,
    masker: Arc<Masker>,
) -> Result<(Arc<dyn TableProvider>, FailureSlot)> {
    let failure = Arc::new(Mutex::new(None));
    let source = Arc::new(MaskedObject {
        storage: storage.clone(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        schema: Arc::clone(&schema),
        masker,
        failure: Arc::clone(&failure),
    });
    Ok((
        Arc::new(StreamingTable::try_new(schema, vec![source])?),
        failure,
    ))
}

/// Runs every `sql` rule of `object` over record batches already in memory (an aggregation's
/// result) and records the results in `report`. Returns how many rules ran.
pub async fn run_on_batches(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    object: &SchemaObject,
    report: &mut CheckReport,
) -> Result<usize> {
    if sql_rules(object).is_empty() {
        return Ok(0);
    }
    let table = Arc::new(MemTable::try_new(schema, vec![batches])?);
    run_on(table, &Arc::new(Mutex::new(None)), object, report).await
}

async fn run_on(
    table: Arc<dyn TableProvider>,
    failure: &Mutex<Option<Error>>,
    object: &SchemaObject,
    report: &mut CheckReport,
) -> Result<usize> {
    let rules = sql_rules(object);
    let session = SessionContext::new();
    session.register_table(
        datafusion::common::TableReference::bare(object.name.as_str()),
        table,
    )?;
    let table = quote(&object.name);
    for rule in &rules {
        let outcome = run_rule(&session, rule, &table).await;
        // A storage failure met by the table stream keeps its own kind (usually retryable).
        if let Some(e) = failure.lock().map_err(|_| poisoned())?.take() {
            return Err(e);
        }
        let result = match outcome {
            Ok(observed) => rule.result(observed),
            Err(RuleError::Rule(why)) => rule.error(&why),
            Err(RuleError::Infrastructure(e)) => return Err(e),
        };
        report.record(result);
    }
    Ok(rules.len())
}

/// Why a rule gave no number.
pub(crate) enum RuleError {
    /// The rule itself: reported as a failed check.
    Rule(String),
    /// Reading the data failed: the invocation fails and is retried.
    Infrastructure(Error),
}

async fn run_rule(
    session: &SessionContext,
    rule: &SqlRule<'_>,
    table: &str,
) -> std::result::Result<f64, RuleError> {
    let property = rule.property.as_deref().map(quote);
    let query = rule
        .query(table, property.as_deref())
        .ok_or_else(|| RuleError::Rule("not a sql rule".into()))?;
    let batches = session
        .sql(&query)
        .await
        .map_err(classify)?
        .collect()
        .await
        .map_err(classify)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(RuleError::Rule(format!(
            "query `{query}` returned no row; it must return one number"
        )));
    };
    if rows != 1 || batch.num_columns() != 1 {
        return Err(RuleError::Rule(format!(
            "query `{query}` returned {rows} rows of {} columns; it must return one number",
            batch.num_columns()
        )));
    }
    let column = batch.column(0);
    if !column.data_type().is_numeric() {
        return Err(RuleError::Rule(format!(
            "query `{query}` did not return a number but {}",
            column.data_type()
        )));
    }
    let value = arrow::compute::cast(column, &DataType::Float64)
        .map_err(|e| RuleError::Rule(format!("query `{query}`: {e}")))?;
    let value = value.as_primitive::<Float64Type>();
    if value.is_null(0) {
        return Err(RuleError::Rule(format!("query `{query}` returned NULL")));
    }
    Ok(value.value(0))
}

/// Planning and SQL errors are the rule's; anything else is not (storage failures are taken
/// from the table's failure slot by the caller).
pub(crate) fn classify(e: DataFusionError) -> RuleError {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => RuleError::Rule(e.to_string()),
        _ => RuleError::Infrastructure(Error::from(e)),
    }
}

pub(crate) fn poisoned() -> Error {
    Error::Internal("a SQL rule's failure slot was poisoned".into())
}

/// A double-quoted SQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The object being checked, as one streamed partition, masked as it would be published.
#[derive(Debug)]
struct MaskedObject {
    storage: Storage,
    bucket: String,
    key: String,
    schema: SchemaRef,
    masker: Arc<Masker>,
    /// The first storage error the stream met, for the caller to return as it is.
    failure: Arc<Mutex<Option<Error>>>,
}

impl PartitionStream for MaskedObject {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let storage = self.storage.clone();
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        let masker = Arc::clone(&self.masker);
        let slot = Arc::clone(&self.failure);
        let fail = move |e: Error| {
            let message = e.to_string();
            if let Ok(mut slot) = slot.lock() {
                slot.get_or_insert(e);
            }
            DataFusionError::Execution(format!("reading the object: {message}"))
        };
        let batches =
            futures::stream::once(async move { storage.read_parquet(&bucket, &key).await })
                .map_ok(move |stream| {
                    let masker = Arc::clone(&masker);
                    stream.map(move |batch| masker.apply(&batch?))
                })
                .try_flatten()
                .map_err(fail);
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        ))
    }
}

/// A version's written Parquet files as one table; each scan reads only its projected columns.
#[derive(Debug)]
struct WrittenFiles {
    storage: Storage,
    bucket: String,
    keys: Vec<String>,
    schema: SchemaRef,
    failure: FailureSlot,
}

#[async_trait::async_trait]
impl TableProvider for WrittenFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&columns)?);
        let stream = Arc::new(WrittenColumns {
            storage: self.storage.clone(),
            bucket: self.bucket.clone(),
            keys: self.keys.clone(),
            columns,
            schema: Arc::clone(&schema),
            failure: Arc::clone(&self.failure),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![stream],
            None,
            Vec::<LexOrdering>::new(),
            false,
            limit,
        )?))
    }
}

/// The projected columns of a version's files, one file after another.
#[derive(Debug)]
struct WrittenColumns {
    storage: Storage,
    bucket: String,
    keys: Vec<String>,
    columns: Vec<usize>,
    schema: SchemaRef,
    failure: FailureSlot,
}

impl PartitionStream for WrittenColumns {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let storage = self.storage.clone();
        let bucket = self.bucket.clone();
        let columns = self.columns.clone();
        let schema = Arc::clone(&self.schema);
        let slot = Arc::clone(&self.failure);
        let fail = move |e: Error| {
            let message = e.to_string();
            if let Ok(mut slot) = slot.lock() {
                slot.get_or_insert(e);
            }
            DataFusionError::Execution(format!("reading the version's files: {message}"))
        };
        let batches = futures::stream::iter(self.keys.clone())
            .then(move |key| {
                let storage = storage.clone();
                let bucket = bucket.clone();
                let columns = columns.clone();
                async move {
                    storage
                        .read_parquet_columns(&bucket, &key, Some(&columns))
                        .await
                }
            })
            .map_ok(|stream| stream.map_err(Error::from))
            .try_flatten()
            .map_ok(move |batch| {
                // Files carry the same columns; the table's schema names them for DataFusion.
                RecordBatch::try_new_with_options(
                    Arc::clone(&schema),
                    batch.columns().to_vec(),
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )
                .map_err(Error::from)
            })
            .and_then(futures::future::ready)
            .map_err(fail);
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        ))
    }
}
