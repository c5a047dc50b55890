//! contract-check: masking, publishing with a commit and an event, quarantine on a failed
//! contract, and idempotence when the same input comes twice.

use arrow::array::{Array, AsArray};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_core::events::{CONTRACT_VIOLATED, CheckCounts, ContractViolated, ProductPublished};
use tessera_core::publish::{self, CommitMode};
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{BUCKET, Fx, ORDERS_CONTRACT, ORDERS_CSV, VERSION, assert_table};

const HEADER: &str = "order_id,email,amount,order_day,note\n";

/// Four orders over two days: one without e-mail, one with a short note, one without note.
const ORDERS: &str = "order_id,email,amount,order_day,note\n\
                      O-1,ada@example.com,10.00,2024-05-01,Leave at the door\n\
                      O-2,,5.50,2024-05-01,naïve\n\
                      O-3,bob@example.org,1.25,2024-05-02,ab\n\
                      O-4,cy@example.net,2.00,2024-05-02,\n";

/// SHA-256 hex of the mesh's salt followed by the value.
fn sha(fx: &Fx, value: &str) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(fx.ctx().mesh.pii_salt.as_bytes())
            .chain_update(value.as_bytes())
            .finalize(),
    )
}

/// Values of a text column over every live file of a product, in file order.
async fn published_column(fx: &Fx, product: &str, column: &str) -> Vec<Option<String>> {
    let log = publish::commits(&fx.ctx().storage, BUCKET, product)
        .await
        .expect("commit log");
    let mut out = Vec::new();
    for file in publish::live_files(&log) {
        for batch in fx.batches(&file).await {
            let array = batch.column_by_name(column).expect("column");
            let strings = array.as_string::<i32>();
            out.extend(strings.iter().map(|v| v.map(str::to_owned)));
        }
    }
    out
}

#[tokio::test]
async fn passing_data_is_published_partitioned_and_committed_with_an_event() {
    let fx = Fx::orders("");
    let run = fx.publish("raw/orders/day1.csv", ORDERS).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (4, 4, 0));
    // schema, order_id.required, order_id.unique, amount.required, order_day.required
    assert_eq!(
        run.checks,
        CheckCounts {
            passed: 5,
            failed: 0
        }
    );
    let id = run.run_id.clone();
    let clean_key = run.input.key.clone();
    assert!(clean_key.starts_with("clean/orders/day1-"));

    let commit_key = "products/orders/_commits/00000000000000000001.json".to_owned();
    let files = vec![
        format!("products/orders/order_day=2024-05-01/part-{id}-0.parquet"),
        format!("products/orders/order_day=2024-05-02/part-{id}-0.parquet"),
    ];
    assert_eq!(
        run.outputs,
        [files[0].clone(), files[1].clone(), commit_key.clone()]
    );
    assert_eq!(
        fx.keys("products/").await,
        [
            commit_key.clone(),
            format!("products/orders/_reports/{id}.json"),
            files[0].clone(),
            files[1].clone(),
        ]
    );

    let mut commit = fx.json(&commit_key).await;
    assert!(commit["committed_at"].is_string());
    commit["committed_at"] = Value::Null;
    assert_eq!(
        commit,
        json!({
            "checks": {"passed": 5, "failed": 0},
            "version": id,
            "mode": "append",
            "files": files,
            "partitions": ["order_day=2024-05-01/", "order_day=2024-05-02/"],
            "rows": 4,
            "contract_id": "urn:test:orders",
            "contract_version": "2.1.0",
            "source": clean_key,
            "source_key": "raw/orders/day1.csv",
            "committed_at": null,
        })
    );
    let report = fx
        .json(&format!("products/orders/_reports/{id}.json"))
        .await;
    assert_eq!(report["passed"], true);
    assert_eq!(report["report"]["rows"], 4);

    let published = fx.published();
    let commit_time = published[0].at;
    assert!((chrono::Utc::now() - commit_time).num_seconds() < 60);
    assert_eq!(
        published,
        [ProductPublished {
            domain: "shop".into(),
            product: "orders".into(),
            stage: "contract-check".into(),
            contract_id: "urn:test:orders".into(),
            contract_version: "2.1.0".into(),
            bucket: BUCKET.into(),
            location: "products/orders/".into(),
            version: id.clone(),
            commit_key,
            rows: 4,
            partitions: vec![
                "order_day=2024-05-01/".into(),
                "order_day=2024-05-02/".into()
            ],
            checks: run.checks,
            run_id: id,
            // The decision time is the commit's.
            at: commit_time,
        }]
    );

    // Each partition file holds its day's rows; the e-mail (classified pii) is hashed.
    let day1 = fx.batches(&files[0]).await;
    let projected: Vec<_> = day1
        .iter()
        .map(|b| b.project(&[0, 2, 3, 4]).expect("project"))
        .collect();
    assert_table(
        &crate::support::lines(&projected),
        &[
            "+----------+--------+------------+-------------------+",
            "| order_id | amount | order_day  | note              |",
            "+----------+--------+------------+-------------------+",
            "| O-1      | 10.00  | 2024-05-01 | Leave at the door |",
            "| O-2      | 5.50   | 2024-05-01 | naïve             |",
            "+----------+--------+------------+-------------------+",
        ],
    );
    assert_eq!(
        published_column(&fx, "orders", "email").await,
        [
            Some(sha(&fx, "ada@example.com")),
            None,
            Some(sha(&fx, "bob@example.org")),
            Some(sha(&fx, "cy@example.net")),
        ]
    );
}

#[tokio::test]
async fn masks_hash_redact_and_null_personal_columns() {
    // (method, the notes it publishes)
    type Expected = fn(&Fx) -> Vec<Option<String>>;
    let cases: &[(&str, Expected)] = &[
        ("hash", |fx| {
            vec![
                Some(sha(fx, "Leave at the door")),
                Some(sha(fx, "naïve")),
                Some(sha(fx, "ab")),
                None,
            ]
        }),
        ("redact", |_| {
            vec![
                Some("****door".into()),
                // Values under eight characters keep nothing.
                Some("****".into()),
                Some("****".into()),
                None,
            ]
        }),
        ("null", |_| vec![None, None, None, None]),
    ];
    for (method, expected) in cases {
        let fx = Fx::orders(&format!("mask = {{ note = \"{method}\" }}"));
        let run = fx.publish("raw/orders/day1.csv", ORDERS).await;
        assert_eq!(run.status, RunStatus::Published, "{method}: {run:#?}");
        assert_eq!(
            published_column(&fx, "orders", "note").await,
            expected(&fx),
            "{method}"
        );
        // The salted hash is not the bare SHA-256 of the value.
        let bare = hex::encode(Sha256::digest(b"ada@example.com"));
        let emails = published_column(&fx, "orders", "email").await;
        assert_ne!(emails[0].as_deref(), Some(bare.as_str()), "{method}");
        assert_eq!(emails[0], Some(sha(&fx, "ada@example.com")), "{method}");
        // Masking happens on publish only: the clean zone keeps the values.
        let clean = fx.batches(&run.input.key).await;
        assert_eq!(
            clean[0].column(4).as_string::<i32>().value(0),
            "Leave at the door"
        );
    }
}

/// The orders contract with a completeness rule on the e-mail: under 20% missing.
fn strict_orders() -> Fx {
    let contract = ORDERS_CONTRACT.replace(
        "        classification: pii\n",
        "        classification: pii\n        quality:\n          - name: email_mostly_present\n            \
         type: library\n            metric: missingValues\n            unit: percent\n            \
         mustBeLessThan: 20\n",
    );
    assert!(contract.contains("email_mostly_present"));
    Fx::new(ORDERS_CSV, &[("orders.odcs.yaml", &contract)])
}

#[tokio::test]
async fn failing_data_is_quarantined_with_a_report_and_a_violation_event() {
    let fx = strict_orders();
    // Two of four orders without an e-mail: 50% missing.
    let data = format!(
        "{HEADER}O-1,a@example.com,1.00,2024-05-01,\nO-2,,2.00,2024-05-01,\n\
         O-3,,3.00,2024-05-02,\nO-4,d@example.com,4.00,2024-05-02,\n"
    );
    let run = fx.publish("raw/orders/gappy.csv", data).await;
    assert_eq!(run.status, RunStatus::Quarantined, "{run:#?}");
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (4, 0, 4));
    assert_eq!(
        run.checks,
        CheckCounts {
            passed: 5,
            failed: 1
        }
    );
    let failed = "email_mostly_present: observed 50 (expected < 20)".to_owned();
    assert_eq!(run.notes, std::slice::from_ref(&failed));

    assert!(
        fx.keys("products/").await.is_empty(),
        "nothing is published"
    );
    let stem = run
        .input
        .key
        .trim_start_matches("clean/orders/")
        .trim_end_matches(".parquet");
    let base = format!("quarantine/orders/contract-check/{stem}/");
    // The data is kept as it was written for publishing, partitioned under `data/`.
    let data = [
        format!(
            "{base}data/order_day=2024-05-01/part-{}-0.parquet",
            run.run_id
        ),
        format!(
            "{base}data/order_day=2024-05-02/part-{}-0.parquet",
            run.run_id
        ),
    ];
    let report_key = format!("{base}report.json");
    assert_eq!(
        run.outputs,
        [data[0].clone(), data[1].clone(), report_key.clone()]
    );
    assert_eq!(
        fx.keys(&base).await,
        [data[0].clone(), data[1].clone(), report_key.clone()]
    );
    assert!(fx.keys("products/orders/_pending/").await.is_empty());
    let data_key = format!("{base}data/");

    // Masked, as it would have been published (consumers are pointed at it): the four rows,
    // without the e-mails the clean file holds.
    let mut kept = fx.table(&data[0]).await;
    kept.extend(fx.table(&data[1]).await);
    let cleaned = fx.table(&run.input.key).await;
    assert_eq!(
        kept.iter().filter(|l| l.contains("| O-")).count(),
        4,
        "{kept:#?}"
    );
    assert!(cleaned.iter().any(|l| l.contains("a@example.com")));
    assert!(
        !kept.iter().any(|l| l.contains("@example.com")),
        "{kept:#?}"
    );
    let report = fx.json(&report_key).await;
    assert_eq!(report["passed"], false);
    assert_eq!(report["product"], "orders");
    assert_eq!(report["contract_id"], "urn:test:orders");
    assert_eq!(report["input"], run.input.key.as_str());
    let check = report["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "email_mostly_present")
        .expect("the rule's check");
    assert_eq!(
        (&check["status"], &check["observed"], &check["unit"]),
        (&json!("failed"), &json!(50.0), &json!("percent"))
    );

    let violations: Vec<ContractViolated> = fx
        .events(CONTRACT_VIOLATED)
        .into_iter()
        .map(|e| serde_json::from_value(e.detail).expect("detail"))
        .collect();
    assert_eq!(
        violations,
        [ContractViolated {
            domain: "shop".into(),
            product: "orders".into(),
            contract_id: "urn:test:orders".into(),
            contract_version: "2.1.0".into(),
            bucket: BUCKET.into(),
            input_key: run.input.key.clone(),
            quarantine_key: data_key,
            report_key,
            rows: 4,
            failed_checks: vec![failed],
            checks: run.checks,
            run_id: run.run_id.clone(),
            at: violations[0].at,
        }]
    );
}

#[tokio::test]
async fn failing_data_publishes_no_product_event() {
    let fx = strict_orders();
    let data = format!("{HEADER}O-1,,1.00,2024-05-01,\n");
    let run = fx.publish("raw/orders/no_mail.csv", data).await;
    assert_eq!(run.status, RunStatus::Quarantined);
    assert!(fx.published().is_empty());
    assert!(
        publish::commits(&fx.ctx().storage, BUCKET, "orders")
            .await
            .expect("log")
            .is_empty()
    );
}

#[tokio::test]
async fn the_same_input_checked_twice_is_committed_once_and_announced_again() {
    let fx = Fx::orders("");
    let first = fx.publish("raw/orders/day1.csv", ORDERS).await;
    assert_eq!(first.status, RunStatus::Published);
    let second = stages::check::run(fx.ctx(), BUCKET, &first.input.key, VERSION)
        .await
        .expect("contract-check runs");
    // The version is published: the record (one per input) says so still.
    assert_eq!(second.status, RunStatus::Published);
    assert_eq!(second.outputs, first.outputs);
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(second.rows_in, 4);
    assert_eq!(
        second.notes,
        [format!(
            "version `{}` was already published; event sent again",
            first.run_id
        )]
    );
    let log = publish::commits(&fx.ctx().storage, BUCKET, "orders")
        .await
        .expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].1.mode, CommitMode::Append);
    assert_eq!(
        fx.keys("products/orders/").await.len(),
        4,
        "no second set of files"
    );
    let events = fx.published();
    assert_eq!(events.len(), 2, "the event is sent again");
    assert_eq!(events[1].commit_key, events[0].commit_key);
    assert_eq!(events[1].version, events[0].version);
    assert_eq!(events[1].rows, 4);
    assert_eq!(events[1].partitions, events[0].partitions);
    // The commit remembers its checks, so the event sent again carries them too.
    assert_eq!(events[1].checks, events[0].checks);
    assert_ne!(events[1].checks, CheckCounts::default());
    // A different input is a new version, appended.
    let other = fx
        .publish(
            "raw/orders/day2.csv",
            format!("{HEADER}O-9,,9.00,2024-05-03,\n"),
        )
        .await;
    assert_eq!(other.status, RunStatus::Published);
    assert_ne!(other.run_id, first.run_id);
    let log = publish::commits(&fx.ctx().storage, BUCKET, "orders")
        .await
        .expect("log");
    assert_eq!(log.len(), 2);
    assert!(log[1].0.ends_with("00000000000000000002.json"));
    assert_eq!(publish::live_files(&log).len(), 3);
    let all = published_column(&fx, "orders", "order_id").await;
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(Option::is_some));
    let first_nulls = fx.batches(&log[0].1.files[0]).await[0]
        .column(1)
        .null_count();
    assert_eq!(first_nulls, 1, "O-2 has no e-mail");
}

#[tokio::test]
async fn concurrent_versions_take_distinct_commit_slots() {
    let fx = Fx::orders("");
    let mut clean_keys = Vec::new();
    for (i, day) in ["2024-05-01", "2024-05-02", "2024-05-03"]
        .iter()
        .enumerate()
    {
        let run = fx
            .ingest_clean(
                &format!("raw/orders/part{i}.csv"),
                format!("{HEADER}O-{i},,1.00,{day},\n"),
            )
            .await;
        clean_keys.push(run.outputs[0].clone());
    }
    let ctx = fx.ctx();
    let (a, b, c) = tokio::join!(
        stages::check::run(ctx, BUCKET, &clean_keys[0], VERSION),
        stages::check::run(ctx, BUCKET, &clean_keys[1], VERSION),
        stages::check::run(ctx, BUCKET, &clean_keys[2], VERSION),
    );
    let runs = [a.expect("a"), b.expect("b"), c.expect("c")];
    assert!(runs.iter().all(|r| r.status == RunStatus::Published));
    let log = publish::commits(&ctx.storage, BUCKET, "orders")
        .await
        .expect("log");
    let slots: Vec<_> = log
        .iter()
        .map(|(k, _)| k.trim_start_matches("products/orders/_commits/").to_owned())
        .collect();
    assert_eq!(
        slots,
        [
            "00000000000000000001.json",
            "00000000000000000002.json",
            "00000000000000000003.json",
        ]
    );
    let mut committed: Vec<_> = log.iter().map(|(_, c)| c.version.clone()).collect();
    let mut expected: Vec<_> = runs.iter().map(|r| r.run_id.clone()).collect();
    committed.sort();
    expected.sort();
    assert_eq!(committed, expected);
    assert_eq!(publish::live_files(&log).len(), 3);
}
