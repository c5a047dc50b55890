//! Every official ODCS example (copied into `tests/examples/`) lints cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use arrow::datatypes::DataType;
use tessera_contract::{Contract, LogicalType, Metric, Operator, RuleKind, Unit, lint};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/examples")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_example_lints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let origin = path.file_name().unwrap().to_string_lossy();
        if let Err(e) = lint(&text, &origin) {
            panic!("{e}");
        }
        count += 1;
    }
    assert_eq!(count, 17);
}

#[test]
fn full_example_model() {
    let c = Contract::from_yaml(&example("all__full-example.odcs.yaml"), "full.yaml").unwrap();
    assert_eq!(c.api_version, "v3.1.0");
    assert_eq!(c.id, "53581432-6c55-4ba2-a65f-72344a91553a");
    assert_eq!(c.domain.as_deref(), Some("seller"));
    assert_eq!(c.data_product.as_deref(), Some("my quantum"));
    assert_eq!(c.tenant.as_deref(), Some("ClimateQuantumInc"));
    assert_eq!(c.tags, ["transactions"]);
    assert_eq!(
        c.description.purpose.as_deref(),
        Some("Views built on top of the seller tables.")
    );
    // `team` is the 3.1 object form; the owner's role is spelled "Owner".
    assert_eq!(c.team.len(), 3);
    assert_eq!(c.owner(), Some("daustin"));
    assert_eq!(c.support.len(), 4);
    assert_eq!(c.support[1].tool.as_deref(), Some("email"));
    assert_eq!(c.sla_properties[0].property, "latency");
    assert_eq!(c.sla_properties[0].value, serde_json::json!(4));
    assert_eq!(c.raw["price"]["priceCurrency"], "USD");

    let tbl = c.object("tbl").unwrap();
    assert_eq!(tbl.table_name(), "tbl_1");
    assert!(std::ptr::eq(c.object("tbl_1").unwrap(), tbl));
    let date = tbl.property("transaction_reference_date").unwrap();
    assert_eq!(date.logical_type, Some(LogicalType::Date));
    assert_eq!(date.examples.len(), 2);
    assert_eq!(
        tbl.partition_columns()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["transaction_reference_date"]
    );
    assert_eq!(tbl.primary_key()[0].name, "rcvr_id");
    let rule = &tbl.quality[0];
    assert!(matches!(
        rule.kind,
        RuleKind::Library {
            metric: Metric::RowCount,
            ..
        }
    ));
    assert_eq!(rule.operator, Some(Operator::GreaterThan(1_000_000.0)));

    let receivers = c.object("receivers").unwrap();
    let key: Vec<&str> = receivers
        .primary_key()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(key, ["id", "country_code"]);
    let schema = receivers.arrow_schema().unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert!(!schema.field(0).is_nullable());
}

#[test]
fn v30_examples_keep_their_meaning() {
    // A 3.0.2 header with the 3.1 team object is accepted.
    let c =
        Contract::from_yaml(&example("stakeholders__basic-four-dpo.odcs.yaml"), "s.yaml").unwrap();
    assert!(!c.team.is_empty());
    // ODCS 3.0 booleans `exclusiveMinimum: true` and 3.1 values are both kept.
    let c =
        Contract::from_yaml(&example("data-types__all-data-types.odcs.yaml"), "d.yaml").unwrap();
    let t = &c.schema[0];
    assert_eq!(
        t.property("txn_ref_date")
            .unwrap()
            .options
            .exclusive_minimum,
        Some(serde_json::json!("2020-01-01"))
    );
    assert_eq!(
        t.property("amount").unwrap().data_type().unwrap(),
        DataType::Float32
    );
    assert_eq!(
        t.property("age").unwrap().data_type().unwrap(),
        DataType::Int64
    );
    let validity =
        Contract::from_yaml(&example("quality__column-validity.odcs.yaml"), "v.yaml").unwrap();
    let rule = &validity.schema[0].properties[0].quality[0];
    assert_eq!(rule.unit, Unit::Percent);
    assert_eq!(rule.operator, Some(Operator::LessOrEqual(5.0)));
}
