//! What runs tell the outside world: OpenLineage run events over HTTP (a real server on
//! loopback, as Marquez would take them) and into a file, and the Embedded Metric Format lines
//! CloudWatch turns into metrics.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tessera_core::function::handle_any;
use tessera_core::lineage::{Target, emf};
use tessera_core::routing::targets;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::Fx;

const DAY: &str = "order_id,email,amount,order_day,note\n\
O-1,a@example.com,1.00,2024-05-01,\n\
O-2,b@example.com,oops,2024-05-01,\n";

/// Runs every event on the bus through its functions; returns the run records.
async fn drain(fx: &Fx) -> Vec<tessera_core::runs::RunRecord> {
    let mut runs = Vec::new();
    while let Some(event) = fx.emb.bus.pop() {
        for function in targets(&event) {
            let outcome = handle_any(fx.ctx(), function, &event.to_json())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", function.name()));
            runs.extend(outcome.runs);
        }
    }
    runs
}

/// An HTTP server on loopback that keeps the JSON body of every POST and answers `status`.
async fn lineage_server(status: &'static str) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            // The head, then as many bytes of body as it says.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break (head.to_owned(), body.to_owned());
                    }
                } else if n == 0 {
                    break (text, String::new());
                }
            };
            let line = head.lines().next().unwrap_or_default().to_owned();
            if let Ok(body) = serde_json::from_str(&body) {
                kept.lock().unwrap().push((line, body));
            }
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.ok();
        }
    });
    (authority, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_posts_an_openlineage_run_event() {
    let mut fx = Fx::orders("");
    let (authority, seen) = lineage_server("201 Created").await;
    fx.emb.context.lineage =
        Some(Target::parse(&format!("http://{authority}/api/v1/lineage")).unwrap());
    fx.put("raw/orders/day1.csv", DAY).await;
    let runs = drain(&fx).await;
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), runs.len(), "one event per run");
    let jobs: Vec<String> = events
        .iter()
        .map(|(_, e)| e["job"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        jobs,
        [
            "orders.ingest",
            "orders.clean",
            "orders.contract-check",
            "orders.catalog-register"
        ]
    );
    for (line, e) in &events {
        assert_eq!(line, "POST /api/v1/lineage HTTP/1.1");
        assert_eq!(e["eventType"], "COMPLETE");
        assert_eq!(e["job"]["namespace"], "tessera://test/shop");
        assert_eq!(e["schemaURL"], tessera_core::lineage::SCHEMA_URL);
        let id = e["run"]["runId"].as_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "5", "a name-based UUID: {id}");
        assert!(
            e["eventTime"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .is_ok()
        );
    }
    // Ingest read the raw file (2 rows) and wrote the staged file (1 row) and the quarantine.
    let ingest = &events[0].1;
    assert_eq!(ingest["inputs"][0]["namespace"], "s3://shop-bucket");
    assert_eq!(ingest["inputs"][0]["name"], "raw/orders/day1.csv");
    assert_eq!(
        ingest["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"],
        2
    );
    assert_eq!(ingest["run"]["facets"]["tessera_run"]["quarantined"], 1);
    // contract-check published the product: its files carry the contract's schema.
    let check = &events[2].1;
    let outputs = check["outputs"].as_array().unwrap();
    let data = outputs
        .iter()
        .find(|o| o["name"].as_str().unwrap().ends_with(".parquet"))
        .expect("a product file");
    let fields: Vec<&str> = data["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["order_id", "email", "amount", "order_day", "note"]);
    assert_eq!(
        data["facets"]["schema"]["fields"][2]["type"],
        "decimal(10,2)"
    );
    assert_eq!(
        check["inputs"][0]["inputFacets"]["tessera_checks"]["failed"],
        0
    );
    // The same run reported again has the same run id.
    assert_eq!(
        tessera_core::lineage::run_uuid(&runs[0]),
        events[0].1["run"]["runId"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_goes_to_a_file_and_a_failing_endpoint_fails_no_run() {
    let mut fx = Fx::orders("");
    let file = fx._dir.path().join("lineage/events.ndjson");
    fx.emb.context.lineage = Some(Target::parse(file.to_str().unwrap()).unwrap());
    fx.put("raw/orders/day1.csv", DAY).await;
    let runs = drain(&fx).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), runs.len());
    assert!(
        lines
            .iter()
            .all(|e| e["producer"] == tessera_core::lineage::PRODUCER)
    );

    // An endpoint that refuses the events, and one that is not there: the runs still succeed.
    for status in ["500 Internal Server Error", "none"] {
        let mut fx = Fx::orders("");
        let authority = if status == "none" {
            // A port nothing listens on.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap().to_string();
            drop(l);
            a
        } else {
            lineage_server(status).await.0
        };
        fx.emb.context.lineage = Some(Target::parse(&format!("http://{authority}/x")).unwrap());
        fx.put("raw/orders/day1.csv", DAY).await;
        let runs = drain(&fx).await;
        assert_eq!(runs.len(), 4, "{status}");
    }
}

#[tokio::test]
async fn every_run_has_an_embedded_metric_format_line() {
    let fx = Fx::orders("");
    fx.put("raw/orders/day1.csv", DAY).await;
    let runs = drain(&fx).await;
    let ingest = emf(&runs[0]);
    let definition = &ingest["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(definition["Namespace"], "Tessera");
    assert_eq!(
        definition["Dimensions"],
        serde_json::json!([["Domain", "Product", "Stage"]])
    );
    // Every metric and dimension the definition names is a number or text of the line.
    for metric in definition["Metrics"].as_array().unwrap() {
        let name = metric["Name"].as_str().unwrap();
        assert!(ingest[name].is_u64(), "{name} in {ingest}");
    }
    for dimension in ["Domain", "Product", "Stage"] {
        assert!(ingest[dimension].is_string(), "{dimension}");
    }
    assert_eq!(
        (
            &ingest["Stage"],
            &ingest["RowsIn"],
            &ingest["RowsOut"],
            &ingest["RowsQuarantined"]
        ),
        (
            &serde_json::json!("ingest"),
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(1)
        )
    );
    assert!(ingest["_aws"]["Timestamp"].as_i64().unwrap() >= runs[0].started_at.timestamp_millis());
}
