//! Turning text and JSON values into typed Arrow columns, one row at a time.
//!
//! A row is first parsed into [`Cell`]s; only when every cell of the row parsed is it appended
//! to the column builders. A row that fails is therefore never half-written: it goes to
//! quarantine whole, with the column and the reason.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, ListArray,
    StringBuilder, StructArray, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

pub mod json;

use json::Json;

/// How to read values of one column.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Target type.
    pub data_type: DataType,
    /// Zone of timestamps written without an offset (contract `defaultTimezone`; UTC if none).
    pub timezone: Option<Tz>,
    /// chrono format converted from the contract's `format`, tried first for dates and times.
    pub format: Option<String>,
    /// Timestamp formats of the clean recipe (`timestamps.formats`), tried before any other:
    /// chrono formats, or `epoch_s`, `epoch_ms`, `epoch_us` (integers since 1970-01-01 UTC).
    pub formats: Vec<String>,
    /// What to do with a decimal written with more fraction digits than the column's scale.
    pub rounding: DecimalRounding,
    /// Lenient typing (recipe `lenient` / `keep_raw`): a value that cannot be typed becomes
    /// null instead of quarantining its row.
    pub lenient: bool,
    /// For a raw-text column (`<column>_raw` of `keep_raw`): the column whose text it holds.
    pub source: Option<String>,
    /// Only `formats` read timestamps (recipe `timestamps.builtin = false`): the built-in
    /// shapes are not tried.
    pub only_formats: bool,
    /// A regular expression the text of a value must match (trimmed) before it is typed
    /// (recipe `patterns`).
    pub pattern: Option<regex::Regex>,
}

impl ColumnSpec {
    /// The name of the field this column is read from in the file.
    pub fn read_from(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }
}

/// What typing does with a decimal written with more fraction digits than the column's scale
/// (recipe `decimal_rounding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecimalRounding {
    /// Refuse the value: the row goes to quarantine with the reason.
    #[default]
    Reject,
    /// Round half to even (banker's rounding), on the magnitude.
    HalfEven,
    /// Round half away from zero.
    HalfUp,
}

/// A parsed value, ready to append; text borrows from its source where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// Null.
    Null,
    /// Text.
    Str(Cow<'a, str>),
    /// Boolean.
    Bool(bool),
    /// Any signed integer (range checked for the column type).
    Int(i64),
    /// Any unsigned integer.
    UInt(u64),
    /// Floating point.
    Float(f64),
    /// Decimal mantissa at the column's scale.
    Decimal(i128),
    /// Days since the epoch.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    /// Microseconds since midnight.
    Time(i64),
    /// List items.
    List(Vec<Cell<'a>>),
    /// Struct fields in declared order.
    Struct(Vec<Cell<'a>>),
}

impl Cell<'_> {
    /// The cell, its text owned.
    pub fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Null => Cell::Null,
            Cell::Str(s) => Cell::Str(Cow::Owned(s.into_owned())),
            Cell::Bool(v) => Cell::Bool(v),
            Cell::Int(v) => Cell::Int(v),
            Cell::UInt(v) => Cell::UInt(v),
            Cell::Float(v) => Cell::Float(v),
            Cell::Decimal(v) => Cell::Decimal(v),
            Cell::Date(v) => Cell::Date(v),
            Cell::Timestamp(v) => Cell::Timestamp(v),
            Cell::Time(v) => Cell::Time(v),
            Cell::List(items) => Cell::List(items.into_iter().map(Cell::into_owned).collect()),
            Cell::Struct(items) => Cell::Struct(items.into_iter().map(Cell::into_owned).collect()),
        }
    }
}

/// Parses a text value (CSV) into a cell of the spec's type. Blank text is null.
pub fn parse_text<'a>(spec: &ColumnSpec, text: &'a str) -> Result<Cell<'a>, String> {
    matches_pattern(spec, text)?;
    parse_str(&spec.data_type, text, spec)
}

/// The recipe's `patterns`: text that does not match cannot be typed (blank text is null).
fn matches_pattern(spec: &ColumnSpec, text: &str) -> Result<(), String> {
    match &spec.pattern {
        Some(re) if !text.trim().is_empty() && !re.is_match(text.trim()) => Err(format!(
            "`{}` does not match the pattern `{}`",
            shorten(text.trim()),
            re.as_str()
        )),
        _ => Ok(()),
    }
}

fn parse_str<'a>(dt: &DataType, text: &'a str, spec: &ColumnSpec) -> Result<Cell<'a>, String> {
    if let DataType::Utf8 = dt {
        return Ok(if text.is_empty() {
            Cell::Null
        } else {
            Cell::Str(Cow::Borrowed(text))
        });
    }
    let t = text.trim();
    if t.is_empty() {
        return Ok(Cell::Null);
    }
    let fail = |what: &str| Err(format!("cannot read `{}` as {what}", shorten(t)));
    match dt {
        DataType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(Cell::Bool(true)),
            "false" | "f" | "no" | "n" | "0" => Ok(Cell::Bool(false)),
            _ => fail("a boolean"),
        },
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            match t.parse::<i64>() {
                Ok(v) => int_in_range(dt, v),
                Err(_) => fail(&format!("an integer ({dt})")),
            }
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            match t.parse::<u64>() {
                Ok(v) => uint_in_range(dt, v),
                Err(_) => fail(&format!("an unsigned integer ({dt})")),
            }
        }
        DataType::Float32 | DataType::Float64 => match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Cell::Float(v)),
            _ => fail("a number"),
        },
        DataType::Decimal128(p, s) => {
            parse_decimal_rounded(t, *p, *s, spec.rounding).map(Cell::Decimal)
        }
        DataType::Date32 => parse_date(t, spec)
            .map(Cell::Date)
            .ok_or_else(|| format!("cannot read `{}` as a date", shorten(t))),
        DataType::Timestamp(_, _) => timestamp(t, spec).map(Cell::Timestamp),
        DataType::Time64(_) => NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
            .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
            .map(|v| Cell::Time(time_micros(v)))
            .map_err(|_| format!("cannot read `{}` as a time", shorten(t))),
        DataType::List(_) | DataType::Struct(_) => match Json::parse(t.as_bytes()) {
            Ok(v) => parse_json_as(dt, &v, spec),
            Err(e) => Err(format!("cannot read `{}` as JSON: {e}", shorten(t))),
        },
        other => Err(format!("type `{other}` is not supported for ingest")),
    }
}

/// Parses a JSON value into a cell of the spec's type.
pub fn parse_json<'a>(spec: &ColumnSpec, value: &'a Value) -> Result<Cell<'a>, String> {
    parse_json_ref(spec, &Json::borrow(value))
}

/// [`parse_json`] of a value read as [`Json`] (NDJSON lines, nested CSV values): text borrows
/// from `value`'s source where `value` does.
pub fn parse_json_ref<'a>(spec: &ColumnSpec, value: &Json<'a>) -> Result<Cell<'a>, String> {
    match value {
        Json::Str(s) => return str_cell(s, |s| parse_json_str(spec, s)),
        Json::Number(n) => matches_pattern(spec, &n.to_string())?,
        _ => {}
    }
    parse_json_as(&spec.data_type, value, spec)
}

/// [`parse_json`] of a JSON string: whatever the column's type, its text is read as CSV text
/// is, after the pattern.
pub fn parse_json_str<'a>(spec: &ColumnSpec, s: &'a str) -> Result<Cell<'a>, String> {
    matches_pattern(spec, s)?;
    parse_str(&spec.data_type, s, spec)
}

/// The cell `parse` makes of a JSON string, borrowing from the string's source if it does.
fn str_cell<'a>(
    s: &Cow<'a, str>,
    parse: impl for<'s> FnOnce(&'s str) -> Result<Cell<'s>, String>,
) -> Result<Cell<'a>, String> {
    match s {
        Cow::Borrowed(s) => parse(s),
        Cow::Owned(s) => parse(s).map(Cell::into_owned),
    }
}

fn parse_json_as<'a>(
    dt: &DataType,
    value: &Json<'a>,
    spec: &ColumnSpec,
) -> Result<Cell<'a>, String> {
    match (dt, value) {
        (_, Json::Null) => Ok(Cell::Null),
        (DataType::Utf8, Json::Str(s)) => str_cell(s, |s| parse_str(dt, s, spec)),
        (DataType::Utf8, other) => Ok(Cell::Str(Cow::Owned(other.to_value().to_string()))),
        (DataType::List(item), Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                parse_json_as(item.data_type(), v, spec).map_err(|e| format!("item {i}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cell::List),
        (DataType::Struct(fields), Json::Object(map)) => fields
            .iter()
            .map(|f| {
                let v = json::get(map, f.name()).unwrap_or(&Json::Null);
                parse_json_as(f.data_type(), v, spec)
                    .map_err(|e| format!("field `{}`: {e}", f.name()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cell::Struct),
        (DataType::List(_) | DataType::Struct(_), Json::Str(s)) => {
            str_cell(s, |s| parse_str(dt, s, spec))
        }
        (DataType::Decimal128(p, s), Json::Number(n)) => {
            // Exact, like text: more decimal places than the scale are refused, never rounded.
            // Integers keep their digits; a float prints as the shortest text that reads back
            // as it (Rust's `Display` never uses an exponent), i.e. the number the source wrote.
            let text = match n.as_f64() {
                Some(f) if !(n.is_i64() || n.is_u64()) => f.to_string(),
                _ => n.to_string(),
            };
            parse_decimal_rounded(&text, *p, *s, spec.rounding).map(Cell::Decimal)
        }
        (DataType::Float32 | DataType::Float64, Json::Number(n)) => n
            .as_f64()
            .map(Cell::Float)
            .ok_or_else(|| format!("number `{n}` out of range")),
        (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, Json::Number(n)) => {
            n.as_i64()
                .ok_or_else(|| format!("`{n}` is not an integer"))
                .and_then(|v| int_in_range(dt, v))
        }
        (
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64,
            Json::Number(n),
        ) => n
            .as_u64()
            .ok_or_else(|| format!("`{n}` is not an unsigned integer"))
            .and_then(|v| uint_in_range(dt, v)),
        (DataType::Boolean, Json::Bool(b)) => Ok(Cell::Bool(*b)),
        // Not through text: a list or struct column reads text as JSON, which would give this
        // number or boolean back, forever.
        (DataType::List(_) | DataType::Struct(_), other) => {
            Err(format!("a JSON {} cannot be {dt}", other.kind()))
        }
        (_, Json::Str(s)) => str_cell(s, |s| parse_str(dt, s, spec)),
        (_, Json::Number(n)) => parse_str(dt, &n.to_string(), spec).map(Cell::into_owned),
        (_, Json::Bool(b)) => parse_str(dt, &b.to_string(), spec).map(Cell::into_owned),
        (dt, other) => Err(format!("a JSON {} cannot be {dt}", other.kind())),
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_owned()
    }
}

fn int_in_range(dt: &DataType, v: i64) -> Result<Cell<'static>, String> {
    let (lo, hi) = match dt {
        DataType::Int8 => (i64::from(i8::MIN), i64::from(i8::MAX)),
        DataType::Int16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        DataType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    if (lo..=hi).contains(&v) {
        Ok(Cell::Int(v))
    } else {
        Err(format!("`{v}` does not fit {dt}"))
    }
}

fn uint_in_range(dt: &DataType, v: u64) -> Result<Cell<'static>, String> {
    let hi = match dt {
        DataType::UInt8 => u64::from(u8::MAX),
        DataType::UInt16 => u64::from(u16::MAX),
        DataType::UInt32 => u64::from(u32::MAX),
        _ => u64::MAX,
    };
    if v <= hi {
        Ok(Cell::UInt(v))
    } else {
        Err(format!("`{v}` does not fit {dt}"))
    }
}

/// Parses an exact decimal. More fraction digits than the scale is an error, never a silent
/// rounding of text the source wrote (see [`parse_decimal_rounded`] for the recipe's modes).
pub fn parse_decimal(t: &str, precision: u8, scale: i8) -> Result<i128, String> {
    parse_decimal_rounded(t, precision, scale, DecimalRounding::Reject)
}

/// Parses a decimal: digits with an optional sign and one `.`, nothing else (a thousands
/// separator such as `1,234.5` or `1 234` is refused, never misread). More fraction digits than
/// the scale are refused under [`DecimalRounding::Reject`], else rounded to the scale.
pub fn parse_decimal_rounded(
    t: &str,
    precision: u8,
    scale: i8,
    rounding: DecimalRounding,
) -> Result<i128, String> {
    let bad = || {
        format!(
            "cannot read `{}` as decimal({precision},{scale})",
            shorten(t)
        )
    };
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let scale_u = usize::try_from(scale.max(0)).unwrap_or(0);
    let frac_trimmed = frac.trim_end_matches('0');
    let (kept, dropped) = if frac_trimmed.len() > scale_u {
        if rounding == DecimalRounding::Reject {
            return Err(format!(
                "`{}` has more than {scale} decimal places",
                shorten(t)
            ));
        }
        frac_trimmed.split_at(scale_u)
    } else {
        (frac_trimmed, "")
    };
    let int = int.trim_start_matches('0');
    let too_big = || format!("`{}` does not fit decimal({precision},{scale})", shorten(t));
    if int.len() + scale_u > usize::from(precision) {
        return Err(too_big());
    }
    let mut text = String::with_capacity(int.len() + scale_u);
    text.push_str(int);
    text.push_str(kept);
    text.extend(std::iter::repeat_n('0', scale_u - kept.len()));
    let mut v: i128 = if text.is_empty() {
        0
    } else {
        text.parse().map_err(|_| bad())?
    };
    if let Some(first) = dropped.bytes().next() {
        let first = first - b'0';
        let rest = dropped.bytes().skip(1).any(|b| b != b'0');
        let up = match rounding {
            DecimalRounding::HalfUp => first >= 5,
            DecimalRounding::HalfEven => first > 5 || (first == 5 && (rest || v % 2 == 1)),
            DecimalRounding::Reject => false,
        };
        if up {
            v += 1;
        }
    }
    if v >= 10i128.pow(u32::from(precision.min(38))) {
        return Err(too_big());
    }
    Ok(if neg { -v } else { v })
}

fn time_micros(t: NaiveTime) -> i64 {
    use chrono::Timelike;
    i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)
}

fn parse_date(t: &str, spec: &ColumnSpec) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    // Recipe formats read the date as written (not through an instant, which a time zone
    // would move to another day).
    let date = spec
        .formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
        .or_else(|| {
            spec.format
                .as_deref()
                .and_then(|f| NaiveDate::parse_from_str(t, f).ok())
        })
        .or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .or_else(|| {
            parse_timestamp(t, spec)
                .and_then(DateTime::from_timestamp_micros)
                .map(|d| d.date_naive())
        })?;
    i32::try_from((date - epoch).num_days()).ok()
}

const NAIVE_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];
const OFFSET_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"];

/// Parses a timestamp to UTC microseconds (`None` when it cannot; see [`timestamp`] for why).
pub fn parse_timestamp(t: &str, spec: &ColumnSpec) -> Option<i64> {
    timestamp(t, spec).ok()
}

/// A naive date-time in the column's zone (UTC without one), as UTC microseconds. A time that
/// a daylight-saving change repeats takes its earliest instant; one that it skips is an error.
fn local_to_utc(n: NaiveDateTime, spec: &ColumnSpec) -> Result<i64, String> {
    match spec.timezone {
        None => Ok(n.and_utc().timestamp_micros()),
        Some(tz) => match tz.from_local_datetime(&n) {
            LocalResult::Single(d) => Ok(d.with_timezone(&Utc).timestamp_micros()),
            LocalResult::Ambiguous(earliest, _) => {
                Ok(earliest.with_timezone(&Utc).timestamp_micros())
            }
            LocalResult::None => Err(format!(
                "`{n}` does not exist in {tz} (skipped by a daylight-saving change)"
            )),
        },
    }
}

/// 1900-01-01T00:00:00Z in microseconds.
const EPOCH_MIN_MICROS: i64 = -2_208_988_800_000_000;
/// 2200-01-01T00:00:00Z in microseconds.
const EPOCH_MAX_MICROS: i64 = 7_258_118_400_000_000;

/// One recipe format: `Ok(None)` when the text does not have this shape.
fn with_format(t: &str, f: &str, spec: &ColumnSpec) -> Result<Option<i64>, String> {
    let epoch = |unit: i64| -> Result<Option<i64>, String> {
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        // An epoch format takes the values that land between the years 1900 and 2200, so
        // that `epoch_s` before `epoch_ms` reads seconds and milliseconds apart.
        Ok(t.parse::<i64>()
            .ok()
            .and_then(|v| v.checked_mul(unit))
            .filter(|us| (EPOCH_MIN_MICROS..EPOCH_MAX_MICROS).contains(us)))
    };
    match f {
        "iso8601" => match iso8601(t) {
            None => Ok(None),
            Some((naive, None)) => local_to_utc(naive, spec).map(Some),
            Some((naive, Some(offset))) => Ok(Some(
                naive.and_utc().timestamp_micros() - i64::from(offset) * 1_000_000,
            )),
        },
        "epoch_s_9to11" => {
            if (9..=11).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
                Ok(t.parse::<i64>().ok().and_then(|v| v.checked_mul(1_000_000)))
            } else {
                Ok(None)
            }
        }
        "epoch_s" => epoch(1_000_000),
        "epoch_ms" => epoch(1_000),
        "epoch_us" => epoch(1),
        _ => {
            if let Ok(d) = DateTime::parse_from_str(t, f) {
                return Ok(Some(d.with_timezone(&Utc).timestamp_micros()));
            }
            if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
                return local_to_utc(n, spec).map(Some);
            }
            match NaiveDate::parse_from_str(t, f) {
                Ok(d) => local_to_utc(d.and_time(NaiveTime::MIN), spec).map(Some),
                Err(_) => Ok(None),
            }
        }
    }
}

/// The strict ISO 8601 grammar of the `iso8601` format:
/// `YYYY-MM-DD[T ]hh:mm:ss[.f]` with 1 to 6 fraction digits, then nothing (a naive time), `Z`,
/// or an offset `±hh:mm` / `±hhmm`. Returns the date-time as written and the offset in seconds
/// east of UTC; `None` when the text has another shape or names no valid date or time
/// (`2024-02-30`, `25:61`); `24:00:00` is the next day's midnight.
fn iso8601(t: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let b = t.as_bytes();
    let digits = |from: usize, n: usize| -> Option<u32> {
        let s = b.get(from..from + n)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if b.len() < 19 || !at(4, b'-') || !at(7, b'-') || !(at(10, b'T') || at(10, b' ')) {
        return None;
    }
    if !at(13, b':') || !at(16, b':') {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let mut i = 19;
    let mut micros = 0u32;
    if at(i, b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=6).contains(&n) {
            return None;
        }
        micros = digits(i + 1, n)? * 10u32.pow(6 - n as u32);
        i += 1 + n;
    }
    let offset = match b.get(i) {
        None => None,
        Some(b'Z') if i + 1 == b.len() => Some(0),
        Some(&sign @ (b'+' | b'-')) => {
            let hh = digits(i + 1, 2)?;
            let rest = if at(i + 3, b':') { i + 4 } else { i + 3 };
            let mm = digits(rest, 2)?;
            if rest + 2 != b.len() || mm > 59 {
                return None;
            }
            let secs = i32::try_from(hh * 3600 + mm * 60).ok()?;
            Some(if sign == b'-' { -secs } else { secs })
        }
        Some(_) => return None,
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    // `24:00:00` is the midnight that ends the day, as ISO 8601 (and DuckDB) read it.
    if (hour, minute, second, micros) == (24, 0, 0, 0) {
        return Some((date.succ_opt()?.and_time(NaiveTime::MIN), offset));
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    Some((date.and_time(time), offset))
}

/// Parses a timestamp to UTC microseconds: the recipe's formats in order, then the contract's
/// format, RFC 3339, ISO 8601 with or without offset (no offset = the column's time zone, else
/// UTC), a date alone, or epoch seconds (9 to 11 digits) or milliseconds (12 or 13). The error
/// says why: no shape matched, or a local time a daylight-saving change skips.
pub fn timestamp(t: &str, spec: &ColumnSpec) -> Result<i64, String> {
    for f in &spec.formats {
        if let Some(v) = with_format(t, f, spec)? {
            return Ok(v);
        }
    }
    let unreadable = || {
        if spec.formats.is_empty() {
            format!("cannot read `{}` as a timestamp", shorten(t))
        } else {
            format!(
                "cannot read `{}` as a timestamp (formats tried: {})",
                shorten(t),
                spec.formats.join(", ")
            )
        }
    };
    if spec.only_formats {
        return Err(unreadable());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = t.parse().map_err(|_| unreadable())?;
        return match t.len() {
            9..=11 => v.checked_mul(1_000_000),
            12 | 13 => v.checked_mul(1_000),
            _ => None,
        }
        .ok_or_else(unreadable);
    }
    if let Some(f) = spec.format.as_deref() {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Ok(d.with_timezone(&Utc).timestamp_micros());
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return local_to_utc(n, spec);
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc).timestamp_micros());
    }
    for f in OFFSET_FORMATS {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Ok(d.with_timezone(&Utc).timestamp_micros());
        }
    }
    for f in NAIVE_FORMATS {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return local_to_utc(n, spec);
        }
    }
    match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Ok(d) => local_to_utc(d.and_time(NaiveTime::MIN), spec),
        Err(_) => Err(unreadable()),
    }
}

/// Converts the common JDK `DateTimeFormatter` letters of ODCS formats to chrono's.
pub fn jdk_to_chrono(format: &str) -> String {
    let mut out = format.to_owned();
    for (jdk, chrono) in [
        ("yyyy", "%Y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSSSSS", "%6f"),
        ("SSS", "%3f"),
        ("XXX", "%:z"),
        ("Z", "%z"),
    ] {
        out = out.replace(jdk, chrono);
    }
    out
}

/// Builds one column from cells.
#[derive(Debug)]
pub struct ColumnBuilder {
    field: FieldRef,
    kind: Kind,
}

enum Kind {
    Leaf(Box<dyn ArrayBuilder>),
    List {
        item: Box<ColumnBuilder>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
    Struct {
        children: Vec<ColumnBuilder>,
        valid: Vec<bool>,
    },
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Leaf(b) => write!(f, "Leaf({} values)", b.len()),
            Kind::List { item, .. } => f.debug_tuple("List").field(item).finish(),
            Kind::Struct { children, .. } => f.debug_tuple("Struct").field(children).finish(),
        }
    }
}

impl ColumnBuilder {
    /// A builder for a field.
    pub fn new(field: FieldRef) -> Result<Self, String> {
        let kind = match field.data_type() {
            DataType::List(item) => Kind::List {
                item: Box::new(ColumnBuilder::new(Arc::clone(item))?),
                offsets: vec![0],
                valid: Vec::new(),
            },
            DataType::Struct(fields) => Kind::Struct {
                children: fields
                    .iter()
                    .map(|f| ColumnBuilder::new(Arc::clone(f)))
                    .collect::<Result<_, _>>()?,
                valid: Vec::new(),
            },
            DataType::Utf8 => Kind::Leaf(Box::new(StringBuilder::new())),
            DataType::Boolean => Kind::Leaf(Box::new(BooleanBuilder::new())),
            DataType::Int8 => Kind::Leaf(Box::new(Int8Builder::new())),
            DataType::Int16 => Kind::Leaf(Box::new(Int16Builder::new())),
            DataType::Int32 => Kind::Leaf(Box::new(Int32Builder::new())),
            DataType::Int64 => Kind::Leaf(Box::new(Int64Builder::new())),
            DataType::UInt8 => Kind::Leaf(Box::new(UInt8Builder::new())),
            DataType::UInt16 => Kind::Leaf(Box::new(UInt16Builder::new())),
            DataType::UInt32 => Kind::Leaf(Box::new(UInt32Builder::new())),
            DataType::UInt64 => Kind::Leaf(Box::new(UInt64Builder::new())),
            DataType::Float32 => Kind::Leaf(Box::new(Float32Builder::new())),
            DataType::Float64 => Kind::Leaf(Box::new(Float64Builder::new())),
            DataType::Decimal128(p, s) => Kind::Leaf(Box::new(
                Decimal128Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )),
            DataType::Date32 => Kind::Leaf(Box::new(Date32Builder::new())),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Kind::Leaf(Box::new(
                TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone()),
            )),
            DataType::Time64(TimeUnit::Microsecond) => {
                Kind::Leaf(Box::new(Time64MicrosecondBuilder::new()))
            }
            other => return Err(format!("type `{other}` is not supported for ingest")),
        };
        Ok(ColumnBuilder { field, kind })
    }

    /// Appends a cell parsed for this column's type. A cell of another shape appends null:
    /// callers only pass cells that [`parse_text`]/[`parse_json`] made for this type.
    pub fn append(&mut self, cell: &Cell<'_>) {
        match &mut self.kind {
            Kind::List {
                item,
                offsets,
                valid,
            } => {
                let last = offsets.last().copied().unwrap_or(0);
                if let Cell::List(items) = cell {
                    for i in items {
                        item.append(i);
                    }
                    offsets.push(last + items.len() as i32);
                    valid.push(true);
                } else {
                    offsets.push(last);
                    valid.push(false);
                }
            }
            Kind::Struct { children, valid } => {
                if let Cell::Struct(values) = cell {
                    for (c, v) in children.iter_mut().zip(values) {
                        c.append(v);
                    }
                    valid.push(true);
                } else {
                    for c in children.iter_mut() {
                        c.append(&Cell::Null);
                    }
                    valid.push(false);
                }
            }
            Kind::Leaf(b) => append_leaf(b.as_mut(), cell),
        }
    }

    /// The column built so far; the builder is reset.
    pub fn finish(&mut self) -> ArrayRef {
        match &mut self.kind {
            Kind::Leaf(b) => b.finish(),
            Kind::List {
                item,
                offsets,
                valid,
            } => {
                let values = item.finish();
                let offs = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(valid));
                let DataType::List(f) = self.field.data_type() else {
                    return values;
                };
                Arc::new(ListArray::new(Arc::clone(f), offs, values, Some(nulls)))
            }
            Kind::Struct { children, valid } => {
                let arrays: Vec<ArrayRef> =
                    children.iter_mut().map(ColumnBuilder::finish).collect();
                let nulls = NullBuffer::from(std::mem::take(valid));
                let DataType::Struct(fields) = self.field.data_type() else {
                    return Arc::new(StructArray::new_empty_fields(0, None));
                };
                Arc::new(StructArray::new(fields.clone(), arrays, Some(nulls)))
            }
        }
    }
}

fn append_leaf(b: &mut dyn ArrayBuilder, cell: &Cell<'_>) {
    let any = b.as_any_mut();
    macro_rules! put {
        ($ty:ty, $v:expr) => {
            if let Some(b) = any.downcast_mut::<$ty>() {
                b.append_option($v);
                return;
            }
        };
    }
    match cell {
        Cell::Str(s) => put!(StringBuilder, Some(s.as_ref())),
        Cell::Bool(v) => put!(BooleanBuilder, Some(*v)),
        Cell::Int(v) => {
            put!(Int64Builder, Some(*v));
            put!(Int32Builder, i32::try_from(*v).ok());
            put!(Int16Builder, i16::try_from(*v).ok());
            put!(Int8Builder, i8::try_from(*v).ok());
        }
        Cell::UInt(v) => {
            put!(UInt64Builder, Some(*v));
            put!(UInt32Builder, u32::try_from(*v).ok());
            put!(UInt16Builder, u16::try_from(*v).ok());
            put!(UInt8Builder, u8::try_from(*v).ok());
        }
        Cell::Float(v) => {
            put!(Float64Builder, Some(*v));
            put!(Float32Builder, Some(*v as f32));
        }
        Cell::Decimal(v) => put!(Decimal128Builder, Some(*v)),
        Cell::Date(v) => put!(Date32Builder, Some(*v)),
        Cell::Timestamp(v) => put!(TimestampMicrosecondBuilder, Some(*v)),
        Cell::Time(v) => put!(Time64MicrosecondBuilder, Some(*v)),
        Cell::Null | Cell::List(_) | Cell::Struct(_) => {}
    }
    append_null(any);
}

fn append_null(any: &mut dyn std::any::Any) {
    macro_rules! null {
        ($($ty:ty),*) => {
            $(if let Some(b) = any.downcast_mut::<$ty>() { b.append_null(); return; })*
        };
    }
    null!(
        StringBuilder,
        BooleanBuilder,
        Int8Builder,
        Int16Builder,
        Int32Builder,
        Int64Builder,
        UInt8Builder,
        UInt16Builder,
        UInt32Builder,
        UInt64Builder,
        Float32Builder,
        Float64Builder,
        Decimal128Builder,
        Date32Builder,
        TimestampMicrosecondBuilder,
        Time64MicrosecondBuilder
    );
}

/// The schema every zone before publishing uses: the contract's columns, all nullable, so a
/// missing required value is a row to quarantine rather than a write error.
pub fn nullable_fields(fields: &Fields) -> Fields {
    fields.iter().map(|f| Arc::new(relax(f))).collect()
}

fn relax(f: &Field) -> Field {
    let dt = match f.data_type() {
        DataType::List(item) => DataType::List(Arc::new(relax(item))),
        DataType::Struct(fields) => DataType::Struct(nullable_fields(fields)),
        other => other.clone(),
    };
    Field::new(f.name(), dt, true).with_metadata(f.metadata().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dt: DataType) -> ColumnSpec {
        ColumnSpec {
            name: "c".into(),
            data_type: dt,
            timezone: None,
            format: None,
            formats: Vec::new(),
            rounding: DecimalRounding::Reject,
            lenient: false,
            source: None,
            only_formats: false,
            pattern: None,
        }
    }

    fn ts(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn timestamps_in_many_shapes_become_utc() {
        let s = spec(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        ));
        for (text, expected) in [
            ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
            ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"),
            ("2024-05-01 12:00:00+0200", "2024-05-01T10:00:00Z"),
            ("2024-05-01 10:00:00", "2024-05-01T10:00:00Z"),
            ("2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00.123456Z"),
            ("1714557600", "2024-05-01T10:00:00Z"),
            ("2024-05-01", "2024-05-01T00:00:00Z"),
        ] {
            assert_eq!(
                parse_text(&s, text),
                Ok(Cell::Timestamp(ts(expected))),
                "{text}"
            );
        }
        assert!(parse_text(&s, "2024-02-30 10:00:00").is_err());
        assert!(parse_text(&s, "yesterday").is_err());
        let paris = ColumnSpec {
            timezone: Some(chrono_tz::Europe::Paris),
            ..s
        };
        assert_eq!(
            parse_text(&paris, "2024-05-01 12:00:00"),
            Ok(Cell::Timestamp(ts("2024-05-01T10:00:00Z")))
        );
    }

    #[test]
    fn the_strict_grammar_reads_only_its_shapes() {
        let s = ColumnSpec {
            formats: vec!["epoch_s_9to11".into(), "iso8601".into()],
            only_formats: true,
            ..spec(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            ))
        };
        for (text, expected) in [
            ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
            ("2024-05-01 12:00:00+0200", "2024-05-01T10:00:00Z"),
            (
                "2024-05-01T12:00:00.123456+02:00",
                "2024-05-01T10:00:00.123456Z",
            ),
            ("2024-05-01T09:30:00-00:30", "2024-05-01T10:00:00Z"),
            ("2024-05-01 10:00:00", "2024-05-01T10:00:00Z"),
            ("2024-04-30 24:00:00", "2024-05-01T00:00:00Z"),
            ("1714557600", "2024-05-01T10:00:00Z"),
            ("099999999", "1973-03-03T09:46:39Z"),
        ] {
            assert_eq!(
                parse_text(&s, text),
                Ok(Cell::Timestamp(ts(expected))),
                "{text}"
            );
        }
        for text in [
            "2024-05-01",
            "2024-05-01T10:00",
            "2024-05-01T10:00:00.1234567Z",
            "2024-05-01T10:00:00.Z",
            "2024-05-01T10:00:00+02",
            "2024-05-01T10:00:00z",
            "2024-05-01t10:00:00Z",
            "2024-02-30T10:00:00Z",
            "2024-05-01T25:61:00Z",
            "2024-05-01T23:59:60Z",
            "99999999",
            "171455760000",
            "-1714557600",
        ] {
            assert!(parse_text(&s, text).is_err(), "{text}");
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.5", 12, 2), Ok(1250));
        assert_eq!(parse_decimal("-0.07", 12, 2), Ok(-7));
        assert_eq!(parse_decimal("+3", 12, 2), Ok(300));
        assert_eq!(parse_decimal("1.230", 12, 2), Ok(123));
        assert!(parse_decimal("1.234", 12, 2).is_err());
        assert!(parse_decimal("12345678901", 12, 2).is_err());
        assert!(parse_decimal("1e3", 12, 2).is_err());
        assert!(parse_decimal(".", 12, 2).is_err());
    }

    #[test]
    fn recipe_formats_come_first_and_local_times_follow_the_zone() {
        let s = ColumnSpec {
            formats: vec!["%d/%m/%Y %H:%M".into(), "epoch_s".into(), "epoch_ms".into()],
            timezone: Some(chrono_tz::Europe::Paris),
            ..spec(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            ))
        };
        assert_eq!(
            timestamp("01/02/2024 10:00", &s),
            Ok(ts("2024-02-01T09:00:00Z"))
        );
        // Seconds and milliseconds told apart by the instant they give.
        assert_eq!(timestamp("1714557600", &s), Ok(ts("2024-05-01T10:00:00Z")));
        assert_eq!(
            timestamp("1714557600500", &s),
            Ok(ts("2024-05-01T10:00:00.500Z"))
        );
        assert_eq!(timestamp("-86400", &s), Ok(ts("1969-12-31T00:00:00Z")));
        // Without the recipe, a day-first date is not read at all.
        let plain = spec(s.data_type.clone());
        assert!(timestamp("01/02/2024 10:00", &plain).is_err());
        // The autumn hour that happens twice takes its first instant; the spring hour that
        // does not happen is refused with the reason.
        assert_eq!(
            timestamp("2024-10-27 02:30:00", &s),
            Ok(ts("2024-10-27T00:30:00Z"))
        );
        assert_eq!(
            timestamp("31/03/2024 02:30", &s),
            Err("`2024-03-31 02:30:00` does not exist in Europe/Paris (skipped by a daylight-saving change)".into())
        );
        // A date column reads the local date as written, whatever the zone.
        let day = ColumnSpec {
            data_type: DataType::Date32,
            ..s.clone()
        };
        assert_eq!(parse_text(&day, "15/01/2024 00:30"), Ok(Cell::Date(19737)));
        // An explicit offset wins over the zone.
        assert_eq!(
            timestamp("2024-03-31T02:30:00+00:00", &s),
            Ok(ts("2024-03-31T02:30:00Z"))
        );
    }

    #[test]
    fn decimals_round_per_mode_and_never_misread_separators() {
        use DecimalRounding::{HalfEven, HalfUp, Reject};
        for (text, even, up) in [
            ("0.125", Ok(12), Ok(13)),
            ("0.135", Ok(14), Ok(14)),
            ("0.1251", Ok(13), Ok(13)),
            ("-0.125", Ok(-12), Ok(-13)),
            ("-0.135", Ok(-14), Ok(-14)),
            ("2.5", Ok(250), Ok(250)),
            ("9.999", Err(()), Err(())),
        ] {
            assert_eq!(
                parse_decimal_rounded(text, 3, 2, HalfEven).map_err(|_| ()),
                even,
                "{text} half_even"
            );
            assert_eq!(
                parse_decimal_rounded(text, 3, 2, HalfUp).map_err(|_| ()),
                up,
                "{text} half_up"
            );
        }
        assert_eq!(
            parse_decimal_rounded("0.125", 3, 2, Reject),
            Err("`0.125` has more than 2 decimal places".into())
        );
        assert_eq!(
            parse_decimal_rounded("9.999", 3, 2, HalfUp),
            Err("`9.999` does not fit decimal(3,2)".into())
        );
        for text in ["1,234.5", "1.234,5", "1 234", "1_234", "1'234", "12e2"] {
            for mode in [Reject, HalfEven, HalfUp] {
                assert_eq!(
                    parse_decimal_rounded(text, 12, 2, mode),
                    Err(format!("cannot read `{text}` as decimal(12,2)")),
                    "{text}"
                );
            }
        }
        // Floats refuse separators too.
        assert!(parse_text(&spec(DataType::Float64), "1,234.5").is_err());
    }

    #[test]
    fn nested_json_builds_lists_of_structs() {
        let item = DataType::Struct(Fields::from(vec![
            Field::new("sku", DataType::Utf8, true),
            Field::new("qty", DataType::Int32, true),
        ]));
        let field = Arc::new(Field::new(
            "items",
            DataType::List(Arc::new(Field::new("item", item, true))),
            true,
        ));
        let s = spec(field.data_type().clone());
        let mut b = ColumnBuilder::new(Arc::clone(&field)).unwrap();
        b.append(&parse_text(&s, r#"[{"sku":"A","qty":2},{"sku":"B"}]"#).unwrap());
        b.append(&Cell::Null);
        assert!(parse_text(&s, r#"[{"sku":"A","qty":"two"}]"#).is_err());
        let array = b.finish();
        assert_eq!(array.len(), 2);
        assert_eq!(array.null_count(), 1);
        let list = array.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.value(0).len(), 2);
    }

    #[test]
    fn nested_text_types_as_its_json_value_does_and_borrows_its_strings() {
        let item = DataType::Struct(Fields::from(vec![
            Field::new("sku", DataType::Utf8, true),
            Field::new("qty", DataType::Int32, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("tags", DataType::Utf8, true),
        ]));
        let s = spec(DataType::List(Arc::new(Field::new("item", item, true))));
        let texts = [
            r#"[{"sku":"A","qty":2,"price":1.5},{"sku":"B\u00e9","price":"2.25"}]"#,
            r#"[{"sku":"A","sku":"C","tags":{"x":[1,2]},"price":3}]"#,
            r#"[{"qty":"two"}]"#,
            r#"[{"qty":1},{"price":1.234}]"#,
            r#"[{"sku":"A"}, 7]"#,
            r#"[true]"#,
            r#"7"#,
            r#"{"sku":"A"}"#,
            r#"[{"sku":"A"}"#,
        ];
        for text in texts {
            let value: Result<Value, _> = serde_json::from_str(text);
            let from_text = parse_text(&s, text);
            match value {
                Ok(v) => assert_eq!(from_text, parse_json(&s, &v), "{text}"),
                Err(e) => assert_eq!(
                    from_text,
                    Err(format!("cannot read `{}` as JSON: {e}", shorten(text))),
                    "{text}"
                ),
            }
        }
        let Ok(Cell::List(items)) = parse_text(&s, texts[0]) else {
            panic!("not a list")
        };
        let Cell::Struct(first) = &items[0] else {
            panic!("not a struct")
        };
        assert!(matches!(&first[0], Cell::Str(Cow::Borrowed("A"))));
        // A scalar where a struct is expected is refused (it once recursed until the stack ran out).
        let refused = parse_text(&s, r#"[{"sku":"A"}, 7]"#).unwrap_err();
        assert!(
            refused.starts_with("item 1: a JSON number cannot be Struct"),
            "{refused}"
        );
        assert_eq!(first[2], Cell::Decimal(150));
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(parse_text(&spec(DataType::Int8), "127"), Ok(Cell::Int(127)));
        assert!(parse_text(&spec(DataType::Int8), "128").is_err());
        assert!(parse_json(&spec(DataType::Int32), &serde_json::json!(1.5)).is_err());
        assert_eq!(parse_text(&spec(DataType::Int32), "  "), Ok(Cell::Null));
    }
}
