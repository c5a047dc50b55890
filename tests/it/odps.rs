//! ODPS descriptors of the sample mesh's products: valid against the official ODPS v1.0.0 JSON
//! Schema, their ports drawn from the mesh (an aggregate's inputs with the contracts they pin).

use tessera_core::odps::descriptor;
use tessera_tests::sample_mesh;

#[test]
fn every_product_descriptor_is_valid_odps_with_its_ports() {
    let mesh = sample_mesh();
    let mut seen = 0;
    for (domain, product) in mesh.products() {
        let doc = descriptor(&mesh, domain, product);
        if let Err(problems) = tessera_contract::validate_odps(&doc) {
            panic!("{}.{}: {problems:#?}\n{doc:#}", domain.name, product.name);
        }
        assert_eq!(doc["kind"], "DataProduct");
        assert_eq!(doc["outputPorts"][0]["contractId"], product.contract.id);
        seen += 1;
    }
    assert_eq!(seen, 7);
    let sales = mesh.domain("sales").unwrap();
    let segment = mesh.product("sales", "segment_revenue").unwrap();
    let doc = descriptor(&mesh, sales, segment);
    let inputs: Vec<(&str, &str)> = doc["inputPorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["contractId"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [
            ("sales.orders", "urn:tessera:sales:orders"),
            ("customers.customers", "urn:tessera:customers:customers")
        ]
    );
    let orders = descriptor(&mesh, sales, mesh.product("sales", "orders").unwrap());
    assert!(orders.get("inputPorts").is_none());
    assert!(
        orders["team"]["members"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );

    // The schema does refuse what is not a descriptor.
    let mut broken = orders.clone();
    broken["kind"] = "Table".into();
    broken["outputPorts"][0]["colour"] = "blue".into();
    let problems = tessera_contract::validate_odps(&broken).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
}
