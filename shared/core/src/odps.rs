//! Open Data Product Standard (ODPS v1.0.0) descriptors of the mesh's products, derived from the
//! mesh file and the contracts (they say nothing a contract or the mesh does not): the product's
//! identity, description, team and support from its contract; its input ports (for an
//! aggregate, the products it reads, each with the contract it pins); its output port, the
//! published table under its contract; and where it lives (bucket, catalog table).

use serde_json::{Value, json};

use crate::mesh::{Domain, Mesh, Product, ProductKind};

/// The ODPS version the descriptors follow.
pub const API_VERSION: &str = "v1.0.0";

/// The descriptor of a product of the mesh.
pub fn descriptor(mesh: &Mesh, domain: &Domain, product: &Product) -> Value {
    let contract = &product.contract;
    let mut description = serde_json::Map::new();
    for (key, value) in [
        ("purpose", &contract.description.purpose),
        ("usage", &contract.description.usage),
        ("limitations", &contract.description.limitations),
    ] {
        if let Some(v) = value {
            description.insert(key.into(), json!(v));
        }
    }
    let members: Vec<Value> = contract
        .team
        .iter()
        .map(|m| {
            let mut o = serde_json::Map::new();
            for (key, value) in [
                ("username", &m.username),
                ("name", &m.name),
                ("role", &m.role),
            ] {
                if let Some(v) = value {
                    o.insert(key.into(), json!(v));
                }
            }
            Value::Object(o)
        })
        .collect();
    let support: Vec<Value> = contract
        .support
        .iter()
        .filter_map(|s| {
            // ODPS wants a channel and a URI: a channel without a URL stays in the contract.
            let mut o = serde_json::Map::new();
            o.insert("channel".into(), json!(s.channel.clone()?));
            o.insert(
                "url".into(),
                json!(s.url.as_ref().filter(|u| u.contains(':'))?),
            );
            if let Some(tool) = &s.tool {
                o.insert("tool".into(), json!(tool));
            }
            Some(Value::Object(o))
        })
        .collect();
    let input_ports: Vec<Value> = product
        .inputs()
        .iter()
        .filter_map(|i| {
            let upstream = mesh.product(&i.domain, &i.product)?;
            Some(json!({
                "name": format!("{}.{}", i.domain, i.product),
                "version": upstream.contract.version,
                "contractId": upstream.contract.id,
            }))
        })
        .collect();
    let kind = match &product.kind {
        ProductKind::Source { .. } => "source",
        ProductKind::Aggregate { .. } => "aggregate",
    };
    let mut doc = json!({
        "apiVersion": API_VERSION,
        "kind": "DataProduct",
        "id": format!("urn:tessera:{}:{}:{}", mesh.name, domain.name, product.name),
        "name": product.name,
        "version": contract.version,
        "status": contract.status,
        "domain": domain.name,
        "outputPorts": [{
            "name": product.name,
            "description": format!("The `{}.{}` table: committed versions under its contract", domain.database, product.name),
            "type": "tables",
            "version": contract.version,
            "contractId": contract.id,
        }],
        "customProperties": [
            {"property": "kind", "value": kind},
            {"property": "bucket", "value": domain.bucket},
            {"property": "location", "value": crate::storage::s3_url(&domain.bucket, &crate::publish::product_prefix(&product.name))},
            {"property": "catalogTable", "value": format!("{}.{}", domain.database, product.name)},
        ],
    });
    if let Some(tenant) = &contract.tenant {
        doc["tenant"] = json!(tenant);
    }
    if !description.is_empty() {
        doc["description"] = Value::Object(description);
    }
    if !members.is_empty() {
        doc["team"] = json!({ "name": format!("{} team", domain.name), "members": members });
    }
    if !support.is_empty() {
        doc["support"] = json!(support);
    }
    if !input_ports.is_empty() {
        doc["inputPorts"] = json!(input_ports);
    }
    if !contract.tags.is_empty() {
        doc["tags"] = json!(contract.tags);
    }
    doc
}
