//! Publishing a product version atomically, and reading what is published.
//!
//! Data files go to `products/<product>/<col>=<value>/part-<version>-<n>.parquet` (Hive layout);
//! then one commit record `products/<product>/_commits/<seq>.json` lists them. The commit is
//! written with put-if-absent on the next sequence number, so two writers can never take the same
//! slot (the loser retries on the next one), and a version is committed at most once. Readers go
//! through the commit log, so files of a version that never committed are never read.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Date32Type, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::Zone;
use crate::storage::{ParquetSink, Storage};

/// How a version relates to the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitMode {
    /// Adds rows to the product (source products: one version per input file).
    Append,
    /// Replaces the product (aggregates: recomputed whole).
    Overwrite,
}

/// A commit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Product version (derived from the input).
    pub version: String,
    /// Append or overwrite.
    pub mode: CommitMode,
    /// Keys of the data files of this version.
    pub files: Vec<String>,
    /// Partition paths written (`col=value/...`).
    pub partitions: Vec<String>,
    /// Rows in this version.
    pub rows: u64,
    /// Contract id.
    pub contract_id: String,
    /// Contract version.
    pub contract_version: String,
    /// Checks run on this version (all passed, or it would not be committed).
    #[serde(default)]
    pub checks: crate::events::CheckCounts,
    /// The input the version came from.
    pub source: String,
    /// The raw object the version came from (source products): a newer version of that key
    /// supersedes this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    /// The sequencer of that raw object's version, which orders the versions of its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// When.
    pub committed_at: DateTime<Utc>,
}

/// Key prefix of a product's data.
pub fn product_prefix(product: &str) -> String {
    format!("{}{product}/", Zone::Products.prefix())
}

/// Key prefix of a product's commit log.
pub fn commits_prefix(product: &str) -> String {
    format!("{}_commits/", product_prefix(product))
}

/// The commit log of a product, oldest first, with each commit's key.
pub async fn commits(
    storage: &Storage,
    bucket: &str,
    product: &str,
) -> Result<Vec<(String, Commit)>> {
    let mut out = Vec::new();
    for meta in storage.list(bucket, &commits_prefix(product)).await? {
        let key = meta.location.to_string();
        if !key.ends_with(".json") {
            continue;
        }
        let commit: Commit = serde_json::from_slice(&storage.get(bucket, &key).await?)?;
        out.push((key, commit));
    }
    Ok(out)
}

/// Keys of the files that make up the product now: those of the last overwrite and every append
/// after it, but of the appends of one raw key only the newest version's (by sequencer, else by
/// commit order).
pub fn live_files(log: &[(String, Commit)]) -> Vec<String> {
    let live = since_last_overwrite(log);
    let superseded = superseded(live);
    live.iter()
        .zip(superseded)
        .filter(|(_, gone)| !gone)
        .flat_map(|((_, c), _)| c.files.iter().cloned())
        .collect()
}

/// The commits that make up the product now, superseded ones included: the last overwrite and
/// every append after it.
fn since_last_overwrite(log: &[(String, Commit)]) -> &[(String, Commit)] {
    let start = log
        .iter()
        .rposition(|(_, c)| c.mode == CommitMode::Overwrite)
        .unwrap_or(0);
    &log[start..]
}

/// For each commit of a log, whether a newer version of its raw key supersedes it.
pub fn superseded(log: &[(String, Commit)]) -> Vec<bool> {
    let mut newest: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (_, c)) in log.iter().enumerate() {
        let Some(key) = c.source_key.as_deref() else {
            continue;
        };
        match newest.get(key) {
            Some(&j) if !newer(c, &log[j].1) => {}
            _ => {
                newest.insert(key, i);
            }
        }
    }
    log.iter()
        .enumerate()
        .map(|(i, (_, c))| {
            c.source_key
                .as_deref()
                .is_some_and(|k| newest.get(k) != Some(&i))
        })
        .collect()
}

/// Whether `a`, committed after `b`, is the newer version of their raw key: by sequencer when
/// both have one, else by commit order.
fn newer(a: &Commit, b: &Commit) -> bool {
    match (a.sequencer.as_deref(), b.sequencer.as_deref()) {
        (Some(x), Some(y)) => crate::delivery::compare_sequencers(x, y) != std::cmp::Ordering::Less,
        _ => true,
    }
}

/// The commit of the log that supersedes a version of `source_key` at `sequencer`, if any: a
/// stale version is not published.
pub fn superseded_by<'a>(
    log: &'a [(String, Commit)],
    source_key: &str,
    sequencer: Option<&str>,
) -> Option<&'a Commit> {
    let seq = sequencer?;
    log.iter().map(|(_, c)| c).find(|c| {
        c.source_key.as_deref() == Some(source_key)
            && c.sequencer.as_deref().is_some_and(|s| {
                crate::delivery::compare_sequencers(s, seq) == std::cmp::Ordering::Greater
            })
    })
}

/// Deletes the data files of the versions in `log` (the product's commit log) that a newer
/// version of their raw key superseded (readers of partition folders, Athena, would otherwise
/// see both). Their commit records stay, as history. Returns how many files were deleted (or
/// already gone).
pub async fn remove_superseded(
    storage: &Storage,
    bucket: &str,
    log: &[(String, Commit)],
) -> Result<usize> {
    let live = since_last_overwrite(log);
    let mut removed = 0;
    for ((_, c), gone) in live.iter().zip(superseded(live)) {
        if gone {
            for file in &c.files {
                storage.delete(bucket, file).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Writes the commit record in the next free slot. Returns `Ok(None)` if this version was
/// already committed (a repeated event), else the commit's key.
pub async fn commit(
    storage: &Storage,
    bucket: &str,
    product: &str,
    commit: &Commit,
) -> Result<Option<String>> {
    const ATTEMPTS: usize = 16;
    let body = Bytes::from(serde_json::to_vec_pretty(commit)?);
    for _ in 0..ATTEMPTS {
        let log = commits(storage, bucket, product).await?;
        if log.iter().any(|(_, c)| c.version == commit.version) {
            return Ok(None);
        }
        let key = format!("{}{:020}.json", commits_prefix(product), log.len() + 1);
        if storage
            .put_if_absent(bucket, &key, body.clone())
            .await?
            .is_some()
        {
            return Ok(Some(key));
        }
        // Another writer took this slot: read the log again and try the next one.
    }
    Err(Error::Conflict(format!(
        "could not commit `{product}` version `{}` after {ATTEMPTS} attempts",
        commit.version
    )))
}

/// Rows a [`PartitionedWriter`] holds in memory, over all partitions, before it writes them out
/// as one row group per partition.
///
/// A Parquet row group in progress keeps an encoder and a compression context per column; one
/// per partition open at once would cost megabytes per partition. So rows wait as Arrow data,
/// within this budget, and each partition's file only encodes while its rows are written out.
pub const PARTITION_WRITER_BUDGET: usize = 32 << 20;

/// Rows of one partition written out as soon as they are buffered: a full row group.
const PARTITION_ROW_GROUP: usize = 128 * 1024;

/// Splits batches by partition values and writes one Parquet file per partition.
///
/// Files are written under the version's pending folder, `products/<product>/_pending/<version>/`,
/// which no reader and no catalog partition looks at (Hive readers skip `_` folders); the
/// version's stage moves them to their partitions ([`Pending::publish`]) once it decides to
/// publish, or deletes them ([`Pending::discard`]).
#[derive(Debug)]
pub struct PartitionedWriter {
    storage: Storage,
    bucket: String,
    prefix: String,
    version: String,
    schema: SchemaRef,
    columns: Vec<usize>,
    /// Folder name of each partition column (default its name).
    folders: Vec<String>,
    sinks: BTreeMap<String, ParquetSink>,
    /// Rows waiting per partition path, and their rows.
    buffered: BTreeMap<String, (Vec<RecordBatch>, usize)>,
    /// Bytes of Arrow data waiting.
    buffered_bytes: usize,
    /// This writer's folder under the version's pending folder: deliveries of one version that
    /// run at once never write (or move, or delete) each other's files.
    delivery: String,
    /// See [`PARTITION_WRITER_BUDGET`].
    budget: usize,
}

impl PartitionedWriter {
    /// A writer for `product` version `version`, partitioned by the named columns (may be none).
    pub fn new(
        storage: &Storage,
        bucket: &str,
        product: &str,
        version: &str,
        schema: SchemaRef,
        partition_columns: &[String],
    ) -> Result<Self> {
        let columns = partition_columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| {
                    Error::Config(format!("partition column `{c}` is not in the data"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PartitionedWriter {
            storage: storage.clone(),
            bucket: bucket.into(),
            prefix: product_prefix(product),
            version: version.into(),
            folders: partition_columns.to_vec(),
            schema,
            columns,
            sinks: BTreeMap::new(),
            buffered: BTreeMap::new(),
            buffered_bytes: 0,
            delivery: crate::delivery::next_sequencer(),
            budget: PARTITION_WRITER_BUDGET,
        })
    }

    /// Sets the bytes of rows held before they are written out (see [`PARTITION_WRITER_BUDGET`]).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self
    }

    /// Names the partition folders: `folders[i]` for the `i`-th partition column.
    pub fn with_folders(mut self, folders: Vec<String>) -> Self {
        if folders.len() == self.columns.len() {
            self.folders = folders;
        }
        self
    }

    /// The rows of a batch per partition path (`col=value/...`), in path order.
    fn groups(&self, batch: &RecordBatch) -> Result<BTreeMap<String, Vec<u32>>> {
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let values: Vec<&ArrayRef> = self.columns.iter().map(|&i| batch.column(i)).collect();
        // One date or timestamp column (the usual case): group by day number, then name each
        // group once.
        if let ([array], [folder]) = (values.as_slice(), self.folders.as_slice())
            && let Some(days) = day_numbers(array.as_ref())
        {
            let mut by_day: BTreeMap<Option<i64>, Vec<u32>> = BTreeMap::new();
            for (row, day) in days.enumerate() {
                by_day.entry(day).or_default().push(row as u32);
            }
            for rows in by_day.into_values() {
                let value = partition_value(array.as_ref(), rows[0] as usize)?;
                groups.insert(format!("{folder}={}/", escape_partition(&value)), rows);
            }
            return Ok(groups);
        }
        for row in 0..batch.num_rows() {
            let mut path = String::new();
            for (folder, array) in self.folders.iter().zip(&values) {
                path.push_str(folder);
                path.push('=');
                path.push_str(&escape_partition(&partition_value(array.as_ref(), row)?));
                path.push('/');
            }
            groups.entry(path).or_default().push(row as u32);
        }
        Ok(groups)
    }

    /// Routes each row of a batch to its partition; rows are written out a row group per
    /// partition when a partition has a full one, or all at once past the memory budget.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut full = Vec::new();
        for (path, rows) in self.groups(batch)? {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(rows))?
            };
            self.buffered_bytes += part.get_array_memory_size();
            let (parts, rows) = self.buffered.entry(path.clone()).or_default();
            *rows += part.num_rows();
            parts.push(part);
            if *rows >= PARTITION_ROW_GROUP {
                full.push(path);
            }
        }
        for path in full {
            self.write_out(&path).await?;
        }
        if self.buffered_bytes > self.budget {
            let paths: Vec<String> = self.buffered.keys().cloned().collect();
            for path in paths {
                self.write_out(&path).await?;
            }
        }
        Ok(())
    }

    /// Writes a partition's waiting rows to its file as one row group.
    async fn write_out(&mut self, path: &str) -> Result<()> {
        let Some((parts, _)) = self.buffered.remove(path) else {
            return Ok(());
        };
        if !self.sinks.contains_key(path) {
            let key = format!("{}{path}part-{}-0.parquet", self.pending(), self.version);
            let sink = self
                .storage
                .write_parquet(&self.bucket, &key, Arc::clone(&self.schema))?;
            self.sinks.insert(path.to_owned(), sink);
        }
        if let Some(sink) = self.sinks.get_mut(path) {
            for part in &parts {
                self.buffered_bytes = self
                    .buffered_bytes
                    .saturating_sub(part.get_array_memory_size());
                sink.write(part).await?;
            }
            sink.flush().await?;
        }
        Ok(())
    }

    /// Writes under the pending folder of delivery `delivery` (a [`next_sequencer`] taken when
    /// the delivery started), which the delivery removes if it fails.
    ///
    /// [`next_sequencer`]: crate::delivery::next_sequencer
    pub fn with_delivery(mut self, delivery: &str) -> Self {
        delivery.clone_into(&mut self.delivery);
        self
    }

    /// This writer's pending folder.
    fn pending(&self) -> String {
        format!(
            "{}{}/",
            pending_prefix(&self.prefix, &self.version),
            self.delivery
        )
    }

    /// Completes every file in the pending folder.
    pub async fn finish(mut self) -> Result<Pending> {
        let paths: Vec<String> = self.buffered.keys().cloned().collect();
        for path in paths {
            self.write_out(&path).await?;
        }
        let mut partitions = Vec::new();
        let mut files = Vec::new();
        let pending = self.pending();
        for (path, sink) in self.sinks {
            let w = sink.finish().await?;
            let published = format!("{}{}", self.prefix, &w.key[pending.len()..]);
            partitions.push(path);
            files.push((w.key, published));
        }
        Ok(Pending {
            storage: self.storage,
            bucket: self.bucket,
            prefix: self.prefix,
            partitions,
            files,
        })
    }
}

/// The pending folder of a product version (one folder per delivery inside).
fn pending_prefix(product_prefix: &str, version: &str) -> String {
    format!("{product_prefix}_pending/{version}/")
}

/// Deletes what deliveries of a version left in its pending folder: one delivery's folder
/// (`Some(delivery)`: a delivery that failed cleans up after itself), or the folders of every
/// delivery that started before `ATTEMPT_TIMEOUT` ago (`None`: deliveries that cannot still be
/// running, and were killed before they could clean up). Returns how many files were deleted.
pub async fn clear_pending(
    storage: &Storage,
    bucket: &str,
    product: &str,
    version: &str,
    delivery: Option<&str>,
) -> Result<usize> {
    let prefix = pending_prefix(&product_prefix(product), version);
    let prefix = match delivery {
        Some(d) => format!("{prefix}{d}/"),
        None => prefix,
    };
    let timed_out = Utc::now() - crate::delivery::ATTEMPT_TIMEOUT;
    let mut deleted = 0;
    for meta in storage.list(bucket, &prefix).await? {
        let key = meta.location.as_ref();
        let started = key[prefix.len()..]
            .split('/')
            .next()
            .and_then(|d| u64::from_str_radix(d, 16).ok())
            .and_then(|nanos| i64::try_from(nanos).ok())
            .map(DateTime::from_timestamp_nanos);
        if delivery.is_some() || started.is_none_or(|t| t < timed_out) {
            storage.delete(bucket, key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The complete files of a version, not yet in their partitions.
#[derive(Debug)]
pub struct Pending {
    storage: Storage,
    bucket: String,
    /// The product's prefix (`products/<product>/`).
    prefix: String,
    partitions: Vec<String>,
    /// (pending key, published key)
    files: Vec<(String, String)>,
}

impl Pending {
    /// Keys of the pending files (for checks that read what would be published).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(k, _)| k.as_str())
    }

    /// Moves the files into their partitions; returns the partition paths and published keys.
    pub async fn publish(self) -> Result<(Vec<String>, Vec<String>)> {
        let mut keys = Vec::with_capacity(self.files.len());
        for (from, to) in self.files {
            match self.storage.rename(&self.bucket, &from, &to).await {
                Ok(_) => {}
                // A delivery that finished the version beside this one cleared its leftovers.
                Err(Error::Storage(object_store::Error::NotFound { .. })) => {
                    return Err(Error::Conflict(format!(
                        "pending file `{from}` is gone: another delivery of this version finished"
                    )));
                }
                Err(e) => return Err(e),
            }
            keys.push(to);
        }
        Ok((self.partitions, keys))
    }

    /// Moves the files under `folder` instead of the product, keeping their partition paths: a
    /// refused version, kept as it would have been published (masked). Returns their keys.
    pub async fn quarantine(self, folder: &str) -> Result<Vec<String>> {
        let mut keys = Vec::with_capacity(self.files.len());
        for (from, to) in &self.files {
            let dest = format!("{folder}{}", &to[self.prefix.len()..]);
            self.storage.rename(&self.bucket, from, &dest).await?;
            keys.push(dest);
        }
        Ok(keys)
    }

    /// Deletes the files: the version is not published.
    pub async fn discard(self) -> Result<()> {
        for (key, _) in &self.files {
            self.storage.delete(&self.bucket, key).await?;
        }
        Ok(())
    }
}

/// Day numbers (days since 1970-01-01, UTC) of a date or microsecond timestamp column, `None`
/// for null; `None` for other types.
fn day_numbers(array: &dyn Array) -> Option<Box<dyn Iterator<Item = Option<i64>> + '_>> {
    const DAY_US: i64 = 86_400_000_000;
    match array.data_type() {
        DataType::Date32 => Some(Box::new(
            array
                .as_primitive::<Date32Type>()
                .iter()
                .map(|d| d.map(i64::from)),
        )),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(Box::new(
            array
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .iter()
                .map(|t| t.map(|us| us.div_euclid(DAY_US))),
        )),
        _ => None,
    }
}

/// The text of a partition value: dates as `YYYY-MM-DD`, timestamps by their UTC date.
fn partition_value(array: &dyn Array, row: usize) -> Result<String> {
    if array.is_null(row) {
        return Ok("__HIVE_DEFAULT_PARTITION__".into());
    }
    Ok(match array.data_type() {
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            Date32Type::to_naive_date_opt(days)
                .map(|d| d.to_string())
                .unwrap_or_default()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = array
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(row);
            DateTime::from_timestamp_micros(us)
                .map(|t| t.date_naive().to_string())
                .unwrap_or_default()
        }
        _ => arrow::util::display::array_value_to_string(array, row)?,
    })
}

/// Characters a partition value cannot carry into a key as they are: path syntax (`/`, `=`),
/// the escape character itself, and what object stores reserve or recommend avoiding.
const PARTITION_RESERVED: &str = "!\"#%'*/:<=>?[\\]^`{|}~";

/// Escapes a partition value for its folder name: reserved characters and control characters
/// become `!XX` (hex of each UTF-8 byte), so `/`, `=` and friends cannot change the path.
///
/// Hive writes `%XX`, but `%` is not a safe key character for object stores (the `object_store`
/// crate re-encodes it, S3 recommends avoiding it), so Tessera escapes with `!`, which S3 lists as
/// safe. Readers never need to parse these names: the catalog registers each partition with its
/// true values ([`unescape_partition`]) and its location.
pub fn escape_partition(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || PARTITION_RESERVED.contains(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("!{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape_partition`]: the value a partition folder name stands for.
pub fn unescape_partition(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'!')
            .then(|| escaped.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn partitions_are_written_pending_then_published_within_the_memory_budget() {
        use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
        use arrow::datatypes::{Field, Schema};

        let dir = tempfile::tempdir().expect("dir");
        let storage = Storage::new(
            Arc::new(crate::storage::LocalBuckets::new(dir.path())),
            None,
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("note", DataType::Utf8, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let mut writer = PartitionedWriter::new(
            &storage,
            "bucket-1",
            "orders",
            "v1",
            Arc::clone(&schema),
            &["at".to_owned()],
        )
        .expect("writer")
        .with_folders(vec!["dt".into()])
        .with_memory_budget(256 << 10);
        const DAY: i64 = 86_400_000_000;
        let (batches, rows) = (20, 4096);
        for b in 0..batches {
            let ids: Vec<i64> = (0..rows).map(|r| b * rows + r).collect();
            let notes: Vec<String> = ids
                .iter()
                .map(|i| format!("note {i} {}", i * 7919))
                .collect();
            // 30 days, and a null (the default partition).
            let at: Vec<Option<i64>> = ids
                .iter()
                .map(|i| (i % 31 != 30).then(|| (i % 31) * DAY - 1 + DAY))
                .collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(notes)),
                    Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
                ],
            )
            .expect("batch");
            writer.write(&batch).await.expect("write");
        }
        let pending = writer.finish().await.expect("finish");
        let pending_keys: Vec<String> = pending.keys().map(str::to_owned).collect();
        assert_eq!(pending_keys.len(), 31);
        assert!(
            pending_keys
                .iter()
                .all(|k| k.starts_with("products/orders/_pending/v1/") && k.contains("/dt="))
        );
        // Nothing in the partitions yet.
        let listed = storage
            .list("bucket-1", "products/orders/dt=")
            .await
            .expect("list");
        assert!(listed.is_empty(), "{listed:?}");

        let (partitions, files) = pending.publish().await.expect("publish");
        assert_eq!(partitions[0], "dt=1970-01-01/");
        assert_eq!(partitions[30], "dt=__HIVE_DEFAULT_PARTITION__/");
        assert_eq!(files[0], "products/orders/dt=1970-01-01/part-v1-0.parquet");
        assert!(
            storage
                .list("bucket-1", "products/orders/_pending/")
                .await
                .expect("list")
                .is_empty()
        );
        let mut total = 0;
        let mut most_groups = 0;
        for key in &files {
            use parquet::file::reader::FileReader;
            let file = std::fs::File::open(dir.path().join("bucket-1").join(key)).expect("file");
            let reader = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
            most_groups = most_groups.max(reader.metadata().num_row_groups());
            total += reader.metadata().file_metadata().num_rows() as usize;
        }
        assert_eq!(total, (batches * rows) as usize);
        // 2,600 rows per partition never fill a row group: only the budget ends them early.
        assert!(most_groups > 1, "row groups per file: {most_groups}");
    }

    #[test]
    fn partition_escaping_keeps_values_inside_their_folder() {
        assert_eq!(escape_partition("2024-05-01"), "2024-05-01");
        assert_eq!(escape_partition("a/b=c"), "a!2Fb!3Dc");
        assert_eq!(escape_partition("../x"), "..!2Fx");
        assert_eq!(escape_partition("100% {x}"), "100!25 !7Bx!7D");
        for value in [
            "2024-05-01",
            "EU/West: 100%",
            "a=b#c",
            "naïve\u{7f}",
            "%zz%4",
            "!zz!4 wow!",
        ] {
            assert_eq!(unescape_partition(&escape_partition(value)), value);
        }
    }

    #[test]
    fn live_files_start_at_the_last_overwrite() {
        let c = |v: &str, mode, f: &str| {
            (
                v.to_owned(),
                Commit {
                    version: v.into(),
                    mode,
                    files: vec![f.into()],
                    partitions: vec![],
                    rows: 1,
                    contract_id: "c".into(),
                    contract_version: "1".into(),
                    source: "s".into(),
                    source_key: None,
                    sequencer: None,
                    committed_at: Utc::now(),
                    checks: Default::default(),
                },
            )
        };
        let log = vec![
            c("1", CommitMode::Append, "a"),
            c("2", CommitMode::Overwrite, "bucket-1"),
            c("3", CommitMode::Append, "c"),
        ];
        assert_eq!(live_files(&log), vec!["bucket-1", "c"]);
        assert_eq!(live_files(&log[..1]), vec!["a"]);
    }

    #[test]
    fn a_newer_version_of_a_raw_key_supersedes_the_older_whatever_the_commit_order() {
        let c = |v: &str, key: Option<&str>, seq: Option<&str>| {
            (
                v.to_owned(),
                Commit {
                    version: v.into(),
                    mode: CommitMode::Append,
                    files: vec![format!("f{v}")],
                    partitions: vec![],
                    rows: 1,
                    contract_id: "c".into(),
                    contract_version: "1".into(),
                    source: "s".into(),
                    source_key: key.map(str::to_owned),
                    sequencer: seq.map(str::to_owned),
                    committed_at: Utc::now(),
                    checks: Default::default(),
                },
            )
        };
        // In sequencer order, and the same versions committed newest first.
        let ordered = vec![
            c("1", Some("raw/a.csv"), Some("0A")),
            c("2", Some("raw/b.csv"), Some("0B")),
            c("3", Some("raw/a.csv"), Some("0C")),
            c("4", None, None),
        ];
        assert_eq!(live_files(&ordered), vec!["f2", "f3", "f4"]);
        let shuffled = vec![
            ordered[2].clone(),
            ordered[3].clone(),
            ordered[1].clone(),
            ordered[0].clone(),
        ];
        let mut live = live_files(&shuffled);
        live.sort();
        assert_eq!(live, vec!["f2", "f3", "f4"]);
        assert_eq!(superseded(&shuffled), vec![false, false, false, true]);
        // Without sequencers, the later commit wins.
        let unordered = vec![c("1", Some("k"), None), c("2", Some("k"), None)];
        assert_eq!(live_files(&unordered), vec!["f2"]);
        // A stale version finds what supersedes it.
        assert_eq!(
            superseded_by(&ordered, "raw/a.csv", Some("0B")).map(|c| c.version.as_str()),
            Some("3")
        );
        assert!(superseded_by(&ordered, "raw/a.csv", Some("0D")).is_none());
        assert!(superseded_by(&ordered, "raw/a.csv", None).is_none());
    }
}
