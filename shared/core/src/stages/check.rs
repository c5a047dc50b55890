//! contract-check: the product's contract decides between publishing and quarantine.
//!
//! Personal data is masked first (as the recipe and the organisation policy say, see
//! [`crate::policy`]), so the checks see exactly what would be published. The cleaned object is
//! read once: each batch is masked, checked and written into the version's pending folder,
//! where no reader looks; the contract's `sql` rules then read the columns they name from those
//! files. Only if every check passes are the files committed. A failed contract moves the data
//! to quarantine next to a JSON report and emits `ContractViolated`; a pass emits
//! `DataProductPublished`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder, new_null_array};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tessera_contract::Checker;

use super::version::Version;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::CheckCounts;
use crate::keys::{Zone, object_run_id};
use crate::mesh::{MaskMethod, Product};
use crate::publish::{self, CommitMode};
use crate::runs::{self, InputRef, RunRecord, RunStatus};

/// Checks one cleaned object and publishes or quarantines it.
pub async fn run(ctx: &Context, bucket: &str, key: &str, version: &str) -> Result<RunRecord> {
    let (domain, product, zk) = super::resolve(ctx, bucket, key, Zone::Clean)?;
    let id = object_run_id(Zone::Clean, bucket, key, version);
    let input = InputRef {
        bucket: bucket.into(),
        key: key.into(),
        version: version.into(),
        sequencer: None,
    };
    let (record, started) =
        RunRecord::start(&id, "contract-check", &domain.name, &product.name, input);
    let decision = Version {
        ctx,
        domain: &domain.name,
        product,
        bucket,
        id: &id,
        input_key: key,
        stage: "contract-check",
        source: source_of(ctx, bucket, &product.name, &zk.file).await?,
        delivery: crate::delivery::next_sequencer(),
    };
    let result = decide(ctx, bucket, key, &zk, &decision, record, started).await;
    if result.is_err() {
        decision.abandon().await;
    }
    result
}

/// The checks on a cleaned object, and the decision: published, or quarantined.
async fn decide(
    ctx: &Context,
    bucket: &str,
    key: &str,
    zk: &crate::keys::ZoneKey,
    decision: &Version<'_>,
    mut record: RunRecord,
    started: std::time::Instant,
) -> Result<RunRecord> {
    let (product, id) = (decision.product, decision.id);
    let masker = Arc::new(Masker::new(product, &ctx.mesh.pii_salt)?);

    let log = publish::commits(&ctx.storage, bucket, &product.name).await?;
    if let Some((commit_key, commit)) = log.iter().find(|(_, c)| c.version == id) {
        // Published by an earlier delivery of this event: announce it again (the event may have
        // been lost with the crash that caused the retry) and stop.
        decision.announce(commit_key, commit).await?;
        record.status = RunStatus::Published;
        record.rows_in = commit.rows;
        record.rows_out = commit.rows;
        record.outputs.extend(commit.files.iter().cloned());
        record.outputs.push(commit_key.clone());
        record.checks = commit.checks;
        record.notes.push(format!(
            "version `{id}` was already published; event sent again"
        ));
        // The crash may have come before the versions this one supersedes were removed, or left
        // files of a second delivery in the pending folder.
        decision.remove_superseded(&log, &mut record).await?;
        publish::clear_pending(&ctx.storage, bucket, &product.name, id, None).await?;
        return runs::save(&ctx.storage, bucket, record, started).await;
    }

    // One pass: every check on the masked data, written as it goes to the version's pending
    // folder, where no reader looks until the version is published.
    // Three things overlap: batches are masked ahead on blocking threads, checked on a thread
    // of their own, and partitioned and written here.
    let mut checker = Checker::new(product.schema())?;
    let mut pii = super::policy::PiiScan::new(ctx, product);
    let stream = ctx.storage.read_parquet(bucket, key).await?;
    let schema = masker.schema(stream.schema())?;
    let published = Arc::new(published_columns(product, &schema));
    let written = masker.schema(&Arc::new(stream.schema().project(&published)?))?;
    let mut writer = decision.writer(Arc::clone(&written))?;
    let mut masked = mask_ahead(&masker, &published, stream);
    let (to_checker, mut checked) = tokio::sync::mpsc::channel::<RecordBatch>(MASK_AHEAD);
    let checking = tokio::task::spawn_blocking(move || {
        while let Some(batch) = checked.blocking_recv() {
            checker.update(&batch);
        }
        checker
    });
    while let Some(batch) = masked.next().await {
        let batch = batch?;
        record.rows_in += batch.num_rows() as u64;
        if to_checker.send(batch.clone()).await.is_err() {
            break;
        }
        pii.update(&batch);
        writer.write(&batch).await?;
    }
    drop(to_checker);
    let checker = checking
        .await
        .map_err(|e| Error::Internal(format!("contract-check: the checks failed: {e}")))?;
    let pending = writer.finish().await?;
    let mut report = checker.finish();
    // The organisation policy: no personal data published unclassified and unmasked.
    pii.finish(&mut report);
    // The contract's `sql` rules on the files as written (masked, as they would be published),
    // reading only the columns each rule names; foreign keys on the same masked data.
    super::sql_checks::run_on_files(
        &ctx.storage,
        bucket,
        pending.keys().map(str::to_owned).collect(),
        written,
        product.schema(),
        &mut report,
    )
    .await?;
    super::relationships::run(
        ctx,
        bucket,
        key,
        schema,
        Arc::clone(&masker),
        &product.contract,
        product.schema(),
        &mut report,
    )
    .await?;
    let (passed, failed) = report.counts();
    record.checks = CheckCounts { passed, failed };

    if !report.passed() {
        record.quarantined = record.rows_in;
        // The refused data as it was written, masked and projected as it would have been
        // published: consumers are pointed at it by `ContractViolated`.
        let name = zk.file.trim_end_matches(".parquet");
        let data = pending
            .quarantine(&format!("{}data/", decision.quarantine_folder(name)))
            .await?;
        decision.refuse(name, &report, &data, &mut record).await?;
        return runs::save(&ctx.storage, bucket, record, started).await;
    }

    let report_key = format!(
        "{}_reports/{id}.json",
        publish::product_prefix(&product.name)
    );
    decision.write_report(&report_key, &report).await?;
    decision
        .commit(pending, CommitMode::Append, &mut record)
        .await?;
    runs::save(&ctx.storage, bucket, record, started).await
}

/// The raw object a clean file came from, and the sequencer of its version: the clean file is
/// named `<stem>-<ingest run id>.parquet`, and ingest's run record names its input. `None` when
/// the record is not there (an object put into the clean zone by hand): the version then stands
/// on its own.
async fn source_of(
    ctx: &Context,
    bucket: &str,
    product: &str,
    file: &str,
) -> Result<Option<(String, Option<String>)>> {
    let Some(id) = file
        .strip_suffix(".parquet")
        .and_then(|stem| stem.rsplit_once('-'))
        .map(|(_, id)| id)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Ok(None);
    };
    let Some(bytes) = ctx
        .storage
        .get_opt(bucket, &crate::keys::run_key(product, "ingest", id))
        .await?
    else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<RunRecord>(&bytes)
        .ok()
        .map(|run| (run.input.key, run.input.sequencer)))
}

/// Batches masked (and projected to the published columns) ahead of the reader, in order,
/// [`MASK_AHEAD`] at a time on blocking threads: hashing personal data is CPU work that batches
/// do not share.
fn mask_ahead(
    masker: &Arc<Masker>,
    published: &Arc<Vec<usize>>,
    stream: crate::storage::ParquetBatches,
) -> impl futures::Stream<Item = Result<RecordBatch>> + use<> {
    let (masker, published) = (Arc::clone(masker), Arc::clone(published));
    stream
        .map(move |batch| {
            let (masker, published) = (Arc::clone(&masker), Arc::clone(&published));
            async move {
                let batch = batch?;
                tokio::task::spawn_blocking(move || masker.apply(&batch.project(&published)?))
                    .await
                    .map_err(|e| {
                        Error::Internal(format!("contract-check: masking a batch failed: {e}"))
                    })?
            }
        })
        .buffered(MASK_AHEAD)
}

/// Batches masked, or waiting for the checks, at once.
const MASK_AHEAD: usize = 2;

/// The columns of the cleaned object that are published: the contract's (not the raw text
/// columns `keep_raw` adds for clean and quarantine).
fn published_columns(product: &Product, schema: &arrow::datatypes::SchemaRef) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| product.schema().property(f.name()).is_some())
        .map(|(i, _)| i)
        .collect()
}

/// Applies the product's personal-data protection to batches.
#[derive(Debug)]
pub struct Masker {
    methods: BTreeMap<String, MaskMethod>,
    salt: String,
}

impl Masker {
    /// The masks of a product (its recipe, with `pii` columns hashed by default; see
    /// [`Mesh::load`](crate::mesh::Mesh::load)).
    pub fn new(product: &Product, salt: &str) -> Result<Masker> {
        Ok(Masker {
            methods: product.mask.clone(),
            salt: salt.to_owned(),
        })
    }

    /// No masking at all (data tested as given, `tessera contract test`).
    pub fn none() -> Masker {
        Masker {
            methods: BTreeMap::new(),
            salt: String::new(),
        }
    }

    /// The schema of masked batches (unchanged: masking keeps types).
    pub fn schema(
        &self,
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<arrow::datatypes::SchemaRef> {
        for (col, method) in &self.methods {
            if let Ok(f) = schema.field_with_name(col)
                && *method != MaskMethod::Null
                && f.data_type() != &arrow::datatypes::DataType::Utf8
            {
                return Err(Error::Config(format!(
                    "column `{col}` is `{}`: only text columns can be hashed or redacted",
                    f.data_type()
                )));
            }
        }
        Ok(Arc::clone(schema))
    }

    /// Masks a batch.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.methods.is_empty() {
            return Ok(batch.clone());
        }
        self.schema(&batch.schema())?;
        let schema = batch.schema();
        let mut columns = batch.columns().to_vec();
        for (col, method) in &self.methods {
            let Ok(i) = schema.index_of(col) else {
                continue;
            };
            columns[i] = self.mask(&columns[i], *method);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    fn mask(&self, array: &ArrayRef, method: MaskMethod) -> ArrayRef {
        if method == MaskMethod::Null {
            return new_null_array(array.data_type(), array.len());
        }
        let strings = array.as_string::<i32>();
        // Every masked value is written into one buffer, through one reused string.
        let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 64);
        let mut text = String::with_capacity(64);
        for v in strings.iter() {
            let Some(v) = v else {
                out.append_null();
                continue;
            };
            text.clear();
            match method {
                MaskMethod::Hash => hex_into(
                    &mut text,
                    &Sha256::new()
                        .chain_update(self.salt.as_bytes())
                        .chain_update(v.as_bytes())
                        .finalize(),
                ),
                MaskMethod::Sha256 => hex_into(&mut text, &Sha256::digest(v.as_bytes())),
                MaskMethod::Redact => {
                    // The last four characters are kept only of long values (card or phone
                    // numbers); a short value would be published whole.
                    text.push_str("****");
                    let n = v.chars().count();
                    if n >= 8 {
                        text.extend(v.chars().skip(n - 4));
                    }
                }
                MaskMethod::Null => {}
            }
            out.append_value(&text);
        }
        Arc::new(out.finish())
    }
}

/// Appends `bytes` as lower-case hex (what `hex::encode` gives) to `text`.
fn hex_into(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn hex_into_writes_what_hex_encode_gives() {
        for input in [&b""[..], b"ada@example.com", &[0u8, 0x0f, 0xf0, 0xff]] {
            let mut text = String::from("kept:");
            super::hex_into(&mut text, input);
            assert_eq!(text, format!("kept:{}", hex::encode(input)));
            let digest = Sha256::digest(input);
            text.clear();
            super::hex_into(&mut text, &digest);
            assert_eq!(text, hex::encode(digest));
        }
    }
}
