//! The object storage port.
//!
//! The data path goes through [`object_store`]: one store per bucket, local directories when
//! embedded and S3 on AWS. [`Storage`] adds what a pipeline needs on top: Parquet streams in and
//! out, conditional writes for commits, and, when embedded, the `Object Created` notifications
//! that S3 would send to EventBridge.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, MetadataSuffixFetch, ParquetRecordBatchStream,
};
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::bus::EventBus;
use crate::error::{Error, Result};
use crate::events::ObjectCreated;

/// Gives the object store of a bucket.
pub trait Buckets: Send + Sync + std::fmt::Debug {
    /// The store holding `bucket`'s objects.
    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>>;
    /// URL of an object, as a reader outside Tessera names it (`s3://bucket/key`).
    fn url(&self, bucket: &str, key: &str) -> String {
        s3_url(bucket, key)
    }
    /// Bytes a streaming writer buffers before it uploads a part. S3 takes parts of 5 MiB at
    /// least (but the last); a store without that floor can take smaller ones and hold less.
    fn part_bytes(&self) -> usize {
        S3_PART_BYTES
    }
    /// Compression of the files between stages (the staged and clean zones). Across a network,
    /// LZ4 pays for itself in bytes not moved; on a local disk the bytes only pass through the
    /// page cache, and compressing and decompressing them is all cost.
    fn intermediate_compression(&self) -> Compression {
        Compression::LZ4_RAW
    }
    /// The file that holds an object, for stores that are folders of this machine: landing a
    /// local file there is a copy inside the kernel rather than an upload.
    fn local_file(&self, _bucket: &str, _key: &Path) -> Option<Result<PathBuf>> {
        None
    }
}

/// S3's smallest multipart part (but the last).
pub const S3_PART_BYTES: usize = 5 << 20;

/// The `s3://bucket/key` URL of an object: how the catalog and Athena name locations.
pub fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// One object store per bucket, made on first use: what every [`Buckets`] adapter keeps.
#[derive(Debug, Default)]
pub struct StoreCache {
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl StoreCache {
    /// The store of a valid bucket name, made by `make` the first time.
    pub fn get_or_make(
        &self,
        bucket: &str,
        make: impl FnOnce() -> Result<Arc<dyn ObjectStore>>,
    ) -> Result<Arc<dyn ObjectStore>> {
        validate_bucket(bucket)?;
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| Error::Internal("bucket map poisoned".into()))?;
        if let Some(s) = stores.get(bucket) {
            return Ok(Arc::clone(s));
        }
        let store = make()?;
        stores.insert(bucket.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}

/// Buckets as folders of a local directory, the warehouse.
#[derive(Debug)]
pub struct LocalBuckets {
    root: PathBuf,
    stores: StoreCache,
}

impl LocalBuckets {
    /// Buckets under `root`, created on first use.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBuckets {
            root: root.into(),
            stores: StoreCache::default(),
        }
    }

    /// The warehouse directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Buckets for LocalBuckets {
    fn part_bytes(&self) -> usize {
        LOCAL_PART_BYTES
    }

    fn intermediate_compression(&self) -> Compression {
        Compression::UNCOMPRESSED
    }

    fn local_file(&self, bucket: &str, key: &Path) -> Option<Result<PathBuf>> {
        // Made through the store, so the bucket's folder exists.
        Some(self.store(bucket).and_then(|_| {
            Ok(
                LocalFileSystem::new_with_prefix(self.root.join(bucket))?
                    .path_to_filesystem(key)?,
            )
        }))
    }

    fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        self.stores.get_or_make(bucket, || {
            let dir = self.root.join(bucket);
            std::fs::create_dir_all(&dir)?;
            Ok(Arc::new(
                LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true),
            ))
        })
    }
}

/// S3 bucket naming rules, so a bucket name can never climb out of the warehouse.
pub fn validate_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.contains("..")
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::BadEvent(format!(
            "`{}` is not a valid bucket name",
            bucket.escape_debug()
        )))
    }
}

/// The object path of a key, verbatim: S3 keys are stored exactly as named (the `From` conversion
/// of `object_store` would percent-encode characters such as `%` or `{` into another key).
fn object_path(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| {
        Error::BadEvent(format!(
            "`{}` is not a valid object key: {e}",
            key.escape_debug()
        ))
    })
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag.
    pub etag: Option<String>,
}

/// The object storage port.
#[derive(Debug, Clone)]
pub struct Storage {
    buckets: Arc<dyn Buckets>,
    notify: Option<Arc<dyn EventBus>>,
}

/// Bytes a streaming writer to local files buffers: files of many partitions written at once
/// hold little.
const LOCAL_PART_BYTES: usize = 256 << 10;

/// Bytes read at once from a local store's file by [`Storage::get_reader`].
const LOCAL_READ_BYTES: usize = 256 << 10;

/// Bytes read from a local file per write by [`Storage::put_file`].
const PUT_FILE_CHUNK: usize = 1 << 20;

/// Rows per record batch on every data path.
pub const BATCH_ROWS: usize = 8192;

impl Storage {
    /// Storage over `buckets`; when `notify` is set every write publishes S3's `Object Created`
    /// event there (the embedded stand-in for S3 → EventBridge notifications).
    pub fn new(buckets: Arc<dyn Buckets>, notify: Option<Arc<dyn EventBus>>) -> Self {
        Storage { buckets, notify }
    }

    /// The object store of a bucket.
    pub fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        self.buckets.store(bucket)
    }

    /// URL of an object for readers outside Tessera.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        self.buckets.url(bucket, key)
    }

    async fn notify(&self, written: &Written) -> Result<()> {
        if let Some(bus) = &self.notify {
            bus.publish(vec![ObjectCreated::event(
                &written.bucket,
                &written.key,
                written.size,
                written.etag.clone(),
            )])
            .await?;
        }
        Ok(())
    }

    /// An object just completed, as written (size and etag read back), announced on the bus.
    async fn announce(&self, bucket: &str, key: &str) -> Result<Written> {
        let meta = self.head(bucket, key).await?;
        let w = Written {
            bucket: bucket.into(),
            key: key.into(),
            size: meta.size,
            etag: meta.e_tag,
        };
        self.notify(&w).await?;
        Ok(w)
    }

    /// Writes a small object whole.
    pub async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<Written> {
        let size = data.len() as u64;
        let r = self
            .store(bucket)?
            .put(&object_path(key)?, PutPayload::from(data))
            .await?;
        let w = Written {
            bucket: bucket.into(),
            key: key.into(),
            size,
            etag: r.e_tag,
        };
        self.notify(&w).await?;
        Ok(w)
    }

    /// Puts a local file into an object: on a local store, a copy inside the kernel
    /// (`copy_file_range`) into a staging file renamed into place; elsewhere a streamed multipart
    /// upload. Either way memory stays at one buffer whatever the file's size. For landing raw
    /// files from a machine.
    pub async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        file: &std::path::Path,
    ) -> Result<Written> {
        if let Some(dest) = self.buckets.local_file(bucket, &object_path(key)?) {
            let (dest, from) = (dest?, file.to_path_buf());
            tokio::task::spawn_blocking(move || copy_into_place(&from, &dest))
                .await
                .map_err(|e| {
                    Error::Internal(format!("landing `{}` failed: {e}", file.display()))
                })??;
            return self.announce(bucket, key).await;
        }
        use tokio::io::AsyncReadExt;
        let mut input = tokio::fs::File::open(file).await.map_err(|e| {
            Error::bad_input(file.display().to_string(), format!("cannot open: {e}"))
        })?;
        let mut sink = self.write_text(bucket, key)?;
        let mut buf = vec![0u8; PUT_FILE_CHUNK];
        loop {
            let n = input.read(&mut buf).await.map_err(|e| {
                Error::bad_input(file.display().to_string(), format!("cannot read: {e}"))
            })?;
            if n == 0 {
                break;
            }
            sink.write(&buf[..n]).await?;
        }
        sink.finish().await
    }

    /// Writes an object only if no object has the key: `Ok(None)` when one already exists.
    /// Commits use this so each is made exactly once.
    pub async fn put_if_absent(
        &self,
        bucket: &str,
        key: &str,
        data: Bytes,
    ) -> Result<Option<Written>> {
        let size = data.len() as u64;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store(bucket)?
            .put_opts(&object_path(key)?, PutPayload::from(data), opts)
            .await
        {
            Ok(r) => {
                let w = Written {
                    bucket: bucket.into(),
                    key: key.into(),
                    size,
                    etag: r.e_tag,
                };
                self.notify(&w).await?;
                Ok(Some(w))
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a small object whole.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        Ok(self
            .store(bucket)?
            .get(&object_path(key)?)
            .await?
            .bytes()
            .await?)
    }

    /// Reads a small object whole, `None` when it does not exist.
    pub async fn get_opt(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        match self.get(bucket, key).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Storage(object_store::Error::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Size and tag of an object.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        Ok(self.store(bucket)?.head(&object_path(key)?).await?)
    }

    /// Objects under a prefix, sorted by key.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = object_path(prefix.trim_end_matches('/'))?;
        let mut all: Vec<ObjectMeta> = self
            .store(bucket)?
            .list(Some(&prefix))
            .try_collect()
            .await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(all)
    }

    /// Moves an object within a bucket (a rename on a file system, copy and delete on S3), and
    /// announces it under its new key.
    pub async fn rename(&self, bucket: &str, from: &str, to: &str) -> Result<Written> {
        let store = self.store(bucket)?;
        store.rename(&object_path(from)?, &object_path(to)?).await?;
        self.announce(bucket, to).await
    }

    /// Deletes an object; one that is already gone is not an error.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        match self.store(bucket)?.delete(&object_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies an object within a bucket.
    pub async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<Written> {
        let store = self.store(bucket)?;
        store.copy(&object_path(from)?, &object_path(to)?).await?;
        self.announce(bucket, to).await
    }

    /// An object's bytes as a blocking reader, for parsers that run on a blocking thread (and
    /// must be read there: a streamed object is bridged to the runtime). A file of a local
    /// store is read directly: its stream would hand over 8 KiB at a time, each read a task of
    /// the runtime's blocking pool and a thread switch.
    pub async fn get_reader(&self, bucket: &str, key: &str) -> Result<Box<dyn Read + Send>> {
        let got = self.store(bucket)?.get(&object_path(key)?).await?;
        let range = got.range.clone();
        match got.payload {
            object_store::GetResultPayload::File(mut file, path) => {
                file.seek(SeekFrom::Start(range.start)).map_err(|e| {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot read `{}`: {e}", path.display()),
                    ))
                })?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    LOCAL_READ_BYTES,
                    file.take(range.end - range.start),
                )))
            }
            object_store::GetResultPayload::Stream(stream) => Ok(Box::new(SyncIoBridge::new(
                StreamReader::new(stream.map_err(std::io::Error::other)),
            ))),
        }
    }

    /// Streams an object's bytes, for readers that parse as they go.
    pub async fn get_stream(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        Ok(self
            .store(bucket)?
            .get(&object_path(key)?)
            .await?
            .into_stream())
    }

    /// Streams a Parquet object as record batches. A file that is not Parquet is bad input.
    pub async fn read_parquet(&self, bucket: &str, key: &str) -> Result<ParquetBatches> {
        self.read_parquet_columns(bucket, key, None).await
    }

    /// Rows of a Parquet object, from its footer.
    pub async fn parquet_rows(&self, bucket: &str, key: &str) -> Result<u64> {
        let builder = self.parquet_builder(bucket, key).await?;
        Ok(u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0))
    }

    /// A reader of a Parquet object, its footer read. A file that is not Parquet is bad input.
    async fn parquet_builder(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<ParquetRecordBatchStreamBuilder<ObjectReader>> {
        let reader = ObjectReader {
            store: self.store(bucket)?,
            path: object_path(key)?,
            size: None,
        };
        // The footer is read by the Parquet crate: a panic on a corrupt one is contained, and
        // makes the file bad input like any other unreadable footer.
        let built = std::panic::AssertUnwindSafe(ParquetRecordBatchStreamBuilder::new(reader))
            .catch_unwind()
            .await;
        let unreadable = |why: String| {
            Error::bad_input(
                format!("{bucket}/{key}"),
                format!("not a readable Parquet file: {why}"),
            )
        };
        match built {
            Ok(Ok(builder)) => Ok(builder),
            // Storage trouble while fetching the footer is retried, not blamed on the file.
            Ok(Err(ParquetError::External(inner))) => match inner.downcast::<object_store::Error>()
            {
                Ok(store) => Err(Error::Storage(*store)),
                Err(other) => Err(unreadable(format!("External: {other}"))),
            },
            Ok(Err(e)) => Err(unreadable(e.to_string())),
            Err(panic) => Err(unreadable(format!(
                "the Parquet reader panicked on its footer ({})",
                panic_message(&*panic)
            ))),
        }
    }

    /// Streams some top-level columns of a Parquet object (all with `None`): the others are
    /// never fetched nor decoded.
    pub async fn read_parquet_columns(
        &self,
        bucket: &str,
        key: &str,
        columns: Option<&[usize]>,
    ) -> Result<ParquetBatches> {
        let builder = self.parquet_builder(bucket, key).await?;
        let builder = match columns {
            Some(columns) => {
                let mask = ProjectionMask::roots(
                    builder.metadata().file_metadata().schema_descr(),
                    columns.iter().copied(),
                );
                builder.with_projection(mask)
            }
            None => builder,
        };
        let metadata = Arc::clone(builder.metadata());
        Ok(ParquetBatches::read_ahead(
            builder.with_batch_size(BATCH_ROWS).build()?,
            metadata,
        ))
    }

    /// Opens a streaming writer for a text object (NDJSON quarantine files, reports).
    pub fn write_text(&self, bucket: &str, key: &str) -> Result<TextSink> {
        let inner = object_store::buffered::BufWriter::new(self.store(bucket)?, object_path(key)?);
        Ok(TextSink {
            inner,
            storage: self.clone(),
            bucket: bucket.into(),
            key: key.into(),
        })
    }

    /// Opens a streaming Parquet writer (multipart upload underneath) for a file readers query:
    /// dictionary encoding on.
    pub fn write_parquet(&self, bucket: &str, key: &str, schema: SchemaRef) -> Result<ParquetSink> {
        self.write_parquet_as(bucket, key, schema, ParquetUse::Published)
    }

    /// Opens a streaming Parquet writer for what the file is for.
    pub fn write_parquet_as(
        &self,
        bucket: &str,
        key: &str,
        schema: SchemaRef,
        usage: ParquetUse,
    ) -> Result<ParquetSink> {
        let writer = BufWriter::with_capacity(
            self.store(bucket)?,
            object_path(key)?,
            self.buckets.part_bytes(),
        );
        let compression = match usage {
            ParquetUse::Published => Compression::ZSTD(ZstdLevel::try_new(1)?),
            ParquetUse::Intermediate => self.buckets.intermediate_compression(),
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            // A reader holds a row group's column chunks, and a writer its pages, until it is
            // done with them: the files between stages, often uncompressed, keep them small.
            .set_max_row_group_row_count(Some(match usage {
                ParquetUse::Published => 128 * 1024,
                ParquetUse::Intermediate => 32 * 1024,
            }))
            .set_dictionary_enabled(usage == ParquetUse::Published)
            // Nothing prunes the zones between stages: the next stage reads the whole file.
            .set_statistics_enabled(match usage {
                ParquetUse::Published => EnabledStatistics::Page,
                ParquetUse::Intermediate => EnabledStatistics::None,
            })
            .build();
        let inner = AsyncArrowWriter::try_new(writer, schema, Some(props))?;
        Ok(ParquetSink::start(
            inner,
            self.clone(),
            bucket.into(),
            key.into(),
        ))
    }
}

/// What a Parquet file is for, which decides its encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetUse {
    /// Read by people and query engines (products, quarantine): dictionary encoding and zstd,
    /// which make files small and fast to scan.
    Published,
    /// Read once by the next stage (the staged and clean zones): plain encoding, no
    /// statistics, and the store's [`Buckets::intermediate_compression`] (LZ4 on S3, none on a
    /// local disk), cheaper to write and to read. Building dictionaries of mostly distinct
    /// values (ids, hashes, free text) costs more than it saves, and zstd costs several times
    /// LZ4's CPU for files that live until the next stage has read them.
    Intermediate,
}

/// Record batches of a Parquet object, fetched and decoded ahead of the reader by a task of
/// their own (at most [`READ_AHEAD`] batches ahead): on a multi-threaded runtime, decoding
/// overlaps with what the reader does with the batches before.
#[derive(Debug)]
pub struct ParquetBatches {
    schema: SchemaRef,
    metadata: Arc<ParquetMetaData>,
    rx: tokio::sync::mpsc::Receiver<parquet::errors::Result<RecordBatch>>,
    task: tokio::task::JoinHandle<()>,
}

/// Batches decoded ahead of a Parquet reader.
pub const READ_AHEAD: usize = 2;

impl ParquetBatches {
    fn read_ahead(
        mut stream: ParquetRecordBatchStream<ObjectReader>,
        metadata: Arc<ParquetMetaData>,
    ) -> ParquetBatches {
        let schema = Arc::clone(stream.schema());
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let task = tokio::spawn(async move {
            loop {
                // A panic of the decoder on a corrupt file is contained: the reader gets an
                // error (the file is bad input), not a stream that silently ends early.
                let batch = match std::panic::AssertUnwindSafe(stream.next())
                    .catch_unwind()
                    .await
                {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(panic) => Err(ParquetError::General(format!(
                        "the Parquet decoder panicked ({})",
                        panic_message(&*panic)
                    ))),
                };
                let failed = batch.is_err();
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        ParquetBatches {
            schema,
            metadata,
            rx,
            task,
        }
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The file's footer: row groups and column chunks with their declared sizes.
    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        &self.metadata
    }
}

impl futures::Stream for ParquetBatches {
    type Item = parquet::errors::Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for ParquetBatches {
    fn drop(&mut self) {
        // A reader that stops early stops the decoding too.
        self.task.abort();
    }
}

/// A Parquet object being written; [`ParquetSink::finish`] completes it and notifies.
///
/// Encoding and compression run in a task of their own, fed through a short queue, so on a
/// multi-threaded runtime they overlap with the work that produces the batches.
pub struct ParquetSink {
    tx: Option<tokio::sync::mpsc::Sender<SinkCommand>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
    storage: Storage,
    bucket: String,
    key: String,
    rows: u64,
}

/// Batches queued for a [`ParquetSink`]'s encoder.
const SINK_QUEUE: usize = 2;

enum SinkCommand {
    Write(RecordBatch),
    Flush,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("rows", &self.rows)
            .finish()
    }
}

impl ParquetSink {
    fn start(
        mut inner: AsyncArrowWriter<BufWriter>,
        storage: Storage,
        bucket: String,
        key: String,
    ) -> ParquetSink {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkCommand>(SINK_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(command) = rx.recv().await {
                match command {
                    SinkCommand::Write(batch) => inner.write(&batch).await?,
                    SinkCommand::Flush => inner.flush().await?,
                }
            }
            inner.close().await?;
            Ok(())
        });
        ParquetSink {
            tx: Some(tx),
            task: Some(task),
            storage,
            bucket,
            key,
            rows: 0,
        }
    }

    async fn send(&mut self, command: SinkCommand) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(command).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The encoder stopped: its error says why.
        self.tx = None;
        self.join().await?;
        Err(Error::Internal(format!(
            "the Parquet writer of `{}` stopped",
            self.key
        )))
    }

    async fn join(&mut self) -> Result<()> {
        match self.task.take() {
            Some(task) => task.await.map_err(|e| {
                Error::Internal(format!("the Parquet writer of `{}` failed: {e}", self.key))
            })?,
            None => Ok(()),
        }
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.send(SinkCommand::Write(batch.clone())).await
    }

    /// Ends the row group in progress, releasing its memory into the upload.
    pub async fn flush(&mut self) -> Result<()> {
        self.send(SinkCommand::Flush).await
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Key being written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Completes the upload.
    pub async fn finish(mut self) -> Result<Written> {
        self.tx = None;
        self.join().await?;
        self.storage.announce(&self.bucket, &self.key).await
    }
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        // Abandoned (an error elsewhere): the upload is not completed.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A text object being written line by line (multipart underneath).
#[derive(Debug)]
pub struct TextSink {
    inner: object_store::buffered::BufWriter,
    storage: Storage,
    bucket: String,
    key: String,
}

impl TextSink {
    /// Appends bytes.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.inner.write_all(data).await?;
        Ok(())
    }

    /// Completes the upload.
    pub async fn finish(mut self) -> Result<Written> {
        use tokio::io::AsyncWriteExt;
        self.inner.shutdown().await?;
        self.storage.announce(&self.bucket, &self.key).await
    }
}

/// Reads Parquet from an object store with ranged GETs: the footer first, then only the column
/// chunks a reader asks for.
#[derive(Debug, Clone)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The object's size, once the fetch of its footer has told it.
    size: Option<u64>,
}

impl ObjectReader {
    /// Refuses a range beyond the object's end: a corrupt footer pointing outside the file
    /// (otherwise a store error, which would be retried as storage trouble).
    fn check(&self, range: &std::ops::Range<u64>) -> parquet::errors::Result<()> {
        match self.size {
            Some(size) if range.end > size || range.start > range.end => {
                Err(ParquetError::General(format!(
                    "the footer points at bytes {}..{} of a {size}-byte file",
                    range.start, range.end
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The message of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "no message".into())
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.check(&range)?;
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            for range in &ranges {
                self.check(range)?;
            }
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut ObjectReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = GetOptions {
            range: Some(GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            let got = self
                .store
                .get_opts(&self.path, options)
                .await
                .map_err(parquet_err)?;
            self.size = Some(got.meta.size);
            got.bytes().await.map_err(parquet_err)
        }
        .boxed()
    }
}

/// Copies `from` to `dest` whole or not at all: into a staging file beside `dest` (named as
/// the local store names its uploads in progress, `name#digits`, which listings skip), then
/// renamed over it.
fn copy_into_place(from: &std::path::Path, dest: &std::path::Path) -> Result<()> {
    let source = std::fs::File::open(from)
        .map_err(|e| Error::bad_input(from.display().to_string(), format!("cannot open: {e}")))?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut staging = dest.as_os_str().to_owned();
    staging.push(format!("#{}{n}", std::process::id()));
    let staging = PathBuf::from(staging);
    let copied = std::fs::File::create(&staging)
        .and_then(|mut to| std::io::copy(&mut { source }, &mut to))
        .and_then(|_| std::fs::rename(&staging, dest))
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!(
                    "cannot copy `{}` into the warehouse at `{}`: {e}",
                    from.display(),
                    dest.display()
                ),
            ))
        });
    if copied.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// Each column chunk's codec, whether it has a dictionary page and statistics, read back
    /// from the file's bytes.
    fn chunks(file: Bytes) -> Vec<(Compression, bool, bool)> {
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.metadata().row_group(0);
        group
            .columns()
            .iter()
            .map(|c| {
                (
                    c.compression(),
                    c.dictionary_page_offset().is_some(),
                    c.statistics().is_some(),
                )
            })
            .collect()
    }

    /// Buckets across a network, as S3 is: the trait's defaults over local folders.
    #[derive(Debug)]
    struct Networked(LocalBuckets);

    impl Buckets for Networked {
        fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
            self.0.store(bucket)
        }
    }

    #[tokio::test]
    async fn intermediate_files_have_no_dictionaries_or_statistics_and_products_zstd_with() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..40_000)),
                Arc::new(StringArray::from_iter_values(
                    (0..40_000).map(|i| ["paid", "shipped"][i % 2]),
                )),
            ],
        )
        .unwrap();
        let local: Arc<dyn Buckets> = Arc::new(LocalBuckets::new(dir.path().join("local")));
        let networked: Arc<dyn Buckets> =
            Arc::new(Networked(LocalBuckets::new(dir.path().join("networked"))));
        for (buckets, intermediate) in [
            (local, Compression::UNCOMPRESSED),
            (networked, Compression::LZ4_RAW),
        ] {
            let storage = Storage::new(buckets, None);
            let mut written = Vec::new();
            for (key, usage) in [
                ("staged.parquet", ParquetUse::Intermediate),
                ("product.parquet", ParquetUse::Published),
            ] {
                let mut sink = storage
                    .write_parquet_as("zone", key, Arc::clone(&schema), usage)
                    .unwrap();
                sink.write(&batch).await.unwrap();
                let w = sink.finish().await.unwrap();
                written.push(storage.get(&w.bucket, &w.key).await.unwrap());
            }
            // Intermediate row groups are smaller: readers and writers hold one at a time.
            let groups = |file: &Bytes| {
                SerializedFileReader::new(file.clone())
                    .unwrap()
                    .metadata()
                    .num_row_groups()
            };
            assert_eq!((groups(&written[0]), groups(&written[1])), (2, 1));
            let staged = chunks(written[0].clone());
            assert!(
                staged.iter().all(|c| *c == (intermediate, false, false)),
                "{staged:?}"
            );
            let product = chunks(written[1].clone());
            assert!(
                product
                    .iter()
                    .all(
                        |(codec, dictionary, statistics)| matches!(codec, Compression::ZSTD(_))
                            && *dictionary
                            && *statistics
                    ),
                "{product:?}"
            );
            // Both read back through the stages' own reader.
            assert_eq!(
                storage
                    .parquet_rows("zone", "staged.parquet")
                    .await
                    .unwrap(),
                40_000
            );
        }
    }

    #[tokio::test]
    async fn a_landed_file_is_its_bytes_on_a_local_store_and_across_a_network() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = (0..3 * PUT_FILE_CHUNK + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let file = dir.path().join("orders.csv");
        std::fs::write(&file, &raw).unwrap();
        let local: Arc<dyn Buckets> = Arc::new(LocalBuckets::new(dir.path().join("local")));
        let networked: Arc<dyn Buckets> =
            Arc::new(Networked(LocalBuckets::new(dir.path().join("networked"))));
        for buckets in [local, networked] {
            let storage = Storage::new(buckets, None);
            // Into a bucket never used before, then over an object.
            let first = storage
                .put_file("fresh", "raw/orders/orders.csv", &file)
                .await
                .unwrap();
            assert_eq!(first.size, raw.len() as u64);
            storage
                .put(
                    "zone",
                    "raw/orders/orders.csv",
                    Bytes::from_static(b"older"),
                )
                .await
                .unwrap();
            let w = storage
                .put_file("zone", "raw/orders/orders.csv", &file)
                .await
                .unwrap();
            assert_eq!(w.size, raw.len() as u64);
            assert!(w.etag.is_some());
            let landed = storage.get("zone", "raw/orders/orders.csv").await.unwrap();
            assert!(landed == raw, "the landed bytes differ from the file's");
            // Nothing else is left beside it (no staging file).
            let listed: Vec<String> = storage
                .list("zone", "raw/orders/")
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.location.to_string())
                .collect();
            assert_eq!(listed, ["raw/orders/orders.csv"]);
            let missing = dir.path().join("absent.csv");
            let err = storage
                .put_file("zone", "raw/orders/absent.csv", &missing)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::BadInput { location, reason }
                    if location.ends_with("absent.csv") && reason.starts_with("cannot open")),
                "{err}"
            );
        }
        let on_disk = std::fs::read_dir(dir.path().join("local/zone/raw/orders")).unwrap();
        assert_eq!(on_disk.count(), 1, "a staging file was left behind");
    }

    /// Buckets in memory: objects come back as streams, as from S3.
    #[derive(Debug, Default)]
    struct InMemory(StoreCache);

    impl Buckets for InMemory {
        fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
            self.0.get_or_make(bucket, || {
                Ok(Arc::new(object_store::memory::InMemory::new()))
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_reads_whole_through_a_blocking_reader_from_files_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = (0..LOCAL_READ_BYTES * 2 + 5)
            .map(|i| (i % 241) as u8)
            .collect();
        let local: Arc<dyn Buckets> = Arc::new(LocalBuckets::new(dir.path()));
        let memory: Arc<dyn Buckets> = Arc::new(InMemory::default());
        for buckets in [local, memory] {
            let storage = Storage::new(buckets, None);
            storage
                .put("zone", "raw/orders/a.csv", Bytes::from(raw.clone()))
                .await
                .unwrap();
            let mut reader = storage
                .get_reader("zone", "raw/orders/a.csv")
                .await
                .unwrap();
            let read = tokio::task::spawn_blocking(move || {
                let mut read = Vec::new();
                reader.read_to_end(&mut read).map(|_| read)
            })
            .await
            .unwrap()
            .unwrap();
            assert!(read == raw, "{} bytes read of {}", read.len(), raw.len());
            let missing = storage.get_reader("zone", "raw/orders/absent.csv").await;
            assert!(
                matches!(
                    missing,
                    Err(Error::Storage(object_store::Error::NotFound { .. }))
                ),
                "{:?}",
                missing.err()
            );
        }
    }
}
