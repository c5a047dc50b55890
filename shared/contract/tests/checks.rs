//! Streaming checks on small record batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float64Array, Int32Array, Int64Array, LargeStringArray, ListArray, RecordBatch, StringArray,
    StringViewArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt8Array,
};
use arrow::datatypes::Int32Type;
use tessera_contract::{CheckReport, CheckResult, CheckStatus, Checker, Contract, sql_rules};

use CheckStatus::{Failed, NotExecuted, Passed};

/// A contract whose single object `t` has these properties and object-level quality
/// (both YAML indented for their place: properties by 6, quality by 6).
fn contract(properties: &str, quality: &str) -> Contract {
    let quality = if quality.is_empty() {
        String::new()
    } else {
        format!("    quality:\n{quality}")
    };
    let text = format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
         schema:\n  - name: t\n    properties:\n{properties}{quality}"
    );
    tessera_contract::lint(&text, "c.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn run(contract: &Contract, batches: &[RecordBatch]) -> CheckReport {
    let mut checker = Checker::new(&contract.schema[0]).unwrap();
    for b in batches {
        checker.update(b);
    }
    checker.finish()
}

fn get<'a>(report: &'a CheckReport, name: &str) -> &'a CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {:#?}", report.checks))
}

#[track_caller]
fn expect(report: &CheckReport, name: &str, observed: Option<f64>, status: CheckStatus) {
    let check = get(report, name);
    assert_eq!(
        (check.observed, check.status),
        (observed, status),
        "{check:#?}"
    );
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn ints(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

#[test]
fn implicit_required_unique_and_primary_key() {
    let c = contract(
        "      - name: id\n        logicalType: integer\n        primaryKey: true\n        required: true\n\
         \x20     - name: code\n        logicalType: string\n        unique: true\n",
        "",
    );
    let r = run(
        &c,
        &[batch(vec![
            ("id", ints(&[Some(1), Some(2), Some(2), None])),
            ("code", strings(&[Some("a"), None, Some("b"), None])),
        ])],
    );
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["schema", "id.required", "id.unique", "code.unique"]);
    expect(&r, "schema", Some(0.0), Passed);
    expect(&r, "id.required", Some(1.0), Failed);
    expect(&r, "id.unique", Some(1.0), Failed);
    expect(&r, "code.unique", Some(0.0), Passed);
    let required = get(&r, "id.required");
    assert_eq!(required.rule, "required");
    assert_eq!(required.property.as_deref(), Some("id"));
    assert_eq!(required.expectation, "= 0");
    assert_eq!(required.detail.as_deref(), Some("1 of 4 rows"));
    assert_eq!(r.rows, 4);
    assert!(!r.passed());
    assert_eq!(r.counts(), (2, 2));
    assert_eq!(r.failed().count(), 2);
}

#[test]
fn composite_primary_key() {
    let c = contract(
        "      - name: b\n        logicalType: string\n        primaryKey: true\n        primaryKeyPosition: 2\n\
         \x20     - name: a\n        logicalType: integer\n        primaryKey: true\n        primaryKeyPosition: 1\n",
        "",
    );
    let r = run(
        &c,
        &[batch(vec![
            (
                "b",
                strings(&[Some("x"), Some("y"), Some("x"), Some("x"), None]),
            ),
            ("a", ints(&[Some(1), Some(1), Some(2), Some(1), Some(1)])),
        ])],
    );
    expect(&r, "a,b.primaryKey", Some(1.0), Failed);
    assert!(get(&r, "a,b.primaryKey").property.is_none());
}

#[test]
fn each_metric_in_rows_and_percent() {
    let c = contract(
        "      - name: s\n        logicalType: string\n        quality:\n\
         \x20         - metric: nullValues\n            mustBe: 0\n\
         \x20         - metric: nullValues\n            unit: percent\n            mustBeLessThan: 30\n\
         \x20         - metric: missingValues\n            mustBeLessOrEqualTo: 2\n\
         \x20         - metric: missingValues\n            mustBe: 0\n            arguments:\n              missingValues: [\"n/a\"]\n\
         \x20         - metric: invalidValues\n            mustBe: 0\n            arguments:\n              validValues: [a, b, \"n/a\"]\n\
         \x20         - metric: invalidValues\n            unit: percent\n            mustBeLessThan: 50\n            arguments:\n              pattern: \"^[a-z]$\"\n\
         \x20         - metric: duplicateValues\n            mustBe: 0\n\
         \x20         - metric: duplicateValues\n            unit: percent\n            mustBeLessOrEqualTo: 20\n\
         \x20         - metric: rowCount\n            mustBeGreaterThan: 5\n",
        "",
    );
    // 8 rows: 2 nulls, 1 empty, 1 "n/a", values a, a, b, zz.
    let s = strings(&[
        Some("a"),
        None,
        Some(""),
        Some("a"),
        Some("n/a"),
        None,
        Some("b"),
        Some("zz"),
    ]);
    let r = run(&c, &[batch(vec![("s", s)])]);
    expect(&r, "s.nullValues", Some(2.0), Failed);
    expect(&r, "s.nullValues#2", Some(25.0), Passed);
    // nulls + "" by default
    expect(&r, "s.missingValues", Some(3.0), Failed);
    // only "n/a": the list has no null
    expect(&r, "s.missingValues#2", Some(1.0), Failed);
    // "" and "zz" are not valid values
    expect(&r, "s.invalidValues", Some(2.0), Failed);
    // "", "n/a", "zz" do not match: 3 of 8
    expect(&r, "s.invalidValues#2", Some(37.5), Passed);
    // the second "a"
    expect(&r, "s.duplicateValues", Some(1.0), Failed);
    expect(&r, "s.duplicateValues#2", Some(12.5), Passed);
    expect(&r, "s.rowCount", Some(8.0), Passed);
    let pct = get(&r, "s.nullValues#2");
    assert_eq!(
        (pct.unit.as_str(), pct.expectation.as_str()),
        ("percent", "< 30")
    );
}

#[test]
fn each_operator() {
    let rules: String = [
        "mustBe: 3",
        "mustNotBe: 3",
        "mustBeGreaterThan: 3",
        "mustBeGreaterOrEqualTo: 3",
        "mustBeLessThan: 3",
        "mustBeLessOrEqualTo: 3",
        "mustBeBetween: [1, 3]",
        "mustNotBeBetween: [1, 3]",
    ]
    .iter()
    .map(|op| format!("      - metric: rowCount\n        {op}\n"))
    .collect();
    let c = contract("      - name: x\n        logicalType: integer\n", &rules);
    let r = run(
        &c,
        &[batch(vec![("x", ints(&[Some(1), Some(2), Some(3)]))])],
    );
    let statuses: Vec<(&str, CheckStatus)> = r.checks[1..]
        .iter()
        .map(|c| (c.expectation.as_str(), c.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("= 3", Passed),
            ("!= 3", Failed),
            ("> 3", Failed),
            (">= 3", Passed),
            ("< 3", Failed),
            ("<= 3", Passed),
            ("between 1 and 3", Passed),
            ("not between 1 and 3", Failed),
        ]
    );
    assert_eq!(r.checks[1].name, "t.rowCount");
    assert_eq!(r.checks[2].name, "t.rowCount#2");
}

#[test]
fn schema_level_duplicates_and_row_count() {
    let c = contract(
        "      - name: a\n        logicalType: integer\n      - name: b\n        logicalType: string\n",
        "      - name: pairs_unique\n        metric: duplicateValues\n        mustBe: 0\n        arguments:\n          properties: [a, b]\n\
         \x20     - metric: rowCount\n        mustBeBetween: [1, 10]\n\
         \x20     - metric: duplicateValues\n        unit: percent\n        mustBeLessThan: 10\n        arguments:\n          properties: [b]\n",
    );
    let r = run(
        &c,
        &[batch(vec![
            ("a", ints(&[Some(1), Some(1), Some(2), Some(1), None])),
            (
                "b",
                strings(&[Some("x"), Some("y"), Some("x"), Some("x"), Some("x")]),
            ),
        ])],
    );
    expect(&r, "pairs_unique", Some(1.0), Failed);
    expect(&r, "t.rowCount", Some(5.0), Passed);
    // b repeats "x" three times: 3 of 5 rows
    expect(&r, "t.duplicateValues", Some(60.0), Failed);
    assert!(get(&r, "pairs_unique").property.is_none());
}

#[test]
fn string_options() {
    let c = contract(
        "      - name: code\n        logicalType: string\n        logicalTypeOptions:\n\
         \x20         pattern: \"^[A-Z]{2}[0-9]+$\"\n          minLength: 3\n          maxLength: 4\n",
        "",
    );
    let code = strings(&[
        Some("AB1"),
        Some("AB12"),
        Some("ab1"),
        Some("AB"),
        Some("ÄB123"),
        None,
    ]);
    let r = run(&c, &[batch(vec![("code", code)])]);
    // "ab1", "AB", "ÄB123" do not match
    expect(&r, "code.pattern", Some(3.0), Failed);
    expect(&r, "code.minLength", Some(1.0), Failed);
    // "ÄB123" has 5 characters (6 bytes)
    expect(&r, "code.maxLength", Some(1.0), Failed);
}

#[test]
fn numeric_bounds() {
    let c = contract(
        "      - name: price\n        logicalType: number\n        physicalType: decimal(10,2)\n\
         \x20       logicalTypeOptions:\n          minimum: 0\n          exclusiveMaximum: 100.5\n\
         \x20     - name: qty\n        logicalType: integer\n        logicalTypeOptions:\n\
         \x20         exclusiveMinimum: 0\n          maximum: 10\n          multipleOf: 2\n\
         \x20     - name: ratio\n        logicalType: number\n        logicalTypeOptions:\n          minimum: -1.5\n",
        "",
    );
    let price: ArrayRef = Arc::new(
        Decimal128Array::from(vec![Some(0), Some(-1), Some(10050), Some(10049), None])
            .with_precision_and_scale(10, 2)
            .unwrap(),
    );
    let r = run(
        &c,
        &[batch(vec![
            ("price", price),
            (
                "qty",
                ints(&[Some(0), Some(2), Some(10), Some(12), Some(3)]),
            ),
            (
                "ratio",
                Arc::new(Float64Array::from(vec![-1.5, -1.6, 0.0, 2.0, f64::NAN])),
            ),
        ])],
    );
    expect(&r, "schema", Some(0.0), Passed);
    expect(&r, "price.minimum", Some(1.0), Failed);
    expect(&r, "price.exclusiveMaximum", Some(1.0), Failed);
    expect(&r, "qty.exclusiveMinimum", Some(1.0), Failed);
    expect(&r, "qty.maximum", Some(1.0), Failed);
    expect(&r, "qty.multipleOf", Some(1.0), Failed);
    expect(&r, "ratio.minimum", Some(1.0), Failed);
}

#[test]
fn odcs_30_boolean_exclusive_flags() {
    let text = "apiVersion: v3.0.2\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
                schema:\n  - name: t\n    properties:\n      - name: n\n        logicalType: integer\n\
                \x20       logicalTypeOptions:\n          minimum: 1\n          exclusiveMinimum: true\n\
                \x20         maximum: 5\n          exclusiveMaximum: false\n";
    let c = tessera_contract::lint(text, "c.yaml").unwrap();
    let r = run(
        &c,
        &[batch(vec![(
            "n",
            ints(&[Some(1), Some(2), Some(5), Some(6)]),
        )])],
    );
    expect(&r, "n.exclusiveMinimum", Some(1.0), Failed);
    expect(&r, "n.maximum", Some(1.0), Failed);
}

#[test]
fn date_timestamp_and_time_bounds() {
    let c = contract(
        "      - name: d\n        logicalType: date\n        logicalTypeOptions:\n\
         \x20         minimum: \"2024-01-01\"\n          exclusiveMaximum: \"2024-12-31\"\n\
         \x20     - name: ts\n        logicalType: timestamp\n        logicalTypeOptions:\n\
         \x20         exclusiveMinimum: \"2024-01-01 01:00:00+01:00\"\n          maximum: \"2024-06-01T00:00:00Z\"\n\
         \x20     - name: local\n        logicalType: timestamp\n        logicalTypeOptions:\n\
         \x20         minimum: \"2024-01-01 00:00:00\"\n          defaultTimezone: Europe/Paris\n\
         \x20     - name: at\n        logicalType: time\n        logicalTypeOptions:\n          maximum: \"17:30:00\"\n",
        "",
    );
    let day = |y: i32, m: u32, d: u32| {
        let date = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
    };
    let micros = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    };
    let dates: ArrayRef = Arc::new(Date32Array::from(vec![
        Some(day(2023, 12, 31)),
        Some(day(2024, 1, 1)),
        Some(day(2024, 12, 31)),
        None,
    ]));
    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(vec![
            Some(micros("2024-01-01T00:00:00Z")),
            Some(micros("2024-01-01T00:00:00.000001Z")),
            Some(micros("2024-06-01T00:00:00Z")),
            Some(micros("2024-06-01T00:00:01Z")),
        ])
        .with_timezone("UTC"),
    );
    let local: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(vec![
            Some(micros("2023-12-31T22:59:59Z")),
            Some(micros("2023-12-31T23:00:00Z")),
            None,
            None,
        ])
        .with_timezone("UTC"),
    );
    let at: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![
        Some(17 * 3_600_000_000 + 30 * 60_000_000),
        Some(17 * 3_600_000_000 + 30 * 60_000_000 + 1),
        None,
        Some(0),
    ]));
    let r = run(
        &c,
        &[batch(vec![
            ("d", dates),
            ("ts", ts),
            ("local", local),
            ("at", at),
        ])],
    );
    expect(&r, "schema", Some(0.0), Passed);
    expect(&r, "d.minimum", Some(1.0), Failed);
    expect(&r, "d.exclusiveMaximum", Some(1.0), Failed);
    expect(&r, "ts.exclusiveMinimum", Some(1.0), Failed);
    expect(&r, "ts.maximum", Some(1.0), Failed);
    // midnight in Paris is 23:00 UTC the day before
    expect(&r, "local.minimum", Some(1.0), Failed);
    expect(&r, "at.maximum", Some(1.0), Failed);
}

#[test]
fn schema_check_finds_missing_extra_and_mistyped_columns() {
    let c = contract(
        "      - name: id\n        logicalType: integer\n      - name: name\n        logicalType: string\n\
         \x20     - name: when\n        logicalType: timestamp\n        required: true\n",
        "",
    );
    let r = run(
        &c,
        &[batch(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                "name",
                Arc::new(StringViewArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            ("extra", ints(&[Some(1), Some(2)])),
        ])],
    );
    let schema = get(&r, "schema");
    assert_eq!((schema.observed, schema.status), (Some(3.0), Failed));
    assert_eq!(
        schema.detail.as_deref(),
        Some("column `id` is Int32, expected Int64; missing column `when`; extra column `extra`")
    );
    let required = get(&r, "when.required");
    assert_eq!(required.status, NotExecuted);
    assert_eq!(
        required.detail.as_deref(),
        Some("column `when` is not in the data")
    );
}

#[test]
fn storage_variants_are_compatible() {
    let c = contract(
        "      - name: s\n        logicalType: string\n        unique: true\n        logicalTypeOptions: {maxLength: 1}\n\
         \x20     - name: d\n        logicalType: string\n        unique: true\n        logicalTypeOptions: {pattern: \"^a$\"}\n\
         \x20     - name: tags\n        logicalType: array\n        items: {logicalType: integer, logicalTypeOptions: {format: i32}}\n\
         \x20     - name: at\n        logicalType: timestamp\n",
        "",
    );
    let tags: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1)]),
        None,
    ]));
    let at: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(vec![1, 2]).with_timezone("+00:00"));
    let dictionary: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::from_iter(["a", "b"]));
    let r = run(
        &c,
        &[batch(vec![
            (
                "s",
                Arc::new(LargeStringArray::from(vec!["a", "a"])) as ArrayRef,
            ),
            ("d", dictionary),
            ("tags", tags),
            ("at", at),
        ])],
    );
    expect(&r, "schema", Some(0.0), Passed);
    expect(&r, "s.unique", Some(1.0), Failed);
    expect(&r, "s.maxLength", Some(0.0), Passed);
    expect(&r, "d.unique", Some(0.0), Passed);
    expect(&r, "d.pattern", Some(1.0), Failed);
}

#[test]
fn unsupported_types_are_not_executed() {
    let c = contract(
        "      - name: blob\n        logicalType: string\n        unique: true\n        logicalTypeOptions: {pattern: \"^a\"}\n",
        "",
    );
    let blob: ArrayRef = Arc::new(BinaryArray::from(vec![b"a".as_ref(), b"a".as_ref()]));
    let r = run(&c, &[batch(vec![("blob", blob)])]);
    expect(&r, "schema", Some(1.0), Failed);
    for name in ["blob.unique", "blob.pattern"] {
        let check = get(&r, name);
        assert_eq!(check.status, NotExecuted);
        assert!(
            check.detail.as_deref().unwrap().contains("Binary"),
            "{check:?}"
        );
    }
    // NotExecuted checks count as neither passed nor failed.
    assert_eq!(r.counts(), (0, 1));
}

#[test]
fn other_value_types() {
    let c = contract(
        "      - name: flag\n        logicalType: boolean\n        quality:\n\
         \x20         - metric: invalidValues\n            mustBe: 0\n            arguments: {validValues: [true]}\n\
         \x20     - name: small\n        logicalType: integer\n        logicalTypeOptions: {format: u8}\n        quality:\n\
         \x20         - metric: missingValues\n            mustBe: 0\n            arguments: {missingValues: [0, 255]}\n\
         \x20         - metric: duplicateValues\n            mustBe: 0\n\
         \x20     - name: day\n        logicalType: date\n        quality:\n\
         \x20         - metric: invalidValues\n            mustBe: 0\n            arguments: {validValues: [\"1970-01-02\"]}\n",
        "",
    );
    let r = run(
        &c,
        &[batch(vec![
            (
                "flag",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])) as ArrayRef,
            ),
            (
                "small",
                Arc::new(UInt8Array::from(vec![0, 255, 7])) as ArrayRef,
            ),
            (
                "day",
                Arc::new(Date32Array::from(vec![1, 1, 2])) as ArrayRef,
            ),
        ])],
    );
    expect(&r, "schema", Some(0.0), Passed);
    expect(&r, "flag.invalidValues", Some(1.0), Failed);
    expect(&r, "small.missingValues", Some(2.0), Failed);
    expect(&r, "small.duplicateValues", Some(0.0), Passed);
    expect(&r, "day.invalidValues", Some(1.0), Failed);
}

#[test]
fn sql_text_and_custom_rules() {
    let c = contract(
        "      - name: v\n        logicalType: number\n        quality:\n\
         \x20         - type: sql\n            query: select count(*) from t where v < 0\n            mustBe: 0\n\
         \x20         - type: text\n            description: values are measured daily\n\
         \x20         - type: custom\n            engine: soda\n            implementation: \"x\"\n",
        "      - name: volume\n        type: sql\n        query: select count(*) from t\n        mustBeGreaterThan: 10\n        severity: warning\n",
    );
    let r = run(
        &c,
        &[batch(vec![(
            "v",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )])],
    );
    let detail = |name: &str| {
        let check = get(&r, name);
        assert_eq!(check.status, NotExecuted);
        check.detail.clone().unwrap()
    };
    assert_eq!(
        detail("v.sql"),
        "sql rules run in contract-check through DataFusion"
    );
    assert_eq!(detail("v.text"), "documentation only");
    assert_eq!(
        detail("v.custom"),
        "custom engine `soda` is not executed by Tessera"
    );
    assert_eq!(
        detail("volume"),
        "sql rules run in contract-check through DataFusion"
    );
    assert!(r.passed());

    let sql = sql_rules(&c.schema[0]);
    let names: Vec<(&str, Option<&str>)> = sql
        .iter()
        .map(|r| (r.name.as_str(), r.property.as_deref()))
        .collect();
    assert_eq!(names, [("v.sql", Some("v")), ("volume", None)]);
    let passed = sql[0].result(0.0);
    assert_eq!((passed.status, passed.observed), (Passed, Some(0.0)));
    assert_eq!(
        (passed.rule.as_str(), passed.expectation.as_str()),
        ("sql", "= 0")
    );
    assert_eq!(passed.property.as_deref(), Some("v"));
    let failed = sql[1].result(3.0);
    assert_eq!(failed.status, Failed);
    assert_eq!(
        (failed.severity.as_str(), failed.expectation.as_str()),
        ("warning", "> 10")
    );
}

#[test]
fn warnings_do_not_fail_the_report() {
    let c = contract(
        "      - name: v\n        logicalType: string\n        quality:\n\
         \x20         - metric: nullValues\n            mustBe: 0\n            severity: warning\n",
        "",
    );
    let r = run(&c, &[batch(vec![("v", strings(&[None]))])]);
    expect(&r, "v.nullValues", Some(1.0), Failed);
    assert!(r.passed());
    assert_eq!(r.counts(), (1, 1));
}

#[test]
fn percent_of_no_rows_is_zero_and_no_batch_means_no_schema_check() {
    let c = contract(
        "      - name: v\n        logicalType: string\n        quality:\n\
         \x20         - metric: nullValues\n            mustBe: 0\n            unit: percent\n",
        "",
    );
    let empty = batch(vec![("v", strings(&[]))]);
    let r = run(&c, &[empty]);
    expect(&r, "v.nullValues", Some(0.0), Passed);
    let r = run(&c, &[]);
    expect(&r, "schema", None, NotExecuted);
    expect(&r, "v.nullValues", Some(0.0), Passed);
}

#[test]
fn split_batches_give_the_same_report() {
    let c = contract(
        "      - name: id\n        logicalType: integer\n        required: true\n        unique: true\n\
         \x20       logicalTypeOptions: {minimum: 2}\n\
         \x20     - name: s\n        logicalType: string\n        logicalTypeOptions: {pattern: \"^[a-c]+$\"}\n        quality:\n\
         \x20         - metric: missingValues\n            unit: percent\n            mustBeLessThan: 20\n\
         \x20         - metric: invalidValues\n            mustBe: 0\n            arguments: {validValues: [a, b]}\n",
        "      - metric: duplicateValues\n        mustBe: 0\n        arguments: {properties: [id, s]}\n      - metric: rowCount\n        mustBeGreaterThan: 3\n",
    );
    let ids = [
        Some(1),
        Some(2),
        Some(2),
        None,
        Some(5),
        Some(6),
        Some(1),
        Some(8),
    ];
    let ss = [
        Some("a"),
        Some("b"),
        Some("b"),
        Some(""),
        None,
        Some("zz"),
        Some("a"),
        Some("c"),
    ];
    let whole = batch(vec![("id", ints(&ids)), ("s", strings(&ss))]);
    let one = run(&c, std::slice::from_ref(&whole));
    let parts: Vec<RecordBatch> = [(0, 3), (3, 1), (4, 0), (4, 4)]
        .iter()
        .map(|&(offset, len)| whole.slice(offset, len))
        .collect();
    let many = run(&c, &parts);
    assert_eq!(
        serde_json::to_value(&one).unwrap(),
        serde_json::to_value(&many).unwrap()
    );
    expect(&one, "id.unique", Some(2.0), Failed);
    expect(&one, "t.duplicateValues", Some(2.0), Failed);
    expect(&one, "t.rowCount", Some(8.0), Passed);
    // Reports round-trip through JSON.
    let back: CheckReport = serde_json::from_value(serde_json::to_value(&one).unwrap()).unwrap();
    assert_eq!(back.checks.len(), one.checks.len());
    assert_eq!(
        serde_json::to_value(back.checks[1].status).unwrap(),
        serde_json::json!("failed")
    );
}

#[test]
fn nested_rules_are_reported_not_executed() {
    let c = contract(
        "      - name: address\n        logicalType: object\n        properties:\n\
         \x20         - name: zip\n            logicalType: string\n            quality:\n\
         \x20             - metric: nullValues\n                mustBe: 0\n",
        "",
    );
    let r = run(&c, &[]);
    let check = get(&r, "address.zip.nullValues");
    assert_eq!(check.status, NotExecuted);
    assert_eq!(check.property.as_deref(), Some("address.zip"));
}

#[test]
fn odcs_30_rules_without_operator_expect_zero() {
    let text = "apiVersion: v3.0.2\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
                schema:\n  - name: t\n    properties:\n      - name: v\n        logicalType: string\n\
                \x20       quality:\n          - rule: nullCheck\n          - rule: validValues\n\
                \x20           validValues: [a]\n";
    let c = tessera_contract::lint(text, "c.yaml").unwrap();
    let r = run(
        &c,
        &[batch(vec![("v", strings(&[Some("a"), Some("b"), None]))])],
    );
    expect(&r, "v.nullValues", Some(1.0), Failed);
    expect(&r, "v.invalidValues", Some(1.0), Failed);
    assert_eq!(get(&r, "v.nullValues").expectation, "= 0");
}

#[test]
fn sql_placeholders_name_the_table_and_the_column() {
    let c = contract(
        "      - name: v\n        logicalType: integer\n        quality:\n\
         \x20         - type: sql\n            query: SELECT COUNT(*) FROM ${object} WHERE ${property} < 0\n            mustBe: 0\n",
        "      - type: sql\n        query: SELECT COUNT(*) FROM {object}\n        mustBeGreaterThan: 0\n",
    );
    let sql = sql_rules(&c.schema[0]);
    assert_eq!(
        sql[0].query("\"t\"", Some("\"v\"")).unwrap(),
        "SELECT COUNT(*) FROM \"t\" WHERE \"v\" < 0"
    );
    assert_eq!(
        sql[1].query("\"t\"", None).unwrap(),
        "SELECT COUNT(*) FROM \"t\""
    );
    let broken = sql[1].error("no such table");
    assert_eq!(
        (broken.status, broken.detail.as_deref()),
        (Failed, Some("no such table"))
    );
}

#[test]
fn formats_check_strings_and_integer_widths() {
    let c = contract(
        "      - name: email\n        logicalType: string\n        logicalTypeOptions:\n          format: email\n\
         \x20     - name: host\n        logicalType: string\n        logicalTypeOptions:\n          format: ipv4\n\
         \x20     - name: small\n        logicalType: integer\n        logicalTypeOptions:\n          format: i8\n\
         \x20     - name: secret\n        logicalType: string\n        logicalTypeOptions:\n          format: password\n",
        "",
    );
    let r = run(
        &c,
        &[batch(vec![
            (
                "email",
                strings(&[Some("ada@example.com"), Some("not an e-mail"), None]),
            ),
            (
                "host",
                strings(&[Some("10.0.0.1"), Some("10.0.0.256"), Some("::1")]),
            ),
            ("small", ints(&[Some(127), Some(128), Some(-129)])),
            ("secret", strings(&[Some("hunter2"), None, None])),
        ])],
    );
    for (name, observed) in [
        ("email.format", 1.0),
        ("host.format", 2.0),
        ("small.format", 2.0),
    ] {
        let check = get(&r, name);
        assert_eq!(
            (check.status, check.observed),
            (Failed, Some(observed)),
            "{name}"
        );
    }
    let secret = get(&r, "secret.format");
    assert_eq!(secret.status, CheckStatus::NotExecuted);
    assert!(secret.detail.as_deref().unwrap().contains("password"));
}
