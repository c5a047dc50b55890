//! `tessera contract test`: a contract's checks on data files, outside any pipeline.
//!
//! Each file goes through the same code as the pipeline: CSV and NDJSON are typed by ingest
//! (rows that cannot be typed are counted as a failed check with their line and reason), Parquet
//! is read as it is; then every check of the contract runs, `sql` rules included. Nothing is
//! masked or cleaned: the data is tested as given. The work happens in a scratch warehouse that
//! is removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tessera_contract::{CheckReport, CheckResult, CheckStatus, Checker};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::mesh::Mesh;
use crate::runs::RunStatus;
use crate::stages::check::Masker;

/// Bucket of the scratch warehouse.
const BUCKET: &str = "contract-test";
/// Product name in the scratch mesh.
const PRODUCT: &str = "tested";
/// Reasons kept per file for rows that could not be typed.
const REASONS_KEPT: usize = 20;

/// The formats a file can be tested in, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// `.csv`, `.tsv`, `.txt`.
    Csv,
    /// `.ndjson`, `.jsonl`, `.json` (one object per line).
    Ndjson,
    /// `.parquet`.
    Parquet,
}

impl DataFormat {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> Option<DataFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" | "tsv" | "txt" => DataFormat::Csv,
            "ndjson" | "jsonl" | "json" => DataFormat::Ndjson,
            "parquet" | "pq" => DataFormat::Parquet,
            _ => return None,
        })
    }
}

/// The result for one file.
#[derive(Debug, Clone, Serialize)]
pub struct TestedFile {
    /// The file.
    pub file: PathBuf,
    /// Its format.
    pub format: DataFormat,
    /// The checks, as contract-check reports them.
    pub report: CheckReport,
}

impl TestedFile {
    /// True when no check of severity `error` failed.
    pub fn passed(&self) -> bool {
        self.report.passed()
    }
}

/// The result of a contract test.
#[derive(Debug, Clone, Serialize)]
pub struct ContractTestReport {
    /// The contract file.
    pub contract: PathBuf,
    /// Contract id.
    pub contract_id: String,
    /// Contract version.
    pub contract_version: String,
    /// One entry per data file.
    pub files: Vec<TestedFile>,
}

impl ContractTestReport {
    /// True when every file passed.
    pub fn passed(&self) -> bool {
        self.files.iter().all(TestedFile::passed)
    }

    /// The report as JUnit XML: a test suite per file, a test case per check (failed checks
    /// fail, checks that did not run are skipped).
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let failures: usize = self.files.iter().map(|f| failed(&f.report.checks)).sum();
        let tests: usize = self.files.iter().map(|f| f.report.checks.len()).sum();
        out.push_str(&format!(
            "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n",
            xml(&format!("{} {}", self.contract_id, self.contract_version))
        ));
        for file in &self.files {
            let checks = &file.report.checks;
            let skipped = checks
                .iter()
                .filter(|c| c.status == CheckStatus::NotExecuted)
                .count();
            out.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{skipped}\">\n",
                xml(&file.file.display().to_string()),
                checks.len(),
                failed(checks)
            ));
            for c in checks {
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml(&file.report.object),
                    xml(&c.name)
                ));
                let detail = describe(c);
                match c.status {
                    CheckStatus::Passed => out.push_str("/>\n"),
                    CheckStatus::Failed => out.push_str(&format!(
                        ">\n      <failure type=\"{}\" message=\"{}\"/>\n    </testcase>\n",
                        xml(&c.severity),
                        xml(&detail)
                    )),
                    CheckStatus::NotExecuted => out.push_str(&format!(
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                        xml(&detail)
                    )),
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

fn failed(checks: &[CheckResult]) -> usize {
    checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .count()
}

/// `observed (expected ...): detail`.
pub fn describe(c: &CheckResult) -> String {
    let observed = c
        .observed
        .map(|o| format!("observed {o}"))
        .unwrap_or_else(|| "not measured".into());
    let mut text = format!("{observed} (expected {})", c.expectation);
    if let Some(d) = &c.detail {
        text.push_str(": ");
        text.push_str(d);
    }
    text
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Tests `files` against the contract at `contract` (its first schema object, or `object`).
pub async fn test_files(
    contract: &Path,
    object: Option<&str>,
    files: &[PathBuf],
) -> Result<ContractTestReport> {
    let scratch = tempfile::tempdir()?;
    let contract_abs = std::path::absolute(contract)?;
    let object_line = object
        .map(|o| format!("object = {}\n", toml_string(o)))
        .unwrap_or_default();
    let mut report = None;
    let mut tested = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let format = DataFormat::of(file).ok_or_else(|| {
            Error::Config(format!(
                "`{}`: unknown data format (use .csv, .ndjson/.jsonl/.json or .parquet)",
                file.display()
            ))
        })?;
        let source = match format {
            DataFormat::Csv => "csv",
            DataFormat::Ndjson | DataFormat::Parquet => "ndjson",
        };
        // One scratch mesh per file: the product reads this file's format.
        let root = scratch.path().join(format!("mesh-{i}"));
        std::fs::create_dir_all(&root)?;
        let toml = format!(
            "[mesh]\nname = \"contract-test\"\npii_salt = \"contract-test\"\n\n\
             [[domains]]\nname = \"test\"\nbucket = \"{BUCKET}\"\n\n\
             [[domains.products]]\nname = \"{PRODUCT}\"\ncontract = {}\n{object_line}\
             source = {{ format = \"{source}\" }}\n",
            toml_string(&contract_abs.to_string_lossy())
        );
        let mesh = Arc::new(Mesh::from_toml(&toml, "contract test", &root)?);
        let emb = Context::embedded(Arc::clone(&mesh), &scratch.path().join(format!("wh-{i}")))?;
        let ctx = &emb.context;
        let product = mesh
            .product("test", PRODUCT)
            .ok_or_else(|| Error::Internal("the scratch product is missing".into()))?;
        if report.is_none() {
            report = Some((
                product.contract.id.clone(),
                product.contract.version.clone(),
            ));
        }
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let bucket_dir = emb.warehouse.join(BUCKET);
        let mut refused: Option<CheckResult> = None;
        let typed_key = match format {
            DataFormat::Parquet => {
                let key = format!("staged/{PRODUCT}/{name}");
                copy(file, &bucket_dir.join(&key))?;
                key
            }
            DataFormat::Csv | DataFormat::Ndjson => {
                let key = format!("raw/{PRODUCT}/{name}");
                copy(file, &bucket_dir.join(&key))?;
                let run = crate::stages::ingest::run(ctx, BUCKET, &key, "contract-test").await;
                let run = match run {
                    Ok(run) => run,
                    Err(e) if e.kind() == crate::error::ErrorKind::BadData => {
                        tested.push(whole_file_refused(file, format, product, &e.to_string()));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let staged = run
                    .outputs
                    .iter()
                    .find(|k| k.starts_with("staged/"))
                    .cloned();
                let Some(staged) = staged.filter(|_| run.status != RunStatus::Quarantined) else {
                    let why = if run.quarantined > 0 {
                        format!(
                            "no row could be typed: {}",
                            quarantine_reasons(ctx, &run.outputs).await?
                        )
                    } else {
                        run.notes.join("; ")
                    };
                    tested.push(whole_file_refused(file, format, product, &why));
                    continue;
                };
                if run.quarantined > 0 {
                    let reasons = quarantine_reasons(ctx, &run.outputs).await?;
                    refused = Some(CheckResult {
                        name: "rows.typed".into(),
                        rule: "schema".into(),
                        property: None,
                        observed: Some(run.quarantined as f64),
                        expectation: "= 0".into(),
                        unit: "rows".into(),
                        severity: "error".into(),
                        status: CheckStatus::Failed,
                        detail: Some(reasons),
                    });
                }
                staged
            }
        };
        let mut checker = Checker::new(product.schema())?;
        let mut stream = match ctx.storage.read_parquet(BUCKET, &typed_key).await {
            Ok(stream) => stream,
            Err(e) if e.kind() == crate::error::ErrorKind::BadData => {
                tested.push(whole_file_refused(file, format, product, &e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let schema = Arc::clone(stream.schema());
        while let Some(batch) = stream.next().await {
            checker.update(&batch?);
        }
        let mut checks = checker.finish();
        crate::stages::sql_checks::run(
            &ctx.storage,
            BUCKET,
            &typed_key,
            schema,
            Arc::new(Masker::none()),
            product.schema(),
            &mut checks,
        )
        .await?;
        if let Some(r) = refused {
            checks.checks.insert(0, r);
        }
        tested.push(TestedFile {
            file: file.clone(),
            format,
            report: checks,
        });
    }
    let (contract_id, contract_version) = match report {
        Some(r) => r,
        None => {
            let text = std::fs::read_to_string(contract)?;
            let c = tessera_contract::lint(&text, &contract.display().to_string())?;
            (c.id, c.version)
        }
    };
    Ok(ContractTestReport {
        contract: contract.to_path_buf(),
        contract_id,
        contract_version,
        files: tested,
    })
}

fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(from, to)
        .map_err(|e| Error::Config(format!("cannot read `{}`: {e}", from.display())))?;
    Ok(())
}

/// The first reasons ingest gave for rows it could not type, `line N: reason`.
async fn quarantine_reasons(ctx: &Context, outputs: &[String]) -> Result<String> {
    let mut reasons = Vec::new();
    let mut total: usize = 0;
    for key in outputs.iter().filter(|k| k.starts_with("quarantine/")) {
        let text = ctx.storage.get(BUCKET, key).await?;
        for line in String::from_utf8_lossy(&text).lines() {
            total += 1;
            if reasons.len() < REASONS_KEPT {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let at = v["line"]
                    .as_u64()
                    .map(|l| format!("line {l}: "))
                    .unwrap_or_default();
                let why = v["reason"].as_str().unwrap_or(line);
                reasons.push(format!("{at}{why}"));
            }
        }
    }
    let more = total.saturating_sub(reasons.len());
    let mut text = reasons.join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    Ok(text)
}

fn whole_file_refused(
    file: &Path,
    format: DataFormat,
    product: &crate::mesh::Product,
    why: &str,
) -> TestedFile {
    TestedFile {
        file: file.to_path_buf(),
        format,
        report: CheckReport {
            object: product.schema().name.clone(),
            rows: 0,
            checks: vec![CheckResult {
                name: "file.readable".into(),
                rule: "schema".into(),
                property: None,
                observed: None,
                expectation: "a readable file".into(),
                unit: "rows".into(),
                severity: "error".into(),
                status: CheckStatus::Failed,
                detail: Some(why.to_owned()),
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: &str = "apiVersion: v3.1.0\nkind: DataContract\nid: urn:test:t\nversion: 1.2.0\n\
        status: active\nschema:\n  - name: t\n    quality:\n      - type: sql\n        name: has_rows\n\
        \x20       query: SELECT COUNT(*) FROM ${object}\n        mustBeGreaterThan: 0\n    properties:\n\
        \x20     - name: id\n        logicalType: string\n        required: true\n        unique: true\n\
        \x20     - name: amount\n        logicalType: number\n        logicalTypeOptions:\n          minimum: 0\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn good_files_pass_and_bad_ones_fail_with_their_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let contract = write(dir.path(), "t.odcs.yaml", CONTRACT);
        let good = write(dir.path(), "good.csv", "id,amount\na,1.5\nb,2\n");
        let bad = write(
            dir.path(),
            "bad.ndjson",
            "{\"id\":\"a\",\"amount\":1}\n{\"id\":\"a\",\"amount\":-3}\n{\"id\":\"c\",\"amount\":\"lots\"}\n",
        );
        let report = test_files(&contract, None, &[good.clone(), bad.clone()])
            .await
            .unwrap();
        assert_eq!(
            (
                report.contract_id.as_str(),
                report.contract_version.as_str()
            ),
            ("urn:test:t", "1.2.0")
        );
        assert!(report.files[0].passed(), "{:#?}", report.files[0]);
        let has_rows = report.files[0]
            .report
            .checks
            .iter()
            .find(|c| c.name == "has_rows")
            .unwrap();
        assert_eq!(
            (has_rows.status, has_rows.observed),
            (CheckStatus::Passed, Some(2.0))
        );
        assert!(!report.passed());
        let failed: Vec<&str> = report.files[1]
            .report
            .failed()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["rows.typed", "id.unique", "amount.minimum"]);
        let typed = &report.files[1].report.checks[0];
        assert!(
            typed.detail.as_deref().unwrap().starts_with("line 3: "),
            "{typed:?}"
        );
        let junit = report.junit();
        assert!(
            junit.contains("<testsuites name=\"urn:test:t 1.2.0\""),
            "{junit}"
        );
        assert!(junit.contains("failures=\"3\""), "{junit}");
        assert!(
            junit.contains("name=\"amount.minimum\">\n      <failure type=\"error\""),
            "{junit}"
        );

        // A file that is not what its extension says is refused whole, with the reason.
        let broken = write(dir.path(), "broken.parquet", "not parquet");
        let report = test_files(&contract, None, &[broken]).await.unwrap();
        let check = &report.files[0].report.checks[0];
        assert_eq!(
            (check.name.as_str(), check.status),
            ("file.readable", CheckStatus::Failed)
        );
        assert!(
            check
                .detail
                .as_deref()
                .unwrap()
                .contains("not a readable Parquet file"),
            "{check:?}"
        );
        let unknown = write(dir.path(), "data.xlsx", "");
        let err = test_files(&contract, None, &[unknown]).await.unwrap_err();
        assert!(err.to_string().contains("unknown data format"), "{err}");
    }
}
