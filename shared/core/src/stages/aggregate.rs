//! aggregate: a published product → the aggregate products computed from it.
//!
//! Each aggregation is SQL over its parent product (the table named after it, read through the
//! commit log), run by DataFusion. The result is cast to the aggregate's own contract, checked,
//! and published the same way as any product, replacing the previous version (aggregates are
//! recomputed whole).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use tessera_contract::Checker;

use super::version::Version;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{CheckCounts, ProductPublished};
use crate::keys::input_id;
use crate::mesh::{Product, ProductKind};
use crate::publish::CommitMode;
use crate::query::product_table;
use crate::runs::{self, InputRef, RunRecord};
use crate::typing::nullable_fields;

/// Recomputes every aggregate of the published product.
pub async fn run(ctx: &Context, published: &ProductPublished) -> Result<Vec<RunRecord>> {
    let domain = ctx
        .mesh
        .domain(&published.domain)
        .ok_or_else(|| Error::BadEvent(format!("no domain `{}` in the mesh", published.domain)))?;
    if domain.bucket != published.bucket {
        return Err(Error::BadEvent(format!(
            "bucket `{}` is not the bucket of domain `{}`",
            published.bucket, domain.name
        )));
    }
    let mut records = Vec::new();
    for product in &domain.products {
        let ProductKind::Aggregate { parent, sql } = &product.kind else {
            continue;
        };
        if *parent != published.product {
            continue;
        }
        records.push(aggregate_one(ctx, &domain.name, product, parent, sql, published).await?);
    }
    Ok(records)
}

async fn aggregate_one(
    ctx: &Context,
    domain: &str,
    product: &Product,
    parent: &str,
    sql: &str,
    published: &ProductPublished,
) -> Result<RunRecord> {
    let bucket = &published.bucket;
    let id = input_id(bucket, &published.commit_key, &product.name);
    let input = InputRef {
        bucket: bucket.clone(),
        key: published.commit_key.clone(),
        version: published.version.clone(),
    };
    let (mut record, started) = RunRecord::start(&id, "aggregate", domain, &product.name, input);

    let session = SessionContext::new();
    let table = product_table(&session, &ctx.storage, bucket, parent)
        .await?
        .ok_or_else(|| {
            Error::Internal(format!(
                "`{parent}` was published but has no committed files"
            ))
        })?;
    session.register_table(parent, table)?;
    let frame = session
        .sql(sql)
        .await
        .map_err(|e| Error::Config(format!("aggregation `{}`: {e}", product.name)))?;
    let batches = frame.collect().await?;

    let (contract_schema, _) = super::staged_schema(product.schema())?;
    let schema: SchemaRef = Arc::new(arrow::datatypes::Schema::new(nullable_fields(
        contract_schema.fields(),
    )));
    let batches = batches
        .iter()
        .map(|b| super::conform(b, &schema))
        .collect::<Result<Vec<_>>>()?;

    let mut checker = Checker::new(product.schema())?;
    for b in &batches {
        record.rows_in += b.num_rows() as u64;
        checker.update(b);
    }
    let mut report = checker.finish();
    // The contract's `sql` rules, on the aggregation's result.
    super::sql_checks::run_on_batches(
        Arc::clone(&schema),
        batches.clone(),
        product.schema(),
        &mut report,
    )
    .await?;
    let (passed, failed) = report.counts();
    record.checks = CheckCounts { passed, failed };

    let decision = Version {
        ctx,
        domain,
        product,
        bucket,
        id: &id,
        input_key: &published.commit_key,
        stage: "aggregate",
    };
    if !report.passed() {
        decision.refuse(&id, &report, false, &mut record).await?;
        return runs::save(&ctx.storage, bucket, record, started).await;
    }
    let mut writer = decision.writer(Arc::clone(&schema))?;
    for b in &batches {
        writer.write(b).await?;
    }
    // The version's check report, as contract-check keeps it for a source product.
    let report_key = format!(
        "{}_reports/{id}.json",
        crate::publish::product_prefix(&product.name)
    );
    decision.write_report(&report_key, &report).await?;
    decision
        .commit(writer, CommitMode::Overwrite, &mut record)
        .await?;
    runs::save(&ctx.storage, bucket, record, started).await
}
