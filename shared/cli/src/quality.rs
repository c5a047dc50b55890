//! `tessera contract test` and `tessera sla check`: a contract's checks on data files, and the
//! products' service levels from their records.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use std::io::Write as _;
use tessera_contract::CheckStatus;
use tessera_core::Context;
use tessera_core::contract_test::{self, ContractTestReport, DataFormat};
use tessera_core::sla::{self, SlaReport, SlaStatus};

/// Report formats of `tessera contract test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned tables.
    Text,
    /// One JSON document.
    Json,
    /// JUnit XML, for CI systems.
    Junit,
}

/// The data files to test: files as given, the data files of a directory (sorted), or the objects
/// under an `s3://bucket/prefix` of the environment's storage, downloaded into `scratch`.
pub async fn data_files(
    data: &[String],
    ctx: Option<&Context>,
    scratch: &Path,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for item in data {
        if let Some(rest) = item.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let ctx = ctx.context("an s3:// prefix needs the mesh's environment")?;
            let mut found = 0;
            for meta in ctx.storage.list(bucket, prefix).await? {
                let key = meta.location.to_string();
                let path = PathBuf::from(&key);
                // Data files only: folders named `_...` or `.…` hold metadata (a product's
                // commit log and reports), as in Hive and Spark layouts.
                let hidden = key
                    .strip_prefix(prefix)
                    .unwrap_or(&key)
                    .split('/')
                    .any(|s| s.starts_with('_') || s.starts_with('.'));
                if hidden || DataFormat::of(&path).is_none() {
                    continue;
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Streamed to a scratch file: memory does not follow the object's size.
                let local = scratch.join(format!("{}-{name}", files.len()));
                let mut out = std::io::BufWriter::new(std::fs::File::create(&local)?);
                let mut stream = ctx.storage.get_stream(bucket, &key).await?;
                while let Some(chunk) = stream.next().await {
                    out.write_all(&chunk?)?;
                }
                out.flush()?;
                files.push(local);
                found += 1;
            }
            if found == 0 {
                bail!("no .csv, .ndjson or .parquet object under `{item}`");
            }
        } else {
            let path = PathBuf::from(item);
            if path.is_dir() {
                let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
                    .with_context(|| format!("reading `{}`", path.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && DataFormat::of(p).is_some())
                    .collect();
                inside.sort();
                if inside.is_empty() {
                    bail!("no .csv, .ndjson or .parquet file in `{}`", path.display());
                }
                files.extend(inside);
            } else if path.is_file() {
                files.push(path);
            } else {
                bail!(
                    "`{}` is neither a file, a folder nor an s3:// prefix",
                    path.display()
                );
            }
        }
    }
    Ok(files)
}

/// `tessera contract test`.
pub async fn contract_test(
    contract: &Path,
    object: Option<&str>,
    files: &[PathBuf],
) -> Result<ContractTestReport> {
    Ok(contract_test::test_files(contract, object, files).await?)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.to_vec());
    t
}

/// The text report of `tessera contract test`: a table per file, then the verdict.
pub fn contract_test_text(report: &ContractTestReport) -> String {
    let mut out = format!(
        "contract {} {} ({})\n",
        report.contract_id,
        report.contract_version,
        report.contract.display()
    );
    for file in &report.files {
        let mut t = table(&["check", "status", "severity", "result"]);
        for c in &file.report.checks {
            let status = match c.status {
                CheckStatus::Passed => "passed",
                CheckStatus::Failed => "FAILED",
                CheckStatus::NotExecuted => "not executed",
            };
            t.add_row(vec![
                Cell::new(&c.name),
                Cell::new(status),
                Cell::new(&c.severity),
                Cell::new(contract_test::describe(c)),
            ]);
        }
        let (passed, failed) = file.report.counts();
        out.push_str(&format!(
            "\n{} ({} rows): {}\n{t}\n{passed} passed, {failed} failed\n",
            file.file.display(),
            file.report.rows,
            if file.passed() { "PASSED" } else { "FAILED" }
        ));
    }
    let failed = report.files.iter().filter(|f| !f.passed()).count();
    out.push_str(&format!(
        "\n{} of {} files passed\n",
        report.files.len() - failed,
        report.files.len()
    ));
    out
}

/// `tessera sla check`: every product's service levels at `at`; with `emit`, each breach is
/// announced on the environment's bus as `SlaBreached`.
pub async fn sla_check(ctx: &Context, at: DateTime<Utc>, emit: bool) -> Result<Vec<SlaReport>> {
    Ok(if emit {
        sla::announce(ctx, None, at).await?
    } else {
        sla::evaluate_all(ctx, at).await?
    })
}

/// The table `tessera sla check` prints.
pub fn sla_text(reports: &[SlaReport]) -> String {
    let mut t = table(&[
        "product",
        "service level",
        "expectation",
        "observed",
        "status",
        "why",
    ]);
    for r in reports {
        if r.checks.is_empty() {
            t.add_row(vec![
                Cell::new(format!("{}.{}", r.domain, r.product)),
                Cell::new("-"),
                Cell::new("no slaProperties in the contract"),
                Cell::new(""),
                Cell::new(""),
                Cell::new(""),
            ]);
        }
        for c in &r.checks {
            let status = match c.status {
                SlaStatus::Met => "met",
                SlaStatus::Breached => "BREACHED",
                SlaStatus::NotEvaluated => "not evaluated",
            };
            t.add_row(vec![
                Cell::new(format!("{}.{}", r.domain, r.product)),
                Cell::new(&c.property),
                Cell::new(&c.expectation),
                Cell::new(c.observed.as_deref().unwrap_or("")),
                Cell::new(status),
                Cell::new(c.detail.as_deref().unwrap_or("")),
            ]);
        }
    }
    let breached: usize = reports.iter().map(|r| r.breached().count()).sum();
    format!("{t}\n{breached} service levels breached\n")
}
