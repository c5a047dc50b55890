//! Domain events from EventBridge batched into the raw zone at Firehose's layout, and the chain
//! that publishes them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tessera_core::domain_events;
use tessera_core::function::{FunctionError, Outcome, handle_any};
use tessera_core::routing::Function;

use crate::support::{BUCKET, Fx};

const PLACED_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:order_events
version: 1.0.0
status: active
schema:
  - name: order_events
    properties:
      - name: order_id
        logicalType: string
        required: true
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
        required: true
      - name: placed_at
        logicalType: timestamp
        required: true
"#;

fn fixture() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "order_events"
contract = "order_events.odcs.yaml"
source = { format = "ndjson", events = { source = "com.example.shop", detail_type = ["OrderPlaced", "OrderAmended"] } }
"#,
        &[("order_events.odcs.yaml", PLACED_CONTRACT)],
    )
}

/// A full EventBridge event.
fn event(source: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type, "source": source, "account": "111122223333",
        "time": "2024-05-01T07:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": detail,
    })
}

struct InProcess<'a>(&'a Fx);

#[async_trait]
impl tessera_core::router::Invoker for InProcess<'_> {
    async fn invoke(&self, f: Function, event: Value) -> Result<Outcome, FunctionError> {
        handle_any(self.0.ctx(), f, &event).await
    }
}

#[tokio::test]
async fn a_batch_lands_at_the_firehose_layout_and_the_chain_publishes_its_details() {
    let fx = fixture();
    let at: DateTime<Utc> = "2024-05-01T07:08:09Z".parse().unwrap();
    let batch = domain_events::parse_batch(
        &[
            event(
                "com.example.shop",
                "OrderPlaced",
                json!({"order_id": "O-1", "amount": 10.5, "placed_at": "2024-05-01T07:00:00Z"}),
            ),
            event(
                "com.example.shop",
                "OrderAmended",
                json!({"order_id": "O-1", "amount": 12, "placed_at": "2024-05-01T07:00:00Z"}),
            ),
            event("com.example.other", "OrderPlaced", json!({"order_id": "X"})),
            event(
                "com.example.shop",
                "OrderShipped",
                json!({"order_id": "O-1"}),
            ),
            event("com.example.shop", "OrderPlaced", json!("not an object")),
            event(
                "com.example.shop",
                "OrderPlaced",
                json!({"order_id": "O-2", "amount": "oops", "placed_at": "2024-05-01T07:01:00Z"}),
            ),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n"),
    )
    .unwrap();
    let delivery = domain_events::put(fx.ctx(), "shop", "order_events", &batch, at)
        .await
        .unwrap();
    let key = delivery.key.clone().unwrap();
    let stream = "tessera-test-shop-order_events-events";
    assert!(
        key.starts_with(&format!(
            "raw/order_events/2024/05/01/07/{stream}-1-2024-05-01-07-08-09-"
        )),
        "{key}"
    );
    assert_eq!((delivery.bucket.as_str(), delivery.written), (BUCKET, 3));
    let skipped: Vec<usize> = delivery.skipped.iter().map(|(i, _)| *i).collect();
    assert_eq!(skipped, [2, 3, 4], "{:?}", delivery.skipped);
    assert!(delivery.skipped[0].1.contains("source `com.example.other`"));
    assert!(delivery.skipped[2].1.contains("no `detail` object"));
    // NDJSON of the details, as Firehose writes with AppendDelimiterToRecord.
    let lines = fx.ndjson(&key).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["order_id"], "O-1");
    assert!(lines[0].get("detail-type").is_none());

    // The embedded bus announced the object: ingest, clean and contract-check follow.
    let deliveries = tessera_core::router::drain(&fx.emb.bus, &InProcess(&fx), 100)
        .await
        .unwrap();
    let ran: Vec<&str> = deliveries
        .iter()
        .filter(|d| d.result.is_ok())
        .map(|d| d.function.name())
        .collect();
    assert!(
        ["ingest", "clean", "contract-check"]
            .iter()
            .all(|f| ran.contains(f)),
        "{ran:?}"
    );
    let ingest = fx.keys("runs/order_events/ingest/").await;
    assert_eq!(ingest.len(), 1);
    let record = fx.json(&ingest[0]).await;
    assert_eq!(
        (&record["rows_in"], &record["quarantined"]),
        (&json!(3), &json!(1))
    );
    let log = tessera_core::publish::commits(&fx.ctx().storage, BUCKET, "order_events")
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].1.rows, 2);
    assert_eq!(log[0].1.source.split('/').next(), Some("clean"));

    // The same batch again: the same object (its id hashes its content).
    let again = domain_events::put(fx.ctx(), "shop", "order_events", &batch, at)
        .await
        .unwrap();
    assert_eq!(again.key, delivery.key);
}

#[tokio::test]
async fn only_a_product_declaring_events_takes_them() {
    let fx = Fx::orders("");
    let err = domain_events::put(fx.ctx(), "shop", "orders", &[], Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("declares no `source.events`"), "{err}");
    let fx = fixture();
    let none = domain_events::put(
        fx.ctx(),
        "shop",
        "order_events",
        &[event("elsewhere", "OrderPlaced", json!({}))],
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!((none.key, none.written), (None, 0));
    assert!(fx.keys("raw/").await.is_empty());
}

#[test]
fn events_are_refused_on_a_format_other_than_ndjson_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("order_events.odcs.yaml"), PLACED_CONTRACT).unwrap();
    let toml = "[mesh]\nname = \"t\"\n\n[[domains]]\nname = \"shop\"\n\n[[domains.products]]\n\
                name = \"order_events\"\ncontract = \"order_events.odcs.yaml\"\n\
                source = { format = \"csv\", events = { source = \"s\", detail_type = \"T\" } }\n";
    let err = tessera_core::mesh::Mesh::from_toml_with_salt(toml, "mesh.toml", dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mesh.toml:10:10: product `order_events`")
            && err.contains("use `format = \"ndjson\"`"),
        "{err}"
    );
}
