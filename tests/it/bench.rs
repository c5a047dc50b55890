//! `tessera bench run` on the committed orders sample (`bench/orders/sample/`, written by the
//! benchmark's generator: 1,000 records, seed 5, with a byte-order mark): the counts the
//! generator expects, the quarantine reasons, the peers' layout, for CSV and NDJSON; then the
//! outputs read back by pyarrow when `TESSERA_PYTHON` (or `python3`) has it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tessera_cli::bench::{self, BenchFormat};
use tessera_core::mesh::Mesh;
use tessera_tests::{python, repo_root};

const READER: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
out = sys.argv[1]
clean = ds.dataset(out + "/clean", format="parquet",
                   partitioning=ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive"))
files = sorted(clean.files)
file_columns = pq.read_schema(files[0]).names
table = clean.to_table()
quar = pq.read_table(out + "/quarantine/part-0.parquet")
agg = pq.read_table(out + "/agg/daily_country.parquet")
keys = [(r["dt"], r["country"] is None, r["country"] or "", r["currency"]) for r in agg.to_pylist()]
codecs = {pq.ParquetFile(f).metadata.row_group(0).column(0).compression for f in files}
print(json.dumps({
    "clean_rows": table.num_rows,
    "file_columns": file_columns,
    "types": {f.name: str(f.type) for f in table.schema},
    "days": sorted(set(table.column("dt").to_pylist())),
    "quarantine_rows": quar.num_rows,
    "quarantine_columns": quar.schema.names,
    "agg_rows": agg.num_rows,
    "agg_orders": sum(agg.column("orders").to_pylist()),
    "agg_sorted": keys == sorted(keys),
    "codecs": sorted(codecs),
}))
"#;

fn expected() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("bench/orders/sample/orders_1000.expected.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn bench_run(file: &str, out: &Path, format: Option<BenchFormat>) -> Value {
    let mesh = Mesh::load(&repo_root().join("bench/orders/mesh.toml")).unwrap();
    let raw = repo_root().join("bench/orders/sample").join(file);
    bench::run(mesh, "embedded", &raw, out, format)
        .await
        .unwrap()
}

#[tokio::test]
async fn bench_run_matches_the_generator_and_lays_out_like_the_peers() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    for (file, format) in [("orders_1000.csv", "csv"), ("orders_1000.ndjson", "ndjson")] {
        let out = dir.path().join(format);
        let report = bench_run(file, &out, None).await;
        assert_eq!(report["format"], format);
        for k in [
            "rows_in",
            "exact_duplicates_dropped",
            "superseded_versions_dropped",
            "quarantined",
            "rows_out",
            "quarantine_by_reason",
        ] {
            assert_eq!(report[k], exp[k], "{format}: {k}: {report:#}");
        }
        assert_eq!(report["peer"], "tessera");
        assert_eq!(report["contract_passed"], true, "{report:#}");
        assert_eq!(report["balanced"], true, "{report:#}");
        // The sample spans the 31 days of March 2024.
        assert_eq!(report["partitions"], 31, "{report:#}");
        for stage in [
            "ingest",
            "clean",
            "contract_check",
            "aggregate",
            "catalog_register",
        ] {
            assert!(
                report["stage_seconds"][stage].is_number(),
                "{stage}: {report:#}"
            );
        }
        // The layout: report.json, clean/dt=YYYY-MM-DD/*.parquet, quarantine, agg.
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(written, report);
        let mut days: Vec<String> = std::fs::read_dir(out.join("clean"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        days.sort();
        assert_eq!(days.len(), 31);
        assert_eq!(days[0], "dt=2024-03-01");
        assert_eq!(days[30], "dt=2024-03-31");
        for day in &days {
            let files: Vec<_> = std::fs::read_dir(out.join("clean").join(day))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                !files.is_empty() && files.iter().all(|f| f.ends_with(".parquet")),
                "{day}: {files:?}"
            );
        }
        assert!(out.join("quarantine/part-0.parquet").is_file());
        assert!(out.join("agg/daily_country.parquet").is_file());

        read_back_with_pyarrow(&out, &exp);
    }
    // `--format` wins over the suffix.
    let out = dir.path().join("forced");
    let report = bench_run("orders_1000.ndjson", &out, Some(BenchFormat::Ndjson)).await;
    assert_eq!(report["rows_out"], exp["rows_out"]);
}

/// The outputs as pyarrow reads them (skipped, with a note, where pyarrow is not installed).
fn read_back_with_pyarrow(out: &Path, exp: &Value) {
    let has_pyarrow = Command::new(python())
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyarrow {
        eprintln!("pyarrow not found in {}: read-back skipped", python());
        return;
    }
    let output = Command::new(python())
        .arg("-c")
        .arg(READER)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(got["clean_rows"], exp["rows_out"], "{got:#}");
    assert_eq!(
        got["file_columns"],
        serde_json::json!([
            "order_id",
            "customer_id",
            "customer_email",
            "order_ts",
            "status",
            "amount",
            "currency",
            "country",
            "items",
            "notes",
            "updated_at"
        ]),
        "{got:#}"
    );
    assert_eq!(got["types"]["order_ts"], "timestamp[us, tz=UTC]");
    assert_eq!(got["types"]["amount"], "decimal128(12, 2)");
    assert_eq!(
        got["types"]["items"],
        "list<item: struct<sku: string, qty: int32, unit_price: decimal128(12, 2)>>"
    );
    assert_eq!(got["quarantine_rows"], exp["quarantined"]);
    let columns = got["quarantine_columns"].as_array().unwrap();
    for c in [
        "order_id",
        "customer_id",
        "customer_email",
        "order_ts_raw",
        "status",
        "amount_raw",
        "currency",
        "country",
        "reason",
    ] {
        assert!(columns.iter().any(|v| v == c), "{c} in {columns:?}");
    }
    assert_eq!(got["agg_orders"], exp["rows_out"]);
    assert_eq!(got["agg_sorted"], true, "{got:#}");
    assert_eq!(got["codecs"], serde_json::json!(["ZSTD"]), "{got:#}");
}
