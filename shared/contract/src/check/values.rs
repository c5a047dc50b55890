//! Reading Arrow values for the checks.
//!
//! Distinct-value tracking hashes a canonical byte encoding of each value (or
//! combination of values) with xxh3-128, so memory grows with the number of
//! distinct keys, not with their size. The same encoding turns contract values
//! (`validValues`, `missingValues`) into hashes comparable with the column's.
//! Bounds (`minimum`, ...) are compared as `f64` for numbers and as exact
//! integers for dates (days), timestamps (UTC nanoseconds) and times of day
//! (nanoseconds since midnight).

use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{Array, AsArray};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::*;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;
use serde_json::Value;

/// Writes the canonical encoding of row `i` (known to be non-null) into the buffer.
pub(crate) type Encoder<'a> = Box<dyn Fn(usize, &mut Vec<u8>) + 'a>;
/// Reads row `i` (known to be non-null) as a number or an exact instant/day/time.
pub(crate) type Reader<'a, T> = Box<dyn Fn(usize) -> T + 'a>;

/// Days between 0001-01-01 (day 1 of the common era) and 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i128 = 719_163;
const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// 128-bit hash of an encoded value.
pub(crate) fn hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// Hasher for keys that already are good hashes: folds the 128 bits into 64.
#[derive(Debug, Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

/// A set of value hashes.
pub type HashSet = std::collections::HashSet<u128, BuildHasherDefault<KeyHasher>>;

/// A map keyed by value hashes.
pub type HashMap<V> = std::collections::HashMap<u128, V, BuildHasherDefault<KeyHasher>>;

fn float_bits(v: f64) -> [u8; 8] {
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    };
    v.to_bits().to_le_bytes()
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b's');
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_int(buf: &mut Vec<u8>, v: i128) {
    buf.push(b'i');
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_float(buf: &mut Vec<u8>, v: f64) {
    buf.push(b'f');
    buf.extend_from_slice(&float_bits(v));
}

fn put_tagged(buf: &mut Vec<u8>, tag: u8, v: i128) {
    buf.push(tag);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// The canonical encoder of an array's values; `None` for unsupported types.
pub(crate) fn encoder(array: &dyn Array) -> Option<Encoder<'_>> {
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive_opt::<$t>()?;
            Box::new(move |i, buf: &mut Vec<u8>| put_int(buf, i128::from(a.value(i))))
        }};
    }
    macro_rules! tagged {
        ($t:ty, $tag:expr) => {{
            let a = array.as_primitive_opt::<$t>()?;
            Box::new(move |i, buf: &mut Vec<u8>| put_tagged(buf, $tag, i128::from(a.value(i))))
        }};
    }
    Some(match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string_opt::<i32>()?;
            Box::new(move |i, buf| put_str(buf, a.value(i)))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string_opt::<i64>()?;
            Box::new(move |i, buf| put_str(buf, a.value(i)))
        }
        DataType::Utf8View => {
            let a = array.as_string_view_opt()?;
            Box::new(move |i, buf| put_str(buf, a.value(i)))
        }
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float32 => {
            let a = array.as_primitive_opt::<Float32Type>()?;
            Box::new(move |i, buf| put_float(buf, f64::from(a.value(i))))
        }
        DataType::Float64 => {
            let a = array.as_primitive_opt::<Float64Type>()?;
            Box::new(move |i, buf| put_float(buf, a.value(i)))
        }
        DataType::Decimal128(_, _) => tagged!(Decimal128Type, b'd'),
        DataType::Date32 => tagged!(Date32Type, b'D'),
        DataType::Date64 => tagged!(Date64Type, b'M'),
        DataType::Timestamp(TimeUnit::Second, _) => tagged!(TimestampSecondType, b'T'),
        DataType::Timestamp(TimeUnit::Millisecond, _) => tagged!(TimestampMillisecondType, b'T'),
        DataType::Timestamp(TimeUnit::Microsecond, _) => tagged!(TimestampMicrosecondType, b'T'),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => tagged!(TimestampNanosecondType, b'T'),
        DataType::Boolean => {
            let a = array.as_boolean_opt()?;
            Box::new(move |i, buf| buf.extend_from_slice(&[b'b', u8::from(a.value(i))]))
        }
        _ => return None,
    })
}

/// Encodes a contract value as a value of a column of type `data_type`, the way
/// [`encoder`] encodes that column; `false` when no such column value could equal it.
pub(crate) fn encode_json(value: &Value, data_type: &DataType, buf: &mut Vec<u8>) -> bool {
    let text = match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let Some(text) = text else { return false };
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            match value {
                Value::String(s) => put_str(buf, s),
                _ => put_str(buf, &text),
            }
            true
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => match text.parse::<i128>() {
            Ok(v) => {
                put_int(buf, v);
                true
            }
            Err(_) => match text.parse::<f64>() {
                Ok(v) if v.fract() == 0.0 && v.abs() < 1e38 => {
                    put_int(buf, v as i128);
                    true
                }
                _ => false,
            },
        },
        DataType::Float32 => text.parse::<f32>().is_ok_and(|v| {
            put_float(buf, f64::from(v));
            true
        }),
        DataType::Float64 => text.parse::<f64>().is_ok_and(|v| {
            put_float(buf, v);
            true
        }),
        DataType::Decimal128(precision, scale) => decimal_value(&text, *precision, *scale)
            .is_some_and(|v| {
                put_tagged(buf, b'd', v);
                true
            }),
        DataType::Date32 => parse_date(&text).is_some_and(|days| {
            put_tagged(buf, b'D', days);
            true
        }),
        DataType::Date64 => parse_date(&text).is_some_and(|days| {
            put_tagged(buf, b'M', days * 86_400_000);
            true
        }),
        DataType::Timestamp(unit, _) => {
            let per_unit = nanos_per(*unit);
            match parse_instant(&text, None) {
                Some(ns) if ns % per_unit == 0 => {
                    put_tagged(buf, b'T', ns / per_unit);
                    true
                }
                _ => false,
            }
        }
        DataType::Boolean => match text.as_str() {
            "true" | "false" => {
                buf.extend_from_slice(&[b'b', u8::from(text == "true")]);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// A decimal literal scaled to `scale` digits, if it fits `precision` exactly.
fn decimal_value(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let digits = usize::try_from(scale).unwrap_or(0);
    let normalized = match text.parse::<f64>() {
        // Exponent notation (`1e3`) is not accepted by the decimal parser.
        Ok(v) if text.contains(['e', 'E']) => format!("{v:.digits$}"),
        _ => text.to_owned(),
    };
    parse_decimal::<Decimal128Type>(&normalized, precision, scale).ok()
}

/// Text of row `i` of a string array (`None` for non-string arrays).
pub(crate) fn strings(array: &dyn Array) -> Option<Reader<'_, &str>> {
    Some(match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string_opt::<i32>()?;
            Box::new(move |i| a.value(i))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string_opt::<i64>()?;
            Box::new(move |i| a.value(i))
        }
        DataType::Utf8View => {
            let a = array.as_string_view_opt()?;
            Box::new(move |i| a.value(i))
        }
        _ => return None,
    })
}

/// Row `i` of a numeric array as `f64` (decimals divided by their scale).
pub(crate) fn numbers(array: &dyn Array) -> Option<Reader<'_, f64>> {
    macro_rules! num {
        ($t:ty) => {{
            let a = array.as_primitive_opt::<$t>()?;
            Box::new(move |i| a.value(i) as f64)
        }};
    }
    Some(match array.data_type() {
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => num!(Float32Type),
        DataType::Float64 => num!(Float64Type),
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive_opt::<Decimal128Type>()?;
            let divisor = 10f64.powi(i32::from(*scale));
            Box::new(move |i| a.value(i) as f64 / divisor)
        }
        _ => return None,
    })
}

/// What exact temporal bounds measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Temporal {
    /// Days since 1970-01-01.
    Day,
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    Instant,
    /// Nanoseconds since midnight.
    TimeOfDay,
}

/// Row `i` of a date, timestamp or time array in the given measure.
pub(crate) fn temporal(array: &dyn Array, measure: Temporal) -> Option<Reader<'_, i128>> {
    macro_rules! scaled {
        ($t:ty, $factor:expr) => {{
            let a = array.as_primitive_opt::<$t>()?;
            let factor: i128 = $factor;
            Box::new(move |i| i128::from(a.value(i)) * factor)
        }};
    }
    Some(match (measure, array.data_type()) {
        (Temporal::Day, DataType::Date32) => scaled!(Date32Type, 1),
        (Temporal::Day, DataType::Date64) => {
            let a = array.as_primitive_opt::<Date64Type>()?;
            Box::new(move |i| i128::from(a.value(i)).div_euclid(86_400_000))
        }
        (Temporal::Instant, DataType::Date32) => scaled!(Date32Type, NANOS_PER_DAY),
        (Temporal::Instant, DataType::Date64) => scaled!(Date64Type, 1_000_000),
        (Temporal::Instant, DataType::Timestamp(TimeUnit::Second, _)) => {
            scaled!(TimestampSecondType, 1_000_000_000)
        }
        (Temporal::Instant, DataType::Timestamp(TimeUnit::Millisecond, _)) => {
            scaled!(TimestampMillisecondType, 1_000_000)
        }
        (Temporal::Instant, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            scaled!(TimestampMicrosecondType, 1_000)
        }
        (Temporal::Instant, DataType::Timestamp(TimeUnit::Nanosecond, _)) => {
            scaled!(TimestampNanosecondType, 1)
        }
        (Temporal::TimeOfDay, DataType::Time32(TimeUnit::Second)) => {
            scaled!(Time32SecondType, 1_000_000_000)
        }
        (Temporal::TimeOfDay, DataType::Time32(TimeUnit::Millisecond)) => {
            scaled!(Time32MillisecondType, 1_000_000)
        }
        (Temporal::TimeOfDay, DataType::Time64(TimeUnit::Microsecond)) => {
            scaled!(Time64MicrosecondType, 1_000)
        }
        (Temporal::TimeOfDay, DataType::Time64(TimeUnit::Nanosecond)) => {
            scaled!(Time64NanosecondType, 1)
        }
        _ => return None,
    })
}

fn nanos_per(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// `yyyy-MM-dd` (or a timestamp, whose UTC date is taken) as days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(date) => Some(i128::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE),
        Err(_) => parse_instant(text, None).map(|ns| ns.div_euclid(NANOS_PER_DAY)),
    }
}

/// A timestamp as nanoseconds since the Unix epoch. Text without an offset is
/// read in `zone`, or UTC. Accepts RFC 3339, `yyyy-MM-dd HH:mm:ss[.f][±hh:mm]`
/// and a plain date (midnight).
pub(crate) fn parse_instant(text: &str, zone: Option<Tz>) -> Option<i128> {
    let text = text.trim();
    let nanos =
        |seconds: i64, subsec: u32| i128::from(seconds) * 1_000_000_000 + i128::from(subsec);
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(nanos(t.timestamp(), t.timestamp_subsec_nanos()));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(nanos(t.timestamp(), t.timestamp_subsec_nanos()));
        }
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN))
    })?;
    let utc = match zone {
        Some(zone) => zone.from_local_datetime(&naive).earliest()?.naive_utc(),
        None => naive,
    };
    Some(nanos(
        utc.and_utc().timestamp(),
        utc.and_utc().timestamp_subsec_nanos(),
    ))
}

/// `HH:mm[:ss[.f]]` as nanoseconds since midnight.
pub(crate) fn parse_time(text: &str) -> Option<i128> {
    let text = text.trim();
    let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()?;
    Some(
        i128::from(time.num_seconds_from_midnight()) * 1_000_000_000
            + i128::from(time.nanosecond()),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, StringArray, StringViewArray};

    use super::*;

    fn encoded(array: &ArrayRef, row: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        encoder(array.as_ref()).unwrap()(row, &mut buf);
        buf
    }

    #[test]
    fn string_types_share_an_encoding() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let b: ArrayRef = Arc::new(StringViewArray::from(vec!["x"]));
        assert_eq!(encoded(&a, 0), encoded(&b, 0));
        let mut buf = Vec::new();
        assert!(encode_json(&Value::from("x"), &DataType::Utf8, &mut buf));
        assert_eq!(buf, encoded(&a, 0));
    }

    #[test]
    fn json_values_match_column_values() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![42]));
        let mut buf = Vec::new();
        assert!(encode_json(&Value::from(42), &DataType::Int32, &mut buf));
        assert_eq!(buf, encoded(&a, 0));
        buf.clear();
        assert!(!encode_json(
            &Value::from("forty-two"),
            &DataType::Int32,
            &mut buf
        ));
        buf.clear();
        assert!(encode_json(
            &Value::from(1.5),
            &DataType::Decimal128(5, 2),
            &mut buf
        ));
        assert_eq!(&buf[1..], &150i128.to_le_bytes());
    }

    #[test]
    fn parses_dates_times_and_instants() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_time("00:00:01"), Some(1_000_000_000));
        assert_eq!(
            parse_time("23:59"),
            Some((23 * 3600 + 59 * 60) * 1_000_000_000)
        );
        let second = 1_000_000_000i128;
        assert_eq!(parse_instant("1970-01-01T00:00:01Z", None), Some(second));
        assert_eq!(parse_instant("1970-01-01 00:00:01", None), Some(second));
        assert_eq!(
            parse_instant("1970-01-01 00:00:01.5", None),
            Some(second + second / 2)
        );
        assert_eq!(parse_instant("1970-01-01 01:00:00+01:00", None), Some(0));
        assert_eq!(parse_instant("1970-01-01", None), Some(0));
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(parse_instant("1970-01-01 01:00:00", Some(paris)), Some(0));
        assert_eq!(parse_instant("yesterday", None), None);
    }
}
