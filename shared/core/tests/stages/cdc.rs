//! Debezium CDC ingest (`source.format = "debezium"`) and entity products (latest state per key).

use arrow::array::AsArray;
use serde_json::{Value, json};
use tessera_core::events::ProductPublished;
use tessera_core::mesh::Mesh;
use tessera_core::publish;
use tessera_core::runs::{RunRecord, RunStatus};
use tessera_core::stages;

use crate::support::{BUCKET, Fx, assert_table, lines};

/// A change stream of customers: the row image's columns and the CDC metadata columns.
const STREAM_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customer_changes
version: 1.0.0
status: active
schema:
  - name: customer_changes
    properties:
      - name: customer_id
        logicalType: string
      - name: name
        logicalType: string
      - name: tier
        logicalType: string
      - name: cdc_op
        logicalType: string
        required: true
      - name: cdc_ts
        logicalType: timestamp
      - name: cdc_position
        logicalType: string
        required: true
"#;

/// The latest state per customer.
const STATE_CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customer_state
version: 1.0.0
status: active
schema:
  - name: customer_state
    properties:
      - name: customer_id
        logicalType: string
        required: true
        primaryKey: true
      - name: name
        logicalType: string
      - name: tier
        logicalType: string
      - name: cdc_position
        logicalType: string
"#;

/// The stream product with `source` settings, and the `customer_state` entity when `entity`
/// is not empty (its TOML body after `name` and `contract`).
fn stream(source: &str, entity: &str) -> Fx {
    let entity = if entity.is_empty() {
        String::new()
    } else {
        format!(
            "\n[[domains.products.entities]]\nname = \"customer_state\"\n\
             contract = \"state.odcs.yaml\"\n{entity}\n"
        )
    };
    Fx::new(
        &format!(
            "[[domains.products]]\nname = \"customer_changes\"\n\
             contract = \"changes.odcs.yaml\"\nsource = {source}\n{entity}"
        ),
        &[
            ("changes.odcs.yaml", STREAM_CONTRACT),
            ("state.odcs.yaml", STATE_CONTRACT),
        ],
    )
}

fn debezium() -> Fx {
    stream(
        r#"{ format = "debezium", cdc = { key = ["customer_id"] } }"#,
        r#"key = ["customer_id"]"#,
    )
}

/// A bare PostgreSQL change event.
fn pg(op: &str, lsn: u64, before: Value, after: Value) -> String {
    json!({
        "before": before,
        "after": after,
        "source": {"connector": "postgresql", "db": "shop", "table": "customers",
                   "lsn": lsn, "txId": 700 + lsn, "ts_ms": 1_714_557_600_000_u64 + lsn},
        "op": op,
        "ts_ms": 1_714_557_700_000_u64,
    })
    .to_string()
}

fn customer(id: &str, name: &str, tier: &str) -> Value {
    json!({"customer_id": id, "name": name, "tier": tier})
}

fn ndjson(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn staged(fx: &Fx, run: &RunRecord) -> Vec<String> {
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    fx.table(&run.outputs[0]).await
}

#[tokio::test]
async fn postgres_events_with_and_without_the_wrapper_become_rows_and_tombstones_are_skipped() {
    let fx = debezium();
    let wrapped = json!({
        "schema": {"type": "struct", "name": "shop.public.customers.Envelope", "fields": []},
        "payload": serde_json::from_str::<Value>(&pg("c", 100, Value::Null, customer("C1", "Ann", "gold"))).unwrap(),
    });
    let file = ndjson(&[
        wrapped.to_string(),
        pg(
            "u",
            200,
            customer("C1", "Ann", "gold"),
            customer("C1", "Ann", "platinum"),
        ),
        "null".into(),
        r#"{"schema": null, "payload": null}"#.into(),
        pg("r", 50, Value::Null, customer("C2", "Bob", "silver")),
        // REPLICA IDENTITY DEFAULT: the delete's `before` carries the key only.
        pg("d", 300, json!({"customer_id": "C2"}), Value::Null),
        pg("t", 400, Value::Null, Value::Null),
    ]);
    let run = fx.ingest("raw/customer_changes/pg.ndjson", file).await;
    assert_eq!((run.rows_in, run.rows_out, run.quarantined), (5, 5, 0));
    assert!(
        run.notes.contains(&"2 tombstone(s) skipped".to_owned()),
        "{:?}",
        run.notes
    );
    assert_table(
        &staged(&fx, &run).await,
        &[
            "+-------------+------+----------+--------+--------------------------+----------------------+",
            "| customer_id | name | tier     | cdc_op | cdc_ts                   | cdc_position         |",
            "+-------------+------+----------+--------+--------------------------+----------------------+",
            "| C1          | Ann  | gold     | c      | 2024-05-01T10:00:00.100Z | 00000000000000000100 |",
            "| C1          | Ann  | platinum | u      | 2024-05-01T10:00:00.200Z | 00000000000000000200 |",
            "| C2          | Bob  | silver   | r      | 2024-05-01T10:00:00.050Z | 00000000000000000050 |",
            "| C2          |      |          | d      | 2024-05-01T10:00:00.300Z | 00000000000000000300 |",
            "|             |      |          | t      | 2024-05-01T10:00:00.400Z | 00000000000000000400 |",
            "+-------------+------+----------+--------+--------------------------+----------------------+",
        ],
    );
}

#[tokio::test]
async fn mysql_and_sqlserver_positions_are_sortable_text_and_ts_ms_is_the_fallback() {
    let fx = stream(r#"{ format = "debezium" }"#, "");
    let my = |file: &str, pos: u64, row: u64, id: &str| {
        json!({"payload": {
            "before": null, "after": customer(id, "M", "gold"), "op": "c", "ts_ms": 1,
            "source": {"connector": "mysql", "file": file, "pos": pos, "row": row,
                       "ts_ms": 1_714_557_600_000_u64},
        }})
        .to_string()
    };
    let file = ndjson(&[
        my("mysql-bin.000010", 154, 1, "M2"),
        my("mysql-bin.000009", 987_654, 0, "M1"),
        json!({"op": "c", "after": customer("S1", "S", "gold"), "ts_ms": 1_714_557_600_000_u64,
               "source": {"connector": "sqlserver", "commit_lsn": "00000025:00000D98:0003",
                          "change_lsn": "00000025:00000d98:0002", "event_serial_no": 1}})
        .to_string(),
        // An unknown connector: the change's time is its position.
        json!({"op": "c", "after": customer("X1", "X", "gold"), "ts_ms": 1_714_557_600_123_u64,
               "source": {"connector": "oracle-ish"}})
        .to_string(),
    ]);
    let run = fx.ingest("raw/customer_changes/my.ndjson", file).await;
    assert_eq!(
        (run.status, run.quarantined),
        (RunStatus::Succeeded, 0),
        "{run:#?}"
    );
    let batches = fx.batches(&run.outputs[0]).await;
    let column = batches[0]
        .column_by_name("cdc_position")
        .unwrap()
        .as_string::<i32>();
    let positions: Vec<&str> = column.iter().map(Option::unwrap).collect();
    assert_eq!(
        positions,
        [
            "0000000010-00000000000000000154-0000000001",
            "0000000009-00000000000000987654-0000000000",
            "00000025:00000d98:0003-00000025:00000d98:0002-0000000001",
            "00000001714557600123",
        ]
    );
    assert!(
        positions[1] < positions[0],
        "binlog 9 sorts before binlog 10"
    );
}

#[tokio::test]
async fn malformed_events_are_quarantined_with_their_line_and_reason() {
    let fx = debezium();
    let file = ndjson(&[
        pg("c", 10, Value::Null, customer("C1", "Ann", "gold")),
        "{not json".into(),
        json!({"before": null, "after": customer("C2", "B", "x")}).to_string(),
        pg("x", 11, Value::Null, customer("C3", "C", "gold")),
        pg("c", 12, Value::Null, Value::Null),
        pg("d", 13, json!({"name": "no key"}), Value::Null),
        json!({"op": "c", "after": customer("C4", "D", "gold"),
               "source": {"connector": "mysql", "file": "binlog", "pos": 4}})
        .to_string(),
        json!({"op": "c", "after": customer("C5", "E", "gold"), "source": {}}).to_string(),
        // Typed against the contract like any row: a change time that is not one is refused.
        json!({"op": "c", "after": customer("C6", "F", "gold"),
               "source": {"connector": "postgresql", "lsn": 14, "ts_ms": "yesterday"}})
        .to_string(),
    ]);
    let run = fx.ingest("raw/customer_changes/bad.ndjson", file).await;
    assert_eq!(
        (run.rows_in, run.rows_out, run.quarantined),
        (9, 1, 8),
        "{run:#?}"
    );
    let bad = fx.ndjson(&run.outputs[1]).await;
    let found: Vec<(u64, String)> = bad
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (2, "malformed JSON"),
        (3, "no `op`"),
        (4, "unknown op `x`"),
        (5, "op `c` has no `after` object"),
        (6, "`before` lacks key column `customer_id`"),
        (7, "binlog file `binlog` has no numeric extension"),
        (8, "no position"),
        (9, "column `cdc_ts`"),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((line, reason), (eline, ereason)) in found.iter().zip(expected) {
        assert_eq!(*line, eline, "{reason}");
        assert!(
            reason.contains(ereason),
            "line {line}: {reason} (expected {ereason})"
        );
    }
    // The event itself is kept, to be replayed once fixed.
    assert_eq!(bad[2]["raw"]["op"], "x");
}

#[test]
fn cdc_settings_are_checked_at_load_with_their_place_in_the_mesh_file() {
    let load = |source: &str, entity: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("changes.odcs.yaml"), STREAM_CONTRACT).unwrap();
        std::fs::write(dir.path().join("state.odcs.yaml"), STATE_CONTRACT).unwrap();
        let toml = format!(
            "[mesh]\nname = \"t\"\n\n[[domains]]\nname = \"shop\"\n\n[[domains.products]]\n\
             name = \"customer_changes\"\ncontract = \"changes.odcs.yaml\"\nsource = {source}\n{entity}"
        );
        Mesh::from_toml_with_salt(&toml, "mesh.toml", dir.path(), None).map_err(|e| e.to_string())
    };
    let err = load(r#"{ format = "debezium", cdc = { op = "operation" } }"#, "").unwrap_err();
    assert!(
        err.contains("mesh.toml:10:10: product `customer_changes`")
            && err.contains("`source.cdc.op` names column `operation`"),
        "{err}"
    );
    let err = load(
        r#"{ format = "debezium", cdc = { position = "cdc_ts" } }"#,
        "",
    )
    .unwrap_err();
    assert!(err.contains("must be text"), "{err}");
    let err = load(r#"{ format = "ndjson", cdc = {} }"#, "").unwrap_err();
    assert!(
        err.contains("applies to `format = \"debezium\"` only"),
        "{err}"
    );

    let entity = |body: &str| {
        format!(
            "\n[[domains.products.entities]]\nname = \"customer_state\"\ncontract = \"state.odcs.yaml\"\n{body}\n"
        )
    };
    let err = load(
        r#"{ format = "ndjson" }"#,
        &entity(r#"key = ["customer_id"]"#),
    )
    .unwrap_err();
    assert!(
        err.contains("mesh.toml:13:8: entity `customer_state` of `customer_changes`")
            && err.contains("`order_by` is required"),
        "{err}"
    );
    let err = load(r#"{ format = "debezium" }"#, &entity(r#"key = ["id"]"#)).unwrap_err();
    assert!(err.contains("`key` names column `id`"), "{err}");
    let mesh = load(
        r#"{ format = "ndjson" }"#,
        &entity("key = [\"customer_id\"]\norder_by = [\"cdc_ts\", \"cdc_position\"]"),
    )
    .unwrap();
    let state = mesh.product("shop", "customer_state").unwrap();
    let tessera_core::mesh::ProductKind::Aggregate { parent, sql, .. } = &state.kind else {
        panic!("an entity is an aggregate of its stream");
    };
    assert_eq!(parent, "customer_changes");
    assert!(sql.contains("PARTITION BY \"customer_id\" ORDER BY \"cdc_ts\" DESC NULLS LAST, \"cdc_position\" DESC NULLS LAST"), "{sql}");
    assert!(
        !sql.contains("COALESCE"),
        "no deletes without a predicate: {sql}"
    );
}

/// Publishes a raw file of the stream and returns the `DataProductPublished` of the stream.
async fn publish(fx: &Fx, key: &str, events: &[String]) -> ProductPublished {
    let run = fx.publish(key, ndjson(events)).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let events = fx.published();
    assert_eq!(events.len(), 1);
    events.into_iter().next().unwrap()
}

/// Recomputes the entity after `published` and returns its table.
async fn entity(fx: &Fx, published: &ProductPublished) -> Vec<String> {
    let runs = stages::aggregate::run(fx.ctx(), published)
        .await
        .expect("aggregate runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Published, "{:#?}", runs[0]);
    fx.published();
    let log = publish::commits(&fx.ctx().storage, BUCKET, "customer_state")
        .await
        .unwrap();
    let mut batches = Vec::new();
    for file in publish::live_files(&log) {
        batches.extend(fx.batches(&file).await);
    }
    lines(&batches)
}

#[tokio::test]
async fn entity_applies_events_in_source_order_honours_deletes_and_ignores_duplicates() {
    let fx = debezium();
    // The later file lands first.
    let later = publish(
        &fx,
        "raw/customer_changes/2.ndjson",
        &[
            pg(
                "u",
                300,
                customer("C1", "Ann", "gold"),
                customer("C1", "Ann", "platinum"),
            ),
            pg("d", 310, json!({"customer_id": "C2"}), Value::Null),
            // Redelivered from the first file.
            pg("c", 120, Value::Null, customer("C3", "Cy", "bronze")),
        ],
    )
    .await;
    assert_table(
        &entity(&fx, &later).await,
        &[
            "+-------------+------+----------+----------------------+",
            "| customer_id | name | tier     | cdc_position         |",
            "+-------------+------+----------+----------------------+",
            "| C1          | Ann  | platinum | 00000000000000000300 |",
            "| C3          | Cy   | bronze   | 00000000000000000120 |",
            "+-------------+------+----------+----------------------+",
        ],
    );
    let earlier = publish(
        &fx,
        "raw/customer_changes/1.ndjson",
        &[
            pg("c", 100, Value::Null, customer("C1", "Ann", "gold")),
            pg("c", 110, Value::Null, customer("C2", "Bo", "silver")),
            pg("c", 120, Value::Null, customer("C3", "Cy", "bronze")),
            pg(
                "u",
                130,
                customer("C3", "Cy", "bronze"),
                customer("C3", "Cy", "silver"),
            ),
        ],
    )
    .await;
    // C1's update (300) beats its older create; C2's delete (310) beats its create, although
    // the create was published later; C3's duplicate create (120) loses to its update (130).
    assert_table(
        &entity(&fx, &earlier).await,
        &[
            "+-------------+------+----------+----------------------+",
            "| customer_id | name | tier     | cdc_position         |",
            "+-------------+------+----------+----------------------+",
            "| C1          | Ann  | platinum | 00000000000000000300 |",
            "| C3          | Cy   | silver   | 00000000000000000130 |",
            "+-------------+------+----------+----------------------+",
        ],
    );
}

#[tokio::test]
async fn a_truncate_drops_every_earlier_event_and_later_ones_rebuild_the_state() {
    let fx = debezium();
    let first = publish(
        &fx,
        "raw/customer_changes/1.ndjson",
        &[
            pg("c", 100, Value::Null, customer("C1", "Ann", "gold")),
            pg("c", 110, Value::Null, customer("C2", "Bo", "silver")),
            pg("t", 200, Value::Null, Value::Null),
            pg("c", 210, Value::Null, customer("C2", "Bo", "bronze")),
        ],
    )
    .await;
    assert_table(
        &entity(&fx, &first).await,
        &[
            "+-------------+------+--------+----------------------+",
            "| customer_id | name | tier   | cdc_position         |",
            "+-------------+------+--------+----------------------+",
            "| C2          | Bo   | bronze | 00000000000000000210 |",
            "+-------------+------+--------+----------------------+",
        ],
    );
    // An update from before the truncate, delivered late, stays truncated; a second truncate
    // empties the table.
    let second = publish(
        &fx,
        "raw/customer_changes/2.ndjson",
        &[pg("u", 150, Value::Null, customer("C1", "Ann", "platinum"))],
    )
    .await;
    assert_eq!(entity(&fx, &second).await.len(), 5, "still C2 only");
    let third = publish(
        &fx,
        "raw/customer_changes/3.ndjson",
        &[pg("t", 300, Value::Null, Value::Null)],
    )
    .await;
    let runs = stages::aggregate::run(fx.ctx(), &third).await.unwrap();
    assert_eq!(
        (runs[0].status, runs[0].rows_out),
        (RunStatus::Published, 0),
        "{:#?}",
        runs[0]
    );
}

#[tokio::test]
async fn an_event_stream_without_cdc_can_feed_an_entity_with_its_own_ordering() {
    let fx = stream(
        r#"{ format = "ndjson" }"#,
        "key = [\"customer_id\"]\norder_by = [\"cdc_ts\"]\ndeletes = \"cdc_op = 'removed'\"",
    );
    let event = |id: &str, tier: &str, op: &str, ts: &str| {
        json!({"customer_id": id, "name": "N", "tier": tier, "cdc_op": op, "cdc_ts": ts,
               "cdc_position": "n/a"})
        .to_string()
    };
    let published = publish(
        &fx,
        "raw/customer_changes/events.ndjson",
        &[
            event("A", "gold", "set", "2024-05-02T00:00:00Z"),
            event("A", "silver", "set", "2024-05-01T00:00:00Z"),
            event("B", "gold", "set", "2024-05-01T00:00:00Z"),
            event("B", "gold", "removed", "2024-05-03T00:00:00Z"),
        ],
    )
    .await;
    assert_table(
        &entity(&fx, &published).await,
        &[
            "+-------------+------+------+--------------+",
            "| customer_id | name | tier | cdc_position |",
            "+-------------+------+------+--------------+",
            "| A           | N    | gold | n/a          |",
            "+-------------+------+------+--------------+",
        ],
    );
}
