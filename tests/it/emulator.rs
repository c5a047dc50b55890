//! The whole chain on a local AWS emulator: a raw file put in S3 fires S3's EventBridge
//! notification, the domain's rules route every event to its function running under
//! `cargo lambda watch` (through the bridge of `tessera dev`), and the result is a Glue table a
//! query engine reads.
//!
//! `bash tests/run.sh` starts moto and `cargo lambda watch` and sets `TESSERA_MOTO_URL` and
//! `TESSERA_LAMBDA_URL`; without them this test fails and says so. With
//! `TESSERA_EMULATOR=localstack` it starts LocalStack too and the same test runs on the mesh's
//! `localstack` environment, so behaviour that differs between the emulators is caught.

use std::sync::Arc;
use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use aws_sdk_eventbridge::types::Target;
use tessera_aws::{AwsSettings, Service};
use tessera_cli::commands;
use tessera_tests::sample_mesh;

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with `bash tests/run.sh`, which starts the emulator and `cargo lambda watch`"))
}

#[tokio::test]
async fn a_raw_file_in_s3_fires_the_whole_chain() {
    // The mesh environment the functions under `cargo lambda watch` also use: `emulator` (all on
    // moto) or `localstack` (S3, EventBridge and SQS on LocalStack, Glue on moto).
    let environment = std::env::var("TESSERA_TEST_ENV").unwrap_or_else(|_| "emulator".into());
    let moto = required("TESSERA_MOTO_URL");
    let lambda_url = required("TESSERA_LAMBDA_URL");
    let http = reqwest::Client::new();
    let reset = http
        .post(format!("{moto}/moto-api/reset"))
        .send()
        .await
        .expect("moto answers");
    assert!(reset.status().is_success());

    let mesh = sample_mesh();
    let settings = AwsSettings::from_environment(mesh.environment(&environment).unwrap())
        .expect("an aws environment");
    assert_eq!(
        settings.endpoint(Service::Glue),
        Some(moto.as_str()),
        "the catalog is on moto in every emulated environment"
    );
    let sdk = settings.sdk_config().await;
    let routes = tessera_aws::dev::provision(&mesh, &settings, &sdk)
        .await
        .unwrap();
    assert_eq!(routes.len(), 2 * tessera_core::routing::rules().len());

    // Every event on the product bus is copied to an audit queue, to assert what was announced.
    let sqs = aws_sdk_sqs::Client::new(&settings.service_config(&sdk, Service::Sqs));
    let events =
        aws_sdk_eventbridge::Client::new(&settings.service_config(&sdk, Service::EventBridge));
    let (audit, arn) = tessera_aws::dev::queue(&sqs, "tessera-test-audit")
        .await
        .unwrap();
    events
        .put_rule()
        .name("tessera-test-audit")
        .event_bus_name(&settings.event_bus)
        .event_pattern(r#"{"source": ["tessera"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("tessera-test-audit")
        .event_bus_name(&settings.event_bus)
        .targets(Target::builder().id("audit").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();

    let ctx = tessera_aws::aws_context(Arc::clone(&mesh), &settings)
        .await
        .unwrap();
    // Delivers every queued event to its function until the queues are quiet.
    let deliver = || async {
        tessera_aws::dev::bridge(
            &sdk,
            &settings,
            &routes,
            &lambda_url,
            Duration::from_secs(6),
            Duration::from_secs(900),
        )
        .await
        .unwrap()
    };
    let (landed, _) = commands::land_samples(&ctx).await.unwrap();
    assert_eq!(landed, 6);
    let report = deliver().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // S3 may announce an object more than once; every stage is idempotent.
    assert!(report.delivered >= 33, "{report:?}");

    // Published Parquet in S3, through the commit logs.
    let commits = |product: &'static str, bucket: &'static str| {
        let storage = ctx.storage.clone();
        async move {
            tessera_core::publish::commits(&storage, bucket, product)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(commits("orders", "tessera-sample-sales").await, 2);
    assert_eq!(commits("customers", "tessera-sample-customers").await, 1);
    assert!(commits("daily_revenue", "tessera-sample-sales").await >= 1);
    assert_eq!(
        commits("customer_changes", "tessera-sample-customers").await,
        2
    );
    assert!(commits("customer_state", "tessera-sample-customers").await >= 1);

    // Every object has its stage's run record. One lost (a run killed before it, or an event
    // never delivered) is found by the reconciler, re-driven through the rules on the default
    // bus, and done again without a second commit.
    let reconcile = |dry_run| commands::reconcile(Arc::clone(&mesh), &environment, None, dry_run);
    let report = reconcile(true).await.unwrap();
    assert!(report.unfinished.is_empty(), "{:?}", report.unfinished);
    let records = ctx
        .storage
        .list("tessera-sample-sales", "runs/orders/ingest/")
        .await
        .unwrap();
    ctx.storage
        .delete("tessera-sample-sales", records[0].location.as_ref())
        .await
        .unwrap();
    let report = reconcile(false).await.unwrap();
    assert_eq!(report.unfinished.len(), 1, "{:?}", report.unfinished);
    assert!(report.redriven);
    let redelivered = deliver().await;
    assert!(
        redelivered.failures.is_empty(),
        "{:?}",
        redelivered.failures
    );
    assert!(redelivered.delivered >= 1, "{redelivered:?}");
    assert!(reconcile(true).await.unwrap().unfinished.is_empty());
    assert_eq!(commits("orders", "tessera-sample-sales").await, 2);

    // Quarantined rows and the refused version, with their reasons.
    let quarantined = ctx
        .storage
        .list("tessera-sample-sales", "quarantine/orders/ingest/")
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    let text = ctx
        .storage
        .get("tessera-sample-sales", quarantined[0].location.as_ref())
        .await
        .unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.contains("cannot read `12,50` as decimal(12,2)"),
        "{text}"
    );
    let refused = ctx
        .storage
        .list(
            "tessera-sample-customers",
            "quarantine/customers/contract-check/",
        )
        .await
        .unwrap();
    let names: Vec<String> = refused.iter().map(|m| m.location.to_string()).collect();
    assert!(
        names.iter().any(|k| k.ends_with("/report.json"))
            && names
                .iter()
                .any(|k| k.contains("/data/") && k.ends_with(".parquet")),
        "{names:?}"
    );

    // The Glue tables: columns typed for Athena, partitions, parameters, quality.
    let orders = ctx
        .catalog
        .get_table("sales", "orders")
        .await
        .unwrap()
        .expect("orders is registered");
    assert!(
        orders
            .columns
            .iter()
            .any(|c| c.name == "amount" && c.data_type == "decimal(12,2)"),
        "{:?}",
        orders.columns
    );
    assert!(
        orders
            .columns
            .iter()
            .any(|c| c.name == "order_ts" && c.data_type == "timestamp")
    );
    assert_eq!(
        orders
            .partition_keys
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str()))
            .collect::<Vec<_>>(),
        [("order_date", "date")]
    );
    assert_eq!(
        orders.location,
        "s3://tessera-sample-sales/products/orders/"
    );
    assert_eq!(orders.parameters["contract_id"], "urn:tessera:sales:orders");
    assert_eq!(orders.parameters["quality_status"], "passed");
    let partitions = ctx.catalog.partitions("sales", "orders").await.unwrap();
    assert_eq!(
        partitions
            .iter()
            .map(|p| p.values.join("/"))
            .collect::<Vec<_>>(),
        ["2024-05-01", "2024-05-02"]
    );
    let customers = ctx
        .catalog
        .get_table("customers", "customers")
        .await
        .unwrap()
        .expect("customers is registered");
    // One customers file was refused, the other published; the two contract-checks run in
    // whichever order the queue delivers them, and the later decision sets the status (a version
    // published after a refusal clears it).
    let p = &customers.parameters;
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(&p[k]).expect(k);
    let expected = match p.get("last_violation") {
        Some(_) if at("last_violation") > at("last_publish") => "failed",
        _ => "passed",
    };
    assert_eq!(p["quality_status"], expected, "{p:?}");

    // Glue updates are compare-and-swaps: a writer holding an old version loses, and retries.
    ctx.catalog
        .put_table(&orders, orders.version)
        .await
        .expect("the current version wins");
    let stale = ctx.catalog.put_table(&orders, orders.version).await;
    assert!(
        matches!(stale, Err(tessera_core::Error::Conflict(_))),
        "{stale:?}"
    );
    // Partitions that exist are not an error.
    assert_eq!(
        ctx.catalog
            .add_partitions("sales", "orders", &partitions)
            .await
            .unwrap(),
        0
    );

    // The events on the bus.
    let mut announced = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&audit)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let e: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            announced.push(format!(
                "{} {}",
                e["detail-type"].as_str().unwrap(),
                e["detail"]["product"].as_str().unwrap()
            ));
            sqs.delete_message()
                .queue_url(&audit)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    announced.sort();
    announced.dedup();
    assert_eq!(
        announced,
        [
            "ContractViolated customers",
            "DataProductPublished customer_changes",
            "DataProductPublished customer_state",
            "DataProductPublished customers",
            "DataProductPublished daily_revenue",
            "DataProductPublished orders",
            "DataProductPublished segment_revenue",
        ]
    );

    // The cross-domain aggregation, recomputed on each side's publications: the last run saw
    // both domains' products.
    let batches = commands::query(
        &ctx,
        "SELECT segment, COUNT(*) AS rows, SUM(revenue) AS revenue FROM sales.segment_revenue \
         GROUP BY segment ORDER BY segment",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+----------+------+---------+
| segment  | rows | revenue |
+----------+------+---------+
| business | 3    | 303.99  |
| consumer | 3    | 553.75  |
+----------+------+---------+"
    );

    // The entity rebuilt from the Debezium events, whatever order the two files were delivered
    // in: the latest state of each customer, the deleted one gone.
    let batches = commands::query(
        &ctx,
        "SELECT customer_id, segment FROM customers.customer_state ORDER BY customer_id",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+-------------+----------+
| customer_id | segment  |
+-------------+----------+
| CUST-0001   | business |
| CUST-0007   | consumer |
| CUST-0008   | business |
| CUST-0009   | consumer |
+-------------+----------+"
    );

    // The push-down port reaches the emulator's Athena (which runs no SQL): the statement is an
    // UNLOAD of the aggregation's result to the product's staging folder, in the workgroup.
    let pushdown = ctx.pushdown.clone().expect("AWS ports push down to Athena");
    let output = "s3://tessera-sample-sales/products/segment_revenue/_athena/test/";
    pushdown
        .unload("sales", "SELECT 1 AS one", output)
        .await
        .unwrap();
    let athena = aws_sdk_athena::Client::new(&settings.service_config(&sdk, Service::Athena));
    let mut statements = Vec::new();
    for id in athena
        .list_query_executions()
        .send()
        .await
        .unwrap()
        .query_execution_ids()
    {
        let q = athena
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap();
        let q = q.query_execution().unwrap();
        statements.push((
            q.query().unwrap_or_default().to_owned(),
            q.work_group().unwrap_or_default().to_owned(),
        ));
    }
    assert!(
        statements.contains(&(
            format!(
                "UNLOAD (SELECT 1 AS one) TO '{output}' WITH (format = 'PARQUET', compression = 'ZSTD')"
            ),
            "primary".to_owned()
        )),
        "{statements:?}"
    );

    // A query over the Glue tables, read from S3 by DataFusion (Athena runs no SQL here).
    let batches = commands::query(
        &ctx,
        "SELECT c.segment, COUNT(*) AS orders, SUM(o.amount) AS revenue \
         FROM sales.orders o JOIN customers.customers c ON o.customer_id = c.customer_id \
         GROUP BY c.segment ORDER BY c.segment",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+----------+--------+---------+
| segment  | orders | revenue |
+----------+--------+---------+
| business | 3      | 303.99  |
| consumer | 4      | 553.75  |
+----------+--------+---------+"
    );

    // A late file whose key needs encoding (a folder, a space, a plus): S3 events carry keys
    // URL-encoded, and each emulator encodes them its own way.
    let late = "raw/orders/late arrivals/orders 2024-05-03+eu.csv";
    ctx.storage
        .put(
            "tessera-sample-sales",
            late,
            bytes::Bytes::from_static(
                b"order_id,customer_id,customer_email,order_date,order_ts,status,amount,currency,notes,updated_at\n\
                  ORD-000031,CUST-0002,bob@example.org,2024-05-03,2024-05-03T08:00:00Z,placed,10.00,EUR,,2024-05-03T08:00:00Z\n",
            ),
        )
        .await
        .unwrap();
    let report = deliver().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(commits("orders", "tessera-sample-sales").await, 3);
    let partitions = ctx.catalog.partitions("sales", "orders").await.unwrap();
    assert_eq!(
        partitions
            .iter()
            .map(|p| p.values.join("/"))
            .collect::<Vec<_>>(),
        ["2024-05-01", "2024-05-02", "2024-05-03"]
    );
    let batches = commands::query(
        &ctx,
        "SELECT order_id, amount FROM sales.orders WHERE order_date = DATE '2024-05-03'",
    )
    .await
    .unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        "\
+------------+--------+
| order_id   | amount |
+------------+--------+
| ORD-000031 | 10.00  |
+------------+--------+"
    );

    // Every sample event of `events/`, through `cargo lambda invoke`, as a domain team would.
    let port = lambda_url.rsplit(':').next().unwrap();
    // The fixtures carry AWS's made-up versions, so the stages take them for new versions of
    // the objects; the notification names a file (`orders 2024-05-02.csv`) that was never
    // landed, which is bad data: quarantined, the invocation succeeds. The raw fixture's
    // sequencer sorts after the one moto gives every event (right-padded, as S3 says to compare
    // them), so ingest takes it for the newest version of the key, not a stale one.
    for (function, file, status) in [
        ("ingest", "s3-object-created-raw.json", &["succeeded"][..]),
        ("ingest", "s3-notification-raw.json", &["quarantined"]),
        ("clean", "s3-object-created-staged.json", &["succeeded"]),
        (
            "contract-check",
            "s3-object-created-clean.json",
            &["published"],
        ),
        // Skipped when the chain already aggregated that very version.
        (
            "aggregate",
            "data-product-published.json",
            &["published", "skipped"],
        ),
        (
            "catalog-register",
            "data-product-published.json",
            &["succeeded"],
        ),
        ("catalog-register", "contract-violated.json", &["succeeded"]),
    ] {
        let out = std::process::Command::new("cargo")
            .args(["lambda", "invoke", function, "-A", "127.0.0.1", "-P", port])
            .arg("--data-file")
            .arg(tessera_tests::repo_root().join("events").join(file))
            .output()
            .expect("cargo lambda is on PATH (tests/run.sh puts it there)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{function} {file}: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let outcome: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{function} {file}: {e}: {stdout}"));
        // The orders publication feeds both of its aggregations.
        let runs = if function == "aggregate" { 2 } else { 1 };
        assert_eq!(
            outcome["runs"].as_array().map(Vec::len),
            Some(runs),
            "{function} {file}: {outcome}"
        );
        for run in outcome["runs"].as_array().into_iter().flatten() {
            assert!(
                run["status"].as_str().is_some_and(|s| status.contains(&s)),
                "{function} {file}: {outcome}"
            );
        }
    }
}
