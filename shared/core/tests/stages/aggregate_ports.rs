//! aggregate over input ports: joins across domains, window functions, columns mapped by the
//! port, pinned contract majors, the domains a process serves, and the push-down to Athena.

use std::sync::{Arc, Mutex};

use arrow::array::{Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use tessera_core::Context;
use tessera_core::context::Embedded;
use tessera_core::error::Result;
use tessera_core::events::ProductPublished;
use tessera_core::events::{CONTRACT_VIOLATED, ContractViolated, PRODUCT_PUBLISHED};
use tessera_core::mesh::Mesh;
use tessera_core::publish;
use tessera_core::query::PushDown;
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{Fx, VERSION, assert_table, lines};

const CRM_BUCKET: &str = "crm-bucket";
const SHOP_BUCKET: &str = crate::support::BUCKET;

fn customers_contract(version: &str) -> String {
    format!(
        r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customers
version: {version}
status: active
schema:
  - name: customers
    properties:
      - name: customer_id
        logicalType: string
        required: true
        primaryKey: true
      - name: tier
        logicalType: string
      - name: region
        logicalType: string
"#
    )
}

const SALES_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:sales
version: 1.0.0
status: active
schema:
  - name: sales
    properties:
      - name: sale_id
        logicalType: string
        required: true
        primaryKey: true
      - name: customer_id
        logicalType: string
        required: true
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
        required: true
      - name: sale_day
        logicalType: date
        required: true
"#;

const TIER_REVENUE_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:tier_revenue
version: 1.0.0
status: active
schema:
  - name: tier_revenue
    properties:
      - name: sale_day
        logicalType: date
        required: true
      - name: segment
        logicalType: string
      - name: revenue
        logicalType: number
        physicalType: decimal(12,2)
        required: true
      - name: running_revenue
        logicalType: number
        physicalType: decimal(14,2)
        required: true
      - name: day_rank
        logicalType: integer
        physicalType: bigint
        required: true
"#;

/// Revenue per day and customer segment, the segment's running total, and each segment's rank
/// within its day: a join across domains and two window functions.
const TIER_REVENUE_SQL: &str = "\
SELECT s.sale_day, b.segment, SUM(s.amount) AS revenue, \
       SUM(SUM(s.amount)) OVER (PARTITION BY b.segment ORDER BY s.sale_day) AS running_revenue, \
       RANK() OVER (PARTITION BY s.sale_day ORDER BY SUM(s.amount) DESC) AS day_rank \
FROM sales s JOIN buyers b ON s.customer_id = b.customer_id \
GROUP BY s.sale_day, b.segment ORDER BY s.sale_day, b.segment";

/// The port most tests use: pinned to major 1, two columns mapped.
const PORT: &str = "major = 1\ncolumns = { customer_id = \"customer_id\", segment = \"tier\" }";

/// The products of both domains; `port` is the input port's settings besides its product and
/// table name.
fn products(sql: &str, port: &str, engine: &str) -> String {
    format!(
        r#"
[[domains.products]]
name = "sales"
contract = "sales.odcs.yaml"
source = {{ format = "csv" }}

[[domains.products.aggregations]]
name = "tier_revenue"
contract = "tier_revenue.odcs.yaml"
sql = "{sql}"
{engine}

[[domains.products.aggregations.inputs]]
product = "crm.customers"
as = "buyers"
{port}

[[domains]]
name = "crm"
description = "Who buys."
bucket = "{CRM_BUCKET}"

[[domains.products]]
name = "customers"
contract = "customers.odcs.yaml"
source = {{ format = "ndjson" }}
"#
    )
}

fn fx(sql: &str, port: &str, engine: &str) -> Fx {
    Fx::new(
        &products(sql, port, engine),
        &[
            ("sales.odcs.yaml", SALES_CONTRACT),
            ("customers.odcs.yaml", &customers_contract("1.4.0")),
            ("tier_revenue.odcs.yaml", TIER_REVENUE_CONTRACT),
        ],
    )
}

/// Takes a raw file of `bucket` through ingest, clean and contract-check with `ctx`; returns the
/// publication.
async fn publish(emb: &Embedded, bucket: &str, key: &str, data: &str) -> ProductPublished {
    let ctx = &emb.context;
    ctx.storage
        .put(bucket, key, data.to_owned().into())
        .await
        .expect("put the raw file");
    let ingested = stages::ingest::run(ctx, bucket, key, VERSION)
        .await
        .expect("ingest runs");
    let cleaned = stages::clean::run(ctx, bucket, &ingested.outputs[0], VERSION)
        .await
        .expect("clean runs");
    let checked = stages::check::run(ctx, bucket, &cleaned.outputs[0], VERSION)
        .await
        .expect("contract-check runs");
    assert_eq!(checked.status, RunStatus::Published, "{checked:#?}");
    let published: Vec<ProductPublished> = std::iter::from_fn(|| emb.bus.pop())
        .filter(|e| e.detail_type == PRODUCT_PUBLISHED)
        .map(|e| serde_json::from_value(e.detail).expect("a ProductPublished detail"))
        .collect();
    assert_eq!(published.len(), 1);
    published.into_iter().next().expect("one publication")
}

const CUSTOMERS: &str = r#"{"customer_id": "C1", "tier": "gold", "region": "north"}
{"customer_id": "C2", "tier": "silver", "region": "south"}
{"customer_id": "C3", "tier": "gold", "region": "south"}
"#;

const SALES: &str = "sale_id,customer_id,amount,sale_day\n\
S1,C1,100.00,2024-05-01\n\
S2,C2,40.00,2024-05-01\n\
S3,C3,25.50,2024-05-01\n\
S4,C2,80.00,2024-05-02\n\
S5,C1,10.00,2024-05-02\n";

async fn aggregate_table(fx: &Fx) -> Vec<String> {
    let log = publish::commits(&fx.ctx().storage, SHOP_BUCKET, "tier_revenue")
        .await
        .expect("the commit log");
    let mut batches = Vec::new();
    for key in publish::live_files(&log) {
        batches.extend(fx.batches(&key).await);
    }
    lines(&batches)
}

#[tokio::test]
async fn an_aggregation_joins_another_domains_product_through_its_port() {
    let fx = fx(TIER_REVENUE_SQL, PORT, "");
    publish(&fx.emb, CRM_BUCKET, "raw/customers/c.ndjson", CUSTOMERS).await;
    let sales = publish(&fx.emb, SHOP_BUCKET, "raw/sales/s.csv", SALES).await;

    let runs = stages::aggregate::run(fx.ctx(), &sales).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Published, "{:#?}", runs[0]);
    assert_table(
        &aggregate_table(&fx).await,
        &[
            "+------------+---------+---------+-----------------+----------+",
            "| sale_day   | segment | revenue | running_revenue | day_rank |",
            "+------------+---------+---------+-----------------+----------+",
            "| 2024-05-01 | gold    | 125.50  | 125.50          | 1        |",
            "| 2024-05-01 | silver  | 40.00   | 40.00           | 2        |",
            "| 2024-05-02 | gold    | 10.00   | 135.50          | 2        |",
            "| 2024-05-02 | silver  | 80.00   | 120.00          | 1        |",
            "+------------+---------+---------+-----------------+----------+",
        ],
    );
}

#[tokio::test]
async fn a_publication_of_the_upstream_domain_recomputes_the_aggregation() {
    let fx = fx(TIER_REVENUE_SQL, PORT, "");
    publish(&fx.emb, SHOP_BUCKET, "raw/sales/s.csv", SALES).await;
    // C3 moves to silver: the other domain's publication triggers the recomputation.
    let customers = publish(
        &fx.emb,
        CRM_BUCKET,
        "raw/customers/c.ndjson",
        &CUSTOMERS.replace(r#""C3", "tier": "gold""#, r#""C3", "tier": "silver""#),
    )
    .await;
    let runs = stages::aggregate::run(fx.ctx(), &customers).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].product, "tier_revenue");
    let table = aggregate_table(&fx).await;
    assert_eq!(
        table[3], "| 2024-05-01 | gold    | 100.00  | 100.00          | 1        |",
        "{table:#?}"
    );
    assert_eq!(
        table[4], "| 2024-05-01 | silver  | 65.50   | 65.50           | 2        |",
        "{table:#?}"
    );

    // A process serving only the other domain leaves the aggregation alone.
    let mut scoped = fx.ctx().clone();
    scoped.scope = Some("crm".into());
    assert!(
        stages::aggregate::run(&scoped, &customers)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_port_shows_only_the_mapped_columns_under_their_local_names() {
    let fx = fx(
        "SELECT s.sale_day, b.region AS segment, SUM(s.amount) AS revenue, \
         SUM(s.amount) AS running_revenue, 1 AS day_rank \
         FROM sales s JOIN buyers b ON s.customer_id = b.customer_id GROUP BY 1, 2",
        PORT,
        "",
    );
    publish(&fx.emb, CRM_BUCKET, "raw/customers/c.ndjson", CUSTOMERS).await;
    let sales = publish(&fx.emb, SHOP_BUCKET, "raw/sales/s.csv", SALES).await;
    let err = stages::aggregate::run(fx.ctx(), &sales).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("aggregation `tier_revenue`"), "{text}");
    assert!(text.contains("region"), "{text}");
}

#[tokio::test]
async fn an_upstream_version_of_another_major_stops_the_aggregation_with_a_report() {
    let fx = fx(TIER_REVENUE_SQL, PORT, "");
    publish(&fx.emb, CRM_BUCKET, "raw/customers/c.ndjson", CUSTOMERS).await;
    let sales = publish(&fx.emb, SHOP_BUCKET, "raw/sales/s.csv", SALES).await;
    stages::aggregate::run(fx.ctx(), &sales).await.unwrap();
    let before = aggregate_table(&fx).await;
    assert_eq!(before.len(), 8);

    // The customers team ships 2.0.0 (a breaking change) and publishes under it; the mesh of
    // this process knows the new contract, the port still says major 1.
    let root = fx._dir.path().join("mesh");
    std::fs::write(
        root.join("customers.odcs.yaml"),
        customers_contract("2.0.0"),
    )
    .unwrap();
    let toml = format!(
        "[mesh]\nname = \"test\"\npii_salt = \"pepper\"\n\n[[domains]]\nname = \"shop\"\n\
         bucket = \"{SHOP_BUCKET}\"\ndatabase = \"shop_db\"\n{}",
        products(TIER_REVENUE_SQL, PORT, "")
    );
    let mesh = Mesh::from_toml(&toml, "test", &root).expect("a pin to another major loads");
    let v2 = Context::embedded(Arc::new(mesh), &fx._dir.path().join("warehouse")).unwrap();
    let customers = publish(
        &v2,
        CRM_BUCKET,
        "raw/customers/c2.ndjson",
        r#"{"customer_id": "C1", "tier": "platinum", "region": "north"}"#,
    )
    .await;
    assert_eq!(customers.contract_version, "2.0.0");

    let runs = stages::aggregate::run(&v2.context, &customers)
        .await
        .unwrap();
    assert_eq!(runs[0].status, RunStatus::Quarantined, "{:#?}", runs[0]);
    let violation: ContractViolated = std::iter::from_fn(|| v2.bus.pop())
        .find(|e| e.detail_type == CONTRACT_VIOLATED)
        .map(|e| serde_json::from_value(e.detail).unwrap())
        .expect("ContractViolated");
    assert_eq!(violation.product, "tier_revenue");
    assert_eq!(
        violation.failed_checks,
        [
            "input.buyers: observed - (expected contract `urn:test:customers` major 1, not \
          urn:test:customers 2.0.0)"
        ]
    );
    let report = fx.json(&violation.report_key).await;
    let detail = report["report"]["checks"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("`crm.customers` version") && detail.contains("update the input port"),
        "{detail}"
    );
    // Nothing of the new major was read: the aggregate is what it was.
    assert_eq!(aggregate_table(&fx).await, before);
}

/// Plays Athena's part: records the statement and writes the result Athena would unload.
#[derive(Debug, Default)]
struct FakeAthena {
    calls: Mutex<Vec<(String, String, String)>>,
    storage: Mutex<Option<tessera_core::storage::Storage>>,
}

#[async_trait::async_trait]
impl PushDown for FakeAthena {
    async fn unload(&self, database: &str, sql: &str, output: &str) -> Result<()> {
        self.calls
            .lock()
            .expect("the calls")
            .push((database.into(), sql.into(), output.into()));
        let storage = self.storage.lock().expect("the storage").clone().unwrap();
        let prefix = output
            .split_once(SHOP_BUCKET)
            .map(|(_, p)| p.trim_start_matches('/'))
            .expect("the storage");
        let schema = Arc::new(Schema::new(vec![
            Field::new("sale_day", DataType::Date32, true),
            Field::new("segment", DataType::Utf8, true),
            Field::new("revenue", DataType::Decimal128(38, 2), true),
            Field::new("running_revenue", DataType::Decimal128(38, 2), true),
            Field::new("day_rank", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Date32Array::from(vec![19844])),
                Arc::new(StringArray::from(vec!["gold"])),
                Arc::new(
                    Decimal128Array::from(vec![12550])
                        .with_precision_and_scale(38, 2)
                        .expect("decimal"),
                ),
                Arc::new(
                    Decimal128Array::from(vec![12550])
                        .with_precision_and_scale(38, 2)
                        .expect("decimal"),
                ),
                Arc::new(Int64Array::from(vec![1])),
            ],
        )?;
        // Athena names its files without an extension.
        let mut w = storage.write_parquet(SHOP_BUCKET, &format!("{prefix}20240501_0"), schema)?;
        w.write(&batch).await?;
        w.finish().await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_aggregation_pushed_down_to_athena_is_unloaded_read_back_and_published() {
    let mut fx = fx(TIER_REVENUE_SQL, PORT, "engine = \"athena\"");
    let athena = Arc::new(FakeAthena::default());
    *athena.storage.lock().unwrap() = Some(fx.ctx().storage.clone());
    fx.emb.context.pushdown = Some(athena.clone());
    publish(&fx.emb, CRM_BUCKET, "raw/customers/c.ndjson", CUSTOMERS).await;
    let sales = publish(&fx.emb, SHOP_BUCKET, "raw/sales/s.csv", SALES).await;

    let runs = stages::aggregate::run(fx.ctx(), &sales).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Published, "{:#?}", runs[0]);
    let calls = athena.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (database, sql, output) = &calls[0];
    assert_eq!(database, "shop_db");
    assert_eq!(
        sql,
        &format!(
            "WITH \"sales\" AS (SELECT * FROM \"shop_db\".\"sales\"), \"buyers\" AS (SELECT \
             \"customer_id\" AS \"customer_id\", \"tier\" AS \"segment\" FROM \"crm\".\"customers\")\n\
             {TIER_REVENUE_SQL}"
        )
    );
    assert!(
        output.ends_with(&format!(
            "{SHOP_BUCKET}/products/tier_revenue/_athena/{}/",
            runs[0].run_id
        )),
        "{output}"
    );
    assert_table(
        &aggregate_table(&fx).await,
        &[
            "+------------+---------+---------+-----------------+----------+",
            "| sale_day   | segment | revenue | running_revenue | day_rank |",
            "+------------+---------+---------+-----------------+----------+",
            "| 2024-05-01 | gold    | 125.50  | 125.50          | 1        |",
            "+------------+---------+---------+-----------------+----------+",
        ],
    );
}

#[test]
fn ports_are_checked_when_the_mesh_loads() {
    let load = |port: &str, customers_version: &str| {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("sales.odcs.yaml", SALES_CONTRACT.to_owned()),
            ("customers.odcs.yaml", customers_contract(customers_version)),
            ("tier_revenue.odcs.yaml", TIER_REVENUE_CONTRACT.to_owned()),
        ] {
            std::fs::write(dir.path().join(path), text).unwrap();
        }
        let toml = format!(
            "[mesh]\nname = \"test\"\n\n[[domains]]\nname = \"shop\"\nbucket = \"{SHOP_BUCKET}\"\n{}",
            products(TIER_REVENUE_SQL, port, "")
        );
        Mesh::from_toml(&toml, "mesh.toml", dir.path()).map(|_| ())
    };
    assert!(load(PORT, "1.0.0").is_ok());
    let error = |port: &str, version: &str| load(port, version).unwrap_err().to_string();
    let e = error("columns = { segment = \"tier\" }", "1.0.0");
    assert!(
        e.contains("input `crm.customers`") && e.contains("add `major = 1`"),
        "{e}"
    );
    let e = error(
        &format!("{PORT}\ncontract_id = \"urn:test:other\""),
        "1.0.0",
    );
    assert!(e.contains("pinned to contract `urn:test:other`"), "{e}");
    let e = error("major = 1\ncolumns = { segment = \"tiers\" }", "1.0.0");
    assert!(
        e.contains("column `segment` maps `tiers`, which contract `urn:test:customers` 1.0.0"),
        "{e}"
    );
    // The pinned major is not the upstream's current one: the mapping is not checked against
    // a contract it was not written for; the mesh loads and aggregate stops at run time.
    assert!(load("major = 1\ncolumns = { segment = \"tiers\" }", "2.0.0").is_ok());
}

#[test]
fn aggregations_reading_each_other_in_a_cycle_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in [
        ("sales.odcs.yaml", SALES_CONTRACT),
        ("tier_revenue.odcs.yaml", TIER_REVENUE_CONTRACT),
    ] {
        std::fs::write(dir.path().join(path), text).unwrap();
    }
    let aggregation = |name: &str, reads: &str| {
        format!(
            "[[domains.products.aggregations]]\nname = \"{name}\"\n\
             contract = \"tier_revenue.odcs.yaml\"\nsql = \"SELECT * FROM {reads}\"\n\
             [[domains.products.aggregations.inputs]]\nproduct = \"{reads}\"\n"
        )
    };
    let toml = format!(
        "[mesh]\nname = \"test\"\n\n[[domains]]\nname = \"shop\"\n\
         [[domains.products]]\nname = \"sales\"\ncontract = \"sales.odcs.yaml\"\n\
         source = {{ format = \"csv\" }}\n{}{}",
        aggregation("first", "second"),
        aggregation("second", "first")
    );
    let e = Mesh::from_toml(&toml, "mesh.toml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cycle: shop.first → shop.second → shop.first"),
        "{e}"
    );
}
