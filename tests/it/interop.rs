//! Parquet written by Tessera, read back by another reader (pyarrow): same rows, same types.

use std::process::Command;

use arrow::array::{Array, AsArray};
use tessera_cli::commands;
use tessera_tests::{embedded, python};

const READER: &str = r#"
import json, sys, pyarrow as pa, pyarrow.parquet as pq
table = pa.concat_tables([pq.read_table(f) for f in sys.argv[1:]])
rows = []
for r in table.to_pylist():
    rows.append([r["order_id"], str(r["amount"]), r["order_ts"].isoformat(), str(r["order_date"]), r["status"], r["notes"]])
rows.sort()
print(json.dumps({"types": {f.name: str(f.type) for f in table.schema}, "rows": rows}))
"#;

#[tokio::test]
async fn published_parquet_reads_the_same_in_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    let s = commands::run(&emb).await.unwrap();
    assert!(s.failures.is_empty());

    let batches = commands::query(&emb.context,
        "SELECT order_id, CAST(amount AS VARCHAR) AS amount, order_ts, CAST(order_date AS VARCHAR) AS order_date, status, notes \
         FROM sales.orders ORDER BY order_id",
    )
    .await
    .unwrap();
    let mut ours = Vec::new();
    for b in &batches {
        let ts = b
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let strings: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            let text = |c: usize| strings[c].as_string::<i32>().value(i).to_owned();
            let when = chrono_iso(ts.value(i));
            let notes = if b.column(5).is_null(i) {
                serde_json::Value::Null
            } else {
                text(5).into()
            };
            ours.push(serde_json::json!([
                text(0),
                text(1),
                when,
                text(3),
                text(4),
                notes
            ]));
        }
    }

    // The files of the committed versions, as a reader outside Tessera would find them.
    let bucket = "tessera-sample-sales";
    let log = tessera_core::publish::commits(&emb.context.storage, bucket, "orders")
        .await
        .unwrap();
    let files: Vec<_> = tessera_core::publish::live_files(&log)
        .iter()
        .map(|k| dir.path().join(bucket).join(k))
        .collect();
    assert_eq!(files.len(), 2);
    let out = Command::new(python())
        .arg("-c")
        .arg(READER)
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs["rows"], serde_json::Value::Array(ours));
    assert_eq!(theirs["types"]["amount"], "decimal128(12, 2)");
    assert_eq!(theirs["types"]["order_ts"], "timestamp[us, tz=UTC]");
}

/// ISO 8601 as Python's `datetime.isoformat()` writes a UTC time.
fn chrono_iso(micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap();
    let fraction = if micros % 1_000_000 == 0 {
        String::new()
    } else {
        t.format(".%6f").to_string()
    };
    format!("{}{fraction}+00:00", t.format("%Y-%m-%dT%H:%M:%S"))
}
