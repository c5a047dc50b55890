//! aggregate: a published product → the aggregate products that read it.
//!
//! An aggregation is SQL over its input ports: its parent product (the table named after it)
//! and the products its `inputs` name, of its own domain or of others. Each port is read
//! through its owner's commit log, so only committed files are read. A port is an
//! anti-corruption layer: it is pinned to a contract id and major version (a version published
//! under another major stops the aggregation with a report, before any SQL runs), and it may map
//! upstream columns to the names the SQL uses (the SQL then sees only those).
//!
//! The SQL runs in DataFusion, or, with `engine = "athena"` where an Athena is configured, is
//! pushed down: Athena unloads the result as Parquet under the product's `_athena/` folder and
//! the stage reads it back. Either way the result is cast to the aggregate's own contract,
//! checked, and published like any product, replacing the previous version (aggregates are
//! recomputed whole). Which aggregations a process computes: those of the domains it serves
//! ([`Context::serves`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tessera_contract::{CheckReport, CheckResult, CheckStatus, Checker};

use super::version::Version;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{CheckCounts, ProductPublished};
use crate::keys::input_id;
use crate::mesh::{AggregateInput, Domain, Engine, Product, ProductKind, major_of};
use crate::publish::{Commit, CommitMode, commits, live_files, product_prefix};
use crate::query::files_table;
use crate::runs::{self, InputRef, RunRecord};
use crate::typing::nullable_fields;

/// Recomputes every aggregate, of the domains this process serves, that reads the published
/// product.
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
    for (d, product) in ctx.mesh.products() {
        if !ctx.serves(d) || !matches!(product.kind, ProductKind::Aggregate { .. }) {
            continue;
        }
        let reads = product
            .inputs()
            .iter()
            .any(|i| i.domain == published.domain && i.product == published.product);
        if reads {
            records.push(aggregate_one(ctx, d, product, published).await?);
        }
    }
    Ok(records)
}

/// One input port, resolved: where its product's files are, and which of them are live.
struct Port<'a> {
    input: AggregateInput,
    upstream: &'a Product,
    bucket: &'a str,
    files: Vec<String>,
}

async fn aggregate_one(
    ctx: &Context,
    domain: &Domain,
    product: &Product,
    published: &ProductPublished,
) -> Result<RunRecord> {
    let ProductKind::Aggregate {
        parent,
        sql,
        inputs,
        engine,
    } = &product.kind
    else {
        return Err(Error::Internal(format!(
            "`{}` is not an aggregate",
            product.name
        )));
    };
    let bucket = &domain.bucket;
    let id = input_id(&published.bucket, &published.commit_key, &product.name);
    let input = InputRef {
        bucket: published.bucket.clone(),
        key: published.commit_key.clone(),
        version: published.version.clone(),
        sequencer: None,
    };
    let (mut record, started) =
        RunRecord::start(&id, "aggregate", &domain.name, &product.name, input);
    let decision = Version {
        ctx,
        domain: &domain.name,
        product,
        bucket,
        id: &id,
        input_key: &published.commit_key,
        stage: "aggregate",
        source: None,
        delivery: crate::delivery::next_sequencer(),
    };

    // The ports: the parent, read whole, then the declared inputs.
    let parent_port = AggregateInput {
        domain: domain.name.clone(),
        product: parent.clone(),
        alias: parent.clone(),
        contract_id: String::new(),
        major: None,
        columns: Vec::new(),
    };
    let mut ports = Vec::new();
    let mut broken = Vec::new();
    for input in std::iter::once(parent_port).chain(inputs.iter().cloned()) {
        let (owner, upstream) = ctx
            .mesh
            .domain(&input.domain)
            .and_then(|d| Some((d, d.products.iter().find(|p| p.name == input.product)?)))
            .ok_or_else(|| {
                Error::Internal(format!(
                    "input `{}.{}` is not in the mesh",
                    input.domain, input.product
                ))
            })?;
        let log = commits(&ctx.storage, &owner.bucket, &input.product).await?;
        broken.extend(pin_violations(&input, &log));
        ports.push(Port {
            files: live_files(&log),
            input,
            upstream,
            bucket: &owner.bucket,
        });
    }
    let (contract_schema, _) = super::staged_schema(product.schema())?;
    let schema: SchemaRef = Arc::new(arrow::datatypes::Schema::new(nullable_fields(
        contract_schema.fields(),
    )));
    let batches = match (engine, &ctx.pushdown) {
        _ if !broken.is_empty() => None,
        (Engine::Athena, Some(pushdown)) => {
            let output = format!("{}_athena/{id}/", product_prefix(&product.name));
            let athena_sql = athena_sql(ctx, &ports, sql)?;
            pushdown
                .unload(
                    &domain.database,
                    &athena_sql,
                    &ctx.storage.url(bucket, &output),
                )
                .await?;
            record
                .notes
                .push(format!("pushed down to Athena: {output}"));
            Some(read_back(ctx, bucket, &output).await?)
        }
        (Engine::Athena, None) => {
            record
                .notes
                .push("engine athena: no Athena here, ran in process".into());
            run_in_process(ctx, &ports, sql, &product.name, &mut broken).await?
        }
        (Engine::Datafusion, _) => {
            run_in_process(ctx, &ports, sql, &product.name, &mut broken).await?
        }
    };
    let Some(batches) = batches else {
        // Nothing of an incompatible upstream is read: the product stays as it was.
        let report = CheckReport {
            object: product.object.clone(),
            rows: 0,
            checks: broken,
        };
        record.checks = CheckCounts {
            passed: 0,
            failed: report.checks.len(),
        };
        decision.refuse(&id, &report, &[], &mut record).await?;
        return runs::save(&ctx.storage, bucket, record, started).await;
    };
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

    if !report.passed() {
        decision.refuse(&id, &report, &[], &mut record).await?;
        return runs::save(&ctx.storage, bucket, record, started).await;
    }
    let published = async {
        let mut writer = decision.writer(Arc::clone(&schema))?;
        for b in &batches {
            writer.write(b).await?;
        }
        // The version's check report, as contract-check keeps it for a source product.
        let report_key = format!("{}_reports/{id}.json", product_prefix(&product.name));
        decision.write_report(&report_key, &report).await?;
        decision
            .commit(writer.finish().await?, CommitMode::Overwrite, &mut record)
            .await
    }
    .await;
    if published.is_err() {
        // This delivery's pending files go with it.
        decision.abandon().await;
    }
    published?;
    runs::save(&ctx.storage, bucket, record, started).await
}

/// The live versions of an input that break its pin: another contract, or another major.
fn pin_violations(input: &AggregateInput, log: &[(String, Commit)]) -> Vec<CheckResult> {
    let Some(major) = input.major else {
        return Vec::new();
    };
    let start = log
        .iter()
        .rposition(|(_, c)| c.mode == CommitMode::Overwrite)
        .unwrap_or(0);
    let expectation = format!("contract `{}` major {major}", input.contract_id);
    let mut out: Vec<CheckResult> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, c) in &log[start..] {
        let compatible =
            c.contract_id == input.contract_id && major_of(&c.contract_version) == Some(major);
        // One result per upstream contract version met, not per version of data.
        if compatible || !seen.insert((&c.contract_id, &c.contract_version)) {
            continue;
        }
        out.push(CheckResult {
            name: format!("input.{}", input.alias),
            rule: "inputPort".into(),
            property: None,
            observed: None,
            expectation: format!(
                "{expectation}, not {} {}",
                c.contract_id, c.contract_version
            ),
            unit: "rows".into(),
            severity: "error".into(),
            status: CheckStatus::Failed,
            detail: Some(format!(
                "`{}.{}` version `{}` is published under contract `{}` {}; this product reads \
                 it pinned to {expectation}: review the upstream change, then update the input \
                 port",
                input.domain, input.product, c.version, c.contract_id, c.contract_version
            )),
        });
    }
    out
}

/// Runs the SQL in DataFusion over the ports' committed files; `None` when a mapped column is
/// missing upstream (the reasons are pushed to `broken`).
async fn run_in_process(
    ctx: &Context,
    ports: &[Port<'_>],
    sql: &str,
    product: &str,
    broken: &mut Vec<CheckResult>,
) -> Result<Option<Vec<RecordBatch>>> {
    let session = SessionContext::new();
    for port in ports {
        let alias = &port.input.alias;
        let raw = if port.input.columns.is_empty() {
            alias.clone()
        } else {
            format!("__input_{alias}")
        };
        match files_table(&session, &ctx.storage, port.bucket, &port.files).await? {
            Some(table) => session.register_table(raw.as_str(), table)?,
            None => {
                // Nothing committed yet: an empty table of the upstream contract's columns.
                let (schema, _) = super::staged_schema(port.upstream.schema())?;
                let empty = MemTable::try_new(schema, vec![vec![]])?;
                session.register_table(raw.as_str(), Arc::new(empty))?
            }
        };
        if !port.input.columns.is_empty() {
            let table = session.table(raw.as_str()).await?;
            let available = table.schema().clone();
            let mut columns = Vec::with_capacity(port.input.columns.len());
            for (local, upstream) in &port.input.columns {
                if available.field_with_unqualified_name(upstream).is_err() {
                    broken.push(CheckResult {
                        name: format!("input.{alias}.{local}"),
                        rule: "inputPort".into(),
                        property: Some(local.clone()),
                        observed: None,
                        expectation: format!("upstream column `{upstream}`"),
                        unit: "rows".into(),
                        severity: "error".into(),
                        status: CheckStatus::Failed,
                        detail: Some(format!(
                            "`{}.{}` has no column `{upstream}` (read as `{local}`) in its \
                             committed files",
                            port.input.domain, port.input.product
                        )),
                    });
                    continue;
                }
                columns.push(datafusion::prelude::ident(upstream).alias(local));
            }
            session.register_table(alias.as_str(), table.select(columns)?.into_view())?;
        }
    }
    if !broken.is_empty() {
        return Ok(None);
    }
    let frame = session
        .sql(sql)
        .await
        .map_err(|e| Error::Config(format!("aggregation `{product}`: {e}")))?;
    Ok(Some(frame.collect().await?))
}

/// The aggregation's SQL for Athena: each port becomes a common table expression over its Glue
/// table (columns mapped as declared), in front of the SQL as written.
fn athena_sql(ctx: &Context, ports: &[Port<'_>], sql: &str) -> Result<String> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut ctes = Vec::with_capacity(ports.len());
    for port in ports {
        let database = &ctx
            .mesh
            .domain(&port.input.domain)
            .ok_or_else(|| Error::Internal(format!("no domain `{}`", port.input.domain)))?
            .database;
        let select = if port.input.columns.is_empty() {
            "*".to_owned()
        } else {
            port.input
                .columns
                .iter()
                .map(|(local, upstream)| format!("{} AS {}", quote(upstream), quote(local)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        ctes.push(format!(
            "{} AS (SELECT {select} FROM {}.{})",
            quote(&port.input.alias),
            quote(database),
            quote(&port.input.product)
        ));
    }
    let body = sql.trim();
    // The SQL's own `WITH` list continues ours.
    let rest = body
        .get(..4)
        .filter(|lead| lead.eq_ignore_ascii_case("with"))
        .map(|_| &body[4..])
        .filter(|rest| rest.starts_with(char::is_whitespace));
    Ok(if let Some(rest) = rest {
        format!("WITH {},{rest}", ctes.join(", "))
    } else {
        format!("WITH {}\n{body}", ctes.join(", "))
    })
}

/// The Parquet files a push-down wrote, read back.
async fn read_back(ctx: &Context, bucket: &str, prefix: &str) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    let mut files: Vec<String> = ctx
        .storage
        .list(bucket, prefix)
        .await?
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    files.sort();
    for key in files {
        let mut stream = ctx.storage.read_parquet(bucket, &key).await?;
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
    }
    Ok(batches)
}
