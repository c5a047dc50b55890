//! clean: typed rows → cleaned rows in the clean zone.
//!
//! In this order, as the product's recipe and contract say:
//! 1. strings trimmed, blank strings become null; case normalized (recipe `lowercase` /
//!    `uppercase`, and values of an enumerated column take the contract's spelling);
//! 2. nulls of optional columns take the recipe's defaults;
//! 3. rows equal in every column to an earlier row are dropped;
//! 4. with `latest_by`, only the latest row per primary key is kept (later rows win ties);
//! 5. row rules from the contract: required, valid values, patterns, lengths (quarantine) and
//!    ranges (quarantine or flag, per the recipe). The first broken rule is the row's reason.
//!
//! Deduplication keeps 128-bit hashes, so memory follows the number of distinct rows and keys,
//! never the bytes of the file; step 4 reads the input twice to stay that way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, filter_record_batch, is_not_null};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use regex::Regex;
use tessera_contract::{Metric, Property, RuleKind, SchemaObject};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::keys::{Zone, input_id};
use crate::mesh::{CleanRecipe, OutlierAction, ProductKind};
use crate::runs::{self, InputRef, RunRecord, RunStatus};
use crate::typing::{ColumnBuilder, ColumnSpec, parse_text};

/// Cleans one staged object.
pub async fn run(ctx: &Context, bucket: &str, key: &str, version: &str) -> Result<RunRecord> {
    let (domain, product, zk) = super::resolve(ctx, bucket, key, Zone::Staged)?;
    let ProductKind::Source { clean: recipe, .. } = &product.kind else {
        return Err(Error::Config(format!(
            "product `{}` is an aggregate: it has no staged zone",
            product.name
        )));
    };
    let id = input_id(bucket, key, version);
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
    };
    let (mut record, started) = RunRecord::start(&id, "clean", &domain.name, &product.name, input);
    let (schema, specs) = super::staged_schema(product.schema())?;
    let cleaner = Cleaner::new(product.schema(), recipe, &schema, &specs)?;

    // Pass 1 (only with `latest_by`): find the winning row of every key.
    let mut dedupe = Dedupe::default();
    let latest = match (&recipe.latest_by, cleaner.key_columns.is_empty()) {
        (Some(col), false) => Some(schema.index_of(col).map_err(|_| {
            Error::Config(format!("latest_by column `{col}` is not in the contract"))
        })?),
        (Some(_), true) => {
            return Err(Error::Config(format!(
                "product `{}`: latest_by needs a primary key in the contract",
                product.name
            )));
        }
        (None, _) => None,
    };
    if let Some(order_col) = latest {
        let mut stream = ctx.storage.read_parquet(bucket, key).await?;
        let mut row = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = cleaner.normalize(&super::conform(&batch?, &schema)?)?;
            dedupe.scan(
                &cleaner,
                &batch,
                order_col,
                &mut row,
                recipe.drop_exact_duplicates,
            )?;
        }
    }

    // Pass 2: write clean rows, quarantine bad ones.
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
    let mut stream = ctx.storage.read_parquet(bucket, key).await?;
    let mut row = 0u64;
    let (mut duplicates, mut superseded) = (0u64, 0u64);
    let mut seen = HashSet::new();
    while let Some(batch) = stream.next().await {
        let batch = cleaner.normalize(&super::conform(&batch?, &schema)?)?;
        let n = batch.num_rows();
        record.rows_in += n as u64;
        let row_hashes = cleaner.row_hashes(&batch)?;
        let key_hashes = cleaner.key_hashes(&batch)?;
        let (reasons, outliers) = cleaner.violations(&batch)?;
        let mut keep = Vec::with_capacity(n);
        let mut bad = Vec::with_capacity(n);
        let mut bad_reasons = Vec::new();
        for i in 0..n {
            let global = row + i as u64;
            let duplicate = if latest.is_some() {
                dedupe.duplicates.contains(&global)
            } else {
                recipe.drop_exact_duplicates && !seen.insert(row_hashes[i])
            };
            let loser = latest.is_some()
                && key_hashes[i]
                    .is_some_and(|k| dedupe.winners.get(&k).is_some_and(|w| w.1 != global));
            if duplicate || loser {
                if duplicate {
                    duplicates += 1
                } else {
                    superseded += 1
                }
                keep.push(false);
                bad.push(false);
            } else if let Some(reason) = &reasons[i] {
                keep.push(false);
                bad.push(true);
                bad_reasons.push(reason.clone());
            } else {
                if outliers[i] {
                    record.flagged += 1;
                }
                keep.push(true);
                bad.push(false);
            }
        }
        row += n as u64;
        let clean = filter_record_batch(&batch, &BooleanArray::from(keep))?;
        if clean.num_rows() > 0 {
            if out.is_none() {
                out = Some(
                    ctx.storage
                        .write_parquet(bucket, &clean_key, Arc::clone(&schema))?,
                );
            }
            if let Some(o) = out.as_mut() {
                o.write(&clean).await?;
            }
        }
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
    }
    record.dropped = duplicates + superseded;
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

#[derive(Debug, Default)]
struct Dedupe {
    /// Global row numbers of exact duplicates.
    duplicates: HashSet<u64>,
    /// Key hash → (ordering value, global row number of the winner).
    winners: HashMap<u128, (i128, u64)>,
    seen: HashSet<u128>,
}

impl Dedupe {
    fn scan(
        &mut self,
        cleaner: &Cleaner,
        batch: &RecordBatch,
        order_col: usize,
        row: &mut u64,
        exact: bool,
    ) -> Result<()> {
        let row_hashes = cleaner.row_hashes(batch)?;
        let key_hashes = cleaner.key_hashes(batch)?;
        let order = ordering_values(batch.column(order_col))?;
        for i in 0..batch.num_rows() {
            let global = *row + i as u64;
            if exact && !self.seen.insert(row_hashes[i]) {
                self.duplicates.insert(global);
                continue;
            }
            if let Some(k) = key_hashes[i] {
                let candidate = (order[i], global);
                self.winners
                    .entry(k)
                    .and_modify(|w| {
                        if candidate.0 >= w.0 {
                            *w = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
        *row += batch.num_rows() as u64;
        Ok(())
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

#[derive(Debug)]
struct Cleaner {
    trim: bool,
    lower: HashSet<usize>,
    upper: HashSet<usize>,
    /// Column → lower-cased value → the contract's spelling.
    canonical: HashMap<usize, HashMap<String, String>>,
    defaults: Vec<(usize, ArrayRef)>,
    rules: Vec<(usize, String, RowRule)>,
    outliers: OutlierAction,
    key_columns: Vec<usize>,
    all_rows: RowConverter,
    keys: Option<RowConverter>,
}

fn json_f64(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
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
        Ok(Cleaner {
            trim: recipe.trim,
            lower,
            upper,
            canonical,
            defaults,
            rules,
            outliers: recipe.outliers,
            key_columns,
            all_rows,
            keys,
        })
    }

    fn normalize(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for (i, col) in columns.iter_mut().enumerate() {
            if col.data_type() != &DataType::Utf8 {
                continue;
            }
            let lower = self.lower.contains(&i);
            let upper = self.upper.contains(&i);
            let canon = self.canonical.get(&i);
            if !self.trim && !lower && !upper && canon.is_none() {
                continue;
            }
            let strings = col.as_string::<i32>();
            let out: StringArray = strings
                .iter()
                .map(|v| {
                    let v = v?;
                    let v = if self.trim { v.trim() } else { v };
                    if self.trim && v.is_empty() {
                        return None;
                    }
                    let mut s = if lower {
                        v.to_lowercase()
                    } else if upper {
                        v.to_uppercase()
                    } else {
                        v.to_owned()
                    };
                    if let Some(c) = canon.and_then(|m| m.get(&s.to_lowercase())) {
                        s.clone_from(c);
                    }
                    Some(s)
                })
                .collect();
            *col = Arc::new(out);
        }
        for (i, default) in &self.defaults {
            let present = is_not_null(&columns[*i])?;
            let filled = zip(
                &present,
                &columns[*i],
                &arrow::array::Scalar::new(Arc::clone(default)),
            )?;
            columns[*i] = filled;
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

    /// The first broken rule of each row, and which rows are out of range but kept (flag).
    fn violations(&self, batch: &RecordBatch) -> Result<(Vec<Option<String>>, Vec<bool>)> {
        let n = batch.num_rows();
        let mut reasons: Vec<Option<String>> = vec![None; n];
        let mut outliers = vec![false; n];
        for (col, name, rule) in &self.rules {
            let array = batch.column(*col);
            let mut mark = |row: usize, reason: String, is_range: bool| {
                if is_range && self.outliers == OutlierAction::Flag {
                    outliers[row] = true;
                } else if reasons[row].is_none() {
                    reasons[row] = Some(reason);
                }
            };
            match rule {
                RowRule::Required => {
                    for r in (0..n).filter(|&r| array.is_null(r)) {
                        mark(r, format!("missing_{name}"), false);
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
                        if !ok {
                            mark(r, format!("invalid_{name}"), false);
                        }
                    }
                }
                RowRule::Range { min, max } => {
                    let Ok(values) = cast(array, &DataType::Float64) else {
                        continue;
                    };
                    let values = values.as_primitive::<Float64Type>();
                    for r in 0..n {
                        if values.is_null(r) {
                            continue;
                        }
                        let v = values.value(r);
                        let low = min.is_some_and(|(m, excl)| if excl { v <= m } else { v < m });
                        let high = max.is_some_and(|(m, excl)| if excl { v >= m } else { v > m });
                        if low || high {
                            mark(r, format!("{name}_out_of_range"), true);
                        }
                    }
                }
            }
        }
        Ok((reasons, outliers))
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
