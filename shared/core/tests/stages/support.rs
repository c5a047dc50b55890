//! The fixture every test builds: a mesh written into a temporary directory, embedded ports over
//! a warehouse next to it, and small readers for what the stages leave in the bucket.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::Value;
use tessera_core::Context;
use tessera_core::context::Embedded;
use tessera_core::events::{BusEvent, ObjectCreated, PRODUCT_PUBLISHED, ProductPublished};
use tessera_core::mesh::Mesh;
use tessera_core::runs::{RunRecord, RunStatus};
use tessera_core::stages;

/// The bucket of the test domain `shop`.
pub const BUCKET: &str = "shop-bucket";

/// Version handed to the zone stages (any text: it only feeds the run ids).
pub const VERSION: &str = "v1";

/// The `orders` contract most tests use: a primary key, a personal column, an exact decimal,
/// a date partition.
pub const ORDERS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
name: orders
version: 2.1.0
status: active
domain: shop
description:
  purpose: Orders, one row per order.
team:
  name: Shop team
  members:
    - username: steward@example.com
      role: data steward
    - username: shop-owner@example.com
      role: owner
schema:
  - name: orders
    description: Customer orders.
    properties:
      - name: order_id
        description: Business key of the order.
        logicalType: string
        required: true
        primaryKey: true
        classification: internal
      - name: email
        description: E-mail of the customer.
        logicalType: string
        classification: pii
      - name: amount
        description: Order total.
        logicalType: number
        physicalType: decimal(10,2)
        required: true
        classification: internal
      - name: order_day
        description: Day of the order.
        logicalType: date
        required: true
        partitioned: true
        partitionKeyPosition: 1
      - name: note
        description: Free text.
        logicalType: string
"#;

/// The `orders` product, read from CSV, with the `orders` contract.
pub const ORDERS_CSV: &str = r#"
[[domains.products]]
name = "orders"
contract = "orders.odcs.yaml"
source = { format = "csv" }
"#;

/// A mesh in a temporary directory and embedded ports over it.
#[derive(Debug)]
pub struct Fx {
    /// Keeps the directory alive for the test.
    pub _dir: tempfile::TempDir,
    /// The embedded ports.
    pub emb: Embedded,
}

impl Fx {
    /// A mesh with one domain `shop` (bucket [`BUCKET`], database `shop_db`) holding `products`
    /// (TOML `[[domains.products]]` tables), with `files` (path, text) written next to it.
    pub fn new(products: &str, files: &[(&str, &str)]) -> Fx {
        Fx::with_settings("", products, files)
    }

    /// [`Fx::new`] with more `[mesh]` settings, e.g. `policy = "policy.yaml"`.
    pub fn with_settings(settings: &str, products: &str, files: &[(&str, &str)]) -> Fx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().join("mesh");
        std::fs::create_dir_all(&root).expect("mesh directory");
        for (path, text) in files {
            std::fs::write(root.join(path), text).expect("write mesh file");
        }
        let toml = format!(
            "[mesh]\nname = \"test\"\npii_salt = \"pepper\"\n{settings}\n\n\
             [[domains]]\nname = \"shop\"\ndescription = \"The shop.\"\n\
             bucket = \"{BUCKET}\"\ndatabase = \"shop_db\"\n{products}"
        );
        let mesh = Mesh::from_toml(&toml, "test", &root).expect("mesh loads");
        let emb = Context::embedded(Arc::new(mesh), &dir.path().join("warehouse"))
            .expect("embedded ports");
        Fx { _dir: dir, emb }
    }

    /// The `orders` product from CSV, with extra product settings appended to its table.
    pub fn orders(settings: &str) -> Fx {
        Fx::new(
            &format!("{ORDERS_CSV}{settings}\n"),
            &[("orders.odcs.yaml", ORDERS_CONTRACT)],
        )
    }

    /// The context to hand to stages.
    pub fn ctx(&self) -> &Context {
        &self.emb.context
    }

    /// Writes an object into the bucket.
    pub async fn put(&self, key: &str, data: impl Into<Bytes>) {
        self.ctx()
            .storage
            .put(BUCKET, key, data.into())
            .await
            .expect("put object");
    }

    /// Lands a raw file and ingests it.
    pub async fn ingest(&self, key: &str, data: impl Into<Bytes>) -> RunRecord {
        self.put(key, data).await;
        stages::ingest::run(self.ctx(), BUCKET, key, VERSION)
            .await
            .expect("ingest runs")
    }

    /// Lands a raw file, ingests and cleans it; returns the clean run.
    pub async fn ingest_clean(&self, key: &str, data: impl Into<Bytes>) -> RunRecord {
        let ingested = self.ingest(key, data).await;
        assert_eq!(ingested.status, RunStatus::Succeeded, "{ingested:#?}");
        stages::clean::run(self.ctx(), BUCKET, &ingested.outputs[0], VERSION)
            .await
            .expect("clean runs")
    }

    /// Lands a raw file and takes it through ingest, clean and contract-check; returns the
    /// check run.
    pub async fn publish(&self, key: &str, data: impl Into<Bytes>) -> RunRecord {
        let cleaned = self.ingest_clean(key, data).await;
        assert_eq!(cleaned.status, RunStatus::Succeeded, "{cleaned:#?}");
        stages::check::run(self.ctx(), BUCKET, &cleaned.outputs[0], VERSION)
            .await
            .expect("contract-check runs")
    }

    /// Every record batch of a Parquet object.
    pub async fn batches(&self, key: &str) -> Vec<RecordBatch> {
        read_batches(self.ctx(), key).await
    }

    /// A Parquet object as a pretty-printed table, one string per line.
    pub async fn table(&self, key: &str) -> Vec<String> {
        lines(&self.batches(key).await)
    }

    /// The bytes of an object.
    pub async fn get(&self, key: &str) -> Bytes {
        self.ctx()
            .storage
            .get(BUCKET, key)
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"))
    }

    /// A JSON object.
    pub async fn json(&self, key: &str) -> Value {
        serde_json::from_slice(&self.get(key).await).expect("JSON object")
    }

    /// An NDJSON object, one value per line.
    pub async fn ndjson(&self, key: &str) -> Vec<Value> {
        let text = self.get(key).await;
        std::str::from_utf8(&text)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    /// Keys under a prefix, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctx()
            .storage
            .list(BUCKET, prefix)
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.location.to_string())
            .collect()
    }

    /// The check named `name` in the check report a contract-check run of `orders` wrote (the
    /// published version's, or the refusal's).
    pub async fn check(&self, run: &RunRecord, name: &str) -> Value {
        let key = run
            .outputs
            .iter()
            .find(|k| k.ends_with("report.json"))
            .cloned()
            .unwrap_or_else(|| format!("products/orders/_reports/{}.json", run.run_id));
        let report = self.json(&key).await;
        let checks = report["report"]["checks"].as_array().expect("checks");
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check `{name}` in {report}"))
            .clone()
    }

    /// Drains the in-process bus and keeps the events of one detail type.
    pub fn events(&self, detail_type: &str) -> Vec<BusEvent> {
        std::iter::from_fn(|| self.emb.bus.pop())
            .filter(|e| e.detail_type == detail_type)
            .collect()
    }

    /// The `DataProductPublished` details on the bus (drains it).
    pub fn published(&self) -> Vec<ProductPublished> {
        self.events(PRODUCT_PUBLISHED)
            .into_iter()
            .map(|e| serde_json::from_value(e.detail).expect("ProductPublished detail"))
            .collect()
    }
}

/// Every record batch of a Parquet object of [`BUCKET`], through any context's storage.
pub async fn read_batches(ctx: &Context, key: &str) -> Vec<RecordBatch> {
    ctx.storage
        .read_parquet(BUCKET, key)
        .await
        .expect("open parquet")
        .try_collect()
        .await
        .expect("read parquet")
}

/// Batches pretty-printed, one string per line.
pub fn lines(batches: &[RecordBatch]) -> Vec<String> {
    pretty_format_batches(batches)
        .expect("pretty print")
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Asserts a pretty-printed table, showing both in full when they differ.
#[track_caller]
pub fn assert_table(actual: &[String], expected: &[&str]) {
    assert_eq!(
        actual,
        expected,
        "\nexpected:\n{}\nactual:\n{}\n",
        expected.join("\n"),
        actual.join("\n")
    );
}

/// The `Object Created` event S3 would send for an object, as a function receives it.
pub fn object_created(key: &str, size: u64) -> Value {
    ObjectCreated::event(BUCKET, key, size, Some("\"etag-1\"".into())).to_json()
}

/// Whether a typed cell is what a case expects: the same rendered value, or a reason that names
/// the column first and then says what is wrong with the value.
pub fn cell_matches(
    column: &str,
    actual: &Result<String, String>,
    expected: &Result<&str, &str>,
) -> bool {
    match (actual, expected) {
        (Ok(a), Ok(e)) => a == e,
        (Err(a), Err(e)) => a.starts_with(&format!("column `{column}`: ")) && a.contains(e),
        _ => false,
    }
}
