//! The organisation's data policy: the rules every product of a mesh follows.
//!
//! A policy is a small YAML file, read with the same safe parser and budgets as contracts
//! ([`Policy::from_yaml`]; every error points at a line and column). It states:
//!
//! * **required metadata**: an owner (a team member whose role is `owner`), a description
//!   (`description.purpose`), a support channel;
//! * **columns**: every column described; optionally every column classified;
//! * **naming**: table and column names are valid Glue/Athena identifiers (lower-case letters,
//!   digits and `_`, starting with a letter, at most 255 characters), plus the policy's own
//!   pattern, length limit and reserved words;
//! * **formats**: the output formats (and input formats) products may use;
//! * **classifications**: what happens to the values of each ODCS `classification` before
//!   publishing ([`Action`]: `none`, `hash` with the salt from configuration, `redact`, `null`,
//!   `drop`);
//! * **personal data detection**: which [detectors](Detector) run over sample values and the
//!   classification each proposes when it matches at least `threshold` of a column's values.
//!
//! [`Policy::check`] applies the contract rules to a schema object and returns [`Violation`]s
//! located by JSON pointer; [`lint_located`] reads a contract keeping its [`SourceMap`], so that
//! callers can give each violation its line. Product-level rules (formats, masks, detections on
//! data) are applied by the pipeline, which builds the same [`Violation`]s. No I/O here.
//!
//! ```
//! use tessera_contract::policy::{Action, Policy, Rule};
//!
//! let policy = Policy::from_yaml(
//!     "version: 1\nrequired_metadata: [owner]\ncolumns:\n  require_description: true\n\
//!      classifications:\n  public: none\n  pii: hash\n",
//!     "policy.yaml",
//! )?;
//! assert_eq!(policy.action(Some("PII")), Some(Action::Hash));
//! let (contract, map) = tessera_contract::policy::lint_located(
//!     "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
//!      schema:\n  - name: t\n    properties:\n      - name: id\n        classification: public\n",
//!     "c.odcs.yaml",
//! )?;
//! let mut violations = policy.check(&contract, "t", "t");
//! violations.iter_mut().for_each(|v| v.locate(&map));
//! let rules: Vec<Rule> = violations.iter().map(|v| v.rule).collect();
//! assert_eq!(rules, [Rule::MetadataOwner, Rule::ColumnDescription]);
//! assert_eq!(violations[1].line, Some(9));
//! # Ok::<(), tessera_contract::ContractError>(())
//! ```

mod detect;

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use detect::{Detector, Finding, ValueScan, iban_mod97, luhn};

use crate::error::{ContractError, Problem, Result, escape_token};
use crate::model::{Contract, Property, SchemaValidation};
use crate::yaml::{self, Locations};

/// Format of the policy file this version of Tessera reads.
const POLICY_VERSION: u64 = 1;

/// Longest Glue/Athena table or column name.
const MAX_IDENTIFIER: usize = 255;

/// The format products are published in.
pub const OUTPUT_FORMAT: &str = "parquet";

/// What happens to a column's values before they are published, from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Published as is.
    None,
    /// Replaced by the SHA-256 of the salted value: joinable, not readable. The salt comes from
    /// configuration, never from the policy.
    Hash,
    /// Replaced by `****` and at most the last four characters: not joinable, barely readable.
    Redact,
    /// Replaced by null.
    Null,
    /// Not published at all: the column is removed from the product.
    Drop,
}

impl Action {
    /// The word used in policy and mesh files.
    pub fn name(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Hash => "hash",
            Action::Redact => "redact",
            Action::Null => "null",
            Action::Drop => "drop",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Action {
    /// One of the words; YAML reads a bare `null` as a null, which means the `null` action too.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = Option::<String>::deserialize(deserializer)?;
        match word.as_deref() {
            Some("none") => Ok(Action::None),
            Some("hash") => Ok(Action::Hash),
            Some("redact") => Ok(Action::Redact),
            Some("null") | None => Ok(Action::Null),
            Some("drop") => Ok(Action::Drop),
            Some(other) => Err(serde::de::Error::custom(format!(
                "unknown action `{other}`: expected none, hash, redact, null or drop"
            ))),
        }
    }
}

/// Metadata a contract must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metadata {
    /// A team member whose role is `owner`.
    Owner,
    /// `description.purpose`.
    Description,
    /// At least one support channel.
    Support,
}

/// Rules about columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRules {
    /// Every top-level property has a description.
    #[serde(default)]
    pub require_description: bool,
    /// Every top-level property has a classification.
    #[serde(default)]
    pub require_classification: bool,
}

/// Naming rules for one kind of name, on top of the Glue/Athena identifier rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRule {
    /// A regular expression names must match (unanchored, like JSON Schema patterns).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Longest name allowed (at most 255, Glue's limit).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Words that may not be used as names (compared without case).
    #[serde(default)]
    pub reserved: Vec<String>,
    #[serde(skip)]
    compiled: Option<Regex>,
}

/// Naming rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Naming {
    /// Catalog table names (the product names).
    #[serde(default)]
    pub tables: NameRule,
    /// Column names, nested fields included.
    #[serde(default)]
    pub columns: NameRule,
}

/// Allowed formats; an empty list allows any.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Formats {
    /// Formats products may be published in (Tessera publishes `parquet`).
    #[serde(default)]
    pub output: Vec<String>,
    /// Formats raw files may come in (`csv`, `ndjson`, `json`, `parquet`).
    #[serde(default)]
    pub input: Vec<String>,
}

/// Personal-data detection over sample values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiRules {
    /// Share of a column's non-empty values a detector must match to propose a classification.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Values of a column looked at, at most (the first ones).
    #[serde(default = "default_sample_values")]
    pub sample_values: u64,
    /// The detectors that run, each with the classification it proposes.
    #[serde(default)]
    pub detectors: BTreeMap<Detector, String>,
}

fn default_threshold() -> f64 {
    0.8
}

fn default_sample_values() -> u64 {
    10_000
}

impl Default for PiiRules {
    fn default() -> Self {
        PiiRules {
            threshold: default_threshold(),
            sample_values: default_sample_values(),
            detectors: BTreeMap::new(),
        }
    }
}

/// An organisation's data policy; see the module documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format of the file: 1.
    pub version: u64,
    /// Name of the policy.
    #[serde(default)]
    pub name: Option<String>,
    /// What the policy is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Metadata every contract carries.
    #[serde(default)]
    pub required_metadata: Vec<Metadata>,
    /// Rules about columns.
    #[serde(default)]
    pub columns: ColumnRules,
    /// Naming rules.
    #[serde(default)]
    pub naming: Naming,
    /// Allowed formats.
    #[serde(default)]
    pub formats: Formats,
    /// What each classification's values become before publishing, by lower-case name.
    #[serde(default)]
    pub classifications: BTreeMap<String, Action>,
    /// Personal-data detection.
    #[serde(default)]
    pub pii: PiiRules,
}

/// The rule a violation breaks; its id (`columns.description`) is what reports show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Rule {
    /// No team member with the role `owner`.
    #[serde(rename = "metadata.owner")]
    MetadataOwner,
    /// No `description.purpose`.
    #[serde(rename = "metadata.description")]
    MetadataDescription,
    /// No support channel.
    #[serde(rename = "metadata.support")]
    MetadataSupport,
    /// A column without a description.
    #[serde(rename = "columns.description")]
    ColumnDescription,
    /// A column without a classification, where the policy requires one.
    #[serde(rename = "columns.classification")]
    ColumnClassification,
    /// A classification the policy does not know.
    #[serde(rename = "classification.known")]
    ClassificationKnown,
    /// A table name that is no valid identifier or breaks the naming rules.
    #[serde(rename = "naming.table")]
    NamingTable,
    /// A column name that is no valid identifier or breaks the naming rules.
    #[serde(rename = "naming.column")]
    NamingColumn,
    /// An output format the policy does not allow.
    #[serde(rename = "format.output")]
    FormatOutput,
    /// An input format the policy does not allow.
    #[serde(rename = "format.input")]
    FormatInput,
    /// A recipe mask weaker than the column's classification requires.
    #[serde(rename = "mask.weaker")]
    MaskWeaker,
    /// Values that look like personal data in a column not classified (or masked) as such.
    #[serde(rename = "pii.unclassified")]
    PiiUnclassified,
}

impl Rule {
    /// The rule's id, e.g. `columns.description`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::MetadataOwner => "metadata.owner",
            Rule::MetadataDescription => "metadata.description",
            Rule::MetadataSupport => "metadata.support",
            Rule::ColumnDescription => "columns.description",
            Rule::ColumnClassification => "columns.classification",
            Rule::ClassificationKnown => "classification.known",
            Rule::NamingTable => "naming.table",
            Rule::NamingColumn => "naming.column",
            Rule::FormatOutput => "format.output",
            Rule::FormatInput => "format.input",
            Rule::MaskWeaker => "mask.weaker",
            Rule::PiiUnclassified => "pii.unclassified",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One way a product breaks the policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The rule broken.
    pub rule: Rule,
    /// The column concerned, when the rule is about one.
    pub property: Option<String>,
    /// JSON pointer into the contract (empty when the violation is not about the contract).
    pub pointer: String,
    /// 1-based line in the contract, once located.
    pub line: Option<usize>,
    /// 1-based column in the contract, once located.
    pub column: Option<usize>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Violation {
    /// A violation of `rule` at `pointer` (not located yet).
    pub fn new(rule: Rule, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            rule,
            property: None,
            pointer: pointer.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// The same violation, about column `name`.
    pub fn on(mut self, name: impl Into<String>) -> Self {
        self.property = Some(name.into());
        self
    }

    /// Fills in line and column from the contract's source map.
    pub fn locate(&mut self, map: &SourceMap) {
        if self.line.is_none()
            && !self.pointer.is_empty()
            && let Some((line, column)) = map.position(&self.pointer)
        {
            self.line = Some(line);
            self.column = Some(column);
        }
    }

    /// `origin:line:column: policy rule: message`, like a contract problem.
    pub fn located(&self, origin: &str) -> String {
        let mut out = origin.to_owned();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        out.push_str(&format!(": policy `{}`: {}", self.rule, self.message));
        out
    }
}

/// Where each node of a contract's YAML is: line and column by JSON pointer.
#[derive(Debug, Clone, Default)]
pub struct SourceMap(Locations);

impl SourceMap {
    /// Line and column (1-based) of `pointer`, or of its nearest ancestor that has one.
    pub fn position(&self, pointer: &str) -> Option<(usize, usize)> {
        self.0.find(pointer)
    }
}

/// Lints a contract like [`crate::lint`], keeping where each of its nodes is.
pub fn lint_located(text: &str, origin: &str) -> Result<(Contract, SourceMap)> {
    lint_located_with(text, origin, SchemaValidation::Run)
}

/// [`lint_located`], with the JSON Schema step run or skipped as `schema` says.
pub fn lint_located_with(
    text: &str,
    origin: &str,
    schema: SchemaValidation,
) -> Result<(Contract, SourceMap)> {
    crate::lint::lint_with_locations(text, origin, schema).map(|(c, l)| (c, SourceMap(l)))
}

/// Whether `name` is a valid Glue/Athena identifier: lower-case ASCII letters, digits and `_`,
/// starting with a letter, at most 255 characters.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IDENTIFIER
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl NameRule {
    /// What is wrong with `name`, if anything.
    fn problem(&self, name: &str) -> Option<String> {
        if !is_identifier(name) {
            return Some(format!(
                "`{}` is not a valid Glue/Athena name (lower-case letters, digits and `_`, starting with a letter, at most {MAX_IDENTIFIER} characters)",
                name.escape_debug()
            ));
        }
        if let Some(max) = self.max_length
            && name.len() > max
        {
            return Some(format!(
                "`{name}` is longer than the {max} characters the policy allows"
            ));
        }
        if self.reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Some(format!("`{name}` is a reserved word"));
        }
        if let (Some(re), Some(pattern)) = (&self.compiled, &self.pattern)
            && !re.is_match(name)
        {
            return Some(format!("`{name}` does not match the pattern `{pattern}`"));
        }
        None
    }
}

impl Policy {
    /// Parses and validates a policy; `origin` (a file name) prefixes messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Policy> {
        let document = yaml::parse_as(text, origin, "policy")?;
        let locate = |pointer: &str, message: String| {
            ContractError::single(
                origin,
                document.locations.locate(Problem::at(pointer, message)),
            )
        };
        // The salt is a secret of each deployment: a policy file that carries one is refused
        // before anything else is said about it.
        for pointer in ["/salt", "/pii_salt", "/pii/salt", "/pii/pii_salt"] {
            if document.value.pointer(pointer).is_some() {
                return Err(locate(
                    pointer,
                    "a policy holds no salt: hashing uses the salt from configuration (`mesh.pii_salt` or TESSERA_PII_SALT)".into(),
                ));
            }
        }
        let mut policy: Policy = serde_path_to_error::deserialize(&document.value)
            .map_err(|e| crate::model::model_error(&e, &document.locations, origin))?;
        let mut problems = Vec::new();
        if policy.version != POLICY_VERSION {
            problems.push(Problem::at(
                "/version",
                format!(
                    "unsupported policy version {}: Tessera reads version {POLICY_VERSION}",
                    policy.version
                ),
            ));
        }
        // Classifications are matched without case.
        let mut classifications = BTreeMap::new();
        if let Some(Value::Object(written)) = document.value.get("classifications") {
            // In the order written, so that the second of two spellings is the one reported.
            let mut names: Vec<(Option<(usize, usize)>, &String)> = written
                .keys()
                .map(|name| {
                    let pointer = format!("/classifications/{}", escape_token(name));
                    (document.locations.find(&pointer), name)
                })
                .collect();
            names.sort();
            for (_, name) in names {
                let lower = name.trim().to_ascii_lowercase();
                let action = policy
                    .classifications
                    .get(name)
                    .copied()
                    .unwrap_or(Action::None);
                if classifications.insert(lower.clone(), action).is_some() {
                    problems.push(Problem::at(
                        format!("/classifications/{}", escape_token(name)),
                        format!("classification `{lower}` is listed twice"),
                    ));
                }
            }
        }
        policy.classifications = classifications;
        for (kind, rule) in [
            ("tables", &mut policy.naming.tables),
            ("columns", &mut policy.naming.columns),
        ] {
            if let Some(pattern) = &rule.pattern {
                match crate::check::regex(pattern) {
                    Ok(re) => rule.compiled = Some(re),
                    Err(e) => problems.push(Problem::at(
                        format!("/naming/{kind}/pattern"),
                        format!("invalid pattern: {e}"),
                    )),
                }
            }
            if rule
                .max_length
                .is_some_and(|m| m == 0 || m > MAX_IDENTIFIER)
            {
                problems.push(Problem::at(
                    format!("/naming/{kind}/max_length"),
                    format!("max_length must be between 1 and {MAX_IDENTIFIER}"),
                ));
            }
        }
        if !(policy.pii.threshold > 0.0 && policy.pii.threshold <= 1.0) {
            problems.push(Problem::at(
                "/pii/threshold",
                "threshold is a share of values: more than 0, at most 1",
            ));
        }
        if policy.pii.sample_values == 0 {
            problems.push(Problem::at(
                "/pii/sample_values",
                "sample_values must be at least 1",
            ));
        }
        for (detector, classification) in &mut policy.pii.detectors {
            *classification = classification.to_ascii_lowercase();
            let pointer = format!("/pii/detectors/{}", detector.name());
            match policy.classifications.get(classification.as_str()) {
                None => problems.push(Problem::at(
                    pointer,
                    format!(
                        "detector `{detector}` proposes `{classification}`, which is not one of the policy's classifications"
                    ),
                )),
                Some(Action::None) => problems.push(Problem::at(
                    pointer,
                    format!(
                        "detector `{detector}` proposes `{classification}`, whose action is `none`: the values would be published as they are"
                    ),
                )),
                Some(_) => {}
            }
        }
        policy.formats.output = lowercase(&policy.formats.output);
        policy.formats.input = lowercase(&policy.formats.input);
        if problems.is_empty() {
            return Ok(policy);
        }
        let mut problems: Vec<Problem> = problems
            .into_iter()
            .map(|p| document.locations.locate(p))
            .collect();
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ContractError::new(origin, problems))
    }

    /// What the policy does with values of `classification` (any case): `None` when the column
    /// is not classified or the policy does not know the classification.
    pub fn action(&self, classification: Option<&str>) -> Option<Action> {
        let c = classification?.trim().to_ascii_lowercase();
        self.classifications.get(&c).copied()
    }

    /// Whether `classification` marks personal data: its action protects the values, or a
    /// detector proposes it.
    pub fn is_personal(&self, classification: Option<&str>) -> bool {
        let Some(c) = classification.map(|c| c.trim().to_ascii_lowercase()) else {
            return false;
        };
        self.action(Some(&c)).is_some_and(|a| a != Action::None)
            || self.pii.detectors.values().any(|p| *p == c)
    }

    /// The detectors the policy runs.
    pub fn detectors(&self) -> Vec<Detector> {
        self.pii.detectors.keys().copied().collect()
    }

    /// The classification the policy proposes for values found by `detector`.
    pub fn proposal(&self, detector: Detector) -> Option<&str> {
        self.pii.detectors.get(&detector).map(String::as_str)
    }

    /// Whether the policy allows publishing in `format`.
    pub fn allows_output(&self, format: &str) -> bool {
        allowed(&self.formats.output, format)
    }

    /// Whether the policy allows raw files in `format`.
    pub fn allows_input(&self, format: &str) -> bool {
        allowed(&self.formats.input, format)
    }

    /// The contract rules over schema object `object` of `contract`, published as table `table`:
    /// metadata, column descriptions and classifications, names. Violations carry JSON pointers;
    /// [`Violation::locate`] gives them lines.
    pub fn check(&self, contract: &Contract, object: &str, table: &str) -> Vec<Violation> {
        let mut out = Vec::new();
        for m in &self.required_metadata {
            match m {
                Metadata::Owner => {
                    let has_owner = contract.team.iter().any(|t| {
                        t.role
                            .as_deref()
                            .is_some_and(|r| r.trim().eq_ignore_ascii_case("owner"))
                            && (present(t.username.as_deref()) || present(t.name.as_deref()))
                    });
                    if !has_owner {
                        out.push(Violation::new(
                            Rule::MetadataOwner,
                            existing(contract, "/team"),
                            "no team member has the role `owner`",
                        ));
                    }
                }
                Metadata::Description => {
                    if !present(contract.description.purpose.as_deref()) {
                        out.push(Violation::new(
                            Rule::MetadataDescription,
                            existing(contract, "/description"),
                            "the contract has no `description.purpose`",
                        ));
                    }
                }
                Metadata::Support => {
                    let has_support = contract
                        .support
                        .iter()
                        .any(|s| present(s.channel.as_deref()) || present(s.url.as_deref()));
                    if !has_support {
                        out.push(Violation::new(
                            Rule::MetadataSupport,
                            existing(contract, "/support"),
                            "the contract names no support channel",
                        ));
                    }
                }
            }
        }
        let Some((index, schema)) = contract
            .schema
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == object)
        else {
            return out;
        };
        let base = format!("/schema/{index}");
        if let Some(problem) = self.naming.tables.problem(table) {
            out.push(Violation::new(
                Rule::NamingTable,
                base.clone(),
                format!("table {problem}"),
            ));
        }
        for (j, property) in schema.properties.iter().enumerate() {
            let pointer = format!("{base}/properties/{j}");
            let name = &property.name;
            if self.columns.require_description && !present(property.description.as_deref()) {
                out.push(
                    Violation::new(
                        Rule::ColumnDescription,
                        pointer.clone(),
                        format!("column `{name}` has no description"),
                    )
                    .on(name),
                );
            }
            match property
                .classification
                .as_deref()
                .filter(|c| present(Some(c)))
            {
                None if self.columns.require_classification => out.push(
                    Violation::new(
                        Rule::ColumnClassification,
                        pointer.clone(),
                        format!("column `{name}` has no classification"),
                    )
                    .on(name),
                ),
                Some(c) if !self.classifications.is_empty() && self.action(Some(c)).is_none() => {
                    out.push(
                        Violation::new(
                            Rule::ClassificationKnown,
                            format!("{pointer}/classification"),
                            format!(
                                "column `{name}` is classified `{c}`, which the policy does not know (known: {})",
                                self.classifications
                                    .keys()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .on(name),
                    );
                }
                _ => {}
            }
            self.check_names(property, &pointer, name, &mut out);
        }
        out
    }

    /// Names of a property and of everything nested in it; `path` names the property.
    fn check_names(
        &self,
        property: &Property,
        pointer: &str,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        if !property.name.is_empty()
            && let Some(problem) = self.naming.columns.problem(&property.name)
        {
            let top = path.split('.').next().unwrap_or(path);
            out.push(
                Violation::new(
                    Rule::NamingColumn,
                    format!("{pointer}/name"),
                    format!("column `{path}`: {problem}"),
                )
                .on(top),
            );
        }
        for (j, nested) in property.properties.iter().enumerate() {
            self.check_names(
                nested,
                &format!("{pointer}/properties/{j}"),
                &format!("{path}.{}", nested.name),
                out,
            );
        }
        if let Some(items) = &property.items {
            self.check_names(
                items,
                &format!("{pointer}/items"),
                &format!("{path}[]"),
                out,
            );
        }
    }
}

/// `pointer` when the contract has it, else the whole document.
fn existing(contract: &Contract, pointer: &str) -> String {
    if contract.raw.pointer(pointer).is_some() {
        pointer.to_owned()
    } else {
        String::new()
    }
}

fn present(text: Option<&str>) -> bool {
    text.is_some_and(|t| !t.trim().is_empty())
}

fn lowercase(list: &[String]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_ascii_lowercase()).collect()
}

fn allowed(list: &[String], format: &str) -> bool {
    list.is_empty() || list.iter().any(|f| f.eq_ignore_ascii_case(format))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "\
version: 1
name: test
required_metadata: [owner, description, support]
columns:
  require_description: true
naming:
  columns:
    reserved: [date, order]
    max_length: 20
formats:
  output: [parquet]
  input: [csv]
classifications:
  public: none
  Internal: none
  pii: hash
  confidential: null
  secret: drop
pii:
  threshold: 0.5
  detectors:
    email: pii
    card: confidential
";

    const CONTRACT: &str = "\
apiVersion: v3.1.0
kind: DataContract
id: c
version: 1.0.0
status: active
description:
  purpose: Orders.
team:
  members:
    - username: ada@example.com
      role: owner
support:
  - channel: '#orders'
schema:
  - name: orders
    properties:
      - name: order_id
        description: Key.
        classification: internal
      - name: email
        description: E-mail.
        classification: PII
";

    fn policy() -> Policy {
        Policy::from_yaml(POLICY, "policy.yaml").unwrap()
    }

    fn violations(
        policy: &Policy,
        contract: &str,
        table: &str,
    ) -> Vec<(Rule, Option<usize>, String)> {
        let (contract, map) = lint_located(contract, "c.yaml").unwrap();
        let object = contract.schema[0].name.clone();
        policy
            .check(&contract, &object, table)
            .into_iter()
            .map(|mut v| {
                v.locate(&map);
                (v.rule, v.line, v.message)
            })
            .collect()
    }

    #[test]
    fn a_policy_reads_and_answers() {
        let p = policy();
        assert_eq!(p.action(Some("pii")), Some(Action::Hash));
        assert_eq!(p.action(Some(" INTERNAL ")), Some(Action::None));
        assert_eq!(p.action(Some("confidential")), Some(Action::Null));
        assert_eq!(p.action(Some("secret")), Some(Action::Drop));
        assert_eq!(p.action(Some("nope")), None);
        assert_eq!(p.action(None), None);
        assert!(p.is_personal(Some("Pii")));
        assert!(!p.is_personal(Some("internal")));
        assert_eq!(p.detectors(), [Detector::Email, Detector::Card]);
        assert_eq!(p.proposal(Detector::Card), Some("confidential"));
        assert!(p.allows_output("Parquet") && !p.allows_output("csv"));
        assert!(p.allows_input("csv") && !p.allows_input("ndjson"));
        assert!(Action::None < Action::Hash && Action::Hash < Action::Redact);
        assert!(Action::Redact < Action::Null && Action::Null < Action::Drop);
    }

    #[test]
    fn a_compliant_contract_has_no_violation() {
        assert_eq!(violations(&policy(), CONTRACT, "orders"), []);
    }

    #[test]
    fn each_rule_names_its_line() {
        let broken = "\
apiVersion: v3.1.0
kind: DataContract
id: c
version: 1.0.0
status: active
team:
  members:
    - username: ada@example.com
      role: steward
schema:
  - name: orders
    properties:
      - name: order_id
        classification: internal
      - name: Email
        description: E-mail.
        classification: personal
      - name: date
        description: Day.
      - name: lines
        description: Lines.
        logicalType: array
        items:
          logicalType: object
          properties:
            - name: unit-price
              logicalType: number
";
        let got = violations(&policy(), broken, "Orders");
        let expected: Vec<(Rule, Option<usize>)> = vec![
            (Rule::MetadataOwner, Some(6)),
            (Rule::MetadataDescription, None),
            (Rule::MetadataSupport, None),
            (Rule::NamingTable, Some(11)),
            (Rule::ColumnDescription, Some(13)),
            (Rule::ClassificationKnown, Some(17)),
            (Rule::NamingColumn, Some(15)),
            (Rule::NamingColumn, Some(18)),
            (Rule::NamingColumn, Some(26)),
        ];
        assert_eq!(
            got.iter().map(|(r, l, _)| (*r, *l)).collect::<Vec<_>>(),
            expected,
            "{got:#?}"
        );
        let messages: Vec<&str> = got.iter().map(|(_, _, m)| m.as_str()).collect();
        assert!(messages[5].contains("`personal`, which the policy does not know (known: confidential, internal, pii, public, secret)"), "{}", messages[5]);
        assert!(
            messages[7].contains("`date` is a reserved word"),
            "{}",
            messages[7]
        );
        assert!(
            messages[8].starts_with("column `lines[].unit-price`: "),
            "{}",
            messages[8]
        );
    }

    #[test]
    fn classification_and_naming_rules_are_optional() {
        let lax = Policy::from_yaml(
            "version: 1\nnaming:\n  tables:\n    pattern: '^[a-z]+_v[0-9]+$'\n",
            "p",
        )
        .unwrap();
        let got = violations(&lax, CONTRACT, "orders");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(got[0].0, Rule::NamingTable);
        assert!(
            got[0]
                .2
                .contains("does not match the pattern `^[a-z]+_v[0-9]+$`")
        );
        let strict = Policy::from_yaml(
            "version: 1\ncolumns:\n  require_classification: true\n",
            "p",
        )
        .unwrap();
        let unclassified = CONTRACT.replace("        classification: internal\n", "");
        let got = violations(&strict, &unclassified, "orders");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!((got[0].0, got[0].1), (Rule::ColumnClassification, Some(17)));
    }

    #[test]
    fn broken_policies_are_refused_with_their_line() {
        let cases = [
            ("version: 2\n", "1:1", "unsupported policy version 2"),
            (
                "version: 1\ncolour: blue\n",
                "2:1",
                "unknown field `colour`",
            ),
            (
                "version: 1\nclassifications:\n  pii: scramble\n",
                "3:3",
                "unknown action `scramble`",
            ),
            (
                "version: 1\nclassifications:\n  pii: hash\n  PII: redact\n",
                "4:3",
                "classification `pii` is listed twice",
            ),
            (
                "version: 1\nnaming:\n  columns:\n    pattern: '(['\n",
                "4:5",
                "invalid pattern",
            ),
            (
                "version: 1\npii:\n  threshold: 1.5\n",
                "3:3",
                "more than 0, at most 1",
            ),
            (
                "version: 1\nclassifications:\n  public: none\npii:\n  detectors:\n    email: public\n",
                "6:5",
                "whose action is `none`",
            ),
            (
                "version: 1\npii:\n  detectors:\n    email: pii\n",
                "4:5",
                "not one of the policy's classifications",
            ),
            (
                "version: 1\npii:\n  detectors:\n    fingerprint: pii\n",
                "3:3",
                "fingerprint",
            ),
            (
                "version: 1\npii:\n  salt: pepper\n",
                "3:3",
                "a policy holds no salt",
            ),
            ("", "policy.yaml", "the policy is empty"),
            ("- a\n", "policy.yaml", "a policy must be a YAML mapping"),
            ("version: [1\n", "policy.yaml:", "invalid YAML"),
        ];
        for (text, at, message) in cases {
            let err = Policy::from_yaml(text, "policy.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{text:?}: {err}");
            let at = if at.contains(':') && !at.starts_with("policy") {
                format!("policy.yaml:{at}:")
            } else {
                at.to_owned()
            };
            assert!(err.starts_with(&at), "{text:?}: expected {at}: {err}");
        }
    }

    #[test]
    fn a_bare_null_action_means_null() {
        let p = Policy::from_yaml(
            "version: 1\nclassifications:\n  a: null\n  b:\n  c: 'null'\n",
            "p",
        )
        .unwrap();
        for c in ["a", "b", "c"] {
            assert_eq!(p.action(Some(c)), Some(Action::Null), "{c}");
        }
    }

    #[test]
    fn violations_read_like_contract_problems() {
        let mut v = Violation::new(Rule::ColumnDescription, "/schema/0/properties/1", "no").on("x");
        assert_eq!(
            v.located("c.yaml"),
            "c.yaml: policy `columns.description`: no"
        );
        v.line = Some(4);
        v.column = Some(9);
        assert_eq!(
            v.located("c.yaml"),
            "c.yaml:4:9: policy `columns.description`: no"
        );
        assert_eq!(
            serde_json::to_value(&v).unwrap()["rule"],
            "columns.description"
        );
    }

    #[test]
    fn identifiers() {
        for ok in ["orders", "a1", "order_id", "x_"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "Orders",
            "1a",
            "_a",
            "a-b",
            "a b",
            "ä",
            &"a".repeat(256),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
