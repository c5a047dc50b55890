//! Files that cannot be read at all, and what a function handler makes of them and of other
//! events: bad data is quarantined and reported, the invocation succeeds, nothing panics.

use serde_json::json;
use tessera_core::ErrorKind;
use tessera_core::events::{OBJECT_CREATED, ObjectCreated};
use tessera_core::function::{handle, handle_any, stage};
use tessera_core::keys::input_id;
use tessera_core::routing::Function;
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{BUCKET, Fx, VERSION, object_created};

/// (file name, content, what the refusal must say)
const BAD_FILES: &[(&str, &[u8], &str)] = &[
    ("empty.csv", b"", "empty file"),
    (
        "picture.csv",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01",
        "binary data (NUL bytes): not a text file",
    ),
    (
        "no_header.csv",
        b"O-1,a@example.com,1.00,2024-05-01,first\nO-2,,2.00,2024-05-01,\n",
        "the header names none of the contract's columns",
    ),
    (
        "twice.csv",
        b"order_id,amount,order_id\nO-1,1.00,O-1\n",
        "header names column `order_id` twice",
    ),
];

#[tokio::test]
async fn unreadable_files_are_bad_data_for_the_stage() {
    let fx = Fx::orders("");
    for (name, content, reason) in BAD_FILES {
        let key = format!("raw/orders/{name}");
        fx.put(&key, content.to_vec()).await;
        let err = stages::ingest::run(fx.ctx(), BUCKET, &key, VERSION)
            .await
            .expect_err(name);
        assert_eq!(err.kind(), ErrorKind::BadData, "{name}: {err}");
        assert_eq!(
            err.to_string(),
            format!("bad input `{BUCKET}/{key}`: {reason}"),
            "{name}"
        );
    }
    // Nothing partial is left behind.
    assert!(fx.keys("staged/").await.is_empty());
    assert!(fx.keys("quarantine/").await.is_empty());
}

#[tokio::test]
async fn handler_quarantines_unreadable_files_and_succeeds() {
    let fx = Fx::orders("");
    for (name, content, reason) in BAD_FILES {
        let key = format!("raw/orders/{name}");
        fx.put(&key, content.to_vec()).await;
        let event = object_created(&key, content.len() as u64);
        let outcome = handle::<stage::Ingest>(fx.ctx(), &event)
            .await
            .unwrap_or_else(|e| panic!("{name}: the invocation must succeed, got {e}"));
        assert!(outcome.ignored.is_empty());
        assert_eq!(outcome.runs.len(), 1, "{name}");
        let run = &outcome.runs[0];
        assert_eq!(run.status, RunStatus::Quarantined, "{name}");
        assert_eq!(
            (run.stage.as_str(), run.product.as_str()),
            ("ingest", "orders")
        );
        // The version comes from the event (the etag, without its quotes).
        let id = input_id(BUCKET, &key, "etag-1");
        assert_eq!(run.run_id, id);
        let stem = name.trim_end_matches(".csv");
        let report_key = format!("quarantine/orders/ingest/{stem}-{id}.error.json");
        assert_eq!(run.outputs, std::slice::from_ref(&report_key), "{name}");
        let report = fx.json(&report_key).await;
        let expected_reason = format!("bad input `{BUCKET}/{key}`: {reason}");
        assert_eq!(
            report,
            json!({"stage": "ingest", "input": key, "version": "etag-1", "reason": expected_reason})
        );
        assert_eq!(run.notes, [expected_reason]);
        // The raw file stays where it landed, and the run record is stored.
        assert_eq!(fx.get(&key).await.len(), content.len());
        let stored = fx.json(&format!("runs/orders/ingest/{id}.json")).await;
        assert_eq!(stored["status"], "quarantined");
    }
    assert!(fx.keys("staged/").await.is_empty());
    assert_eq!(
        fx.keys("quarantine/orders/ingest/").await.len(),
        BAD_FILES.len()
    );
}

#[tokio::test]
async fn handler_ingests_good_files_and_decodes_event_keys() {
    let fx = Fx::orders("");
    let key = "raw/orders/May 2024 (1).csv";
    let content = "order_id,email,amount,order_day,note\nO-1,,1.00,2024-05-01,\n";
    fx.put(key, content).await;
    let event = object_created(key, content.len() as u64);
    assert_eq!(
        event["detail"]["object"]["key"],
        "raw/orders/May+2024+%281%29.csv"
    );
    let outcome = handle::<stage::Ingest>(fx.ctx(), &event)
        .await
        .expect("invocation succeeds");
    assert_eq!(outcome.runs.len(), 1);
    let run = &outcome.runs[0];
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.input.key, key);
    assert_eq!(run.rows_out, 1);
    assert!(
        run.outputs[0].starts_with("staged/orders/May_2024__1_-"),
        "{:?}",
        run.outputs
    );
    assert_eq!(fx.keys("staged/orders/").await, [run.outputs[0].clone()]);
}

#[tokio::test]
async fn handler_refuses_unknown_products_and_ignores_other_events() {
    let fx = Fx::orders("");
    // A raw file of a product the domain does not have: refused, reported, not retried.
    let key = "raw/returns/r.csv";
    fx.put(key, "a\n1\n").await;
    let outcome = handle::<stage::Ingest>(fx.ctx(), &object_created(key, 4))
        .await
        .expect("invocation succeeds");
    assert_eq!(outcome.runs[0].status, RunStatus::Quarantined);
    assert_eq!(
        outcome.runs[0].notes,
        ["configuration: domain `shop` has no product `returns`"]
    );
    assert_eq!(fx.keys("quarantine/returns/ingest/").await.len(), 1);

    // An event for another function is ignored.
    let published =
        tessera_core::events::BusEvent::new("tessera", "DataProductPublished", json!({}));
    let outcome = handle::<stage::Ingest>(fx.ctx(), &published.to_json())
        .await
        .expect("invocation succeeds");
    assert!(outcome.runs.is_empty());
    assert_eq!(
        outcome.ignored,
        ["`DataProductPublished` is not for `ingest`"]
    );

    // Not an EventBridge event at all, or a malformed detail: refused without retry.
    let err = handle::<stage::Ingest>(fx.ctx(), &json!({"hello": "world"}))
        .await
        .expect_err("not an event");
    assert_eq!(err.kind, ErrorKind::BadData);
    assert_eq!(err.error_type(), "NonRetryable");
    let mut broken = ObjectCreated::event(BUCKET, "raw/orders/x.csv", 1, None).to_json();
    broken["detail"] = json!({"bucket": "not an object"});
    assert_eq!(broken["detail-type"], OBJECT_CREATED);
    let err = handle::<stage::Ingest>(fx.ctx(), &broken)
        .await
        .expect_err("malformed detail");
    assert_eq!(err.kind, ErrorKind::BadData);
    assert!(err.message.starts_with("malformed `Object Created` detail"));
}

#[tokio::test]
async fn handlers_refuse_zone_objects_that_are_not_parquet() {
    let fx = Fx::orders("");
    for (function, key) in [
        (Function::Clean, "staged/orders/junk.parquet"),
        (Function::ContractCheck, "clean/orders/junk.parquet"),
    ] {
        fx.put(key, "not parquet at all").await;
        let outcome = handle_any(fx.ctx(), function, &object_created(key, 18))
            .await
            .unwrap_or_else(|e| panic!("{key}: the invocation must succeed, got {e}"));
        let run = &outcome.runs[0];
        assert_eq!(run.status, RunStatus::Quarantined, "{key}");
        assert_eq!(run.stage, function.name());
        assert!(
            run.notes[0].starts_with(&format!(
                "bad input `{BUCKET}/{key}`: not a readable Parquet file"
            )),
            "{:?}",
            run.notes
        );
        let prefix = format!("quarantine/orders/{}/junk-", function.name());
        assert!(run.outputs[0].starts_with(&prefix), "{:?}", run.outputs);
        assert!(run.outputs[0].ends_with(".error.json"));
    }
    // Neither stage wrote anything downstream.
    assert_eq!(fx.keys("clean/").await, ["clean/orders/junk.parquet"]);
    assert!(fx.keys("products/").await.is_empty());
}
