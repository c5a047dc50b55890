//! Every file of `events/` parses as the event it is named after and goes where it should.

use tessera_core::events::{BusEvent, ContractViolated, ObjectCreated, ProductPublished};
use tessera_core::function::Trigger;
use tessera_core::keys::decode_event_key;
use tessera_core::routing::{Function, targets};
use tessera_tests::{event, repo_root};

#[test]
fn every_event_fixture_parses_and_routes() {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        let value = event(&name);
        if name.starts_with("s3-notification") {
            // A classic S3 notification goes straight to a function, not through rules.
            let triggers =
                tessera_core::function::triggers(&value).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(triggers.len(), 1, "{name}");
            let Trigger::Object(o) = &triggers[0] else {
                panic!("{name}: {triggers:?}")
            };
            assert_eq!(
                decode_event_key(&o.object.key).unwrap(),
                "raw/orders/orders 2024-05-02.csv",
                "{name}"
            );
            assert_eq!(o.version(), "096fKKXTRTtl3on89fVO.nfljtsv6qko", "{name}");
            continue;
        }
        if name.starts_with("scheduled-") {
            // A schedule targets catalog-register directly, naming the domain to check.
            let triggers =
                tessera_core::function::triggers(&value).unwrap_or_else(|e| panic!("{name}: {e}"));
            let [Trigger::Scheduled { domain, .. }] = triggers.as_slice() else {
                panic!("{name}: {triggers:?}")
            };
            assert_eq!(domain.as_deref(), Some("sales"), "{name}");
            let e: BusEvent = serde_json::from_value(value).unwrap();
            assert!(targets(&e).is_empty(), "{name}: no routing rule takes it");
            continue;
        }
        let e: BusEvent =
            serde_json::from_value(value).unwrap_or_else(|err| panic!("{name}: {err}"));
        let routed = targets(&e);
        let expected: &[Function] = if name.starts_with("s3-object-created-raw") {
            &[Function::Ingest]
        } else if name.starts_with("s3-object-created-staged") {
            &[Function::Clean]
        } else if name.starts_with("s3-object-created-clean") {
            &[Function::ContractCheck]
        } else if name.starts_with("data-product-published") {
            &[Function::Aggregate, Function::CatalogRegister]
        } else if name.starts_with("contract-violated") {
            &[Function::CatalogRegister]
        } else {
            panic!("{name}: no expectation for this fixture; name it after its trigger")
        };
        assert_eq!(routed, expected, "{name}");
        match e.detail_type.as_str() {
            "Object Created" => {
                let d: ObjectCreated = serde_json::from_value(e.detail).unwrap();
                decode_event_key(&d.object.key).unwrap();
            }
            "DataProductPublished" => {
                serde_json::from_value::<ProductPublished>(e.detail).unwrap();
            }
            "ContractViolated" => {
                serde_json::from_value::<ContractViolated>(e.detail).unwrap();
            }
            other => panic!("{name}: unexpected detail-type {other}"),
        }
    }
}
