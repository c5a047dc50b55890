//! Broken contracts are refused with errors that point at the right line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tessera_contract::{Contract, ContractError, lint};

const HEADER: &str =
    "apiVersion: v3.1.0\nkind: DataContract\nid: orders-contract\nversion: 1.0.0\nstatus: active\n";

/// A contract with one object `orders` whose properties are `properties`
/// (YAML list items indented by 6 spaces). Properties start on line 9.
fn contract(properties: &str) -> String {
    format!("{HEADER}schema:\n  - name: orders\n    properties:\n{properties}")
}

fn from_yaml_err(text: &str) -> ContractError {
    Contract::from_yaml(text, "c.yaml").unwrap_err()
}

fn lint_err(text: &str) -> ContractError {
    Contract::from_yaml(text, "c.yaml").expect("valid for from_yaml");
    lint(text, "c.yaml").unwrap_err()
}

fn lines(err: &ContractError) -> Vec<Option<usize>> {
    err.problems.iter().map(|p| p.line).collect()
}

#[test]
fn wrong_type_points_at_the_line() {
    let text =
        contract("      - name: id\n        logicalType: integer\n        required: maybe\n");
    let err = from_yaml_err(&text);
    assert_eq!(lines(&err), [Some(11)], "{err}");
    let p = &err.problems[0];
    assert_eq!(p.pointer, "/schema/0/properties/0/required");
    assert_eq!(p.column, Some(9));
    assert!(p.message.contains("boolean"), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "c.yaml:11:9: {} (at /schema/0/properties/0/required)",
            p.message
        )
    );
}

#[test]
fn all_schema_violations_are_reported() {
    let text = contract(
        "      - name: id\n        required: maybe\n      - name: note\n        unique: 7\n",
    );
    let err = from_yaml_err(&text);
    assert_eq!(lines(&err), [Some(10), Some(12)], "{err}");
}

#[test]
fn missing_id() {
    let err =
        from_yaml_err("apiVersion: v3.1.0\nkind: DataContract\nversion: 1.0.0\nstatus: active\n");
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(err.problems[0].message.contains("\"id\""), "{err}");
    assert_eq!(err.problems[0].line, Some(1));
}

#[test]
fn unknown_api_version_points_at_it() {
    let err = from_yaml_err(
        "kind: DataContract\nid: x\napiVersion: v4.0.0\nversion: 1.0.0\nstatus: active\n",
    );
    assert_eq!(err.problems[0].pointer, "/apiVersion");
    assert_eq!(err.problems[0].line, Some(3));
    assert!(err.to_string().contains("v4.0.0"), "{err}");
    // A v3.0 contract is checked against the 3.0.2 schema.
    let err =
        from_yaml_err("apiVersion: v3.0.2\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: 5\n");
    assert_eq!(err.problems[0].pointer, "/status");
    assert_eq!(err.problems[0].line, Some(5));
}

#[test]
fn invalid_yaml_syntax_reports_the_line() {
    let err = from_yaml_err("apiVersion: v3.1.0\nid: [unclosed\nkind: DataContract\n");
    assert!(err.problems[0].line.is_some(), "{err}");
    assert!(err.problems[0].message.starts_with("invalid YAML"), "{err}");
    let err = from_yaml_err("apiVersion: v3.1.0\nid: x\n  version: 1.0.0\n");
    assert_eq!(err.problems[0].line, Some(3), "{err}");
}

#[test]
fn empty_and_garbage_text() {
    for text in [
        "",
        "   \n\n",
        "# only a comment\n",
        "just a string",
        "- a list\n",
    ] {
        let err = from_yaml_err(text);
        assert_eq!(err.problems.len(), 1, "{text:?}: {err}");
    }
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let garbage = String::from_utf8_lossy(&bytes);
    from_yaml_err(&garbage);
    from_yaml_err("\u{0}\u{1}\u{2}apiVersion: v3.1.0");
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut previous = 'a';
    for name in 'b'..='j' {
        let refs = vec![format!("*{previous}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        previous = name;
    }
    let err = from_yaml_err(&text);
    assert!(err.problems[0].message.contains("budget"), "{err}");
}

#[test]
fn deep_nesting_is_refused() {
    let flow = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    from_yaml_err(&flow);
    let block = format!("a:\n{}x\n", "- ".repeat(10_000));
    from_yaml_err(&block);
    let mappings = format!("a: {}1{}", "{b: ".repeat(10_000), "}".repeat(10_000));
    from_yaml_err(&mappings);
}

#[test]
fn duplicate_yaml_keys_are_refused() {
    let err = from_yaml_err(&format!("{HEADER}id: again\n"));
    assert_eq!(err.problems[0].line, Some(6), "{err}");
}

#[test]
fn duplicate_property_names() {
    let text = contract(
        "      - name: id\n        logicalType: integer\n      - name: note\n      - name: id\n        logicalType: string\n",
    );
    let err = lint_err(&text);
    assert_eq!(lines(&err), [Some(12)], "{err}");
    assert!(
        err.to_string().contains("duplicate property name `id`"),
        "{err}"
    );
    assert!(
        err.to_string().contains("first declared at line 9"),
        "{err}"
    );
}

#[test]
fn bad_regex_pattern() {
    let text = contract(
        "      - name: code\n        logicalType: string\n        logicalTypeOptions:\n          pattern: \"([a-z]+\"\n",
    );
    let err = lint_err(&text);
    assert_eq!(lines(&err), [Some(12)], "{err}");
    assert!(err.to_string().contains("orders.code"), "{err}");
    // The checker refuses it too, pointing at the property.
    let contract = Contract::from_yaml(&text, "c.yaml").unwrap();
    let err = tessera_contract::Checker::new(&contract.schema[0]).unwrap_err();
    assert_eq!(err.origin, "orders");
    assert_eq!(
        err.problems[0].pointer,
        "/properties/0/logicalTypeOptions/pattern"
    );
}

#[test]
fn decimal_scale_above_precision() {
    let text = contract(
        "      - name: amount\n        logicalType: number\n        physicalType: decimal(5,7)\n",
    );
    let err = lint_err(&text);
    assert_eq!(lines(&err), [Some(11)], "{err}");
    assert!(
        err.to_string()
            .contains("scale 7 is larger than precision 5"),
        "{err}"
    );
}

#[test]
fn key_positions_must_be_consistent() {
    let text = contract(
        "      - name: a\n        primaryKey: true\n        primaryKeyPosition: 1\n\
         \x20     - name: b\n        primaryKey: true\n\
         \x20     - name: c\n        primaryKeyPosition: 2\n\
         \x20     - name: d\n        partitioned: true\n        partitionKeyPosition: 3\n",
    );
    let err = lint_err(&text);
    assert_eq!(err.problems.len(), 3, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("`b` is one of 2 primary key columns"),
        "{text}"
    );
    assert!(
        text.contains("`c` has primaryKeyPosition 2 but primaryKey is not true"),
        "{text}"
    );
    assert!(
        text.contains("partitionKeyPosition 3 is out of range"),
        "{text}"
    );
}

#[test]
fn quality_rules_must_be_usable() {
    // Unknown metrics cannot be modelled: refused by from_yaml, at the rule.
    let text = contract(
        "      - name: a\n        quality:\n          - rule: sometimesNull\n            mustBe: 0\n",
    );
    let err = from_yaml_err(&text.replace("v3.1.0", "v3.0.2"));
    assert_eq!(lines(&err), [Some(11)], "{err}");
    assert!(err.to_string().contains("sometimesNull"), "{err}");
    // Schema-level duplicateValues needs its columns.
    let text = format!(
        "{}    quality:\n      - metric: duplicateValues\n        mustBe: 0\n",
        contract("      - name: a\n")
    );
    let err = lint_err(&text);
    assert_eq!(lines(&err), [Some(11)], "{err}");
    assert!(err.to_string().contains("arguments.properties"), "{err}");
}
