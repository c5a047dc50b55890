//! contract-check runs the contract's `sql` quality rules with DataFusion, on the data exactly as
//! it would be published (masked), with `${object}` and `${property}` naming the table and the
//! column; a failing rule refuses the version, and a rule that cannot run fails, never passes.

use serde_json::json;
use tessera_core::events::CONTRACT_VIOLATED;
use tessera_core::runs::RunStatus;

use crate::support::{Fx, ORDERS_CONTRACT, ORDERS_CSV};

/// Four orders over two days, amounts 10.00 + 5.50 + 1.25 + 2.00 = 18.75.
const ORDERS: &str = "order_id,email,amount,order_day,note\n\
                      O-1,ada@example.com,10.00,2024-05-01,Leave at the door\n\
                      O-2,,5.50,2024-05-01,\n\
                      O-3,bob@example.org,1.25,2024-05-02,\n\
                      O-4,cy@example.net,2.00,2024-05-02,\n";

/// The orders contract with a `sql` rule on `email` and `object_rules` at object level.
fn contract(object_rules: &str) -> String {
    let email_rule = "        classification: pii\n        quality:\n\
                      \x20         - type: sql\n            name: email_never_published_in_clear\n\
                      \x20           query: SELECT COUNT(*) FROM ${object} WHERE ${property} LIKE '%@%'\n\
                      \x20           mustBe: 0\n";
    let text = ORDERS_CONTRACT.replacen("        classification: pii\n", email_rule, 1);
    format!("{text}    quality:\n{object_rules}")
}

fn fx(object_rules: &str) -> Fx {
    Fx::new(
        &format!("{ORDERS_CSV}mask = {{ email = \"hash\" }}\n"),
        &[("orders.odcs.yaml", &contract(object_rules))],
    )
}

#[tokio::test]
async fn sql_rules_run_on_the_masked_data_and_pass() {
    let fx = fx("      - type: sql\n        name: no_free_orders\n\
                 \x20       query: SELECT COUNT(*) FROM ${object} WHERE amount <= 0\n\
                 \x20       mustBe: 0\n\
                 \x20     - type: sql\n        name: revenue_is_real\n\
                 \x20       query: SELECT SUM(amount) FROM {object}\n\
                 \x20       mustBeGreaterThan: 10\n");
    let run = fx.publish("raw/orders/day1.csv", ORDERS).await;
    assert_eq!(run.status, RunStatus::Published, "{run:#?}");
    // 5 implied checks + 3 sql rules.
    assert_eq!((run.checks.passed, run.checks.failed), (8, 0));
    for (name, observed) in [
        // The e-mails are hashed before any rule sees them.
        ("email_never_published_in_clear", 0.0),
        ("no_free_orders", 0.0),
        ("revenue_is_real", 18.75),
    ] {
        let c = fx.check(&run, name).await;
        assert_eq!(
            (&c["status"], &c["observed"], &c["rule"]),
            (&json!("passed"), &json!(observed), &json!("sql")),
            "{c}"
        );
    }
    assert_eq!(
        fx.check(&run, "email_never_published_in_clear").await["property"],
        "email"
    );
}

#[tokio::test]
async fn a_failing_sql_rule_refuses_the_version() {
    let fx = fx("      - type: sql\n        name: one_day_only\n\
                 \x20       query: SELECT COUNT(DISTINCT order_day) FROM ${object}\n\
                 \x20       mustBe: 1\n");
    let run = fx.publish("raw/orders/day1.csv", ORDERS).await;
    assert_eq!(run.status, RunStatus::Quarantined, "{run:#?}");
    assert_eq!(run.checks.failed, 1);
    let c = fx.check(&run, "one_day_only").await;
    assert_eq!(
        (&c["status"], &c["observed"], &c["expectation"]),
        (&json!("failed"), &json!(2.0), &json!("= 1"))
    );
    assert_eq!(fx.events(CONTRACT_VIOLATED).len(), 1);
    assert!(fx.keys("products/").await.is_empty());
}

#[tokio::test]
async fn a_sql_rule_that_cannot_run_fails_with_the_reason() {
    for (query, reason) in [
        (
            "SELECT COUNT(*) FROM ${object} WHERE no_such_column > 0",
            "no_such_column",
        ),
        ("SELEKT 1", "SELEKT"),
        ("SELECT order_id FROM ${object}", "returned 4 rows"),
        (
            "SELECT 'many' FROM ${object} LIMIT 1",
            "did not return a number",
        ),
    ] {
        let fx = fx(&format!(
            "      - type: sql\n        name: broken\n        query: \"{query}\"\n        mustBe: 0\n"
        ));
        let run = fx.publish("raw/orders/day1.csv", ORDERS).await;
        assert_eq!(run.status, RunStatus::Quarantined, "{query}: {run:#?}");
        let c = fx.check(&run, "broken").await;
        assert_eq!(c["status"], "failed", "{query}: {c}");
        let detail = c["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{query}: {detail}");
    }
}
