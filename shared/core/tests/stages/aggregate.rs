//! aggregate: SQL over the published parent, cast to the aggregate's contract, published whole.

use arrow::datatypes::DataType;
use tessera_core::ErrorKind;
use tessera_core::events::{CONTRACT_VIOLATED, ContractViolated, ProductPublished};
use tessera_core::function::{handle, stage};
use tessera_core::publish::{self, CommitMode};
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{BUCKET, Fx, ORDERS_CONTRACT, assert_table, lines};

const DAILY_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:daily_totals
version: 1.0.0
status: active
schema:
  - name: daily_totals
    properties:
      - name: order_day
        description: Day of the orders.
        logicalType: date
        required: true
        primaryKey: true
      - name: orders
        logicalType: integer
        physicalType: int
        required: true
        logicalTypeOptions:
          minimum: 1
      - name: revenue
        logicalType: number
        physicalType: decimal(12,2)
        required: true
"#;

const HEADER: &str = "order_id,email,amount,order_day,note\n";

/// `orders` with the `daily_totals` aggregation running `sql`; `daily` is its contract.
fn with_aggregate(sql: &str, daily: &str) -> Fx {
    Fx::new(
        &format!(
            r#"
[[domains.products]]
name = "orders"
contract = "orders.odcs.yaml"
source = {{ format = "csv" }}

[[domains.products.aggregations]]
name = "daily_totals"
contract = "daily_totals.odcs.yaml"
sql = "{sql}"
"#
        ),
        &[
            ("orders.odcs.yaml", ORDERS_CONTRACT),
            ("daily_totals.odcs.yaml", daily),
        ],
    )
}

const DAILY_SQL: &str = "SELECT order_day, COUNT(*) AS orders, SUM(amount) AS revenue \
                         FROM orders GROUP BY order_day ORDER BY order_day";

/// Publishes a raw file of orders and returns the `DataProductPublished` it announced.
async fn publish_orders(fx: &Fx, key: &str, rows: &str) -> ProductPublished {
    let run = fx.publish(key, format!("{HEADER}{rows}")).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let mut events = fx.published();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

#[tokio::test]
async fn aggregates_are_recomputed_cast_to_their_contract_and_overwritten() {
    let fx = with_aggregate(DAILY_SQL, DAILY_CONTRACT);
    let first = publish_orders(
        &fx,
        "raw/orders/day1.csv",
        "O-1,,10.00,2024-05-01,\nO-2,,5.50,2024-05-01,\nO-3,,1.25,2024-05-02,\n",
    )
    .await;
    let runs = stages::aggregate::run(fx.ctx(), &first)
        .await
        .expect("aggregate runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Published, "{:#?}", runs[0]);
    assert_eq!(
        (runs[0].product.as_str(), runs[0].rows_out),
        ("daily_totals", 2)
    );
    let announced = fx.published();
    assert_eq!(announced.len(), 1);
    assert_eq!(
        (announced[0].product.as_str(), announced[0].stage.as_str()),
        ("daily_totals", "aggregate")
    );
    assert_eq!(announced[0].location, "products/daily_totals/");

    let second = publish_orders(
        &fx,
        "raw/orders/day2.csv",
        "O-4,,2.00,2024-05-02,\nO-5,,3.00,2024-05-03,\n",
    )
    .await;
    let runs = stages::aggregate::run(fx.ctx(), &second)
        .await
        .expect("aggregate runs");
    assert_eq!(runs[0].status, RunStatus::Published);
    assert_eq!(runs[0].rows_out, 3);

    let log = publish::commits(&fx.ctx().storage, BUCKET, "daily_totals")
        .await
        .expect("log");
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|(_, c)| c.mode == CommitMode::Overwrite));
    assert_eq!(log[1].1.source, second.commit_key);
    let live = publish::live_files(&log);
    assert_eq!(live, log[1].1.files, "only the last version is live");
    assert!(log[0].1.files.iter().all(|f| !live.contains(f)));

    let mut batches = Vec::new();
    for file in &live {
        batches.extend(fx.batches(file).await);
    }
    // Over both parent versions; COUNT (Int64) and SUM (decimal(20,2)) take the contract's
    // int and decimal(12,2).
    assert_table(
        &lines(&batches),
        &[
            "+------------+--------+---------+",
            "| order_day  | orders | revenue |",
            "+------------+--------+---------+",
            "| 2024-05-01 | 2      | 15.50   |",
            "| 2024-05-02 | 2      | 3.25    |",
            "| 2024-05-03 | 1      | 3.00    |",
            "+------------+--------+---------+",
        ],
    );
    let schema = batches[0].schema();
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Date32,
            DataType::Int32,
            DataType::Decimal128(12, 2)
        ]
    );

    // The same publication again: the version exists, nothing is committed twice; the run says
    // the version is published, as the first did (they share one record).
    let again = stages::aggregate::run(fx.ctx(), &second)
        .await
        .expect("aggregate runs");
    assert_eq!(again[0].status, RunStatus::Published);
    assert!(
        again[0]
            .notes
            .iter()
            .any(|n| n.ends_with("was committed by another delivery")),
        "{:?}",
        again[0].notes
    );
    assert_eq!(
        publish::commits(&fx.ctx().storage, BUCKET, "daily_totals")
            .await
            .expect("log")
            .len(),
        2
    );
}

#[tokio::test]
async fn an_aggregate_that_breaks_its_contract_is_not_published() {
    let strict = DAILY_CONTRACT.replace("minimum: 1", "minimum: 3");
    let fx = with_aggregate(DAILY_SQL, &strict);
    let published = publish_orders(
        &fx,
        "raw/orders/day1.csv",
        "O-1,,10.00,2024-05-01,\nO-2,,5.50,2024-05-01,\n",
    )
    .await;
    let runs = stages::aggregate::run(fx.ctx(), &published)
        .await
        .expect("aggregate runs");
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Quarantined, "{run:#?}");
    assert_eq!(run.notes, ["orders.minimum: observed 1 (expected = 0)"]);
    let report_key = format!(
        "quarantine/daily_totals/aggregate/{}/report.json",
        run.run_id
    );
    assert_eq!(run.outputs, std::slice::from_ref(&report_key));
    let report = fx.json(&report_key).await;
    assert_eq!(report["passed"], false);
    assert_eq!(report["input"], published.commit_key.as_str());
    assert!(
        publish::commits(&fx.ctx().storage, BUCKET, "daily_totals")
            .await
            .expect("log")
            .is_empty()
    );
    assert!(fx.keys("products/daily_totals/").await.is_empty());
    let violations: Vec<ContractViolated> = fx
        .events(CONTRACT_VIOLATED)
        .into_iter()
        .map(|e| serde_json::from_value(e.detail).expect("detail"))
        .collect();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].product, "daily_totals");
    assert_eq!(
        violations[0].failed_checks,
        ["orders.minimum: observed 1 (expected = 0)"]
    );
}

#[tokio::test]
async fn handler_quarantines_an_aggregation_whose_sql_fails() {
    let fx = with_aggregate(
        "SELECT order_day, COUNT(*) AS orders, SUM(no_such_column) AS revenue FROM orders GROUP BY order_day",
        DAILY_CONTRACT,
    );
    let published = publish_orders(&fx, "raw/orders/day1.csv", "O-1,,1.00,2024-05-01,\n").await;
    let event = published.event().to_json();
    let outcome = handle::<stage::Aggregate>(fx.ctx(), &event)
        .await
        .expect("bad SQL is not retried");
    assert_eq!(outcome.runs.len(), 1);
    let run = &outcome.runs[0];
    assert_eq!(run.status, RunStatus::Quarantined);
    assert!(
        run.notes[0].starts_with("configuration: aggregation `daily_totals`: "),
        "{:?}",
        run.notes
    );
    assert!(run.notes[0].contains("no_such_column"), "{:?}", run.notes);
    let report = fx.json(&run.outputs[0]).await;
    assert_eq!(report["stage"], "aggregate");
    assert_eq!(report["input"], published.commit_key.as_str());
    assert!(fx.keys("products/daily_totals/").await.is_empty());

    // An object creation is not for aggregate: ignored.
    let created = crate::support::object_created("raw/orders/x.csv", 1);
    let outcome = handle::<stage::Aggregate>(fx.ctx(), &created)
        .await
        .expect("ignored");
    assert!(outcome.runs.is_empty());
    assert_eq!(outcome.ignored, ["`Object Created` is not for `aggregate`"]);
    // A publication of a product without aggregates: nothing to do.
    let mut no_children = published.clone();
    no_children.product = "daily_totals".into();
    let outcome = handle::<stage::Aggregate>(fx.ctx(), &no_children.event().to_json())
        .await
        .expect("nothing to do");
    assert!(outcome.runs.is_empty() && outcome.ignored.is_empty());
}

#[tokio::test]
async fn an_aggregate_value_its_contract_type_cannot_hold_is_refused_not_nulled() {
    // `revenue` optional and decimal(4,2): a day's sum of 198.00 does not fit.
    let narrow = DAILY_CONTRACT.replace(
        "physicalType: decimal(12,2)\n        required: true",
        "physicalType: decimal(4,2)",
    );
    assert!(narrow.contains("decimal(4,2)") && !narrow.contains("decimal(12,2)"));
    let fx = with_aggregate(DAILY_SQL, &narrow);
    let published = publish_orders(
        &fx,
        "raw/orders/big.csv",
        "O-1,,99.00,2024-05-01,\nO-2,,99.00,2024-05-01,\n",
    )
    .await;
    let err = stages::aggregate::run(fx.ctx(), &published)
        .await
        .expect_err("198.00 does not fit decimal(4,2)");
    assert_eq!(err.kind(), ErrorKind::BadData);
    assert!(
        err.to_string()
            .starts_with("configuration: column `revenue`: "),
        "{err}"
    );
    // Through the handler: refused with the reason, not retried, nothing published.
    let outcome = handle::<stage::Aggregate>(fx.ctx(), &published.event().to_json())
        .await
        .expect("not retried");
    assert_eq!(outcome.runs[0].status, RunStatus::Quarantined);
    assert!(
        outcome.runs[0].notes[0].contains("column `revenue`"),
        "{:?}",
        outcome.runs[0].notes
    );
    assert!(fx.keys("products/daily_totals/").await.is_empty());
}
