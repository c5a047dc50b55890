//! `format = "parquet"`: a raw Parquet file, streamed through ranged reads, its columns mapped
//! onto the contract by name (exact, else without case) and cast to the contract's types.
//!
//! Text columns read into typed contract columns go through the same rules as CSV text (exact
//! decimals, the contract's date formats and time zone); other columns are cast with Arrow
//! (`safe`: a value that does not convert becomes null, found by comparing null masks), and an
//! integer or decimal target must give back the file's value exactly. A row with a value that
//! does not convert is quarantined whole with the reason and its original values as JSON.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, new_null_array,
};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cast::{CastOptions, can_cast_types, cast_with_options};
use arrow::compute::kernels::cmp::neq;
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use futures::{FutureExt, TryStreamExt};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{At, DriftLog, Msg, ParseStats, Plan, RATIO_FLOOR};
use crate::error::{Error, Result};
use crate::mesh::SourceConfig;
use crate::storage::{ParquetBatches, panic_message};
use crate::typing::{Cell, ColumnBuilder, ColumnSpec, parse_text};

const SAFE: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Reads the file and sends typed batches and bad rows to the writer. A file whose footer
/// declares more than the recipe's caps is refused before any page is decoded, and a panic of
/// the Parquet or Arrow code on a corrupt file makes it bad input instead of failing the
/// invocation.
pub(super) async fn ingest(
    stream: ParquetBatches,
    plan: Plan,
    tx: mpsc::Sender<Msg>,
) -> Result<ParseStats> {
    let location = plan.location.clone();
    match std::panic::AssertUnwindSafe(read(stream, plan, tx))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => Err(Error::bad_input(
            location,
            format!(
                "the Parquet reader panicked on this file ({})",
                panic_message(&*panic)
            ),
        )),
    }
}

/// Refuses a file whose footer declares more uncompressed bytes than `max_decompressed_bytes`,
/// or a column chunk over `max_compression_ratio` times its compressed size (past
/// [`RATIO_FLOOR`]): a decompression bomb is refused from its declared sizes, before decoding.
fn check_declared_sizes(
    meta: &ParquetMetaData,
    source: &SourceConfig,
    location: &str,
) -> Result<()> {
    let bomb = "refused as a possible decompression bomb";
    let mut total = 0u64;
    for (g, group) in meta.row_groups().iter().enumerate() {
        for chunk in group.columns() {
            let column = chunk.column_path().string();
            let (Ok(compressed), Ok(uncompressed)) = (
                u64::try_from(chunk.compressed_size()),
                u64::try_from(chunk.uncompressed_size()),
            ) else {
                return Err(Error::bad_input(
                    location,
                    format!(
                        "corrupt Parquet footer: column `{column}` of row group {g} declares a negative size"
                    ),
                ));
            };
            total = total.saturating_add(uncompressed);
            if uncompressed > RATIO_FLOOR
                && uncompressed > source.max_compression_ratio.saturating_mul(compressed)
            {
                return Err(Error::bad_input(
                    location,
                    format!(
                        "column `{column}` of row group {g} declares {uncompressed} bytes uncompressed from {compressed} compressed, more than {} times (`max_compression_ratio`): {bomb}",
                        source.max_compression_ratio
                    ),
                ));
            }
        }
    }
    if total > source.max_decompressed_bytes {
        return Err(Error::bad_input(
            location,
            format!(
                "the footer declares {total} bytes uncompressed, more than {} (`max_decompressed_bytes`): {bomb}",
                source.max_decompressed_bytes
            ),
        ));
    }
    Ok(())
}

async fn read(mut stream: ParquetBatches, plan: Plan, tx: mpsc::Sender<Msg>) -> Result<ParseStats> {
    let location = plan.location.as_str();
    check_declared_sizes(stream.metadata(), &plan.source, location)?;
    let file_schema = Arc::clone(stream.schema());
    let names: Vec<&str> = file_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    // Which file column feeds each contract column.
    let sources: Vec<Option<usize>> = plan
        .specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if !plan.is_read(i) {
                return None;
            }
            names
                .iter()
                .position(|n| *n == s.name)
                .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(&s.name)))
        })
        .collect();
    if sources.iter().all(Option::is_none) {
        return Err(Error::bad_input(
            location,
            format!(
                "the file has none of the contract's columns (it has: {})",
                names.join(", ")
            ),
        ));
    }
    let unknown: Vec<usize> = (0..names.len())
        .filter(|p| !sources.contains(&Some(*p)))
        .collect();
    let mut drift = DriftLog::default();
    for &p in &unknown {
        drift.unknown(names[p]);
    }
    drift.missing = plan
        .specs
        .iter()
        .zip(&sources)
        .enumerate()
        .filter(|(i, (_, s))| plan.is_read(*i) && s.is_none())
        .map(|(_, (spec, _))| spec.name.clone())
        .collect();
    // A column whose type cannot become the contract's refuses the file before any row.
    for (spec, source) in plan.specs.iter().zip(&sources) {
        if let Some(p) = source {
            let from = match file_schema.field(*p).data_type() {
                DataType::Dictionary(_, values) => values.as_ref(),
                other => other,
            };
            if !is_text(from) && !can_cast_types(from, &spec.data_type) {
                return Err(Error::bad_input(
                    location,
                    format!(
                        "column `{}`: the file's type {from} cannot be cast to the contract's {}",
                        spec.name, spec.data_type
                    ),
                ));
            }
        }
    }
    let send = |msg: Msg| {
        let tx = tx.clone();
        async move {
            tx.send(msg)
                .await
                .map_err(|_| Error::Internal("ingest writer stopped".into()))
        }
    };
    let mut stats = ParseStats::default();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| read_error(e, location))?
    {
        let n = batch.num_rows();
        let mut failed: Vec<Option<String>> = vec![None; n];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.specs.len());
        for (i, (spec, source)) in plan.specs.iter().zip(&sources).enumerate() {
            if !plan.is_read(i) {
                columns.push(extras(&batch, &unknown));
                continue;
            }
            let Some(p) = source else {
                columns.push(new_null_array(&spec.data_type, n));
                continue;
            };
            let field = Arc::clone(&plan.schema.fields()[i]);
            let (array, errors) = convert(batch.column(*p), spec, field)
                .map_err(|e| Error::bad_input(location, format!("column `{}`: {e}", spec.name)))?;
            for (row, reason) in errors {
                if let Some(slot @ None) = failed.get_mut(row) {
                    *slot = Some(format!("column `{}`: {reason}", spec.name));
                }
            }
            columns.push(array);
        }
        let mut typed = RecordBatch::try_new(Arc::clone(&plan.schema), columns)?;
        if failed.iter().any(Option::is_some) {
            for (row, reason) in failed.iter().enumerate() {
                if let Some(reason) = reason {
                    send(Msg::Bad {
                        at: At::Row(stats.rows + row as u64),
                        reason: reason.clone(),
                        raw: row_json(&batch, row, 0..batch.num_columns()),
                    })
                    .await?;
                }
            }
            let keep: BooleanArray = failed.iter().map(|f| Some(f.is_none())).collect();
            typed = filter_record_batch(&typed, &keep)?;
        }
        stats.rows += n as u64;
        if typed.num_rows() > 0 {
            send(Msg::Batch(typed)).await?;
        }
    }
    drift.finish("column", &plan, &mut stats);
    Ok(stats)
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// An error reading the file: storage trouble is retried, anything else is a corrupt file.
fn read_error(e: ParquetError, location: &str) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(store) => Error::Storage(*store),
            Err(other) => Error::bad_input(location, format!("corrupt Parquet data: {other}")),
        },
        other => Error::bad_input(location, format!("corrupt Parquet data: {other}")),
    }
}

/// A file column as the contract column, and the rows (with reasons) whose value does not
/// convert. Only a conversion that cannot run at all is an error.
fn convert(
    array: &ArrayRef,
    spec: &ColumnSpec,
    field: arrow::datatypes::FieldRef,
) -> std::result::Result<(ArrayRef, Vec<(usize, String)>), String> {
    let to = &spec.data_type;
    if array.data_type() == to {
        return Ok((Arc::clone(array), Vec::new()));
    }
    // Dictionary-encoded columns are read as their values.
    if let DataType::Dictionary(_, values) = array.data_type() {
        let plain = cast_with_options(array, values, &SAFE).map_err(|e| e.to_string())?;
        return convert(&plain, spec, field);
    }
    let from = array.data_type();
    if is_text(from) && !is_text(to) {
        return parse_texts(array, spec, field);
    }
    // A timestamp without a zone is local time in the contract's zone (UTC without one).
    let array = match (from, to, &spec.timezone) {
        (DataType::Timestamp(_, None), DataType::Timestamp(unit, Some(_)), Some(tz)) => {
            let local = DataType::Timestamp(*unit, Some(tz.name().into()));
            cast_with_options(array, &local, &SAFE).map_err(|e| e.to_string())?
        }
        _ => Arc::clone(array),
    };
    let cast = cast_with_options(&array, to, &SAFE).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    for row in 0..array.len() {
        if array.is_valid(row) && cast.is_null(row) {
            errors.push((
                row,
                format!("cannot cast `{}` ({from}) to {to}", display(&array, row)),
            ));
        }
    }
    // Integers and decimals hold the file's value exactly, or not at all (no silent rounding).
    let exact = matches!(
        to,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Decimal128(_, _)
    ) && (from.is_numeric());
    if exact {
        let back = cast_with_options(&cast, from, &SAFE).map_err(|e| e.to_string())?;
        let differs = neq(&back, &array).map_err(|e| e.to_string())?;
        for row in 0..array.len() {
            if differs.is_valid(row) && differs.value(row) {
                errors.push((
                    row,
                    format!(
                        "`{}` ({from}) does not fit {to} exactly",
                        display(&array, row)
                    ),
                ));
            }
        }
    }
    Ok((cast, errors))
}

/// Text values parsed as CSV text is, per the contract column.
fn parse_texts(
    array: &ArrayRef,
    spec: &ColumnSpec,
    field: arrow::datatypes::FieldRef,
) -> std::result::Result<(ArrayRef, Vec<(usize, String)>), String> {
    let text = cast_with_options(array, &DataType::Utf8, &SAFE).map_err(|e| e.to_string())?;
    let text = text.as_string::<i32>();
    let mut builder = ColumnBuilder::new(field)?;
    let mut errors = Vec::new();
    for (row, value) in text.iter().enumerate() {
        let cell = match value {
            None => Cell::Null,
            Some(v) => parse_text(spec, v).unwrap_or_else(|reason| {
                errors.push((row, reason));
                Cell::Null
            }),
        };
        builder.append(&cell);
    }
    Ok((builder.finish(), errors))
}

/// The undeclared columns of each row as a JSON object (null when all are null).
fn extras(batch: &RecordBatch, unknown: &[usize]) -> ArrayRef {
    let values: StringArray = (0..batch.num_rows())
        .map(|row| match row_json(batch, row, unknown.iter().copied()) {
            Value::Object(m) if m.values().all(Value::is_null) => None,
            Value::Object(m) => Some(
                Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()).to_string(),
            ),
            _ => None,
        })
        .collect();
    Arc::new(values)
}

/// Some columns of one row as a JSON object, by file column name.
fn row_json(batch: &RecordBatch, row: usize, columns: impl Iterator<Item = usize>) -> Value {
    let schema = batch.schema();
    let map: Map<String, Value> = columns
        .map(|c| {
            (
                schema.field(c).name().clone(),
                json_value(batch.column(c), row),
            )
        })
        .collect();
    Value::Object(map)
}

/// One value as JSON: numbers and booleans as such, anything else as Arrow displays it.
fn json_value(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let text = display(array, row);
    let t = array.data_type();
    if t.is_integer() {
        if let Ok(v) = text.parse::<i64>() {
            return Value::from(v);
        }
        if let Ok(v) = text.parse::<u64>() {
            return Value::from(v);
        }
    }
    if t.is_floating()
        && let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    if *t == DataType::Boolean {
        return Value::Bool(text == "true");
    }
    Value::String(text)
}

fn display(array: &ArrayRef, row: usize) -> String {
    array_value_to_string(array, row).unwrap_or_else(|e| format!("<{e}>"))
}
