//! The organisation policy in the pipeline: masks that follow classifications, dropped columns,
//! located violations, contract-check refusing unclassified personal data, catalog-register
//! refusing a product that breaks the policy, and the detectors over sample files.

use arrow::array::AsArray;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_contract::policy::Rule;
use tessera_core::events::{CONTRACT_VIOLATED, ContractViolated};
use tessera_core::mesh::{MaskMethod, Mesh};
use tessera_core::policy::check_mesh;
use tessera_core::publish;
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{BUCKET, Fx, ORDERS_CONTRACT, ORDERS_CSV};

const POLICY: &str = "\
version: 1
required_metadata: [owner, description]
columns:
  require_description: true
classifications:
  internal: none
  pii: hash
  confidential: redact
  secret: drop
pii:
  threshold: 0.8
  detectors:
    email: pii
    phone: pii
    card: confidential
";

const WITH_POLICY: &str = "policy = \"policy.yaml\"";

/// The orders product under [`POLICY`], with extra product settings and a changed contract.
fn orders(settings: &str, contract: &str) -> Fx {
    orders_under(POLICY, settings, contract)
}

fn orders_under(policy: &str, settings: &str, contract: &str) -> Fx {
    Fx::with_settings(
        WITH_POLICY,
        &format!("{ORDERS_CSV}{settings}\n"),
        &[("orders.odcs.yaml", contract), ("policy.yaml", policy)],
    )
}

/// The orders contract with the `note` column classified `classification`.
fn note_classified(classification: &str) -> String {
    ORDERS_CONTRACT.replace(
        "      - name: note\n        description: Free text.\n",
        &format!(
            "      - name: note\n        description: Free text.\n        classification: {classification}\n"
        ),
    )
}

fn sha(value: &str) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(b"pepper")
            .chain_update(value.as_bytes())
            .finalize(),
    )
}

/// Values of a text column over every live file of the product.
async fn published_column(fx: &Fx, column: &str) -> Vec<Option<String>> {
    let log = publish::commits(&fx.ctx().storage, BUCKET, "orders")
        .await
        .expect("commit log");
    let mut out = Vec::new();
    for file in publish::live_files(&log) {
        for batch in fx.batches(&file).await {
            let strings = batch.column_by_name(column).expect("column");
            out.extend(
                strings
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_owned)),
            );
        }
    }
    out
}

#[tokio::test]
async fn classified_columns_are_masked_as_the_policy_says_without_a_recipe() {
    let fx = orders("", &note_classified("confidential"));
    let orders = fx.ctx().mesh.product("shop", "orders").expect("product");
    assert_eq!(orders.mask.get("email"), Some(&MaskMethod::Hash));
    assert_eq!(orders.mask.get("note"), Some(&MaskMethod::Redact));
    assert!(orders.violations.is_empty(), "{:#?}", orders.violations);
    let run = fx
        .publish(
            "raw/orders/day1.csv",
            "order_id,email,amount,order_day,note\n\
             O-1,ada@example.com,10.00,2024-05-01,Leave at the door\n\
             O-2,,5.50,2024-05-01,ab\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    assert_eq!(
        published_column(&fx, "email").await,
        [Some(sha("ada@example.com")), None]
    );
    assert_eq!(
        published_column(&fx, "note").await,
        [Some("****door".into()), Some("****".into())]
    );
}

#[tokio::test]
async fn an_unclassified_email_column_is_refused_with_the_rule_in_the_report() {
    let fx = orders("", ORDERS_CONTRACT);
    let run = fx
        .publish(
            "raw/orders/day1.csv",
            "order_id,email,amount,order_day,note\n\
             O-1,ada@example.com,10.00,2024-05-01,ada@example.com\n\
             O-2,,5.50,2024-05-01, bob@example.org \n\
             O-3,,1.00,2024-05-02,\n\
             O-4,,2.00,2024-05-02,cy@example.net\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Quarantined, "{run:#?}");
    assert_eq!(
        run.notes,
        ["note.policy.pii.unclassified: observed 100 (expected < 80)"]
    );
    assert!(
        fx.keys("products/orders/").await.is_empty(),
        "nothing published"
    );

    let violations: Vec<ContractViolated> = fx
        .events(CONTRACT_VIOLATED)
        .into_iter()
        .map(|e| serde_json::from_value(e.detail).expect("detail"))
        .collect();
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].failed_checks,
        ["note.policy.pii.unclassified: observed 100 (expected < 80)"]
    );
    let report = fx.json(&violations[0].report_key).await;
    assert_eq!(report["passed"], false);
    let failed: Vec<&Value> = report["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let check = failed[0];
    assert_eq!(check["rule"], "policy.pii.unclassified");
    assert_eq!(check["property"], "note");
    assert_eq!(check["unit"], "percent");
    let detail = check["detail"].as_str().expect("detail");
    assert!(
        detail.contains("rule `pii.unclassified`")
            && detail.contains("3 of 3 values of `note` look like e-mail addresses")
            && detail.contains("classify the column `pii`"),
        "{detail}"
    );
    // The data is kept in quarantine next to the report.
    assert!(
        fx.keys("quarantine/orders/contract-check/")
            .await
            .iter()
            .any(|k| k.contains("/data/") && k.ends_with(".parquet"))
    );
}

#[tokio::test]
async fn masked_or_classified_personal_data_passes_and_a_minority_is_no_finding() {
    let rows = "order_id,email,amount,order_day,note\n\
                O-1,,10.00,2024-05-01,ada@example.com\n\
                O-2,,5.50,2024-05-01,bob@example.org\n";
    // Masked by the recipe: the published values are hashes, which look like nothing.
    let fx = orders("mask = { note = \"hash\" }", ORDERS_CONTRACT);
    let run = fx.publish("raw/orders/day1.csv", rows).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    // Classified: masked as the policy says.
    let fx = orders("", &note_classified("pii"));
    let run = fx.publish("raw/orders/day1.csv", rows).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    // One e-mail among free-text notes is under the threshold.
    let fx = orders("", ORDERS_CONTRACT);
    let run = fx
        .publish(
            "raw/orders/day1.csv",
            "order_id,email,amount,order_day,note\n\
             O-1,,10.00,2024-05-01,write to ada@example.com\n\
             O-2,,5.50,2024-05-01,ada@example.com\n\
             O-3,,5.50,2024-05-01,Leave at the door\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
}

#[tokio::test]
async fn without_a_policy_personal_data_is_not_scanned() {
    let fx = Fx::orders("");
    let run = fx
        .publish(
            "raw/orders/day1.csv",
            "order_id,email,amount,order_day,note\nO-1,,10.00,2024-05-01,ada@example.com\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
}

#[test]
fn a_weaker_recipe_mask_is_raised_and_reported_in_the_mesh_file() {
    let policy = POLICY.replace("pii: hash", "pii: redact");
    let fx = orders_under(&policy, "mask = { email = \"hash\" }", ORDERS_CONTRACT);
    let orders = fx.ctx().mesh.product("shop", "orders").expect("product");
    assert_eq!(orders.mask.get("email"), Some(&MaskMethod::Redact));
    assert_eq!(orders.violations.len(), 1, "{:#?}", orders.violations);
    let v = &orders.violations[0];
    assert_eq!(v.violation.rule, Rule::MaskWeaker);
    assert_eq!(v.product, "shop.orders");
    assert_eq!(v.file, "test");
    assert_eq!(
        v.located(),
        "test:16:8: policy `mask.weaker`: column `email` is masked with `hash`, weaker than the `redact` the policy requires for `pii`: `redact` is applied"
    );
    // As strong or stronger is fine.
    let fx = orders_under(&policy, "mask = { email = \"null\" }", ORDERS_CONTRACT);
    let orders = fx.ctx().mesh.product("shop", "orders").expect("product");
    assert_eq!(orders.mask.get("email"), Some(&MaskMethod::Null));
    assert!(orders.violations.is_empty());
}

#[tokio::test]
async fn dropped_classifications_leave_the_product() {
    let fx = orders("mask = { note = \"redact\" }", &note_classified("secret"));
    let orders = fx.ctx().mesh.product("shop", "orders").expect("product");
    assert_eq!(orders.dropped, ["note"]);
    assert!(orders.schema().property("note").is_none());
    assert!(!orders.mask.contains_key("note"));
    let run = fx
        .publish(
            "raw/orders/day1.csv",
            "order_id,email,amount,order_day,note\nO-1,,10.00,2024-05-01,secret text\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let log = publish::commits(&fx.ctx().storage, BUCKET, "orders")
        .await
        .expect("log");
    for file in publish::live_files(&log) {
        for batch in fx.batches(&file).await {
            assert!(batch.column_by_name("note").is_none(), "note is published");
        }
    }
}

#[test]
fn a_key_column_cannot_be_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let contract = ORDERS_CONTRACT.replace(
        "        primaryKey: true\n        classification: internal\n",
        "        primaryKey: true\n        classification: secret\n",
    );
    std::fs::write(dir.path().join("orders.odcs.yaml"), contract).expect("write");
    std::fs::write(dir.path().join("policy.yaml"), POLICY).expect("write");
    let toml = format!(
        "[mesh]\nname = \"test\"\npii_salt = \"p\"\n{WITH_POLICY}\n[[domains]]\nname = \"shop\"\n{ORDERS_CSV}"
    );
    let err = Mesh::from_toml_with_salt(&toml, "mesh.toml", dir.path(), None)
        .expect_err("a key cannot be dropped")
        .to_string();
    assert!(
        err.contains("column `order_id` is part of the primary key, but the policy drops its classification `secret`"),
        "{err}"
    );
}

#[test]
fn a_broken_policy_file_stops_the_mesh_with_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("orders.odcs.yaml"), ORDERS_CONTRACT).expect("write");
    std::fs::write(
        dir.path().join("policy.yaml"),
        "version: 1\nclassifications:\n  pii: scramble\n",
    )
    .expect("write");
    let toml = format!(
        "[mesh]\nname = \"test\"\n{WITH_POLICY}\n[[domains]]\nname = \"shop\"\n{ORDERS_CSV}"
    );
    let err = Mesh::from_toml_with_salt(&toml, "mesh.toml", dir.path(), None)
        .expect_err("broken policy")
        .to_string();
    assert!(
        err.contains("policy.yaml:3:3: unknown action `scramble`"),
        "{err}"
    );
    let missing = toml.replace("policy.yaml", "nope.yaml");
    let err = Mesh::from_toml_with_salt(&missing, "mesh.toml", dir.path(), None)
        .expect_err("missing policy")
        .to_string();
    assert!(err.contains("mesh.toml: cannot read policy"), "{err}");
}

/// The orders contract without an owner role and with an undescribed column.
fn undescribed() -> String {
    ORDERS_CONTRACT
        .replace("      role: owner\n", "      role: sponsor\n")
        .replace("        description: Free text.\n", "")
}

#[tokio::test]
async fn catalog_register_refuses_a_product_that_breaks_the_policy() {
    let fx = orders("", &undescribed());
    let orders = fx.ctx().mesh.product("shop", "orders").expect("product");
    let located: Vec<String> = orders.violations.iter().map(|v| v.located()).collect();
    let file = orders.contract_path.display().to_string();
    assert_eq!(
        located,
        [
            format!("{file}:11:1: policy `metadata.owner`: no team member has the role `owner`"),
            format!("{file}:44:9: policy `columns.description`: column `note` has no description"),
        ]
    );
    // contract-check does not judge metadata: the data is fine, it is published.
    let run = fx
        .publish(
            "raw/orders/day1.csv",
            "order_id,email,amount,order_day,note\nO-1,,10.00,2024-05-01,\n",
        )
        .await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    let event = fx.published().remove(0);

    let run = stages::register::run(fx.ctx(), &event)
        .await
        .expect("register runs");
    assert_eq!(run.status, RunStatus::Quarantined, "{run:#?}");
    assert_eq!(
        run.notes[0],
        "`shop.orders` breaks the organisation policy (2 violations): its table is not registered"
    );
    assert_eq!(run.notes[1..], located[..]);
    assert!(
        fx.ctx()
            .catalog
            .get_table("shop_db", "orders")
            .await
            .expect("catalog")
            .is_none(),
        "no table"
    );
    let report = fx.json(&run.outputs[0]).await;
    assert!(run.outputs[0].starts_with("quarantine/orders/catalog-register/"));
    assert!(run.outputs[0].ends_with(".policy.json"));
    assert_eq!(report["violations"][0]["rule"], "metadata.owner");
    assert_eq!(report["violations"][1]["rule"], "columns.description");
    assert_eq!(report["violations"][1]["property"], "note");
    assert_eq!(report["violations"][1]["line"], 44);
    // The run is recorded like any other.
    let records =
        tessera_core::runs::history(&fx.ctx().storage, BUCKET, "orders", "catalog-register")
            .await
            .expect("history");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, RunStatus::Quarantined);
}

#[tokio::test]
async fn the_detectors_read_the_sample_files() {
    let products = format!(
        "{}\n",
        ORDERS_CSV.replace(
            "source = { format = \"csv\" }",
            "source = { format = \"csv\", samples = [\"sample.csv\"] }"
        )
    );
    let sample = "\u{feff}order_id,EMAIL,amount,order_day,note\n\
                  O-1,ada@example.com,10.00,2024-05-01,+44 20 7946 0958\n\
                  O-2,bob@example.org,5.50,2024-05-01,(212) 555-0123\n\
                  O-3,,5.50,2024-05-01,030 1234567\n";
    let fx = Fx::with_settings(
        WITH_POLICY,
        &products,
        &[
            ("orders.odcs.yaml", ORDERS_CONTRACT),
            ("policy.yaml", POLICY),
            ("sample.csv", sample),
        ],
    );
    let report = check_mesh(&fx.ctx().mesh).expect("policy check");
    assert_eq!(report.products, 1);
    let found: Vec<(String, String, u64, u64, Option<String>, String)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.column.clone(),
                f.detector.to_string(),
                f.matches,
                f.values,
                f.classification.clone(),
                f.handling.clone(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "email".into(),
                "email".into(),
                2,
                2,
                Some("pii".into()),
                "hash".into()
            ),
            ("note".into(), "phone".into(), 3, 3, None, "none".into()),
        ]
    );
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    let v = &report.violations[0];
    assert_eq!(v.violation.rule, Rule::PiiUnclassified);
    assert_eq!(v.violation.property.as_deref(), Some("note"));
    assert!(
        v.located().ends_with(
            "orders.odcs.yaml:44:9: policy `pii.unclassified`: column `note`: 3 of 3 sample values look like phone numbers: classify it `pii`"
        ),
        "{}",
        v.located()
    );
}
