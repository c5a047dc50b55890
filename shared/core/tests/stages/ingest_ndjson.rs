//! ingest of NDJSON files: typing JSON values, nested arrays, bad lines and unknown keys.

use arrow::array::Array;
use arrow::util::display::array_value_to_string;
use serde_json::{Value, json};
use tessera_core::runs::RunStatus;

use crate::ingest_csv::typed;
use crate::support::{Fx, assert_table, cell_matches, lines};

/// Ingests one line `{column: value}`; the value as Arrow displays it (`null` for null), or the
/// quarantine reason.
async fn json_cell(fx: &Fx, case: usize, column: &str, value: &Value) -> Result<String, String> {
    let key = format!("raw/typed_json/case_{case}.ndjson");
    let run = fx
        .ingest(&key, format!("{}\n", json!({ column: value })))
        .await;
    assert_eq!(run.rows_in, 1, "{run:#?}");
    if run.rows_out == 1 {
        let batches = fx.batches(&run.outputs[0]).await;
        let array = batches[0].column_by_name(column).expect("column");
        Ok(if array.is_null(0) {
            "null".into()
        } else {
            array_value_to_string(array, 0).expect("display")
        })
    } else {
        assert_eq!((run.status, run.quarantined), (RunStatus::Skipped, 1));
        let bad = fx.ndjson(&run.outputs[0]).await;
        assert_eq!(bad[0]["line"], 1, "{bad:?}");
        assert_eq!(
            bad[0]["raw"],
            json!({ column: value }),
            "the raw line is kept"
        );
        Err(bad[0]["reason"].as_str().expect("reason").to_owned())
    }
}

type Expect = Result<&'static str, &'static str>;

#[tokio::test]
async fn json_values_are_typed_per_contract() {
    let fx = typed();
    let cases: Vec<(&str, Value, Expect)> = vec![
        ("id", json!(42), Ok("42")),
        ("id", json!("42"), Ok("42")),
        ("id", json!(null), Ok("null")),
        ("id", json!(1.5), Err("`1.5` is not an integer")),
        (
            "id",
            json!(true),
            Err("cannot read `true` as an integer (Int64)"),
        ),
        (
            "small",
            json!(3_000_000_000_i64),
            Err("`3000000000` does not fit Int32"),
        ),
        ("label", json!("text"), Ok("text")),
        ("label", json!(""), Ok("null")),
        ("label", json!(42), Ok("42")),
        ("label", json!({"a": [1, 2]}), Ok(r#"{"a":[1,2]}"#)),
        ("amount", json!(12.5), Ok("12.50")),
        ("amount", json!(0.29), Ok("0.29")),
        ("amount", json!(7), Ok("7.00")),
        ("amount", json!("19.99"), Ok("19.99")),
        ("amount", json!(-0.07), Ok("-0.07")),
        // Exact scale, as for text: a number with more decimals than the scale is refused,
        // never rounded.
        (
            "amount",
            json!(1.234),
            Err("`1.234` has more than 2 decimal places"),
        ),
        (
            "amount",
            json!(19.999),
            Err("`19.999` has more than 2 decimal places"),
        ),
        (
            "amount",
            json!("1.234"),
            Err("`1.234` has more than 2 decimal places"),
        ),
        ("amount", json!(1.5e2), Ok("150.00")),
        (
            "amount",
            json!(2e-3),
            Err("`0.002` has more than 2 decimal places"),
        ),
        (
            "amount",
            json!(123_456_789.5),
            Err("does not fit decimal(10,2)"),
        ),
        (
            "amount",
            json!([1]),
            Err("a JSON array cannot be Decimal128(10, 2)"),
        ),
        ("ts", json!(1_714_557_600), Ok("2024-05-01T10:00:00Z")),
        (
            "ts",
            json!("2024-05-01T12:00:00+02:00"),
            Ok("2024-05-01T10:00:00Z"),
        ),
        (
            "ts",
            json!("2024-05-01 10:00:00"),
            Ok("2024-05-01T10:00:00Z"),
        ),
        ("ts", json!("1714557600"), Ok("2024-05-01T10:00:00Z")),
        ("ts", json!(1.5), Err("cannot read `1.5` as a timestamp")),
        // Epoch numbers follow the digit rule of text: 9 to 11 digits are seconds, 12 or 13
        // milliseconds.
        (
            "ts",
            json!(1714557600123_i64),
            Ok("2024-05-01T10:00:00.123Z"),
        ),
        (
            "local_ts",
            json!("2024-05-01T12:00:00"),
            Ok("2024-05-01T10:00:00Z"),
        ),
        ("day", json!("2024-05-01"), Ok("2024-05-01")),
        (
            "day",
            json!(20240501),
            Err("cannot read `20240501` as a date"),
        ),
        ("flag", json!(true), Ok("true")),
        ("flag", json!("no"), Ok("false")),
        ("flag", json!(0), Ok("false")),
        (
            "flag",
            json!("perhaps"),
            Err("cannot read `perhaps` as a boolean"),
        ),
        ("ratio", json!(2.5), Ok("2.5")),
        ("ratio", json!("0.5"), Ok("0.5")),
        (
            "items",
            json!([{"sku": "A", "qty": 2}, {"sku": "B", "qty": null}, {"qty": 1}]),
            Ok("[{sku: A, qty: 2}, {sku: B, qty: }, {sku: , qty: 1}]"),
        ),
        ("items", json!([]), Ok("[]")),
        (
            "items",
            json!(r#"[{"sku":"C","qty":3}]"#),
            Ok("[{sku: C, qty: 3}]"),
        ),
        (
            "items",
            json!([{"sku": "A"}, {"sku": "B", "qty": "x"}]),
            Err("item 1: field `qty`: cannot read `x` as an integer (Int32)"),
        ),
        (
            "items",
            json!({"sku": "A"}),
            Err("a JSON object cannot be List"),
        ),
    ];
    let mut failures = Vec::new();
    for (case, (column, value, expected)) in cases.iter().enumerate() {
        let actual = json_cell(&fx, case, column, value).await;
        if !cell_matches(column, &actual, expected) {
            failures.push(format!(
                "{column} = {value}: expected {expected:?}, got {actual:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn bad_lines_are_quarantined_blank_lines_skipped_unknown_keys_noted() {
    let fx = typed();
    let file = concat!(
        "\u{feff}{\"id\": 1, \"label\": \"a\", \"items\": [{\"sku\": \"A\", \"qty\": 2}, {\"sku\": \"B\"}], \"extra\": true}\n",
        "\n",
        "   \r\n",
        "{\"id\": 2, \"label\": null}\r\n",
        "{\"id\": 3, \"label\": \"trailing\"\n",
        "[1, 2]\n",
        "\"just text\"\n",
        "{\"id\": \"x\"}\n",
        "{}\n",
        "{\"id\": 4, \"items\": [], \"other\": {\"deep\": 1}, \"label\": \"d\"}",
    );
    let run = fx.ingest("raw/typed_json/mixed.ndjson", file).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    // Blank lines are not rows; every other line is, good or bad.
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (8, 4, 4));
    // Keys no object has are drift too: recorded, read as null.
    let missing = ["amount", "ts", "local_ts", "day", "small", "flag", "ratio"];
    let mut notes: Vec<String> = missing
        .iter()
        .map(|k| format!("key `{k}` is in no object of the file: read as null"))
        .collect();
    notes.push("key `extra` is not in the contract: dropped".into());
    notes.push("key `other` is not in the contract: dropped".into());
    assert_eq!(run.notes, notes);
    assert_eq!(run.drift.unknown, ["extra", "other"]);
    assert_eq!(run.drift.missing, missing);
    let batches = fx.batches(&run.outputs[0]).await;
    let projected: Vec<_> = batches
        .iter()
        .map(|b| b.project(&[0, 1, 9]).expect("project"))
        .collect();
    assert_table(
        &lines(&projected),
        &[
            "+----+-------+-------------------------------------+",
            "| id | label | items                               |",
            "+----+-------+-------------------------------------+",
            "| 1  | a     | [{sku: A, qty: 2}, {sku: B, qty: }] |",
            "| 2  |       |                                     |",
            "|    |       |                                     |",
            "| 4  | d     | []                                  |",
            "+----+-------+-------------------------------------+",
        ],
    );
    // Absent keys and JSON nulls are nulls, in every column.
    let empty_row = 2;
    for column in batches[0].columns() {
        assert!(column.is_null(empty_row));
    }
    let bad = fx.ndjson(&run.outputs[1]).await;
    let summary: Vec<_> = bad
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().expect("line"),
                b["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 4, "{summary:?}");
    assert_eq!(summary[0].0, 5);
    assert!(summary[0].1.starts_with("malformed JSON: "), "{summary:?}");
    assert_eq!(bad[0]["raw"], json!("{\"id\": 3, \"label\": \"trailing\""));
    assert_eq!(
        summary[1..],
        [
            (6, "line is not a JSON object".to_owned()),
            (7, "line is not a JSON object".to_owned()),
            (
                8,
                "column `id`: cannot read `x` as an integer (Int64)".to_owned()
            ),
        ]
    );
    assert_eq!(bad[1]["raw"], json!([1, 2]));
}

#[tokio::test]
async fn large_files_keep_order_quarantine_lines_and_drift_across_typing_chunks() {
    // 20,000 lines over several chunks of 8,192: every 997th line is broken JSON, and the only
    // undeclared key and the only `flag` come in the last chunk.
    let fx = typed();
    let mut file = String::new();
    for i in 1..=20_000u64 {
        if i % 997 == 0 {
            file.push_str("{\"id\": \n");
        } else if i == 19_999 {
            file.push_str(&format!("{{\"id\": {i}, \"late\": 1, \"flag\": true}}\n"));
        } else {
            file.push_str(&format!("{{\"id\": {i}}}\n"));
        }
    }
    let run = fx.ingest("raw/typed_json/big.ndjson", file).await;
    let bad = 20_000 / 997;
    assert_eq!(
        (run.rows_in, run.rows_out, run.quarantined),
        (20_000, 20_000 - bad, bad)
    );
    assert_eq!(run.drift.unknown, ["late"]);
    assert!(
        !run.drift.missing.contains(&"flag".to_owned()),
        "{:?}",
        run.drift.missing
    );
    let lines: Vec<u64> = fx
        .ndjson(&run.outputs[1])
        .await
        .iter()
        .map(|q| q["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, (1..=bad).map(|k| k * 997).collect::<Vec<_>>());
    let mut ids = Vec::new();
    for batch in fx.batches(&run.outputs[0]).await {
        let column = batch.column_by_name("id").expect("id");
        ids.extend((0..column.len()).map(|r| array_value_to_string(column, r).expect("id")));
    }
    let expected: Vec<String> = (1..=20_000u64)
        .filter(|i| i % 997 != 0)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ids, expected);
}
