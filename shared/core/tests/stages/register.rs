//! catalog-register: the table described from the contract, parameters, idempotent partitions.

use std::collections::BTreeMap;

use tessera_core::catalog::{Column, Partition};
use tessera_core::events::ProductPublished;
use tessera_core::function::{handle, stage};
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{Fx, assert_table};

const HEADER: &str = "order_id,email,amount,order_day,note\n";

async fn publish(fx: &Fx, key: &str, rows: &str) -> ProductPublished {
    let run = fx.publish(key, format!("{HEADER}{rows}")).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let mut events = fx.published();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn column(name: &str, data_type: &str, comment: Option<&str>) -> Column {
    Column {
        name: name.into(),
        data_type: data_type.into(),
        comment: comment.map(str::to_owned),
    }
}

fn partition(values: &[&str], location: &str) -> Partition {
    Partition {
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        location: location.into(),
    }
}

#[tokio::test]
async fn the_table_is_described_from_the_contract() {
    let fx = Fx::orders("");
    let event = publish(
        &fx,
        "raw/orders/day1.csv",
        "O-1,a@example.com,1.00,2024-05-01,\nO-2,,2.00,2024-05-02,\n",
    )
    .await;
    let run = stages::register::run(fx.ctx(), &event)
        .await
        .expect("register runs");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.stage, "catalog-register");
    assert_eq!(run.rows_in, 2);
    assert_eq!(run.outputs, ["catalog:shop_db.orders"]);
    assert_eq!(run.notes, ["2 new partitions of 2"]);

    let database = std::fs::read(fx.emb.warehouse.join("_catalog/shop_db/_database.json"))
        .expect("database created");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&database).expect("JSON"),
        serde_json::json!({"name": "shop_db", "description": "The shop."})
    );

    let table = fx
        .ctx()
        .catalog
        .get_table("shop_db", "orders")
        .await
        .expect("catalog")
        .expect("table registered");
    assert_eq!(
        (table.database.as_str(), table.name.as_str()),
        ("shop_db", "orders")
    );
    assert_eq!(
        table.description.as_deref(),
        Some("Orders, one row per order.")
    );
    assert_eq!(table.location, "s3://shop-bucket/products/orders/");
    assert_eq!(table.version, 1);
    // The partition column is a key, not a column.
    assert_eq!(
        table.columns,
        [
            column("order_id", "string", Some("Business key of the order.")),
            column("email", "string", Some("E-mail of the customer.")),
            column("amount", "decimal(10,2)", Some("Order total.")),
            column("note", "string", Some("Free text.")),
        ]
    );
    assert_eq!(
        table.partition_keys,
        [column("order_day", "date", Some("Day of the order."))]
    );
    let mut parameters = table.parameters.clone();
    let last_publish = parameters.remove("last_publish").expect("last_publish");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&last_publish).is_ok(),
        "{last_publish}"
    );
    let expected: BTreeMap<String, String> = [
        ("classification", "parquet"),
        ("owner", "shop-owner@example.com"),
        ("domain", "shop"),
        ("product", "orders"),
        ("contract_id", "urn:test:orders"),
        ("contract_version", "2.1.0"),
        ("data_classification", "internal,pii"),
        ("last_version", event.version.as_str()),
        ("quality_status", "passed"),
        ("checks_passed", "5"),
        ("checks_failed", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(parameters, expected);

    assert_eq!(
        fx.ctx()
            .catalog
            .partitions("shop_db", "orders")
            .await
            .expect("partitions"),
        [
            partition(
                &["2024-05-01"],
                "s3://shop-bucket/products/orders/order_day=2024-05-01/"
            ),
            partition(
                &["2024-05-02"],
                "s3://shop-bucket/products/orders/order_day=2024-05-02/"
            ),
        ]
    );
}

#[tokio::test]
async fn handling_the_same_event_twice_adds_partitions_once_and_writes_the_table_once() {
    let fx = Fx::orders("");
    let event = publish(
        &fx,
        "raw/orders/day1.csv",
        "O-1,,1.00,2024-05-01,\nO-2,,2.00,2024-05-02,\n",
    )
    .await;
    let json = event.event().to_json();
    let mut notes = Vec::new();
    for _ in 0..2 {
        let outcome = handle::<stage::CatalogRegister>(fx.ctx(), &json)
            .await
            .expect("invocation succeeds");
        assert_eq!(outcome.runs.len(), 1);
        assert_eq!(outcome.runs[0].status, RunStatus::Succeeded);
        notes.extend(outcome.runs[0].notes.clone());
    }
    assert_eq!(notes, ["2 new partitions of 2", "0 new partitions of 2"]);
    let catalog = &fx.ctx().catalog;
    assert_eq!(
        catalog
            .partitions("shop_db", "orders")
            .await
            .expect("p")
            .len(),
        2
    );
    let table = catalog
        .get_table("shop_db", "orders")
        .await
        .expect("t")
        .expect("t");
    // The repeated event changes nothing: the table is not written again.
    assert_eq!(table.version, 1);

    // A later version with one known and one new day.
    let later = publish(
        &fx,
        "raw/orders/day3.csv",
        "O-3,,3.00,2024-05-02,\nO-4,,4.00,2024-05-03,\n",
    )
    .await;
    let run = stages::register::run(fx.ctx(), &later)
        .await
        .expect("register");
    assert_eq!(run.notes, ["1 new partitions of 2"]);
    let table = catalog
        .get_table("shop_db", "orders")
        .await
        .expect("t")
        .expect("t");
    assert_eq!(table.version, 2);
    assert_eq!(table.parameters["last_version"], later.version);
    let days: Vec<_> = catalog
        .partitions("shop_db", "orders")
        .await
        .expect("p")
        .into_iter()
        .map(|p| p.values.join("/"))
        .collect();
    assert_eq!(days, ["2024-05-01", "2024-05-02", "2024-05-03"]);
    assert_eq!(catalog.tables().await.expect("tables").len(), 1);
}

const VISITS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:visits
version: 1.0.0
status: active
schema:
  - name: visits
    properties:
      - name: visit_id
        logicalType: string
        required: true
      - name: region
        description: Sales region.
        logicalType: string
        required: true
        partitioned: true
        partitionKeyPosition: 1
      - name: seen_at
        logicalType: timestamp
        required: true
        partitioned: true
        partitionKeyPosition: 2
      - name: pages
        logicalType: array
        items:
          logicalType: string
"#;

#[tokio::test]
async fn partition_values_are_registered_unescaped_and_timestamps_by_utc_day() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "visits"
contract = "visits.odcs.yaml"
source = { format = "csv" }
"#,
        &[("visits.odcs.yaml", VISITS_CONTRACT)],
    );
    let run = fx
        .publish(
            "raw/visits/v.csv",
            "visit_id,region,seen_at,pages\n\
             v1,EU/West,2024-05-01T23:30:00-02:00,\"[\"\"home\"\",\"\"cart\"\"]\"\n\
             v2,US:East,2024-05-01T10:00:00Z,[]\n\
             v3,US:East,2024-05-01T11:00:00Z,\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let event = fx.published().remove(0);
    // Reserved characters are escaped as `!XX`; a timestamp partitions by its UTC day.
    assert_eq!(
        event.partitions,
        [
            "region=EU!2FWest/seen_at=2024-05-02/",
            "region=US!3AEast/seen_at=2024-05-01/",
        ]
    );
    let v1 = fx
        .table(&format!(
            "products/visits/region=EU!2FWest/seen_at=2024-05-02/part-{}-0.parquet",
            run.run_id
        ))
        .await;
    assert_table(
        &v1,
        &[
            "+----------+---------+----------------------+--------------+",
            "| visit_id | region  | seen_at              | pages        |",
            "+----------+---------+----------------------+--------------+",
            "| v1       | EU/West | 2024-05-02T01:30:00Z | [home, cart] |",
            "+----------+---------+----------------------+--------------+",
        ],
    );

    stages::register::run(fx.ctx(), &event)
        .await
        .expect("register");
    let catalog = &fx.ctx().catalog;
    let table = catalog
        .get_table("shop_db", "visits")
        .await
        .expect("t")
        .expect("t");
    assert_eq!(
        table.columns,
        [
            column("visit_id", "string", None),
            column("pages", "array<string>", None),
        ]
    );
    assert_eq!(
        table.partition_keys,
        [
            column("region", "string", Some("Sales region.")),
            column("seen_at", "date", None),
        ]
    );
    assert_eq!(table.parameters["data_classification"], "");
    // The catalog holds the values themselves; only the locations are escaped.
    assert_eq!(
        catalog.partitions("shop_db", "visits").await.expect("p"),
        [
            partition(
                &["EU/West", "2024-05-02"],
                "s3://shop-bucket/products/visits/region=EU!2FWest/seen_at=2024-05-02/"
            ),
            partition(
                &["US:East", "2024-05-01"],
                "s3://shop-bucket/products/visits/region=US!3AEast/seen_at=2024-05-01/"
            ),
        ]
    );
    // Escaped folders read back: the query finds every committed file.
    let rows = tessera_core::query::query(
        fx.ctx(),
        "SELECT visit_id, region FROM shop_db.visits ORDER BY visit_id",
    )
    .await
    .expect("query over escaped partitions");
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&rows)
            .expect("print")
            .to_string(),
        "+----------+---------+\n\
         | visit_id | region  |\n\
         +----------+---------+\n\
         | v1       | EU/West |\n\
         | v2       | US:East |\n\
         | v3       | US:East |\n\
         +----------+---------+"
    );
}

#[tokio::test]
async fn handler_refuses_a_publication_of_an_unknown_product() {
    let fx = Fx::orders("");
    let mut event = publish(&fx, "raw/orders/day1.csv", "O-1,,1.00,2024-05-01,\n").await;
    event.product = "ghost".into();
    let outcome = handle::<stage::CatalogRegister>(fx.ctx(), &event.event().to_json())
        .await
        .expect("not retried");
    assert_eq!(outcome.runs[0].status, RunStatus::Quarantined);
    assert_eq!(
        outcome.runs[0].notes,
        ["bad event: no product `shop.ghost` in the mesh"]
    );
    assert!(
        fx.ctx()
            .catalog
            .get_table("shop_db", "ghost")
            .await
            .expect("catalog")
            .is_none()
    );
}

#[tokio::test]
async fn quality_status_follows_decision_times_not_arrival_order() {
    let fx = Fx::orders("");
    let published = publish(&fx, "raw/orders/day1.csv", "O-1,,1.00,2024-05-01,\n").await;
    let violation = tessera_core::events::ContractViolated {
        domain: published.domain.clone(),
        product: published.product.clone(),
        contract_id: published.contract_id.clone(),
        contract_version: published.contract_version.clone(),
        bucket: published.bucket.clone(),
        input_key: "clean/orders/day2.parquet".into(),
        quarantine_key: "quarantine/orders/contract-check/day2/data/".into(),
        report_key: "quarantine/orders/contract-check/day2/report.json".into(),
        rows: 3,
        failed_checks: vec!["orders.rowCount: observed 0 (expected > 0)".into()],
        checks: published.checks,
        run_id: "day2".into(),
        at: published.at + chrono::Duration::minutes(1),
    };
    let status = |fx: &Fx| {
        let catalog = fx.ctx().catalog.clone();
        async move {
            let t = catalog
                .get_table("shop_db", "orders")
                .await
                .unwrap()
                .unwrap();
            t.parameters["quality_status"].clone()
        }
    };
    // The later violation arrives first; the earlier publication after it.
    stages::register::record_violation(fx.ctx(), &violation)
        .await
        .unwrap();
    assert_eq!(status(&fx).await, "failed");
    stages::register::run(fx.ctx(), &published).await.unwrap();
    assert_eq!(
        status(&fx).await,
        "failed",
        "an older publication does not hide a newer refusal"
    );
    // A version decided after the violation passes again.
    let mut later = published.clone();
    later.at = violation.at + chrono::Duration::minutes(1);
    stages::register::run(fx.ctx(), &later).await.unwrap();
    assert_eq!(status(&fx).await, "passed");
    // The old violation arriving late changes nothing.
    stages::register::record_violation(fx.ctx(), &violation)
        .await
        .unwrap();
    assert_eq!(status(&fx).await, "passed");
}
