//! clean: typed rows → cleaned rows in the clean zone.
//!
//! Before clean, ingest typed every value with the contract and the recipe: timestamps read with
//! the recipe's `timestamps` formats and zone and normalized to UTC, decimals refused or rounded
//! per `decimal_rounding` (see [`apply_typing`]). Then, for every row, in this order:
//! 1. structuring: JSON text in a column the contract declares as an object or array is parsed
//!    into the struct or list (already done at ingest for text sources); recipe `flatten` reads
//!    fields of a JSON text column into `<column>_<field>` columns. Unparseable JSON quarantines
//!    the row with the reason;
//! 2. strings trimmed, blank strings become null; case normalized (recipe `lowercase` /
//!    `uppercase`, and values of an enumerated column take the contract's spelling);
//! 3. nulls of optional columns take the recipe's defaults, a column absent from the input too
//!    (counted in `defaulted`, and noted);
//! 4. rows equal in every column to an earlier row are dropped;
//! 5. with `latest_by`, only the latest row per primary key is kept (null orders lowest; later
//!    rows win ties);
//! 6. row rules from the contract: required, valid values, patterns, lengths (quarantine) and
//!    ranges (quarantine, flag or clip, per the recipe). The first broken rule is the row's
//!    reason;
//! 7. statistical outliers (recipe `outliers = { method = "iqr" | "zscore", ... }`): quarantine,
//!    flag or clip against fences computed over the file;
//! 8. gap filling (recipe `gaps`): missing time slots of each series become generated rows,
//!    marked in the marker column, written right after the row before the gap.
//!
//! Memory: deduplication keeps a 128-bit hash per distinct row and one entry per key; IQR keeps
//! every non-null value of its columns (8 bytes per row and column) to compute exact quartiles,
//! z-score keeps three numbers per column; gap filling keeps, per series, its key hash and the
//! set of time slots seen (8 bytes per distinct slot) and refuses a file that would generate more
//! than `max_filled_rows` rows. Everything else streams. The input is read once per pass it needs:
//! statistics, then deduplication and gap detection, then the writing pass.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, UInt32Array,
    new_null_array,
};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, concat_batches, filter_record_batch, is_not_null, take_record_batch};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use regex::Regex;
use serde_json::Value;
use tessera_contract::{Metric, Property, RuleKind, SchemaObject};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::keys::Zone;
use crate::mesh::{CleanRecipe, GapFill, OutlierAction, OutlierMethod, ProductKind};
use crate::routing::Function;
use crate::runs::{self, InputRef, RunRecord, RunStatus};
use crate::storage::ParquetUse;
use crate::typing::{ColumnBuilder, ColumnSpec, parse_json, parse_text};

use super::dedupe::{Dedupe, Fate};

/// Applies the recipe's typing options to the column specs ingest types values with: the
/// timestamp formats and zone (`timestamps`), the decimal rounding (`decimal_rounding`).
pub fn apply_typing(recipe: &CleanRecipe, specs: &mut [ColumnSpec]) -> Result<()> {
    for c in &recipe.decimal_rounding_columns {
        if !specs.iter().any(|s| &s.name == c) {
            return Err(Error::Config(format!(
                "decimal_rounding_columns names `{c}`, which the contract does not have"
            )));
        }
    }
    for (c, pattern) in &recipe.patterns {
        let spec = specs.iter_mut().find(|s| &s.name == c).ok_or_else(|| {
            Error::Config(format!(
                "patterns names `{c}`, which the contract does not have"
            ))
        })?;
        spec.pattern = Some(regex::Regex::new(pattern).map_err(|e| {
            Error::Config(format!(
                "patterns: `{pattern}` of `{c}` does not compile: {e}"
            ))
        })?);
    }
    for spec in specs.iter_mut() {
        if recipe.decimal_rounding_columns.is_empty()
            || recipe.decimal_rounding_columns.contains(&spec.name)
        {
            spec.rounding = recipe.decimal_rounding;
        }
    }
    let Some(t) = &recipe.timestamps else {
        return Ok(());
    };
    let zone = match t.timezone.as_deref() {
        Some(z) => Some(z.parse::<chrono_tz::Tz>().map_err(|_| {
            Error::Config(format!(
                "timestamps.timezone: unknown time zone `{z}` (use an IANA name such as Europe/Paris)"
            ))
        })?),
        None => None,
    };
    for c in &t.columns {
        match specs.iter().find(|s| &s.name == c) {
            None => {
                return Err(Error::Config(format!(
                    "timestamps.columns names `{c}`, which the contract does not have"
                )));
            }
            Some(s) if !matches!(s.data_type, DataType::Timestamp(_, _) | DataType::Date32) => {
                return Err(Error::Config(format!(
                    "timestamps.columns names `{c}`, which is not a timestamp or date"
                )));
            }
            Some(_) => {}
        }
    }
    for spec in specs.iter_mut() {
        let chosen = if t.columns.is_empty() {
            matches!(spec.data_type, DataType::Timestamp(_, _))
        } else {
            t.columns.contains(&spec.name)
        };
        if !chosen {
            continue;
        }
        spec.formats.clone_from(&t.formats);
        spec.only_formats = !t.builtin;
        if spec.timezone.is_none() {
            spec.timezone = zone;
        }
    }
    Ok(())
}

/// Checks a clean recipe against the product's schema object, as the mesh loads: every column it
/// names exists with a fitting type, frequencies and zones parse.
pub fn validate(object: &SchemaObject, recipe: &CleanRecipe) -> std::result::Result<(), String> {
    let (schema, mut specs) = super::staged_schema(object).map_err(|e| e.to_string())?;
    apply_typing(recipe, &mut specs).map_err(|e| e.to_string())?;
    for c in recipe.lenient.iter().chain(&recipe.keep_raw) {
        if object.property(c).is_none() {
            return Err(format!(
                "lenient / keep_raw names `{c}`, which the contract does not have"
            ));
        }
    }
    for c in &recipe.keep_raw {
        let raw = super::raw_column(c);
        if object.property(&raw).is_some() {
            return Err(format!(
                "keep_raw: `{c}` keeps its text in `{raw}`, which is already a contract column"
            ));
        }
    }
    let (schema, specs) = super::with_raw_columns(recipe, &schema, specs);
    Cleaner::new(object, recipe, &schema, &specs)
        .map(|_| ())
        .map_err(|e| match e {
            Error::Config(m) => m,
            other => other.to_string(),
        })
}

/// Cleans one staged object.
pub async fn run(ctx: &Context, bucket: &str, key: &str, version: &str) -> Result<RunRecord> {
    let (domain, product, zk) = super::resolve(ctx, bucket, key, Zone::Staged)?;
    let ProductKind::Source { clean: recipe, .. } = &product.kind else {
        return Err(Error::Config(format!(
            "product `{}` is an aggregate: it has no staged zone",
            product.name
        )));
    };
    let id = crate::keys::object_run_id(Zone::Staged, bucket, key, version);
    let clean_key = format!("{}{}/{}", Zone::Clean.prefix(), product.name, zk.file);
    let stem = zk.file.trim_end_matches(".parquet");
    let quarantine_key = format!(
        "{}{}/clean/{stem}.parquet",
        Zone::Quarantine.prefix(),
        product.name
    );
    let input = InputRef {
        bucket: bucket.into(),
        key: key.into(),
        version: version.into(),
        sequencer: None,
    };
    let (mut record, started) = RunRecord::start(&id, "clean", &domain.name, &product.name, input);
    let (schema, specs) = super::staged_schema_for(product)?;
    let mut cleaner = Cleaner::new(product.schema(), recipe, &schema, &specs)?;

    // Pass 1 (statistical outliers only): the fences of every tested column.
    if let Some(detect) = &cleaner.detect {
        let mut stats: Vec<Stat> = detect.columns.iter().map(|_| Stat::default()).collect();
        let mut stream = ctx.storage.read_parquet(bucket, key).await?;
        while let Some(batch) = stream.next().await {
            let prepared = cleaner.prepare(&batch?, false)?;
            for ((col, _), stat) in detect.columns.iter().zip(stats.iter_mut()) {
                stat.update(prepared.batch.column(*col), detect.method)?;
            }
        }
        let fences = stats
            .iter_mut()
            .map(|s| s.fences(detect.method, detect.parameter))
            .collect();
        cleaner.fences = fences;
    }

    let cleaner = Arc::new(cleaner);

    // Pass 2 (only with `latest_by` or `gaps`): the fate of every row (exact duplicate,
    // superseded version, kept), the time slots of every series.
    let mut dedupe = match cleaner.latest {
        Some(_) => Some(Dedupe::new(
            ctx.storage.parquet_rows(bucket, key).await?,
            recipe.drop_exact_duplicates,
            true,
        )?),
        None => None,
    };
    let mut series = SeriesSlots::default();
    if cleaner.latest.is_some() || cleaner.gaps.is_some() {
        let stream = ctx.storage.read_parquet(bucket, key).await?;
        let mut ready = ready_ahead(&cleaner, stream, Work::Scan);
        while let Some(r) = ready.next().await {
            let r = r?;
            if let (Some(keys), Some(order), Some(dedupe)) = (&r.keys, &r.order, dedupe.as_mut()) {
                dedupe.scan(&r.hashes, keys, order)?;
            }
            if let (Some(gaps), Some(verdicts)) = (&cleaner.gaps, &r.verdicts) {
                series.scan(gaps, &r.batch, &verdicts.reasons)?;
            }
        }
    }
    let spilled = dedupe.as_ref().map_or(0, Dedupe::spilled_partitions);
    let fates = dedupe.map(Dedupe::finish).transpose()?;
    if let Some(gaps) = &cleaner.gaps {
        let missing = series.finish();
        if missing > gaps.max {
            let reason = format!(
                "gap filling would generate {missing} rows, more than max_filled_rows = {} \
                 (gaps.time = `{}`, every {}): the file is refused",
                gaps.max, gaps.time_name, gaps.every_text
            );
            return super::refuse(
                ctx,
                Function::Clean,
                Zone::Staged,
                bucket,
                key,
                version,
                &reason,
            )
            .await;
        }
    }

    // Last pass: write clean rows, quarantine bad ones.
    let quarantine_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .cloned()
            .chain([Arc::new(Field::new("_reason", DataType::Utf8, false))])
            .collect::<Vec<_>>(),
    ));
    let mut out = None;
    let mut quarantine = None;
    let stream = ctx.storage.read_parquet(bucket, key).await?;
    let input_schema = Arc::clone(stream.schema());
    let mut ready = ready_ahead(&cleaner, stream, Work::Write);
    let mut row = 0u64;
    let (mut duplicates, mut superseded, mut clipped) = (0u64, 0u64, 0u64);
    let mut seen = tessera_contract::HashedKeySet::default();
    let mut first = true;
    while let Some(r) = ready.next().await {
        let r = r?;
        if first {
            first = false;
            for f in schema.fields() {
                if input_schema.column_with_name(f.name()).is_none() {
                    let how = match recipe.defaults.get(f.name()) {
                        Some(d) => format!("every row takes the default `{d}`"),
                        None => "read as null".to_owned(),
                    };
                    record.notes.push(format!(
                        "column `{}` is absent from the input: {how}",
                        f.name()
                    ));
                }
            }
        }
        let batch = r.batch;
        let n = batch.num_rows();
        record.rows_in += n as u64;
        let row_hashes = r.hashes;
        let defaulted = r.defaulted;
        let Some(verdicts) = r.verdicts else {
            return Err(Error::Internal(
                "clean: a batch came without its verdicts".into(),
            ));
        };
        let mut keep = Vec::with_capacity(n);
        let mut bad = Vec::with_capacity(n);
        let mut bad_reasons = Vec::new();
        for (i, defaulted) in defaulted.iter().enumerate().take(n) {
            let (duplicate, loser) = match (&fates, row_hashes.get(i)) {
                (Some(fates), _) => {
                    let fate = fates.get(row as usize + i).copied().unwrap_or(Fate::Keep);
                    (fate == Fate::Duplicate, fate == Fate::Superseded)
                }
                (None, Some(row_hash)) => (
                    recipe.drop_exact_duplicates && !seen.insert(*row_hash),
                    false,
                ),
                (None, None) => {
                    return Err(Error::Internal(
                        "clean: a batch came without its row hashes".into(),
                    ));
                }
            };
            if duplicate || loser {
                if duplicate {
                    duplicates += 1
                } else {
                    superseded += 1
                }
                keep.push(false);
                bad.push(false);
            } else if let Some(reason) = &verdicts.reasons[i] {
                keep.push(false);
                bad.push(true);
                bad_reasons.push(reason.clone());
            } else {
                if verdicts.flagged[i] {
                    record.flagged += 1;
                }
                if verdicts.clipped[i] {
                    clipped += 1;
                }
                record.defaulted += u64::from(*defaulted);
                keep.push(true);
                bad.push(false);
            }
        }
        row += n as u64;
        if !bad_reasons.is_empty() {
            let rejected = filter_record_batch(&batch, &BooleanArray::from(bad))?;
            let mut columns = rejected.columns().to_vec();
            columns.push(Arc::new(StringArray::from(bad_reasons)));
            let rejected = RecordBatch::try_new(Arc::clone(&quarantine_schema), columns)?;
            record.quarantined += rejected.num_rows() as u64;
            if quarantine.is_none() {
                quarantine = Some(ctx.storage.write_parquet(
                    bucket,
                    &quarantine_key,
                    Arc::clone(&quarantine_schema),
                )?);
            }
            if let Some(q) = quarantine.as_mut() {
                q.write(&rejected).await?;
            }
        }
        let Some(fixed) = r.fixed else {
            return Err(Error::Internal(
                "clean: a batch came without its fixes".into(),
            ));
        };
        let keep = BooleanArray::from(keep);
        let mut clean = filter_record_batch(&fixed, &keep)?;
        if let Some(gaps) = &cleaner.gaps {
            let (with_fills, filled) = series.fill(gaps, &clean)?;
            record.filled += filled;
            clean = with_fills;
        }
        if clean.num_rows() > 0 {
            if out.is_none() {
                out = Some(ctx.storage.write_parquet_as(
                    bucket,
                    &clean_key,
                    Arc::clone(&schema),
                    ParquetUse::Intermediate,
                )?);
            }
            if let Some(o) = out.as_mut() {
                o.write(&clean).await?;
            }
        }
    }
    if spilled > 0 {
        record.notes.push(format!(
            "deduplication decided {spilled} hash partitions one at a time from temporary files"
        ));
    }
    record.dropped = duplicates + superseded;
    record.superseded = superseded;
    if duplicates > 0 {
        record
            .notes
            .push(format!("{duplicates} exact duplicate rows dropped"));
    }
    if superseded > 0 {
        record.notes.push(format!(
            "{superseded} superseded versions dropped (latest per key kept)"
        ));
    }
    if record.flagged > 0 {
        record.notes.push(format!(
            "{} rows flagged as outliers and kept",
            record.flagged
        ));
    }
    if clipped > 0 {
        record.notes.push(format!(
            "{clipped} rows with values clipped to their bounds"
        ));
    }
    for note in cleaner.fence_notes() {
        record.notes.push(note);
    }
    if record.filled > 0 {
        record.notes.push(format!(
            "{} rows generated to fill time gaps (marked in `{}`)",
            record.filled,
            cleaner.gaps.as_ref().map_or("", |g| g.marker_name.as_str())
        ));
    }
    if let Some(q) = quarantine {
        record.outputs.push(q.finish().await?.key);
    }
    match out {
        Some(o) => {
            record.rows_out = o.rows();
            record.outputs.insert(0, o.finish().await?.key);
        }
        None => {
            record.status = RunStatus::Skipped;
            record.notes.push("no row survived cleaning".into());
        }
    }
    runs::save(&ctx.storage, bucket, record, started).await
}

/// What a pass needs of each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Deduplication facts (and verdicts, for gap detection).
    Scan,
    /// Verdicts and the fixed batch, for writing.
    Write,
}

/// A batch prepared for a pass.
struct Ready {
    batch: RecordBatch,
    hashes: Vec<u128>,
    defaulted: Vec<u32>,
    keys: Option<Vec<Option<u128>>>,
    order: Option<Vec<i128>>,
    verdicts: Option<Verdicts>,
    fixed: Option<RecordBatch>,
}

/// Batches in prepared ahead of a pass, in order, [`PREPARE_AHEAD`] at a time on blocking
/// threads: preparing (structuring, trimming, case, defaults, hashing) and judging rows is most
/// of clean's work, and batches do not depend on each other for it.
fn ready_ahead(
    cleaner: &Arc<Cleaner>,
    stream: crate::storage::ParquetBatches,
    work: Work,
) -> impl futures::Stream<Item = Result<Ready>> + use<> {
    let cleaner = Arc::clone(cleaner);
    stream
        .map(move |batch| {
            let cleaner = Arc::clone(&cleaner);
            async move {
                let batch = batch?;
                tokio::task::spawn_blocking(move || cleaner.ready(&batch, work))
                    .await
                    .map_err(|e| Error::Internal(format!("clean: preparing a batch failed: {e}")))?
            }
        })
        .buffered(PREPARE_AHEAD)
}

/// Batches prepared at once by [`ready_ahead`].
const PREPARE_AHEAD: usize = 2;

impl Cleaner {
    fn ready(&self, raw: &RecordBatch, work: Work) -> Result<Ready> {
        // Row hashes find exact duplicates: in the scan, or while writing when no scan decided
        // the rows' fates.
        let hashes = work == Work::Scan || self.latest.is_none();
        let prepared = self.prepare(raw, hashes)?;
        let batch = prepared.batch;
        let (keys, order) = match (work, self.latest) {
            (Work::Scan, Some(order_col)) => (
                Some(self.key_hashes(&batch)?),
                Some(ordering_values(batch.column(order_col))?),
            ),
            _ => (None, None),
        };
        let verdicts = if work == Work::Write || self.gaps.is_some() {
            Some(self.verdicts(&batch, prepared.reasons)?)
        } else {
            None
        };
        let fixed = match (&verdicts, work) {
            (Some(v), Work::Write) => Some(self.apply(&batch, v)?),
            _ => None,
        };
        Ok(Ready {
            batch,
            hashes: prepared.hashes,
            defaulted: prepared.defaulted,
            keys,
            order,
            verdicts,
            fixed,
        })
    }
}

/// `v.to_lowercase()`, borrowed when that is `v` (ASCII without capitals).
fn lowercase(v: &str) -> Cow<'_, str> {
    if v.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(v.to_lowercase())
    }
}

/// `v.to_uppercase()`, borrowed when that is `v` (ASCII without small letters).
fn uppercase(v: &str) -> Cow<'_, str> {
    if v.bytes().all(|b| b.is_ascii() && !b.is_ascii_lowercase()) {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(v.to_uppercase())
    }
}

/// Orderable values of the `latest_by` column (null lowest).
fn ordering_values(array: &ArrayRef) -> Result<Vec<i128>> {
    let as_i64 = match array.data_type() {
        DataType::Decimal128(_, _) => {
            let d = array.as_primitive::<arrow::datatypes::Decimal128Type>();
            return Ok((0..d.len())
                .map(|i| if d.is_null(i) { i128::MIN } else { d.value(i) })
                .collect());
        }
        DataType::Timestamp(_, _)
        | DataType::Date32
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64 => cast(
            &cast(array, &DataType::Int64)
                .or_else(|_| cast(&cast(array, &DataType::Int32)?, &DataType::Int64))?,
            &DataType::Int64,
        )?,
        other => {
            return Err(Error::Config(format!(
                "latest_by column has type `{other}`; use a timestamp, date, integer or decimal"
            )));
        }
    };
    let v = as_i64.as_primitive::<Int64Type>();
    Ok((0..v.len())
        .map(|i| {
            if v.is_null(i) {
                i128::MIN
            } else {
                i128::from(v.value(i))
            }
        })
        .collect())
}

/// A row rule compiled from the contract.
#[derive(Debug)]
enum RowRule {
    Required,
    ValidValues(HashSet<String>),
    Pattern(Regex),
    Length {
        min: Option<u64>,
        max: Option<u64>,
    },
    Range {
        min: Option<(f64, bool)>,
        max: Option<(f64, bool)>,
    },
}

/// Statistical detection, resolved against the schema.
#[derive(Debug)]
struct Detect {
    method: OutlierMethod,
    /// `k` (IQR) or `threshold` (z-score).
    parameter: f64,
    columns: Vec<(usize, String)>,
    action: OutlierAction,
}

/// Gap filling, resolved against the schema.
#[derive(Debug)]
struct Gaps {
    time: usize,
    time_name: String,
    every: i64,
    every_text: String,
    by: Vec<usize>,
    fill: GapFill,
    marker: usize,
    marker_name: String,
    max: u64,
    /// Every column but time, series, marker and outlier flag.
    measures: Vec<usize>,
    /// The outlier flag column (false in generated rows).
    flag: Option<usize>,
    series: RowConverter,
}

#[derive(Debug)]
struct Cleaner {
    trim: bool,
    /// Exact duplicates compared as read (trimmed only), not as normalized.
    duplicates_as_read: bool,
    lower: HashSet<usize>,
    upper: HashSet<usize>,
    /// Column → lower-cased value → the contract's spelling.
    canonical: HashMap<usize, HashMap<String, String>>,
    defaults: Vec<(usize, ArrayRef)>,
    rules: Vec<(usize, String, RowRule)>,
    range_action: OutlierAction,
    /// Boolean column set on flagged rows.
    flag_column: Option<usize>,
    detect: Option<Detect>,
    /// Fences of the detected columns (same order), once pass 1 computed them.
    fences: Vec<Option<(f64, f64)>>,
    /// JSON text column → its fields.
    flatten: Vec<(usize, Vec<FlatField>)>,
    /// Contract struct/list columns (read from JSON text when the staged column is text).
    structured: Vec<usize>,
    specs: Vec<ColumnSpec>,
    schema: SchemaRef,
    gaps: Option<Gaps>,
    latest: Option<usize>,
    /// Column → its `<column>_raw` text column (`keep_raw`).
    raw_of: HashMap<usize, usize>,
    /// Column → the columns whose first non-null value fills its nulls (`coalesce`).
    coalesce: Vec<(usize, Vec<usize>)>,
    key_columns: Vec<usize>,
    all_rows: RowConverter,
    keys: Option<RowConverter>,
}

/// A field of a JSON text column flattened into a column: as written, as a JSON pointer, and
/// the target column.
type FlatField = (String, String, usize);

/// Values of a column to clip: the column, its lower and upper bounds ((value, exclusive)), and
/// which rows cross which bound.
type Clip = (
    usize,
    Option<(f64, bool)>,
    Option<(f64, bool)>,
    Vec<Option<Side>>,
);

/// A batch conformed to the staged schema and normalized, with the rows structuring refused.
struct Prepared {
    batch: RecordBatch,
    /// Hashes of the rows, for exact duplicates (as normalized, or as read); empty when not
    /// asked for.
    hashes: Vec<u128>,
    reasons: Vec<Option<String>>,
    /// Values set from the defaults, per row.
    defaulted: Vec<u32>,
}

/// What the rules say about each row of a batch.
struct Verdicts {
    reasons: Vec<Option<String>>,
    flagged: Vec<bool>,
    clipped: Vec<bool>,
    clips: Vec<Clip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Low,
    High,
}

fn json_f64(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_floating() || matches!(dt, DataType::Decimal128(_, _))
}

impl Cleaner {
    fn new(
        object: &SchemaObject,
        recipe: &CleanRecipe,
        schema: &SchemaRef,
        specs: &[ColumnSpec],
    ) -> Result<Cleaner> {
        let index = |c: &str| {
            schema.index_of(c).map_err(|_| {
                Error::Config(format!(
                    "recipe names column `{c}`, which the contract does not have"
                ))
            })
        };
        let lower = recipe
            .lowercase
            .iter()
            .map(|c| index(c))
            .collect::<Result<_>>()?;
        let upper = recipe
            .uppercase
            .iter()
            .map(|c| index(c))
            .collect::<Result<_>>()?;
        let mut defaults = Vec::new();
        for (col, text) in &recipe.defaults {
            let i = index(col)?;
            let cell = parse_text(&specs[i], text)
                .map_err(|e| Error::Config(format!("default of `{col}`: {e}")))?;
            let mut b =
                ColumnBuilder::new(Arc::clone(&schema.fields()[i])).map_err(Error::Config)?;
            b.append(&cell);
            defaults.push((i, b.finish()));
        }
        let mut raw_of = HashMap::new();
        for c in &recipe.keep_raw {
            let raw = super::raw_column(c);
            raw_of.insert(index(c)?, index(&raw)?);
        }
        let mut coalesce = Vec::new();
        for (target, sources) in &recipe.coalesce {
            let t = index(target)?;
            let mut from = Vec::new();
            for c in sources {
                let i = index(c)?;
                if schema.field(i).data_type() != schema.field(t).data_type() {
                    return Err(Error::Config(format!(
                        "coalesce: `{c}` ({}) cannot fill `{target}` ({})",
                        schema.field(i).data_type(),
                        schema.field(t).data_type()
                    )));
                }
                from.push(i);
            }
            coalesce.push((t, from));
        }
        let mut canonical = HashMap::new();
        let mut rules = Vec::new();
        for (i, p) in object.properties.iter().enumerate() {
            compile_rules(i, p, &mut rules, &mut canonical)?;
        }
        let key_columns: Vec<usize> = object
            .primary_key()
            .iter()
            .map(|p| index(&p.name))
            .collect::<Result<_>>()?;
        let all_rows = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let keys = if key_columns.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                key_columns
                    .iter()
                    .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                    .collect(),
            )?)
        };
        let latest = match (&recipe.latest_by, key_columns.is_empty()) {
            (Some(col), false) => {
                let i = schema.index_of(col).map_err(|_| {
                    Error::Config(format!("latest_by column `{col}` is not in the contract"))
                })?;
                ordering_values(&new_null_array(schema.field(i).data_type(), 0))?;
                Some(i)
            }
            (Some(_), true) => {
                return Err(Error::Config(
                    "latest_by needs a primary key in the contract".into(),
                ));
            }
            (None, _) => None,
        };
        let boolean = |c: &str, what: &str| -> Result<usize> {
            let i = index(c)?;
            if schema.field(i).data_type() != &DataType::Boolean {
                return Err(Error::Config(format!(
                    "{what} `{c}` must be a boolean column of the contract, not {}",
                    schema.field(i).data_type()
                )));
            }
            Ok(i)
        };
        let range_action = recipe.outliers.range_action();
        let (detect, flag_column) = match recipe.outliers.detection() {
            None => (None, None),
            Some(d) => {
                if d.columns.is_empty() {
                    return Err(Error::Config("outliers.columns is empty".into()));
                }
                let columns = d
                    .columns
                    .iter()
                    .map(|c| {
                        let i = index(c)?;
                        if !is_numeric(schema.field(i).data_type()) {
                            return Err(Error::Config(format!(
                                "outliers.columns: `{c}` is not numeric ({})",
                                schema.field(i).data_type()
                            )));
                        }
                        Ok((i, c.clone()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let parameter = match d.method {
                    OutlierMethod::Iqr => d.k(),
                    OutlierMethod::Zscore => d.threshold(),
                };
                if !(parameter.is_finite() && parameter > 0.0) {
                    return Err(Error::Config(format!(
                        "outliers: k / threshold must be a positive number, not {parameter}"
                    )));
                }
                let flag = d
                    .flag_column
                    .as_deref()
                    .map(|c| boolean(c, "outliers.flag_column"))
                    .transpose()?;
                (
                    Some(Detect {
                        method: d.method,
                        parameter,
                        columns,
                        action: d.action,
                    }),
                    flag,
                )
            }
        };
        let mut flatten = Vec::new();
        for (source, fields) in &recipe.flatten {
            let src = index(source)?;
            if schema.field(src).data_type() != &DataType::Utf8 {
                return Err(Error::Config(format!(
                    "flatten: `{source}` must be a text (JSON) column, not {}",
                    schema.field(src).data_type()
                )));
            }
            let mut targets = Vec::new();
            for f in fields {
                let target = format!("{source}_{}", f.replace('.', "_"));
                let t = schema.index_of(&target).map_err(|_| {
                    Error::Config(format!(
                        "flatten: field `{f}` of `{source}` goes to column `{target}`, which the contract does not have"
                    ))
                })?;
                let pointer = format!(
                    "/{}",
                    f.split('.')
                        .map(|p| p.replace('~', "~0").replace('/', "~1"))
                        .collect::<Vec<_>>()
                        .join("/")
                );
                targets.push((f.clone(), pointer, t));
            }
            flatten.push((src, targets));
        }
        let structured = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f.data_type(), DataType::Struct(_) | DataType::List(_)))
            .map(|(i, _)| i)
            .collect();
        let gaps = match &recipe.gaps {
            None => None,
            Some(g) => {
                let every = g.every_micros().map_err(Error::Config)?;
                let time = index(&g.time)?;
                match schema.field(time).data_type() {
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {}
                    DataType::Date32 if every % 86_400_000_000 == 0 => {}
                    DataType::Date32 => {
                        return Err(Error::Config(format!(
                            "gaps: `{}` is a date: every must be whole days, not `{}`",
                            g.time, g.every
                        )));
                    }
                    other => {
                        return Err(Error::Config(format!(
                            "gaps.time `{}` must be a timestamp or date column, not {other}",
                            g.time
                        )));
                    }
                }
                let marker = boolean(&g.marker, "gaps.marker")?;
                let by = g.by.iter().map(|c| index(c)).collect::<Result<Vec<_>>>()?;
                // The outlier flag of a generated row is false, like its marker's opposite.
                let measures: Vec<usize> = (0..schema.fields().len())
                    .filter(|i| {
                        *i != time && *i != marker && !by.contains(i) && Some(*i) != flag_column
                    })
                    .collect();
                for &m in &measures {
                    let p = &object.properties[m];
                    let f = schema.field(m);
                    let null_filled = match g.fill {
                        GapFill::Null => true,
                        GapFill::Zero => !is_numeric(f.data_type()),
                        GapFill::Forward => false,
                    };
                    if p.required && null_filled {
                        return Err(Error::Config(format!(
                            "gaps: column `{}` is required, but fill = \"{}\" leaves it null in generated rows",
                            f.name(),
                            match g.fill {
                                GapFill::Null => "null",
                                _ => "zero",
                            }
                        )));
                    }
                }
                let series = RowConverter::new(
                    by.iter()
                        .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                        .collect(),
                )?;
                Some(Gaps {
                    time,
                    time_name: g.time.clone(),
                    every,
                    every_text: g.every.clone(),
                    by,
                    fill: g.fill,
                    marker,
                    marker_name: g.marker.clone(),
                    max: g.max_filled_rows,
                    measures,
                    flag: flag_column,
                    series,
                })
            }
        };
        Ok(Cleaner {
            trim: recipe.trim,
            duplicates_as_read: recipe.duplicates_as_read,
            lower,
            upper,
            canonical,
            defaults,
            rules,
            range_action,
            flag_column,
            detect,
            fences: Vec::new(),
            flatten,
            structured,
            specs: specs.to_vec(),
            schema: Arc::clone(schema),
            gaps,
            latest,
            raw_of,
            coalesce,
            key_columns,
            all_rows,
            keys,
        })
    }

    /// Structuring, conforming to the staged schema, normalization and defaults; with
    /// `hashes`, the row hashes too.
    fn prepare(&self, raw: &RecordBatch, hashes: bool) -> Result<Prepared> {
        let n = raw.num_rows();
        let mut reasons: Vec<Option<String>> = vec![None; n];
        // JSON text where the contract declares a struct or list: parse it.
        let mut fields = Vec::with_capacity(raw.num_columns());
        let mut columns = Vec::with_capacity(raw.num_columns());
        for (f, c) in raw.schema().fields().iter().zip(raw.columns()) {
            let target = self.schema.index_of(f.name()).ok();
            match target {
                Some(t)
                    if self.structured.contains(&t)
                        && matches!(c.data_type(), DataType::Utf8 | DataType::LargeUtf8) =>
                {
                    let text = cast(c, &DataType::Utf8)?;
                    let text = text.as_string::<i32>();
                    let field = Arc::clone(&self.schema.fields()[t]);
                    let mut b = ColumnBuilder::new(Arc::clone(&field)).map_err(Error::Config)?;
                    for (r, v) in text.iter().enumerate() {
                        let cell = match v {
                            None => Ok(crate::typing::Cell::Null),
                            Some(v) => parse_text(&self.specs[t], v),
                        };
                        match cell {
                            Ok(cell) => b.append(&cell),
                            Err(e) => {
                                b.append(&crate::typing::Cell::Null);
                                if reasons[r].is_none() {
                                    reasons[r] = Some(format!("invalid_json_{}: {e}", f.name()));
                                }
                            }
                        }
                    }
                    fields.push(field);
                    columns.push(b.finish());
                }
                _ => {
                    fields.push(Arc::clone(f));
                    columns.push(Arc::clone(c));
                }
            }
        }
        let structured = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let batch = super::conform(&structured, &self.schema)?;
        let batch = self.flatten(&batch, &mut reasons)?;
        let batch = self.trimmed(&batch)?;
        let as_read = if hashes && self.duplicates_as_read {
            Some(self.row_hashes(&batch)?)
        } else {
            None
        };
        let (batch, defaulted) = self.normalize(&batch)?;
        let hashes = match as_read {
            Some(h) => h,
            None if hashes => self.row_hashes(&batch)?,
            None => Vec::new(),
        };
        Ok(Prepared {
            batch,
            hashes,
            reasons,
            defaulted,
        })
    }

    /// Fields of JSON text columns into their `<column>_<field>` columns. A row whose text is
    /// not a JSON object, or whose field does not fit its column, gets a reason.
    fn flatten(&self, batch: &RecordBatch, reasons: &mut [Option<String>]) -> Result<RecordBatch> {
        if self.flatten.is_empty() {
            return Ok(batch.clone());
        }
        let mut columns = batch.columns().to_vec();
        for (src, targets) in &self.flatten {
            let name = self.schema.field(*src).name();
            let text = batch.column(*src).as_string::<i32>();
            let mut builders = targets
                .iter()
                .map(|(_, _, t)| ColumnBuilder::new(Arc::clone(&self.schema.fields()[*t])))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Error::Config)?;
            // Rows whose source is null keep the target's own value.
            let mut from_source = vec![false; batch.num_rows()];
            for (r, v) in text.iter().enumerate() {
                let parsed = match v.map(str::trim).filter(|v| !v.is_empty()) {
                    None => None,
                    Some(v) => match serde_json::from_str::<Value>(v) {
                        Ok(Value::Object(map)) => Some(Ok(Value::Object(map))),
                        Ok(_) => Some(Err(format!(
                            "invalid_json_{name}: `{}` is not a JSON object",
                            shorten(v)
                        ))),
                        Err(e) => Some(Err(format!(
                            "invalid_json_{name}: cannot read `{}` as JSON: {e}",
                            shorten(v)
                        ))),
                    },
                };
                let value = match parsed {
                    None => {
                        for b in &mut builders {
                            b.append(&crate::typing::Cell::Null);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        if reasons[r].is_none() {
                            reasons[r] = Some(e);
                        }
                        for b in &mut builders {
                            b.append(&crate::typing::Cell::Null);
                        }
                        continue;
                    }
                    Some(Ok(v)) => v,
                };
                from_source[r] = true;
                for ((written, pointer, t), b) in targets.iter().zip(&mut builders) {
                    let field = value.pointer(pointer).unwrap_or(&Value::Null);
                    match parse_json(&self.specs[*t], field) {
                        Ok(cell) => b.append(&cell),
                        Err(e) => {
                            b.append(&crate::typing::Cell::Null);
                            if reasons[r].is_none() {
                                reasons[r] = Some(format!(
                                    "invalid_{}: field `{written}` of `{name}`: {e}",
                                    self.schema.field(*t).name(),
                                ));
                            }
                        }
                    }
                }
            }
            let mask = BooleanArray::from(from_source);
            for ((_, _, t), mut b) in targets.iter().zip(builders) {
                columns[*t] = zip(&mask, &b.finish(), &columns[*t])?;
            }
        }
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// Case, canonical values, coalesce and defaults, on a [`Cleaner::trimmed`] batch.
    fn normalize(&self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<u32>)> {
        let mut columns = batch.columns().to_vec();
        for (i, col) in columns.iter_mut().enumerate() {
            if col.data_type() != &DataType::Utf8 {
                continue;
            }
            let lower = self.lower.contains(&i);
            let upper = self.upper.contains(&i);
            let canon = self.canonical.get(&i);
            if !lower && !upper && canon.is_none() {
                continue;
            }
            let strings = col.as_string::<i32>();
            // Values are copied into one buffer; a value is allocated on its own only when its
            // case changes.
            let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
            for v in strings.iter() {
                let Some(v) = v else {
                    out.append_null();
                    continue;
                };
                let s = if lower {
                    lowercase(v)
                } else if upper {
                    uppercase(v)
                } else {
                    Cow::Borrowed(v)
                };
                match canon.and_then(|m| m.get(lowercase(&s).as_ref())) {
                    Some(c) => out.append_value(c),
                    None => out.append_value(&s),
                }
            }
            *col = Arc::new(out.finish());
        }
        for (target, sources) in &self.coalesce {
            for &from in sources {
                let present = is_not_null(&columns[*target])?;
                columns[*target] = zip(&present, &columns[*target], &columns[from])?;
            }
        }
        let mut defaulted = vec![0u32; batch.num_rows()];
        for (i, default) in &self.defaults {
            for (r, d) in defaulted.iter_mut().enumerate() {
                if columns[*i].is_null(r) {
                    *d += 1;
                }
            }
            let present = is_not_null(&columns[*i])?;
            let filled = zip(
                &present,
                &columns[*i],
                &arrow::array::Scalar::new(Arc::clone(default)),
            )?;
            columns[*i] = filled;
        }
        Ok((RecordBatch::try_new(batch.schema(), columns)?, defaulted))
    }

    /// The batch with strings trimmed (blank → null) and nothing else normalized.
    fn trimmed(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if !self.trim {
            return Ok(batch.clone());
        }
        let mut columns = batch.columns().to_vec();
        for col in &mut columns {
            if col.data_type() != &DataType::Utf8 {
                continue;
            }
            let strings = col.as_string::<i32>();
            let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
            for v in strings.iter() {
                match v.map(str::trim).filter(|v| !v.is_empty()) {
                    Some(v) => out.append_value(v),
                    None => out.append_null(),
                }
            }
            *col = Arc::new(out.finish());
        }
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    fn row_hashes(&self, batch: &RecordBatch) -> Result<Vec<u128>> {
        let rows = self.all_rows.convert_columns(batch.columns())?;
        Ok(rows
            .iter()
            .map(|r| xxhash_rust::xxh3::xxh3_128(r.as_ref()))
            .collect())
    }

    /// Key hashes; `None` where a key column is null (such rows are never collapsed).
    fn key_hashes(&self, batch: &RecordBatch) -> Result<Vec<Option<u128>>> {
        let Some(conv) = &self.keys else {
            return Ok(vec![None; batch.num_rows()]);
        };
        let cols: Vec<ArrayRef> = self
            .key_columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let rows = conv.convert_columns(&cols)?;
        Ok((0..batch.num_rows())
            .map(|r| {
                let any_null = cols.iter().any(|c| c.is_null(r));
                (!any_null).then(|| xxhash_rust::xxh3::xxh3_128(rows.row(r).as_ref()))
            })
            .collect())
    }

    /// The first broken rule of each row (after the structuring reasons), which rows are
    /// outliers kept with a flag, and which values are clipped.
    fn verdicts(&self, batch: &RecordBatch, mut reasons: Vec<Option<String>>) -> Result<Verdicts> {
        let n = batch.num_rows();
        let mut flagged = vec![false; n];
        let mut clipped = vec![false; n];
        let mut clips = Vec::new();
        for (col, name, rule) in &self.rules {
            let array = batch.column(*col);
            match rule {
                RowRule::Required => {
                    // With `keep_raw`, a null whose text was there could not be typed.
                    let raw = self.raw_of.get(col).map(|&i| batch.column(i));
                    for r in (0..n).filter(|&r| array.is_null(r)) {
                        if reasons[r].is_none() {
                            let invalid = raw.is_some_and(|a| a.is_valid(r));
                            reasons[r] = Some(if invalid {
                                format!("invalid_{name}")
                            } else {
                                format!("missing_{name}")
                            });
                        }
                    }
                }
                RowRule::ValidValues(_) | RowRule::Pattern(_) | RowRule::Length { .. } => {
                    let Ok(text) = cast(array, &DataType::Utf8) else {
                        continue;
                    };
                    let text = text.as_string::<i32>();
                    for (r, v) in text.iter().enumerate() {
                        let Some(v) = v else { continue };
                        let ok = match rule {
                            RowRule::ValidValues(set) => set.contains(v),
                            RowRule::Pattern(re) => re.is_match(v),
                            RowRule::Length { min, max } => {
                                let len = v.chars().count() as u64;
                                min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
                            }
                            _ => true,
                        };
                        if !ok && reasons[r].is_none() {
                            reasons[r] = Some(format!("invalid_{name}"));
                        }
                    }
                }
                RowRule::Range { min, max } => {
                    let Ok(values) = cast(array, &DataType::Float64) else {
                        continue;
                    };
                    let values = values.as_primitive::<Float64Type>();
                    let mut sides = vec![None; n];
                    for r in 0..n {
                        if values.is_null(r) {
                            continue;
                        }
                        let v = values.value(r);
                        let low = min.is_some_and(|(m, excl)| if excl { v <= m } else { v < m });
                        let high = max.is_some_and(|(m, excl)| if excl { v >= m } else { v > m });
                        if !(low || high) {
                            continue;
                        }
                        match self.range_action {
                            OutlierAction::Quarantine => {
                                if reasons[r].is_none() {
                                    reasons[r] = Some(format!("{name}_out_of_range"));
                                }
                            }
                            OutlierAction::Flag => flagged[r] = true,
                            OutlierAction::Clip => {
                                clipped[r] = true;
                                sides[r] = Some(if low { Side::Low } else { Side::High });
                            }
                        }
                    }
                    if sides.iter().any(Option::is_some) {
                        clips.push((*col, *min, *max, sides));
                    }
                }
            }
        }
        if let Some(d) = &self.detect {
            for ((col, name), fence) in d.columns.iter().zip(&self.fences) {
                let Some((lo, hi)) = *fence else { continue };
                let array = batch.column(*col);
                let values = cast(array, &DataType::Float64)?;
                let values = values.as_primitive::<Float64Type>();
                let mut sides = vec![None; n];
                for r in 0..n {
                    if values.is_null(r) {
                        continue;
                    }
                    let v = values.value(r);
                    let side = if v < lo {
                        Side::Low
                    } else if v > hi {
                        Side::High
                    } else {
                        continue;
                    };
                    match d.action {
                        OutlierAction::Quarantine => {
                            if reasons[r].is_none() {
                                let shown = arrow::util::display::array_value_to_string(array, r)
                                    .unwrap_or_else(|_| v.to_string());
                                reasons[r] = Some(format!(
                                    "outlier: {name}={shown} outside [{}, {}] ({})",
                                    shown_f64(lo),
                                    shown_f64(hi),
                                    d.describe()
                                ));
                            }
                        }
                        OutlierAction::Flag => flagged[r] = true,
                        OutlierAction::Clip => {
                            clipped[r] = true;
                            sides[r] = Some(side);
                        }
                    }
                }
                if sides.iter().any(Option::is_some) {
                    clips.push((*col, Some((lo, false)), Some((hi, false)), sides));
                }
            }
        }
        Ok(Verdicts {
            reasons,
            flagged,
            clipped,
            clips,
        })
    }

    /// The batch with clipped values and the flag and marker columns set (real rows: false).
    fn apply(&self, batch: &RecordBatch, verdicts: &Verdicts) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for (col, lo, hi, sides) in &verdicts.clips {
            columns[*col] = clamp(&columns[*col], *lo, *hi, sides)?;
        }
        if let Some(f) = self.flag_column {
            columns[f] = Arc::new(BooleanArray::from(verdicts.flagged.clone()));
        }
        if let Some(g) = &self.gaps {
            columns[g.marker] = Arc::new(BooleanArray::from(vec![false; batch.num_rows()]));
        }
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// The fences pass 1 found, for the run record.
    fn fence_notes(&self) -> Vec<String> {
        let Some(d) = &self.detect else {
            return Vec::new();
        };
        d.columns
            .iter()
            .zip(&self.fences)
            .map(|((_, name), fence)| match fence {
                Some((lo, hi)) => format!(
                    "outlier fences of `{name}` ({}): [{lo}, {hi}]",
                    d.describe()
                ),
                None => format!(
                    "outlier fences of `{name}` ({}): no value to compute them from",
                    d.describe()
                ),
            })
            .collect()
    }
}

impl Detect {
    fn describe(&self) -> String {
        match self.method {
            OutlierMethod::Iqr => format!("iqr k={}", self.parameter),
            OutlierMethod::Zscore => format!("zscore threshold={}", self.parameter),
        }
    }
}

/// A fence for people: at most 9 decimal places, so that `8.000000000000002` reads `8`.
fn shown_f64(v: f64) -> f64 {
    let r = (v * 1e9).round() / 1e9;
    if r.is_finite() { r } else { v }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Sets the values of the marked rows to the bound they cross (an exclusive bound: the nearest
/// value inside it at the column's precision).
fn clamp(
    array: &ArrayRef,
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
    sides: &[Option<Side>],
) -> Result<ArrayRef> {
    let dt = array.data_type();
    let pick = |r: usize| sides.get(r).copied().flatten();
    if dt.is_integer() {
        let lo_i = lo.map(|(m, ex)| {
            if ex {
                m.floor() as i64 + 1
            } else {
                m.ceil() as i64
            }
        });
        let hi_i = hi.map(|(m, ex)| {
            if ex {
                m.ceil() as i64 - 1
            } else {
                m.floor() as i64
            }
        });
        let v = cast(array, &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        let out: Int64Array = (0..v.len())
            .map(|r| {
                (!v.is_null(r)).then(|| match pick(r) {
                    Some(Side::Low) => lo_i.unwrap_or(v.value(r)),
                    Some(Side::High) => hi_i.unwrap_or(v.value(r)),
                    None => v.value(r),
                })
            })
            .collect();
        return Ok(cast(&out, dt)?);
    }
    if dt.is_floating() {
        let lo_f = lo.map(|(m, ex)| if ex { m.next_up() } else { m });
        let hi_f = hi.map(|(m, ex)| if ex { m.next_down() } else { m });
        let v = cast(array, &DataType::Float64)?;
        let v = v.as_primitive::<Float64Type>();
        let out: Float64Array = (0..v.len())
            .map(|r| {
                (!v.is_null(r)).then(|| match pick(r) {
                    Some(Side::Low) => lo_f.unwrap_or(v.value(r)),
                    Some(Side::High) => hi_f.unwrap_or(v.value(r)),
                    None => v.value(r),
                })
            })
            .collect();
        return Ok(cast(&out, dt)?);
    }
    if let DataType::Decimal128(p, s) = dt {
        let factor = 10f64.powi(i32::from(*s));
        // Bounds at the column's scale, rounded inwards (a value within 1e-6 of a whole
        // mantissa is that mantissa: `0.29 * 100` is 28.999999999999996).
        let scaled = |m: f64| {
            let x = m * factor;
            if (x - x.round()).abs() < 1e-6 {
                x.round()
            } else {
                x
            }
        };
        let lo_m = lo.map(|(m, ex)| {
            let x = scaled(m);
            (if ex { x.floor() + 1.0 } else { x.ceil() }) as i128
        });
        let hi_m = hi.map(|(m, ex)| {
            let x = scaled(m);
            (if ex { x.ceil() - 1.0 } else { x.floor() }) as i128
        });
        let v = array.as_primitive::<arrow::datatypes::Decimal128Type>();
        let out: Decimal128Array = (0..v.len())
            .map(|r| {
                (!v.is_null(r)).then(|| match pick(r) {
                    Some(Side::Low) => lo_m.unwrap_or(v.value(r)),
                    Some(Side::High) => hi_m.unwrap_or(v.value(r)),
                    None => v.value(r),
                })
            })
            .collect();
        return Ok(Arc::new(out.with_precision_and_scale(*p, *s)?));
    }
    Err(Error::Config(format!("cannot clip a column of type {dt}")))
}

/// Statistics of one column over the file.
#[derive(Debug, Default)]
struct Stat {
    /// Every non-null value (IQR only: exact quartiles).
    values: Vec<f64>,
    /// Welford's running count, mean and sum of squared deviations (z-score).
    count: u64,
    mean: f64,
    m2: f64,
}

impl Stat {
    fn update(&mut self, array: &ArrayRef, method: OutlierMethod) -> Result<()> {
        let values = cast(array, &DataType::Float64)?;
        let values = values.as_primitive::<Float64Type>();
        for v in values.iter().flatten() {
            if method == OutlierMethod::Iqr {
                self.values.push(v);
            }
            self.count += 1;
            let delta = v - self.mean;
            self.mean += delta / self.count as f64;
            self.m2 += delta * (v - self.mean);
        }
        Ok(())
    }

    /// `[Q1 - k·IQR, Q3 + k·IQR]` (quartiles by linear interpolation between closest ranks), or
    /// `mean ± threshold·σ` (population standard deviation); `None` without values.
    fn fences(&mut self, method: OutlierMethod, parameter: f64) -> Option<(f64, f64)> {
        if self.count == 0 {
            return None;
        }
        match method {
            OutlierMethod::Iqr => {
                let v = &mut self.values;
                v.sort_by(f64::total_cmp);
                let q = |p: f64| {
                    let pos = p * (v.len() - 1) as f64;
                    let (i, frac) = (pos.floor() as usize, pos.fract());
                    let next = v.get(i + 1).copied().unwrap_or(v[i]);
                    v[i] + frac * (next - v[i])
                };
                let (q1, q3) = (q(0.25), q(0.75));
                let iqr = q3 - q1;
                let fences = (q1 - parameter * iqr, q3 + parameter * iqr);
                self.values = Vec::new();
                Some(fences)
            }
            OutlierMethod::Zscore => {
                let sd = (self.m2 / self.count as f64).sqrt();
                Some((self.mean - parameter * sd, self.mean + parameter * sd))
            }
        }
    }
}

/// Time slots of every series, for gap filling.
#[derive(Debug, Default)]
struct SeriesSlots {
    /// Series key hash → slots seen (pass 2), then sorted (after [`SeriesSlots::finish`]).
    seen: HashMap<u128, BTreeSet<i64>>,
    /// Series key hash → offset of its first timestamp within a slot.
    offset: HashMap<u128, (i64, i64)>,
    /// Series key hash → sorted slots, and the slots that start a gap not yet filled.
    sorted: HashMap<u128, (Vec<i64>, HashSet<i64>)>,
}

impl SeriesSlots {
    fn times(gaps: &Gaps, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        let col = batch.column(gaps.time);
        Ok(match col.data_type() {
            DataType::Date32 => col
                .as_primitive::<arrow::datatypes::Date32Type>()
                .iter()
                .map(|d| d.map(|d| i64::from(d) * 86_400_000_000))
                .collect(),
            _ => cast(col, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .iter()
                .collect(),
        })
    }

    fn keys(gaps: &Gaps, batch: &RecordBatch) -> Result<Vec<u128>> {
        if gaps.by.is_empty() {
            return Ok(vec![0; batch.num_rows()]);
        }
        let cols: Vec<ArrayRef> = gaps
            .by
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let rows = gaps.series.convert_columns(&cols)?;
        Ok(rows
            .iter()
            .map(|r| xxhash_rust::xxh3::xxh3_128(r.as_ref()))
            .collect())
    }

    /// Records the slots of the rows no rule refuses.
    fn scan(&mut self, gaps: &Gaps, batch: &RecordBatch, reasons: &[Option<String>]) -> Result<()> {
        let times = Self::times(gaps, batch)?;
        let keys = Self::keys(gaps, batch)?;
        for r in 0..batch.num_rows() {
            let (Some(t), None) = (times[r], &reasons[r]) else {
                continue;
            };
            self.seen
                .entry(keys[r])
                .or_default()
                .insert(t.div_euclid(gaps.every));
            let first = self
                .offset
                .entry(keys[r])
                .or_insert((t, t.rem_euclid(gaps.every)));
            if t < first.0 {
                *first = (t, t.rem_euclid(gaps.every));
            }
        }
        Ok(())
    }

    /// How many rows filling every gap generates.
    fn finish(&mut self) -> u64 {
        let mut missing = 0u64;
        for (k, slots) in std::mem::take(&mut self.seen) {
            let sorted: Vec<i64> = slots.into_iter().collect();
            let starts: HashSet<i64> = sorted
                .windows(2)
                .filter(|w| w[1] - w[0] > 1)
                .map(|w| {
                    missing = missing.saturating_add((w[1] - w[0] - 1).unsigned_abs());
                    w[0]
                })
                .collect();
            self.sorted.insert(k, (sorted, starts));
        }
        missing
    }

    /// The clean rows of a batch with the rows filling the gaps that follow them, each right
    /// after the row before its gap; and how many were generated.
    fn fill(&mut self, gaps: &Gaps, clean: &RecordBatch) -> Result<(RecordBatch, u64)> {
        let times = Self::times(gaps, clean)?;
        let keys = Self::keys(gaps, clean)?;
        let mut sources = Vec::new();
        let mut stamps = Vec::new();
        let mut order = Vec::new();
        let n = clean.num_rows();
        for r in 0..n {
            order.push(r as u32);
            let Some(t) = times[r] else { continue };
            let slot = t.div_euclid(gaps.every);
            let Some((sorted, starts)) = self.sorted.get_mut(&keys[r]) else {
                continue;
            };
            if !starts.remove(&slot) {
                continue;
            }
            let next = match sorted.binary_search(&slot) {
                Ok(i) => sorted.get(i + 1).copied().unwrap_or(slot),
                Err(_) => slot,
            };
            let offset = self.offset.get(&keys[r]).map_or(0, |o| o.1);
            for s in slot + 1..next {
                order.push((n + sources.len()) as u32);
                sources.push(r as u32);
                stamps.push(s * gaps.every + offset);
            }
        }
        if sources.is_empty() {
            return Ok((clean.clone(), 0));
        }
        let filled = sources.len() as u64;
        let generated = take_record_batch(clean, &UInt32Array::from(sources))?;
        let mut columns = generated.columns().to_vec();
        let rows = generated.num_rows();
        columns[gaps.time] = match clean.schema().field(gaps.time).data_type() {
            DataType::Date32 => Arc::new(Date32Array::from(
                stamps
                    .iter()
                    .map(|t| i32::try_from(t / 86_400_000_000).unwrap_or(i32::MAX))
                    .collect::<Vec<_>>(),
            )),
            DataType::Timestamp(_, tz) => {
                Arc::new(TimestampMicrosecondArray::from(stamps).with_timezone_opt(tz.clone()))
            }
            other => {
                return Err(Error::Internal(format!("gap time column of type {other}")));
            }
        };
        columns[gaps.marker] = Arc::new(BooleanArray::from(vec![true; rows]));
        if let Some(f) = gaps.flag {
            columns[f] = Arc::new(BooleanArray::from(vec![false; rows]));
        }
        for &m in &gaps.measures {
            let dt = clean.schema().field(m).data_type().clone();
            match gaps.fill {
                GapFill::Forward => {}
                GapFill::Null => columns[m] = new_null_array(&dt, rows),
                GapFill::Zero if is_numeric(&dt) => {
                    columns[m] = cast(&Int64Array::from(vec![0i64; rows]), &dt)?;
                }
                GapFill::Zero => columns[m] = new_null_array(&dt, rows),
            }
        }
        let generated = RecordBatch::try_new(clean.schema(), columns)?;
        let all = concat_batches(&clean.schema(), [clean, &generated])?;
        let ordered = take_record_batch(&all, &UInt32Array::from(order))?;
        Ok((ordered, filled))
    }
}

fn compile_rules(
    i: usize,
    p: &Property,
    rules: &mut Vec<(usize, String, RowRule)>,
    canonical: &mut HashMap<usize, HashMap<String, String>>,
) -> Result<()> {
    let name = p.name.clone();
    if p.required {
        rules.push((i, name.clone(), RowRule::Required));
    }
    let bad_pattern = |pat: &str, e: regex::Error| {
        Error::Config(format!(
            "column `{}`: pattern `{pat}` does not compile: {e}",
            p.name
        ))
    };
    for rule in &p.quality {
        let RuleKind::Library {
            metric: Metric::InvalidValues,
            arguments,
        } = &rule.kind
        else {
            continue;
        };
        if let Some(values) = arguments.get("validValues").and_then(|v| v.as_array()) {
            let set: HashSet<String> = values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            let canon = canonical.entry(i).or_default();
            for v in &set {
                canon.insert(v.to_lowercase(), v.clone());
            }
            rules.push((i, name.clone(), RowRule::ValidValues(set)));
        }
        if let Some(pat) = arguments.get("pattern").and_then(|v| v.as_str()) {
            rules.push((
                i,
                name.clone(),
                RowRule::Pattern(Regex::new(pat).map_err(|e| bad_pattern(pat, e))?),
            ));
        }
    }
    let o = &p.options;
    if let Some(pat) = &o.pattern {
        rules.push((
            i,
            name.clone(),
            RowRule::Pattern(Regex::new(pat).map_err(|e| bad_pattern(pat, e))?),
        ));
    }
    if o.min_length.is_some() || o.max_length.is_some() {
        rules.push((
            i,
            name.clone(),
            RowRule::Length {
                min: o.min_length,
                max: o.max_length,
            },
        ));
    }
    let numeric = matches!(
        p.logical_type,
        Some(tessera_contract::LogicalType::Number | tessera_contract::LogicalType::Integer)
    );
    if numeric {
        let min = o
            .exclusive_minimum
            .as_ref()
            .and_then(json_f64)
            .map(|v| (v, true))
            .or(o.minimum.as_ref().and_then(json_f64).map(|v| (v, false)));
        let max = o
            .exclusive_maximum
            .as_ref()
            .and_then(json_f64)
            .map(|v| (v, true))
            .or(o.maximum.as_ref().and_then(json_f64).map(|v| (v, false)));
        if min.is_some() || max.is_some() {
            rules.push((i, name, RowRule::Range { min, max }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;

    fn fences(values: &[f64], method: OutlierMethod, parameter: f64) -> Option<(f64, f64)> {
        let mut stat = Stat::default();
        let array: ArrayRef = Arc::new(Float64Array::from(values.to_vec()));
        stat.update(&array, method).unwrap();
        stat.fences(method, parameter)
    }

    #[test]
    fn quartiles_interpolate_between_closest_ranks() {
        // NumPy: percentile([1, 2, 3, 4], [25, 75]) = [1.75, 3.25]; IQR 1.5.
        assert_eq!(
            fences(&[4.0, 1.0, 3.0, 2.0], OutlierMethod::Iqr, 1.0),
            Some((0.25, 4.75))
        );
        // One value: no spread, the fences are the value.
        assert_eq!(fences(&[7.0], OutlierMethod::Iqr, 1.5), Some((7.0, 7.0)));
        assert_eq!(fences(&[], OutlierMethod::Iqr, 1.5), None);
        assert_eq!(fences(&[], OutlierMethod::Zscore, 3.0), None);
        // Population standard deviation: 2, 4, 4, 4, 5, 5, 7, 9 → mean 5, σ 2.
        let (lo, hi) = fences(
            &[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0],
            OutlierMethod::Zscore,
            2.0,
        )
        .unwrap();
        assert!(
            (lo - 1.0).abs() < 1e-12 && (hi - 9.0).abs() < 1e-12,
            "{lo} {hi}"
        );
    }

    #[test]
    fn clipping_keeps_values_inside_bounds_at_the_column_precision() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(-5), Some(50), None, Some(500)]));
        let sides = [Some(Side::Low), None, None, Some(Side::High)];
        // Inclusive fences that are not integers: the nearest integers inside.
        let out = clamp(&ints, Some((0.5, false)), Some((99.5, false)), &sides).unwrap();
        let out: Vec<_> = out
            .as_primitive::<arrow::datatypes::Int32Type>()
            .iter()
            .collect();
        assert_eq!(out, [Some(1), Some(50), None, Some(99)]);
        // Exclusive bounds: strictly inside.
        let out = clamp(&ints, Some((0.0, true)), Some((100.0, true)), &sides).unwrap();
        let out: Vec<_> = out
            .as_primitive::<arrow::datatypes::Int32Type>()
            .iter()
            .collect();
        assert_eq!(out, [Some(1), Some(50), None, Some(99)]);
        // Decimals at their scale; 0.29 is not 0.2899999.
        let dec: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1), Some(10_000)])
                .with_precision_and_scale(6, 2)
                .unwrap(),
        );
        let out = clamp(
            &dec,
            Some((0.29, false)),
            Some((12.345, false)),
            &[Some(Side::Low), Some(Side::High)],
        )
        .unwrap();
        let out: Vec<_> = out
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .iter()
            .collect();
        assert_eq!(out, [Some(29), Some(1234)]);
        assert_eq!(out.len(), 2);
        // Floats: an exclusive bound gives the next float inside it.
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![-1.0, 2.0]));
        let out = clamp(
            &floats,
            Some((0.0, true)),
            Some((1.0, false)),
            &[Some(Side::Low), Some(Side::High)],
        )
        .unwrap();
        let out = out.as_primitive::<Float64Type>();
        assert!(out.value(0) > 0.0 && out.value(0) < 1e-300);
        assert_eq!(out.value(1), 1.0);
    }
}
