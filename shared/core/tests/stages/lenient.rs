//! The recipe options the orders benchmark needs, on small fixtures: lenient typing with the raw
//! text kept (`lenient`, `keep_raw`: `invalid_<column>` vs `missing_<column>`), `coalesce`, CSV
//! rows missing trailing fields (`short_rows`), text patterns (`patterns`), the strict timestamp
//! grammar (`iso8601`, `epoch_s_9to11`, `builtin = false`), rounding for some columns only
//! (`decimal_rounding_columns`), the unsalted `sha256` mask and partition folder names
//! (`partition_names`).

use arrow::array::{Array, AsArray};
use sha2::{Digest, Sha256};
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{BUCKET, Fx, VERSION};

const CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
name: orders
version: 1.0.0
status: active
domain: shop
description:
  purpose: Orders, latest version per order.
team:
  name: Shop team
  members:
    - username: shop-owner@example.com
      role: owner
schema:
  - name: orders
    properties:
      - name: order_id
        logicalType: string
        required: true
        primaryKey: true
      - name: email
        logicalType: string
        classification: pii
      - name: order_ts
        logicalType: timestamp
        required: true
        partitioned: true
        partitionKeyPosition: 1
      - name: amount
        logicalType: number
        physicalType: decimal(12,2)
        required: true
        logicalTypeOptions:
          minimum: 0
          maximum: 100000
      - name: items
        logicalType: array
        items:
          logicalType: object
          properties:
            - name: sku
              logicalType: string
            - name: unit_price
              logicalType: number
              physicalType: decimal(12,2)
      - name: updated_at
        logicalType: timestamp
        required: true
"#;

const PRODUCT: &str = r#"
[[domains.products]]
name = "orders"
contract = "orders.odcs.yaml"
source = { format = "csv", short_rows = "null" }
mask = { email = "sha256" }
partition_names = { order_ts = "dt" }

[domains.products.clean]
lowercase = ["email"]
lenient = ["updated_at"]
keep_raw = ["order_ts", "amount"]
coalesce = { updated_at = ["order_ts"] }
latest_by = "updated_at"
timestamps = { formats = ["epoch_s_9to11", "iso8601"], builtin = false }
decimal_rounding = "half_up"
decimal_rounding_columns = ["items"]
patterns = { amount = '^[+-]?[0-9]{1,10}(\.[0-9]{1,2})?$' }
"#;

fn fx() -> Fx {
    Fx::new(PRODUCT, &[("orders.odcs.yaml", CONTRACT)])
}

const CSV: &str = "order_id,email,order_ts,amount,items,updated_at
A1, Ann@Example.COM ,2024-03-01T10:00:00+0130,12.50,\"[{\"\"sku\"\":\"\"s1\"\",\"\"unit_price\"\":10.005}]\",2024-03-01T11:00:00Z
A2,,1709287200,3.00,[],not a time
A3,,yesterday,1.00,[],
A4,,   ,1.00,[],
A5,,2024-03-01,1.00,[],
A6,,2024-03-01 10:00:00,N/A,[],
A7,,2024-03-01 10:00:00,,[],
A8,,2024-03-01 10:00:00,1.005,[],
A9,,2024-02-30T10:00:00Z,1.00,[],
B1,,2024-03-01 24:00:00,-1.00,[],
B2,,99999999,1.00,[]
B3,,2024-03-02T00:00:00.5-01:00,7.00
B4,,2024-03-01T10:00:00Z,.50,[],
";

#[tokio::test]
async fn unreadable_values_are_null_with_their_text_kept_and_reasons_tell_missing_from_invalid() {
    let fx = fx();
    let cleaned = fx.ingest_clean("raw/orders/o.csv", CSV).await;
    assert_eq!(cleaned.status, RunStatus::Succeeded, "{cleaned:#?}");
    // Nothing is quarantined at ingest: unreadable timestamps and amounts are nulls, and B2 and
    // B3 (missing trailing fields) read them as null.
    let ingested = tessera_core::runs::history(&fx.ctx().storage, BUCKET, "orders", "ingest")
        .await
        .unwrap();
    assert_eq!(ingested[0].quarantined, 0, "{:#?}", ingested[0]);
    let key = cleaned
        .outputs
        .iter()
        .find(|k| k.starts_with("quarantine/"))
        .unwrap();
    let mut rows = Vec::new();
    for b in fx.batches(key).await {
        let col = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (id, ts_raw, amount_raw, why) = (
            col("order_id"),
            col("order_ts_raw"),
            col("amount_raw"),
            col("_reason"),
        );
        for i in 0..b.num_rows() {
            let opt = |a: &arrow::array::StringArray| a.is_valid(i).then(|| a.value(i).to_owned());
            rows.push((
                id.value(i).to_owned(),
                opt(&ts_raw),
                opt(&amount_raw),
                why.value(i).to_owned(),
            ));
        }
    }
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        vec![
            (
                "A3".into(),
                s("yesterday"),
                s("1.00"),
                "invalid_order_ts".into()
            ),
            ("A4".into(), None, s("1.00"), "missing_order_ts".into()),
            // A date alone is not in the strict grammar.
            (
                "A5".into(),
                s("2024-03-01"),
                s("1.00"),
                "invalid_order_ts".into()
            ),
            (
                "A6".into(),
                s("2024-03-01 10:00:00"),
                s("N/A"),
                "invalid_amount".into()
            ),
            (
                "A7".into(),
                s("2024-03-01 10:00:00"),
                None,
                "missing_amount".into()
            ),
            // Rounding applies to `items` only: a third decimal in `amount` is unreadable.
            (
                "A8".into(),
                s("2024-03-01 10:00:00"),
                s("1.005"),
                "invalid_amount".into()
            ),
            (
                "A9".into(),
                s("2024-02-30T10:00:00Z"),
                s("1.00"),
                "invalid_order_ts".into()
            ),
            (
                "B1".into(),
                s("2024-03-01 24:00:00"),
                s("-1.00"),
                "amount_out_of_range".into()
            ),
            // Eight digits are not epoch seconds in the strict grammar.
            (
                "B2".into(),
                s("99999999"),
                s("1.00"),
                "invalid_order_ts".into()
            ),
            // Typing alone reads `.50`; the recipe's pattern does not.
            (
                "B4".into(),
                s("2024-03-01T10:00:00Z"),
                s(".50"),
                "invalid_amount".into()
            ),
        ]
    );
    assert_eq!(
        (cleaned.rows_in, cleaned.rows_out, cleaned.quarantined),
        (13, 3, 10)
    );

    // Published: the raw columns are not, `updated_at` took `order_ts` where it had none, the
    // e-mail is the unsalted SHA-256 of the trimmed lower-case address, folders are `dt=`.
    let check = stages::check::run(fx.ctx(), BUCKET, &cleaned.outputs[0], VERSION)
        .await
        .unwrap();
    assert_eq!(check.status, RunStatus::Published, "{check:#?}");
    let mut files: Vec<String> = fx
        .keys("products/orders/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with("products/orders/dt=2024-03-01/"),
        "{files:?}"
    );
    assert!(
        files[1].starts_with("products/orders/dt=2024-03-02/"),
        "{files:?}"
    );
    let mut table = Vec::new();
    for f in &files {
        let batches = fx.batches(f).await;
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "order_id",
                "email",
                "order_ts",
                "amount",
                "items",
                "updated_at"
            ]
        );
        table.extend(crate::support::lines(&batches));
    }
    let hash = hex::encode(Sha256::digest(b"ann@example.com"));
    let row = |id: &str| {
        table
            .iter()
            .find(|l| l.starts_with(&format!("| {id} ")))
            .unwrap_or_else(|| panic!("{id} in {table:#?}"))
            .clone()
    };
    for (id, pieces) in [
        (
            "A1",
            vec![
                hash.as_str(),
                "| 2024-03-01T08:30:00Z ",
                "| 12.50 ",
                "unit_price: 10.01",
                "| 2024-03-01T11:00:00Z ",
            ],
        ),
        (
            "A2",
            vec![
                "| 2024-03-01T10:00:00Z ",
                "| 3.00 ",
                "| 2024-03-01T10:00:00Z |",
            ],
        ),
        (
            "B3",
            vec![
                "| 2024-03-02T01:00:00.500Z ",
                "| 7.00 ",
                "| 2024-03-02T01:00:00.500Z |",
            ],
        ),
    ] {
        let line = row(id);
        for p in pieces {
            assert!(line.contains(p), "{id}: `{p}` in {line}");
        }
    }
}

#[tokio::test]
async fn latest_by_counts_superseded_versions_apart_from_exact_duplicates() {
    let fx = fx();
    let csv = "order_id,email,order_ts,amount,items,updated_at
A1,,2024-03-01T10:00:00Z,1.00,[],2024-03-01T11:00:00Z
A1,,2024-03-01T10:00:00Z,1.00,[],2024-03-01T11:00:00Z
A1,,2024-03-01T10:00:00Z,2.00,[],2024-03-01T12:00:00Z
A2,,2024-03-01T10:00:00Z,1.00,[],
A2,,2024-03-01T10:00:00Z,5.00,[],2024-03-01T10:00:00Z
";
    let cleaned = fx.ingest_clean("raw/orders/v.csv", csv).await;
    // A2's second row wins the tie (its updated_at equals the first's coalesced one).
    assert_eq!(
        (cleaned.rows_out, cleaned.dropped, cleaned.superseded),
        (2, 3, 2),
        "{cleaned:#?}"
    );
    let rows = crate::support::lines(&fx.batches(&cleaned.outputs[0]).await);
    assert!(
        rows.iter()
            .any(|l| l.contains("| A2 ") && l.contains("| 5.00 ")),
        "{rows:#?}"
    );
}

#[tokio::test]
async fn exact_duplicates_can_be_compared_as_read() {
    // Equal once the e-mail is lower-cased, not as written.
    let csv = "order_id,email,order_ts,amount,items,updated_at
A1, Ann@Example.com,2024-03-01T10:00:00Z,1.00,[],2024-03-01T11:00:00Z
A1,ann@example.com ,2024-03-01T10:00:00Z,1.00,[],2024-03-01T11:00:00Z
";
    for (as_read, duplicates, superseded) in [(false, 1, 0), (true, 0, 1)] {
        let fx = Fx::new(
            &PRODUCT.replace(
                "latest_by = \"updated_at\"",
                &format!("latest_by = \"updated_at\"\nduplicates_as_read = {as_read}"),
            ),
            &[("orders.odcs.yaml", CONTRACT)],
        );
        let cleaned = fx.ingest_clean("raw/orders/d.csv", csv).await;
        assert_eq!(
            (
                cleaned.rows_out,
                cleaned.dropped - cleaned.superseded,
                cleaned.superseded
            ),
            (1, duplicates, superseded),
            "as_read = {as_read}: {cleaned:#?}"
        );
    }
}

#[tokio::test]
async fn short_rows_are_quarantined_unless_the_recipe_reads_them_as_null() {
    let fx = Fx::new(
        &PRODUCT.replace("short_rows = \"null\"", "short_rows = \"quarantine\""),
        &[("orders.odcs.yaml", CONTRACT)],
    );
    let run = fx
        .ingest(
            "raw/orders/s.csv",
            "order_id,email,order_ts,amount,items,updated_at\nA1,,1709287200,1.00,[]\n",
        )
        .await;
    assert_eq!((run.rows_out, run.quarantined), (0, 1), "{run:#?}");
}

#[test]
fn recipes_naming_unknown_columns_are_refused_at_load() {
    for (recipe, message) in [
        ("keep_raw = [\"nope\"]", "`nope`"),
        ("coalesce = { updated_at = [\"amount\"] }", "cannot fill"),
        ("decimal_rounding_columns = [\"nope\"]", "`nope`"),
        ("patterns = { amount = \"(\" }", "does not compile"),
    ] {
        let toml = format!(
            "[mesh]\nname = \"t\"\npii_salt = \"x\"\n[[domains]]\nname = \"shop\"\nbucket = \"shop-bucket\"\n\
             [[domains.products]]\nname = \"orders\"\ncontract = \"orders.odcs.yaml\"\n\
             source = {{ format = \"csv\" }}\nclean = {{ {recipe} }}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.odcs.yaml"), CONTRACT).unwrap();
        let err = tessera_core::mesh::Mesh::from_toml(&toml, "t", dir.path())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{recipe}: {err}");
    }
    let toml = "[mesh]\nname = \"t\"\npii_salt = \"x\"\n[[domains]]\nname = \"shop\"\nbucket = \"shop-bucket\"\n\
                [[domains.products]]\nname = \"orders\"\ncontract = \"orders.odcs.yaml\"\n\
                source = { format = \"csv\" }\npartition_names = { amount = \"dt\" }\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.odcs.yaml"), CONTRACT).unwrap();
    let err = tessera_core::mesh::Mesh::from_toml(toml, "t", dir.path())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a partition column"), "{err}");
}
