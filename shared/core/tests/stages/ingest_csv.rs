//! ingest of CSV files: header mapping, RFC 4180 quoting, encodings, typing and quarantine.

use arrow::array::{Array, AsArray};
use arrow::util::display::array_value_to_string;
use serde_json::json;
use tessera_core::runs::RunStatus;

use crate::support::{Fx, assert_table, cell_matches};

/// A contract with one column of each type ingest reads.
pub const TYPED_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:typed
version: 1.0.0
status: active
schema:
  - name: typed
    properties:
      - name: id
        logicalType: integer
      - name: label
        logicalType: string
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
      - name: ts
        logicalType: timestamp
      - name: local_ts
        logicalType: timestamp
        logicalTypeOptions:
          defaultTimezone: Europe/Paris
      - name: day
        logicalType: date
      - name: small
        logicalType: integer
        physicalType: int
      - name: flag
        logicalType: boolean
      - name: ratio
        logicalType: number
      - name: items
        logicalType: array
        items:
          logicalType: object
          properties:
            - name: sku
              logicalType: string
            - name: qty
              logicalType: integer
              physicalType: int
"#;

/// `typed` from CSV and `typed_json` from NDJSON, both with [`TYPED_CONTRACT`].
pub fn typed() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "typed"
contract = "typed.odcs.yaml"
source = { format = "csv" }

[[domains.products]]
name = "typed_json"
contract = "typed.odcs.yaml"
source = { format = "ndjson" }
"#,
        &[("typed.odcs.yaml", TYPED_CONTRACT)],
    )
}

/// Ingests a file whose only row is `text` in `column`; the value as Arrow displays it
/// (`null` for null), or the quarantine reason.
async fn csv_cell(fx: &Fx, case: usize, column: &str, text: &str) -> Result<String, String> {
    let key = format!("raw/typed/case_{case}.csv");
    let body = format!("{column}\n\"{}\"\n", text.replace('"', "\"\""));
    let run = fx.ingest(&key, body).await;
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
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0]["line"], 2, "{bad:?}");
        Err(bad[0]["reason"].as_str().expect("reason").to_owned())
    }
}

/// Expected result of one cell: the displayed value, or (part of) the quarantine reason.
type Expect = Result<&'static str, &'static str>;

#[tokio::test]
async fn csv_values_are_typed_per_contract() {
    let fx = typed();
    let cases: &[(&str, &str, Expect)] = &[
        ("id", "42", Ok("42")),
        ("id", " 7 ", Ok("7")),
        ("id", "-9223372036854775808", Ok("-9223372036854775808")),
        ("id", "", Ok("null")),
        ("id", "   ", Ok("null")),
        ("id", "1.5", Err("cannot read `1.5` as an integer (Int64)")),
        (
            "id",
            "12abc",
            Err("cannot read `12abc` as an integer (Int64)"),
        ),
        ("small", "2147483647", Ok("2147483647")),
        (
            "small",
            "3000000000",
            Err("`3000000000` does not fit Int32"),
        ),
        ("label", "  spaced  ", Ok("  spaced  ")),
        ("label", "", Ok("null")),
        ("label", "ünïcødé ✓", Ok("ünïcødé ✓")),
        ("amount", "12.5", Ok("12.50")),
        ("amount", "-0.07", Ok("-0.07")),
        ("amount", "+3", Ok("3.00")),
        ("amount", "1.230", Ok("1.23")),
        ("amount", "00012.30", Ok("12.30")),
        ("amount", "99999999.99", Ok("99999999.99")),
        (
            "amount",
            "1.234",
            Err("`1.234` has more than 2 decimal places"),
        ),
        (
            "amount",
            "100000000.00",
            Err("`100000000.00` does not fit decimal(10,2)"),
        ),
        ("amount", "1e3", Err("cannot read `1e3` as decimal(10,2)")),
        ("amount", "1,5", Err("cannot read `1,5` as decimal(10,2)")),
        ("ts", "2024-05-01T10:00:00Z", Ok("2024-05-01T10:00:00Z")),
        (
            "ts",
            "2024-05-01T12:00:00+02:00",
            Ok("2024-05-01T10:00:00Z"),
        ),
        ("ts", "2024-05-01 12:00:00+0200", Ok("2024-05-01T10:00:00Z")),
        (
            "ts",
            "2024-05-01T05:00:00-05:00",
            Ok("2024-05-01T10:00:00Z"),
        ),
        ("ts", "2024-05-01 10:00:00", Ok("2024-05-01T10:00:00Z")),
        ("ts", "2024-05-01T10:00", Ok("2024-05-01T10:00:00Z")),
        (
            "ts",
            "2024-05-01T10:00:00.123456Z",
            Ok("2024-05-01T10:00:00.123456Z"),
        ),
        ("ts", "1714557600", Ok("2024-05-01T10:00:00Z")),
        ("ts", "1714557600123", Ok("2024-05-01T10:00:00.123Z")),
        ("ts", "2024-05-01", Ok("2024-05-01T00:00:00Z")),
        (
            "ts",
            "2024-02-30 10:00:00",
            Err("cannot read `2024-02-30 10:00:00` as a timestamp"),
        ),
        (
            "ts",
            "yesterday",
            Err("cannot read `yesterday` as a timestamp"),
        ),
        // No offset: the contract's defaultTimezone (summer and winter time); an offset wins.
        (
            "local_ts",
            "2024-05-01 12:00:00",
            Ok("2024-05-01T10:00:00Z"),
        ),
        (
            "local_ts",
            "2024-01-15 12:00:00",
            Ok("2024-01-15T11:00:00Z"),
        ),
        (
            "local_ts",
            "2024-05-01T12:00:00Z",
            Ok("2024-05-01T12:00:00Z"),
        ),
        ("day", "2024-05-01", Ok("2024-05-01")),
        ("day", "2024-02-29", Ok("2024-02-29")),
        (
            "day",
            "2023-02-29",
            Err("cannot read `2023-02-29` as a date"),
        ),
        (
            "day",
            "01/05/2024",
            Err("cannot read `01/05/2024` as a date"),
        ),
        ("flag", "true", Ok("true")),
        ("flag", "FALSE", Ok("false")),
        ("flag", "yes", Ok("true")),
        ("flag", "N", Ok("false")),
        ("flag", "1", Ok("true")),
        ("flag", "0", Ok("false")),
        ("flag", "maybe", Err("cannot read `maybe` as a boolean")),
        ("ratio", "0.25", Ok("0.25")),
        ("ratio", "-1e3", Ok("-1000.0")),
        ("ratio", "NaN", Err("cannot read `NaN` as a number")),
        ("ratio", "inf", Err("cannot read `inf` as a number")),
        (
            "items",
            r#"[{"sku":"A","qty":2},{"sku":"B"}]"#,
            Ok("[{sku: A, qty: 2}, {sku: B, qty: }]"),
        ),
        ("items", "[]", Ok("[]")),
        ("items", "null", Ok("null")),
        (
            "items",
            r#"[{"sku":"A","qty":"two"}]"#,
            Err("item 0: field `qty`: cannot read `two` as an integer (Int32)"),
        ),
        ("items", "not json", Err("cannot read `not json` as JSON")),
        (
            "items",
            r#"{"sku":"A"}"#,
            Err("a JSON object cannot be List"),
        ),
    ];
    let mut failures = Vec::new();
    for (case, (column, text, expected)) in cases.iter().enumerate() {
        let actual = csv_cell(&fx, case, column, text).await;
        if !cell_matches(column, &actual, expected) {
            failures.push(format!(
                "{column} = {text:?}: expected {expected:?}, got {actual:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn header_maps_columns_by_name_in_any_order_and_case() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/shuffled.csv",
            " NOTE ,Order_Day,AMOUNT,email,order_id\n\
             first,2024-05-01,10.5,a@example.com,O-1\n\
             ,2024-05-02,7,,O-2\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (2, 2, 0));
    assert!(run.notes.is_empty(), "{:?}", run.notes);
    assert_eq!(run.outputs.len(), 1);
    assert!(
        run.outputs[0].starts_with("staged/orders/shuffled-")
            && run.outputs[0].ends_with(".parquet"),
        "{:?}",
        run.outputs
    );
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+----------+---------------+--------+------------+-------+",
            "| order_id | email         | amount | order_day  | note  |",
            "+----------+---------------+--------+------------+-------+",
            "| O-1      | a@example.com | 10.50  | 2024-05-01 | first |",
            "| O-2      |               | 7.00   | 2024-05-02 |       |",
            "+----------+---------------+--------+------------+-------+",
        ],
    );
    // The staged file has the contract's columns and types, all nullable.
    let batches = fx.batches(&run.outputs[0]).await;
    let schema = batches[0].schema();
    assert!(schema.fields().iter().all(|f| f.is_nullable()));
    assert_eq!(
        schema.field(2).data_type(),
        &arrow::datatypes::DataType::Decimal128(10, 2)
    );
    assert_eq!(
        schema.field(3).data_type(),
        &arrow::datatypes::DataType::Date32
    );
}

#[tokio::test]
async fn quoting_bom_and_crlf_are_read_as_rfc_4180() {
    let fx = Fx::orders("");
    let file = "\u{feff}order_id,email,amount,order_day,note\r\n\
                O-1,,1.00,2024-05-01,\"Leave at the door, please\"\r\n\
                O-2,,2.00,2024-05-01,\"She said \"\"hi\"\"\"\r\n\
                O-3,,3.00,2024-05-02,\"line one\r\nline two\"\r\n\
                O-4,,4.00,2024-05-02,plain\r\n\
                O-5,,five,2024-05-02,\"bad, amount\"\r\n";
    let run = fx.ingest("raw/orders/windows.csv", file).await;
    // The BOM is not part of the first column name: no note about `\u{feff}order_id`.
    assert!(run.notes.is_empty(), "{:?}", run.notes);
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (5, 4, 1));
    let batches = fx.batches(&run.outputs[0]).await;
    let ids: Vec<_> = batches[0].column(0).as_string::<i32>().iter().collect();
    assert_eq!(
        ids,
        [Some("O-1"), Some("O-2"), Some("O-3"), Some("O-4")],
        "no carriage return left on any value"
    );
    let notes: Vec<_> = batches[0].column(4).as_string::<i32>().iter().collect();
    assert_eq!(
        notes,
        [
            Some("Leave at the door, please"),
            Some("She said \"hi\""),
            Some("line one\r\nline two"),
            Some("plain"),
        ]
    );
    // Line numbers count physical lines, including the one inside the quoted field.
    let bad = fx.ndjson(&run.outputs[1]).await;
    assert_eq!(
        bad,
        [json!({
            "source": "raw/orders/windows.csv",
            "line": 7,
            "reason": "column `amount`: cannot read `five` as decimal(10,2)",
            "raw": ["O-5", "", "five", "2024-05-02", "bad, amount"],
        })]
    );
}

#[tokio::test]
async fn untypable_rows_go_to_quarantine_with_line_and_column() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/mixed.csv",
            "order_id,email,amount,order_day,note\n\
             O-1,,1.00,2024-05-01,ok\n\
             O-2,,12.345,2024-05-01,too precise\n\
             O-3,,3.00,2024-05-32,bad day\n\
             O-4,,4.00,2024-05-01,ok\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (4, 2, 2));
    assert_eq!(run.outputs.len(), 2);
    assert!(
        run.outputs[1].starts_with("quarantine/orders/ingest/mixed-")
            && run.outputs[1].ends_with(".ndjson"),
        "{:?}",
        run.outputs
    );
    assert_eq!(
        fx.ndjson(&run.outputs[1]).await,
        [
            json!({
                "source": "raw/orders/mixed.csv",
                "line": 3,
                "reason": "column `amount`: `12.345` has more than 2 decimal places",
                "raw": ["O-2", "", "12.345", "2024-05-01", "too precise"],
            }),
            json!({
                "source": "raw/orders/mixed.csv",
                "line": 4,
                "reason": "column `order_day`: cannot read `2024-05-32` as a date",
                "raw": ["O-3", "", "3.00", "2024-05-32", "bad day"],
            }),
        ]
    );
    // A quarantined row is never half-written: only whole good rows are staged.
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+----------+-------+--------+------------+------+",
            "| order_id | email | amount | order_day  | note |",
            "+----------+-------+--------+------------+------+",
            "| O-1      |       | 1.00   | 2024-05-01 | ok   |",
            "| O-4      |       | 4.00   | 2024-05-01 | ok   |",
            "+----------+-------+--------+------------+------+",
        ],
    );
    // The run record is stored too.
    let stored = fx
        .json(&format!("runs/orders/ingest/{}.json", run.run_id))
        .await;
    assert_eq!(stored["quarantined"], 2);
    assert_eq!(stored["status"], "succeeded");
}

#[tokio::test]
async fn ragged_rows_are_quarantined_with_the_field_count() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/ragged.csv",
            "order_id,email,amount,order_day,note\n\
             O-1,,1.00,2024-05-01,ok\n\
             O-2,,2.00\n\
             O-3,,3.00,2024-05-01,ok,surplus\n\
             O-4,,4.00,2024-05-01,\n",
        )
        .await;
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (4, 2, 2));
    let bad = fx.ndjson(&run.outputs[1]).await;
    let summary: Vec<_> = bad
        .iter()
        .map(|b| (b["line"].clone(), b["reason"].clone(), b["raw"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                json!(3),
                json!("malformed row: 3 fields where the header has 5"),
                json!(["O-2", "", "2.00"]),
            ),
            (
                json!(4),
                json!("malformed row: 6 fields where the header has 5"),
                json!(["O-3", "", "3.00", "2024-05-01", "ok", "surplus"]),
            ),
        ]
    );
    let ids: Vec<_> = fx.batches(&run.outputs[0]).await[0]
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    assert_eq!(ids, [Some("O-1".into()), Some("O-4".into())]);
}

#[tokio::test]
async fn invalid_utf8_in_a_field_quarantines_the_row() {
    let fx = Fx::orders("");
    let mut file = b"order_id,email,amount,order_day,note\nO-1,,1.00,2024-05-01,ok\n".to_vec();
    file.extend_from_slice(b"O-2,b\xffd@example.com,2.00,2024-05-01,x\n");
    file.extend_from_slice(b"O-3,,3.00,2024-05-01,caf\xc3\xa9\n");
    let run = fx.ingest("raw/orders/latin1.csv", file).await;
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (3, 2, 1));
    assert_eq!(
        fx.ndjson(&run.outputs[1]).await,
        [json!({
            "source": "raw/orders/latin1.csv",
            "line": 3,
            "reason": "column `email`: invalid UTF-8 at byte 1",
            "raw": ["O-2", "b\u{fffd}d@example.com", "2.00", "2024-05-01", "x"],
        })]
    );
    let notes: Vec<_> = fx.batches(&run.outputs[0]).await[0]
        .column(4)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    assert_eq!(notes, [Some("ok".into()), Some("café".into())]);
}

#[tokio::test]
async fn header_only_file_is_skipped_without_output() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/empty_day.csv",
            "order_id,email,amount,order_day,note\r\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Skipped);
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (0, 0, 0));
    assert!(run.outputs.is_empty(), "{:?}", run.outputs);
    assert_eq!(run.notes, ["the file has no data rows"]);
    assert!(fx.keys("staged/").await.is_empty());
    assert!(fx.keys("quarantine/").await.is_empty());
}

#[tokio::test]
async fn file_whose_every_row_is_bad_is_skipped_with_its_quarantine() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/all_bad.csv",
            "order_id,email,amount,order_day,note\nO-1,,x,2024-05-01,\nO-2,,y,2024-05-01,\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Skipped);
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (2, 0, 2));
    assert_eq!(run.notes, ["every row was quarantined"]);
    assert_eq!(run.outputs.len(), 1);
    assert_eq!(fx.ndjson(&run.outputs[0]).await.len(), 2);
    assert!(fx.keys("staged/").await.is_empty());
}

#[tokio::test]
async fn missing_contract_columns_read_as_null_and_extra_columns_are_noted() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/partial.csv",
            "order_id,amount,coupon,order_day\nO-1,1.00,SPRING,2024-05-01\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.notes,
        [
            "column `email` is missing from the file: read as null",
            "column `note` is missing from the file: read as null",
            "column `coupon` is not in the contract: dropped",
        ]
    );
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+----------+-------+--------+------------+------+",
            "| order_id | email | amount | order_day  | note |",
            "+----------+-------+--------+------------+------+",
            "| O-1      |       | 1.00   | 2024-05-01 |      |",
            "+----------+-------+--------+------------+------+",
        ],
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    assert_eq!(batch.num_columns(), 5, "the extra column is not staged");
    assert!(batch.column(1).is_null(0) && batch.column(4).is_null(0));
}

#[tokio::test]
async fn headerless_csv_with_another_delimiter_reads_by_position() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "orders"
contract = "orders.odcs.yaml"
source = { format = "csv", delimiter = ";", header = false }
"#,
        &[("orders.odcs.yaml", crate::support::ORDERS_CONTRACT)],
    );
    let run = fx
        .ingest(
            "raw/orders/semicolons.csv",
            "O-1;a@example.com;1.50;2024-05-01;a, b\nO-2;;2;2024-05-02;\"x;y\"\n",
        )
        .await;
    assert_eq!((run.rows_in, run.rows_out), (2, 2));
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+----------+---------------+--------+------------+------+",
            "| order_id | email         | amount | order_day  | note |",
            "+----------+---------------+--------+------------+------+",
            "| O-1      | a@example.com | 1.50   | 2024-05-01 | a, b |",
            "| O-2      |               | 2.00   | 2024-05-02 | x;y  |",
            "+----------+---------------+--------+------------+------+",
        ],
    );
}

#[tokio::test]
async fn large_files_keep_their_row_order_and_quarantine_lines_across_typing_chunks() {
    // 30,000 rows: several chunks of 8,192 typed side by side. Every 1,000th row has a bad
    // day; one row spans two lines inside quotes, shifting the lines after it.
    let fx = Fx::orders("");
    let mut data = String::from("order_id,email,amount,order_day,note\n");
    for i in 0..30_000u32 {
        let day = if i % 1000 == 999 {
            "2024-05-32"
        } else {
            "2024-05-01"
        };
        let note = if i == 10_000 { "\"two\nlines\"" } else { "n" };
        data.push_str(&format!("O-{i},,1.00,{day},{note}\n"));
    }
    let run = fx.ingest("raw/orders/big.csv", data).await;
    assert_eq!(
        (run.rows_in, run.rows_out, run.quarantined),
        (30_000, 29_970, 30)
    );
    let mut got = Vec::new();
    for batch in fx.batches(&run.outputs[0]).await {
        let ids = batch.column_by_name("order_id").expect("order_id");
        got.extend(
            ids.as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_owned()),
        );
    }
    let expected: Vec<String> = (0..30_000u32)
        .filter(|i| i % 1000 != 999)
        .map(|i| format!("O-{i}"))
        .collect();
    assert_eq!(got, expected);
    let lines: Vec<u64> = fx
        .ndjson(&run.outputs[1])
        .await
        .iter()
        .map(|q| q["line"].as_u64().expect("line"))
        .collect();
    // Row i is on line i + 2, one more after the two-line row.
    let expected: Vec<u64> = (0..30_000u64)
        .filter(|i| i % 1000 == 999)
        .map(|i| i + 2 + u64::from(i > 10_000))
        .collect();
    assert_eq!(lines, expected);
}
