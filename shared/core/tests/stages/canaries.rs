//! Personal-data canaries: values seeded into a personal (`pii`) column never come out unmasked
//! where consumers look (products, the refused versions' data and reports under
//! `quarantine/<product>/contract-check/`, events, the catalog) nor in the logs. They stay in the
//! zones only the producing domain reads (raw files, row quarantine of ingest and clean), where
//! fixing the data needs them: the scans find them there, which shows they could find them
//! anywhere.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use tessera_core::events::BusEvent;
use tessera_core::function::handle_any;
use tessera_core::routing::targets;

use crate::support::{Fx, ORDERS_CONTRACT, ORDERS_CSV};

const HEADER: &str = "order_id,email,amount,order_day,note\n";

fn canary(n: usize) -> String {
    format!("canary-{n:04}-7f3a9c@pii.example")
}

/// Logs written during the test, as the functions write them (JSON lines).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every text value of a Parquet object's text columns, and its column names.
async fn parquet_text(fx: &Fx, key: &str) -> String {
    let mut out = String::new();
    for batch in fx.batches(key).await {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            out.push_str(field.name());
            out.push('\n');
            if let DataType::Utf8 = column.data_type() {
                let text = column.as_string::<i32>();
                for i in 0..text.len() {
                    if text.is_valid(i) {
                        out.push_str(text.value(i));
                        out.push('\n');
                    }
                }
            }
        }
    }
    out
}

/// The readable text of every object under `prefix`: Parquet decoded, the rest as it is.
async fn text_under(fx: &Fx, prefix: &str) -> (usize, String) {
    let keys = fx.keys(prefix).await;
    let mut out = String::new();
    for key in &keys {
        if key.ends_with(".parquet") {
            out.push_str(&parquet_text(fx, key).await);
        } else {
            out.push_str(&String::from_utf8_lossy(&fx.get(key).await));
        }
    }
    (keys.len(), out)
}

fn count(text: &str) -> usize {
    (0..100).filter(|n| text.contains(&canary(*n))).count()
}

#[tokio::test]
async fn personal_data_canaries_never_reach_consumers_or_logs() {
    // `email` is `pii`, hashed; a rule refuses a file with more than 20% of e-mails missing.
    let contract = ORDERS_CONTRACT.replace(
        "        classification: pii\n",
        "        classification: pii\n        quality:\n          - name: email_mostly_present\n            \
         type: library\n            metric: missingValues\n            unit: percent\n            \
         mustBeLessThan: 20\n",
    );
    let fx = Fx::new(ORDERS_CSV, &[("orders.odcs.yaml", &contract)]);
    // Published: four orders. Refused by the rule: two of four without an e-mail. One row of the
    // third file has a bad amount and is quarantined by ingest (the producer's zone).
    let files = [
        (
            "published.csv",
            format!(
                "{HEADER}O-1,{},1.00,2024-05-01,\nO-2,{},2.00,2024-05-01,\nO-3,{},3.00,2024-05-02,\nO-4,{},4.00,2024-05-02,\n",
                canary(1),
                canary(2),
                canary(3),
                canary(4)
            ),
        ),
        (
            "refused.csv",
            format!(
                "{HEADER}O-5,{},5.00,2024-05-01,\nO-6,,6.00,2024-05-01,\nO-7,,7.00,2024-05-02,\nO-8,{},8.00,2024-05-02,\n",
                canary(5),
                canary(8)
            ),
        ),
        (
            "bad_row.csv",
            format!(
                "{HEADER}O-9,{},9.00,2024-05-03,\nO-10,{},oops,2024-05-03,\n",
                canary(9),
                canary(10)
            ),
        ),
    ];

    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    // The whole process's subscriber: this test has its own binary (`tests/canaries.rs`), so no
    // other test's threads race with it for the logging dispatcher.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    for (name, data) in &files {
        fx.put(&format!("raw/orders/{name}"), data.clone()).await;
    }
    let mut events: Vec<BusEvent> = Vec::new();
    while let Some(event) = fx.emb.bus.pop() {
        for function in targets(&event) {
            handle_any(fx.ctx(), function, &event.to_json())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", function.name()));
        }
        events.push(event);
    }

    // Consumers' side: products, refused versions, events, the catalog, and the logs.
    let (products, text) = text_under(&fx, "products/").await;
    assert!(products >= 4, "{products} product objects");
    assert_eq!(count(&text), 0, "a canary in products/");
    let (refused, text) = text_under(&fx, "quarantine/orders/contract-check/").await;
    assert_eq!(
        refused, 3,
        "the refused version's report and its data, one file per day"
    );
    assert!(text.contains("O-5"), "the refused data is there");
    assert_eq!(count(&text), 0, "a canary in a refused version's copy");
    let events: String = events.iter().map(|e| e.to_json().to_string()).collect();
    assert!(events.contains("ContractViolated"));
    assert_eq!(count(&events), 0, "a canary in an event");
    let mut catalog = String::new();
    for entry in walk(&fx.emb.warehouse.join("_catalog")) {
        catalog.push_str(&std::fs::read_to_string(entry).unwrap());
    }
    assert!(catalog.contains("orders"));
    assert_eq!(count(&catalog), 0, "a canary in the catalog");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("run finished"), "the logs were captured");
    assert_eq!(count(&logs), 0, "a canary in the logs");

    // The producer's zones keep them: the raw files, and the row ingest refused.
    let (_, raw) = text_under(&fx, "raw/").await;
    assert_eq!(count(&raw), 8, "every canary seeded");
    let (_, rows) = text_under(&fx, "quarantine/orders/ingest/").await;
    assert_eq!(count(&rows), 1, "{rows}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
