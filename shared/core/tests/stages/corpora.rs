//! The public bad-input corpora (JSONTestSuite, csv-spectrum, parquet-testing, yaml-test-suite)
//! through Tessera's real readers: every file ends accepted, or refused / quarantined with a
//! reason; no reader panics and no invocation fails (see `docs/hostile-input.md`).
//!
//! The corpora are vendored under `tests/corpora/` (with their licenses, in its README);
//! `TESSERA_CORPORA` may name another copy. A missing corpus fails the test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use serde_json::Value;
use tessera_core::Context;
use tessera_core::context::Embedded;
use tessera_core::function::{Outcome, handle, stage};
use tessera_core::mesh::Mesh;
use tessera_core::runs::{RunRecord, RunStatus};
use tessera_core::typing::json::Json;

use crate::support::{BUCKET, object_created};

/// The corpora folder (always `Some`: a missing corpus fails the test).
pub fn corpora(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("TESSERA_CORPORA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpora"),
    };
    let dir = root.join(sub);
    assert!(
        dir.is_dir(),
        "corpus `{}` not found: TESSERA_CORPORA must name a folder holding JSONTestSuite/, \
         csv-spectrum/, parquet-testing/ and yaml-test-suite/ (tests/corpora has them)",
        dir.display()
    );
    Some(dir)
}

/// Files of a folder, sorted, with the given extension.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// Figures of one corpus run.
#[derive(Debug, Default)]
pub struct Tally {
    pub tried: usize,
    pub accepted: usize,
    pub refused: usize,
    pub panics: usize,
    /// What went wrong, one line per file (the test fails when there is any).
    pub failures: Vec<String>,
}

impl Tally {
    pub fn fail(&mut self, file: &str, what: impl std::fmt::Display) {
        self.failures.push(format!("{file}: {what}"));
    }

    /// Prints the figures and fails on any failure.
    #[track_caller]
    pub fn finish(self, corpus: &str) {
        println!(
            "corpus {corpus}: tried {}, accepted {}, refused {}, panics {}",
            self.tried, self.accepted, self.refused, self.panics
        );
        assert!(
            self.failures.is_empty() && self.panics == 0,
            "{corpus}: {} failures, {} panics:\n{}",
            self.failures.len(),
            self.panics,
            self.failures.join("\n")
        );
    }
}

/// A contract whose one object `name` has `columns` (name, logical type), none required.
pub fn contract(name: &str, columns: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: urn:test:{name}\nname: {name}\n\
         version: 1.0.0\nstatus: active\ndomain: shop\ndescription:\n  purpose: Corpus files.\n\
         team:\n  name: Shop team\n  members:\n    - username: owner@example.com\n      role: owner\n\
         schema:\n  - name: {name}\n    description: Corpus rows.\n    properties:\n"
    );
    for (column, logical) in columns {
        let quoted = serde_json::to_string(column).expect("column name as JSON");
        let _ = write!(
            text,
            "      - name: {quoted}\n        description: A column.\n        logicalType: {logical}\n"
        );
    }
    text
}

/// A mesh of products (name, recipe TOML inline table, contract text) with embedded ports, or
/// why it cannot be loaded.
pub fn mesh(
    dir: &Path,
    products: &[(String, String, String)],
) -> Result<Embedded, tessera_core::Error> {
    let root = dir.join("mesh");
    std::fs::create_dir_all(&root).expect("mesh directory");
    let mut toml = format!(
        "[mesh]\nname = \"test\"\npii_salt = \"pepper\"\n\n[[domains]]\nname = \"shop\"\n\
         description = \"The shop.\"\nbucket = \"{BUCKET}\"\ndatabase = \"shop_db\"\n"
    );
    for (name, source, contract) in products {
        std::fs::write(root.join(format!("{name}.odcs.yaml")), contract).expect("contract");
        let _ = write!(
            toml,
            "\n[[domains.products]]\nname = \"{name}\"\ncontract = \"{name}.odcs.yaml\"\n\
             source = {source}\n"
        );
    }
    let mesh = Mesh::from_toml(&toml, "test", &root)?;
    Context::embedded(Arc::new(mesh), &dir.join("warehouse"))
}

/// What became of one raw file.
#[derive(Debug)]
pub enum Fate {
    /// The run record of a file that was read (rows staged and/or quarantined, or none).
    Read(Box<RunRecord>, Vec<Value>),
    /// Refused whole: the reason, and the key of the `.error.json` report.
    Refused(String, String),
    /// The invocation failed (a defect: the reason).
    Failed(String),
    /// The reader panicked.
    Panicked(String),
}

/// Lands `data` at `key` and sends the `Object Created` event to the ingest handler.
pub async fn ingest(ctx: &Context, key: &str, data: Vec<u8>) -> Fate {
    let size = data.len() as u64;
    ctx.storage
        .put(BUCKET, key, data.into())
        .await
        .expect("put object");
    let event = object_created(key, size);
    let outcome = AssertUnwindSafe(handle::<stage::Ingest>(ctx, &event))
        .catch_unwind()
        .await;
    match outcome {
        Err(panic) => Fate::Panicked(panic_text(&*panic)),
        Ok(Err(e)) => Fate::Failed(e.to_string()),
        Ok(Ok(Outcome { mut runs, .. })) => {
            let Some(run) = runs.pop() else {
                return Fate::Failed("no run record".into());
            };
            match run.status {
                RunStatus::Quarantined => {
                    let report = run.outputs.first().cloned().unwrap_or_default();
                    let reason = run.notes.first().cloned().unwrap_or_default();
                    Fate::Refused(reason, report)
                }
                RunStatus::Succeeded | RunStatus::Skipped => {
                    let mut bad = Vec::new();
                    for out in run.outputs.iter().filter(|k| k.starts_with("quarantine/")) {
                        let text = ctx.storage.get(BUCKET, out).await.expect("quarantine");
                        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            bad.push(serde_json::from_slice(line).expect("quarantine line"));
                        }
                    }
                    Fate::Read(Box::new(run), bad)
                }
                other => Fate::Failed(format!("run status {other:?}")),
            }
        }
    }
}

/// The message of a panic payload.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}

/// Checks a refusal: a reason naming the file, and the report kept next to the raw file.
async fn check_refusal(ctx: &Context, tally: &mut Tally, name: &str, key: &str, fate: &Fate) {
    if let Fate::Refused(reason, report) = fate {
        if !reason.contains(&format!("`{BUCKET}/{key}`")) {
            tally.fail(
                name,
                format!("the refusal does not name the file: {reason}"),
            );
        }
        if !report.ends_with(".error.json") {
            tally.fail(name, format!("no .error.json report: {report}"));
        } else {
            let stored = ctx.storage.get(BUCKET, report).await;
            if stored.is_err() {
                tally.fail(name, format!("report {report} not written"));
            }
        }
        if ctx.storage.get(BUCKET, key).await.is_err() {
            tally.fail(name, "the refused raw file is gone");
        }
    }
}

/// Counts a fate; returns whether the file was refused whole.
fn count(tally: &mut Tally, name: &str, fate: &Fate) {
    tally.tried += 1;
    match fate {
        Fate::Read(..) => tally.accepted += 1,
        Fate::Refused(reason, _) => {
            tally.refused += 1;
            if reason.is_empty() {
                tally.fail(name, "refused without a reason");
            }
        }
        Fate::Failed(e) => tally.fail(name, format!("invocation failed: {e}")),
        Fate::Panicked(p) => {
            tally.panics += 1;
            tally.fail(name, format!("panicked: {p}"));
        }
    }
}

/// The JSONTestSuite expectation of a file: `Some(true)` must parse, `Some(false)` must not.
fn json_expectation(name: &str) -> Option<bool> {
    match name.as_bytes().first() {
        Some(b'y') => Some(true),
        Some(b'n') => Some(false),
        _ => None,
    }
}

#[tokio::test]
async fn json_test_suite_through_the_json_reader_and_ingest() {
    let Some(dir) = corpora("JSONTestSuite/test_parsing") else {
        return;
    };
    let cases = files(&dir, "json");
    assert!(cases.len() > 300, "{} cases", cases.len());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let columns = [("a", "string")];
    let products = [
        (
            "lines".to_owned(),
            "{ format = \"ndjson\" }".to_owned(),
            contract("lines", &columns),
        ),
        (
            "docs".to_owned(),
            "{ format = \"json\" }".to_owned(),
            contract("docs", &columns),
        ),
    ];
    let emb = mesh(tmp.path(), &products).expect("mesh loads");
    let ctx = &emb.context;
    let mut reader = Tally::default();
    let mut ndjson = Tally::default();
    let mut array = Tally::default();
    for (i, path) in cases.iter().enumerate() {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let bytes = std::fs::read(path).expect("read case");
        let expected = json_expectation(&name);

        // 1. The JSON reader every NDJSON line and nested JSON value goes through.
        reader.tried += 1;
        match std::panic::catch_unwind(|| Json::parse(&bytes).map(|_| ())) {
            Err(p) => {
                reader.panics += 1;
                reader.fail(&name, format!("panicked: {}", panic_text(&*p)));
            }
            Ok(Ok(())) => {
                reader.accepted += 1;
                if expected == Some(false) {
                    reader.fail(&name, "an n_ case was accepted");
                }
            }
            Ok(Err(e)) => {
                reader.refused += 1;
                if expected == Some(true) {
                    reader.fail(&name, format!("a y_ case was refused: {e}"));
                }
                if e.line() == 0 {
                    reader.fail(&name, format!("refusal without a position: {e}"));
                }
            }
        }

        // 2. The file as NDJSON through the ingest handler.
        let one_line = !bytes.trim_ascii().contains(&b'\n');
        let key = format!("raw/lines/{i:03}.ndjson");
        let fate = ingest(ctx, &key, bytes.clone()).await;
        count(&mut ndjson, &name, &fate);
        check_refusal(ctx, &mut ndjson, &name, &key, &fate).await;
        if let Fate::Read(run, bad) = &fate {
            let malformed = bad.iter().find(|b| {
                b["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("malformed JSON"))
            });
            for b in bad {
                if b["line"].as_u64().is_none() || !b["reason"].is_string() {
                    ndjson.fail(&name, format!("quarantined without line or reason: {b}"));
                }
            }
            if one_line && expected == Some(true) && malformed.is_some() {
                ndjson.fail(&name, format!("a y_ line was quarantined: {bad:?}"));
            }
            if one_line && expected == Some(false) && run.rows_out > 0 {
                ndjson.fail(&name, format!("an n_ line was staged: {run:?}"));
            }
        }

        // 3. The whole file as a JSON array through the ingest handler (anything but an
        // array is refused whole).
        let key = format!("raw/docs/{i:03}.json");
        let fate = ingest(ctx, &key, bytes.clone()).await;
        count(&mut array, &name, &fate);
        check_refusal(ctx, &mut array, &name, &key, &fate).await;
        let is_array = bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&bytes)
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            == Some(&b'[');
        match (&fate, expected) {
            (Fate::Read(run, _), Some(false)) if run.rows_out > 0 => {
                array.fail(&name, format!("an n_ document was staged: {run:?}"));
            }
            (Fate::Refused(reason, _), Some(true)) if is_array => {
                array.fail(&name, format!("a y_ array was refused: {reason}"));
            }
            _ => {}
        }
    }
    reader.finish("JSONTestSuite (typing::json reader)");
    ndjson.finish("JSONTestSuite (ingest, format = ndjson)");
    array.finish("JSONTestSuite (ingest, format = json)");
}

/// The record of csv-spectrum's expected JSON: field → text (an empty text is null once read).
fn expected_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read(path).expect("expected JSON");
    serde_json::from_slice(&text).expect("expected rows")
}

#[tokio::test]
async fn csv_spectrum_reads_as_its_expected_records() {
    let Some(dir) = corpora("csv-spectrum") else {
        return;
    };
    let cases = files(&dir.join("csvs"), "csv");
    assert!(cases.len() >= 10, "{} cases", cases.len());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut products = Vec::new();
    let mut expected = Vec::new();
    for (i, path) in cases.iter().enumerate() {
        let stem = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        let rows = expected_rows(&dir.join("json").join(format!("{stem}.json")));
        let text = std::fs::read(path).expect("case");
        let header = text.split(|b| *b == b'\n').next().expect("header line");
        let header: Vec<String> = String::from_utf8_lossy(header.trim_ascii())
            .split(',')
            .map(str::to_owned)
            .collect();
        let columns: Vec<(&str, &str)> = header.iter().map(|h| (h.as_str(), "string")).collect();
        let product = format!("spectrum_{i}");
        products.push((
            product.clone(),
            "{ format = \"csv\" }".to_owned(),
            contract(&product, &columns),
        ));
        expected.push((stem, product, header, text, rows));
    }
    let emb = mesh(tmp.path(), &products).expect("mesh loads");
    let ctx = &emb.context;
    let mut tally = Tally::default();
    for (stem, product, header, text, rows) in expected {
        let key = format!("raw/{product}/{stem}.csv");
        let fate = ingest(ctx, &key, text).await;
        count(&mut tally, &stem, &fate);
        check_refusal(ctx, &mut tally, &stem, &key, &fate).await;
        let Fate::Read(run, bad) = &fate else {
            tally.fail(&stem, format!("not read: {fate:?}"));
            continue;
        };
        if !bad.is_empty() {
            tally.fail(&stem, format!("rows quarantined: {bad:?}"));
        }
        let mut got: Vec<BTreeMap<String, String>> = Vec::new();
        if let Some(staged) = run.outputs.iter().find(|k| k.starts_with("staged/")) {
            let batches = crate::support::read_batches(ctx, staged).await;
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    let mut map = BTreeMap::new();
                    for (c, name) in header.iter().enumerate() {
                        let column = batch.column(c);
                        let value = arrow::util::display::array_value_to_string(column, row)
                            .expect("display");
                        map.insert(name.clone(), value);
                    }
                    got.push(map);
                }
            }
        }
        if got != rows {
            tally.fail(&stem, format!("read {got:?}, expected {rows:?}"));
        }
    }
    tally.finish("csv-spectrum (ingest, format = csv)");
}

/// The column a Parquet file's contract declares: its first top-level column that can be cast
/// to text (every column is decoded anyway: undeclared ones are drift), or `x` when the footer
/// cannot be read (ingest refuses the file before any column matters).
fn parquet_column(bytes: &[u8]) -> String {
    use arrow::compute::kernels::cast::can_cast_types;
    use arrow::datatypes::DataType;
    let schema = std::panic::catch_unwind(|| {
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::copy_from_slice(bytes))
            .ok()?;
        let file = meta.file_metadata();
        parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).ok()
    });
    let Ok(Some(schema)) = schema else {
        return "x".into();
    };
    schema
        .fields()
        .iter()
        .find(|f| can_cast_types(f.data_type(), &DataType::Utf8))
        .or_else(|| schema.fields().first())
        .map_or_else(|| "x".into(), |f| f.name().clone())
}

#[tokio::test]
async fn parquet_testing_files_are_read_or_refused_never_a_crash() {
    let Some(dir) = corpora("parquet-testing") else {
        return;
    };
    let mut tallies = Vec::new();
    for (folder, minimum) in [("bad_data", 5), ("data", 50)] {
        let cases = parquet_files(&dir.join(folder));
        assert!(cases.len() >= minimum, "{folder}: {} cases", cases.len());
        // One product per file, whose contract declares one of the file's columns (one mesh:
        // loading a mesh per file would take most of the test's time).
        let mut products = Vec::new();
        let mut inputs = Vec::new();
        for (i, path) in cases.iter().enumerate() {
            let name = path
                .strip_prefix(dir.join(folder))
                .expect("below the corpus")
                .display()
                .to_string();
            let bytes = std::fs::read(path).expect("read case");
            let column = parquet_column(&bytes);
            let product = format!("pq_{i}");
            products.push((
                product.clone(),
                "{ format = \"parquet\" }".to_owned(),
                contract(&product, &[(column.as_str(), "string")]),
            ));
            inputs.push((name, product, column, bytes));
        }
        let tmp = tempfile::tempdir().expect("temporary directory");
        let emb = mesh(tmp.path(), &products).expect("mesh loads");
        let ctx = &emb.context;
        let mut tally = Tally::default();
        let mut reasons = BTreeMap::<String, usize>::new();
        let mut decoded = Tally::default();
        for (name, product, column, bytes) in inputs {
            let key = format!("raw/{product}/file.parquet");
            let key = key.as_str();
            let fate = ingest(ctx, key, bytes).await;
            count(&mut tally, &name, &fate);
            check_refusal(ctx, &mut tally, &name, key, &fate).await;
            let summary = match &fate {
                Fate::Read(run, bad) => format!(
                    "read: {} rows staged, {} quarantined{}",
                    run.rows_out,
                    bad.len(),
                    bad.first()
                        .map(|b| format!(" (first: {})", b["reason"]))
                        .unwrap_or_default()
                ),
                Fate::Refused(reason, _) => {
                    let short = reason.split(": ").nth(1).unwrap_or(reason).to_owned();
                    *reasons.entry(short).or_default() += 1;
                    format!("refused: {reason}")
                }
                other => format!("{other:?}"),
            };
            println!("{folder}/{name} [{column}]: {summary}");

            // Every column decoded, whatever the contract: the reader clean and
            // contract-check use, and the one raw Parquet goes through.
            // A file ingest refused as a decompression bomb is not decoded (that is the point).
            if matches!(&fate, Fate::Refused(r, _) if r.contains("decompression bomb")) {
                continue;
            }
            decoded.tried += 1;
            let read = AssertUnwindSafe(async {
                use futures::TryStreamExt;
                let stream = ctx.storage.read_parquet(BUCKET, key).await?;
                let batches: Vec<_> = stream.try_collect().await?;
                Ok::<usize, tessera_core::Error>(batches.iter().map(|b| b.num_rows()).sum())
            })
            .catch_unwind()
            .await;
            match read {
                Ok(Ok(_)) => decoded.accepted += 1,
                Ok(Err(e)) if e.kind() == tessera_core::ErrorKind::BadData => decoded.refused += 1,
                // A corrupt page is a Parquet error here (ingest makes it bad input).
                Ok(Err(tessera_core::Error::Parquet(e))) => {
                    decoded.refused += 1;
                    println!("{folder}/{name}: decoding: {e}");
                }
                Ok(Err(e)) => decoded.fail(&name, format!("decoding failed: {e}")),
                Err(p) => {
                    decoded.panics += 1;
                    decoded.fail(&name, format!("decoding panicked: {}", panic_text(&*p)));
                }
            }
        }
        println!("{folder}: refusals by reason: {reasons:#?}");
        tallies.push((format!("{folder} (ingest, format = parquet)"), tally));
        tallies.push((
            format!("{folder} (Storage::read_parquet, every column)"),
            decoded,
        ));
    }
    for (folder, tally) in tallies {
        tally.finish(&format!("parquet-testing/{folder}"));
    }
}

/// The Parquet files below a folder (encrypted ones included), sorted.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") || name.ends_with(".parquet.encrypted") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The `in.yaml` files of the YAML test suite, with whether the case must be refused.
fn yaml_cases(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "in.yaml") {
                out.push((path.clone(), d.join("error").exists()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn yaml_test_suite_through_the_contract_loader() {
    let Some(dir) = corpora("yaml-test-suite") else {
        return;
    };
    let cases = yaml_cases(&dir);
    assert!(cases.len() > 300, "{} cases", cases.len());
    let mut tally = Tally::default();
    let (mut errors, mut errors_by_parser, mut located) = (0, 0, 0);
    for (path, must_fail) in &cases {
        let name = path
            .strip_prefix(&dir)
            .expect("below the corpus")
            .display()
            .to_string();
        let bytes = std::fs::read(path).expect("read case");
        tally.tried += 1;
        // The mesh reads contracts as UTF-8 text: anything else is refused there.
        let Ok(text) = String::from_utf8(bytes) else {
            tally.refused += 1;
            continue;
        };
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(|| {
            tessera_contract::Contract::from_yaml(&text, "in.yaml").map(|_| ())
        });
        if started.elapsed() > std::time::Duration::from_secs(2) {
            tally.fail(&name, format!("took {:?}", started.elapsed()));
        }
        match result {
            Err(p) => {
                tally.panics += 1;
                tally.fail(&name, format!("panicked: {}", panic_text(&*p)));
            }
            Ok(Ok(())) => {
                tally.accepted += 1;
                if *must_fail {
                    tally.fail(&name, "an error case was accepted as a contract");
                }
            }
            Ok(Err(e)) => {
                tally.refused += 1;
                let first = &e.problems[0];
                if first.message.is_empty() {
                    tally.fail(&name, "refused without a reason");
                }
                let yaml = first.message.starts_with("invalid YAML");
                if yaml && first.line.is_some() && first.column.is_some() {
                    located += 1;
                }
                if *must_fail {
                    errors += 1;
                    if yaml {
                        errors_by_parser += 1;
                    } else {
                        println!("{name}: invalid YAML the parser took, refused as: {e}");
                    }
                }
            }
        }
    }
    println!(
        "yaml-test-suite: {errors} error cases refused, {errors_by_parser} of them as invalid \
         YAML (the others as not a contract); {located} YAML refusals with line:column"
    );
    tally.finish("yaml-test-suite (tessera_contract::Contract::from_yaml)");
}
