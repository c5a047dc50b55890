//! At-least-once delivery, crashes and concurrency (RELIABILITY.md, test plan 1 to 6): events
//! delivered many times, sequentially and at once, in shuffled orders, a fault injected at every
//! side effect of the chain, many writers on one product, lost events, poison input. Each test
//! compares the end state with what one clean delivery of every event gives.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use serde_json::Value;
use tessera_core::bus::{EventBus, InProcessBus};
use tessera_core::catalog::{Catalog, Database, FileCatalog, Partition, Table};
use tessera_core::events::BusEvent;
use tessera_core::function::handle_any;
use tessera_core::mesh::Mesh;
use tessera_core::publish::{commits, live_files};
use tessera_core::routing::targets;
use tessera_core::runs::RunStatus;
use tessera_core::storage::{Buckets, LocalBuckets, Storage};
use tessera_core::{Context, ErrorKind};

use crate::support::{BUCKET, ORDERS_CONTRACT, ORDERS_CSV};

const HEADER: &str = "order_id,email,amount,order_day,note\n";

/// Three good rows over two days and one the contract refuses (a bad amount).
const DAY1: &str = "order_id,email,amount,order_day,note\n\
O-1,a@example.com,10.00,2024-05-01,first\n\
O-2,b@example.com,20.50,2024-05-01,\n\
O-3,,5.25,2024-05-02,third\n\
O-4,d@example.com,oops,2024-05-02,bad amount\n";

/// Counts side effects (object writes, copies, renames, deletes, events) and fails one of them.
#[derive(Debug, Default)]
struct Fault {
    armed: std::sync::atomic::AtomicBool,
    seen: AtomicUsize,
    fail_at: AtomicUsize,
    /// Every side effect whose description contains this text fails (a broken dependency).
    always: std::sync::Mutex<Option<String>>,
}

impl Fault {
    /// A side effect is about to happen: `Err` when it is the one to fail.
    fn effect(&self, what: &str) -> object_store::Result<()> {
        if let Some(text) = self.always.lock().unwrap().as_deref()
            && what.contains(text)
        {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: format!("{what}: the store refuses it").into(),
            });
        }
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: format!("injected fault at side effect {n} ({what})").into(),
            });
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fault: Arc<Fault>,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.fault.effect(&format!("put {location}"))?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.fault.effect(&format!("upload {location}"))?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if let Err(e) = self.fault.effect("delete") {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.fault.effect(&format!("copy {from} {to}"))?;
        self.inner.copy_opts(from, to, options).await
    }
    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.fault.effect(&format!("rename {from} {to}"))?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct FaultyBuckets {
    inner: LocalBuckets,
    fault: Arc<Fault>,
}

impl Buckets for FaultyBuckets {
    fn store(&self, bucket: &str) -> tessera_core::Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(FaultyStore {
            inner: self.inner.store(bucket)?,
            fault: Arc::clone(&self.fault),
        }))
    }
    fn part_bytes(&self) -> usize {
        self.inner.part_bytes()
    }
    fn intermediate_compression(&self) -> parquet::basic::Compression {
        self.inner.intermediate_compression()
    }
}

/// The catalog, its writes watched too.
#[derive(Debug)]
struct FaultyCatalog {
    inner: FileCatalog,
    fault: Arc<Fault>,
}

fn catalog_error(e: object_store::Error) -> tessera_core::Error {
    tessera_core::Error::Catalog(e.to_string())
}

#[async_trait]
impl Catalog for FaultyCatalog {
    async fn ensure_database(&self, database: &Database) -> tessera_core::Result<()> {
        self.fault
            .effect(&format!("database {}", database.name))
            .map_err(catalog_error)?;
        self.inner.ensure_database(database).await
    }
    async fn get_table(&self, database: &str, name: &str) -> tessera_core::Result<Option<Table>> {
        self.inner.get_table(database, name).await
    }
    async fn put_table(&self, table: &Table, expected_version: u64) -> tessera_core::Result<()> {
        self.fault
            .effect(&format!("table {}", table.name))
            .map_err(catalog_error)?;
        self.inner.put_table(table, expected_version).await
    }
    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> tessera_core::Result<usize> {
        self.fault
            .effect(&format!("partitions {table}"))
            .map_err(catalog_error)?;
        self.inner.add_partitions(database, table, partitions).await
    }
    async fn partitions(
        &self,
        database: &str,
        table: &str,
    ) -> tessera_core::Result<Vec<Partition>> {
        self.inner.partitions(database, table).await
    }
    async fn tables(&self) -> tessera_core::Result<Vec<Table>> {
        self.inner.tables().await
    }
}

#[derive(Debug)]
struct FaultyBus {
    inner: Arc<InProcessBus>,
    fault: Arc<Fault>,
}

#[async_trait]
impl EventBus for FaultyBus {
    async fn publish(&self, events: Vec<BusEvent>) -> tessera_core::Result<()> {
        self.fault
            .effect(&format!("event {}", events[0].detail_type))?;
        self.inner.publish(events).await
    }
}

/// A mesh with the `orders` product, over a warehouse whose side effects a [`Fault`] watches.
struct Chain {
    _dir: tempfile::TempDir,
    ctx: Context,
    bus: Arc<InProcessBus>,
    fault: Arc<Fault>,
}

impl Chain {
    fn new(settings: &str) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mesh");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("orders.odcs.yaml"), ORDERS_CONTRACT).unwrap();
        let toml = format!(
            "[mesh]\nname = \"test\"\npii_salt = \"pepper\"\n{settings}\n\n\
             [[domains]]\nname = \"shop\"\nbucket = \"{BUCKET}\"\ndatabase = \"shop_db\"\n{ORDERS_CSV}"
        );
        let mesh = Mesh::from_toml(&toml, "test", &root).unwrap();
        let warehouse = dir.path().join("warehouse");
        std::fs::create_dir_all(&warehouse).unwrap();
        let fault = Arc::new(Fault::default());
        let bus = Arc::new(InProcessBus::default());
        let faulty_bus: Arc<dyn EventBus> = Arc::new(FaultyBus {
            inner: Arc::clone(&bus),
            fault: Arc::clone(&fault),
        });
        let buckets = Arc::new(FaultyBuckets {
            inner: LocalBuckets::new(&warehouse),
            fault: Arc::clone(&fault),
        });
        let ctx = Context {
            mesh: Arc::new(mesh),
            storage: Storage::new(buckets, Some(Arc::clone(&faulty_bus))),
            bus: faulty_bus,
            catalog: Arc::new(FaultyCatalog {
                inner: FileCatalog::new(warehouse.join("_catalog")),
                fault: Arc::clone(&fault),
            }),
            pushdown: None,
            scope: None,
            lineage: None,
        };
        Chain {
            _dir: dir,
            ctx,
            bus,
            fault,
        }
    }

    /// Lands a raw file (its event goes on the bus).
    async fn land(&self, key: &str, data: &str) {
        self.ctx
            .storage
            .put(BUCKET, key, Bytes::from(data.to_owned()))
            .await
            .unwrap();
    }

    /// Fails the `n`th side effect from now on (0: none), counting from zero.
    fn arm(&self, n: usize) {
        self.fault.seen.store(0, Ordering::SeqCst);
        self.fault.fail_at.store(n, Ordering::SeqCst);
        self.fault.armed.store(true, Ordering::SeqCst);
    }

    /// Delivers every event on the bus, and the events that follow, as EventBridge and Lambda
    /// would: each one `copies` times (one after the other, or all at once), an invocation that
    /// fails retried twice. Returns the failed invocations.
    async fn drain(&self, copies: usize, at_once: bool) -> usize {
        let mut failures = 0;
        while let Some(event) = self.bus.pop() {
            failures += self.deliver(&event, copies, at_once).await;
        }
        failures
    }

    /// Delivers every event waiting on the bus at once (and so on with the events that follow).
    async fn drain_at_once(&self) {
        loop {
            let events: Vec<BusEvent> = std::iter::from_fn(|| self.bus.pop()).collect();
            if events.is_empty() {
                return;
            }
            futures::future::join_all(events.iter().map(|e| self.deliver(e, 1, false))).await;
        }
    }

    async fn deliver(&self, event: &BusEvent, copies: usize, at_once: bool) -> usize {
        let mut failures = 0;
        for function in targets(event) {
            let json = event.to_json();
            if at_once {
                let runs = (0..copies).map(|_| self.invoke(function, &json));
                failures += futures::future::join_all(runs)
                    .await
                    .into_iter()
                    .sum::<usize>();
            } else {
                for _ in 0..copies {
                    failures += self.invoke(function, &json).await;
                }
            }
        }
        failures
    }

    /// One invocation and Lambda's two retries; returns how many attempts failed.
    async fn invoke(&self, function: tessera_core::routing::Function, event: &Value) -> usize {
        let mut failures = 0;
        for _ in 0..3 {
            match handle_any(&self.ctx, function, event).await {
                Ok(_) => break,
                Err(e) => {
                    assert_ne!(e.kind, ErrorKind::BadData, "{e}");
                    failures += 1;
                }
            }
        }
        failures
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctx
            .storage
            .list(BUCKET, prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect()
    }

    /// The order ids the product holds now (its live files), sorted.
    async fn order_ids(&self) -> Vec<String> {
        let log = commits(&self.ctx.storage, BUCKET, "orders").await.unwrap();
        let mut ids = Vec::new();
        for file in live_files(&log) {
            for batch in crate::support::read_batches(&self.ctx, &file).await {
                let column = batch.column_by_name("order_id").unwrap().as_string::<i32>();
                ids.extend((0..column.len()).map(|i| column.value(i).to_owned()));
            }
        }
        ids.sort();
        ids
    }

    /// What readers and the next runs see: every object but run records and sequencer markers
    /// (their times differ from run to run), with data files by content and JSON records without
    /// their times and sequencers.
    async fn state(&self) -> BTreeMap<String, String> {
        let mut state = BTreeMap::new();
        for key in self.keys("").await {
            if key.starts_with("runs/") {
                continue;
            }
            let bytes = self.ctx.storage.get(BUCKET, &key).await.unwrap();
            let value = if key.ends_with(".json") {
                let mut v: Value = serde_json::from_slice(&bytes).unwrap();
                for field in ["committed_at", "sequencer", "at"] {
                    if let Some(o) = v.as_object_mut() {
                        o.remove(field);
                    }
                }
                v.to_string()
            } else {
                format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
            };
            // Names and records carry ids derived from the raw object's version (its etag, which
            // differs from one landing to the next): ids are compared as placeholders.
            state.insert(without_ids(&key), without_ids(&value));
        }
        // The catalog: tables (without the time of the last publication) and their partitions.
        for mut table in self.ctx.catalog.tables().await.unwrap() {
            table.parameters.remove("last_publish");
            let partitions = self
                .ctx
                .catalog
                .partitions(&table.database, &table.name)
                .await
                .unwrap();
            let name = format!("catalog:{}.{}", table.database, table.name);
            let value = serde_json::json!({"table": table, "partitions": partitions});
            state.insert(name, without_ids(&value.to_string()));
        }
        state
    }

    /// Run records per stage.
    async fn runs(&self, stage: &str) -> Vec<tessera_core::runs::RunRecord> {
        tessera_core::runs::history(&self.ctx.storage, BUCKET, "orders", stage)
            .await
            .unwrap()
    }
}

/// Text with every run of 16 hex digits (an id) replaced by `<id>`.
fn without_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        if run == 16 {
            out.push_str("<id>");
            i += run;
        } else {
            let step = run.max(1);
            out.push_str(&text[i..i + step]);
            i += step;
        }
    }
    out
}

const EXPECTED: [&str; 3] = ["O-1", "O-2", "O-3"];

/// What one delivery of every event leaves.
async fn reference() -> BTreeMap<String, String> {
    let chain = Chain::new("");
    chain.land("raw/orders/day1.csv", DAY1).await;
    assert_eq!(chain.drain(1, false).await, 0);
    assert_eq!(chain.order_ids().await, EXPECTED);
    chain.state().await
}

async fn assert_converged(chain: &Chain, reference: &BTreeMap<String, String>, what: &str) {
    assert_eq!(chain.order_ids().await, EXPECTED, "{what}");
    let state = chain.state().await;
    assert_eq!(
        state.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "{what}: objects"
    );
    assert_eq!(&state, reference, "{what}: contents");
    // One commit, one run record per stage and input, nothing pending, no attempt counts left.
    assert_eq!(
        chain.keys("products/orders/_commits/").await.len(),
        1,
        "{what}"
    );
    assert!(
        chain.keys("products/orders/_pending/").await.is_empty(),
        "{what}"
    );
    assert!(
        chain.keys("runs/orders/_attempts/").await.is_empty(),
        "{what}"
    );
    for stage in ["ingest", "clean", "contract-check"] {
        let runs = chain.runs(stage).await;
        assert_eq!(runs.len(), 1, "{what}: {stage} runs");
        assert_ne!(runs[0].status, RunStatus::Skipped, "{what}: {stage}");
    }
}

#[tokio::test]
async fn each_event_delivered_2_3_and_10_times_in_a_row_has_one_effect() {
    let reference = reference().await;
    for copies in [2, 3, 10] {
        let chain = Chain::new("");
        chain.land("raw/orders/day1.csv", DAY1).await;
        assert_eq!(chain.drain(copies, false).await, 0);
        assert_converged(&chain, &reference, &format!("{copies} copies in a row")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_event_delivered_2_3_and_10_times_at_once_has_one_effect() {
    let reference = reference().await;
    for copies in [2, 3, 10] {
        let chain = Chain::new("");
        chain.land("raw/orders/day1.csv", DAY1).await;
        // Deliveries racing on one input may fail (a file another delivery moved); their retries
        // find the work done.
        chain.drain(copies, true).await;
        assert_converged(&chain, &reference, &format!("{copies} copies at once")).await;
    }
}

#[tokio::test]
async fn a_fault_at_every_side_effect_then_retries_converge_to_the_same_state() {
    let reference = reference().await;
    // Side effects of one clean delivery of the chain, counted.
    let chain = Chain::new("");
    chain.land("raw/orders/day1.csv", DAY1).await;
    chain.arm(0);
    chain.drain(1, false).await;
    let effects = chain.fault.seen.load(Ordering::SeqCst);
    assert!(effects > 20, "{effects} side effects");
    for n in 1..=effects {
        let chain = Chain::new("");
        chain.land("raw/orders/day1.csv", DAY1).await;
        chain.arm(n);
        let failures = chain.drain(1, false).await;
        assert_eq!(failures, 1, "fault at side effect {n} of {effects}");
        assert_converged(&chain, &reference, &format!("fault at side effect {n}")).await;
    }
    eprintln!("a fault at each of {effects} side effects: every run converged");
}

/// A day of orders of one raw file's version: two rows with ids that name it.
fn version_of(file: &str, version: usize) -> String {
    format!(
        "order_id,email,amount,order_day,note\n\
         O-{file}{version}-1,a@example.com,1.00,2024-05-01,\n\
         O-{file}{version}-2,b@example.com,2.00,2024-05-0{version},\n"
    )
}

#[tokio::test]
async fn versions_of_keys_delivered_in_any_order_leave_the_newest_of_each_key() {
    for seed in [1_u64, 7, 42, 1234] {
        let chain = Chain::new("");
        // Three keys, three versions each, landed in order: each landing's event has a later
        // sequencer. A local folder keeps only the last bytes of a key (S3 without versioning).
        for version in 1..=3 {
            for file in ["a", "b", "c"] {
                chain
                    .land(
                        &format!("raw/orders/{file}.csv"),
                        &version_of(file, version),
                    )
                    .await;
            }
        }
        let mut events: Vec<BusEvent> = std::iter::from_fn(|| chain.bus.pop()).collect();
        assert_eq!(events.len(), 9);
        // A deterministic shuffle (xorshift).
        let mut x = seed;
        for i in (1..events.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            events.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap());
        }
        for event in &events {
            assert_eq!(chain.deliver(event, 1, false).await, 0);
            assert_eq!(chain.drain(1, false).await, 0);
        }
        let ids = chain.order_ids().await;
        let mut expected: Vec<String> = ["a", "b", "c"]
            .iter()
            .flat_map(|f| [format!("O-{f}3-1"), format!("O-{f}3-2")])
            .collect();
        expected.sort();
        assert_eq!(ids, expected, "seed {seed}");
        // Readers of the partition folders (Athena) see the live files only.
        let log = commits(&chain.ctx.storage, BUCKET, "orders").await.unwrap();
        let mut live = live_files(&log);
        live.sort();
        let visible: Vec<String> = chain
            .keys("products/orders/")
            .await
            .into_iter()
            .filter(|k| k.starts_with("products/orders/order_day="))
            .collect();
        assert_eq!(visible, live, "seed {seed}");
        // Stale deliveries were dropped at ingest, or at the commit.
        let stale = chain
            .runs("ingest")
            .await
            .iter()
            .chain(chain.runs("contract-check").await.iter())
            .filter(|r| r.notes.iter().any(|n| n.starts_with("stale:")))
            .count();
        assert_eq!(log.len() + stale, 9, "seed {seed}: commits and stale runs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_writers_at_once_on_one_product_lose_no_commit() {
    let chain = Chain::new("");
    // Ten files, each of its own day: ten partitions for the catalog's writers to add at once.
    for i in 0..10 {
        chain
            .land(
                &format!("raw/orders/f{i}.csv"),
                &format!("{HEADER}O-f{i},a@example.com,1.00,2024-05-{:02},\n", 10 + i),
            )
            .await;
    }
    chain.drain_at_once().await;
    let log = commits(&chain.ctx.storage, BUCKET, "orders").await.unwrap();
    assert_eq!(log.len(), 10);
    let slots: Vec<String> = log.iter().map(|(k, _)| k.clone()).collect();
    let expected: Vec<String> = (1..=10)
        .map(|n| format!("products/orders/_commits/{n:020}.json"))
        .collect();
    assert_eq!(slots, expected, "one slot each, none lost or skipped");
    assert_eq!(chain.order_ids().await.len(), 10);
    // The catalog's compare-and-swap writers lost no partition either.
    let partitions = chain
        .ctx
        .catalog
        .partitions("shop_db", "orders")
        .await
        .unwrap();
    assert_eq!(partitions.len(), 10);
}

#[tokio::test]
async fn an_input_that_keeps_failing_is_refused_after_its_attempts() {
    let chain = Chain::new("max_attempts = 3");
    chain.land("raw/orders/day1.csv", DAY1).await;
    // The staged zone cannot be written: every attempt of ingest fails.
    *chain.fault.always.lock().unwrap() = Some("staged/".into());
    let event = chain.bus.pop().unwrap();
    // Lambda's first try and two retries fail ...
    assert_eq!(chain.deliver(&event, 1, false).await, 3);
    // ... and the next delivery of the event (EventBridge's retry, or the reconciler) refuses it.
    let outcome = handle_any(
        &chain.ctx,
        tessera_core::routing::Function::Ingest,
        &event.to_json(),
    )
    .await
    .unwrap();
    let run = &outcome.runs[0];
    assert_eq!(run.status, RunStatus::Quarantined);
    assert!(
        run.notes[0].starts_with("gave up after 3 attempts: ")
            && run.notes[0].contains("put staged/orders/day1-")
            && run.notes[0].ends_with("the store refuses it"),
        "{:?}",
        run.notes
    );
    let report = chain
        .ctx
        .storage
        .get(BUCKET, &run.outputs[0])
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["input"], "raw/orders/day1.csv");
    let failed: Vec<BusEvent> = std::iter::from_fn(|| chain.bus.pop())
        .filter(|e| e.detail_type == tessera_core::events::INPUT_FAILED)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail["attempts"], 3);
    assert_eq!(failed[0].detail["key"], "raw/orders/day1.csv");
    // Nothing partial: no staged object, no product, no attempt count; the raw file is kept.
    assert!(chain.keys("staged/").await.is_empty());
    assert!(chain.keys("products/").await.is_empty());
    assert!(chain.keys("runs/orders/_attempts/").await.is_empty());
    assert_eq!(chain.keys("raw/").await, ["raw/orders/day1.csv"]);
    // Delivered again, it stays refused and costs nothing.
    *chain.fault.always.lock().unwrap() = None;
    let again = handle_any(
        &chain.ctx,
        tessera_core::routing::Function::Ingest,
        &event.to_json(),
    )
    .await
    .unwrap();
    assert_eq!(again.runs[0].status, RunStatus::Skipped);
    assert!(chain.keys("staged/").await.is_empty());
}

/// Ingest of a landed file after three attempts that never reported back (killed: out of memory,
/// a timeout), the last of them started `ago`.
async fn ingest_after_crashes(ago: chrono::TimeDelta) -> (Chain, tessera_core::runs::RunRecord) {
    let chain = Chain::new("");
    chain.land("raw/orders/day1.csv", DAY1).await;
    let event = chain.bus.pop().unwrap();
    let version =
        serde_json::from_value::<tessera_core::events::ObjectCreated>(event.detail.clone())
            .unwrap()
            .version();
    let id = tessera_core::keys::input_id(BUCKET, "raw/orders/day1.csv", &version);
    let key = tessera_core::delivery::attempts_key("orders", "ingest", &id);
    let crashed = tessera_core::delivery::Attempts {
        attempts: 3,
        last_error: None,
        started_at: chrono::Utc::now() - ago,
    };
    tessera_core::delivery::record_attempts(&chain.ctx.storage, BUCKET, &key, &crashed)
        .await
        .unwrap();
    let outcome = handle_any(
        &chain.ctx,
        tessera_core::routing::Function::Ingest,
        &event.to_json(),
    )
    .await
    .unwrap();
    let run = outcome.runs[0].clone();
    (chain, run)
}

#[tokio::test]
async fn an_input_whose_attempts_crashed_is_refused_once_they_timed_out() {
    // The last attempt may still be running: a delivery now works on the input.
    let (_, run) = ingest_after_crashes(chrono::TimeDelta::zero()).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    // Past Lambda's longest timeout, it cannot be: the input is refused.
    let (chain, run) = ingest_after_crashes(chrono::TimeDelta::minutes(16)).await;
    assert_eq!(run.status, RunStatus::Quarantined);
    assert_eq!(
        run.notes,
        ["gave up after 3 attempts: the function did not finish (a crash or a timeout)"]
    );
    assert!(chain.keys("staged/").await.is_empty());
}

#[tokio::test]
async fn lost_events_are_found_by_the_reconciler_and_re_driven() {
    use tessera_core::reconcile;
    let chain = Chain::new("");
    let files: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    for file in &files {
        chain
            .land(&format!("raw/orders/{file}.csv"), &version_of(file, 1))
            .await;
    }
    // Events are lost at every hop: two raw ones, then one staged and one clean one.
    let mut lost = 0;
    let mut seen = BTreeMap::<&str, usize>::new();
    while let Some(event) = chain.bus.pop() {
        let key = event.detail["object"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let zone = ["raw/", "staged/", "clean/"]
            .into_iter()
            .find(|z| key.starts_with(z));
        if let Some(zone) = zone {
            let n = seen.entry(zone).or_default();
            *n += 1;
            let drop = match zone {
                "raw/" => *n <= 2,
                _ => *n == 1,
            };
            if drop {
                lost += 1;
                continue;
            }
        }
        assert_eq!(chain.deliver(&event, 1, false).await, 0);
    }
    assert_eq!(lost, 4);
    assert_eq!(chain.order_ids().await.len(), 2 * (6 - 4));

    let unfinished = reconcile::find(&chain.ctx).await.unwrap();
    let mut found: Vec<(&str, &str)> = unfinished
        .iter()
        .map(|u| (u.function.name(), u.key.split('-').next().unwrap_or(&u.key)))
        .collect();
    found.sort();
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        found.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        ["clean", "contract-check", "ingest", "ingest"]
    );
    reconcile::redrive(chain.bus.as_ref(), &unfinished)
        .await
        .unwrap();
    assert_eq!(chain.drain(1, false).await, 0);
    assert_eq!(chain.order_ids().await.len(), 12);
    assert!(reconcile::find(&chain.ctx).await.unwrap().is_empty());
    assert_eq!(
        commits(&chain.ctx.storage, BUCKET, "orders")
            .await
            .unwrap()
            .len(),
        6
    );
}
