//! clean's recipe steps on messy data: structuring and flattening JSON, defaults for absent
//! columns, deduplication semantics, gap filling, statistical outliers, timestamp formats and
//! zones, decimal scale.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use tessera_core::mesh::Mesh;
use tessera_core::runs::{RunRecord, RunStatus};
use tessera_core::stages;

use crate::support::{BUCKET, Fx, VERSION, assert_table};

/// Every row is accounted for exactly once (generated rows are in `rows_out` and `filled`).
#[track_caller]
fn assert_counts(run: &RunRecord, rows_in: u64, out: u64, dropped: u64, quarantined: u64) {
    assert_eq!(
        (run.rows_in, run.rows_out, run.dropped, run.quarantined),
        (rows_in, out, dropped, quarantined),
        "{run:#?}"
    );
    assert_eq!(
        run.rows_in + run.filled,
        run.rows_out + run.dropped + run.quarantined
    );
}

/// The first column and the reason of every quarantined row of a clean run.
async fn reasons(fx: &Fx, run: &RunRecord) -> Vec<(String, String)> {
    let key = run
        .outputs
        .iter()
        .find(|k| k.starts_with("quarantine/"))
        .unwrap_or_else(|| panic!("a quarantine output in {run:#?}"));
    let mut out = Vec::new();
    for batch in fx.batches(key).await {
        let ids = batch.column(0).as_string::<i32>();
        let why = batch.column(batch.num_columns() - 1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.push((ids.value(i).to_owned(), why.value(i).to_owned()));
        }
    }
    out
}

/// Writes a staged Parquet object directly (a staged file ingest did not write: another
/// schema, text where the contract now has a struct) and cleans it.
async fn clean_staged(fx: &Fx, key: &str, batch: RecordBatch) -> RunRecord {
    let mut sink = fx
        .ctx()
        .storage
        .write_parquet(BUCKET, key, batch.schema())
        .expect("parquet sink");
    sink.write(&batch).await.expect("write staged");
    sink.finish().await.expect("finish staged");
    stages::clean::run(fx.ctx(), BUCKET, key, VERSION)
        .await
        .expect("clean runs")
}

fn text(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Structuring

const CUSTOMERS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customers
version: 1.0.0
status: active
schema:
  - name: customers
    properties:
      - name: id
        logicalType: string
        required: true
        primaryKey: true
      - name: address
        logicalType: string
        description: JSON text, flattened below.
      - name: address_street
        logicalType: string
      - name: address_city
        logicalType: string
      - name: address_geo_lat
        logicalType: number
      - name: profile
        logicalType: object
        properties:
          - name: age
            logicalType: integer
          - name: vip
            logicalType: boolean
      - name: tags
        logicalType: array
        items:
          logicalType: string
"#;

fn customers() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "customers"
contract = "customers.odcs.yaml"
source = { format = "csv" }
clean = { flatten = { address = ["street", "city", "geo.lat"] } }
"#,
        &[("customers.odcs.yaml", CUSTOMERS_CONTRACT)],
    )
}

#[tokio::test]
async fn json_text_is_flattened_into_columns_and_bad_json_is_quarantined() {
    let fx = customers();
    let run = fx
        .ingest_clean(
            "raw/customers/flat.csv",
            "id,address,address_street,address_city,address_geo_lat,profile,tags\n\
             C1,\"{\"\"street\"\": \"\" 1 Main St \"\", \"\"city\"\": \"\"Paris\"\", \"\"geo\"\": {\"\"lat\"\": 48.85}}\",,,,,\n\
             C2,\"{\"\"street\"\": \"\"2 High St\"\"}\",,,,,\n\
             C3,\"{\"\"street\"\": \"\"3 Low St\"\"\",,,,,\n\
             C4,\"[1, 2]\",,,,,\n\
             C5,,Given St,Lyon,45.76,,\n\
             C6,\"{\"\"geo\"\": {\"\"lat\"\": \"\"north\"\"}}\",,,,,\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_counts(&run, 6, 3, 0, 3);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let col = |i: usize| -> Vec<Option<String>> {
        let c = arrow::compute::cast(batch.column(i), &DataType::Utf8).unwrap();
        c.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    };
    assert_eq!(
        col(0),
        [Some("C1".into()), Some("C2".into()), Some("C5".into())]
    );
    // Flattened values are trimmed like any text; a field the JSON lacks is null; a row without
    // JSON keeps its own values.
    assert_eq!(
        col(2),
        [
            Some("1 Main St".into()),
            Some("2 High St".into()),
            Some("Given St".into())
        ]
    );
    assert_eq!(col(3), [Some("Paris".into()), None, Some("Lyon".into())]);
    assert_eq!(col(4), [Some("48.85".into()), None, Some("45.76".into())]);
    let why = reasons(&fx, &run).await;
    assert_eq!(why.len(), 3, "{why:?}");
    assert_eq!(why[0].0, "C3");
    assert!(
        why[0]
            .1
            .starts_with("invalid_json_address: cannot read `{\"street\": \"3 Low St\"` as JSON: "),
        "{why:?}"
    );
    assert_eq!(
        why[1],
        (
            "C4".into(),
            "invalid_json_address: `[1, 2]` is not a JSON object".into()
        )
    );
    assert_eq!(why[2].0, "C6");
    assert!(
        why[2].1.starts_with(
            "invalid_address_geo_lat: field `geo.lat` of `address`: cannot read `north` as a number"
        ),
        "{why:?}"
    );
}

#[tokio::test]
async fn an_ndjson_object_kept_as_text_is_flattened_too() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "customers"
contract = "customers.odcs.yaml"
source = { format = "ndjson" }
clean = { flatten = { address = ["city", "geo.lat"] } }
"#,
        &[("customers.odcs.yaml", CUSTOMERS_CONTRACT)],
    );
    let run = fx
        .ingest_clean(
            "raw/customers/c.ndjson",
            "{\"id\": \"C1\", \"address\": {\"city\": \"Oslo\", \"geo\": {\"lat\": 59.9}}, \"profile\": {\"age\": 30}, \"tags\": [\"x\"]}\n\
             {\"id\": \"C2\", \"address\": \"{\\\"city\\\": \\\"Rome\\\"}\"}\n",
        )
        .await;
    assert_counts(&run, 2, 2, 0, 0);
    let batch = fx.batches(&run.outputs[0]).await[0]
        .project(&[0, 3, 4])
        .unwrap();
    assert_table(
        &crate::support::lines(&[batch]),
        &[
            "+----+--------------+-----------------+",
            "| id | address_city | address_geo_lat |",
            "+----+--------------+-----------------+",
            "| C1 | Oslo         | 59.9            |",
            "| C2 | Rome         |                 |",
            "+----+--------------+-----------------+",
        ],
    );
}

#[tokio::test]
async fn json_text_in_a_staged_file_becomes_the_contract_struct_and_list() {
    let fx = customers();
    // A staged file whose `profile` and `tags` are JSON text (written before the contract
    // declared their structure, or by a source that keeps JSON as text).
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("profile", DataType::Utf8, true),
        Field::new("tags", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            text(&[Some("C1"), Some("C2"), Some("C3"), Some("C4")]),
            text(&[
                Some(r#"{"age": 41, "vip": true}"#),
                Some(r#"{"age": "old"}"#),
                None,
                Some(r#"{"age": 7"#),
            ]),
            text(&[Some(r#"["a", "b"]"#), Some("[]"), Some(r#"["c"]"#), None]),
        ],
    )
    .unwrap();
    let run = clean_staged(&fx, "staged/customers/structs.parquet", batch).await;
    assert_counts(&run, 4, 2, 0, 2);
    // Columns missing from the staged file are noted.
    assert!(
        run.notes
            .contains(&"column `address_city` is absent from the input: read as null".to_owned()),
        "{:?}",
        run.notes
    );
    let out = &fx.batches(&run.outputs[0]).await[0];
    assert!(matches!(out.column(5).data_type(), DataType::Struct(_)));
    assert!(matches!(out.column(6).data_type(), DataType::List(_)));
    assert_table(
        &crate::support::lines(&[out.project(&[0, 5, 6]).unwrap()]),
        &[
            "+----+----------------------+--------+",
            "| id | profile              | tags   |",
            "+----+----------------------+--------+",
            "| C1 | {age: 41, vip: true} | [a, b] |",
            "| C3 |                      | [c]    |",
            "+----+----------------------+--------+",
        ],
    );
    let why = reasons(&fx, &run).await;
    assert_eq!(why[0].0, "C2");
    assert!(
        why[0]
            .1
            .starts_with("invalid_json_profile: field `age`: cannot read `old` as an integer"),
        "{why:?}"
    );
    assert_eq!(why[1].0, "C4");
    assert!(
        why[1]
            .1
            .starts_with("invalid_json_profile: cannot read `{\"age\": 7` as JSON"),
        "{why:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Defaults

const TIERS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:tiers
version: 1.0.0
status: active
schema:
  - name: tiers
    properties:
      - name: id
        logicalType: string
        required: true
      - name: tier
        logicalType: string
      - name: score
        logicalType: integer
"#;

fn tiers() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "tiers"
contract = "tiers.odcs.yaml"
source = { format = "csv" }
clean = { defaults = { tier = "basic", score = "0" } }
"#,
        &[("tiers.odcs.yaml", TIERS_CONTRACT)],
    )
}

#[tokio::test]
async fn a_column_absent_from_the_input_takes_its_default_and_is_counted() {
    let fx = tiers();
    // The raw file has no `tier` column at all: ingest reads it as null, clean fills it.
    let run = fx
        .ingest_clean("raw/tiers/no_tier.csv", "id,score\nT1,5\nT2,\nT3,7\n")
        .await;
    assert_counts(&run, 3, 3, 0, 0);
    assert_eq!(run.defaulted, 4, "three tiers and one score");
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+----+-------+-------+",
            "| id | tier  | score |",
            "+----+-------+-------+",
            "| T1 | basic | 5     |",
            "| T2 | basic | 0     |",
            "| T3 | basic | 7     |",
            "+----+-------+-------+",
        ],
    );

    // A staged file without the column (written before the contract added it).
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema, vec![text(&[Some("T4"), Some("T5")])]).unwrap();
    let run = clean_staged(&fx, "staged/tiers/old.parquet", batch).await;
    assert_counts(&run, 2, 2, 0, 0);
    assert_eq!(run.defaulted, 4);
    assert_eq!(
        run.notes,
        [
            "column `tier` is absent from the input: every row takes the default `basic`",
            "column `score` is absent from the input: every row takes the default `0`",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Deduplication

const EVENTS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:events
version: 1.0.0
status: active
schema:
  - name: events
    properties:
      - name: id
        logicalType: string
        primaryKey: true
      - name: version
        logicalType: integer
      - name: note
        logicalType: string
"#;

#[tokio::test]
async fn latest_per_key_orders_null_lowest_and_the_later_row_wins_ties() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "events"
contract = "events.odcs.yaml"
source = { format = "csv" }
clean = { latest_by = "version" }
"#,
        &[("events.odcs.yaml", EVENTS_CONTRACT)],
    );
    let run = fx
        .ingest_clean(
            "raw/events/e.csv",
            "id,version,note\n\
             A,1,a1\n\
             A,,a-null\n\
             B,,b-null-1\n\
             B,,b-null-2\n\
             C,2,c-first\n\
             C,2,c-second\n\
             C,1,c-older\n\
             D,3,same\n\
             D,3,same\n\
             E,-5,e-negative\n\
             E,,e-null\n",
        )
        .await;
    // A: 1 beats null. B: two nulls tie, the later wins. C: a tie at 2, the later wins; 1 is
    // older. D: an exact duplicate is dropped as such. E: a negative value still beats null.
    assert_counts(&run, 11, 5, 6, 0);
    assert_eq!(
        run.notes,
        [
            "1 exact duplicate rows dropped",
            "5 superseded versions dropped (latest per key kept)",
        ]
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let notes: Vec<_> = batch
        .column(2)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(notes, ["a1", "b-null-2", "c-second", "same", "e-negative"]);
}

#[tokio::test]
async fn exact_duplicates_compare_every_column_after_normalization() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "events"
contract = "events.odcs.yaml"
source = { format = "csv" }
"#,
        &[("events.odcs.yaml", EVENTS_CONTRACT)],
    );
    let run = fx
        .ingest_clean(
            "raw/events/d.csv",
            "id,version,note\nA,1,x\nA,1, x \nA,1,\nA,1,\nA,2,x\n,,\n,,\n",
        )
        .await;
    // ` x ` trims to `x`; two null notes are equal; nulls everywhere are equal too.
    assert_counts(&run, 7, 4, 3, 0);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let notes: Vec<_> = batch.column(2).as_string::<i32>().iter().collect();
    assert_eq!(notes, [Some("x"), None, Some("x"), None]);
}

// ---------------------------------------------------------------------------------------------
// Gap filling

const READINGS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:readings
version: 1.0.0
status: active
schema:
  - name: readings
    properties:
      - name: sensor_id
        logicalType: string
        required: true
      - name: ts
        logicalType: timestamp
        required: true
      - name: value
        logicalType: number
      - name: count
        logicalType: integer
      - name: unit
        logicalType: string
      - name: is_filled
        logicalType: boolean
      - name: is_outlier
        logicalType: boolean
"#;

fn readings() -> Fx {
    let product = |name: &str, fill: &str, extra: &str| {
        format!(
            "[[domains.products]]\nname = \"{name}\"\ncontract = \"readings.odcs.yaml\"\n\
             source = {{ format = \"csv\" }}\n\
             clean = {{ gaps = {{ time = \"ts\", every = \"1h\", by = [\"sensor_id\"], fill = \"{fill}\", marker = \"is_filled\"{extra} }} }}\n"
        )
    };
    Fx::new(
        &[
            product("readings_zero", "zero", ""),
            product("readings_null", "null", ""),
            product("readings_forward", "forward", ""),
            product("readings_capped", "zero", ", max_filled_rows = 2"),
            "[[domains.products]]\nname = \"readings_flagged\"\ncontract = \"readings.odcs.yaml\"\n\
             source = { format = \"csv\" }\n\
             clean = { gaps = { time = \"ts\", every = \"1h\", by = [\"sensor_id\"], fill = \"forward\", marker = \"is_filled\" }, \
             outliers = { method = \"zscore\", columns = [\"value\"], threshold = 1.0, action = \"flag\", flag_column = \"is_outlier\" } }\n"
                .to_owned(),
        ]
        .join("\n"),
        &[("readings.odcs.yaml", READINGS_CONTRACT)],
    )
}

/// Sensor A misses 01:00 and 02:00; sensor B (on the half hour) misses 03:30; a row of A
/// breaking a rule does not count as present.
const READINGS: &str = "sensor_id,ts,value,count,unit,is_filled,is_outlier\n\
    A,2024-05-01T00:00:00Z,1.5,1,C,,\n\
    B,2024-05-01T01:30:00Z,10,10,F,true,\n\
    A,2024-05-01T03:00:00Z,4.5,4,C,,\n\
    B,2024-05-01T02:30:00Z,11,11,F,,\n\
    B,2024-05-01T04:30:00Z,13,13,F,,\n";

async fn fill(product: &str) -> (Fx, RunRecord) {
    let fx = readings();
    let run = fx
        .ingest_clean(&format!("raw/{product}/r.csv"), READINGS)
        .await;
    (fx, run)
}

#[tokio::test]
async fn gaps_are_filled_with_zero_per_series_and_marked() {
    let (fx, run) = fill("readings_zero").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.filled, 3);
    assert_counts(&run, 5, 8, 0, 0);
    assert!(
        run.notes
            .contains(&"3 rows generated to fill time gaps (marked in `is_filled`)".to_owned()),
        "{:?}",
        run.notes
    );
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+-----------+----------------------+-------+-------+------+-----------+------------+",
            "| sensor_id | ts                   | value | count | unit | is_filled | is_outlier |",
            "+-----------+----------------------+-------+-------+------+-----------+------------+",
            "| A         | 2024-05-01T00:00:00Z | 1.5   | 1     | C    | false     |            |",
            "| A         | 2024-05-01T01:00:00Z | 0.0   | 0     |      | true      |            |",
            "| A         | 2024-05-01T02:00:00Z | 0.0   | 0     |      | true      |            |",
            "| B         | 2024-05-01T01:30:00Z | 10.0  | 10    | F    | false     |            |",
            "| A         | 2024-05-01T03:00:00Z | 4.5   | 4     | C    | false     |            |",
            "| B         | 2024-05-01T02:30:00Z | 11.0  | 11    | F    | false     |            |",
            "| B         | 2024-05-01T03:30:00Z | 0.0   | 0     |      | true      |            |",
            "| B         | 2024-05-01T04:30:00Z | 13.0  | 13    | F    | false     |            |",
            "+-----------+----------------------+-------+-------+------+-----------+------------+",
        ],
    );
}

#[tokio::test]
async fn gaps_are_filled_with_nulls() {
    let (fx, run) = fill("readings_null").await;
    assert_eq!(run.filled, 3);
    assert_counts(&run, 5, 8, 0, 0);
    let table = fx.table(&run.outputs[0]).await;
    assert_eq!(
        table[4],
        "| A         | 2024-05-01T01:00:00Z |       |       |      | true      |            |"
    );
    assert_eq!(
        table[9],
        "| B         | 2024-05-01T03:30:00Z |       |       |      | true      |            |"
    );
}

#[tokio::test]
async fn gaps_are_filled_forward_from_the_previous_row_of_the_series() {
    let (fx, run) = fill("readings_forward").await;
    assert_eq!(run.filled, 3);
    let table = fx.table(&run.outputs[0]).await;
    assert_eq!(
        &table[3..12],
        [
            "| A         | 2024-05-01T00:00:00Z | 1.5   | 1     | C    | false     |            |",
            "| A         | 2024-05-01T01:00:00Z | 1.5   | 1     | C    | true      |            |",
            "| A         | 2024-05-01T02:00:00Z | 1.5   | 1     | C    | true      |            |",
            "| B         | 2024-05-01T01:30:00Z | 10.0  | 10    | F    | false     |            |",
            "| A         | 2024-05-01T03:00:00Z | 4.5   | 4     | C    | false     |            |",
            "| B         | 2024-05-01T02:30:00Z | 11.0  | 11    | F    | false     |            |",
            "| B         | 2024-05-01T03:30:00Z | 11.0  | 11    | F    | true      |            |",
            "| B         | 2024-05-01T04:30:00Z | 13.0  | 13    | F    | false     |            |",
            "+-----------+----------------------+-------+-------+------+-----------+------------+",
        ]
    );
}

#[tokio::test]
async fn generated_rows_are_not_outliers_even_when_copied_from_one() {
    // Values 1.5, 4.5, 10, 11, 13: mean 8, σ 4.30; threshold 1 flags 1.5 and 13.
    let (fx, run) = fill("readings_flagged").await;
    assert_eq!((run.filled, run.flagged), (3, 2));
    let table = fx.table(&run.outputs[0]).await;
    assert_eq!(
        &table[3..6],
        [
            "| A         | 2024-05-01T00:00:00Z | 1.5   | 1     | C    | false     | true       |",
            "| A         | 2024-05-01T01:00:00Z | 1.5   | 1     | C    | true      | false      |",
            "| A         | 2024-05-01T02:00:00Z | 1.5   | 1     | C    | true      | false      |",
        ]
    );
}

#[tokio::test]
async fn gaps_are_filled_across_batches_for_interleaved_series() {
    let fx = readings();
    const HOURS: i64 = 12_000;
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    let at = |h: i64| (start + chrono::Duration::hours(h)).to_rfc3339();
    let mut csv = String::from("sensor_id,ts,value,count,unit,is_filled,is_outlier\n");
    let (mut rows, mut missing) = (0u64, 0u64);
    for h in 0..HOURS {
        // A misses every third hour, B every fifth; both have their first and last hour.
        for (sensor, every) in [("A", 3), ("B", 5)] {
            if h % every == every - 1 && h != HOURS - 1 {
                missing += 1;
                continue;
            }
            csv.push_str(&format!("{sensor},{},{h},{h},C,,\n", at(h)));
            rows += 1;
        }
    }
    let run = fx.ingest_clean("raw/readings_forward/big.csv", csv).await;
    assert_eq!(run.filled, missing);
    assert_counts(&run, rows, rows + missing, 0, 0);
    let batches = fx.batches(&run.outputs[0]).await;
    assert!(batches.len() > 1, "the test must span several batches");
    // Per series, every hour once, in order; a generated row repeats the previous value.
    let mut last: std::collections::HashMap<String, (i64, i64)> = Default::default();
    for batch in &batches {
        let ids = batch.column(0).as_string::<i32>();
        let ts = batch
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let counts = batch
            .column(3)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let filled = batch.column(5).as_boolean();
        for i in 0..batch.num_rows() {
            let hour = (ts.value(i) - start.timestamp_micros()) / 3_600_000_000;
            let entry = last.entry(ids.value(i).to_owned()).or_insert((-1, 0));
            assert_eq!(hour, entry.0 + 1, "{} at row {i}", ids.value(i));
            if filled.value(i) {
                assert_eq!(counts.value(i), entry.1, "forward fill");
            } else {
                assert_eq!(counts.value(i), hour);
            }
            *entry = (hour, counts.value(i));
        }
    }
    assert_eq!(last["A"].0, HOURS - 1);
    assert_eq!(last["B"].0, HOURS - 1);
}

#[tokio::test]
async fn daily_gaps_of_a_date_column_are_filled() {
    let fx = Fx::new(
        r#"
[[domains.products]]
name = "daily"
contract = "daily.odcs.yaml"
source = { format = "csv" }
clean = { gaps = { time = "day", every = "1d", fill = "zero", marker = "filled" } }
"#,
        &[(
            "daily.odcs.yaml",
            r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:daily
version: 1.0.0
status: active
schema:
  - name: daily
    properties:
      - name: day
        logicalType: date
        required: true
      - name: total
        logicalType: number
        physicalType: decimal(8,2)
        required: true
      - name: filled
        logicalType: boolean
"#,
        )],
    );
    let run = fx
        .ingest_clean(
            "raw/daily/d.csv",
            "day,total,filled\n2024-05-04,4.5,\n2024-05-01,1.25,\n2024-05-05,5,\n",
        )
        .await;
    assert_eq!(run.filled, 2);
    // The file is not in order: the gap after 05-01 follows the row of 05-01.
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+------------+-------+--------+",
            "| day        | total | filled |",
            "+------------+-------+--------+",
            "| 2024-05-04 | 4.50  | false  |",
            "| 2024-05-01 | 1.25  | false  |",
            "| 2024-05-02 | 0.00  | true   |",
            "| 2024-05-03 | 0.00  | true   |",
            "| 2024-05-05 | 5.00  | false  |",
            "+------------+-------+--------+",
        ],
    );
}

#[tokio::test]
async fn gap_filling_over_its_cap_refuses_the_file() {
    let (fx, run) = fill("readings_capped").await;
    assert_eq!(run.status, RunStatus::Quarantined);
    assert_eq!(run.rows_out, 0);
    assert!(
        run.notes[0]
            .starts_with("gap filling would generate 3 rows, more than max_filled_rows = 2"),
        "{:?}",
        run.notes
    );
    assert!(fx.keys("clean/").await.is_empty());
}

#[tokio::test]
async fn rows_quarantined_for_a_rule_leave_their_slot_to_be_filled() {
    let fx = readings();
    let run = fx
        .ingest_clean(
            "raw/readings_zero/q.csv",
            "sensor_id,ts,value,count,unit,is_filled,is_outlier\n\
             S,2024-05-01T00:00:00Z,1,1,C,,\n\
             ,2024-05-01T01:00:00Z,2,2,C,,\n\
             S,2024-05-01T02:00:00Z,3,3,C,,\n",
        )
        .await;
    // The keyless row is quarantined (its series is unknown), so S misses 01:00.
    assert_eq!(run.filled, 1);
    assert_counts(&run, 3, 3, 0, 1);
}

#[test]
fn gap_recipes_are_checked_when_the_mesh_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.yaml"), READINGS_CONTRACT).unwrap();
    let load = |gaps: &str| {
        let toml = format!(
            "[mesh]\nname = \"t\"\n[[domains]]\nname = \"d\"\n[[domains.products]]\n\
             name = \"r\"\ncontract = \"r.yaml\"\nsource = {{ format = \"csv\" }}\n\
             clean = {{ gaps = {gaps} }}\n"
        );
        Mesh::from_toml(&toml, "mesh.toml", dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = load(r#"{ time = "ts", every = "1h", marker = "unit" }"#);
    assert!(
        e.contains("gaps.marker `unit` must be a boolean column of the contract, not Utf8"),
        "{e}"
    );
    let e = load(r#"{ time = "value", every = "1h", marker = "is_filled" }"#);
    assert!(
        e.contains("gaps.time `value` must be a timestamp or date column"),
        "{e}"
    );
    let e = load(r#"{ time = "ts", every = "0h", marker = "is_filled" }"#);
    assert!(e.contains("gaps.every `0h` must be positive"), "{e}");
    let e = load(r#"{ time = "ts", every = "1 fortnight", marker = "is_filled" }"#);
    assert!(e.contains("unknown unit `fortnight`"), "{e}");
    // `sensor_id` is required: a null fill would leave generated rows without it.
    let e = load(r#"{ time = "ts", every = "1h", marker = "is_filled", fill = "null" }"#);
    assert!(
        e.contains("column `sensor_id` is required, but fill = \"null\" leaves it null"),
        "{e}"
    );
    assert_eq!(
        load(r#"{ time = "ts", every = "15m", by = ["sensor_id"], marker = "is_filled" }"#),
        ""
    );
}

// ---------------------------------------------------------------------------------------------
// Outliers

const AMOUNTS_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:amounts
version: 1.0.0
status: active
schema:
  - name: amounts
    properties:
      - name: id
        logicalType: string
        required: true
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
      - name: score
        logicalType: integer
        logicalTypeOptions:
          minimum: 0
          maximum: 100
      - name: is_outlier
        logicalType: boolean
"#;

fn amounts() -> Fx {
    let product = |name: &str, outliers: &str| {
        format!(
            "[[domains.products]]\nname = \"{name}\"\ncontract = \"amounts.odcs.yaml\"\n\
             source = {{ format = \"csv\" }}\nclean = {{ outliers = {outliers} }}\n"
        )
    };
    Fx::new(
        &[
            product(
                "iqr_quarantine",
                r#"{ method = "iqr", columns = ["amount"] }"#,
            ),
            product(
                "iqr_clip",
                r#"{ method = "iqr", columns = ["amount"], k = 1.5, action = "clip" }"#,
            ),
            product(
                "iqr_flag",
                r#"{ method = "iqr", columns = ["amount"], action = "flag", flag_column = "is_outlier" }"#,
            ),
            product(
                "z_quarantine",
                r#"{ method = "zscore", columns = ["amount"], threshold = 1.5 }"#,
            ),
            product(
                "z_clip",
                r#"{ method = "zscore", columns = ["amount"], threshold = 1.5, action = "clip" }"#,
            ),
            product(
                "z_flag",
                r#"{ method = "zscore", columns = ["amount"], threshold = 1.5, action = "flag", flag_column = "is_outlier", range = "clip" }"#,
            ),
            product("range_clip", r#""clip""#),
        ]
        .join("\n"),
        &[("amounts.odcs.yaml", AMOUNTS_CONTRACT)],
    )
}

/// Ten amounts: quartiles 12.25 and 16.75 (linear interpolation), IQR 4.5, fences with k = 1.5
/// [5.5, 23.5]: only 100 is outside. A null amount is no value and no outlier.
fn iqr_csv() -> String {
    let mut csv = String::from("id,amount,score,is_outlier\n");
    for (i, a) in [
        "10", "11", "12", "13", "14", "15", "16", "17", "18", "100", "",
    ]
    .iter()
    .enumerate()
    {
        csv.push_str(&format!("R{i},{a},50,\n"));
    }
    csv
}

/// 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population standard deviation 2; threshold 1.5 gives
/// [2, 8]: 9 is outside, 2 is on the fence (kept).
const ZSCORE_CSV: &str = "id,amount,score,is_outlier\n\
    R0,2,50,\nR1,4,50,\nR2,4,50,\nR3,4,50,\nR4,5,50,\nR5,5,50,\nR6,7,50,\nR7,9,150,\n";

fn amounts_of(batch: &RecordBatch) -> Vec<Option<String>> {
    let c = arrow::compute::cast(batch.column(1), &DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn iqr_outliers_are_quarantined_with_the_fences() {
    let fx = amounts();
    let run = fx.ingest_clean("raw/iqr_quarantine/a.csv", iqr_csv()).await;
    assert_counts(&run, 11, 10, 0, 1);
    assert_eq!(
        reasons(&fx, &run).await,
        [(
            "R9".to_owned(),
            "outlier: amount=100.00 outside [5.5, 23.5] (iqr k=1.5)".to_owned()
        )]
    );
    assert!(
        run.notes
            .contains(&"outlier fences of `amount` (iqr k=1.5): [5.5, 23.5]".to_owned()),
        "{:?}",
        run.notes
    );
}

#[tokio::test]
async fn iqr_outliers_are_clipped_to_the_fence() {
    let fx = amounts();
    let run = fx.ingest_clean("raw/iqr_clip/a.csv", iqr_csv()).await;
    assert_counts(&run, 11, 11, 0, 0);
    assert!(
        run.notes
            .contains(&"1 rows with values clipped to their bounds".to_owned()),
        "{:?}",
        run.notes
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let amounts = amounts_of(batch);
    assert_eq!(amounts[8], Some("18.00".into()));
    assert_eq!(amounts[9], Some("23.50".into()));
    assert_eq!(amounts[10], None);
}

#[tokio::test]
async fn iqr_outliers_are_flagged_in_the_flag_column() {
    let fx = amounts();
    let run = fx.ingest_clean("raw/iqr_flag/a.csv", iqr_csv()).await;
    assert_counts(&run, 11, 11, 0, 0);
    assert_eq!(run.flagged, 1);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let flags: Vec<_> = batch.column(3).as_boolean().iter().collect();
    let mut expected = vec![Some(false); 11];
    expected[9] = Some(true);
    assert_eq!(flags, expected);
    assert_eq!(
        amounts_of(batch)[9],
        Some("100.00".into()),
        "flag keeps the value"
    );
}

#[tokio::test]
async fn zscore_outliers_are_quarantined_clipped_or_flagged() {
    let fx = amounts();
    let run = fx.ingest_clean("raw/z_quarantine/a.csv", ZSCORE_CSV).await;
    // R7 also breaks the score range, which comes first.
    assert_eq!(
        reasons(&fx, &run).await,
        [("R7".to_owned(), "score_out_of_range".to_owned())]
    );
    assert!(
        run.notes
            .contains(&"outlier fences of `amount` (zscore threshold=1.5): [2, 8]".to_owned()),
        "{:?}",
        run.notes
    );

    let run = fx
        .ingest_clean("raw/z_clip/a.csv", ZSCORE_CSV.replace(",150,", ",50,"))
        .await;
    assert_counts(&run, 8, 8, 0, 0);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let amounts = amounts_of(batch);
    assert_eq!(amounts[0], Some("2.00".into()), "on the fence: kept");
    assert_eq!(amounts[7], Some("8.00".into()));

    // Flag the statistical outlier, clip the score to the contract's range.
    let run = fx.ingest_clean("raw/z_flag/a.csv", ZSCORE_CSV).await;
    assert_counts(&run, 8, 8, 0, 0);
    assert_eq!(run.flagged, 1);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    assert!(batch.column(3).as_boolean().value(7));
    assert!(!batch.column(3).as_boolean().value(0));
    let scores = batch
        .column(2)
        .as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(scores.value(7), 100);
}

#[tokio::test]
async fn range_rules_clip_to_the_contract_bounds() {
    let fx = amounts();
    let run = fx
        .ingest_clean(
            "raw/range_clip/a.csv",
            "id,amount,score,is_outlier\nR1,1,150,\nR2,1,-3,\nR3,1,100,\nR4,1,,\n",
        )
        .await;
    assert_counts(&run, 4, 4, 0, 0);
    assert_eq!(run.flagged, 0);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let scores: Vec<_> = batch
        .column(2)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .collect();
    assert_eq!(scores, [Some(100), Some(0), Some(100), None]);
    assert!(
        run.notes
            .contains(&"2 rows with values clipped to their bounds".to_owned()),
        "{:?}",
        run.notes
    );
}

#[test]
fn outlier_recipes_are_checked_when_the_mesh_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), AMOUNTS_CONTRACT).unwrap();
    let load = |outliers: &str| {
        let toml = format!(
            "[mesh]\nname = \"t\"\n[[domains]]\nname = \"d\"\n[[domains.products]]\n\
             name = \"a\"\ncontract = \"a.yaml\"\nsource = {{ format = \"csv\" }}\n\
             clean = {{ outliers = {outliers} }}\n"
        );
        Mesh::from_toml(&toml, "mesh.toml", dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        load(r#"{ method = "iqr", columns = ["id"] }"#).contains("`id` is not numeric"),
        "{}",
        load(r#"{ method = "iqr", columns = ["id"] }"#)
    );
    assert!(
        load(r#"{ method = "iqr", columns = ["amount"], flag_column = "score" }"#)
            .contains("outliers.flag_column `score` must be a boolean column")
    );
    assert!(
        load(r#"{ method = "zscore", columns = ["amount"], threshold = -1.0 }"#)
            .contains("must be a positive number")
    );
    assert!(
        load(r#""sometimes""#)
            .contains("outliers: `sometimes` is not \"quarantine\", \"flag\" or \"clip\""),
        "{}",
        load(r#""sometimes""#)
    );
    assert!(
        load(r#"{ method = "median", columns = ["amount"] }"#).contains("unknown variant `median`"),
        "{}",
        load(r#"{ method = "median", columns = ["amount"] }"#)
    );
    assert_eq!(load(r#""flag""#), "");
    assert_eq!(load(r#""clip""#), "");
}

// ---------------------------------------------------------------------------------------------
// Timestamps and decimals (typed at ingest, with the clean recipe)

const TIMES_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:times
version: 1.0.0
status: active
schema:
  - name: times
    properties:
      - name: id
        logicalType: string
      - name: at
        logicalType: timestamp
      - name: price
        logicalType: number
        physicalType: decimal(8,2)
"#;

fn times() -> Fx {
    let product = |name: &str, clean: &str| {
        format!(
            "[[domains.products]]\nname = \"{name}\"\ncontract = \"times.odcs.yaml\"\n\
             source = {{ format = \"csv\", delimiter = \";\" }}\nclean = {{ {clean} }}\n"
        )
    };
    Fx::new(
        &[
            product(
                "paris",
                r#"timestamps = { formats = ["%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S%z", "epoch_s", "epoch_ms"], timezone = "Europe/Paris" }"#,
            ),
            product("even", r#"decimal_rounding = "half_even""#),
            product("up", r#"decimal_rounding = "half_up""#),
            product("strict", ""),
        ]
        .join("\n"),
        &[("times.odcs.yaml", TIMES_CONTRACT)],
    )
}

fn instants(batch: &RecordBatch) -> Vec<Option<String>> {
    let t = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    (0..t.len())
        .map(|i| {
            t.is_valid(i).then(|| {
                chrono::DateTime::from_timestamp_micros(t.value(i))
                    .unwrap()
                    .to_rfc3339()
            })
        })
        .collect()
}

#[tokio::test]
async fn timestamps_in_recipe_formats_and_zones_become_utc() {
    let fx = times();
    let ingested = fx
        .ingest(
            "raw/paris/t.csv",
            "id;at;price\n\
             winter;15/01/2024 10:00;1\n\
             summer;15/07/2024 10:00;1\n\
             offset;2024-07-15T10:00:00+0000;1\n\
             seconds;1714557600;1\n\
             millis;1714557600123;1\n\
             ambiguous;27/10/2024 02:30;1\n\
             skipped;31/03/2024 02:30;1\n\
             iso;2024-07-15 10:00:00;1\n\
             nonsense;15-07-2024;1\n",
        )
        .await;
    assert_eq!(ingested.rows_out, 7, "{ingested:#?}");
    let batch = &fx.batches(&ingested.outputs[0]).await[0];
    assert_eq!(
        instants(batch),
        [
            Some("2024-01-15T09:00:00+00:00".into()),
            Some("2024-07-15T08:00:00+00:00".into()),
            Some("2024-07-15T10:00:00+00:00".into()),
            Some("2024-05-01T10:00:00+00:00".into()),
            Some("2024-05-01T10:00:00.123+00:00".into()),
            // 02:30 happens twice on 27 October in Paris: the earliest (summer time, UTC+2).
            Some("2024-10-27T00:30:00+00:00".into()),
            // Built-in ISO shapes still read, in the recipe's zone.
            Some("2024-07-15T08:00:00+00:00".into()),
        ]
    );
    let bad = fx.ndjson(&ingested.outputs[1]).await;
    assert_eq!(bad.len(), 2);
    assert_eq!(
        bad[0]["reason"],
        "column `at`: `2024-03-31 02:30:00` does not exist in Europe/Paris (skipped by a daylight-saving change)"
    );
    assert_eq!(
        bad[1]["reason"],
        "column `at`: cannot read `15-07-2024` as a timestamp (formats tried: %d/%m/%Y %H:%M, %Y-%m-%dT%H:%M:%S%z, epoch_s, epoch_ms)"
    );
}

#[tokio::test]
async fn decimals_with_more_places_than_the_scale_are_refused_or_rounded() {
    let fx = times();
    let csv = "id;at;price\n\
        a;;1.005\n\
        b;;1.015\n\
        c;;-2.345\n\
        d;;2.3451\n\
        e;;1.20\n\
        f;;1,234.5\n\
        g;;1.234,5\n\
        h;;999999.995\n";
    let price = |batch: &RecordBatch| -> Vec<String> {
        let c = arrow::compute::cast(batch.column(2), &DataType::Utf8).unwrap();
        c.as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect()
    };
    let even = fx.ingest("raw/even/p.csv", csv).await;
    assert_eq!(
        price(&fx.batches(&even.outputs[0]).await[0]),
        ["1.00", "1.02", "-2.34", "2.35", "1.20"]
    );
    let up = fx.ingest("raw/up/p.csv", csv).await;
    assert_eq!(
        price(&fx.batches(&up.outputs[0]).await[0]),
        ["1.01", "1.02", "-2.35", "2.35", "1.20"]
    );
    let reasons = |run: &RunRecord| {
        let fx = &fx;
        let key = run.outputs[1].clone();
        async move {
            fx.ndjson(&key)
                .await
                .iter()
                .map(|v| v["reason"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    // Thousands separators are never misread, whatever the rounding; rounding up past the
    // precision is refused.
    assert_eq!(
        reasons(&up).await,
        [
            "column `price`: cannot read `1,234.5` as decimal(8,2)",
            "column `price`: cannot read `1.234,5` as decimal(8,2)",
            "column `price`: `999999.995` does not fit decimal(8,2)",
        ]
    );
    let strict = fx.ingest("raw/strict/p.csv", csv).await;
    assert_eq!(price(&fx.batches(&strict.outputs[0]).await[0]), ["1.20"]);
    let refused = reasons(&strict).await;
    assert_eq!(refused.len(), 7);
    assert_eq!(
        refused[0],
        "column `price`: `1.005` has more than 2 decimal places"
    );
}
