//! `tessera bench run`: one raw orders file through the normal embedded chain (the same router
//! and stages as `tessera run`), then the outputs laid out as the benchmark's Python peers lay
//! theirs out, so that the benchmark's `verify_outputs.py` can compare them row for row.
//!
//! The mesh names one source product with one aggregation (`bench/orders/mesh.toml`); nothing
//! in this module computes data: it lands the file, drains the bus, and copies or converts what
//! the stages wrote (`docs/bench.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Field, Schema};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use serde_json::{Value, json};
use tessera_core::mesh::{Mesh, ProductKind, SourceFormat};
use tessera_core::publish::{commits, live_files};
use tessera_core::runs::{RunRecord, RunStatus, history};
use tessera_core::stages::check::Masker;

/// Input format of a bench run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BenchFormat {
    /// CSV with a header.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl BenchFormat {
    /// The format a file's suffix says (`.ndjson`, `.jsonl`, `.json`: NDJSON; else CSV), as
    /// the peers decide.
    pub fn from_path(path: &Path) -> BenchFormat {
        let name = path.to_string_lossy();
        if [".ndjson", ".jsonl", ".json"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            BenchFormat::Ndjson
        } else {
            BenchFormat::Csv
        }
    }

    fn name(self) -> &'static str {
        match self {
            BenchFormat::Csv => "csv",
            BenchFormat::Ndjson => "ndjson",
        }
    }
}

/// The source product of a bench mesh: its only source product with an aggregation.
fn bench_products(mesh: &Mesh) -> Result<(usize, usize, String)> {
    for (d, domain) in mesh.domains.iter().enumerate() {
        for (p, product) in domain.products.iter().enumerate() {
            if matches!(product.kind, ProductKind::Source { .. }) {
                let agg = domain.products.iter().find_map(|a| match &a.kind {
                    ProductKind::Aggregate { parent, .. } if parent == &product.name => {
                        Some(a.name.clone())
                    }
                    _ => None,
                });
                if let Some(agg) = agg {
                    return Ok((d, p, agg));
                }
            }
        }
    }
    bail!("the bench mesh needs a source product with an aggregation")
}

/// `tessera bench run`: returns the report it wrote to `OUT_DIR/report.json`.
pub async fn run(
    mesh: Mesh,
    env: &str,
    raw_file: &Path,
    out_dir: &Path,
    format: Option<BenchFormat>,
) -> Result<Value> {
    let t0 = Instant::now();
    let format = format.unwrap_or_else(|| BenchFormat::from_path(raw_file));
    let mut mesh = mesh;
    let (d, p, agg_name) = bench_products(&mesh)?;
    // The format of this run's raw file: the product's recipe is otherwise unchanged.
    if let ProductKind::Source { source, .. } = &mut mesh.domains[d].products[p].kind {
        source.format = match format {
            BenchFormat::Csv => SourceFormat::Csv,
            BenchFormat::Ndjson => SourceFormat::Ndjson,
        };
    }
    let bucket = mesh.domains[d].bucket.clone();
    let product = mesh.domains[d].products[p].clone();
    let mesh = Arc::new(mesh);

    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)
            .with_context(|| format!("removing `{}`", out_dir.display()))?;
    }
    for sub in ["clean", "quarantine", "agg"] {
        std::fs::create_dir_all(out_dir.join(sub))
            .with_context(|| format!("creating `{}`", out_dir.display()))?;
    }
    // A fresh embedded warehouse, inside OUT_DIR (the peers' readers skip `_` folders).
    let warehouse = out_dir.join("_warehouse");
    let emb = crate::commands::embedded(Arc::clone(&mesh), env, Some(&warehouse))?;
    let ctx = &emb.context;

    let name = raw_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "orders".into());
    // Streamed in: memory does not follow the file's size.
    let raw_key = format!("raw/{}/{name}", product.name);
    ctx.storage.put_file(&bucket, &raw_key, raw_file).await?;
    let t_land = t0.elapsed().as_secs_f64();

    let (deliveries, failures) = crate::commands::deliver(&emb).await?;
    if !failures.is_empty() {
        bail!("the pipeline failed: {}", failures.join("; "));
    }
    let t_chain = t0.elapsed().as_secs_f64();

    // Run records of every stage.
    let mut runs: BTreeMap<&str, Vec<RunRecord>> = BTreeMap::new();
    for stage in ["ingest", "clean", "contract-check", "catalog-register"] {
        runs.insert(
            stage,
            history(&ctx.storage, &bucket, &product.name, stage).await?,
        );
    }
    runs.insert(
        "aggregate",
        history(&ctx.storage, &bucket, &agg_name, "aggregate").await?,
    );
    let agg_register = history(&ctx.storage, &bucket, &agg_name, "catalog-register").await?;
    let sum = |stage: &str, f: fn(&RunRecord) -> u64| -> u64 {
        runs.get(stage).map_or(0, |r| r.iter().map(f).sum())
    };
    let seconds = |records: &[RunRecord]| -> f64 {
        records.iter().map(|r| r.duration_ms).sum::<u64>() as f64 / 1000.0
    };

    // clean/: the committed files of the product, hard-linked (copied across file systems), in
    // their partition folders (`dt=YYYY-MM-DD/` with the mesh's `partition_names`).
    let t_layout = Instant::now();
    let log = commits(&ctx.storage, &bucket, &product.name).await?;
    let prefix = format!("products/{}/", product.name);
    let mut partitions = BTreeSet::new();
    for key in live_files(&log) {
        let rel = key.strip_prefix(&prefix).unwrap_or(&key);
        let (folder, file) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = out_dir.join("clean").join(folder);
        std::fs::create_dir_all(&dir)?;
        let value = folder.to_owned();
        let from = warehouse.join(&bucket).join(&key);
        let to = dir.join(file);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).with_context(|| format!("copying `{}`", from.display()))?;
        }
        partitions.insert(value);
    }

    // quarantine/: the rows clean quarantined, masked as the product is published, with their
    // reason in `reason`.
    let masker = Masker::new(&product, &mesh.pii_salt)?;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut writer: Option<ArrowWriter<File>> = None;
    let quarantine_path = out_dir.join("quarantine").join("part-0.parquet");
    for record in runs.get("clean").into_iter().flatten() {
        for key in record
            .outputs
            .iter()
            .filter(|k| k.starts_with("quarantine/"))
        {
            let mut stream = ctx.storage.read_parquet(&bucket, key).await?;
            while let Some(batch) = stream.next().await {
                let batch = masker.apply(&batch?)?;
                let batch = rename_reason(&batch)?;
                let reasons = batch
                    .column_by_name("reason")
                    .map(|c| c.as_string::<i32>().clone());
                if let Some(reasons) = reasons {
                    for r in reasons.iter().flatten() {
                        let code = r.split(':').next().unwrap_or(r);
                        *by_reason.entry(code.to_owned()).or_default() += 1;
                    }
                }
                if writer.is_none() {
                    writer = Some(ArrowWriter::try_new(
                        File::create(&quarantine_path)?,
                        batch.schema(),
                        Some(zstd()),
                    )?);
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&batch)?;
                }
            }
        }
    }
    match writer {
        Some(w) => {
            w.close()?;
        }
        None => {
            // No quarantined row: an empty file with the staged columns and `reason`.
            let (schema, _) = tessera_core::stages::staged_schema_for(&product)?;
            let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new(
                "reason",
                arrow::datatypes::DataType::Utf8,
                false,
            )));
            let w = ArrowWriter::try_new(
                File::create(&quarantine_path)?,
                Arc::new(Schema::new(fields)),
                Some(zstd()),
            )?;
            w.close()?;
        }
    }
    // Rows ingest quarantined (a row it could not read at all) count under their stage.
    let ingest_quarantined = sum("ingest", |r| r.quarantined);
    if ingest_quarantined > 0 {
        by_reason.insert("ingest".into(), ingest_quarantined);
    }

    // agg/daily_country.parquet: the aggregate's committed files, as one file.
    let agg_log = commits(&ctx.storage, &bucket, &agg_name).await?;
    let agg_path = out_dir.join("agg").join("daily_country.parquet");
    let mut agg_writer: Option<ArrowWriter<File>> = None;
    for key in live_files(&agg_log) {
        let mut stream = ctx.storage.read_parquet(&bucket, &key).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if agg_writer.is_none() {
                agg_writer = Some(ArrowWriter::try_new(
                    File::create(&agg_path)?,
                    batch.schema(),
                    Some(zstd()),
                )?);
            }
            if let Some(w) = agg_writer.as_mut() {
                w.write(&batch)?;
            }
        }
    }
    if let Some(w) = agg_writer {
        w.close()?;
    }
    let layout_seconds = t_layout.elapsed().as_secs_f64();

    let check = runs
        .get("contract-check")
        .and_then(|r| r.iter().max_by_key(|r| r.started_at));
    let contract_passed = check.is_some_and(|c| {
        c.status == RunStatus::Published && c.checks.failed == 0 && c.checks.passed > 0
    });
    let rows_in = sum("ingest", |r| r.rows_in);
    let superseded = sum("clean", |r| r.superseded);
    let duplicates = sum("clean", |r| r.dropped) - superseded;
    let quarantined: u64 = by_reason.values().sum();
    let rows_out = check.map_or(0, |c| {
        if c.status == RunStatus::Published {
            c.rows_in
        } else {
            0
        }
    });
    let mut stage_seconds = serde_json::Map::new();
    stage_seconds.insert("land".into(), json!(round4(t_land)));
    for (stage, records) in &runs {
        stage_seconds.insert(stage.replace('-', "_"), json!(round4(seconds(records))));
    }
    if let Some(v) = stage_seconds.get_mut("catalog_register") {
        *v = json!(round4(v.as_f64().unwrap_or(0.0) + seconds(&agg_register)));
    }
    stage_seconds.insert(
        "router_and_events".into(),
        json!(round4(
            t_chain
                - t_land
                - runs.values().map(|r| seconds(r)).sum::<f64>()
                - seconds(&agg_register)
        )),
    );
    stage_seconds.insert("layout".into(), json!(round4(layout_seconds)));
    let mut output = serde_json::Map::new();
    for sub in ["clean", "quarantine", "agg"] {
        let (bytes, files) = dir_size(&out_dir.join(sub));
        output.insert(sub.into(), json!({"bytes": bytes, "files": files}));
    }
    let balanced = duplicates + superseded + quarantined + rows_out == rows_in;
    let report = json!({
        "peer": "tessera",
        "input": name,
        "format": format.name(),
        "rows_in": rows_in,
        "exact_duplicates_dropped": duplicates,
        "superseded_versions_dropped": superseded,
        "quarantined": quarantined,
        "quarantine_by_reason": by_reason,
        "rows_out": rows_out,
        "partitions": partitions.len(),
        "checks": check.map(|c| json!({"passed": c.checks.passed, "failed": c.checks.failed})),
        "contract_passed": contract_passed,
        "stage_seconds": Value::Object(stage_seconds),
        "deliveries": deliveries,
        "output": Value::Object(output),
        "balanced": balanced,
        "total_seconds_in_process": round4(t0.elapsed().as_secs_f64()),
    });
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    Ok(report)
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn zstd() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

/// Clean's quarantine column `_reason` as `reason`, holding the reason's code (the text before
/// the first `:`; rules' reasons are codes already).
fn rename_reason(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if f.name() == "_reason" {
            let codes: arrow::array::StringArray = c
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|v| v.split(':').next().unwrap_or(v).to_owned()))
                .collect();
            fields.push(Arc::new(Field::new("reason", f.data_type().clone(), true)));
            columns.push(Arc::new(codes) as Arc<dyn Array>);
        } else {
            fields.push(Arc::clone(f));
            columns.push(Arc::clone(c));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn dir_size(path: &Path) -> (u64, u64) {
    let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
    let (mut bytes, mut files) = (0, 0);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = e.metadata() {
                bytes += m.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}
