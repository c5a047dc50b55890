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
//!    `maximum`, their exclusive forms, `multipleOf` and `format` (string formats
//!    `email`, `uuid`, `uri`, `hostname`, `ipv4`, `ipv6`, `byte`; the range of an
//!    integer's `i8`…`u128` or a number's `f32`);
//! 4. the contract's quality rules, property-level then object-level.
//!    `sql` rules are reported as not executed: the caller runs them (see
//!    [`sql_rules`], [`SqlRule::query`], [`SqlRule::result`] and
//!    [`CheckReport::record`]); `text` rules are documentation and `custom` rules
//!    (another engine's) are reported as not executed, never as passed.
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

mod distinct;
mod formats;
mod plan;
mod probe;
mod values;

pub use values::{HashMap as HashedKeyMap, HashSet as HashedKeySet, KeyHasher};

use std::fmt;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Issue, Result, object_error};
use crate::model::SchemaObject;
use crate::quality::{Operator, QualityRule, RuleKind, Severity, Unit};
use plan::compile;
use probe::Probe;

pub(crate) use plan::regex;

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

    /// Puts `result` in place of the check of the same name (a `sql` rule reported as not
    /// executed), or adds it.
    pub fn record(&mut self, result: CheckResult) {
        match self.checks.iter_mut().find(|c| c.name == result.name) {
            Some(slot) => *slot = result,
            None => self.checks.push(result),
        }
    }

    /// Number of passed and of failed checks (not executed ones count in neither).
    pub fn counts(&self) -> (usize, usize) {
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        (count(CheckStatus::Passed), count(CheckStatus::Failed))
    }
}

/// A `sql` quality rule, for the caller to run: a [`Checker`] reports it as not executed under
/// [`SqlRule::name`], and [`CheckReport::record`] puts the result in its place.
#[derive(Debug, Clone)]
pub struct SqlRule<'a> {
    /// Check name.
    pub name: String,
    /// The property the rule is declared on; `None` for an object-level rule.
    pub property: Option<String>,
    /// The rule.
    pub rule: &'a QualityRule,
}

impl SqlRule<'_> {
    /// The query with its placeholders replaced: `${object}` / `{object}` by `object` (the table
    /// the caller registered, already quoted as its SQL dialect needs) and `${property}` /
    /// `{property}` by `property` (the quoted column). `None` if the rule is not `sql`.
    pub fn query(&self, object: &str, property: Option<&str>) -> Option<String> {
        let RuleKind::Sql { query } = &self.rule.kind else {
            return None;
        };
        let mut q = query
            .replace("${object}", object)
            .replace("{object}", object);
        if let Some(p) = property {
            q = q.replace("${property}", p).replace("{property}", p);
        }
        Some(q)
    }

    /// The result of the rule whose query returned `observed` (taken as is: the query computes
    /// it in the rule's unit).
    pub fn result(&self, observed: f64) -> CheckResult {
        let operator = self.rule.operator.unwrap_or(Operator::Equal(0.0));
        CheckResult {
            name: self.name.clone(),
            rule: self.rule.rule_name().to_owned(),
            property: self.property.clone(),
            observed: Some(observed),
            expectation: operator.describe(),
            unit: self.rule.unit.as_str().to_owned(),
            severity: self.rule.severity.as_str().to_owned(),
            status: if operator.holds(observed) {
                CheckStatus::Passed
            } else {
                CheckStatus::Failed
            },
            detail: None,
        }
    }

    /// The rule could not run (its query is invalid, returns no number, ...): a failed check
    /// saying why, so that a broken rule never passes silently.
    pub fn error(&self, why: &str) -> CheckResult {
        let operator = self.rule.operator.unwrap_or(Operator::Equal(0.0));
        CheckResult {
            name: self.name.clone(),
            rule: self.rule.rule_name().to_owned(),
            property: self.property.clone(),
            observed: None,
            expectation: operator.describe(),
            unit: self.rule.unit.as_str().to_owned(),
            severity: self.rule.severity.as_str().to_owned(),
            status: CheckStatus::Failed,
            detail: Some(why.to_owned()),
        }
    }
}

/// The `sql` rules of an object with the check names a [`Checker`] gives them.
pub fn sql_rules(object: &SchemaObject) -> Vec<SqlRule<'_>> {
    plan::sql_rules(object)
        .into_iter()
        .map(|(name, property, rule)| SqlRule {
            name,
            property,
            rule,
        })
        .collect()
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
    pub fn finish(mut self) -> CheckReport {
        for check in &mut self.checks {
            if check.skipped.is_some() {
                continue;
            }
            match check.probe.finish() {
                Ok(count) => check.count += count,
                Err(reason) => check.skipped = Some(reason),
            }
        }
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
