//! `tessera run` on the sample mesh: what is published, quarantined and catalogued, and a query
//! across two domains.

use arrow::array::AsArray;
use arrow::util::pretty::pretty_format_batches;
use futures::StreamExt;
use tessera_cli::commands;
use tessera_tests::embedded;

fn summary_of<'a>(s: &'a commands::RunSummary, name: &str) -> &'a commands::ProductSummary {
    s.products
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no product {name}"))
}

#[tokio::test]
async fn sample_mesh_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let s = commands::run(&emb).await.unwrap();
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(s.landed, 6);

    // name, rows in, published, dropped, quarantined, refused inputs
    let expected = [
        ("sales.orders", 19, 8, 2, 9, 0),
        ("sales.daily_revenue", 5, 5, 0, 0, 0),
        ("customers.customers", 18, 6, 2, 10, 1),
        // 13 Debezium lines: a tombstone (skipped), a malformed update (quarantined), a
        // redelivered duplicate in the second file (published twice: it is an event log).
        ("customers.customer_changes", 12, 11, 0, 1, 0),
        // The entity: one row per customer still present after the stream is applied.
        ("customers.customer_state", 4, 4, 0, 0, 0),
    ];
    for (name, rows_in, published, dropped, quarantined, refused) in expected {
        let p = summary_of(&s, name);
        assert_eq!(
            (p.rows_in, p.published, p.dropped, p.quarantined, p.refused),
            (rows_in, published, dropped, quarantined, refused),
            "{name}"
        );
        assert_eq!(
            p.rows_in,
            p.published + p.dropped + p.quarantined,
            "{name}: every row is accounted for"
        );
    }

    // The aggregate's contract has a `sql` rule; it ran on the aggregation's result.
    let sales = "tessera-sample-sales";
    let reports = emb
        .context
        .storage
        .list(sales, "products/daily_revenue/_reports/")
        .await
        .unwrap();
    // One version per version of `orders`.
    assert_eq!(reports.len(), 2);
    for meta in reports {
        let report: serde_json::Value = serde_json::from_slice(
            &emb.context
                .storage
                .get(sales, meta.location.as_ref())
                .await
                .unwrap(),
        )
        .unwrap();
        let rule = report["report"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "average_order_is_plausible")
            .unwrap_or_else(|| panic!("the sql rule is in the report: {report}"));
        assert_eq!(
            (&rule["status"], &rule["observed"]),
            (&serde_json::json!("passed"), &serde_json::json!(0.0))
        );
    }

    // Service levels from the records: met now; two days later, orders (daily, within 15
    // minutes) is overdue and the scheduled check announces it.
    let now = chrono::Utc::now();
    let reports = tessera_core::sla::evaluate_all(&emb.context, now)
        .await
        .unwrap();
    let orders = reports.iter().find(|r| r.product == "orders").unwrap();
    let statuses: Vec<(&str, tessera_core::sla::SlaStatus)> = orders
        .checks
        .iter()
        .map(|c| (c.property.as_str(), c.status))
        .collect();
    use tessera_core::sla::SlaStatus::Met;
    assert_eq!(
        statuses,
        [("latency", Met), ("frequency", Met), ("freshness", Met)],
        "{orders:#?}"
    );
    let later = now + chrono::Duration::days(2);
    let reports = tessera_core::sla::announce(&emb.context, None, later)
        .await
        .unwrap();
    let orders = reports.iter().find(|r| r.product == "orders").unwrap();
    assert_eq!(
        orders
            .breached()
            .map(|c| c.property.as_str())
            .collect::<Vec<_>>(),
        ["frequency", "freshness"]
    );
    let mut announced = Vec::new();
    while let Some(e) = emb.bus.pop() {
        if e.detail_type == tessera_core::sla::SLA_BREACHED {
            announced.push(format!("{} {}", e.detail["product"], e.detail["property"]));
        }
    }
    assert!(
        announced.contains(&"\"orders\" \"frequency\"".to_owned()),
        "{announced:?}"
    );

    // Quarantined rows carry their reasons.
    let mut reasons = Vec::new();
    for meta in emb
        .context
        .storage
        .list(sales, "quarantine/orders/ingest/")
        .await
        .unwrap()
    {
        let text = emb
            .context
            .storage
            .get(sales, meta.location.as_ref())
            .await
            .unwrap();
        for line in String::from_utf8(text.to_vec()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            reasons.push(format!(
                "line {}: {}",
                v["line"],
                v["reason"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(
        reasons,
        [
            "line 12: column `amount`: cannot read `12,50` as decimal(12,2)",
            "line 13: malformed row: 4 fields where the header has 10",
            "line 14: column `order_ts`: cannot read `not a time` as a timestamp",
        ]
    );
    // Rows refused by clean keep their values and the reason.
    let mut refused = Vec::new();
    for meta in emb
        .context
        .storage
        .list(sales, "quarantine/orders/clean/")
        .await
        .unwrap()
    {
        let mut stream = emb
            .context
            .storage
            .read_parquet(sales, meta.location.as_ref())
            .await
            .unwrap();
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            let ids = batch.column_by_name("order_id").unwrap().as_string::<i32>();
            let why = batch.column_by_name("_reason").unwrap().as_string::<i32>();
            refused.extend(
                (0..batch.num_rows()).map(|i| format!("{} {}", ids.value(i), why.value(i))),
            );
        }
    }
    assert_eq!(
        refused,
        [
            "ORD-000004 missing_customer_id",
            "ORD-000005 invalid_status",
            "ORD-000006 amount_out_of_range",
            "ORD-000011 invalid_currency",
            "ORD-000015 amount_out_of_range",
            "ORD-000016 missing_order_ts",
        ]
    );

    // The catalog has the four products, with owners and partitions.
    let catalog = commands::catalog(&emb.context).await.unwrap();
    let names: Vec<String> = catalog
        .iter()
        .map(|e| format!("{}.{}", e.table.database, e.table.name))
        .collect();
    assert_eq!(
        names,
        [
            "customers.customer_changes",
            "customers.customer_state",
            "customers.customers",
            "sales.daily_revenue",
            "sales.orders",
            "sales.segment_revenue"
        ]
    );
    let orders = &catalog[4];
    assert_eq!(orders.partitions, 2);
    assert_eq!(orders.table.parameters["owner"], "sales-data@example.com");
    assert_eq!(orders.table.partition_keys[0].name, "order_date");
    assert!(
        orders
            .table
            .columns
            .iter()
            .any(|c| c.name == "amount" && c.data_type == "decimal(12,2)")
    );
    assert_eq!(orders.table.parameters["quality_status"], "passed");
    // The second customers file broke its contract: the table says so until a version passes.
    let customers = &catalog[2];
    assert_eq!(customers.table.parameters["quality_status"], "failed");
    assert!(
        customers.table.parameters["last_violation_checks"]
            .starts_with("email_mostly_present: observed 75"),
        "{:?}",
        customers.table.parameters
    );

    // A query across two domains. E-mails are hashed the same way on both sides, so they still
    // join: 6 of the 7 orders match (one customer has no e-mail on file).
    let batches = commands::query(
        &emb.context,
        "SELECT c.segment, COUNT(*) AS orders, SUM(o.amount) AS revenue, \
                SUM(CASE WHEN o.customer_email = c.email THEN 1 ELSE 0 END) AS same_hash \
         FROM sales.orders o JOIN customers.customers c ON o.customer_id = c.customer_id \
         GROUP BY c.segment ORDER BY c.segment",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+----------+--------+---------+-----------+
| segment  | orders | revenue | same_hash |
+----------+--------+---------+-----------+
| business | 3      | 303.99  | 3         |
| consumer | 4      | 553.75  | 3         |
+----------+--------+---------+-----------+"
    );
    // The cross-domain aggregation: orders joined with the customers domain's product through
    // its pinned input port, with a running total and a rank per day (window functions).
    let batches = commands::query(
        &emb.context,
        "SELECT * FROM sales.segment_revenue ORDER BY order_date, segment, currency",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+------------+----------+----------+---------+-----------------+----------+
| order_date | segment  | currency | revenue | running_revenue | day_rank |
+------------+----------+----------+---------+-----------------+----------+
| 2024-05-01 | business | EUR      | 89.99   | 89.99           | 2        |
| 2024-05-01 | business | USD      | 15.00   | 15.00           | 1        |
| 2024-05-01 | consumer | EUR      | 430.50  | 430.50          | 1        |
| 2024-05-02 | business | USD      | 199.00  | 214.00          | 1        |
| 2024-05-02 | consumer | EUR      | 75.25   | 505.75          | 1        |
| 2024-05-02 | consumer | GBP      | 48.00   | 48.00           | 1        |
+------------+----------+----------+---------+-----------------+----------+"
    );
    // No clear-text e-mail reaches a product.
    let leaked = commands::query(
        &emb.context,
        "SELECT COUNT(*) AS n FROM sales.orders WHERE customer_email LIKE '%@%'",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&leaked)
            .unwrap()
            .to_string()
            .lines()
            .nth(3),
        Some("| 0 |")
    );

    // The CDC stream applied in source order (the second file lands after the first but holds
    // older changes): CUST-0007's FR (LSN 2400, first file) beats BE (LSN 1400, second file),
    // CUST-0002's delete removes it, the redelivered update of CUST-0001 counts once.
    let state = commands::query(
        &emb.context,
        "SELECT customer_id, country, segment, cdc_position FROM customers.customer_state \
         ORDER BY customer_id",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&state).unwrap().to_string(),
        "\
+-------------+---------+----------+----------------------+
| customer_id | country | segment  | cdc_position         |
+-------------+---------+----------+----------------------+
| CUST-0001   | DE      | business | 00000000000000001300 |
| CUST-0007   | FR      | consumer | 00000000000000002400 |
| CUST-0008   | GB      | business | 00000000000000001500 |
| CUST-0009   | PT      | consumer | 00000000000000001800 |
+-------------+---------+----------+----------------------+"
    );
    let quarantined = emb
        .context
        .storage
        .list(
            "tessera-sample-customers",
            "quarantine/customer_changes/ingest/",
        )
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    let text = emb
        .context
        .storage
        .get("tessera-sample-customers", quarantined[0].location.as_ref())
        .await
        .unwrap();
    let bad: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(
        (&bad["line"], &bad["reason"]),
        (
            &serde_json::json!(6),
            &serde_json::json!("op `u` has no `after` object")
        )
    );

    // Running again lands nothing new and publishes nothing twice.
    let again = commands::run(&emb).await.unwrap();
    assert_eq!((again.landed, again.unchanged, again.deliveries), (0, 6, 0));
    assert_eq!(summary_of(&again, "sales.orders").published, 8);
}

/// `tessera events put` on the embedded backend: the sample OrderPlaced events land at
/// Firehose's layout under `raw/order_events/`, and the chain they trigger publishes them.
#[tokio::test]
async fn events_put_lands_a_firehose_batch_and_runs_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let put = commands::events_put(
        tessera_tests::sample_mesh(),
        "embedded",
        Some(dir.path()),
        "sales.order_events",
        &tessera_tests::repo_root().join("domains/sales/order_events/events/order_placed.ndjson"),
    )
    .await
    .unwrap();
    assert!(put.failures.is_empty(), "{:?}", put.failures);
    assert_eq!((put.delivery.written, put.delivery.skipped.len()), (2, 0));
    let key = put.delivery.key.clone().unwrap();
    let layout = key
        .strip_prefix("raw/order_events/")
        .and_then(|k| k.split_once("/tessera-sample-sales-order_events-events-1-"))
        .map(|(folders, _)| folders.split('/').map(str::len).collect::<Vec<_>>());
    assert_eq!(layout, Some(vec![4, 2, 2, 2]), "{key}");
    // ingest, clean, contract-check, then the publication to aggregate (no aggregation of
    // order_events: nothing to do) and catalog-register.
    assert_eq!(put.deliveries, 5);

    let emb = embedded(dir.path());
    let batches = commands::query(
        &emb.context,
        "SELECT order_id, customer_id, amount, currency FROM sales.order_events ORDER BY order_id",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+------------+-------------+--------+----------+
| order_id   | customer_id | amount | currency |
+------------+-------------+--------+----------+
| ORD-000101 | CUST-0001   | 42.50  | EUR      |
| ORD-000102 | CUST-0008   | 19.99  | GBP      |
+------------+-------------+--------+----------+"
    );

    let err = commands::events_put(
        tessera_tests::sample_mesh(),
        "embedded",
        Some(dir.path()),
        "sales.orders",
        &tessera_tests::repo_root().join("domains/sales/order_events/events/order_placed.ndjson"),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("declares no `source.events`"),
        "{err:#}"
    );
}

#[tokio::test]
async fn reconcile_re_drives_what_a_run_left_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let s = commands::run(&emb).await.unwrap();
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    let sales = "tessera-sample-sales";
    let storage = &emb.context.storage;
    let mesh = tessera_tests::sample_mesh();
    let reconcile =
        |dry_run| commands::reconcile(mesh.clone(), "embedded", Some(dir.path()), dry_run);
    assert!(reconcile(true).await.unwrap().unfinished.is_empty());

    // A raw file whose event was lost (written behind the bus's back), and a clean run that was
    // killed before its record.
    let raw = storage.list(sales, "raw/orders/").await.unwrap();
    let first = raw[0].location.to_string();
    let bytes = storage.get(sales, &first).await.unwrap();
    let late = dir.path().join(sales).join("raw/orders/late-delivery.csv");
    std::fs::write(&late, &bytes).unwrap();
    let clean_runs = storage.list(sales, "runs/orders/clean/").await.unwrap();
    storage
        .delete(sales, clean_runs[0].location.as_ref())
        .await
        .unwrap();

    let listed = reconcile(true).await.unwrap();
    assert!(!listed.redriven);
    let mut found: Vec<(String, bool)> = listed
        .unfinished
        .iter()
        .map(|u| {
            (
                u.function.name().to_owned(),
                u.key == "raw/orders/late-delivery.csv",
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [("clean".to_owned(), false), ("ingest".to_owned(), true)]
    );

    let done = reconcile(false).await.unwrap();
    assert!(done.redriven);
    assert!(done.failures.is_empty(), "{:?}", done.failures);
    assert!(done.deliveries >= 2, "{}", done.deliveries);
    assert!(reconcile(true).await.unwrap().unfinished.is_empty());
    // The late file went all the way: its run records exist at every stage.
    let ingest_runs = storage.list(sales, "runs/orders/ingest/").await.unwrap();
    assert_eq!(ingest_runs.len(), raw.len() + 1);
}

#[tokio::test]
async fn status_shows_last_runs_freshness_quality_and_recent_failures() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let s = commands::run(&emb).await.unwrap();
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    let now = chrono::Utc::now();
    let products = tessera_cli::status::status(&emb.context, now)
        .await
        .unwrap();
    let of = |name: &str| products.iter().find(|p| p.product == name).unwrap();
    let orders = of("sales.orders");
    assert_eq!(orders.freshness, "met", "{:?}", orders.freshness_detail);
    assert_eq!(orders.freshness_detail.len(), 3);
    assert_eq!(orders.quality.as_deref(), Some("passed"));
    assert!(orders.last_publish.is_some());
    assert!(orders.recent_failures.is_empty());
    // The second customers file broke its contract: quality failed, one recent failure saying why.
    let customers = of("customers.customers");
    assert_eq!(customers.quality.as_deref(), Some("failed"));
    assert_eq!(customers.recent_failures.len(), 1);
    assert_eq!(customers.recent_failures[0].0, "contract-check");
    assert!(
        customers.recent_failures[0]
            .2
            .starts_with("email_mostly_present")
    );
    // Nothing has landed for the domain events' product.
    let events = of("sales.order_events");
    assert!(events.last_run.is_none() && events.last_publish.is_none());
    let text = tessera_cli::output::status(&products, now);
    assert!(
        text.contains("customers.customers: contract-check refused its input"),
        "{text}"
    );
    // A day later, the orders' freshness promise (a version at least every day) is breached.
    let later = now + chrono::TimeDelta::days(2);
    let products = tessera_cli::status::status(&emb.context, later)
        .await
        .unwrap();
    let orders = products
        .iter()
        .find(|p| p.product == "sales.orders")
        .unwrap();
    assert_eq!(
        orders.freshness, "breached",
        "{:?}",
        orders.freshness_detail
    );
}
