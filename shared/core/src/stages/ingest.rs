//! ingest: a raw file (CSV, NDJSON, a JSON array or Parquet; text formats possibly gzip or
//! zstd compressed) → typed Parquet in the staged zone.
//!
//! The file is parsed as it streams in, and typed per the product's contract: text formats on a
//! blocking thread (decompressed and decoded on the way, under a size cap: [`input`]), Parquet
//! through ranged reads, its columns cast to the contract's types ([`parquet_file`]). A row that
//! cannot be typed goes to `quarantine/<product>/ingest/` as one JSON line with its position (the
//! `line` of a text file, the 0-based `element` of a JSON array, the 0-based `row` of a Parquet
//! file), the reason and the raw fields; the rest goes on. A file that cannot be read at all
//! (empty, binary, no header, not the format or compression it claims, corrupt, a possible
//! decompression bomb) is refused whole: nothing is staged, it stays in the raw zone and a report
//! next to the quarantined rows says why.
//!
//! Columns (keys) the file has and the contract does not declare, and declared columns the file
//! lacks, are the run record's `drift`; undeclared ones are dropped, or kept per row as a JSON
//! object in the recipe's `extras_column`. A declared column the file lacks is read as null:
//! clean fills the recipe's `defaults`, and quarantines rows that lack a required value.

mod input;
mod json_array;
mod parquet_file;

use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::delivery::{Freshness, SourceVersion, observe_source};
use crate::error::{Error, Result};
use crate::keys::{Zone, input_id, stem};
use crate::mesh::{Product, ProductKind, ShortRows, SourceConfig, SourceFormat, UnknownColumns};
use crate::runs::{self, Drift, InputRef, RunRecord, RunStatus};
use crate::storage::{BATCH_ROWS, ParquetUse};
use crate::typing::json::{self, Json};
use crate::typing::{Cell, ColumnBuilder, ColumnSpec, parse_json, parse_json_ref, parse_text};

pub use input::RATIO_FLOOR;
pub(crate) use input::read_sample;

/// Longest NDJSON line, JSON array element or CSV record accepted; longer lines and records are
/// quarantined, a longer array element refuses the file (the array cannot be resumed after it).
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Raw text kept per quarantined row.
const MAX_QUARANTINE_RAW: usize = 64 << 10;
/// Undeclared column or key names recorded per file.
const MAX_UNKNOWN_NAMES: usize = 100;

/// Where a row is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// 1-based physical line of a text file.
    Line(u64),
    /// 0-based index of an element of a JSON array.
    Element(u64),
    /// 0-based row of a Parquet file.
    Row(u64),
}

/// A bare number is a line of a text file.
impl From<u64> for At {
    fn from(line: u64) -> At {
        At::Line(line)
    }
}

impl At {
    fn key(self) -> &'static str {
        match self {
            At::Line(_) => "line",
            At::Element(_) => "element",
            At::Row(_) => "row",
        }
    }

    fn number(self) -> u64 {
        match self {
            At::Line(n) | At::Element(n) | At::Row(n) => n,
        }
    }
}

/// What the parser sends to the writer.
#[derive(Debug)]
enum Msg {
    Batch(RecordBatch),
    Bad { at: At, reason: String, raw: Value },
}

/// What the parser found besides rows.
#[derive(Debug, Default)]
struct ParseStats {
    rows: u64,
    notes: Vec<String>,
    drift: Drift,
}

/// How one file is read: the product's recipe and staged schema, and where the file is.
#[derive(Debug)]
struct Plan {
    source: SourceConfig,
    schema: SchemaRef,
    specs: Vec<ColumnSpec>,
    /// Index in `specs` of the extras column, with `unknown_columns = "keep"`.
    extras: Option<usize>,
    key: String,
    location: String,
}

impl Plan {
    /// How `product`, whose recipe reads raw files as `source` says, reads the raw file `key`
    /// (`location` names it in messages).
    fn new(product: &Product, source: &SourceConfig, key: &str, location: String) -> Result<Plan> {
        let (schema, specs) = super::staged_schema_for(product)?;
        let extras = match (source.unknown_columns, &source.extras_column) {
            (UnknownColumns::Keep, Some(column)) => Some(
                specs
                    .iter()
                    .position(|s| &s.name == column)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "product `{}`: extras column `{column}` is not in its contract",
                            product.name
                        ))
                    })?,
            ),
            _ => None,
        };
        Ok(Plan {
            source: source.clone(),
            schema,
            specs,
            extras,
            key: key.to_owned(),
            location,
        })
    }

    /// Whether the contract column `i` is read from the file (not filled by ingest).
    fn is_read(&self, i: usize) -> bool {
        self.extras != Some(i)
    }
}

/// Drift found in one file, turned into notes and the run record's `drift` at the end.
#[derive(Debug, Default)]
struct DriftLog {
    unknown: BTreeSet<String>,
    more_unknown: bool,
    missing: Vec<String>,
}

impl DriftLog {
    fn unknown(&mut self, name: &str) {
        if self.unknown.contains(name) {
            return;
        }
        if self.unknown.len() < MAX_UNKNOWN_NAMES {
            self.unknown.insert(name.to_owned());
        } else {
            self.more_unknown = true;
        }
    }

    /// Notes and drift; `what` is "column" or "key".
    fn finish(self, what: &str, plan: &Plan, stats: &mut ParseStats) {
        let fate = match (&plan.source.extras_column, plan.source.unknown_columns) {
            (Some(c), UnknownColumns::Keep) => format!("kept in `{c}`"),
            _ => "dropped".to_owned(),
        };
        for m in &self.missing {
            stats.notes.push(if what == "key" {
                format!("key `{m}` is in no object of the file: read as null")
            } else {
                format!("{what} `{m}` is missing from the file: read as null")
            });
        }
        for u in &self.unknown {
            stats
                .notes
                .push(format!("{what} `{u}` is not in the contract: {fate}"));
        }
        if self.more_unknown {
            stats.notes.push(format!(
                "more than {MAX_UNKNOWN_NAMES} {what}s are not in the contract: only the first are listed"
            ));
        }
        stats.drift = Drift {
            unknown: self.unknown.into_iter().collect(),
            missing: self.missing,
        };
    }
}

/// Ingests one raw object.
pub async fn run(ctx: &Context, bucket: &str, key: &str, version: &str) -> Result<RunRecord> {
    run_at(ctx, bucket, key, version, None).await
}

/// Ingests one raw object whose event carried `sequencer` (S3's order of the versions of one
/// key): a version older than one already taken is stale, and skipped
/// ([`crate::delivery::observe_source`]).
pub async fn run_at(
    ctx: &Context,
    bucket: &str,
    key: &str,
    version: &str,
    sequencer: Option<&str>,
) -> Result<RunRecord> {
    let (domain, product, zk) = super::resolve(ctx, bucket, key, Zone::Raw)?;
    let ProductKind::Source { source, .. } = &product.kind else {
        return Err(Error::Config(format!(
            "product `{}` is an aggregate: it has no raw zone",
            product.name
        )));
    };
    let id = input_id(bucket, key, version);
    let name = format!("{}-{id}", stem(&zk.file));
    let staged_key = format!("{}{}/{name}.parquet", Zone::Staged.prefix(), product.name);
    let quarantine_key = format!(
        "{}{}/ingest/{name}.ndjson",
        Zone::Quarantine.prefix(),
        product.name
    );
    let input = InputRef {
        bucket: bucket.into(),
        key: key.into(),
        version: version.into(),
        sequencer: sequencer
            .and_then(crate::delivery::valid_sequencer)
            .map(str::to_ascii_uppercase),
    };
    let (mut record, started) = RunRecord::start(&id, "ingest", &domain.name, &product.name, input);
    if let Some(sequencer) = record.input.sequencer.clone() {
        let this = SourceVersion {
            key: key.to_owned(),
            version: version.to_owned(),
            sequencer,
        };
        if let Freshness::Stale(newer) =
            observe_source(&ctx.storage, bucket, &product.name, &this).await?
        {
            record.status = RunStatus::Skipped;
            record.notes.push(format!(
                "stale: version `{}` of this key (sequencer {}) was taken already",
                newer.version, newer.sequencer
            ));
            return crate::runs::save(&ctx.storage, bucket, record, started).await;
        }
    }
    let plan = Plan::new(product, source, key, format!("{bucket}/{key}"))?;
    let schema = Arc::clone(&plan.schema);

    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let parser = if source.format == SourceFormat::Parquet {
        let stream = ctx.storage.read_parquet(bucket, key).await?;
        tokio::spawn(parquet_file::ingest(stream, plan, tx))
    } else {
        let reader = ctx.storage.get_reader(bucket, key).await?;
        tokio::task::spawn_blocking(move || parse(reader, &plan, &tx))
    };

    let mut staged = None;
    let mut quarantine = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Batch(batch) => {
                if staged.is_none() {
                    staged = Some(ctx.storage.write_parquet_as(
                        bucket,
                        &staged_key,
                        Arc::clone(&schema),
                        ParquetUse::Intermediate,
                    )?);
                }
                if let Some(s) = staged.as_mut() {
                    s.write(&batch).await?;
                }
            }
            Msg::Bad { at, reason, raw } => {
                if quarantine.is_none() {
                    quarantine = Some(ctx.storage.write_text(bucket, &quarantine_key)?);
                }
                let mut line = Map::new();
                line.insert("source".into(), Value::String(key.to_owned()));
                line.insert(at.key().into(), json!(at.number()));
                line.insert("reason".into(), Value::String(reason));
                line.insert("raw".into(), raw);
                let mut text = serde_json::to_vec(&Value::Object(line))?;
                text.push(b'\n');
                if let Some(q) = quarantine.as_mut() {
                    q.write(&text).await?;
                }
                record.quarantined += 1;
            }
        }
    }
    let parsed = parser
        .await
        .map_err(|e| Error::Internal(format!("ingest parser task: {e}")));
    let stats = match parsed.and_then(|r| r) {
        Ok(stats) => stats,
        Err(e) => {
            // Nothing partial is left behind: neither output is completed.
            drop(staged);
            drop(quarantine);
            return Err(e);
        }
    };
    record.rows_in = stats.rows;
    record.notes = stats.notes;
    record.drift = stats.drift;
    if let Some(q) = quarantine {
        record.outputs.push(q.finish().await?.key);
    }
    if let Some(s) = staged {
        record.rows_out = s.rows();
        record.outputs.insert(0, s.finish().await?.key);
    } else {
        record.status = RunStatus::Skipped;
        record.notes.push(if record.quarantined > 0 {
            "every row was quarantined".into()
        } else {
            "the file has no data rows".into()
        });
    }
    runs::save(&ctx.storage, bucket, record, started).await
}

/// What [`read_text`] found in one file.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct TextRead {
    /// Rows read, typed or quarantined.
    pub rows: u64,
    /// Rows typed into batches of the staged schema.
    pub typed: u64,
    /// Rows quarantined.
    pub quarantined: u64,
    /// What the run record would note (drift, tombstones).
    pub notes: Vec<String>,
}

/// Ingest's reading of one raw text file held in memory (CSV, NDJSON, a JSON array or Debezium
/// events, compressed or not, as `product`'s recipe says; `key` is the file's raw-zone key, whose
/// suffix may name the compression), without storage: [`run`]'s plan and parser, with typed
/// batches and quarantined rows counted instead of written. A file refused whole is an error,
/// as in the stage. The entry point of the fuzz targets (`fuzz/`, `docs/fuzzing.md`); it
/// blocks, so it is not for async code.
#[doc(hidden)]
pub fn read_text(product: &Product, key: &str, bytes: Vec<u8>) -> Result<TextRead> {
    let ProductKind::Source { source, .. } = &product.kind else {
        return Err(Error::Config(format!(
            "product `{}` is an aggregate: it has no raw zone",
            product.name
        )));
    };
    let plan = Plan::new(product, source, key, key.to_owned())?;
    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let (parsed, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<(u64, u64)> {
            let (mut typed, mut quarantined) = (0u64, 0u64);
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Batch(batch) => typed += batch.num_rows() as u64,
                    Msg::Bad { raw, .. } => {
                        serde_json::to_vec(&raw)?;
                        quarantined += 1;
                    }
                }
            }
            Ok((typed, quarantined))
        });
        let parsed = parse(std::io::Cursor::new(bytes), &plan, &tx);
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (parsed, written)
    });
    let stats = parsed?;
    let (typed, quarantined) = written?;
    Ok(TextRead {
        rows: stats.rows,
        typed,
        quarantined,
        notes: stats.notes,
    })
}

/// An empty vector with the allocation of `cells`, for cells of another lifetime (the standard
/// library collects a vector into one of the same layout in place).
fn reuse<'x, 'y>(mut cells: Vec<Cell<'x>>) -> Vec<Cell<'y>> {
    cells.clear();
    cells.into_iter().map(|_| Cell::Null).collect()
}

/// Accumulates typed rows into batches.
struct Rows<'a> {
    plan: &'a Plan,
    builders: Vec<ColumnBuilder>,
    pending: usize,
    /// The row being typed: an empty vector between rows, kept for its allocation.
    cells: Vec<Cell<'static>>,
    tx: &'a mpsc::Sender<Msg>,
    stats: ParseStats,
    drift: DriftLog,
    /// Per contract column: whether the file has it (a CSV header names it, an object has the key).
    seen: Vec<bool>,
    /// Whether any JSON object was read (before one, no key can be said to be missing).
    objects: bool,
    /// Messages kept here instead of sent (a typing worker's chunk, forwarded in file order).
    collected: Option<Vec<Msg>>,
}

impl<'a> Rows<'a> {
    fn new(plan: &'a Plan, tx: &'a mpsc::Sender<Msg>) -> Result<Self> {
        let builders = plan
            .schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(Arc::clone(f)).map_err(Error::Config))
            .collect::<Result<_>>()?;
        Ok(Rows {
            plan,
            builders,
            pending: 0,
            cells: Vec::with_capacity(plan.specs.len()),
            tx,
            stats: ParseStats::default(),
            drift: DriftLog::default(),
            seen: vec![false; plan.specs.len()],
            objects: false,
            collected: None,
        })
    }

    /// Rows that keep their messages (see [`Rows::take_collected`]).
    fn collecting(plan: &'a Plan, tx: &'a mpsc::Sender<Msg>) -> Result<Self> {
        let mut rows = Rows::new(plan, tx)?;
        rows.collected = Some(Vec::new());
        Ok(rows)
    }

    /// The messages kept so far, the rows in progress flushed into a batch first.
    fn take_collected(&mut self) -> Result<Vec<Msg>> {
        self.flush()?;
        Ok(self
            .collected
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default())
    }

    fn send(&mut self, msg: Msg) -> Result<()> {
        if let Some(collected) = self.collected.as_mut() {
            collected.push(msg);
            return Ok(());
        }
        send_to(self.tx, msg)
    }

    /// Parses one row with `cell(i, spec)`; appends it whole or quarantines it whole. For
    /// readers that find no undeclared fields (the extras column, if kept, stays null).
    #[allow(
        dead_code,
        reason = "the sink of readers without extras, such as a CDC reader"
    )]
    fn row<'c>(
        &mut self,
        at: impl Into<At>,
        raw: impl FnOnce() -> Value,
        cell: impl FnMut(usize, &ColumnSpec) -> Result<Cell<'c>, String>,
    ) -> Result<()> {
        self.row_with_extras(at.into(), raw, None, cell)
    }

    /// [`Rows::row`], the extras column (when kept) taking `extras`.
    fn row_with_extras<'c>(
        &mut self,
        at: At,
        raw: impl FnOnce() -> Value,
        extras: Option<String>,
        mut cell: impl FnMut(usize, &ColumnSpec) -> Result<Cell<'c>, String>,
    ) -> Result<()> {
        self.stats.rows += 1;
        let mut cells: Vec<Cell<'c>> = reuse(std::mem::take(&mut self.cells));
        let mut extras = extras;
        for (i, spec) in self.plan.specs.iter().enumerate() {
            if !self.plan.is_read(i) {
                cells.push(extras.take().map_or(Cell::Null, |e| Cell::Str(e.into())));
                continue;
            }
            match cell(i, spec) {
                Ok(c) => cells.push(c),
                // Lenient typing: the value becomes null (its text may be kept in `<c>_raw`).
                Err(_) if spec.lenient => cells.push(Cell::Null),
                Err(reason) => {
                    self.cells = reuse(cells);
                    return self.bad(at, format!("column `{}`: {reason}", spec.name), raw());
                }
            }
        }
        for (b, c) in self.builders.iter_mut().zip(&cells) {
            b.append(c);
        }
        self.cells = reuse(cells);
        self.pending += 1;
        if self.pending == BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn bad(&mut self, at: impl Into<At>, reason: String, raw: Value) -> Result<()> {
        self.send(Msg::Bad {
            at: at.into(),
            reason,
            raw,
        })
    }

    /// Turns what was seen into notes and the run record's drift.
    fn finish_drift(&mut self) {
        let plan = self.plan;
        let what = if plan.source.format == SourceFormat::Csv {
            "column"
        } else {
            "key"
        };
        let mut drift = std::mem::take(&mut self.drift);
        if plan.source.format == SourceFormat::Csv || self.objects {
            drift.missing = plan
                .specs
                .iter()
                .enumerate()
                .filter(|(i, _)| plan.is_read(*i) && !self.seen[*i])
                .map(|(_, s)| s.name.clone())
                .collect();
        }
        drift.finish(what, plan, &mut self.stats);
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.plan.schema), columns)?;
        self.pending = 0;
        self.send(Msg::Batch(batch))
    }

    /// One JSON value (an NDJSON line or an array element) as a row: objects are typed by key,
    /// anything else is quarantined.
    fn json_object(&mut self, at: At, value: Value) -> Result<()> {
        let Value::Object(map) = &value else {
            self.stats.rows += 1;
            let what = match at {
                At::Element(_) => "element",
                _ => "line",
            };
            return self.bad(at, format!("{what} is not a JSON object"), value);
        };
        let fields = json::borrow_object(map);
        self.object(at, &fields, || value.clone())
    }

    /// A row from a JSON object's fields; `raw` gives the object when the row is quarantined.
    fn object(
        &mut self,
        at: At,
        fields: &[(std::borrow::Cow<'_, str>, Json<'_>)],
        raw: impl FnOnce() -> Value,
    ) -> Result<()> {
        let plan = self.plan;
        let mut extras = Map::new();
        for (k, v) in fields {
            let declared = plan
                .specs
                .iter()
                .enumerate()
                .any(|(i, s)| plan.is_read(i) && s.name == *k);
            if !declared {
                self.drift.unknown(k);
                if plan.extras.is_some() {
                    extras.insert(k.to_string(), v.to_value());
                }
            }
        }
        self.objects = true;
        for (seen, spec) in self.seen.iter_mut().zip(&plan.specs) {
            if !*seen && json::get(fields, spec.read_from()).is_some() {
                *seen = true;
            }
        }
        let extras = (!extras.is_empty()).then(|| Value::Object(extras).to_string());
        self.row_with_extras(at, raw, extras, |_, spec| {
            match json::get(fields, spec.read_from()) {
                Some(value) => parse_json_ref(spec, value),
                None => parse_json(spec, &Value::Null),
            }
        })
    }
}

/// Reads a text file (CSV, NDJSON, a JSON array) through decompression and decoding.
fn parse(reader: impl Read + 'static, plan: &Plan, tx: &mpsc::Sender<Msg>) -> Result<ParseStats> {
    parse_text_file(reader, plan, tx).map_err(|e| input::refused(e, &plan.location))
}

fn parse_text_file(
    reader: impl Read + 'static,
    plan: &Plan,
    tx: &mpsc::Sender<Msg>,
) -> Result<ParseStats> {
    let source = &plan.source;
    let reader = input::open(reader, source, &plan.key, &plan.location)?;
    let mut rows = Rows::new(plan, tx)?;
    match source.format {
        SourceFormat::Csv => parse_csv(reader, &mut rows)?,
        SourceFormat::Ndjson => parse_ndjson(reader, &mut rows)?,
        SourceFormat::Json => json_array::parse(reader, &mut rows)?,
        SourceFormat::Parquet => {
            return Err(Error::Internal(
                "Parquet is read by columns, not as text".into(),
            ));
        }
        SourceFormat::Debezium => {
            use crate::cdc::Item;
            let columns = source.cdc_columns();
            crate::cdc::read(reader, &columns, |item| match item {
                Item::Row { line, row, event } => rows.row(
                    line,
                    || event,
                    |_, spec| parse_json(spec, row.get(&spec.name).unwrap_or(&Value::Null)),
                ),
                Item::Bad { line, reason, raw } => {
                    rows.stats.rows += 1;
                    rows.bad(line, reason, raw)
                }
                Item::Note(note) => {
                    rows.stats.notes.push(note);
                    Ok(())
                }
            })?;
        }
    }
    rows.flush()?;
    rows.finish_drift();
    Ok(rows.stats)
}

fn lossy(field: &[u8]) -> String {
    let s = String::from_utf8_lossy(&field[..field.len().min(MAX_QUARANTINE_RAW)]);
    s.into_owned()
}

fn parse_csv(reader: impl Read, rows: &mut Rows<'_>) -> Result<()> {
    let plan = rows.plan;
    let source = &plan.source;
    let location = plan.location.as_str();
    let byte = |what: &str, c: char| {
        u8::try_from(c).map_err(|_| {
            Error::Config(format!(
                "CSV {what} `{}` is not a single byte",
                c.escape_debug()
            ))
        })
    };
    let delimiter = byte("delimiter", source.delimiter)?;
    let newlines = std::rc::Rc::new(std::cell::RefCell::new(Newlines::default()));
    let record_end = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let reader = LineCounter {
        inner: reader,
        offset: 0,
        newlines: std::rc::Rc::clone(&newlines),
        record_end: std::rc::Rc::clone(&record_end),
    };
    let mut builder = csv::ReaderBuilder::new();
    builder
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .double_quote(true);
    match source.quote {
        Some(q) => {
            builder.quote(byte("quote", q)?);
        }
        None => {
            builder.quoting(false);
        }
    }
    if let Some(e) = source.escape {
        builder.escape(Some(byte("escape", e)?));
    }
    let mut csv = builder.from_reader(reader);
    let mut record = csv::ByteRecord::new();
    // Which field of the file feeds each contract column, and the undeclared fields.
    let (positions, unknown, width) = if source.header {
        if !csv
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(e, location))?
        {
            return Err(Error::bad_input(location, "no header line"));
        }
        record_end.set(csv.position().byte());
        let header: Vec<String> = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect();
        let mut seen = BTreeSet::new();
        if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(Error::bad_input(
                location,
                format!("header names column `{dup}` twice"),
            ));
        }
        let positions: Vec<Option<usize>> = plan
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if !plan.is_read(i) {
                    return None;
                }
                let name = s.read_from();
                header
                    .iter()
                    .position(|h| h == name)
                    .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
            })
            .collect();
        if positions.iter().all(Option::is_none) {
            return Err(Error::bad_input(
                location,
                "the header names none of the contract's columns",
            ));
        }
        let unknown: Vec<(usize, String)> = header
            .iter()
            .enumerate()
            .filter(|(p, _)| !positions.contains(&Some(*p)))
            .map(|(p, h)| (p, h.clone()))
            .collect();
        for (_, h) in &unknown {
            rows.drift.unknown(h);
        }
        (positions, unknown, header.len())
    } else {
        // By position, in contract order (the extras column is ingest's, not the file's).
        let mut next = 0;
        let positions: Vec<Option<usize>> = (0..plan.specs.len())
            .map(|i| {
                plan.is_read(i).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        (positions, Vec::new(), next)
    };
    for (seen, p) in rows.seen.iter_mut().zip(&positions) {
        *seen = p.is_some();
    }
    let layout = CsvLayout {
        positions,
        unknown,
        width,
        keep: plan.extras.is_some(),
    };
    let line_of = |record: &csv::ByteRecord| {
        At::Line(
            newlines
                .borrow_mut()
                .line_at(record.position().map_or(0, |p| p.byte())),
        )
    };
    type_in_parallel(
        rows,
        |chunker| loop {
            match csv.read_byte_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    record_end.set(csv.position().byte());
                    chunker.push(line_of(&record), record.iter())?;
                }
                Err(e) => return Err(csv_error(e, location)),
            }
        },
        |rows, at, record| type_csv_record(rows, &layout, at, record),
    )
}

/// Items read by the reader thread and typed by a worker (CSV records, NDJSON lines), their
/// parts' bytes back to back in one buffer: reading allocates per chunk of [`BATCH_ROWS`]
/// items, not per item, and no worker frees memory the reader thread allocated item by item.
/// Readers fill chunks through a [`Chunker`].
#[derive(Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// End of each part in `bytes`.
    ends: Vec<usize>,
    /// Each item's place and the index in `ends` of its first part.
    items: Vec<(At, usize)>,
}

impl Chunk {
    fn push<'b>(&mut self, at: At, parts: impl IntoIterator<Item = &'b [u8]>) {
        self.items.push((at, self.ends.len()));
        for part in parts {
            self.bytes.extend_from_slice(part);
            self.ends.push(self.bytes.len());
        }
    }

    /// An empty chunk with room for as much as this one holds (the next chunk of a file is
    /// usually alike), so that filling it does not grow its buffers step by step.
    fn sized_like(&self) -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(self.bytes.len()),
            ends: Vec::with_capacity(self.ends.len()),
            items: Vec::with_capacity(self.items.len()),
        }
    }

    /// The items in order: where each is, and its parts.
    fn items(&self) -> impl Iterator<Item = (At, Parts<'_>)> {
        self.items.iter().enumerate().map(|(i, &(at, first))| {
            let last = self.items.get(i + 1).map_or(self.ends.len(), |&(_, f)| f);
            let start = if first == 0 { 0 } else { self.ends[first - 1] };
            let parts = Parts {
                bytes: &self.bytes,
                start,
                ends: &self.ends[first..last],
            };
            (at, parts)
        })
    }
}

/// One item of a [`Chunk`]: its parts (the fields of a CSV record).
#[derive(Debug, Clone, Copy)]
struct Parts<'a> {
    bytes: &'a [u8],
    /// Where the first part starts.
    start: usize,
    ends: &'a [usize],
}

impl<'a> Parts<'a> {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { self.start } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }

    fn iter(self) -> impl Iterator<Item = &'a [u8]> {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// All parts' bytes together.
    fn byte_len(&self) -> usize {
        self.ends.last().map_or(0, |end| end - self.start)
    }
}

/// Packs the items a reader pushes into chunks, and sends each chunk on when it is full (and
/// the last one when reading ends).
struct Chunker<'s> {
    chunk: Chunk,
    send: &'s mut dyn FnMut(Chunk) -> Result<()>,
}

impl Chunker<'_> {
    /// Runs `read` on a chunker that sends its chunks with `send`.
    fn run(
        send: &mut dyn FnMut(Chunk) -> Result<()>,
        read: impl FnOnce(&mut Chunker<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut chunker = Chunker {
            chunk: Chunk::default(),
            send,
        };
        read(&mut chunker)?;
        let last = std::mem::take(&mut chunker.chunk);
        if last.items.is_empty() {
            return Ok(());
        }
        (chunker.send)(last)
    }

    /// Adds an item: where it is, and its parts.
    fn push<'b>(&mut self, at: At, parts: impl IntoIterator<Item = &'b [u8]>) -> Result<()> {
        self.chunk.push(at, parts);
        if self.chunk.items.len() < BATCH_ROWS {
            return Ok(());
        }
        let next = self.chunk.sized_like();
        (self.send)(std::mem::replace(&mut self.chunk, next))
    }
}

/// Reads items with `read` (which pushes each to its [`Chunker`], in file order) and types them
/// with `type_one`, a chunk at a time: inline when the machine has one core, else by one worker
/// per core, whose batches, quarantined rows and drift are passed on in file order. Memory: a
/// few chunks in flight.
fn type_in_parallel(
    rows: &mut Rows<'_>,
    read: impl FnOnce(&mut Chunker<'_>) -> Result<()>,
    type_one: impl Fn(&mut Rows<'_>, At, Parts<'_>) -> Result<()> + Sync,
) -> Result<()> {
    let type_chunk_items = |rows: &mut Rows<'_>, chunk: Chunk| {
        chunk
            .items()
            .try_for_each(|(at, parts)| type_one(rows, at, parts))
    };
    let workers = typing_workers();
    if workers <= 1 {
        let mut send = |chunk: Chunk| type_chunk_items(rows, chunk);
        return Chunker::run(&mut send, read);
    }
    let (plan, tx) = (rows.plan, rows.tx);
    let (chunk_tx, chunk_rx) = std::sync::mpsc::sync_channel::<(u64, Chunk)>(workers);
    // A worker that finds the forwarder gone drops the receiver, so the reader stops sending.
    let chunk_rx = std::sync::Mutex::new(Some(chunk_rx));
    let type_items = &type_chunk_items;
    let (read_result, forwarded) = std::thread::scope(|scope| {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<(u64, Result<Typed>)>(workers * 2);
        for _ in 0..workers {
            let (chunk_rx, done_tx) = (&chunk_rx, done_tx.clone());
            scope.spawn(move || {
                loop {
                    let next = match chunk_rx.lock() {
                        Ok(rx) => rx.as_ref().map(|rx| rx.recv()),
                        Err(_) => None,
                    };
                    let Some(Ok((seq, chunk))) = next else {
                        break;
                    };
                    let typed = type_chunk(plan, tx, chunk, type_items);
                    if done_tx.send((seq, typed)).is_err() {
                        if let Ok(mut rx) = chunk_rx.lock() {
                            rx.take();
                        }
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let forwarder = scope.spawn(move || forward_in_order(done_rx, tx));
        let mut seq = 0u64;
        let read_result = {
            let mut send = |chunk: Chunk| -> Result<()> {
                chunk_tx
                    .send((seq, chunk))
                    .map_err(|_| Error::Internal("ingest typing stopped".into()))?;
                seq += 1;
                Ok(())
            };
            Chunker::run(&mut send, read)
        };
        drop(chunk_tx);
        let forwarded = forwarder
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("ingest forwarder panicked".into())));
        (read_result, forwarded)
    });
    // The forwarder's error first: when typing stops, reading stops because of it.
    let typed = forwarded?;
    read_result?;
    rows.absorb(typed);
    Ok(())
}

/// What typing workers found besides the rows they passed on.
#[derive(Debug, Default)]
struct Typed {
    messages: Vec<Msg>,
    rows: u64,
    drift: DriftLog,
    seen: Vec<bool>,
    objects: bool,
}

impl Typed {
    /// Adds what another chunk found (its messages aside).
    fn add(&mut self, other: Typed) {
        self.rows += other.rows;
        merge_findings((&mut self.drift, &mut self.seen, &mut self.objects), other);
    }
}

impl Rows<'_> {
    /// Takes in what typing workers found.
    fn absorb(&mut self, typed: Typed) {
        self.stats.rows += typed.rows;
        merge_findings((&mut self.drift, &mut self.seen, &mut self.objects), typed);
    }
}

/// Unknown names, columns seen and whether objects were read, from `from` into `into`.
fn merge_findings(into: (&mut DriftLog, &mut Vec<bool>, &mut bool), from: Typed) {
    let (drift, seen, objects) = into;
    for name in &from.drift.unknown {
        drift.unknown(name);
    }
    drift.more_unknown |= from.drift.more_unknown;
    if seen.len() < from.seen.len() {
        seen.resize(from.seen.len(), false);
    }
    for (a, b) in seen.iter_mut().zip(from.seen) {
        *a |= b;
    }
    *objects |= from.objects;
}

/// Types one chunk into its messages and findings.
fn type_chunk(
    plan: &Plan,
    tx: &mpsc::Sender<Msg>,
    chunk: Chunk,
    type_items: &(impl Fn(&mut Rows<'_>, Chunk) -> Result<()> + Sync),
) -> Result<Typed> {
    let mut rows = Rows::collecting(plan, tx)?;
    type_items(&mut rows, chunk)?;
    Ok(Typed {
        messages: rows.take_collected()?,
        rows: rows.stats.rows,
        drift: std::mem::take(&mut rows.drift),
        seen: std::mem::take(&mut rows.seen),
        objects: rows.objects,
    })
}

/// Passes typed chunks on in file order; returns what they found.
fn forward_in_order(
    done: std::sync::mpsc::Receiver<(u64, Result<Typed>)>,
    tx: &mpsc::Sender<Msg>,
) -> Result<Typed> {
    let mut next = 0u64;
    let mut waiting = std::collections::BTreeMap::new();
    let mut all = Typed::default();
    for (seq, typed) in done {
        waiting.insert(seq, typed);
        while let Some(typed) = waiting.remove(&next) {
            let mut typed = typed?;
            for msg in std::mem::take(&mut typed.messages) {
                send_to(tx, msg)?;
            }
            all.add(typed);
            next += 1;
        }
    }
    Ok(all)
}

/// Where a CSV file's fields go.
#[derive(Debug)]
struct CsvLayout {
    /// Field of the file for each contract column.
    positions: Vec<Option<usize>>,
    /// Undeclared fields (position, header name).
    unknown: Vec<(usize, String)>,
    /// Fields a record should have.
    width: usize,
    /// Whether undeclared fields are kept in the extras column.
    keep: bool,
}

/// Threads that type records: one per core, at most four.
fn typing_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
}

fn send_to(tx: &mpsc::Sender<Msg>, msg: Msg) -> Result<()> {
    tx.blocking_send(msg)
        .map_err(|_| Error::Internal("ingest writer stopped".into()))
}

/// Types one CSV record, or quarantines it with the reason.
fn type_csv_record(
    rows: &mut Rows<'_>,
    layout: &CsvLayout,
    line: At,
    record: Parts<'_>,
) -> Result<()> {
    let source = &rows.plan.source;
    let width = layout.width;
    let raw = || Value::Array(record.iter().map(|f| Value::String(lossy(f))).collect());
    let short_ok = source.header
        && source.short_rows == ShortRows::Null
        && record.len() < width
        && !record.is_empty();
    if record.len() != width && !short_ok {
        rows.stats.rows += 1;
        let reason = if source.header {
            format!(
                "malformed row: {} fields where the header has {width}",
                record.len()
            )
        } else {
            format!(
                "malformed row: {} fields where the contract has {width} columns",
                record.len()
            )
        };
        return rows.bad(line, reason, raw());
    }
    if record.byte_len() > MAX_RECORD_BYTES {
        rows.stats.rows += 1;
        return rows.bad(
            line,
            format!("record longer than {MAX_RECORD_BYTES} bytes"),
            Value::Null,
        );
    }
    let extras = if layout.keep {
        let map: Map<String, Value> = layout
            .unknown
            .iter()
            .filter_map(|(p, name)| {
                let field = record.get(*p).filter(|f| !f.is_empty())?;
                Some((name.clone(), Value::String(lossy(field))))
            })
            .collect();
        (!map.is_empty()).then(|| Value::Object(map).to_string())
    } else {
        None
    };
    let positions = &layout.positions;
    rows.row_with_extras(line, raw, extras, |i, spec| {
        match positions[i].and_then(|p| record.get(p)) {
            None => Ok(Cell::Null),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => parse_text(spec, text),
                Err(e) => Err(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
            },
        }
    })
}

/// Newline offsets read ahead of the CSV parser, so a record's physical line (what an editor
/// shows, counting line breaks inside quoted fields) is known exactly, in bounded memory.
#[derive(Debug, Default)]
struct Newlines {
    pending: std::collections::VecDeque<u64>,
    passed: u64,
}

impl Newlines {
    /// The 1-based line of a record starting at `offset`; offsets must not go backwards. A
    /// CRLF record starts (for the CSV reader) at the `\n` of the previous terminator, hence `<=`.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|&o| o <= offset) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// Bytes a CSV record may run over before the file is refused: the record is held whole while
/// it is read, so an unterminated quote must not hold the rest of the file in memory.
const MAX_RUNAWAY_BYTES: u64 = 2 * MAX_RECORD_BYTES as u64;
/// Line breaks a CSV record may span before the file is refused (their offsets are kept while
/// the record is read).
const MAX_RUNAWAY_LINES: usize = 1 << 20;

struct LineCounter<R> {
    inner: R,
    offset: u64,
    newlines: std::rc::Rc<std::cell::RefCell<Newlines>>,
    /// Where the last record read ended (where the one being read starts).
    record_end: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R> LineCounter<R> {
    /// Refuses the file when the record being read runs on too long (an unterminated quote).
    fn check_runaway(&self) -> std::io::Result<()> {
        let start = self.record_end.get();
        let nl = self.newlines.borrow();
        let spanned = nl.pending.len() - nl.pending.partition_point(|&o| o < start);
        if self.offset.saturating_sub(start) <= MAX_RUNAWAY_BYTES && spanned <= MAX_RUNAWAY_LINES {
            return Ok(());
        }
        let line = nl.passed + (nl.pending.len() - spanned) as u64 + 1;
        Err(input::refuse(format!(
            "line {line}: a CSV record runs on for more than {} MiB or {MAX_RUNAWAY_LINES} lines without ending (an unterminated quote?)",
            MAX_RUNAWAY_BYTES >> 20
        )))
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check_runaway()?;
        let n = self.inner.read(buf)?;
        let mut nl = self.newlines.borrow_mut();
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            nl.pending.push_back(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn csv_error(e: csv::Error, location: &str) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::Io(io),
        other => Error::bad_input(location, format!("CSV: {other:?}")),
    }
}

fn parse_ndjson(mut reader: impl BufRead, rows: &mut Rows<'_>) -> Result<()> {
    let head = reader.fill_buf()?;
    if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Error::bad_input(
            &rows.plan.location,
            "this looks like a JSON array, not one object per line: set format = \"json\"",
        ));
    }
    type_in_parallel(
        rows,
        // A line too long to keep is an item without parts (a kept line is never blank).
        |chunker| for_each_line(reader, |line, text| chunker.push(At::Line(line), text)),
        |rows, at, parts| ndjson_line(rows, at, parts.get(0)),
    )
}

/// Types one NDJSON line (`None`: a line too long to keep), or quarantines it with the reason.
fn ndjson_line(rows: &mut Rows<'_>, at: At, text: Option<&[u8]>) -> Result<()> {
    let Some(text) = text else {
        rows.stats.rows += 1;
        return rows.bad(
            at,
            format!("line longer than {MAX_RECORD_BYTES} bytes"),
            Value::Null,
        );
    };
    match json::Line::parse(text) {
        // Parsed again, as a value, only when the row is quarantined.
        Ok(json::Line::Object(fields)) => rows.object(at, &fields, || {
            serde_json::from_slice(text).unwrap_or_else(|_| Value::String(lossy(text)))
        }),
        Ok(json::Line::Other(value)) => rows.json_object(at, value.to_value()),
        Err(e) => {
            rows.stats.rows += 1;
            rows.bad(
                at,
                format!("malformed JSON: {e}"),
                Value::String(lossy(text)),
            )
        }
    }
}

/// Calls `f` with every non-blank line of a stream (1-based number, text trimmed of ASCII
/// whitespace), or `None` for a line longer than [`MAX_RECORD_BYTES`], which is skipped without
/// being held in memory.
pub(crate) fn for_each_line(
    mut reader: impl BufRead,
    mut f: impl FnMut(u64, Option<&[u8]>) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .by_ref()
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if buf.len() > MAX_RECORD_BYTES && !buf.ends_with(b"\n") {
            skip_line(&mut reader)?;
            f(line, None)?;
            continue;
        }
        let text = buf.trim_ascii();
        if !text.is_empty() {
            f(line, Some(text))?;
        }
    }
}

/// Skips to the end of the current line without holding it.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::{At, BATCH_ROWS, Chunk, Chunker};

    /// What a chunk holds: each item's place and parts.
    fn contents(chunk: &Chunk) -> Vec<(At, Vec<Vec<u8>>)> {
        chunk
            .items()
            .map(|(at, parts)| (at, parts.iter().map(<[u8]>::to_vec).collect()))
            .collect()
    }

    #[test]
    fn chunks_keep_every_item_and_part_in_order_and_fill_to_batch_rows() {
        let mut sent = Vec::new();
        let mut send = |chunk: Chunk| {
            sent.push(contents(&chunk));
            Ok(())
        };
        let items = BATCH_ROWS + 3;
        super::Chunker::run(&mut send, |chunker: &mut Chunker<'_>| {
            for i in 0..items {
                let text = i.to_string();
                // Empty parts, and an item without parts, survive as they are.
                let parts: Vec<&[u8]> = match i % 3 {
                    0 => vec![text.as_bytes(), b"", b"x,y"],
                    1 => vec![],
                    _ => vec![b"", text.as_bytes()],
                };
                chunker.push(At::Line(i as u64 + 1), parts)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            sent.iter().map(Vec::len).collect::<Vec<_>>(),
            [BATCH_ROWS, 3]
        );
        let all: Vec<_> = sent.into_iter().flatten().collect();
        for (i, (at, parts)) in all.iter().enumerate() {
            let text = i.to_string().into_bytes();
            let expected: Vec<Vec<u8>> = match i % 3 {
                0 => vec![text, vec![], b"x,y".to_vec()],
                1 => vec![],
                _ => vec![vec![], text],
            };
            assert_eq!(
                (*at, parts),
                (At::Line(i as u64 + 1), &expected),
                "item {i}"
            );
        }
        assert_eq!(all.len(), items);
    }

    #[test]
    fn a_reader_without_items_sends_no_chunk_and_a_failed_send_stops_it() {
        let mut sent = 0;
        let mut send = |_: Chunk| {
            sent += 1;
            Ok(())
        };
        super::Chunker::run(&mut send, |_| Ok(())).unwrap();
        assert_eq!(sent, 0);
        let mut send = |_: Chunk| Err(crate::error::Error::Internal("stopped".into()));
        let mut pushed = 0;
        let result = super::Chunker::run(&mut send, |chunker| {
            for i in 0..3 * BATCH_ROWS {
                chunker.push(At::Line(i as u64), [&b"v"[..]])?;
                pushed += 1;
            }
            Ok(())
        });
        assert!(result.is_err());
        assert_eq!(
            pushed,
            BATCH_ROWS - 1,
            "reading stops at the first chunk not sent"
        );
    }

    #[test]
    fn read_text_types_a_file_as_the_stage_does_and_refuses_what_the_stage_refuses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mesh = crate::mesh::Mesh::load(&root.join("samplecli.toml")).unwrap();
        let orders = mesh.product("sales", "orders").unwrap();
        let file = std::fs::read(root.join("domains/sales/orders/raw/orders_2024-05-01.csv"));
        let read = super::read_text(orders, "raw/orders/o.csv", file.unwrap()).unwrap();
        assert!(read.typed > 0, "{read:?}");
        assert_eq!(read.typed + read.quarantined, read.rows, "{read:?}");
        let bad = super::read_text(orders, "raw/orders/o.csv", b"\0\0\0".to_vec());
        assert!(bad.is_err(), "a binary file is refused whole: {bad:?}");
        let changes = mesh.product("customers", "customer_changes").unwrap();
        let file = root.join("domains/customers/customer_changes/raw/changes_2024-05-01.ndjson");
        let read = super::read_text(changes, "raw/customer_changes/c.ndjson.gz", {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &std::fs::read(file).unwrap()).unwrap();
            gz.finish().unwrap()
        });
        assert!(read.unwrap().typed > 0, "a gzipped Debezium file is typed");
    }

    #[test]
    fn skip_line_drops_the_rest_of_a_line_across_buffers() {
        let mut reader = BufReader::with_capacity(2, &b"abcdefg\nnext\n"[..]);
        super::skip_line(&mut reader).expect("skip");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("read");
        assert_eq!(rest, "next\n");
        let mut reader = BufReader::with_capacity(2, &b"no newline"[..]);
        super::skip_line(&mut reader).expect("skip");
        assert_eq!(reader.read_to_string(&mut rest).expect("read"), 0);
    }
}
