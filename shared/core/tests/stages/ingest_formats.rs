//! ingest of other sources: CSV dialects and encodings, JSON arrays, Parquet, gzip and zstd
//! compression with its caps, and schema drift (undeclared columns dropped or kept, missing ones
//! recorded).

use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Value, json};
use tessera_core::ErrorKind;
use tessera_core::mesh::Mesh;
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::ingest_csv::TYPED_CONTRACT;
use crate::support::{BUCKET, Fx, ORDERS_CONTRACT, VERSION, assert_table};

/// The `orders` product with `source` as its recipe's source table.
fn orders_with(source: &str) -> Fx {
    Fx::new(
        &format!(
            "\n[[domains.products]]\nname = \"orders\"\ncontract = \"orders.odcs.yaml\"\nsource = {source}\n"
        ),
        &[("orders.odcs.yaml", ORDERS_CONTRACT)],
    )
}

/// [`ORDERS_CONTRACT`] with a string column `extras` for undeclared fields.
fn orders_with_extras_contract() -> String {
    format!(
        "{ORDERS_CONTRACT}      - name: extras\n        description: Fields the contract does not declare, as JSON.\n        logicalType: string\n"
    )
}

/// Ingests a file that must be refused; returns the refusal's reason (after the location).
async fn refused(fx: &Fx, key: &str, data: impl Into<bytes::Bytes>) -> String {
    fx.put(key, data).await;
    let err = stages::ingest::run(fx.ctx(), BUCKET, key, VERSION)
        .await
        .expect_err(key);
    assert_eq!(err.kind(), ErrorKind::BadData, "{key}: {err}");
    let text = err.to_string();
    let prefix = format!("bad input `{BUCKET}/{key}`: ");
    assert!(text.starts_with(&prefix), "{text}");
    text[prefix.len()..].to_owned()
}

/// Each quarantined line of a run as (position key, position, reason, raw).
async fn quarantined(fx: &Fx, key: &str) -> Vec<(String, u64, String, Value)> {
    fx.ndjson(key)
        .await
        .into_iter()
        .map(|q| {
            let obj = q.as_object().expect("object");
            let (at, n) = ["line", "element", "row"]
                .iter()
                .find_map(|k| {
                    obj.get(*k)
                        .map(|v| ((*k).to_owned(), v.as_u64().expect("n")))
                })
                .expect("a position");
            (
                at,
                n,
                q["reason"].as_str().expect("reason").to_owned(),
                q["raw"].clone(),
            )
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).expect("zstd")
}

fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    out
}

// ---------------------------------------------------------------------------------------------
// CSV dialects and encodings

#[tokio::test]
async fn semicolon_tab_and_pipe_delimiters_keep_quoted_delimiters_and_newlines() {
    for (name, delimiter, toml) in [
        ("semicolon", ";", r#"";""#),
        ("tab", "\t", r#""\t""#),
        ("pipe", "|", r#""|""#),
    ] {
        let fx = orders_with(&format!("{{ format = \"csv\", delimiter = {toml} }}"));
        let file = [
            "order_id",
            "email",
            "amount",
            "order_day",
            "note\n", // header
        ]
        .join(delimiter)
            + &[
                "O-1",
                "a@example.com",
                "1.50",
                "2024-05-01",
                "\"a; b, c\"\n",
            ]
            .join(delimiter)
            + &["O-2", "", "2", "2024-05-02", "\"two\nlines\"\n"].join(delimiter);
        let run = fx.ingest(&format!("raw/orders/{name}.csv"), file).await;
        assert_eq!(
            (run.rows_in, run.rows_out, run.quarantined),
            (2, 2, 0),
            "{name}: {run:#?}"
        );
        let batches = fx.batches(&run.outputs[0]).await;
        assert_table(
            &crate::support::lines(&[batches[0].project(&[0, 1, 2, 3]).expect("project")]),
            &[
                "+----------+---------------+--------+------------+",
                "| order_id | email         | amount | order_day  |",
                "+----------+---------------+--------+------------+",
                "| O-1      | a@example.com | 1.50   | 2024-05-01 |",
                "| O-2      |               | 2.00   | 2024-05-02 |",
                "+----------+---------------+--------+------------+",
            ],
        );
        let notes: Vec<_> = batches[0]
            .column(4)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect();
        assert_eq!(
            notes,
            [Some("a; b, c".to_owned()), Some("two\nlines".to_owned())],
            "{name}"
        );
    }
}

#[tokio::test]
async fn backslash_escapes_and_other_quote_characters() {
    let fx = orders_with(r#"{ format = "csv", escape = "\\" }"#);
    let run = fx
        .ingest(
            "raw/orders/escaped.csv",
            "order_id,email,amount,order_day,note\n\
             O-1,,1,2024-05-01,\"She said \\\"hi\\\", then left\"\n\
             O-2,,2,2024-05-01,\"doubled \"\"still\"\" read\"\n",
        )
        .await;
    assert_eq!((run.rows_in, run.rows_out), (2, 2), "{run:#?}");
    let notes: Vec<_> = fx.batches(&run.outputs[0]).await[0]
        .column(4)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    assert_eq!(
        notes,
        [
            Some("She said \"hi\", then left".to_owned()),
            Some("doubled \"still\" read".to_owned()),
        ]
    );

    // Single quotes as the quote character; double quotes are then plain text.
    let fx = orders_with(r#"{ format = "csv", quote = "'" }"#);
    let run = fx
        .ingest(
            "raw/orders/single.csv",
            "order_id,email,amount,order_day,note\nO-1,,1,2024-05-01,'it''s \"fine\", really'\n",
        )
        .await;
    assert_eq!(run.rows_out, 1, "{run:#?}");
    let note = fx.batches(&run.outputs[0]).await[0]
        .column(4)
        .as_string::<i32>()
        .value(0)
        .to_owned();
    assert_eq!(note, "it's \"fine\", really");

    // No quoting at all: quotes are kept as text, a delimiter always splits.
    let fx = orders_with(r#"{ format = "csv", delimiter = "|", quote = "none" }"#);
    let run = fx
        .ingest(
            "raw/orders/unquoted.csv",
            "order_id|email|amount|order_day|note\nO-1||1|2024-05-01|\"as is\"\n",
        )
        .await;
    assert_eq!(run.rows_out, 1, "{run:#?}");
    let note = fx.batches(&run.outputs[0]).await[0]
        .column(4)
        .as_string::<i32>()
        .value(0)
        .to_owned();
    assert_eq!(note, "\"as is\"");
}

#[tokio::test]
async fn headerless_tab_file_maps_by_position_and_counts_fields_against_the_contract() {
    let fx = orders_with(r#"{ format = "csv", delimiter = "\t", header = false }"#);
    let run = fx
        .ingest(
            "raw/orders/headerless.tsv",
            "O-1\ta@example.com\t1.50\t2024-05-01\tfirst\n\
             O-2\t\t2\t2024-05-02\n\
             O-3\t\t3\t2024-05-03\tthird\n",
        )
        .await;
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (3, 2, 1));
    assert!(run.drift.is_empty(), "{:?}", run.drift);
    assert_eq!(
        quarantined(&fx, &run.outputs[1]).await,
        [(
            "line".to_owned(),
            2,
            "malformed row: 4 fields where the contract has 5 columns".to_owned(),
            json!(["O-2", "", "2", "2024-05-02"]),
        )]
    );
    let ids: Vec<_> = fx.batches(&run.outputs[0]).await[0]
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    assert_eq!(ids, [Some("O-1".to_owned()), Some("O-3".to_owned())]);
}

#[tokio::test]
async fn latin_1_files_are_decoded_to_utf_8() {
    let fx = orders_with(r#"{ format = "csv", delimiter = ";", encoding = "latin-1" }"#);
    // "Café Müller; Straße" and "Zoë" in ISO-8859-1; a header name with a Latin-1 letter too.
    let mut file = b"order_id;email;amount;order_day;note;r\xe9f\xe9rence\n".to_vec();
    file.extend_from_slice(b"O-1;;1;2024-05-01;\"Caf\xe9 M\xfcller; Stra\xdfe\";x\n");
    file.extend_from_slice(b"O-2;;2;2024-05-01;Zo\xeb \xa9\xff;y\n");
    let run = fx.ingest("raw/orders/latin1.csv", file).await;
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (2, 2, 0));
    assert_eq!(run.drift.unknown, ["référence"]);
    let notes: Vec<_> = fx.batches(&run.outputs[0]).await[0]
        .column(4)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect();
    assert_eq!(
        notes,
        [
            Some("Café Müller; Straße".to_owned()),
            Some("Zoë ©ÿ".to_owned())
        ]
    );

    // The same bytes read as UTF-8 (the default) are invalid: the rows are quarantined.
    let fx = orders_with(r#"{ format = "csv", delimiter = ";" }"#);
    let run = fx
        .ingest(
            "raw/orders/latin1.csv",
            b"order_id;email;amount;order_day;note\nO-1;;1;2024-05-01;Caf\xe9\n".to_vec(),
        )
        .await;
    assert_eq!((run.rows_out, run.quarantined), (0, 1));
}

#[tokio::test]
async fn a_utf_8_byte_order_mark_is_skipped_in_every_text_format() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "typed"
contract = "typed.odcs.yaml"
source = { format = "json" }

[[domains.products]]
name = "typed_json"
contract = "typed.odcs.yaml"
source = { format = "ndjson" }
"#,
        &[("typed.odcs.yaml", TYPED_CONTRACT)],
    );
    let run = fx
        .ingest("raw/typed/bom.json", "\u{feff}[{\"id\": 1}]")
        .await;
    assert_eq!((run.rows_out, run.quarantined), (1, 0), "{run:#?}");
    let run = fx
        .ingest("raw/typed_json/bom.ndjson", "\u{feff}{\"id\": 1}\n")
        .await;
    assert_eq!((run.rows_out, run.quarantined), (1, 0), "{run:#?}");
}

// ---------------------------------------------------------------------------------------------
// JSON arrays

fn typed_json_array() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "typed"
contract = "typed.odcs.yaml"
source = { format = "json" }
"#,
        &[("typed.odcs.yaml", TYPED_CONTRACT)],
    )
}

#[tokio::test]
async fn json_array_elements_are_typed_and_bad_ones_quarantined_with_their_index() {
    let fx = typed_json_array();
    let file = r#"
    [
      {"id": 1, "label": "one", "amount": 12.5, "ts": "2024-05-01T12:00:00+02:00",
       "day": "2024-05-01", "flag": true, "ratio": 0.25, "items": [{"sku": "A", "qty": 2}]},
      {"id": "two"},
      [1, 2],
      {"id": 4, "label": null, "amount": "7", "small": 2147483647},
      {"id": 5, "amount": 1.234}
    ]
    "#;
    let run = fx.ingest("raw/typed/array.json", file).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (5, 2, 3));
    let batches = fx.batches(&run.outputs[0]).await;
    let projected: Vec<_> = batches
        .iter()
        .map(|b| b.project(&[0, 1, 2, 3, 5, 6, 7, 8, 9]).expect("project"))
        .collect();
    assert_table(
        &crate::support::lines(&projected),
        &[
            "+----+-------+--------+----------------------+------------+------------+------+-------+--------------------+",
            "| id | label | amount | ts                   | day        | small      | flag | ratio | items              |",
            "+----+-------+--------+----------------------+------------+------------+------+-------+--------------------+",
            "| 1  | one   | 12.50  | 2024-05-01T10:00:00Z | 2024-05-01 |            | true | 0.25  | [{sku: A, qty: 2}] |",
            "| 4  |       | 7.00   |                      |            | 2147483647 |      |       |                    |",
            "+----+-------+--------+----------------------+------------+------------+------+-------+--------------------+",
        ],
    );
    assert_eq!(
        quarantined(&fx, &run.outputs[1]).await,
        [
            (
                "element".to_owned(),
                1,
                "column `id`: cannot read `two` as an integer (Int64)".to_owned(),
                json!({"id": "two"}),
            ),
            (
                "element".to_owned(),
                2,
                "element is not a JSON object".to_owned(),
                json!([1, 2]),
            ),
            (
                "element".to_owned(),
                4,
                "column `amount`: `1.234` has more than 2 decimal places".to_owned(),
                json!({"id": 5, "amount": 1.234}),
            ),
        ]
    );
    // `local_ts` is in no element: drift, read as null.
    assert_eq!(run.drift.missing, ["local_ts"]);
    assert!(run.drift.unknown.is_empty());
}

#[tokio::test]
async fn files_that_are_not_json_arrays_are_refused_with_the_reason() {
    let fx = typed_json_array();
    let cases: &[(&str, &str, &str)] = &[
        (
            "object.json",
            "{\"id\": 1}\n{\"id\": 2}\n",
            "the top level is a JSON object, not an array: a file of one object per line is `format = \"ndjson\"`",
        ),
        (
            "scalar.json",
            "42",
            "not a JSON array: the file starts with `4`",
        ),
        ("blank.json", "  \n ", "no JSON value, only whitespace"),
        (
            "cut.json",
            "[{\"id\": 1}, {\"id\": 2}, {\"id\"",
            "the JSON array is cut off in element 2",
        ),
        (
            "broken.json",
            "[{\"id\": 1}, {\"id\": 2,, }]",
            "malformed JSON in or after element 1: ",
        ),
        (
            "trailing.json",
            "[{\"id\": 1}] [{\"id\": 2}]",
            "data after the end of the JSON array: trailing characters",
        ),
    ];
    for (name, content, reason) in cases {
        let got = refused(&fx, &format!("raw/typed/{name}"), *content).await;
        assert!(got.starts_with(reason), "{name}: {got}");
    }
    // Nothing partial is staged, even when elements before the break were good.
    assert!(fx.keys("staged/").await.is_empty());
    assert!(fx.keys("quarantine/").await.is_empty());

    // An array under `ndjson` is refused with the fix.
    let fx = crate::ingest_csv::typed();
    let got = refused(
        &fx,
        "raw/typed_json/array.ndjson",
        "[\n{\"id\": 1},\n{\"id\": 2}\n]\n",
    )
    .await;
    assert_eq!(
        got,
        "this looks like a JSON array, not one object per line: set format = \"json\""
    );
}

#[tokio::test]
async fn a_large_json_array_streams_in_batches() {
    let fx = typed_json_array();
    let mut file = String::from("[");
    let n = 20_000;
    for i in 0..n {
        if i > 0 {
            file.push(',');
        }
        file.push_str(&format!("{{\"id\": {i}, \"label\": \"row {i}\"}}"));
    }
    file.push(']');
    let run = fx.ingest("raw/typed/large.json", file).await;
    assert_eq!((run.rows_in, run.rows_out), (n, n));
    let batches = fx.batches(&run.outputs[0]).await;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(total as u64, n);
    let last = batches.last().expect("batches");
    let ids = last.column(0).as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(ids.value(ids.len() - 1), (n - 1) as i64);
}

// ---------------------------------------------------------------------------------------------
// Parquet

fn typed_parquet() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "typed"
contract = "typed.odcs.yaml"
source = { format = "parquet" }
"#,
        &[("typed.odcs.yaml", TYPED_CONTRACT)],
    )
}

#[tokio::test]
async fn parquet_columns_map_by_name_and_cast_to_the_contract() {
    let fx = typed_parquet();
    // Other order and case than the contract; int32 for int64, int64 for int32, float for a
    // decimal, text for a date, naive nanosecond timestamps, and a column the contract lacks.
    let schema = Arc::new(Schema::new(vec![
        Field::new("DAY", DataType::Utf8, true),
        Field::new("Small", DataType::Int64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("ID", DataType::Int32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "local_ts",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("coupon", DataType::Utf8, true),
    ]));
    let ts = 1_714_557_600_000_000_000_i64; // 2024-05-01T10:00:00
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            Some("2024-05-01"),
            Some("not a date"),
            None,
            Some("2024-05-04"),
        ])),
        Arc::new(Int64Array::from(vec![
            Some(7),
            Some(8),
            Some(3_000_000_000),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            Some("c"),
            None,
        ])),
        Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(3), Some(4)])),
        Arc::new(Float64Array::from(vec![
            Some(12.5),
            Some(1.0),
            Some(2.0),
            Some(1.234),
        ])),
        Arc::new(TimestampNanosecondArray::from(vec![Some(ts); 4])),
        Arc::new(TimestampNanosecondArray::from(vec![Some(ts); 4])),
        Arc::new(StringArray::from(vec![Some("SPRING"), None, None, None])),
    ];
    let batch = RecordBatch::try_new(schema, columns).expect("batch");
    let run = fx
        .ingest("raw/typed/export.parquet", parquet_bytes(&batch))
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (4, 1, 3));
    assert_eq!(run.drift.unknown, ["coupon"]);
    assert_eq!(run.drift.missing, ["flag", "ratio", "items"]);
    let batches = fx.batches(&run.outputs[0]).await;
    let projected: Vec<_> = batches
        .iter()
        .map(|b| b.project(&[0, 1, 2, 3, 4, 5, 6]).expect("project"))
        .collect();
    assert_table(
        &crate::support::lines(&projected),
        &[
            "+----+-------+--------+----------------------+----------------------+------------+-------+",
            "| id | label | amount | ts                   | local_ts             | day        | small |",
            "+----+-------+--------+----------------------+----------------------+------------+-------+",
            "| 1  | a     | 12.50  | 2024-05-01T10:00:00Z | 2024-05-01T08:00:00Z | 2024-05-01 | 7     |",
            "+----+-------+--------+----------------------+----------------------+------------+-------+",
        ],
    );
    let bad = quarantined(&fx, &run.outputs[1]).await;
    let summary: Vec<_> = bad
        .iter()
        .map(|(at, n, reason, _)| (at.as_str(), *n, reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("row", 1, "column `day`: cannot read `not a date` as a date"),
            (
                "row",
                2,
                "column `small`: cannot cast `3000000000` (Int64) to Int32"
            ),
            (
                "row",
                3,
                "column `amount`: `1.234` (Float64) does not fit Decimal128(10, 2) exactly"
            ),
        ]
    );
    // The quarantined row keeps the file's own values, by the file's names.
    assert_eq!(bad[0].3["DAY"], json!("not a date"));
    assert_eq!(bad[0].3["ID"], json!(2));
    assert_eq!(bad[0].3["amount"], json!(1.0));
    assert_eq!(bad[2].3["Small"], json!(null));
}

#[tokio::test]
async fn parquet_files_that_cannot_be_read_are_refused() {
    let fx = typed_parquet();
    for (name, content) in [("fake.parquet", "id,label\n1,a\n"), ("tiny.parquet", "PA")] {
        let got = refused(&fx, &format!("raw/typed/{name}"), content).await;
        assert!(
            got.starts_with("not a readable Parquet file"),
            "{name}: {got}"
        );
    }
    // A Parquet file cut short loses its footer.
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2]))]).expect("batch");
    let whole = parquet_bytes(&batch);
    let got = refused(
        &fx,
        "raw/typed/cut.parquet",
        whole[..whole.len() - 10].to_vec(),
    )
    .await;
    assert!(got.starts_with("not a readable Parquet file"), "{got}");

    let schema = Arc::new(Schema::new(vec![Field::new(
        "other",
        DataType::Int32,
        true,
    )]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1]))]).expect("batch");
    let got = refused(&fx, "raw/typed/other.parquet", parquet_bytes(&batch)).await;
    assert_eq!(
        got,
        "the file has none of the contract's columns (it has: other)"
    );

    // A type that cannot become the contract's at all.
    let schema = Arc::new(Schema::new(vec![Field::new("day", DataType::Date32, true)]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(Date32Array::from(vec![1]))]).expect("batch");
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "typed"
contract = "typed.odcs.yaml"
source = { format = "parquet" }
"#,
        &[(
            "typed.odcs.yaml",
            &TYPED_CONTRACT.replace(
                "name: day\n        logicalType: date",
                "name: day\n        logicalType: boolean",
            ),
        )],
    );
    let got = refused(&fx, "raw/typed/dates.parquet", parquet_bytes(&batch)).await;
    assert_eq!(
        got,
        "column `day`: the file's type Date32 cannot be cast to the contract's Boolean"
    );
    assert!(fx.keys("staged/").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Compression

const ORDERS_FILE: &str = "order_id,email,amount,order_day,note\n\
                           O-1,,1.00,2024-05-01,first\n\
                           O-2,,2.00,2024-05-01,second\n";

#[tokio::test]
async fn gzip_and_zstd_files_are_decompressed_by_suffix_or_magic_bytes() {
    let fx = Fx::orders("");
    let mut two_members =
        gzip(b"order_id,email,amount,order_day,note\nO-1,,1.00,2024-05-01,first\n");
    two_members.extend(gzip(b"O-2,,2.00,2024-05-01,second\n"));
    for (key, data) in [
        ("raw/orders/a.csv.gz", gzip(ORDERS_FILE.as_bytes())),
        ("raw/orders/b.csv.GZIP", gzip(ORDERS_FILE.as_bytes())),
        ("raw/orders/c.csv.zst", zstd(ORDERS_FILE.as_bytes())),
        ("raw/orders/d.csv.zstd", zstd(ORDERS_FILE.as_bytes())),
        // No suffix: the magic bytes tell.
        ("raw/orders/e.csv", gzip(ORDERS_FILE.as_bytes())),
        ("raw/orders/f.csv", zstd(ORDERS_FILE.as_bytes())),
        // Concatenated gzip members are one stream.
        ("raw/orders/g.csv.gz", two_members),
    ] {
        let run = fx.ingest(key, data).await;
        assert_eq!(
            (run.rows_in, run.rows_out, run.quarantined),
            (2, 2, 0),
            "{key}: {run:#?}"
        );
        let notes: Vec<_> = fx.batches(&run.outputs[0]).await[0]
            .column(4)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect();
        assert_eq!(
            notes,
            [Some("first".to_owned()), Some("second".to_owned())],
            "{key}"
        );
    }
    // The staged name drops every extension.
    assert!(
        fx.keys("staged/orders/").await[0].starts_with("staged/orders/a-"),
        "{:?}",
        fx.keys("staged/orders/").await
    );

    // NDJSON and JSON arrays too, and Latin-1 inside gzip.
    let fx = crate::ingest_csv::typed();
    let run = fx
        .ingest(
            "raw/typed_json/lines.ndjson.zst",
            zstd(b"{\"id\": 1}\n{\"id\": 2}\n"),
        )
        .await;
    assert_eq!(run.rows_out, 2, "{run:#?}");
    let fx = orders_with(r#"{ format = "csv", encoding = "latin-1" }"#);
    let run = fx
        .ingest(
            "raw/orders/latin.csv.gz",
            gzip(b"order_id,email,amount,order_day,note\nO-1,,1,2024-05-01,gr\xfc\xdfe\n"),
        )
        .await;
    let note = fx.batches(&run.outputs[0]).await[0]
        .column(4)
        .as_string::<i32>()
        .value(0)
        .to_owned();
    assert_eq!(note, "grüße");
}

#[tokio::test]
async fn corrupt_truncated_or_mislabelled_compressed_files_are_refused() {
    let fx = Fx::orders("");
    let big: String = std::iter::once("order_id,email,amount,order_day,note\n".to_owned())
        .chain((0..5000).map(|i| format!("O-{i},,{i}.00,2024-05-01,row {i}\n")))
        .collect();
    let gz = gzip(big.as_bytes());
    let zs = zstd(big.as_bytes());
    let mut flipped = gz.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.csv.gz",
            gz[..gz.len() / 2].to_vec(),
            "corrupt or truncated gzip data: ",
        ),
        (
            "flipped.csv.gz",
            flipped,
            "corrupt or truncated gzip data: ",
        ),
        (
            "truncated.csv.zst",
            zs[..zs.len() / 2].to_vec(),
            "corrupt or truncated zstd data: ",
        ),
        (
            "plain.csv.gz",
            ORDERS_FILE.as_bytes().to_vec(),
            "the key ends in `.gz` but the file is not gzip-compressed (no gzip magic bytes)",
        ),
        (
            "zstd.csv.gz",
            zs.clone(),
            "the key ends in `.gz` but the file is not gzip-compressed",
        ),
        (
            "empty.csv.gz",
            gzip(b""),
            "empty file (after gzip decompression)",
        ),
        (
            "binary.csv.zst",
            zstd(b"\x00\x01\x02binary"),
            "binary data (NUL bytes) after zstd decompression: not a text file",
        ),
    ];
    for (name, data, reason) in cases {
        let got = refused(&fx, &format!("raw/orders/{name}"), data).await;
        assert!(got.starts_with(reason), "{name}: {got}");
    }
    assert!(fx.keys("staged/").await.is_empty());
    assert!(fx.keys("quarantine/").await.is_empty());

    // A forced compression the file does not have.
    let fx = orders_with(r#"{ format = "csv", compression = "zstd" }"#);
    let got = refused(&fx, "raw/orders/x.csv", gzip(ORDERS_FILE.as_bytes())).await;
    assert_eq!(
        got,
        "the recipe says `compression = \"zstd\"` but the file has no zstd magic bytes"
    );
    // `none` reads the bytes as they are: a gzip file is then binary.
    let fx = orders_with(r#"{ format = "csv", compression = "none" }"#);
    let got = refused(&fx, "raw/orders/x.csv.gz", gzip(ORDERS_FILE.as_bytes())).await;
    assert!(
        got.starts_with("binary data") || got.starts_with("the header names none"),
        "{got}"
    );
}

#[tokio::test]
async fn decompression_bombs_are_refused_without_partial_output() {
    // 2.5 MB of one valid row repeated: over a 1 MB cap, and far over a ratio of 20.
    let rows: String = std::iter::once("order_id,email,amount,order_day,note\n".to_owned())
        .chain(std::iter::repeat_n(
            "O-1,,1.00,2024-05-01,the same row again and again\n".to_owned(),
            50_000,
        ))
        .collect();
    assert!(rows.len() > 2 << 20);
    let gz = gzip(rows.as_bytes());
    let zs = zstd(rows.as_bytes());

    let fx = orders_with(r#"{ format = "csv", max_decompressed_bytes = 1000000 }"#);
    let got = refused(&fx, "raw/orders/bomb.csv.gz", gz.clone()).await;
    assert_eq!(
        got,
        "gzip data decompresses to more than 1000000 bytes (`max_decompressed_bytes`): refused as a possible decompression bomb"
    );
    let got = refused(&fx, "raw/orders/bomb.csv.zst", zs.clone()).await;
    assert!(
        got.starts_with("zstd data decompresses to more than 1000000 bytes"),
        "{got}"
    );
    // Batches written before the cap was hit are not published.
    assert!(fx.keys("staged/").await.is_empty());
    assert!(fx.keys("quarantine/").await.is_empty());

    let fx = orders_with(r#"{ format = "csv", max_compression_ratio = 20 }"#);
    let got = refused(&fx, "raw/orders/ratio.csv.zst", zs).await;
    assert_eq!(
        got,
        "zstd data decompresses to more than 20 times its compressed size (`max_compression_ratio`): refused as a possible decompression bomb"
    );
    assert!(fx.keys("staged/").await.is_empty());

    // The JSON readers refuse the same way (the cap is hit inside serde_json or a line read).
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "typed"
contract = "typed.odcs.yaml"
source = { format = "json", max_decompressed_bytes = 100000 }

[[domains.products]]
name = "typed_json"
contract = "typed.odcs.yaml"
source = { format = "ndjson", max_decompressed_bytes = 100000 }
"#,
        &[("typed.odcs.yaml", TYPED_CONTRACT)],
    );
    let objects = vec!["{\"id\": 1, \"label\": \"again\"}"; 20_000];
    let array = format!("[{}]", objects.join(","));
    let lines = objects.join("\n");
    let got = refused(&fx, "raw/typed/bomb.json.gz", gzip(array.as_bytes())).await;
    assert!(
        got.starts_with("gzip data decompresses to more than 100000 bytes"),
        "{got}"
    );
    let got = refused(
        &fx,
        "raw/typed_json/bomb.ndjson.zst",
        zstd(lines.as_bytes()),
    )
    .await;
    assert!(
        got.starts_with("zstd data decompresses to more than 100000 bytes"),
        "{got}"
    );
    assert!(fx.keys("staged/").await.is_empty());

    // Under the default caps, a large file of ordinary rows is read whole.
    let varied: String = std::iter::once("order_id,email,amount,order_day,note\n".to_owned())
        .chain(
            (0..50_000).map(|i| format!("O-{i},,{}.{:02},2024-05-01,row {i}\n", i % 997, i % 100)),
        )
        .collect();
    let fx = Fx::orders("");
    let run = fx
        .ingest("raw/orders/ok.csv.gz", gzip(varied.as_bytes()))
        .await;
    assert_eq!((run.rows_in, run.rows_out), (50_000, 50_000));
}

// ---------------------------------------------------------------------------------------------
// Drift

#[tokio::test]
async fn undeclared_columns_are_dropped_and_recorded() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/drift.csv",
            "order_id,amount,coupon,order_day,Channel\nO-1,1.00,SPRING,2024-05-01,web\n",
        )
        .await;
    assert_eq!(run.drift.unknown, ["Channel", "coupon"]);
    assert_eq!(run.drift.missing, ["email", "note"]);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    assert_eq!(batch.num_columns(), 5);
    // The stored run record carries the drift as a structure.
    let stored = fx
        .json(&format!("runs/orders/ingest/{}.json", run.run_id))
        .await;
    assert_eq!(
        stored["drift"],
        json!({"unknown": ["Channel", "coupon"], "missing": ["email", "note"]})
    );
    // No drift, no field.
    let run = fx.ingest("raw/orders/clean.csv", ORDERS_FILE).await;
    let stored = fx
        .json(&format!("runs/orders/ingest/{}.json", run.run_id))
        .await;
    assert!(stored.get("drift").is_none(), "{stored}");
}

fn orders_keeping_extras(format: &str) -> Fx {
    Fx::new(
        &format!(
            r#"
[[domains.products]]
name = "orders"
contract = "orders.odcs.yaml"
source = {{ format = "{format}", unknown_columns = "keep", extras_column = "extras" }}
"#
        ),
        &[("orders.odcs.yaml", &orders_with_extras_contract())],
    )
}

#[tokio::test]
async fn undeclared_columns_can_be_kept_as_json_in_the_extras_column() {
    let fx = orders_keeping_extras("csv");
    let run = fx
        .ingest(
            "raw/orders/extras.csv",
            "order_id,amount,coupon,order_day,channel,extras\n\
             O-1,1.00,SPRING,2024-05-01,web,x\n\
             O-2,2.00,,2024-05-01,,\n",
        )
        .await;
    assert_eq!((run.rows_out, run.quarantined), (2, 0));
    // A file column named like the extras column is undeclared too: ingest fills it.
    assert_eq!(run.drift.unknown, ["channel", "coupon", "extras"]);
    assert_eq!(run.drift.missing, ["email", "note"]);
    assert!(
        run.notes
            .contains(&"column `coupon` is not in the contract: kept in `extras`".to_owned()),
        "{:?}",
        run.notes
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let extras = batch
        .column_by_name("extras")
        .expect("extras")
        .as_string::<i32>();
    let first: Value = serde_json::from_str(extras.value(0)).expect("JSON");
    assert_eq!(
        first,
        json!({"coupon": "SPRING", "channel": "web", "extras": "x"})
    );
    assert!(
        extras.is_null(1),
        "a row without undeclared values has null"
    );

    let fx = orders_keeping_extras("ndjson");
    let run = fx
        .ingest(
            "raw/orders/extras.ndjson",
            "{\"order_id\": \"O-1\", \"amount\": 1, \"order_day\": \"2024-05-01\", \"tags\": [\"a\"], \"n\": 2}\n\
             {\"order_id\": \"O-2\", \"amount\": 2, \"order_day\": \"2024-05-01\"}\n",
        )
        .await;
    assert_eq!(run.drift.unknown, ["n", "tags"]);
    assert_eq!(run.drift.missing, ["email", "note"]);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let extras = batch
        .column_by_name("extras")
        .expect("extras")
        .as_string::<i32>();
    let first: Value = serde_json::from_str(extras.value(0)).expect("JSON");
    assert_eq!(first, json!({"tags": ["a"], "n": 2}));
    assert!(extras.is_null(1));

    let fx = orders_keeping_extras("parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("order_day", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["O-1", "O-2"])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["2024-05-01", "2024-05-02"])),
            Arc::new(Float64Array::from(vec![Some(0.5), None])),
        ],
    )
    .expect("batch");
    let run = fx
        .ingest("raw/orders/extras.parquet", parquet_bytes(&batch))
        .await;
    assert_eq!(run.rows_out, 2, "{run:#?}");
    assert_eq!(run.drift.unknown, ["score"]);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let extras = batch
        .column_by_name("extras")
        .expect("extras")
        .as_string::<i32>();
    assert_eq!(extras.value(0), r#"{"score":0.5}"#);
    assert!(extras.is_null(1));
}

#[tokio::test]
async fn a_required_column_missing_from_the_header_is_ingested_then_quarantined_by_clean() {
    let fx = Fx::orders("");
    let run = fx
        .ingest(
            "raw/orders/no_amount.csv",
            "order_id,order_day\nO-1,2024-05-01\nO-2,2024-05-02\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.rows_out, 2);
    assert_eq!(run.drift.missing, ["email", "amount", "note"]);
    let cleaned = stages::clean::run(fx.ctx(), BUCKET, &run.outputs[0], VERSION)
        .await
        .expect("clean runs");
    assert_eq!(
        (cleaned.rows_out, cleaned.quarantined),
        (0, 2),
        "{cleaned:#?}"
    );
    let key = cleaned
        .outputs
        .iter()
        .find(|k| k.starts_with("quarantine/"))
        .expect("clean quarantine");
    let batch = &fx.batches(key).await[0];
    let reasons = batch.column(batch.num_columns() - 1).as_string::<i32>();
    assert!(
        reasons
            .iter()
            .all(|r| r.is_some_and(|r| r.contains("amount"))),
        "{reasons:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The recipe, checked when the mesh loads

fn load(source: &str, contract: &str) -> Result<Mesh, String> {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("orders.odcs.yaml"), contract).expect("contract");
    let toml = format!(
        "[mesh]\nname = \"test\"\npii_salt = \"pepper\"\n\n[[domains]]\nname = \"shop\"\n\n\
         [[domains.products]]\nname = \"orders\"\ncontract = \"orders.odcs.yaml\"\nsource = {source}\n"
    );
    Mesh::from_toml(&toml, "mesh.toml", dir.path()).map_err(|e| e.to_string())
}

#[test]
fn source_options_are_checked_at_load_with_their_location() {
    let with_extras = orders_with_extras_contract();
    load(
        r#"{ format = "csv", unknown_columns = "keep", extras_column = "extras" }"#,
        &with_extras,
    )
    .expect("a string extras column");
    load(
        r#"{ format = "csv", delimiter = "\t", quote = "none", escape = "\\", encoding = "latin-1", compression = "gzip" }"#,
        ORDERS_CONTRACT,
    )
    .expect("a full dialect");
    let cases: &[(&str, &str)] = &[
        (
            r#"{ format = "csv", unknown_columns = "keep", extras_column = "amount" }"#,
            "source: `extras_column` `amount` must be a string column: it holds JSON text",
        ),
        (
            r#"{ format = "csv", unknown_columns = "keep", extras_column = "nope" }"#,
            "source: `extras_column` `nope` is not a column of the contract",
        ),
        (
            r#"{ format = "csv", unknown_columns = "keep" }"#,
            "source: `unknown_columns = \"keep\"` needs `extras_column`",
        ),
        (
            r#"{ format = "csv", extras_column = "note" }"#,
            "source: `extras_column = \"note\"` is only used with `unknown_columns = \"keep\"`",
        ),
        (
            r#"{ format = "csv", delimiter = "§" }"#,
            "source: CSV delimiter `§` must be one ASCII character other than a line break",
        ),
        (
            r#"{ format = "csv", delimiter = ";", quote = ";" }"#,
            "source: CSV quote `;` is also the delimiter",
        ),
        (
            r#"{ format = "parquet", compression = "gzip" }"#,
            "source: Parquet compresses its pages itself",
        ),
        (
            r#"{ format = "csv", max_decompressed_bytes = 0 }"#,
            "must be positive",
        ),
    ];
    for (source, expected) in cases {
        let err = load(source, &with_extras).expect_err(source);
        assert!(
            err.starts_with("configuration: mesh.toml:11:10: product `orders`: "),
            "{source}: {err}"
        );
        assert!(err.contains(expected), "{source}: {err}");
    }
    // Unknown values are refused by the parser, with the field named.
    let err = load(
        r#"{ format = "csv", encoding = "utf-16" }"#,
        ORDERS_CONTRACT,
    )
    .unwrap_err();
    assert!(err.contains("utf-16"), "{err}");
    let err = load(r#"{ format = "csv", quote = "ab" }"#, ORDERS_CONTRACT).unwrap_err();
    assert!(err.contains("expected one character or \"none\""), "{err}");
}

#[tokio::test]
async fn dictionary_encoded_parquet_text_is_typed_like_text() {
    let fx = orders_with(r#"{ format = "parquet" }"#);
    let days: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
        vec!["2024-05-01", "2024-05-01", "someday"]
            .into_iter()
            .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, true),
        Field::new("amount", DataType::Utf8, true),
        Field::new(
            "order_day",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["O-1", "O-2", "O-3"])),
            // Text into a decimal follows CSV's rules: exact, never rounded.
            Arc::new(StringArray::from(vec!["1.50", "2.345", "3"])),
            Arc::new(days),
        ],
    )
    .expect("batch");
    let run = fx
        .ingest("raw/orders/dict.parquet", parquet_bytes(&batch))
        .await;
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (3, 1, 2));
    let bad = quarantined(&fx, &run.outputs[1]).await;
    let reasons: Vec<_> = bad.iter().map(|b| (b.1, b.2.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (1, "column `amount`: `2.345` has more than 2 decimal places"),
            (2, "column `order_day`: cannot read `someday` as a date"),
        ]
    );
    assert_eq!(bad[1].3["order_day"], json!("someday"));
}

#[tokio::test]
async fn the_policy_detectors_read_compressed_and_json_array_samples() {
    let policy = "\
version: 1
classifications:
  internal: none
  pii: hash
pii:
  threshold: 0.8
  detectors:
    email: pii
    phone: pii
";
    let fx = Fx::with_settings(
        "policy = \"policy.yaml\"",
        r#"
[[domains.products]]
name = "orders"
contract = "orders.odcs.yaml"
source = { format = "json", samples = ["sample.json.gz"] }
"#,
        &[
            ("orders.odcs.yaml", ORDERS_CONTRACT),
            ("policy.yaml", policy),
        ],
    );
    let sample = r#"[
        {"order_id": "O-1", "note": "+44 20 7946 0958"},
        {"order_id": "O-2", "note": "(212) 555-0123"}
    ]"#;
    std::fs::write(
        fx._dir.path().join("mesh").join("sample.json.gz"),
        gzip(sample.as_bytes()),
    )
    .expect("sample");
    let report = tessera_core::policy::check_mesh(&fx.ctx().mesh).expect("policy check");
    let found: Vec<(String, String, u64)> = report
        .findings
        .iter()
        .map(|f| (f.column.clone(), f.detector.to_string(), f.matches))
        .collect();
    assert_eq!(found, [("note".to_owned(), "phone".to_owned(), 2)]);
}
