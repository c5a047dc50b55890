//! catalog-register: a published product version → its catalog table and partitions.
//!
//! The table is described from the contract (columns typed for Athena with their descriptions,
//! partition keys, owner, domain, contract id and version, data classification) and written as a
//! compare-and-swap on the table version, retried when a concurrent writer got there first.
//! Partitions are added idempotently. A product that breaks the organisation policy is not
//! registered (see [`super::policy::refuse_registration`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Column, Database, Partition, Table, athena_type};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{ContractViolated, ProductPublished};
use crate::keys::input_id;
use crate::mesh::{Domain, Product};
use crate::publish::unescape_partition;
use crate::runs::{self, InputRef, RunRecord, RunStatus};

/// Attempts of the compare-and-swap before giving up (and letting the invocation be retried).
const CAS_ATTEMPTS: usize = 8;

/// Registers (or updates) the table of a published product.
pub async fn run(ctx: &Context, published: &ProductPublished) -> Result<RunRecord> {
    let product = (&*published.domain, &*published.product, &*published.bucket);
    let input = InputRef {
        bucket: published.bucket.clone(),
        key: published.commit_key.clone(),
        version: published.version.clone(),
        sequencer: None,
    };
    if let Some(refused) = super::policy::refuse_registration(ctx, product, input.clone()).await? {
        return Ok(refused);
    }
    let (domain, product, mut record, started) = begin(ctx, product, input).await?;
    let location = ctx.storage.url(&published.bucket, &published.location);
    let mut desired = table_for(product, &domain.database, &location)?;
    let p = &mut desired.parameters;
    p.insert("last_publish".into(), published.at.to_rfc3339());
    p.insert("last_version".into(), published.version.clone());
    p.insert("checks_passed".into(), published.checks.passed.to_string());
    p.insert("checks_failed".into(), published.checks.failed.to_string());
    update_table(ctx, &domain.database, &product.name, |current| {
        let mut next = desired.clone();
        // Events arrive in any order: a violation decided after this version still stands.
        let violation = current
            .map(|t| &t.parameters)
            .filter(|c| newer(c, VIOLATION_KEYS[0], published.at));
        if let Some(c) = violation {
            for k in VIOLATION_KEYS {
                if let Some(v) = c.get(k) {
                    next.parameters.insert(k.into(), v.clone());
                }
            }
        }
        let status = if violation.is_some() || published.checks.failed > 0 {
            "failed"
        } else {
            "passed"
        };
        next.parameters
            .insert("quality_status".into(), status.into());
        Some(next)
    })
    .await?;
    let partitions: Vec<Partition> = published
        .partitions
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| Partition {
            values: p
                .trim_end_matches('/')
                .split('/')
                .map(|kv| unescape_partition(kv.split_once('=').map_or(kv, |(_, v)| v)))
                .collect(),
            location: format!("{location}{p}"),
        })
        .collect();
    let added = ctx
        .catalog
        .add_partitions(&domain.database, &product.name, &partitions)
        .await?;
    record.status = RunStatus::Succeeded;
    record.rows_in = published.rows;
    record
        .outputs
        .push(format!("catalog:{}.{}", domain.database, product.name));
    record
        .notes
        .push(format!("{added} new partitions of {}", partitions.len()));
    runs::save(&ctx.storage, &published.bucket, record, started).await
}

/// Records a refused product version on its table: `quality_status` becomes `failed` with the
/// time, the failed checks and the report, until a version decided later is published. Events
/// arrive in any order, so times decide, not arrival.
pub async fn record_violation(ctx: &Context, violated: &ContractViolated) -> Result<RunRecord> {
    let product = (&*violated.domain, &*violated.product, &*violated.bucket);
    let input = InputRef {
        bucket: violated.bucket.clone(),
        key: violated.report_key.clone(),
        version: violated.run_id.clone(),
        sequencer: None,
    };
    if let Some(refused) = super::policy::refuse_registration(ctx, product, input.clone()).await? {
        return Ok(refused);
    }
    let (domain, product, mut record, started) = begin(ctx, product, input).await?;
    // A product refused before it was ever published still gets its table, marked failed, so
    // consumers find it and see why it is empty.
    let location = ctx.storage.url(
        &violated.bucket,
        &crate::publish::product_prefix(&product.name),
    );
    let fresh = table_for(product, &domain.database, &location)?;
    let failed: String = violated
        .failed_checks
        .join("; ")
        .chars()
        .take(2000)
        .collect();
    let values = [
        violated.at.to_rfc3339(),
        failed,
        violated.report_key.clone(),
    ];
    update_table(ctx, &domain.database, &product.name, |current| {
        let mut table = current.cloned().unwrap_or_else(|| fresh.clone());
        if newer(&table.parameters, VIOLATION_KEYS[0], violated.at) {
            return None; // a later violation is already recorded
        }
        for (k, v) in VIOLATION_KEYS.iter().zip(&values) {
            table.parameters.insert((*k).into(), v.clone());
        }
        // A version published after this refusal keeps the product passing.
        if !newer(&table.parameters, "last_publish", violated.at) {
            table
                .parameters
                .insert("quality_status".into(), "failed".into());
        }
        Some(table)
    })
    .await?;
    record.status = RunStatus::Succeeded;
    record
        .outputs
        .push(format!("catalog:{}.{}", domain.database, product.name));
    record.notes.push(format!(
        "violation at {} recorded",
        violated.at.to_rfc3339()
    ));
    runs::save(&ctx.storage, &violated.bucket, record, started).await
}

/// What both entry points start with: the product the event names, a run record keyed by the
/// event's object, and the domain's database.
async fn begin<'m>(
    ctx: &'m Context,
    (domain, product, bucket): (&str, &str, &str),
    input: InputRef,
) -> Result<(&'m Domain, &'m Product, RunRecord, std::time::Instant)> {
    let (domain, product) = super::product_of(ctx, domain, product, bucket)?;
    let id = input_id(&input.bucket, &input.key, "catalog");
    let (record, started) =
        RunRecord::start(&id, "catalog-register", &domain.name, &product.name, input);
    ctx.catalog
        .ensure_database(&Database {
            name: domain.database.clone(),
            description: domain.description.clone(),
        })
        .await?;
    Ok((domain, product, record, started))
}

/// Table parameters describing the last violation; the first is its time.
const VIOLATION_KEYS: [&str; 3] = [
    "last_violation",
    "last_violation_checks",
    "last_violation_report",
];

/// Whether the time in parameter `key` is later than `than`.
fn newer(
    parameters: &BTreeMap<String, String>,
    key: &str,
    than: chrono::DateTime<chrono::Utc>,
) -> bool {
    parameters
        .get(key)
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .is_some_and(|t| t > than)
}

/// Replaces a table with what `change` makes of the current one (`None`: leave it), as a
/// compare-and-swap on the table version, retried when a concurrent writer got there first.
/// Returns whether a table was written.
async fn update_table(
    ctx: &Context,
    database: &str,
    name: &str,
    change: impl Fn(Option<&Table>) -> Option<Table>,
) -> Result<bool> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = ctx.catalog.get_table(database, name).await?;
        let expected = current.as_ref().map_or(0, |t| t.version);
        let Some(mut next) = change(current.as_ref()) else {
            return Ok(false);
        };
        next.version = expected;
        if current.as_ref() == Some(&next) {
            // A repeated event: the table says this already.
            return Ok(false);
        }
        match ctx.catalog.put_table(&next, expected).await {
            Ok(()) => return Ok(true),
            Err(Error::Conflict(why)) if attempt < CAS_ATTEMPTS => {
                tracing::info!(table = %name, attempt, %why, "catalog update lost a race; retrying");
            }
            Err(e) => return Err(e),
        }
    }
}

/// The catalog table of a product, from its contract.
pub fn table_for(product: &Product, database: &str, location: &str) -> Result<Table> {
    let object = product.schema();
    let schema = object.arrow_schema()?;
    let partition_names: BTreeSet<&str> = object
        .partition_columns()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut columns = Vec::new();
    let mut partition_keys = Vec::new();
    for (field, prop) in schema.fields().iter().zip(&object.properties) {
        let column = Column {
            name: field.name().clone(),
            data_type: athena_type(field.data_type())?,
            comment: prop.description.clone(),
        };
        // A partition folder named after its column replaces the column in Hive's view; one
        // with its own name (`partition_names`) leaves the column in the files' columns.
        let renamed = product.partition_names.contains_key(&prop.name);
        if renamed || !partition_names.contains(prop.name.as_str()) {
            columns.push(column);
        }
    }
    for prop in object.partition_columns() {
        let dt = prop.data_type()?;
        // Timestamps partition by their UTC day.
        let data_type = if matches!(dt, arrow::datatypes::DataType::Timestamp(_, _)) {
            "date".into()
        } else {
            athena_type(&dt)?
        };
        partition_keys.push(Column {
            name: product.partition_folder(&prop.name).to_owned(),
            data_type,
            comment: prop.description.clone(),
        });
    }
    let contract = &product.contract;
    let classes: BTreeSet<&str> = object
        .properties
        .iter()
        .filter_map(|p| p.classification.as_deref())
        .collect();
    let mut parameters = BTreeMap::new();
    parameters.insert("classification".into(), "parquet".into());
    parameters.insert(
        "owner".into(),
        contract.owner().unwrap_or("unknown").to_owned(),
    );
    parameters.insert("domain".into(), product.domain.clone());
    parameters.insert("product".into(), product.name.clone());
    parameters.insert("contract_id".into(), contract.id.clone());
    parameters.insert("contract_version".into(), contract.version.clone());
    parameters.insert(
        "data_classification".into(),
        classes.into_iter().collect::<Vec<_>>().join(","),
    );
    Ok(Table {
        database: database.into(),
        name: product.name.clone(),
        description: contract
            .description
            .purpose
            .clone()
            .or_else(|| object.description.clone()),
        location: location.into(),
        columns,
        partition_keys,
        parameters,
        version: 0,
    })
}
