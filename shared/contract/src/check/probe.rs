//! What each check measures, batch by batch.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono_tz::Tz;

use super::formats::TextFormat;
use regex::Regex;
use serde_json::Value;

use super::distinct::Distinct;
use super::values::{self, HashSet, Temporal};

/// A bound of a `minimum`-style option, in the measure of its column.
pub(super) enum Bound {
    Number(f64),
    Temporal(Temporal, i128),
}

impl Bound {
    /// Reads `value` as a bound for a column of type `data_type`; the error says why not.
    pub(super) fn read(
        value: &Value,
        data_type: &DataType,
        zone: Option<Tz>,
    ) -> Result<Bound, String> {
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
pub(super) struct ValueSet {
    values: Vec<Value>,
    data_type: Option<DataType>,
    hashes: HashSet,
}

impl ValueSet {
    pub(super) fn new(values: Vec<Value>) -> Self {
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
pub(super) enum Probe {
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
        seen: Distinct,
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
    /// A string `format`.
    Format {
        column: String,
        format: TextFormat,
    },
    /// A numeric `format`: the range its bits allow.
    Range {
        column: String,
        min: f64,
        max: f64,
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
    pub(super) fn distinct(columns: Vec<String>) -> Probe {
        Probe::Distinct {
            columns,
            seen: Distinct::default(),
        }
    }

    /// Violations found only once every batch was seen (duplicates among spilled values).
    pub(super) fn finish(&mut self) -> Result<u64, String> {
        match self {
            Probe::Distinct { seen, .. } => seen.finish(),
            _ => Ok(0),
        }
    }

    /// Violations in `batch`, or why the check cannot run.
    pub(super) fn update(&mut self, batch: &RecordBatch) -> Result<u64, String> {
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
                    if seen.insert(values::hash(&buf))? {
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
            Probe::Format {
                column: name,
                format,
            } => {
                let array = column(batch, name)?;
                let text = values::strings(array.as_ref())
                    .ok_or_else(|| unsupported(name, array.as_ref()))?;
                count_rows(array.as_ref(), |i| !format.matches(text(i)))
            }
            Probe::Range {
                column: name,
                min,
                max,
            } => {
                let array = column(batch, name)?;
                let read = values::numbers(array.as_ref())
                    .ok_or_else(|| unsupported(name, array.as_ref()))?;
                count_rows(array.as_ref(), |i| {
                    let v = read(i);
                    v < *min || v > *max
                })
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
