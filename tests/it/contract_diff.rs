//! `tessera contract diff` on the sample orders contract against edited copies: a breaking change
//! without a new major version fails and names the product that consumes orders; the same
//! change in a new major version passes.

use std::path::{Path, PathBuf};

use tessera_cli::commands::{Consumer, DiffReport, contract_diff};
use tessera_cli::output;
use tessera_contract::{ChangeKind, Side, Verdict};
use tessera_core::mesh::InputKind;
use tessera_tests::{repo_root, sample_mesh};

fn orders() -> PathBuf {
    repo_root().join("domains/sales/orders/orders.odcs.yaml")
}

/// A copy of `contract` with each `(old, new)` edit made once, written to `dir/name`.
fn edited(contract: &Path, dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(contract).unwrap();
    for (old, new) in edits {
        assert_eq!(text.matches(old).count(), 1, "`{old}` once in the contract");
        text = text.replacen(old, new, 1);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The 1-based line of the first line of `file` that contains `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Orders with its amount range tightened, in version `version`.
fn tightened(dir: &Path, version: &str) -> PathBuf {
    edited(
        &orders(),
        dir,
        &format!("orders-{version}.odcs.yaml"),
        &[
            ("version: 1.0.0", &format!("version: {version}")),
            ("          maximum: 100000", "          maximum: 50000"),
        ],
    )
}

fn daily_revenue_reads_orders(report: &DiffReport) {
    assert_eq!(report.publishers, ["sales.orders"]);
    assert_eq!(
        report.consumers,
        [
            Consumer {
                product: "sales.daily_revenue".into(),
                reads: "sales.orders".into(),
                port: InputKind::Aggregation,
            },
            Consumer {
                product: "sales.segment_revenue".into(),
                reads: "sales.orders".into(),
                port: InputKind::Aggregation,
            }
        ]
    );
}

#[test]
fn a_breaking_change_without_a_new_major_version_fails_and_names_the_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let new = tightened(dir.path(), "1.1.0");
    let report = contract_diff(&sample_mesh(), &orders(), &new).unwrap();
    assert_eq!(report.diff.verdict, Verdict::Fail);
    assert_eq!(report.diff.changes.len(), 1, "{:#?}", report.diff.changes);
    let change = &report.diff.changes[0];
    assert_eq!(
        (change.kind, change.breaking, change.path.as_str()),
        (
            ChangeKind::RangeChanged,
            true,
            "schema.orders.properties.amount.logicalTypeOptions.maximum"
        )
    );
    assert_eq!(
        (change.side, change.line),
        (Side::New, Some(line_of(&new, "maximum: 50000")))
    );
    daily_revenue_reads_orders(&report);

    let text = output::contract_diff(&report);
    for expected in [
        "urn:tessera:sales:orders 1.0.0 → 1.1.0",
        "range changed",
        "100000 → 50000",
        "published by: sales.orders",
        "consumed by: sales.daily_revenue (aggregation of sales.orders)",
        "FAIL: 1 breaking change(s) need a new major version (e.g. 2.0.0), not 1.1.0",
    ] {
        assert!(text.contains(expected), "`{expected}` in:\n{text}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["changes"][0]["kind"], "rangeChanged");
    assert_eq!(json["consumers"][0]["product"], "sales.daily_revenue");
}

#[test]
fn the_same_change_in_a_new_major_version_passes() {
    let dir = tempfile::tempdir().unwrap();
    let report = contract_diff(&sample_mesh(), &orders(), &tightened(dir.path(), "2.0.0")).unwrap();
    assert_eq!(
        report.diff.verdict,
        Verdict::Ok,
        "{:?}",
        report.diff.reasons
    );
    assert!(report.diff.version.major_bumped);
    assert_eq!(report.diff.breaking().count(), 1);
    daily_revenue_reads_orders(&report);
    assert!(
        output::contract_diff(&report)
            .contains("OK: 1 breaking change(s) of 1 in a new major version (1.0.0 → 2.0.0)")
    );
}

#[test]
fn unchanged_passes_and_a_new_description_needs_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let report = contract_diff(&sample_mesh(), &orders(), &orders()).unwrap();
    assert_eq!(
        (report.diff.verdict, report.diff.changes.len()),
        (Verdict::Ok, 0)
    );
    assert!(output::contract_diff(&report).contains("no change"));
    let reworded = edited(
        &orders(),
        dir.path(),
        "reworded.odcs.yaml",
        &[(
            "Business key of the order.",
            "Business key of the order, ORD-nnnnnn.",
        )],
    );
    let report = contract_diff(&sample_mesh(), &orders(), &reworded).unwrap();
    assert_eq!(report.diff.verdict, Verdict::Fail);
    assert_eq!(report.diff.breaking().count(), 0);
    assert_eq!(
        report.diff.changes[0].path,
        "schema.orders.properties.order_id.description"
    );
}

#[test]
fn an_aggregate_contract_has_no_consumer_yet() {
    let dir = tempfile::tempdir().unwrap();
    let contract = repo_root().join("domains/sales/daily_revenue/daily_revenue.odcs.yaml");
    let new = edited(
        &contract,
        dir.path(),
        "daily_revenue.odcs.yaml",
        &[("version: 1.0.0", "version: 1.1.0")],
    );
    let report = contract_diff(&sample_mesh(), &contract, &new).unwrap();
    assert_eq!(report.publishers, ["sales.daily_revenue"]);
    assert!(report.consumers.is_empty());
    assert_eq!(report.diff.verdict, Verdict::Ok);
    assert!(output::contract_diff(&report).contains("consumed by: none in the mesh"));
}

#[test]
fn a_new_version_that_does_not_lint_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = edited(
        &orders(),
        dir.path(),
        "broken.odcs.yaml",
        &[("physicalType: decimal(12,2)", "physicalType: decimal(40,2)")],
    );
    let err = contract_diff(&sample_mesh(), &orders(), &broken)
        .unwrap_err()
        .to_string();
    let line = line_of(&broken, "decimal(40,2)");
    assert!(
        err.contains(&format!("broken.odcs.yaml:{line}:")),
        "the error names the file and line: {err}"
    );
}
