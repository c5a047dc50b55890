//! Quality rules as declared in a contract.
//!
//! A rule is one of four [`RuleKind`]s. `library` rules name a [`Metric`]
//! (ODCS 3.1 `metric:`, or the 3.0 `rule:` spellings such as `nullCheck` and
//! `duplicateCount`) and are executed by [`crate::Checker`]; `sql` rules are run
//! by the caller; `text` and `custom` rules are reported but not executed.
//! The expectation is an [`Operator`] (`mustBe`, `mustBeLessThan`, ...); a
//! library or sql rule without one expects `= 0`, except `rowCount`, which
//! must say what it expects.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One quality rule from a property's or schema object's `quality` list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct QualityRule {
    /// Explicit name of the rule, used as the check name.
    pub name: Option<String>,
    /// Description for humans.
    pub description: Option<String>,
    /// What the rule measures.
    pub kind: RuleKind,
    /// What the measurement must satisfy. Library and sql rules always have one
    /// (`= 0` when the contract gives none); text and custom rules may not.
    pub operator: Option<Operator>,
    /// Whether the measurement counts rows or is a percentage of rows.
    pub unit: Unit,
    /// How serious a failure is.
    pub severity: Severity,
    /// Data-quality dimension, e.g. `completeness`, `uniqueness`.
    pub dimension: Option<String>,
}

/// The four kinds of ODCS quality rules.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleKind {
    /// A predefined metric executed by Tessera.
    Library {
        /// The metric.
        metric: Metric,
        /// Metric arguments, e.g. `validValues`, `missingValues`, `pattern`, `properties`.
        arguments: Map<String, Value>,
    },
    /// A SQL query returning one number, executed by the caller.
    Sql {
        /// The query.
        query: String,
    },
    /// Documentation only.
    Text,
    /// A rule for another engine (Soda, Great Expectations, ...).
    Custom {
        /// The engine's name.
        engine: Option<String>,
    },
}

/// Library metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// Number of null values.
    NullValues,
    /// Number of nulls plus values listed in `arguments.missingValues`.
    MissingValues,
    /// Number of non-null values outside `arguments.validValues` / `arguments.pattern`.
    InvalidValues,
    /// Number of rows repeating an earlier value (or combination of values).
    DuplicateValues,
    /// Number of rows.
    RowCount,
}

/// Comparison a measurement must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    /// `mustBe`
    Equal(f64),
    /// `mustNotBe`
    NotEqual(f64),
    /// `mustBeGreaterThan`
    GreaterThan(f64),
    /// `mustBeGreaterOrEqualTo` (3.0: `mustBeGreaterThanOrEqualTo`)
    GreaterOrEqual(f64),
    /// `mustBeLessThan`
    LessThan(f64),
    /// `mustBeLessOrEqualTo` (3.0: `mustBeLessThanOrEqualTo`)
    LessOrEqual(f64),
    /// `mustBeBetween`: inclusive range, smaller bound first.
    Between(f64, f64),
    /// `mustNotBeBetween`: outside the inclusive range, smaller bound first.
    NotBetween(f64, f64),
}

/// Unit of a rule's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A number of rows (the default).
    #[default]
    Rows,
    /// A percentage of all rows, 0 to 100.
    Percent,
}

/// How serious a failed rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure fails the check run (the default, also for unknown text).
    #[default]
    Error,
    /// Reported, does not fail the run.
    Warning,
    /// Informational.
    Info,
}

impl Operator {
    /// Whether `observed` satisfies the operator.
    pub fn holds(&self, observed: f64) -> bool {
        match *self {
            Operator::Equal(v) => same(observed, v),
            Operator::NotEqual(v) => !same(observed, v),
            Operator::GreaterThan(v) => observed > v,
            Operator::GreaterOrEqual(v) => observed >= v || same(observed, v),
            Operator::LessThan(v) => observed < v,
            Operator::LessOrEqual(v) => observed <= v || same(observed, v),
            Operator::Between(lo, hi) => in_range(observed, lo, hi),
            Operator::NotBetween(lo, hi) => !in_range(observed, lo, hi),
        }
    }

    /// Short text such as `= 0`, `> 1000` or `between 1 and 5`.
    pub fn describe(&self) -> String {
        match *self {
            Operator::Equal(v) => format!("= {v}"),
            Operator::NotEqual(v) => format!("!= {v}"),
            Operator::GreaterThan(v) => format!("> {v}"),
            Operator::GreaterOrEqual(v) => format!(">= {v}"),
            Operator::LessThan(v) => format!("< {v}"),
            Operator::LessOrEqual(v) => format!("<= {v}"),
            Operator::Between(lo, hi) => format!("between {lo} and {hi}"),
            Operator::NotBetween(lo, hi) => format!("not between {lo} and {hi}"),
        }
    }
}

/// Equality with a little slack for percentages computed in floating point.
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn in_range(x: f64, lo: f64, hi: f64) -> bool {
    (x >= lo || same(x, lo)) && (x <= hi || same(x, hi))
}

impl Severity {
    /// Lower-case name, as used in reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl Unit {
    /// Lower-case name, as used in reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unit::Rows => "rows",
            Unit::Percent => "percent",
        }
    }
}

impl Metric {
    /// ODCS spelling, e.g. `nullValues`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Metric::NullValues => "nullValues",
            Metric::MissingValues => "missingValues",
            Metric::InvalidValues => "invalidValues",
            Metric::DuplicateValues => "duplicateValues",
            Metric::RowCount => "rowCount",
        }
    }

    /// Reads an ODCS 3.1 metric name or an ODCS 3.0 rule name.
    fn parse(name: &str) -> Option<Metric> {
        Some(match name {
            "nullValues" | "nullCheck" => Metric::NullValues,
            "missingValues" => Metric::MissingValues,
            "invalidValues" | "validValues" => Metric::InvalidValues,
            "duplicateValues" | "duplicateCount" | "unique" => Metric::DuplicateValues,
            "rowCount" => Metric::RowCount,
            _ => return None,
        })
    }
}

impl QualityRule {
    /// Short name of what the rule measures: the metric, or `sql`, `text`, `custom`.
    pub(crate) fn rule_name(&self) -> &'static str {
        match &self.kind {
            RuleKind::Library { metric, .. } => metric.as_str(),
            RuleKind::Sql { .. } => "sql",
            RuleKind::Text => "text",
            RuleKind::Custom { .. } => "custom",
        }
    }
}

/// Builds an operator from its bound(s); single-bound operators ignore the second.
type BuildOperator = fn(f64, f64) -> Operator;

/// Operator keys and how to build each operator.
const OPERATORS: &[(&str, BuildOperator)] = &[
    ("mustBe", |v, _| Operator::Equal(v)),
    ("mustNotBe", |v, _| Operator::NotEqual(v)),
    ("mustBeGreaterThan", |v, _| Operator::GreaterThan(v)),
    ("mustBeGreaterOrEqualTo", |v, _| Operator::GreaterOrEqual(v)),
    ("mustBeGreaterThanOrEqualTo", |v, _| {
        Operator::GreaterOrEqual(v)
    }),
    ("mustBeLessThan", |v, _| Operator::LessThan(v)),
    ("mustBeLessOrEqualTo", |v, _| Operator::LessOrEqual(v)),
    ("mustBeLessThanOrEqualTo", |v, _| Operator::LessOrEqual(v)),
    ("mustBeBetween", |lo, hi| Operator::Between(lo, hi)),
    ("mustNotBeBetween", |lo, hi| Operator::NotBetween(lo, hi)),
];

/// ODCS 3.0 put metric arguments next to `rule:`; these are read from there too.
const TOP_LEVEL_ARGUMENTS: &[&str] = &["validValues", "missingValues"];

impl TryFrom<Map<String, Value>> for QualityRule {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        let kind_name = text("type").unwrap_or_else(|| "library".to_owned());
        let operator = parse_operator(&map)?;
        let (kind, operator) = match kind_name.as_str() {
            "library" => {
                let name = text("metric").or_else(|| text("rule")).ok_or(
                    "a library quality rule needs `metric` (nullValues, missingValues, \
                     invalidValues, duplicateValues or rowCount)",
                )?;
                let metric = Metric::parse(&name).ok_or_else(|| {
                    format!(
                        "unknown quality metric `{name}` (expected nullValues, missingValues, \
                         invalidValues, duplicateValues or rowCount)"
                    )
                })?;
                let mut arguments = match map.get("arguments") {
                    Some(Value::Object(arguments)) => arguments.clone(),
                    _ => Map::new(),
                };
                for key in TOP_LEVEL_ARGUMENTS {
                    if let Some(value) = map.get(*key)
                        && !arguments.contains_key(*key)
                    {
                        arguments.insert((*key).to_owned(), value.clone());
                    }
                }
                let operator = match (operator, metric) {
                    (Some(op), _) => op,
                    (None, Metric::RowCount) => {
                        return Err("a rowCount rule needs an operator such as \
                                    `mustBeGreaterThan: 0`"
                            .to_owned());
                    }
                    (None, _) => Operator::Equal(0.0),
                };
                (RuleKind::Library { metric, arguments }, Some(operator))
            }
            "sql" => {
                let query = text("query").ok_or("a sql quality rule needs `query`")?;
                (
                    RuleKind::Sql { query },
                    Some(operator.unwrap_or(Operator::Equal(0.0))),
                )
            }
            "text" => (RuleKind::Text, operator),
            "custom" => (
                RuleKind::Custom {
                    engine: text("engine"),
                },
                operator,
            ),
            other => return Err(format!("unknown quality rule type `{other}`")),
        };
        let unit = match text("unit") {
            Some(unit) if unit.trim().eq_ignore_ascii_case("percent") || unit.trim() == "%" => {
                Unit::Percent
            }
            _ => Unit::Rows,
        };
        let severity = match text("severity").map(|s| s.trim().to_ascii_lowercase()) {
            Some(s) if s == "warning" || s == "warn" => Severity::Warning,
            Some(s) if s == "info" => Severity::Info,
            _ => Severity::Error,
        };
        Ok(QualityRule {
            name: text("name"),
            description: text("description"),
            kind,
            operator,
            unit,
            severity,
            dimension: text("dimension"),
        })
    }
}

/// Reads the single operator of a rule, if any.
fn parse_operator(map: &Map<String, Value>) -> Result<Option<Operator>, String> {
    let mut found: Option<(&str, Operator)> = None;
    for (key, build) in OPERATORS {
        let Some(value) = map.get(*key) else { continue };
        if let Some((first, _)) = found {
            return Err(format!(
                "a quality rule takes one operator, found `{first}` and `{key}`"
            ));
        }
        let operator = if key.ends_with("Between") {
            match value
                .as_array()
                .map(|v| v.iter().map(number).collect::<Vec<_>>())
            {
                Some(bounds) if bounds.len() == 2 => match (bounds[0], bounds[1]) {
                    (Some(a), Some(b)) => build(a.min(b), a.max(b)),
                    _ => return Err(format!("`{key}` needs two numbers")),
                },
                _ => return Err(format!("`{key}` needs two numbers, e.g. [1, 10]")),
            }
        } else {
            let v = number(value).ok_or_else(|| format!("`{key}` needs a number, not {value}"))?;
            build(v, v)
        };
        found = Some((key, operator));
    }
    Ok(found.map(|(_, operator)| operator))
}

/// A JSON number, or text holding one.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml_json: Value) -> Result<QualityRule, String> {
        match yaml_json {
            Value::Object(map) => QualityRule::try_from(map),
            _ => Err("not an object".into()),
        }
    }

    #[test]
    fn operators_hold_and_describe() {
        let cases = [
            (Operator::Equal(0.0), 0.0, true, "= 0"),
            (Operator::Equal(0.0), 1.0, false, "= 0"),
            (Operator::NotEqual(0.0), 1.0, true, "!= 0"),
            (Operator::NotEqual(0.0), 0.0, false, "!= 0"),
            (Operator::GreaterThan(0.0), 0.5, true, "> 0"),
            (Operator::GreaterThan(0.0), 0.0, false, "> 0"),
            (Operator::GreaterOrEqual(2.0), 2.0, true, ">= 2"),
            (Operator::GreaterOrEqual(2.0), 1.0, false, ">= 2"),
            (Operator::LessThan(5.0), 4.0, true, "< 5"),
            (Operator::LessThan(5.0), 5.0, false, "< 5"),
            (Operator::LessOrEqual(5.0), 5.0, true, "<= 5"),
            (Operator::LessOrEqual(5.0), 5.5, false, "<= 5"),
            (Operator::Between(1.0, 5.0), 1.0, true, "between 1 and 5"),
            (Operator::Between(1.0, 5.0), 5.0, true, "between 1 and 5"),
            (Operator::Between(1.0, 5.0), 6.0, false, "between 1 and 5"),
            (
                Operator::NotBetween(1.0, 5.0),
                0.5,
                true,
                "not between 1 and 5",
            ),
            (
                Operator::NotBetween(1.0, 5.0),
                3.0,
                false,
                "not between 1 and 5",
            ),
            (Operator::LessOrEqual(2.5), 2.5, true, "<= 2.5"),
        ];
        for (op, observed, holds, text) in cases {
            assert_eq!(op.holds(observed), holds, "{op:?} on {observed}");
            assert_eq!(op.describe(), text);
        }
        // Percentages computed in floating point still compare equal.
        assert!(Operator::Equal(100.0 / 3.0).holds(100.0 * 1.0 / 3.0));
    }

    #[test]
    fn all_operator_spellings() {
        let cases = [
            ("mustBe", serde_json::json!(3), Operator::Equal(3.0)),
            ("mustNotBe", serde_json::json!(3), Operator::NotEqual(3.0)),
            (
                "mustBeGreaterThan",
                serde_json::json!(3),
                Operator::GreaterThan(3.0),
            ),
            (
                "mustBeGreaterOrEqualTo",
                serde_json::json!(3),
                Operator::GreaterOrEqual(3.0),
            ),
            (
                "mustBeGreaterThanOrEqualTo",
                serde_json::json!(3),
                Operator::GreaterOrEqual(3.0),
            ),
            (
                "mustBeLessThan",
                serde_json::json!(3),
                Operator::LessThan(3.0),
            ),
            (
                "mustBeLessOrEqualTo",
                serde_json::json!(3),
                Operator::LessOrEqual(3.0),
            ),
            (
                "mustBeLessThanOrEqualTo",
                serde_json::json!(3),
                Operator::LessOrEqual(3.0),
            ),
            (
                "mustBeBetween",
                serde_json::json!([5, 1]),
                Operator::Between(1.0, 5.0),
            ),
            (
                "mustNotBeBetween",
                serde_json::json!([1, 5]),
                Operator::NotBetween(1.0, 5.0),
            ),
        ];
        for (key, value, expected) in cases {
            let r = rule(serde_json::json!({"metric": "nullValues", key: value})).unwrap();
            assert_eq!(r.operator, Some(expected), "{key}");
        }
    }

    #[test]
    fn v30_rule_names_map_to_metrics() {
        let cases = [
            ("nullCheck", Metric::NullValues),
            ("duplicateCount", Metric::DuplicateValues),
            ("unique", Metric::DuplicateValues),
            ("validValues", Metric::InvalidValues),
            ("invalidValues", Metric::InvalidValues),
            ("rowCount", Metric::RowCount),
            ("missingValues", Metric::MissingValues),
        ];
        for (name, metric) in cases {
            let r = rule(serde_json::json!({"rule": name, "mustBeGreaterThan": 0})).unwrap();
            assert!(
                matches!(r.kind, RuleKind::Library { metric: m, .. } if m == metric),
                "{name}"
            );
        }
        // `metric` wins over `rule`.
        let r = rule(serde_json::json!({"rule": "nullCheck", "metric": "rowCount", "mustBe": 1}))
            .unwrap();
        assert!(matches!(
            r.kind,
            RuleKind::Library {
                metric: Metric::RowCount,
                ..
            }
        ));
        // 3.0 top-level arguments.
        let r = rule(serde_json::json!({"rule": "validValues", "validValues": ["a"]})).unwrap();
        let RuleKind::Library { arguments, .. } = r.kind else {
            panic!("library rule expected")
        };
        assert_eq!(arguments["validValues"], serde_json::json!(["a"]));
    }

    #[test]
    fn defaults_and_errors() {
        let r = rule(serde_json::json!({"metric": "nullValues"})).unwrap();
        assert_eq!(r.operator, Some(Operator::Equal(0.0)));
        assert_eq!(r.unit, Unit::Rows);
        assert_eq!(r.severity, Severity::Error);
        let r = rule(
            serde_json::json!({"metric": "nullValues", "unit": "Percent", "severity": "warning"}),
        )
        .unwrap();
        assert_eq!((r.unit, r.severity), (Unit::Percent, Severity::Warning));
        let r =
            rule(serde_json::json!({"metric": "nullValues", "severity": "catastrophic"})).unwrap();
        assert_eq!(r.severity, Severity::Error);
        let r = rule(serde_json::json!({"type": "text", "description": "x"})).unwrap();
        assert!(matches!(r.kind, RuleKind::Text) && r.operator.is_none());
        assert!(
            rule(serde_json::json!({"metric": "rowCount"}))
                .unwrap_err()
                .contains("rowCount")
        );
        assert!(
            rule(serde_json::json!({"metric": "nope"}))
                .unwrap_err()
                .contains("nope")
        );
        assert!(rule(serde_json::json!({"metric": "nullValues", "mustBe": "x"})).is_err());
        assert!(
            rule(serde_json::json!({"metric": "nullValues", "mustBe": 0, "mustNotBe": 1})).is_err()
        );
        assert!(rule(serde_json::json!({"description": "no metric"})).is_err());
    }
}
