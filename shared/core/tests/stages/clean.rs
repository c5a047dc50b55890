//! clean: normalization, defaults, deduplication, latest per key, row rules and outliers.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use tessera_core::runs::{RunRecord, RunStatus};
use tessera_core::stages;

use crate::support::{BUCKET, Fx, VERSION, assert_table};

const PEOPLE_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:people
version: 1.0.0
status: active
schema:
  - name: people
    properties:
      - name: person_id
        logicalType: string
        required: true
        primaryKey: true
        logicalTypeOptions:
          pattern: "^P[0-9]+$"
      - name: name
        logicalType: string
      - name: email
        logicalType: string
      - name: country
        logicalType: string
        logicalTypeOptions:
          pattern: "^[A-Z]{2}$"
      - name: status
        logicalType: string
        required: true
        quality:
          - type: library
            metric: invalidValues
            arguments:
              validValues: [Active, On Hold]
            mustBe: 0
      - name: tier
        logicalType: string
      - name: score
        logicalType: integer
        logicalTypeOptions:
          minimum: 0
          maximum: 100
      - name: updated_at
        logicalType: timestamp
        required: true
"#;

const HEADER: &str = "person_id,name,email,country,status,tier,score,updated_at\n";

/// `people` (latest per key, outliers quarantined), `people_flag` (outliers flagged, no
/// latest_by) and `people_raw` (no trimming, duplicates kept), all with the same contract.
fn people() -> Fx {
    Fx::new(
        r#"
[[domains.products]]
name = "people"
contract = "people.odcs.yaml"
source = { format = "csv" }
clean = { lowercase = ["email"], uppercase = ["country"], latest_by = "updated_at", defaults = { tier = "basic", score = "50" } }

[[domains.products]]
name = "people_flag"
contract = "people.odcs.yaml"
source = { format = "csv" }
clean = { uppercase = ["country"], outliers = "flag" }

[[domains.products]]
name = "people_raw"
contract = "people.odcs.yaml"
source = { format = "csv" }
clean = { trim = false, drop_exact_duplicates = false }
"#,
        &[("people.odcs.yaml", PEOPLE_CONTRACT)],
    )
}

/// Every row is accounted for exactly once.
#[track_caller]
fn assert_counts(run: &RunRecord, rows_in: u64, out: u64, dropped: u64, quarantined: u64) {
    assert_eq!(
        (run.rows_in, run.rows_out, run.dropped, run.quarantined),
        (rows_in, out, dropped, quarantined),
        "{run:#?}"
    );
    assert_eq!(run.rows_in, run.rows_out + run.dropped + run.quarantined);
}

/// The person ids and reasons of the quarantined rows of a clean run.
async fn reasons(fx: &Fx, run: &RunRecord) -> Vec<(Option<String>, String)> {
    let key = run
        .outputs
        .iter()
        .find(|k| k.starts_with("quarantine/"))
        .expect("a quarantine output");
    let mut out = Vec::new();
    for batch in fx.batches(key).await {
        let schema = batch.schema();
        let last = schema.fields().last().expect("columns");
        assert_eq!(
            (last.name().as_str(), last.data_type(), last.is_nullable()),
            ("_reason", &DataType::Utf8, false)
        );
        let ids = batch.column(0).as_string::<i32>();
        let why = batch.column(batch.num_columns() - 1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.push((
                ids.is_valid(i).then(|| ids.value(i).to_owned()),
                why.value(i).to_owned(),
            ));
        }
    }
    out
}

fn owned(rows: &[(Option<&str>, &str)]) -> Vec<(Option<String>, String)> {
    rows.iter()
        .map(|(id, why)| (id.map(str::to_owned), (*why).to_owned()))
        .collect()
}

#[tokio::test]
async fn strings_are_trimmed_cased_and_spelled_as_the_contract_and_defaults_fill_nulls() {
    let fx = people();
    let run = fx
        .ingest_clean(
            "raw/people/normalize.csv",
            format!(
                "{HEADER}\
                 P1,  Ada  ,  ADA@Example.COM ,de,active,,,2024-05-01T00:00:00Z\n\
                 P2,   ,bob@example.org,us,ON HOLD, gold ,7,2024-05-01T00:00:00Z\n\
                 P3,Cy,,  fr  ,  Active  ,   ,0,2024-05-01T00:00:00Z\n"
            ),
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_counts(&run, 3, 3, 0, 0);
    assert!(run.notes.is_empty(), "{:?}", run.notes);
    // P1's tier and score, P3's blank tier.
    assert_eq!(run.defaulted, 3);
    assert_eq!(run.outputs.len(), 1, "no quarantine file without bad rows");
    assert!(run.outputs[0].starts_with("clean/people/normalize-"));
    assert_table(
        &fx.table(&run.outputs[0]).await,
        &[
            "+-----------+------+-----------------+---------+---------+-------+-------+----------------------+",
            "| person_id | name | email           | country | status  | tier  | score | updated_at           |",
            "+-----------+------+-----------------+---------+---------+-------+-------+----------------------+",
            "| P1        | Ada  | ada@example.com | DE      | Active  | basic | 50    | 2024-05-01T00:00:00Z |",
            "| P2        |      | bob@example.org | US      | On Hold | gold  | 7     | 2024-05-01T00:00:00Z |",
            "| P3        | Cy   |                 | FR      | Active  | basic | 0     | 2024-05-01T00:00:00Z |",
            "+-----------+------+-----------------+---------+---------+-------+-------+----------------------+",
        ],
    );
    // Blank text became null, not an empty string.
    let batch = &fx.batches(&run.outputs[0]).await[0];
    assert!(batch.column(1).is_null(1));
    assert!(batch.column(2).is_null(2));
}

#[tokio::test]
async fn duplicates_are_dropped_and_the_latest_row_per_key_is_kept() {
    let fx = people();
    let run = fx
        .ingest_clean(
            "raw/people/versions.csv",
            format!(
                "{HEADER}\
                 P1,v1,,DE,Active,,1,2024-05-01T10:00:00Z\n\
                 P1,v2,,DE,Active,,2,2024-05-01T12:00:00Z\n\
                 P1,v3,,DE,Active,,3,2024-05-01T11:00:00Z\n\
                 P2,same,,DE,Active,,4,2024-05-01T10:00:00Z\n\
                 P2, same ,,de,active,,4,2024-05-01T10:00:00Z\n\
                 P3,tie first,,DE,Active,,5,2024-05-01T10:00:00Z\n\
                 P3,tie second,,DE,Active,,6,2024-05-01T10:00:00+00:00\n\
                 ,no key 1,,DE,Active,,7,2024-05-01T10:00:00Z\n\
                 ,no key 2,,DE,Active,,8,2024-05-01T10:00:00Z\n"
            ),
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    // 1 exact duplicate (equal once normalized) + 3 superseded versions dropped; rows without
    // a key are never collapsed: both are quarantined for their missing key.
    assert_counts(&run, 9, 3, 4, 2);
    assert_eq!(
        run.notes,
        [
            "1 exact duplicate rows dropped",
            "3 superseded versions dropped (latest per key kept)",
        ]
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let kept: Vec<_> = (0..batch.num_rows())
        .map(|i| {
            (
                batch.column(0).as_string::<i32>().value(i),
                batch.column(1).as_string::<i32>().value(i),
            )
        })
        .collect();
    assert_eq!(kept, [("P1", "v2"), ("P2", "same"), ("P3", "tie second")]);
    assert_eq!(
        reasons(&fx, &run).await,
        owned(&[(None, "missing_person_id"), (None, "missing_person_id")])
    );
}

#[tokio::test]
async fn broken_row_rules_quarantine_rows_with_the_first_reason() {
    let fx = people();
    let run = fx
        .ingest_clean(
            "raw/people/rules.csv",
            format!(
                "{HEADER}\
                 P1,ok,,DE,Active,,10,2024-05-01T00:00:00Z\n\
                 P2,,,DE,retired,,10,2024-05-01T00:00:00Z\n\
                 P3,,,Deutschland,Active,,10,2024-05-01T00:00:00Z\n\
                 X4,,,DE,Active,,10,2024-05-01T00:00:00Z\n\
                 P5,,,DE,  ,,10,2024-05-01T00:00:00Z\n\
                 P6,,,DE,Active,,101,2024-05-01T00:00:00Z\n\
                 P7,,,DE,Active,,-1,2024-05-01T00:00:00Z\n\
                 P8,,,DE,Active,,10,\n\
                 P9,,,D1,nope,,500,2024-05-01T00:00:00Z\n\
                 P10,edge,,DE,On hold,,100,2024-05-01T00:00:00Z\n\
                 P11,edge,,DE,Active,,0,2024-05-01T00:00:00Z\n"
            ),
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_counts(&run, 11, 3, 0, 8);
    assert_eq!(run.flagged, 0);
    assert_eq!(run.outputs.len(), 2);
    assert!(
        run.outputs[1].starts_with("quarantine/people/clean/rules-")
            && run.outputs[1].ends_with(".parquet"),
        "{:?}",
        run.outputs
    );
    assert_eq!(
        reasons(&fx, &run).await,
        owned(&[
            (Some("P2"), "invalid_status"),
            (Some("P3"), "invalid_country"),
            (Some("X4"), "invalid_person_id"),
            (Some("P5"), "missing_status"),
            (Some("P6"), "score_out_of_range"),
            (Some("P7"), "score_out_of_range"),
            (Some("P8"), "missing_updated_at"),
            // Several rules broken: the first column's.
            (Some("P9"), "invalid_country"),
        ])
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let kept: Vec<_> = batch
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(kept, ["P1", "P10", "P11"], "bounds are inclusive");
    // The quarantined rows keep every column, normalized, next to the reason.
    let quarantined = fx.batches(&run.outputs[1]).await;
    assert_eq!(quarantined[0].num_columns(), 9);
    assert_eq!(
        quarantined[0].column(3).as_string::<i32>().value(1),
        "DEUTSCHLAND"
    );
}

#[tokio::test]
async fn flagged_outliers_are_kept_and_counted() {
    let fx = people();
    let run = fx
        .ingest_clean(
            "raw/people_flag/outliers.csv",
            format!(
                "{HEADER}\
                 P1,,,DE,Active,,101,2024-05-01T00:00:00Z\n\
                 P2,,,DE,Active,,-5,2024-05-01T00:00:00Z\n\
                 P3,,,DE,Active,,50,2024-05-01T00:00:00Z\n\
                 P4,,,DE,unknown,,500,2024-05-01T00:00:00Z\n"
            ),
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_counts(&run, 4, 3, 0, 1);
    assert_eq!(run.flagged, 2);
    assert_eq!(run.notes, ["2 rows flagged as outliers and kept"]);
    // Out of range is not a reason any more, but other rules still apply.
    assert_eq!(
        reasons(&fx, &run).await,
        owned(&[(Some("P4"), "invalid_status")])
    );
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let scores: Vec<_> = batch
        .column(6)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .collect();
    assert_eq!(scores, [Some(101), Some(-5), Some(50)]);
}

#[tokio::test]
async fn without_trim_or_deduplication_rows_are_kept_as_typed() {
    let fx = people();
    let run = fx
        .ingest_clean(
            "raw/people_raw/as_is.csv",
            format!(
                "{HEADER}\
                 P1, padded ,,DE,Active,,1,2024-05-01T00:00:00Z\n\
                 P1, padded ,,DE,Active,,1,2024-05-01T00:00:00Z\n\
                 P2,,,DE,active,,1,2024-05-01T00:00:00Z\n"
            ),
        )
        .await;
    assert_counts(&run, 3, 3, 0, 0);
    let batch = &fx.batches(&run.outputs[0]).await[0];
    let names: Vec<_> = batch.column(1).as_string::<i32>().iter().collect();
    assert_eq!(names, [Some(" padded "), Some(" padded "), None]);
    // Enumerated values still take the contract's spelling.
    let status: Vec<_> = batch
        .column(4)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(status, ["Active", "Active", "Active"]);
}

#[tokio::test]
async fn a_file_with_no_surviving_row_is_skipped() {
    let fx = people();
    let run = fx
        .ingest_clean(
            "raw/people/all_bad.csv",
            format!("{HEADER}P1,,,DE,bad,,1,2024-05-01T00:00:00Z\n"),
        )
        .await;
    assert_eq!(run.status, RunStatus::Skipped);
    assert_counts(&run, 1, 0, 0, 1);
    assert!(
        run.notes.contains(&"no row survived cleaning".to_owned()),
        "{:?}",
        run.notes
    );
    assert!(fx.keys("clean/").await.is_empty());
    assert_eq!(run.outputs.len(), 1);
}

#[tokio::test]
async fn cleaning_the_same_staged_file_twice_gives_the_same_output() {
    let fx = people();
    let first = fx
        .ingest_clean(
            "raw/people/again.csv",
            format!("{HEADER}P1,a,,DE,Active,,1,2024-05-01T00:00:00Z\n"),
        )
        .await;
    let staged = first.input.key.clone();
    let second = stages::clean::run(fx.ctx(), BUCKET, &staged, VERSION)
        .await
        .expect("clean runs");
    assert_eq!(first.run_id, second.run_id);
    assert_eq!(first.outputs, second.outputs);
    assert_eq!(fx.keys("clean/people/").await.len(), 1);
    assert_eq!(fx.keys("runs/people/clean/").await.len(), 1);
}

#[tokio::test]
async fn latest_per_key_and_duplicates_hold_across_batches() {
    let fx = people();
    const KEYS: usize = 10_000;
    let mut csv = String::from(HEADER);
    // First version of every key...
    for i in 0..KEYS {
        csv.push_str(&format!("P{i},v1,,DE,Active,,1,2024-05-01T10:00:00Z\n"));
    }
    // ...then the second, in reverse order: newer for odd keys, a tie for even ones (the later
    // row wins a tie).
    for i in (0..KEYS).rev() {
        let hour = if i % 2 == 0 { 10 } else { 11 };
        csv.push_str(&format!("P{i},v2,,DE,Active,,2,2024-05-01T{hour}:00:00Z\n"));
    }
    // An exact duplicate of the very first row, three batches later.
    csv.push_str("P0,v1,,DE,Active,,1,2024-05-01T10:00:00Z\n");
    let run = fx.ingest_clean("raw/people/big.csv", csv).await;
    assert_counts(&run, 2 * KEYS as u64 + 1, KEYS as u64, KEYS as u64 + 1, 0);
    assert_eq!(
        run.notes,
        [
            "1 exact duplicate rows dropped",
            "10000 superseded versions dropped (latest per key kept)",
        ]
    );
    let batches = fx.batches(&run.outputs[0]).await;
    assert!(batches.len() > 1, "the test must span several batches");
    let mut ids = Vec::new();
    for batch in &batches {
        let names = batch.column(1).as_string::<i32>();
        assert!(names.iter().all(|n| n == Some("v2")));
        ids.extend(
            batch
                .column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned)),
        );
    }
    assert_eq!(ids.len(), KEYS);
    assert_eq!(ids.first(), Some(&Some(format!("P{}", KEYS - 1))));
    assert_eq!(ids.last(), Some(&Some("P0".to_owned())));
}
