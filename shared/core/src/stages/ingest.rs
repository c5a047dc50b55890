//! ingest: a raw file (CSV or NDJSON) → typed Parquet in the staged zone.
//!
//! The file is parsed as it streams in, on a blocking thread, and typed per the product's
//! contract. A row that cannot be typed goes to `quarantine/<product>/ingest/` as one JSON line
//! with its line number, the reason and the raw fields; the rest goes on. A file that cannot be
//! read at all (empty, binary, no header) is refused whole: it stays in the raw zone and a report
//! next to the quarantined rows says why.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::keys::{Zone, input_id, stem};
use crate::mesh::{ProductKind, SourceConfig, SourceFormat};
use crate::runs::{self, InputRef, RunRecord, RunStatus};
use crate::storage::BATCH_ROWS;
use crate::typing::{Cell, ColumnBuilder, ColumnSpec, parse_json, parse_text};

/// Longest NDJSON line or CSV record accepted; longer ones are quarantined.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Raw text kept per quarantined row.
const MAX_QUARANTINE_RAW: usize = 64 << 10;

/// What the parser sends to the writer.
#[derive(Debug)]
enum Msg {
    Batch(RecordBatch),
    Bad {
        line: u64,
        reason: String,
        raw: Value,
    },
}

/// What the parser found besides rows.
#[derive(Debug, Default)]
struct ParseStats {
    rows: u64,
    notes: Vec<String>,
}

/// Ingests one raw object.
pub async fn run(ctx: &Context, bucket: &str, key: &str, version: &str) -> Result<RunRecord> {
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
    };
    let (mut record, started) = RunRecord::start(&id, "ingest", &domain.name, &product.name, input);
    let (schema, specs) = super::staged_schema(product.schema())?;

    let stream = ctx.storage.get_stream(bucket, key).await?;
    let reader = SyncIoBridge::new(StreamReader::new(stream.map_err(std::io::Error::other)));
    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let location = format!("{bucket}/{key}");
    let (source, schema_for_parser) = (source.clone(), Arc::clone(&schema));
    let parser = tokio::task::spawn_blocking(move || {
        parse(reader, &source, schema_for_parser, &specs, &location, &tx)
    });

    let mut staged = None;
    let mut quarantine = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Batch(batch) => {
                if staged.is_none() {
                    staged = Some(ctx.storage.write_parquet(
                        bucket,
                        &staged_key,
                        Arc::clone(&schema),
                    )?);
                }
                if let Some(s) = staged.as_mut() {
                    s.write(&batch).await?;
                }
            }
            Msg::Bad { line, reason, raw } => {
                if quarantine.is_none() {
                    quarantine = Some(ctx.storage.write_text(bucket, &quarantine_key)?);
                }
                let mut text = serde_json::to_vec(
                    &json!({"source": key, "line": line, "reason": reason, "raw": raw}),
                )?;
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
        .map_err(|e| Error::Internal(format!("ingest parser thread: {e}")));
    let stats = match parsed.and_then(|r| r) {
        Ok(stats) => stats,
        Err(e) => {
            // Nothing partial is left behind: the staged file is not completed.
            drop(staged);
            return Err(e);
        }
    };
    record.rows_in = stats.rows;
    record.notes = stats.notes;
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

/// Accumulates typed rows into batches.
struct Rows<'a> {
    schema: SchemaRef,
    specs: &'a [ColumnSpec],
    builders: Vec<ColumnBuilder>,
    pending: usize,
    cells: Vec<Cell>,
    tx: &'a mpsc::Sender<Msg>,
    stats: ParseStats,
}

impl<'a> Rows<'a> {
    fn new(schema: SchemaRef, specs: &'a [ColumnSpec], tx: &'a mpsc::Sender<Msg>) -> Result<Self> {
        let builders = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(Arc::clone(f)).map_err(Error::Config))
            .collect::<Result<_>>()?;
        Ok(Rows {
            schema,
            specs,
            builders,
            pending: 0,
            cells: Vec::with_capacity(specs.len()),
            tx,
            stats: ParseStats::default(),
        })
    }

    fn send(&self, msg: Msg) -> Result<()> {
        self.tx
            .blocking_send(msg)
            .map_err(|_| Error::Internal("ingest writer stopped".into()))
    }

    /// Parses one row with `cell(i, spec)`; appends it whole or quarantines it whole.
    fn row(
        &mut self,
        line: u64,
        raw: impl FnOnce() -> Value,
        mut cell: impl FnMut(usize, &ColumnSpec) -> Result<Cell, String>,
    ) -> Result<()> {
        self.stats.rows += 1;
        self.cells.clear();
        for (i, spec) in self.specs.iter().enumerate() {
            match cell(i, spec) {
                Ok(c) => self.cells.push(c),
                Err(reason) => {
                    return self.bad(line, format!("column `{}`: {reason}", spec.name), raw());
                }
            }
        }
        for (b, c) in self.builders.iter_mut().zip(&self.cells) {
            b.append(c);
        }
        self.pending += 1;
        if self.pending == BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn bad(&mut self, line: u64, reason: String, raw: Value) -> Result<()> {
        self.send(Msg::Bad { line, reason, raw })
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
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.pending = 0;
        self.send(Msg::Batch(batch))
    }
}

fn parse(
    reader: impl Read,
    source: &SourceConfig,
    schema: SchemaRef,
    specs: &[ColumnSpec],
    location: &str,
    tx: &mpsc::Sender<Msg>,
) -> Result<ParseStats> {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let head = reader.fill_buf()?;
    if head.is_empty() {
        return Err(Error::bad_input(location, "empty file"));
    }
    if head.contains(&0) {
        return Err(Error::bad_input(
            location,
            "binary data (NUL bytes): not a text file",
        ));
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let mut rows = Rows::new(schema, specs, tx)?;
    match source.format {
        SourceFormat::Csv => parse_csv(reader, source, &mut rows, location)?,
        SourceFormat::Ndjson => parse_ndjson(reader, &mut rows)?,
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
    Ok(rows.stats)
}

fn lossy(field: &[u8]) -> String {
    let s = String::from_utf8_lossy(&field[..field.len().min(MAX_QUARANTINE_RAW)]);
    s.into_owned()
}

fn parse_csv(
    reader: impl Read,
    source: &SourceConfig,
    rows: &mut Rows<'_>,
    location: &str,
) -> Result<()> {
    let delimiter = u8::try_from(source.delimiter).map_err(|_| {
        Error::Config(format!(
            "CSV delimiter `{}` is not a single byte",
            source.delimiter
        ))
    })?;
    let newlines = std::rc::Rc::new(std::cell::RefCell::new(Newlines::default()));
    let reader = LineCounter {
        inner: reader,
        offset: 0,
        newlines: std::rc::Rc::clone(&newlines),
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    // Which field of the file feeds each contract column.
    let (positions, width) = if source.header {
        if !csv
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(e, location))?
        {
            return Err(Error::bad_input(location, "no header line"));
        }
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
        let positions: Vec<Option<usize>> = rows
            .specs
            .iter()
            .map(|s| {
                header
                    .iter()
                    .position(|h| *h == s.name)
                    .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(&s.name)))
            })
            .collect();
        if positions.iter().all(Option::is_none) {
            return Err(Error::bad_input(
                location,
                "the header names none of the contract's columns",
            ));
        }
        for (spec, pos) in rows.specs.iter().zip(&positions) {
            if pos.is_none() {
                rows.stats.notes.push(format!(
                    "column `{}` is missing from the file: read as null",
                    spec.name
                ));
            }
        }
        for h in &header {
            if !rows.specs.iter().any(|s| s.name.eq_ignore_ascii_case(h)) {
                rows.stats
                    .notes
                    .push(format!("column `{h}` is not in the contract: dropped"));
            }
        }
        (positions, header.len())
    } else {
        ((0..rows.specs.len()).map(Some).collect(), rows.specs.len())
    };
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(e, location)),
        }
        let line = newlines
            .borrow_mut()
            .line_at(record.position().map_or(0, |p| p.byte()));
        let raw = || Value::Array(record.iter().map(|f| Value::String(lossy(f))).collect());
        if record.len() != width {
            rows.stats.rows += 1;
            let reason = format!(
                "malformed row: {} fields where the header has {width}",
                record.len()
            );
            rows.bad(line, reason, raw())?;
            continue;
        }
        if record.as_slice().len() > MAX_RECORD_BYTES {
            rows.stats.rows += 1;
            rows.bad(
                line,
                format!("record longer than {MAX_RECORD_BYTES} bytes"),
                Value::Null,
            )?;
            continue;
        }
        let rec = &record;
        rows.row(line, raw, |i, spec| {
            match positions[i].and_then(|p| rec.get(p)) {
                None => Ok(Cell::Null),
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => parse_text(spec, text),
                    Err(e) => Err(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
                },
            }
        })?;
    }
    Ok(())
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

struct LineCounter<R> {
    inner: R,
    offset: u64,
    newlines: std::rc::Rc<std::cell::RefCell<Newlines>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut nl = self.newlines.borrow_mut();
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
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
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut unknown = BTreeSet::new();
    loop {
        buf.clear();
        let n = reader
            .by_ref()
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.len() > MAX_RECORD_BYTES && !buf.ends_with(b"\n") {
            // Skip the rest of the over-long line.
            let mut sink = Vec::new();
            reader.read_until(b'\n', &mut sink)?;
            rows.stats.rows += 1;
            rows.bad(
                line,
                format!("line longer than {MAX_RECORD_BYTES} bytes"),
                Value::Null,
            )?;
            continue;
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                rows.stats.rows += 1;
                rows.bad(
                    line,
                    format!("malformed JSON: {e}"),
                    Value::String(lossy(text)),
                )?;
                continue;
            }
        };
        let Value::Object(map) = &value else {
            rows.stats.rows += 1;
            rows.bad(line, "line is not a JSON object".into(), value.clone())?;
            continue;
        };
        if unknown.len() < 20 {
            for k in map.keys() {
                if !rows.specs.iter().any(|s| &s.name == k) {
                    unknown.insert(k.clone());
                }
            }
        }
        rows.row(
            line,
            || value.clone(),
            |_, spec| parse_json(spec, map.get(&spec.name).unwrap_or(&Value::Null)),
        )?;
    }
    for k in unknown {
        rows.stats
            .notes
            .push(format!("key `{k}` is not in the contract: dropped"));
    }
    Ok(())
}
