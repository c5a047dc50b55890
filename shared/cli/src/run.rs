//! `tessera run`, `query` and `catalog` on the embedded ports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use async_trait::async_trait;
use bytes::Bytes;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use tessera_core::context::Embedded;
use tessera_core::mesh::{Environment, Mesh, ProductKind};
use tessera_core::router::{Invoker, drain};
use tessera_core::routing::Function;
use tessera_core::runs::{RunStatus, history};
use tessera_core::{Context, function};

/// Calls the function crates' handlers in process.
struct Functions<'a>(&'a Context);

#[async_trait]
impl Invoker for Functions<'_> {
    async fn invoke(
        &self,
        f: Function,
        event: serde_json::Value,
    ) -> Result<function::Outcome, function::FunctionError> {
        match f {
            Function::Ingest => ingest::handler(self.0, event).await,
            Function::Clean => clean::handler(self.0, event).await,
            Function::ContractCheck => contract_check::handler(self.0, event).await,
            Function::Aggregate => aggregate::handler(self.0, event).await,
            Function::CatalogRegister => catalog_register::handler(self.0, event).await,
        }
    }
}

fn embedded(mesh: Arc<Mesh>, env: &str) -> Result<Embedded> {
    match mesh.environment(env)? {
        Environment::Embedded { warehouse } => {
            let dir = if warehouse.is_absolute() {
                warehouse.clone()
            } else {
                mesh.root.join(warehouse)
            };
            Ok(Context::embedded(Arc::clone(&mesh), &dir)?)
        }
        Environment::Aws { .. } => {
            bail!("environment `{env}` is not embedded; `tessera run` drives the embedded pipeline")
        }
    }
}

fn sample_files(root: &Path, samples: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for s in samples {
        let path = root.join(s);
        if path.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("reading `{}`", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// Lands the sample files, drains the bus, prints a table per product.
pub async fn run(mesh: Arc<Mesh>, env: &str) -> Result<ExitCode> {
    let started = Instant::now();
    let emb = embedded(Arc::clone(&mesh), env)?;
    let ctx = &emb.context;
    let mut landed = 0;
    let mut unchanged = 0;
    for (domain, product) in mesh.products() {
        let ProductKind::Source { source, .. } = &product.kind else {
            continue;
        };
        for file in sample_files(&mesh.root, &source.samples)? {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key = format!("raw/{}/{name}", product.name);
            let bytes = Bytes::from(
                std::fs::read(&file)
                    .with_context(|| format!("reading sample `{}`", file.display()))?,
            );
            // Landing the same file again is a no-op, so `tessera run` can be repeated.
            if ctx.storage.get_opt(&domain.bucket, &key).await?.as_ref() == Some(&bytes) {
                unchanged += 1;
                continue;
            }
            ctx.storage.put(&domain.bucket, &key, bytes).await?;
            landed += 1;
        }
    }
    let deliveries = drain(&emb.bus, &Functions(ctx), 100_000)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let failures: Vec<_> = deliveries.iter().filter(|d| d.result.is_err()).collect();
    println!(
        "landed {landed} raw files ({unchanged} unchanged), {} deliveries, warehouse `{}`",
        deliveries.len(),
        emb.warehouse.display()
    );
    print_products(ctx, &emb.warehouse).await?;
    for d in &failures {
        if let Err(e) = &d.result {
            eprintln!(
                "error: {} failed ({}): {}",
                d.function.name(),
                e.error_type(),
                e.message
            );
        }
    }
    println!("done in {:.2} s", started.elapsed().as_secs_f64());
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Per-product totals from the run records.
async fn print_products(ctx: &Context, warehouse: &Path) -> Result<()> {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "product",
        "rows in",
        "published",
        "dropped",
        "quarantined",
        "checks ✓/✗",
        "status",
        "location",
        "time",
    ]);
    for (domain, product) in ctx.mesh.products() {
        let stages: &[&str] = match product.kind {
            ProductKind::Source { .. } => {
                &["ingest", "clean", "contract-check", "catalog-register"]
            }
            ProductKind::Aggregate { .. } => &["aggregate", "catalog-register"],
        };
        let mut runs = Vec::new();
        for s in stages {
            runs.extend(history(&ctx.storage, &domain.bucket, &product.name, s).await?);
        }
        let sum = |stage: &str, f: fn(&tessera_core::runs::RunRecord) -> u64| -> u64 {
            runs.iter().filter(|r| r.stage == stage).map(f).sum()
        };
        let (first, publisher) = match product.kind {
            ProductKind::Source { .. } => ("ingest", "contract-check"),
            ProductKind::Aggregate { .. } => ("aggregate", "aggregate"),
        };
        let rows_in = sum(first, |r| r.rows_in);
        let last_check = runs
            .iter()
            .filter(|r| r.stage == publisher && r.status != RunStatus::Skipped)
            .max_by_key(|r| r.started_at);
        let published = match product.kind {
            ProductKind::Source { .. } => sum(publisher, |r| {
                if r.status == RunStatus::Published {
                    r.rows_out
                } else {
                    0
                }
            }),
            ProductKind::Aggregate { .. } => last_check.map_or(0, |r| r.rows_out),
        };
        let quarantined: u64 = runs
            .iter()
            .filter(|r| r.stage != "catalog-register")
            .map(|r| r.quarantined)
            .sum();
        let dropped = sum("clean", |r| r.dropped);
        let violated = runs
            .iter()
            .filter(|r| r.stage == publisher && r.status == RunStatus::Quarantined)
            .count();
        let refused = runs
            .iter()
            .filter(|r| r.stage != publisher && r.status == RunStatus::Quarantined)
            .count();
        let status = match (published > 0, violated, refused) {
            (true, 0, 0) => "published".to_owned(),
            (true, v, r) => format!("published; {} refused", v + r),
            (false, 0, 0) => "nothing published".to_owned(),
            (false, v, r) => format!("{} refused", v + r),
        };
        let checks = last_check.map_or("-".to_owned(), |r| {
            format!("{}/{}", r.checks.passed, r.checks.failed)
        });
        let ms: u64 = runs.iter().map(|r| r.duration_ms).sum();
        let location = warehouse
            .join(&domain.bucket)
            .join("products")
            .join(&product.name);
        table.add_row(vec![
            Cell::new(format!("{}.{}", domain.name, product.name)),
            Cell::new(rows_in).set_alignment(CellAlignment::Right),
            Cell::new(published).set_alignment(CellAlignment::Right),
            Cell::new(dropped).set_alignment(CellAlignment::Right),
            Cell::new(quarantined).set_alignment(CellAlignment::Right),
            Cell::new(checks).set_alignment(CellAlignment::Right),
            Cell::new(status),
            Cell::new(location.display()),
            Cell::new(format!("{ms} ms")).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// `tessera query`.
pub async fn query(mesh: Arc<Mesh>, env: &str, sql: &str, json: bool) -> Result<ExitCode> {
    let emb = embedded(mesh, env)?;
    let batches = tessera_core::query::query(&emb.context, sql).await?;
    if json {
        let mut out = Vec::new();
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in &batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
        print!("{}", String::from_utf8_lossy(&out));
    } else {
        println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tessera catalog`.
pub async fn catalog(mesh: Arc<Mesh>, env: &str, json: bool) -> Result<ExitCode> {
    let emb = embedded(mesh, env)?;
    let tables = emb.context.catalog.tables().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tables)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "table",
        "owner",
        "description",
        "contract",
        "last publish",
        "quality",
        "partitions",
    ]);
    for t in tables {
        let p = |k: &str| t.parameters.get(k).cloned().unwrap_or_default();
        let partitions = emb
            .context
            .catalog
            .partitions(&t.database, &t.name)
            .await?
            .len();
        table.add_row(vec![
            format!("{}.{}", t.database, t.name),
            p("owner"),
            t.description.clone().unwrap_or_default(),
            format!("{} {}", p("contract_id"), p("contract_version")),
            p("last_publish").chars().take(19).collect(),
            p("quality_status"),
            partitions.to_string(),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
