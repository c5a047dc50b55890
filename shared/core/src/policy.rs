//! The organisation's policy applied to the products of a mesh.
//!
//! The mesh file names the policy (`policy = "policy.yaml"` under `[mesh]`); without one, no
//! organisation rule applies. When the mesh loads, each product gets:
//!
//! * its **protection**: the recipe's masks, raised to what the policy requires for each column's
//!   classification (a column classified `pii` is masked even if the recipe forgot it), and the
//!   columns the policy drops, removed from the product;
//! * its **static violations** ([`PolicyViolation`]): the contract rules of
//!   [`Policy::check`](tessera_contract::policy::Policy::check) located in the contract file, and
//!   the product rules located in the mesh file (a recipe mask weaker than the policy requires,
//!   an input or output format the policy does not allow).
//!
//! [`check_mesh`] adds what only data can tell: the detectors run over the sample raw files of
//! each product, and a column whose values look like personal data must carry a personal-data
//! classification (`pii.unclassified`). contract-check runs the same detectors on the data it is
//! about to publish (see [`crate::stages::policy`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tessera_contract::SchemaObject;
use tessera_contract::policy::{
    Action, Detector, OUTPUT_FORMAT, Policy, Rule, SourceMap, ValueScan, Violation,
};

use crate::error::{Error, Result};
use crate::mesh::{MaskMethod, Mesh, Product, ProductKind, SourceFormat};

/// A policy violation of one product, with the file it is found in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyViolation {
    /// `<domain>.<product>`.
    pub product: String,
    /// The file to fix: the contract, or the mesh file for recipe rules.
    pub file: String,
    /// The rule, column, place and message.
    #[serde(flatten)]
    pub violation: Violation,
}

impl PolicyViolation {
    /// `file:line:column: policy `rule`: message`.
    pub fn located(&self) -> String {
        self.violation.located(&self.file)
    }
}

/// What the mesh does to a product's columns before publishing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Protection {
    /// Masks by column.
    pub mask: BTreeMap<String, MaskMethod>,
    /// Columns removed from the product.
    pub dropped: Vec<String>,
    /// Recipe masks weaker than the policy requires (the policy's mask applies instead).
    pub weaker: Vec<(String, Violation)>,
}

fn action_of(method: MaskMethod) -> Action {
    match method {
        MaskMethod::Hash => Action::Hash,
        MaskMethod::Redact => Action::Redact,
        MaskMethod::Null => Action::Null,
        // Unsalted: a pseudonym, not the protection a policy's `hash` stands for.
        MaskMethod::Sha256 => Action::None,
    }
}

/// The mask that carries out `action` on a column (`None` for no mask, and for `drop`, which is
/// not a mask). A column that is not text cannot be hashed or redacted: it is nulled, which
/// protects it more.
fn mask_for(action: Action, is_text: bool) -> Option<MaskMethod> {
    match action {
        Action::None | Action::Drop => None,
        Action::Hash if is_text => Some(MaskMethod::Hash),
        Action::Redact if is_text => Some(MaskMethod::Redact),
        Action::Hash | Action::Redact | Action::Null => Some(MaskMethod::Null),
    }
}

/// What the policy requires for a classification. Without a policy, or when the policy does not
/// list it, `pii` is hashed.
fn required(policy: Option<&Policy>, classification: Option<&str>) -> Action {
    let default = if classification.is_some_and(|c| c.trim().eq_ignore_ascii_case("pii")) {
        Action::Hash
    } else {
        Action::None
    };
    policy
        .and_then(|p| p.action(classification))
        .unwrap_or(default)
}

/// The recipe's masks, raised to what each column's classification requires; see the module
/// documentation. `index` is the object's place in its contract (for pointers).
pub(crate) fn protection(
    policy: Option<&Policy>,
    schema: &SchemaObject,
    index: usize,
    recipe: &BTreeMap<String, MaskMethod>,
) -> Protection {
    let mut out = Protection {
        mask: recipe.clone(),
        ..Protection::default()
    };
    for (j, p) in schema.properties.iter().enumerate() {
        let action = required(policy, p.classification.as_deref());
        if action == Action::Drop {
            out.mask.remove(&p.name);
            out.dropped.push(p.name.clone());
            continue;
        }
        let is_text = p
            .data_type()
            .is_ok_and(|t| t == arrow::datatypes::DataType::Utf8);
        let Some(needed) = mask_for(action, is_text) else {
            continue;
        };
        match recipe.get(&p.name) {
            None => {
                out.mask.insert(p.name.clone(), needed);
            }
            // Without a policy, the default hash of `pii` accepts a recipe's explicit choice of
            // the unsalted pseudonym (`sha256`); a policy's `hash` requires the salted one.
            Some(MaskMethod::Sha256) if policy.is_none() && action == Action::Hash => {}
            Some(written) if action_of(*written) < action => {
                let classification = p.classification.as_deref().unwrap_or_default();
                out.weaker.push((
                    p.name.clone(),
                    Violation::new(
                        Rule::MaskWeaker,
                        format!("/schema/{index}/properties/{j}/classification"),
                        format!(
                            "column `{}` is masked with `{}`, weaker than the `{action}` the policy requires for `{classification}`: `{}` is applied",
                            p.name,
                            action_of(*written),
                            action_of(needed)
                        ),
                    )
                    .on(&p.name),
                ));
                out.mask.insert(p.name.clone(), needed);
            }
            Some(_) => {}
        }
    }
    out
}

/// Where a product's recipe is in the mesh file, for locating recipe rules.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RecipeLines {
    /// Line and column of the product's `name`.
    pub product: Option<(usize, usize)>,
    /// Line and column of its `mask`.
    pub mask: Option<(usize, usize)>,
    /// Line and column of its `source`.
    pub source: Option<(usize, usize)>,
}

/// What [`static_violations`] looks at.
pub(crate) struct Subject<'a> {
    pub policy: &'a Policy,
    pub domain: &'a str,
    pub product: &'a str,
    pub contract: &'a tessera_contract::Contract,
    pub map: &'a SourceMap,
    pub object: &'a str,
    pub contract_file: &'a Path,
    pub mesh_file: &'a str,
    pub lines: RecipeLines,
    pub source: Option<SourceFormat>,
    pub weaker: &'a [(String, Violation)],
}

/// Every rule that can be checked without data, for one product.
pub(crate) fn static_violations(s: &Subject<'_>) -> Vec<PolicyViolation> {
    let product = format!("{}.{}", s.domain, s.product);
    let contract_file = s.contract_file.display().to_string();
    let mut out: Vec<PolicyViolation> = s
        .policy
        .check(s.contract, s.object, s.product)
        .into_iter()
        .map(|mut v| {
            v.locate(s.map);
            PolicyViolation {
                product: product.clone(),
                file: contract_file.clone(),
                violation: v,
            }
        })
        .collect();
    let in_mesh = |mut v: Violation, at: Option<(usize, usize)>| {
        (v.line, v.column) = at.map_or((None, None), |(l, c)| (Some(l), Some(c)));
        v.pointer = String::new();
        PolicyViolation {
            product: product.clone(),
            file: s.mesh_file.to_owned(),
            violation: v,
        }
    };
    if !s.policy.allows_output(OUTPUT_FORMAT) {
        out.push(in_mesh(
            Violation::new(
                Rule::FormatOutput,
                "",
                format!(
                    "products are published as `{OUTPUT_FORMAT}`, which the policy does not allow (allowed: {})",
                    s.policy.formats.output.join(", ")
                ),
            ),
            s.lines.product,
        ));
    }
    if let Some(format) = s.source {
        let name = format_name(format);
        if !s.policy.allows_input(name) {
            out.push(in_mesh(
                Violation::new(
                    Rule::FormatInput,
                    "",
                    format!(
                        "raw files are read as `{name}`, which the policy does not allow (allowed: {})",
                        s.policy.formats.input.join(", ")
                    ),
                ),
                s.lines.source.or(s.lines.product),
            ));
        }
    }
    for (_, v) in s.weaker {
        out.push(in_mesh(v.clone(), s.lines.mask.or(s.lines.product)));
    }
    out
}

fn format_name(format: SourceFormat) -> &'static str {
    format.name()
}

/// Line and column (1-based) of a byte offset of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A column whose sample values a detector matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `<domain>.<product>`.
    pub product: String,
    /// The column.
    pub column: String,
    /// What the values look like.
    pub detector: Detector,
    /// Values matched.
    pub matches: u64,
    /// Non-empty values looked at.
    pub values: u64,
    /// The column's classification in the contract.
    pub classification: Option<String>,
    /// The classification the policy proposes.
    pub proposed: String,
    /// What is done to the values before publishing (`hash`, `redact`, `null`, `none`).
    pub handling: String,
}

/// What `tessera policy check` found.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// The policy file, when the mesh names one.
    pub policy: Option<PathBuf>,
    /// Products checked.
    pub products: usize,
    /// Every violation, product by product.
    pub violations: Vec<PolicyViolation>,
    /// What the detectors found in the sample raw files.
    pub findings: Vec<Finding>,
}

/// Checks every product of the mesh against its policy: the static violations found at load,
/// and the detectors over each source product's sample raw files.
pub fn check_mesh(mesh: &Mesh) -> Result<PolicyReport> {
    let Some(policy) = &mesh.policy else {
        return Ok(PolicyReport {
            policy: None,
            products: 0,
            violations: Vec::new(),
            findings: Vec::new(),
        });
    };
    let mut violations = Vec::new();
    let mut findings = Vec::new();
    let mut products = 0;
    for (domain, product) in mesh.products() {
        products += 1;
        violations.extend(product.violations.iter().cloned());
        let ProductKind::Source { source, .. } = &product.kind else {
            continue;
        };
        let files = sample_files(&mesh.root, &source.samples)?;
        let scans = scan_samples(policy, product, source, &files)?;
        let name = format!("{}.{}", domain.name, product.name);
        let object = product.schema();
        for (column, scan) in scans {
            let Some(found) = scan.finding(&policy.detectors(), policy.pii.threshold) else {
                continue;
            };
            let Some(property) = object.property(&column) else {
                continue;
            };
            let proposed = policy
                .proposal(found.detector)
                .unwrap_or_default()
                .to_owned();
            let handling = product
                .mask
                .get(&column)
                .map_or(Action::None, |m| action_of(*m));
            findings.push(Finding {
                product: name.clone(),
                column: column.clone(),
                detector: found.detector,
                matches: found.matches,
                values: found.values,
                classification: property.classification.clone(),
                proposed: proposed.clone(),
                handling: handling.to_string(),
            });
            if policy.is_personal(property.classification.as_deref()) {
                continue;
            }
            let masked = if handling == Action::None {
                String::new()
            } else {
                format!(
                    " (the recipe masks it with `{handling}`, but the catalog would not know it is personal data)"
                )
            };
            let mut v = Violation::new(
                Rule::PiiUnclassified,
                property_pointer(&product.contract, &product.object, &column),
                format!(
                    "column `{column}`: {} of {} sample values look like {}{masked}: classify it `{proposed}`",
                    found.matches,
                    found.values,
                    found.detector.describe()
                ),
            )
            .on(&column);
            v.locate(&product.source_map);
            violations.push(PolicyViolation {
                product: name.clone(),
                file: product.contract_path.display().to_string(),
                violation: v,
            });
        }
    }
    Ok(PolicyReport {
        policy: mesh.policy_path.clone(),
        products,
        violations,
        findings,
    })
}

/// JSON pointer of a top-level property of the product's object in its contract.
fn property_pointer(contract: &tessera_contract::Contract, object: &str, column: &str) -> String {
    contract
        .schema
        .iter()
        .position(|o| o.name == object)
        .and_then(|i| {
            contract.schema[i]
                .properties
                .iter()
                .position(|p| p.name == column)
                .map(|j| format!("/schema/{i}/properties/{j}"))
        })
        .unwrap_or_default()
}

/// The sample files of a product: files as named, folders by their files in name order.
pub fn sample_files(root: &Path, samples: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for s in samples {
        let path = root.join(s);
        if path.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| Error::Config(format!("cannot read `{}`: {e}", path.display())))?
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

/// Detector counts over the sample files for every column of the product (dropped ones are no
/// longer in it), at most `pii.sample_values` values per column. Values are read as text the way
/// ingest finds columns: CSV fields by header name (exact, else without case), NDJSON members by
/// key (strings and numbers).
fn scan_samples(
    policy: &Policy,
    product: &Product,
    source: &crate::mesh::SourceConfig,
    files: &[PathBuf],
) -> Result<BTreeMap<String, ValueScan>> {
    let object = product.schema();
    let columns: Vec<&str> = object.properties.iter().map(|p| p.name.as_str()).collect();
    let mut scans: BTreeMap<String, ValueScan> = BTreeMap::new();
    let limit = policy.pii.sample_values;
    let mut add = |column: &str, value: &str| {
        let scan = scans.entry(column.to_owned()).or_default();
        if scan.values() < limit {
            scan.add(value);
        }
    };
    for file in files {
        if source.format == SourceFormat::Parquet {
            // Parquet samples are not scanned yet: only text formats are.
            continue;
        }
        let bytes = match crate::stages::ingest::read_sample(file, source) {
            Ok(bytes) => bytes,
            // A sample ingest would refuse (empty, corrupt) has no values to scan.
            Err(Error::BadInput { .. }) => continue,
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes);
        let text: &str = &text;
        match source.format {
            SourceFormat::Csv => {
                let delimiter = u8::try_from(u32::from(source.delimiter)).unwrap_or(b',');
                let mut builder = csv::ReaderBuilder::new();
                builder
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(delimiter)
                    .quoting(source.quote.is_some())
                    .escape(source.escape.and_then(|e| u8::try_from(u32::from(e)).ok()));
                if let Some(q) = source.quote.and_then(|q| u8::try_from(u32::from(q)).ok()) {
                    builder.quote(q);
                }
                let mut reader = builder.from_reader(text.as_bytes());
                let mut records = reader.records().filter_map(std::result::Result::ok);
                let positions: Vec<Option<usize>> = if source.header {
                    let Some(header) = records.next() else {
                        continue;
                    };
                    let header: Vec<&str> = header.iter().map(str::trim).collect();
                    columns
                        .iter()
                        .map(|c| {
                            header
                                .iter()
                                .position(|h| h == c)
                                .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(c)))
                        })
                        .collect()
                } else {
                    (0..columns.len()).map(Some).collect()
                };
                for record in records {
                    for (column, position) in columns.iter().zip(&positions) {
                        if let Some(value) = position.and_then(|i| record.get(i)) {
                            add(column, value);
                        }
                    }
                }
            }
            SourceFormat::Ndjson
            | SourceFormat::Json
            | SourceFormat::Parquet
            | SourceFormat::Debezium => {
                let cdc = source.cdc_columns();
                let objects: Vec<serde_json::Value> = if source.format == SourceFormat::Json {
                    match serde_json::from_str(text) {
                        Ok(serde_json::Value::Array(items)) => items,
                        _ => Vec::new(),
                    }
                } else {
                    text.lines()
                        .filter_map(|l| serde_json::from_str(l).ok())
                        .collect()
                };
                for value in objects {
                    let row = match (source.format, value) {
                        (SourceFormat::Debezium, event) => match crate::cdc::decode(&event, &cdc) {
                            Ok(crate::cdc::Decoded::Row(row)) => row,
                            _ => continue,
                        },
                        (_, serde_json::Value::Object(row)) => row,
                        _ => continue,
                    };
                    for column in &columns {
                        let value = row.get(*column).or_else(|| {
                            row.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(column))
                                .map(|(_, v)| v)
                        });
                        match value {
                            Some(serde_json::Value::String(s)) => add(column, s),
                            Some(serde_json::Value::Number(n)) => add(column, &n.to_string()),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Ok(scans)
}
