//! contract-check checks `relationships`: foreign keys into another domain's published product,
//! found through the catalog; a target not published yet is reported, never passed.

use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{Fx, VERSION};

const CRM_BUCKET: &str = "crm-bucket";

const CUSTOMERS: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customers
version: 1.0.0
status: active
schema:
  - name: customers
    properties:
      - name: customer_id
        logicalType: string
        required: true
        primaryKey: true
"#;

const ORDERS: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - name: order_id
        logicalType: string
        required: true
        primaryKey: true
      - name: customer_id
        logicalType: string
        relationships:
          - type: foreignKey
            to: customers.customer_id
"#;

/// `shop` sells, `crm` (another domain, its own bucket and database) knows the customers.
fn fx() -> Fx {
    Fx::new(
        &format!(
            "[[domains.products]]\nname = \"orders\"\ncontract = \"orders.odcs.yaml\"\n\
             source = {{ format = \"csv\" }}\n\n\
             [[domains]]\nname = \"crm\"\nbucket = \"{CRM_BUCKET}\"\ndatabase = \"crm_db\"\n\n\
             [[domains.products]]\nname = \"customers\"\ncontract = \"customers.odcs.yaml\"\n\
             source = {{ format = \"csv\" }}\n"
        ),
        &[
            ("orders.odcs.yaml", ORDERS),
            ("customers.odcs.yaml", CUSTOMERS),
        ],
    )
}

/// Publishes customers in the crm domain and registers them in the catalog.
async fn publish_customers(fx: &Fx, csv: &str) {
    let ctx = fx.ctx();
    let key = "raw/customers/c.csv";
    ctx.storage
        .put(CRM_BUCKET, key, csv.to_owned().into())
        .await
        .unwrap();
    let ingested = stages::ingest::run(ctx, CRM_BUCKET, key, VERSION)
        .await
        .unwrap();
    let cleaned = stages::clean::run(ctx, CRM_BUCKET, &ingested.outputs[0], VERSION)
        .await
        .unwrap();
    let checked = stages::check::run(ctx, CRM_BUCKET, &cleaned.outputs[0], VERSION)
        .await
        .unwrap();
    assert_eq!(checked.status, RunStatus::Published, "{checked:#?}");
    let published = fx.published().pop().expect("customers announced");
    stages::register::run(ctx, &published).await.unwrap();
}

#[tokio::test]
async fn a_foreign_key_into_another_domain_is_checked_through_the_catalog() {
    let fx = fx();
    // crm has published nothing yet: the key cannot be checked, and says why.
    let run = fx
        .publish("raw/orders/a.csv", "order_id,customer_id\nO-1,C-1\n")
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let c = fx.check(&run, "customer_id.foreignKey").await;
    assert_eq!(c["status"], "not_executed", "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains("crm_db.customers"),
        "{c}"
    );

    publish_customers(&fx, "customer_id\nC-1\nC-2\n").await;

    // Every customer is known (a missing one is not a broken key).
    let run = fx
        .publish(
            "raw/orders/b.csv",
            "order_id,customer_id\nO-2,C-1\nO-3,C-2\nO-4,\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let c = fx.check(&run, "customer_id.foreignKey").await;
    assert_eq!(
        (&c["status"], &c["observed"]),
        (&"passed".into(), &0.0.into()),
        "{c}"
    );

    // Two orders point at a customer crm does not have: the version is refused.
    let run = fx
        .publish(
            "raw/orders/c.csv",
            "order_id,customer_id\nO-5,C-1\nO-6,C-9\nO-7,C-8\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Quarantined, "{run:#?}");
    let c = fx.check(&run, "customer_id.foreignKey").await;
    assert_eq!(
        (&c["status"], &c["observed"]),
        (&"failed".into(), &2.0.into()),
        "{c}"
    );
    assert!(
        c["detail"].as_str().unwrap().contains("not in `customers`"),
        "{c}"
    );
    assert!(fx.keys("quarantine/orders/contract-check/").await.len() >= 2);
}
