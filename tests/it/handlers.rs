//! The function handlers, called directly with the fixtures of `events/` and embedded ports,
//! chained the way the events chain them: each fixture is what the previous stage emits.

use bytes::Bytes;
use tessera_core::bus::InProcessBus;
use tessera_core::events::{BusEvent, ObjectCreated, ProductPublished};
use tessera_core::runs::RunStatus;
use tessera_tests::{embedded, event, repo_root};

/// The S3 notifications the bus holds, by key.
fn created_keys(bus: &InProcessBus) -> Vec<(String, BusEvent)> {
    let mut out = Vec::new();
    while let Some(e) = bus.pop() {
        let key = if e.detail_type == "Object Created" {
            serde_json::from_value::<ObjectCreated>(e.detail.clone())
                .unwrap()
                .object
                .key
        } else {
            e.detail_type.clone()
        };
        out.push((key, e));
    }
    out
}

#[tokio::test]
async fn fixtures_chain_through_every_handler() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let ctx = &emb.context;
    let raw =
        std::fs::read(repo_root().join("domains/sales/orders/raw/orders_2024-05-01.csv")).unwrap();
    ctx.storage
        .put(
            "tessera-sample-sales",
            "raw/orders/orders_2024-05-01.csv",
            Bytes::from(raw),
        )
        .await
        .unwrap();
    created_keys(&emb.bus);

    // ingest: the raw fixture → the staged object the staged fixture names.
    let out = ingest::handler(ctx, event("s3-object-created-raw.json"))
        .await
        .unwrap();
    assert_eq!(out.runs.len(), 1);
    assert_eq!(out.runs[0].status, RunStatus::Succeeded);
    assert_eq!(
        (
            out.runs[0].rows_in,
            out.runs[0].rows_out,
            out.runs[0].quarantined
        ),
        (13, 10, 3)
    );
    let staged = event("s3-object-created-staged.json");
    let staged_key = staged["detail"]["object"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys: Vec<String> = created_keys(&emb.bus).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&staged_key),
        "ingest wrote {keys:?}, the staged fixture names {staged_key}"
    );

    // clean: the staged fixture → the clean object the clean fixture names.
    let out = clean::handler(ctx, staged).await.unwrap();
    assert_eq!(out.runs[0].status, RunStatus::Succeeded);
    assert_eq!(
        (
            out.runs[0].rows_out,
            out.runs[0].dropped,
            out.runs[0].quarantined
        ),
        (4, 2, 4)
    );
    let cleaned = event("s3-object-created-clean.json");
    let clean_key = cleaned["detail"]["object"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys: Vec<String> = created_keys(&emb.bus).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&clean_key),
        "clean wrote {keys:?}, the clean fixture names {clean_key}"
    );

    // contract-check: the clean fixture → the publication the published fixture describes.
    let out = contract_check::handler(ctx, cleaned).await.unwrap();
    assert_eq!(out.runs[0].status, RunStatus::Published);
    let published: Vec<BusEvent> = created_keys(&emb.bus)
        .into_iter()
        .filter(|(k, _)| k == "DataProductPublished")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(published.len(), 1);
    let got: ProductPublished = serde_json::from_value(published[0].detail.clone()).unwrap();
    let fixture_event = event("data-product-published.json");
    let fixture: ProductPublished =
        serde_json::from_value(fixture_event["detail"].clone()).unwrap();
    assert_eq!(
        (&got.version, &got.commit_key, got.rows, &got.partitions),
        (
            &fixture.version,
            &fixture.commit_key,
            fixture.rows,
            &fixture.partitions
        )
    );

    // aggregate and catalog-register: the published fixture.
    let out = aggregate::handler(ctx, fixture_event.clone())
        .await
        .unwrap();
    // Both aggregations reading orders; the customers domain has published nothing yet, so
    // the cross-domain one joins with an empty input.
    let runs: Vec<(&str, RunStatus, u64)> = out
        .runs
        .iter()
        .map(|r| (r.product.as_str(), r.status, r.rows_out))
        .collect();
    assert_eq!(
        runs,
        [
            ("daily_revenue", RunStatus::Published, 2),
            ("segment_revenue", RunStatus::Published, 0)
        ]
    );
    let out = catalog_register::handler(ctx, fixture_event.clone())
        .await
        .unwrap();
    assert_eq!(out.runs[0].status, RunStatus::Succeeded);
    let table = ctx
        .catalog
        .get_table("sales", "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(table.parameters["contract_id"], "urn:tessera:sales:orders");
    assert_eq!(table.location, "s3://tessera-sample-sales/products/orders/");

    // A violation of a product never published registers its table, marked failed, so
    // consumers find it and see why it is empty.
    let out = catalog_register::handler(ctx, event("contract-violated.json"))
        .await
        .unwrap();
    assert_eq!(out.runs[0].status, RunStatus::Succeeded);
    let customers = ctx
        .catalog
        .get_table("customers", "customers")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customers.parameters["quality_status"], "failed");
    assert!(customers.parameters["last_violation_checks"].starts_with("email_mostly_present"));
    assert!(
        ctx.catalog
            .partitions("customers", "customers")
            .await
            .unwrap()
            .is_empty()
    );

    // Delivered again (at least once): no second commit, no second partition.
    let again = contract_check::handler(ctx, event("s3-object-created-clean.json"))
        .await
        .unwrap();
    assert_eq!(again.runs[0].status, RunStatus::Skipped);
    let commits = tessera_core::publish::commits(&ctx.storage, "tessera-sample-sales", "orders")
        .await
        .unwrap();
    assert_eq!(commits.len(), 1);
    catalog_register::handler(ctx, fixture_event).await.unwrap();
    assert_eq!(
        ctx.catalog
            .partitions("sales", "orders")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_data_never_fails_an_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let ctx = &emb.context;
    for (name, bytes) in [
        ("empty.csv", Vec::new()),
        (
            "binary.csv",
            vec![0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xFF, 0xFE],
        ),
        (
            "ragged.csv",
            b"order_id,customer_id\nORD-000001\nORD-000002,CUST-0001,extra,fields\n".to_vec(),
        ),
    ] {
        let key = format!("raw/orders/{name}");
        ctx.storage
            .put("tessera-sample-sales", &key, Bytes::from(bytes))
            .await
            .unwrap();
        let mut e = event("s3-object-created-raw.json");
        e["detail"]["object"]["key"] = serde_json::Value::String(key.clone());
        let out = ingest::handler(ctx, e)
            .await
            .unwrap_or_else(|err| panic!("{name}: invocation failed: {err}"));
        let run = &out.runs[0];
        match name {
            "ragged.csv" => {
                assert_eq!(run.status, RunStatus::Skipped, "{name}");
                assert_eq!(run.quarantined, 2, "{name}");
                let q = ctx
                    .storage
                    .get("tessera-sample-sales", &run.outputs[0])
                    .await
                    .unwrap();
                let text = String::from_utf8(q.to_vec()).unwrap();
                assert!(
                    text.contains("\"line\":2") && text.contains("1 fields where the header has 2"),
                    "{text}"
                );
            }
            _ => {
                assert_eq!(run.status, RunStatus::Quarantined, "{name}");
                let report = ctx
                    .storage
                    .get("tessera-sample-sales", &run.outputs[0])
                    .await
                    .unwrap();
                let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
                let reason = report["reason"].as_str().unwrap();
                let expected = if name == "empty.csv" {
                    "empty file"
                } else {
                    "binary data"
                };
                assert!(reason.contains(expected), "{name}: {reason}");
                assert!(
                    reason.contains(&key),
                    "{name}: the reason names the file: {reason}"
                );
            }
        }
    }
    // A key with characters object stores treat specially is read under its exact name.
    let key = "raw/orders/May {2024} 100% [final].csv";
    let raw =
        std::fs::read(repo_root().join("domains/sales/orders/raw/orders_2024-05-02.csv")).unwrap();
    ctx.storage
        .put("tessera-sample-sales", key, Bytes::from(raw))
        .await
        .unwrap();
    let mut e = event("s3-object-created-raw.json");
    e["detail"]["object"]["key"] = tessera_core::events::encode_key(key).into();
    let out = ingest::handler(ctx, e).await.unwrap();
    assert_eq!(
        (out.runs[0].status, out.runs[0].rows_out),
        (RunStatus::Succeeded, 6)
    );
    assert!(dir.path().join("tessera-sample-sales").join(key).is_file());

    // The same file announced by a classic S3 notification (moto's spelling: no userIdentity).
    let notification = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "tessera-sample-sales"},
               "object": {"key": "raw%2Forders%2FMay+%7B2024%7D+100%25+%5Bfinal%5D.csv", "eTag": "abc", "size": 3}}
    }, {
        "eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": "tessera-sample-sales"}, "object": {"key": "raw/orders/gone.csv"}}
    }]});
    let out = ingest::handler(ctx, notification).await.unwrap();
    assert_eq!((out.runs.len(), out.ignored.len()), (1, 1));
    assert_eq!(
        (out.runs[0].status, out.runs[0].rows_out),
        (RunStatus::Succeeded, 6)
    );

    // A hostile key is refused as a bad event, not a crash, and not retried.
    let mut e = event("s3-object-created-raw.json");
    e["detail"]["object"]["key"] =
        serde_json::Value::String("raw/orders/%2e%2e/%2e%2e/etc/passwd".into());
    let err = ingest::handler(ctx, e).await.unwrap_err();
    assert_eq!(err.error_type(), "NonRetryable");
    // An event of another kind is ignored.
    let out = ingest::handler(ctx, event("data-product-published.json"))
        .await
        .unwrap();
    assert!(out.runs.is_empty() && out.ignored.len() == 1);
}

#[tokio::test]
async fn every_emulators_key_spelling_finds_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let ctx = &emb.context;
    let raw =
        std::fs::read(repo_root().join("domains/sales/orders/raw/orders_2024-05-02.csv")).unwrap();
    let key = "raw/orders/late arrivals/orders 2024-05-02+eu.csv";
    ctx.storage
        .put("tessera-sample-sales", key, Bytes::from(raw))
        .await
        .unwrap();
    // AWS (form encoding, `+` for a space), LocalStack (percent encoding, `/` kept), moto's
    // EventBridge events (the key as it is).
    // The same object version each time: the first delivery ingests it; the others find its
    // run (their key resolved to the same object) and skip it.
    for (n, spelling) in [
        "raw%2Forders%2Flate+arrivals%2Forders+2024-05-02%2Beu.csv",
        "raw/orders/late%20arrivals/orders%202024-05-02%2Beu.csv",
        key,
    ]
    .into_iter()
    .enumerate()
    {
        let expected = if n == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Skipped
        };
        let mut e = event("s3-object-created-raw.json");
        e["detail"]["object"]["key"] = spelling.into();
        let out = ingest::handler(ctx, e).await.unwrap();
        assert_eq!(
            (
                out.runs[0].status,
                out.runs[0].rows_out,
                out.runs[0].input.key.as_str()
            ),
            (expected, 6, key),
            "{spelling}"
        );
    }
    // A key that names no object under any spelling is refused with its name.
    let mut e = event("s3-object-created-raw.json");
    e["detail"]["object"]["key"] = "raw/orders/missing+file.csv".into();
    let out = ingest::handler(ctx, e).await.unwrap();
    assert_eq!(out.runs[0].status, RunStatus::Quarantined);
}

#[tokio::test]
async fn the_schedule_checks_the_service_levels_of_its_domain() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let ctx = &emb.context;
    tessera_cli::commands::run(&emb).await.unwrap();
    // The fixture fired long after the sample was published: orders (daily, within 15 minutes)
    // is overdue; its schedule names `sales`, so customers is not looked at.
    let mut e = event("scheduled-sla-check.json");
    let later = chrono::Utc::now() + chrono::Duration::days(3);
    e["time"] = later.to_rfc3339().into();
    let out = catalog_register::handler(ctx, e).await.unwrap();
    let mut checked: Vec<(&str, &str, usize, usize)> = out
        .runs
        .iter()
        .map(|r| {
            (
                r.stage.as_str(),
                r.product.as_str(),
                r.checks.passed,
                r.checks.failed,
            )
        })
        .collect();
    checked.sort();
    assert_eq!(
        checked,
        [
            ("sla-check", "daily_revenue", 0, 0),
            ("sla-check", "order_events", 0, 0),
            ("sla-check", "orders", 1, 2),
            ("sla-check", "segment_revenue", 0, 0)
        ]
    );
    let orders = out.runs.iter().find(|r| r.product == "orders").unwrap();
    assert!(
        orders
            .notes
            .iter()
            .any(|n| n.starts_with("frequency Breached")),
        "{:?}",
        orders.notes
    );
    let breaches: Vec<String> = std::iter::from_fn(|| emb.bus.pop())
        .filter(|e| e.detail_type == "SlaBreached")
        .map(|e| format!("{} {}", e.detail["product"], e.detail["property"]))
        .collect();
    assert_eq!(
        breaches,
        ["\"orders\" \"frequency\"", "\"orders\" \"freshness\""]
    );
    // The record is kept with the product's other runs.
    let kept = ctx
        .storage
        .list("tessera-sample-sales", "runs/orders/sla-check/")
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    // Other functions ignore the schedule.
    let out = ingest::handler(ctx, event("scheduled-sla-check.json"))
        .await
        .unwrap();
    assert!(out.runs.is_empty() && out.ignored.len() == 1);
}
