//! Streaming quality checks over Arrow record batches.
//!
//! A [`Checker`] is built once per schema object, fed every record batch of a
//! dataset with [`Checker::update`], and turned into a [`CheckReport`] with
//! [`Checker::finish`]. Memory stays bounded by the number of distinct keys
//! tracked for uniqueness (16 bytes each), never by the data's size.
//!
//! Checks come in a stable order:
//!
//! 1. `schema`: missing, extra and mistyped columns against
//!    [`SchemaObject::arrow_schema`];
//! 2. implied by the schema: `<col>.required` (no nulls), `<col>.unique` (for
//!    `unique` or a single-column primary key) and `<a,b>.primaryKey` (a
//!    composite key is unique);
//! 3. `logicalTypeOptions`: `pattern`, `minLength`, `maxLength`, `minimum`,
//!    `maximum`, their exclusive forms and `multipleOf`;
//! 4. the contract's quality rules, property-level then object-level.
//!    `sql` rules are reported as not executed: the caller runs them (see
//!    [`sql_rules`] and [`sql_result`]); `text` and `custom` rules are only
//!    reported.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Int64Array, RecordBatch};
//! use tessera_contract::{CheckStatus, Checker, Contract};
//!
//! let contract = Contract::from_yaml(
//!     "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
//!      schema:\n  - name: t\n    properties:\n      - name: id\n        logicalType: integer\n        required: true\n",
//!     "c.yaml",
//! )?;
//! let mut checker = Checker::new(&contract.schema[0])?;
//! let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
//! checker.update(&RecordBatch::try_from_iter([("id", ids)]).expect("valid batch"));
//! let report = checker.finish();
//! let required = &report.checks[1];
//! assert_eq!((required.name.as_str(), required.observed), ("id.required", Some(1.0)));
//! assert_eq!(required.status, CheckStatus::Failed);
//! assert!(!report.passed());
//! # Ok::<(), tessera_contract::ContractError>(())
//! ```

mod values;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono_tz::Tz;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Issue, Result, object_error};
use crate::model::{Property, SchemaObject};
use crate::quality::{Metric, Operator, QualityRule, RuleKind, Severity, Unit};
use values::{HashSet, Temporal};

/// Largest compiled size of a contract regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Detail of sql rules in a [`Checker`] report.
const SQL_DETAIL: &str = "sql rules run in contract-check through DataFusion";

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The expectation holds.
    Passed,
    /// The expectation does not hold.
    Failed,
    /// The check could not run here (see its `detail`).
    NotExecuted,
}

/// Result of one check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// Unique name within the report, e.g. `email.pattern` or the rule's own name.
    pub name: String,
    /// What was checked: `schema`, `required`, `unique`, `primaryKey`, an option
    /// (`pattern`, `minimum`, ...), a metric (`nullValues`, ...), `sql`, `text` or `custom`.
    pub rule: String,
    /// The property checked, when the check is about one.
    pub property: Option<String>,
    /// The measurement (in `unit`), when the check ran.
    pub observed: Option<f64>,
    /// The expectation, e.g. `= 0` or `between 1 and 5`.
    pub expectation: String,
    /// `rows` or `percent`.
    pub unit: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// Outcome.
    pub status: CheckStatus,
    /// Explanation: what was wrong, or why the check did not run.
    pub detail: Option<String>,
}

/// All check results for one schema object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// Name of the schema object.
    pub object: String,
    /// Rows seen.
    pub rows: u64,
    /// Results in a stable order (see the module documentation).
    pub checks: Vec<CheckResult>,
}

impl CheckReport {
    /// True when no check of severity `error` failed.
    pub fn passed(&self) -> bool {
        !self
            .failed()
            .any(|c| c.severity == Severity::Error.as_str())
    }

    /// Failed checks of any severity.
    pub fn failed(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
    }

    /// Number of passed and of failed checks (not executed ones count in neither).
    pub fn counts(&self) -> (usize, usize) {
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        (count(CheckStatus::Passed), count(CheckStatus::Failed))
    }
}

/// The `sql` rules of an object with the check names a [`Checker`] gives them,
/// so that the caller can run them and build results with [`sql_result`].
pub fn sql_rules(object: &SchemaObject) -> Vec<(String, &QualityRule)> {
    plan(object)
        .into_iter()
        .filter_map(|plan| match plan.what {
            What::Rule { rule, .. } if matches!(rule.kind, RuleKind::Sql { .. }) => {
                Some((plan.name, rule))
            }
            _ => None,
        })
        .collect()
}

/// The result of a `sql` rule whose query returned `observed`.
pub fn sql_result(name: &str, rule: &QualityRule, observed: f64) -> CheckResult {
    let operator = rule.operator.unwrap_or(Operator::Equal(0.0));
    CheckResult {
        name: name.to_owned(),
        rule: rule.rule_name().to_owned(),
        property: None,
        observed: Some(observed),
        expectation: operator.describe(),
        unit: rule.unit.as_str().to_owned(),
        severity: rule.severity.as_str().to_owned(),
        status: if operator.holds(observed) {
            CheckStatus::Passed
        } else {
            CheckStatus::Failed
        },
        detail: None,
    }
}

/// Runs an object's checks over record batches; see the module documentation.
pub struct Checker {
    object: String,
    rows: u64,
    checks: Vec<Check>,
}

impl fmt::Debug for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checker")
            .field("object", &self.object)
            .field("rows", &self.rows)
            .field("checks", &self.checks.len())
            .finish()
    }
}

impl Checker {
    /// Compiles the checks of `object`. Fails, naming the property, when a
    /// type does not map to Arrow, a pattern does not compile, a bound cannot
    /// be read, or a rule lacks the arguments it needs.
    pub fn new(object: &SchemaObject) -> Result<Checker> {
        let (checks, issues) = compile(object);
        if issues.is_empty() {
            Ok(Checker {
                object: object.name.clone(),
                rows: 0,
                checks,
            })
        } else {
            Err(object_error(&object.name, issues))
        }
    }

    /// Accumulates one batch. Columns are found by property name; a check whose
    /// column is missing or of an unsupported type is reported as not executed.
    pub fn update(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        for check in &mut self.checks {
            if check.skipped.is_some() {
                continue;
            }
            match check.probe.update(batch) {
                Ok(count) => check.count += count,
                Err(reason) => check.skipped = Some(reason),
            }
        }
    }

    /// The report of everything seen.
    pub fn finish(self) -> CheckReport {
        let rows = self.rows;
        CheckReport {
            object: self.object,
            rows,
            checks: self.checks.into_iter().map(|c| c.result(rows)).collect(),
        }
    }
}

/// Problems that keep the checks of `object` from compiling (for `lint`).
pub(crate) fn issues(object: &SchemaObject) -> Vec<Issue> {
    compile(object).1
}

/// A check to be compiled.
struct Plan<'a> {
    name: String,
    rule: String,
    property: Option<String>,
    what: What<'a>,
}

/// What a planned check is about.
enum What<'a> {
    Schema,
    Required(&'a str),
    Unique(&'a str),
    PrimaryKey(Vec<&'a str>),
    TypeOption {
        index: usize,
        property: &'a Property,
        option: OptionCheck<'a>,
    },
    Rule {
        rule: &'a QualityRule,
        site: Site<'a>,
        pointer: String,
    },
}

/// A `logicalTypeOptions` constraint.
enum OptionCheck<'a> {
    Pattern(&'a str),
    Length {
        limit: u64,
        min: bool,
    },
    Bound {
        key: &'static str,
        value: &'a Value,
        min: bool,
        strict: bool,
    },
    MultipleOf(f64),
}

/// Where a quality rule is declared.
#[derive(Clone)]
enum Site<'a> {
    Property(&'a Property),
    Object,
    Nested(String),
}

impl<'a> Plan<'a> {
    fn new(name: String, rule: &str, property: Option<&str>, what: What<'a>) -> Self {
        Plan {
            name,
            rule: rule.to_owned(),
            property: property.map(str::to_owned),
            what,
        }
    }
}

/// Every check of `object`, in report order, with unique names.
fn plan(object: &SchemaObject) -> Vec<Plan<'_>> {
    let mut plans = vec![Plan::new("schema".into(), "schema", None, What::Schema)];
    let key = object.primary_key();
    for p in &object.properties {
        let name = p.name.as_str();
        if p.required {
            plans.push(Plan::new(
                format!("{name}.required"),
                "required",
                Some(name),
                What::Required(name),
            ));
        }
        if p.unique || (p.primary_key && key.len() == 1) {
            plans.push(Plan::new(
                format!("{name}.unique"),
                "unique",
                Some(name),
                What::Unique(name),
            ));
        }
    }
    if key.len() > 1 {
        let columns: Vec<&str> = key.iter().map(|p| p.name.as_str()).collect();
        plans.push(Plan::new(
            format!("{}.primaryKey", columns.join(",")),
            "primaryKey",
            None,
            What::PrimaryKey(columns),
        ));
    }
    for (index, property) in object.properties.iter().enumerate() {
        for (rule, option) in option_checks(property) {
            plans.push(Plan::new(
                format!("{}.{rule}", property.name),
                rule,
                Some(&property.name),
                What::TypeOption {
                    index,
                    property,
                    option,
                },
            ));
        }
    }
    for (index, property) in object.properties.iter().enumerate() {
        let pointer = format!("/properties/{index}");
        let site = Site::Property(property);
        rule_plans(
            &mut plans,
            &property.quality,
            &pointer,
            &property.name,
            site,
        );
        nested_rule_plans(&mut plans, property, &property.name, &pointer);
    }
    rule_plans(&mut plans, &object.quality, "", &object.name, Site::Object);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for plan in &mut plans {
        let count = seen.entry(plan.name.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            plan.name = format!("{}#{count}", plan.name);
        }
    }
    plans
}

/// The option checks a property's `logicalTypeOptions` ask for, with their rule names.
fn option_checks(property: &Property) -> Vec<(&'static str, OptionCheck<'_>)> {
    let options = &property.options;
    let mut out = Vec::new();
    if let Some(pattern) = &options.pattern {
        out.push(("pattern", OptionCheck::Pattern(pattern)));
    }
    if let Some(limit) = options.min_length {
        out.push(("minLength", OptionCheck::Length { limit, min: true }));
    }
    if let Some(limit) = options.max_length {
        out.push(("maxLength", OptionCheck::Length { limit, min: false }));
    }
    // ODCS 3.0 spells exclusive bounds as `exclusiveMinimum: true` next to `minimum`.
    let bounds = [
        (&options.minimum, &options.exclusive_minimum, true),
        (&options.maximum, &options.exclusive_maximum, false),
    ];
    for (inclusive, exclusive, min) in bounds {
        let exclusive_key = if min {
            "exclusiveMinimum"
        } else {
            "exclusiveMaximum"
        };
        let inclusive_key = if min { "minimum" } else { "maximum" };
        let flag = matches!(exclusive, Some(Value::Bool(true)));
        if let Some(value) = inclusive {
            let key = if flag { exclusive_key } else { inclusive_key };
            out.push((
                key,
                OptionCheck::Bound {
                    key: inclusive_key,
                    value,
                    min,
                    strict: flag,
                },
            ));
        }
        if let Some(value) = exclusive
            && !value.is_boolean()
        {
            out.push((
                exclusive_key,
                OptionCheck::Bound {
                    key: exclusive_key,
                    value,
                    min,
                    strict: true,
                },
            ));
        }
    }
    if let Some(factor) = options.multiple_of {
        out.push(("multipleOf", OptionCheck::MultipleOf(factor)));
    }
    out
}

/// Plans the quality rules declared at `site`; `subject` names it in check names.
fn rule_plans<'a>(
    plans: &mut Vec<Plan<'a>>,
    rules: &'a [QualityRule],
    pointer: &str,
    subject: &str,
    site: Site<'a>,
) {
    let property = (!matches!(site, Site::Object)).then_some(subject);
    for (i, rule) in rules.iter().enumerate() {
        plans.push(Plan::new(
            rule.name
                .clone()
                .unwrap_or_else(|| format!("{subject}.{}", rule.rule_name())),
            rule.rule_name(),
            property,
            What::Rule {
                rule,
                site: site.clone(),
                pointer: format!("{pointer}/quality/{i}"),
            },
        ));
    }
}

/// Rules on properties nested in `property` (object fields and array items).
fn nested_rule_plans<'a>(
    plans: &mut Vec<Plan<'a>>,
    property: &'a Property,
    path: &str,
    pointer: &str,
) {
    let fields = property.properties.iter().enumerate().map(|(j, p)| {
        (
            p,
            format!("{path}.{}", p.name),
            format!("{pointer}/properties/{j}"),
        )
    });
    let items = property
        .items
        .as_deref()
        .map(|p| (p, format!("{path}[]"), format!("{pointer}/items")));
    for (nested, path, pointer) in fields.chain(items) {
        let site = Site::Nested(path.clone());
        rule_plans(plans, &nested.quality, &pointer, &path, site);
        nested_rule_plans(plans, nested, &path, &pointer);
    }
}

/// Compiles every planned check; issues explain what could not be compiled.
fn compile(object: &SchemaObject) -> (Vec<Check>, Vec<Issue>) {
    let mut issues = Vec::new();
    let mut fields = Vec::with_capacity(object.properties.len());
    for (index, property) in object.properties.iter().enumerate() {
        match property.field(
            &format!("{}.{}", object.name, property.name),
            &format!("/properties/{index}"),
        ) {
            Ok(field) => fields.push(Some(field)),
            Err(issue) => {
                issues.push(issue);
                fields.push(None);
            }
        }
    }
    let expected: Option<Vec<Field>> = fields.iter().cloned().collect();
    let checks = plan(object)
        .into_iter()
        .map(|plan| {
            let mut check = Check {
                name: plan.name,
                rule: plan.rule,
                property: plan.property,
                operator: Some(Operator::Equal(0.0)),
                unit: Unit::Rows,
                severity: Severity::Error,
                probe: Probe::Deferred(String::new()),
                count: 0,
                skipped: None,
            };
            let path = |name: &str| format!("{}.{name}", object.name);
            check.probe = match plan.what {
                What::Schema => match &expected {
                    Some(fields) => Probe::Schema {
                        expected: Arc::new(Schema::new(fields.clone())),
                        problems: Vec::new(),
                        seen: false,
                    },
                    None => Probe::Deferred("the contract's types do not map to Arrow".into()),
                },
                What::Required(column) => Probe::Nulls(column.to_owned()),
                What::Unique(column) => Probe::distinct(vec![column.to_owned()]),
                What::PrimaryKey(columns) => {
                    Probe::distinct(columns.into_iter().map(str::to_owned).collect())
                }
                What::TypeOption {
                    index,
                    property,
                    option,
                } => {
                    let data_type = fields[index].as_ref().map(|f| f.data_type());
                    compile_option(
                        property,
                        data_type,
                        option,
                        &path(&property.name),
                        &format!("/properties/{index}"),
                    )
                    .unwrap_or_else(|issue| {
                        issues.push(issue);
                        Probe::Deferred(String::new())
                    })
                }
                What::Rule {
                    rule,
                    site,
                    pointer,
                } => {
                    check.operator = rule.operator;
                    check.unit = rule.unit;
                    check.severity = rule.severity;
                    compile_rule(object, rule, site, &pointer).unwrap_or_else(|issue| {
                        issues.push(issue);
                        Probe::Deferred(String::new())
                    })
                }
            };
            check
        })
        .collect();
    (checks, issues)
}

/// A regular expression from a contract, with a bounded compiled size.
pub(crate) fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Compiles a `logicalTypeOptions` constraint of a top-level property.
fn compile_option(
    property: &Property,
    data_type: Option<&DataType>,
    option: OptionCheck<'_>,
    path: &str,
    pointer: &str,
) -> Result<Probe, Issue> {
    let column = property.name.clone();
    let at = |key: &str| format!("{pointer}/logicalTypeOptions/{key}");
    Ok(match option {
        OptionCheck::Pattern(pattern) => Probe::Pattern {
            column,
            regex: regex(pattern).map_err(|e| {
                Issue::new(
                    at("pattern"),
                    format!("property `{path}`: invalid pattern: {e}"),
                )
            })?,
        },
        OptionCheck::Length { limit, min } => Probe::Length { column, limit, min },
        OptionCheck::MultipleOf(factor) => Probe::MultipleOf { column, factor },
        OptionCheck::Bound {
            key,
            value,
            min,
            strict,
        } => {
            // A type that does not map is reported on its own; nothing to check then.
            let Some(data_type) = data_type else {
                return Ok(Probe::Deferred(String::new()));
            };
            let zone = match &property.options.default_timezone {
                Some(name) => Some(name.parse::<Tz>().map_err(|_| {
                    Issue::new(
                        at("defaultTimezone"),
                        format!("property `{path}`: unknown time zone `{name}`"),
                    )
                })?),
                None => None,
            };
            let bound = Bound::read(value, data_type, zone)
                .map_err(|why| Issue::new(at(key), format!("property `{path}`: `{key}` {why}")))?;
            Probe::Bound {
                column,
                bound,
                min,
                strict,
            }
        }
    })
}

/// Compiles one explicit quality rule.
fn compile_rule(
    object: &SchemaObject,
    rule: &QualityRule,
    site: Site<'_>,
    pointer: &str,
) -> Result<Probe, Issue> {
    let (metric, arguments) = match &rule.kind {
        RuleKind::Sql { .. } => return Ok(Probe::Deferred(SQL_DETAIL.into())),
        RuleKind::Text => return Ok(Probe::Deferred("documentation only".into())),
        RuleKind::Custom { engine } => {
            return Ok(Probe::Deferred(format!(
                "custom engine `{}` is not executed by Tessera",
                engine.as_deref().unwrap_or("unnamed")
            )));
        }
        RuleKind::Library { metric, arguments } => (*metric, arguments),
    };
    let fail = |message: String| Issue::new(pointer, format!("`{}`: {message}", object.name));
    let list = |key: &str| match arguments.get(key) {
        None => Ok(None),
        Some(Value::Array(values)) => Ok(Some(values.clone())),
        Some(other) => Err(fail(format!(
            "`arguments.{key}` must be a list, not {other}"
        ))),
    };
    let column = match site {
        Site::Nested(path) => {
            return Ok(Probe::Deferred(format!(
                "rules on nested property `{path}` are not executed"
            )));
        }
        Site::Property(property) => Some(property.name.clone()),
        Site::Object => None,
    };
    Ok(match (metric, column) {
        (Metric::RowCount, _) => Probe::RowCount,
        (Metric::NullValues, Some(column)) => Probe::Nulls(column),
        (Metric::MissingValues, Some(column)) => {
            let values = list("missingValues")?
                .unwrap_or_else(|| vec![Value::Null, Value::String(String::new())]);
            Probe::Missing {
                column,
                nulls: values.contains(&Value::Null),
                values: ValueSet::new(values),
            }
        }
        (Metric::InvalidValues, Some(column)) => {
            let valid = list("validValues")?.map(ValueSet::new);
            let pattern = match arguments.get("pattern") {
                None => None,
                Some(Value::String(p)) => {
                    Some(regex(p).map_err(|e| fail(format!("invalid `arguments.pattern`: {e}")))?)
                }
                Some(other) => {
                    return Err(fail(format!(
                        "`arguments.pattern` must be text, not {other}"
                    )));
                }
            };
            if valid.is_none() && pattern.is_none() {
                return Err(fail(
                    "invalidValues needs `arguments.validValues` and/or `arguments.pattern`".into(),
                ));
            }
            Probe::Invalid {
                column,
                valid,
                pattern,
            }
        }
        (Metric::DuplicateValues, Some(column)) => Probe::distinct(vec![column]),
        (Metric::DuplicateValues, None) => {
            let columns = list("properties")?.unwrap_or_default();
            let mut names = Vec::with_capacity(columns.len());
            for value in &columns {
                match value.as_str() {
                    Some(name) if object.property(name).is_some() => names.push(name.to_owned()),
                    _ => {
                        return Err(fail(format!(
                            "`arguments.properties` names no property {value}"
                        )));
                    }
                }
            }
            if names.is_empty() {
                return Err(fail(
                    "schema-level duplicateValues needs `arguments.properties`, the columns of the key"
                        .into(),
                ));
            }
            Probe::distinct(names)
        }
        (metric, None) => {
            return Err(fail(format!(
                "{} applies to a property: declare it in the property's `quality`",
                metric.as_str()
            )));
        }
    })
}

/// A bound of a `minimum`-style option, in the measure of its column.
enum Bound {
    Number(f64),
    Temporal(Temporal, i128),
}

impl Bound {
    /// Reads `value` as a bound for a column of type `data_type`; the error says why not.
    fn read(value: &Value, data_type: &DataType, zone: Option<Tz>) -> Result<Bound, String> {
        let text = value.as_str();
        let temporal = |measure, parsed: Option<i128>, what: &str| match (text, parsed) {
            (Some(_), Some(v)) => Ok(Bound::Temporal(measure, v)),
            _ => Err(format!("must be a {what}, not {value}")),
        };
        match data_type {
            DataType::Date32 => temporal(
                Temporal::Day,
                text.and_then(values::parse_date),
                "date (yyyy-MM-dd)",
            ),
            DataType::Timestamp(_, _) => temporal(
                Temporal::Instant,
                text.and_then(|t| values::parse_instant(t, zone)),
                "timestamp (yyyy-MM-dd HH:mm:ss[±hh:mm])",
            ),
            DataType::Time64(_) => temporal(
                Temporal::TimeOfDay,
                text.and_then(values::parse_time),
                "time (HH:mm:ss)",
            ),
            t if t.is_numeric() => match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .map(Bound::Number)
            .ok_or_else(|| format!("must be a number, not {value}")),
            other => Err(format!("does not apply to values of type {other}")),
        }
    }
}

/// Contract values (`validValues`, `missingValues`) as hashes for the column type at hand.
struct ValueSet {
    values: Vec<Value>,
    data_type: Option<DataType>,
    hashes: HashSet,
}

impl ValueSet {
    fn new(values: Vec<Value>) -> Self {
        let values = values.into_iter().filter(|v| !v.is_null()).collect();
        ValueSet {
            values,
            data_type: None,
            hashes: HashSet::default(),
        }
    }

    /// The hashes of the values as values of a `data_type` column.
    fn hashes(&mut self, data_type: &DataType) -> &HashSet {
        if self.data_type.as_ref() != Some(data_type) {
            self.hashes.clear();
            let mut buf = Vec::new();
            for value in &self.values {
                buf.clear();
                if values::encode_json(value, data_type, &mut buf) {
                    self.hashes.insert(values::hash(&buf));
                }
            }
            self.data_type = Some(data_type.clone());
        }
        &self.hashes
    }
}

/// What a check measures, with its running state.
enum Probe {
    Schema {
        expected: SchemaRef,
        problems: Vec<String>,
        seen: bool,
    },
    RowCount,
    Nulls(String),
    Missing {
        column: String,
        nulls: bool,
        values: ValueSet,
    },
    Invalid {
        column: String,
        valid: Option<ValueSet>,
        pattern: Option<Regex>,
    },
    Distinct {
        columns: Vec<String>,
        seen: HashSet,
    },
    Pattern {
        column: String,
        regex: Regex,
    },
    Length {
        column: String,
        limit: u64,
        min: bool,
    },
    Bound {
        column: String,
        bound: Bound,
        min: bool,
        strict: bool,
    },
    MultipleOf {
        column: String,
        factor: f64,
    },
    /// Not executed here, for the reason given.
    Deferred(String),
}

/// The column called `name`, dictionary-decoded so that checks see plain values.
fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, String> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| format!("column `{name}` is not in the data"))?;
    match array.data_type() {
        DataType::Dictionary(_, values) => cast(array, values)
            .map_err(|e| format!("column `{name}` could not be dictionary-decoded: {e}")),
        _ => Ok(Arc::clone(array)),
    }
}

fn unsupported(name: &str, array: &dyn Array) -> String {
    format!(
        "column `{name}` has type {}, which this check does not support",
        array.data_type()
    )
}

/// Counts the non-null rows of `array` for which `violates` holds.
fn count_rows(array: &dyn Array, mut violates: impl FnMut(usize) -> bool) -> u64 {
    (0..array.len())
        .filter(|&i| array.is_valid(i) && violates(i))
        .count() as u64
}

impl Probe {
    fn distinct(columns: Vec<String>) -> Probe {
        Probe::Distinct {
            columns,
            seen: HashSet::default(),
        }
    }

    /// Violations in `batch`, or why the check cannot run.
    fn update(&mut self, batch: &RecordBatch) -> Result<u64, String> {
        Ok(match self {
            Probe::Schema {
                expected,
                problems,
                seen,
            } => {
                *seen = true;
                for problem in schema_problems(expected, batch.schema_ref()) {
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
                0
            }
            Probe::RowCount | Probe::Deferred(_) => 0,
            Probe::Nulls(name) => column(batch, name)?.logical_null_count() as u64,
            Probe::Missing {
                column: name,
                nulls,
                values,
            } => {
                let array = column(batch, name)?;
                let mut count = if *nulls {
                    array.logical_null_count() as u64
                } else {
                    0
                };
                if !values.values.is_empty() {
                    let encode = values::encoder(array.as_ref())
                        .ok_or_else(|| unsupported(name, array.as_ref()))?;
                    let set = values.hashes(array.data_type());
                    let mut buf = Vec::new();
                    count += count_rows(array.as_ref(), |i| {
                        buf.clear();
                        encode(i, &mut buf);
                        set.contains(&values::hash(&buf))
                    });
                }
                count
            }
            Probe::Invalid {
                column: name,
                valid,
                pattern,
            } => {
                let array = column(batch, name)?;
                let encode = match valid {
                    Some(_) => Some(
                        values::encoder(array.as_ref())
                            .ok_or_else(|| unsupported(name, array.as_ref()))?,
                    ),
                    None => None,
                };
                let text = match pattern {
                    Some(_) => Some(
                        values::strings(array.as_ref())
                            .ok_or_else(|| unsupported(name, array.as_ref()))?,
                    ),
                    None => None,
                };
                let set = valid.as_mut().map(|v| v.hashes(array.data_type()));
                let mut buf = Vec::new();
                count_rows(array.as_ref(), |i| {
                    let listed = match (&encode, set) {
                        (Some(encode), Some(set)) => {
                            buf.clear();
                            encode(i, &mut buf);
                            set.contains(&values::hash(&buf))
                        }
                        _ => true,
                    };
                    let matches = match (&text, pattern.as_ref()) {
                        (Some(text), Some(regex)) => regex.is_match(text(i)),
                        _ => true,
                    };
                    !(listed && matches)
                })
            }
            Probe::Distinct { columns, seen } => {
                let arrays = columns
                    .iter()
                    .map(|name| column(batch, name))
                    .collect::<Result<Vec<_>, _>>()?;
                let encoders = arrays
                    .iter()
                    .zip(columns.iter())
                    .map(|(a, name)| {
                        values::encoder(a.as_ref()).ok_or_else(|| unsupported(name, a.as_ref()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut buf = Vec::new();
                let mut duplicates = 0;
                for row in 0..batch.num_rows() {
                    // Like SQL UNIQUE: a key with a null in it equals no other key.
                    if arrays.iter().any(|a| a.is_null(row)) {
                        continue;
                    }
                    buf.clear();
                    for encode in &encoders {
                        encode(row, &mut buf);
                    }
                    if !seen.insert(values::hash(&buf)) {
                        duplicates += 1;
                    }
                }
                duplicates
            }
            Probe::Pattern {
                column: name,
                regex,
            } => {
                let array = column(batch, name)?;
                let text = values::strings(array.as_ref())
                    .ok_or_else(|| unsupported(name, array.as_ref()))?;
                count_rows(array.as_ref(), |i| !regex.is_match(text(i)))
            }
            Probe::Length {
                column: name,
                limit,
                min,
            } => {
                let array = column(batch, name)?;
                let text = values::strings(array.as_ref())
                    .ok_or_else(|| unsupported(name, array.as_ref()))?;
                count_rows(array.as_ref(), |i| {
                    let length = text(i).chars().count() as u64;
                    if *min {
                        length < *limit
                    } else {
                        length > *limit
                    }
                })
            }
            Probe::Bound {
                column: name,
                bound,
                min,
                strict,
            } => {
                let array = column(batch, name)?;
                let (min, strict) = (*min, *strict);
                let outside = move |ordering: std::cmp::Ordering| match ordering {
                    std::cmp::Ordering::Equal => strict,
                    std::cmp::Ordering::Less => min,
                    std::cmp::Ordering::Greater => !min,
                };
                match bound {
                    Bound::Number(limit) => {
                        let read = values::numbers(array.as_ref())
                            .ok_or_else(|| unsupported(name, array.as_ref()))?;
                        let limit = *limit;
                        count_rows(array.as_ref(), |i| {
                            read(i).partial_cmp(&limit).is_some_and(outside)
                        })
                    }
                    Bound::Temporal(measure, limit) => {
                        let read = values::temporal(array.as_ref(), *measure)
                            .ok_or_else(|| unsupported(name, array.as_ref()))?;
                        let limit = *limit;
                        count_rows(array.as_ref(), |i| outside(read(i).cmp(&limit)))
                    }
                }
            }
            Probe::MultipleOf {
                column: name,
                factor,
            } => {
                let array = column(batch, name)?;
                let read = values::numbers(array.as_ref())
                    .ok_or_else(|| unsupported(name, array.as_ref()))?;
                let factor = *factor;
                count_rows(array.as_ref(), |i| {
                    let quotient = read(i) / factor;
                    (quotient - quotient.round()).abs() > 1e-9 * quotient.abs().max(1.0)
                })
            }
        })
    }
}

/// Differences between the contract's schema and a batch's.
fn schema_problems(expected: &Schema, actual: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for field in expected.fields() {
        match actual.field_with_name(field.name()) {
            Err(_) => problems.push(format!("missing column `{}`", field.name())),
            Ok(found) if !compatible(found.data_type(), field.data_type()) => {
                problems.push(format!(
                    "column `{}` is {}, expected {}",
                    field.name(),
                    found.data_type(),
                    field.data_type()
                ))
            }
            Ok(_) => {}
        }
    }
    for field in actual.fields() {
        if expected.field_with_name(field.name()).is_err() {
            problems.push(format!("extra column `{}`", field.name()));
        }
    }
    problems
}

/// Whether data of type `actual` satisfies the contract type `expected`. Storage
/// variants count as the same type: any string layout for `Utf8`, any list layout
/// for `List`, dictionary encoding of the expected type, and any spelling of UTC.
fn compatible(actual: &DataType, expected: &DataType) -> bool {
    use DataType::*;
    match (actual, expected) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (Dictionary(_, values), _) => compatible(values, expected),
        (
            List(a) | LargeList(a) | ListView(a) | LargeListView(a) | FixedSizeList(a, _),
            List(e),
        ) => compatible(a.data_type(), e.data_type()),
        (Struct(a), Struct(e)) => {
            a.len() == e.len()
                && e.iter().all(|ef| {
                    a.iter().any(|af| {
                        af.name() == ef.name() && compatible(af.data_type(), ef.data_type())
                    })
                })
        }
        (Timestamp(au, atz), Timestamp(eu, etz)) => {
            au == eu && atz.as_deref().map(utc_name) == etz.as_deref().map(utc_name)
        }
        _ => actual == expected,
    }
}

/// `UTC` for the usual spellings of UTC, the zone itself otherwise.
fn utc_name(zone: &str) -> &str {
    match zone {
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "00:00" | "Etc/UTC" | "GMT" | "Etc/GMT" => "UTC",
        other => other,
    }
}

/// One compiled check with its running count.
struct Check {
    name: String,
    rule: String,
    property: Option<String>,
    operator: Option<Operator>,
    unit: Unit,
    severity: Severity,
    probe: Probe,
    count: u64,
    skipped: Option<String>,
}

impl Check {
    fn result(self, rows: u64) -> CheckResult {
        let mut result = CheckResult {
            name: self.name,
            rule: self.rule,
            property: self.property,
            observed: None,
            expectation: self
                .operator
                .map_or_else(|| "n/a".to_owned(), |o| o.describe()),
            unit: self.unit.as_str().to_owned(),
            severity: self.severity.as_str().to_owned(),
            status: CheckStatus::NotExecuted,
            detail: self.skipped,
        };
        if result.detail.is_some() {
            return result;
        }
        let (count, detail) = match self.probe {
            Probe::Deferred(reason) => {
                result.detail = Some(reason);
                return result;
            }
            Probe::Schema { seen: false, .. } => {
                result.detail = Some("no record batch was seen".into());
                return result;
            }
            Probe::Schema { problems, .. } => {
                let detail = (!problems.is_empty()).then(|| problems.join("; "));
                (problems.len() as u64, detail)
            }
            Probe::RowCount => (rows, None),
            _ => (self.count, Some(format!("{} of {rows} rows", self.count))),
        };
        let observed = match self.unit {
            Unit::Rows => count as f64,
            Unit::Percent if rows == 0 => 0.0,
            Unit::Percent => 100.0 * count as f64 / rows as f64,
        };
        let operator = self.operator.unwrap_or(Operator::Equal(0.0));
        result.observed = Some(observed);
        result.status = if operator.holds(observed) {
            CheckStatus::Passed
        } else {
            CheckStatus::Failed
        };
        if result.status == CheckStatus::Failed {
            result.detail = detail;
        }
        result
    }
}
