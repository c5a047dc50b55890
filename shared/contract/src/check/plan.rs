//! Turning a schema object into checks.
//!
//! Planning lists every check in report order and gives it a unique name;
//! compiling turns each plan into a [`Probe`], collecting an [`Issue`] for
//! everything that cannot run (bad patterns, unreadable bounds, rules missing
//! their arguments, types without an Arrow mapping).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use chrono_tz::Tz;
use regex::Regex;
use serde_json::Value;

use super::formats::{self, TextFormat};
use super::probe::{Bound, Probe, ValueSet};
use super::{Check, SQL_DETAIL};
use crate::error::Issue;
use crate::model::{LogicalType, Property, SchemaObject};
use crate::quality::{Metric, Operator, QualityRule, RuleKind, Severity, Unit};

/// Largest compiled size of a contract regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The `sql` rules of `object`: check name, the property a rule is declared on (`None` at object
/// level), the rule.
pub(super) fn sql_rules(object: &SchemaObject) -> Vec<(String, Option<String>, &QualityRule)> {
    plan(object)
        .into_iter()
        .filter_map(|plan| match plan.what {
            What::Rule { rule, .. } if matches!(rule.kind, RuleKind::Sql { .. }) => {
                Some((plan.name, plan.property, rule))
            }
            _ => None,
        })
        .collect()
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
    Format(&'a str),
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
    if let Some(format) = &options.format {
        out.push(("format", OptionCheck::Format(format)));
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
pub(super) fn compile(object: &SchemaObject) -> (Vec<Check>, Vec<Issue>) {
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
        OptionCheck::Format(format) => compile_format(property, format, path, &at("format"))?,
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

/// Compiles a `format` option: a string format, or the bits an integer or float may use.
fn compile_format(property: &Property, format: &str, path: &str, at: &str) -> Result<Probe, Issue> {
    let column = property.name.clone();
    let unknown = || {
        Issue::new(
            at,
            format!("property `{path}`: unknown format `{format}` for its logical type"),
        )
    };
    Ok(match property.logical_type {
        Some(LogicalType::String) | None => match TextFormat::parse(format) {
            Some(format) => Probe::Format { column, format },
            None => Probe::Deferred(format!(
                "string format `{format}` has no check in Tessera (checked: email, uuid, uri, \
                 hostname, ipv4, ipv6, byte)"
            )),
        },
        Some(LogicalType::Integer) => {
            let (min, max) = formats::integer_range(format).ok_or_else(unknown)?;
            Probe::Range { column, min, max }
        }
        Some(LogicalType::Number) => match format {
            "f32" => Probe::Range {
                column,
                min: -f64::from(f32::MAX),
                max: f64::from(f32::MAX),
            },
            "f64" => Probe::Deferred("every value the column holds fits f64".into()),
            _ => return Err(unknown()),
        },
        Some(LogicalType::Date | LogicalType::Timestamp | LogicalType::Time) => {
            // Values arrive typed: the format described their text, which ingest parsed.
            Probe::Deferred(format!(
                "values are typed; `{format}` describes their text, read at ingest"
            ))
        }
        Some(_) => return Err(unknown()),
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
