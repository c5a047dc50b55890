//! One test per classification, on small contracts.

use serde_json::json;

use super::*;

/// A contract with one object `t` whose properties (indented by 6) and object-level quality
/// (indented by 6) are given.
fn contract(version: &str, properties: &str, quality: &str) -> Contract {
    contract_api("v3.1.0", version, properties, quality)
}

/// [`contract`] for another `apiVersion`.
fn contract_api(api: &str, version: &str, properties: &str, quality: &str) -> Contract {
    let quality = if quality.is_empty() {
        String::new()
    } else {
        format!("    quality:\n{quality}")
    };
    let text = format!(
        "apiVersion: {api}\nkind: DataContract\nid: c\nversion: {version}\nstatus: active\n\
         schema:\n  - name: t\n    properties:\n{properties}{quality}"
    );
    Contract::from_yaml(&text, "c.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The changes from OLD properties to NEW properties (1.0.0 → 2.0.0).
fn changes(old: &str, new: &str) -> Vec<Change> {
    diff(&contract("1.0.0", old, ""), &contract("2.0.0", new, "")).changes
}

/// The changes from OLD to NEW properties in ODCS 3.0 contracts.
fn changes_v30(old: &str, new: &str) -> Vec<Change> {
    diff(
        &contract_api("v3.0.2", "1.0.0", old, ""),
        &contract_api("v3.0.2", "2.0.0", new, ""),
    )
    .changes
}

/// The single change from OLD to NEW.
#[track_caller]
fn one(old: &str, new: &str) -> Change {
    let mut all = changes(old, new);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

#[track_caller]
fn expect(change: &Change, kind: ChangeKind, breaking: bool, path: &str) {
    assert_eq!(
        (change.kind, change.breaking, change.path.as_str()),
        (kind, breaking, path),
        "{change:#?}"
    );
}

/// A property `name` of `type` (logical type, or `logical physical`), and more lines.
fn prop(name: &str, ty: &str, more: &str) -> String {
    let (logical, physical) = ty.split_once(' ').unwrap_or((ty, ""));
    let mut out = format!("      - name: {name}\n        logicalType: {logical}\n");
    if !physical.is_empty() {
        out.push_str(&format!("        physicalType: \"{physical}\"\n"));
    }
    for line in more.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(&format!("        {line}\n"));
    }
    out
}

const ID: &str = "      - name: id\n        logicalType: integer\n        required: true\n";

// ---------------------------------------------------------------------------------------------
// Columns and objects

#[test]
fn identical_contracts_have_no_change() {
    let props = format!(
        "{ID}{}",
        prop("amount", "number decimal(12,2)", "required: true")
    );
    let d = diff(
        &contract("1.0.0", &props, ""),
        &contract("1.0.0", &props, ""),
    );
    assert!(d.changes.is_empty(), "{:#?}", d.changes);
    assert_eq!(d.verdict, Verdict::Ok);
    assert_eq!(d.reasons, ["no change"]);
}

#[test]
fn removed_column_is_breaking_and_located_in_old() {
    let old = format!("{ID}{}", prop("note", "string", ""));
    let c = one(&old, ID);
    expect(
        &c,
        ChangeKind::PropertyRemoved,
        true,
        "schema.t.properties.note",
    );
    assert_eq!((c.side, c.line), (Side::Old, Some(12)));
    assert_eq!((c.old.clone(), c.new.clone()), (json!("note"), Value::Null));
}

#[test]
fn added_columns_break_only_when_required() {
    let c = one(ID, &format!("{ID}{}", prop("note", "string", "")));
    expect(
        &c,
        ChangeKind::PropertyAdded,
        false,
        "schema.t.properties.note",
    );
    assert_eq!((c.side, c.line), (Side::New, Some(12)));
    let c = one(
        ID,
        &format!("{ID}{}", prop("note", "string", "required: true")),
    );
    expect(
        &c,
        ChangeKind::PropertyAdded,
        true,
        "schema.t.properties.note",
    );
}

#[test]
fn probable_rename_same_type_and_position() {
    let old = format!("{ID}{}", prop("email", "string varchar", ""));
    let new = format!(
        "{ID}{}",
        prop("e_mail", "string varchar", "description: E-mail.")
    );
    let all = changes(&old, &new);
    assert_eq!(all.len(), 2, "{all:#?}");
    expect(
        &all[0],
        ChangeKind::PropertyRenamed,
        true,
        "schema.t.properties.email",
    );
    assert_eq!(
        (all[0].old.clone(), all[0].new.clone()),
        (json!("email"), json!("e_mail"))
    );
    assert!(all[0].note.contains("probably renamed"), "{}", all[0].note);
    assert_eq!(all[0].line, Some(12));
    // Attributes of the renamed column are compared too, under its new name.
    expect(
        &all[1],
        ChangeKind::DocumentationChanged,
        false,
        "schema.t.properties.e_mail.description",
    );
    // Another type at the same position: a removal and an addition, not a rename.
    let new = format!("{ID}{}", prop("e_mail", "integer", ""));
    let all = changes(&old, &new);
    let kinds: Vec<ChangeKind> = all.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::PropertyRemoved, ChangeKind::PropertyAdded]
    );
}

#[test]
fn reordering_columns_is_not_breaking() {
    let (a, b) = (prop("a", "string", ""), prop("b", "string", ""));
    let c = one(&format!("{a}{b}"), &format!("{b}{a}"));
    expect(
        &c,
        ChangeKind::PropertiesReordered,
        false,
        "schema.t.properties",
    );
    assert_eq!(c.new, json!(["b", "a"]));
}

#[test]
fn objects_added_and_removed() {
    let old = "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
               schema:\n  - name: a\n  - name: b\n";
    let new = "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 2.0.0\nstatus: active\n\
               schema:\n  - name: a\n  - name: c\n";
    let d = diff(
        &Contract::from_yaml(old, "o").unwrap(),
        &Contract::from_yaml(new, "n").unwrap(),
    );
    assert_eq!(d.changes.len(), 2, "{:#?}", d.changes);
    expect(&d.changes[0], ChangeKind::ObjectRemoved, true, "schema.b");
    assert_eq!((d.changes[0].side, d.changes[0].line), (Side::Old, Some(8)));
    expect(&d.changes[1], ChangeKind::ObjectAdded, false, "schema.c");
    assert_eq!(d.verdict, Verdict::Ok);
}

#[test]
fn physical_names_are_addresses() {
    let c = one(
        &prop("a", "string", "physicalName: col_a"),
        &prop("a", "string", "physicalName: col_b"),
    );
    expect(
        &c,
        ChangeKind::PhysicalNameChanged,
        true,
        "schema.t.properties.a.physicalName",
    );
    // Spelling out the name it already had is no change.
    assert!(
        changes(
            &prop("a", "string", ""),
            &prop("a", "string", "physicalName: a")
        )
        .is_empty()
    );
}

#[test]
fn nested_properties_and_items_are_compared() {
    let old = prop(
        "address",
        "object",
        "properties:\n  - name: city\n    logicalType: string\n  - name: zip\n    logicalType: string",
    );
    let new = prop(
        "address",
        "object",
        "properties:\n  - name: city\n    logicalType: string\n    required: true",
    );
    let all = changes(&old, &new);
    assert_eq!(all.len(), 2, "{all:#?}");
    expect(
        &all[0],
        ChangeKind::RequiredChanged,
        true,
        "schema.t.properties.address.properties.city.required",
    );
    expect(
        &all[1],
        ChangeKind::PropertyRemoved,
        true,
        "schema.t.properties.address.properties.zip",
    );
    let c = one(
        &prop(
            "tags",
            "array",
            "items:\n  logicalType: integer\n  physicalType: int",
        ),
        &prop(
            "tags",
            "array",
            "items:\n  logicalType: integer\n  physicalType: bigint",
        ),
    );
    expect(
        &c,
        ChangeKind::TypeChanged,
        false,
        "schema.t.properties.tags.items.physicalType",
    );
    let c = one(
        &prop("tags", "array", "items:\n  logicalType: string"),
        &prop("tags", "array", "items:\n  logicalType: integer"),
    );
    expect(
        &c,
        ChangeKind::TypeChanged,
        true,
        "schema.t.properties.tags.items.logicalType",
    );
}

// ---------------------------------------------------------------------------------------------
// Types

/// Whether changing the type of a column from `old` to `new` is breaking (exactly one change).
#[track_caller]
fn type_change(old: &str, new: &str) -> bool {
    let c = one(&prop("a", old, ""), &prop("a", new, ""));
    assert_eq!(c.kind, ChangeKind::TypeChanged, "{c:#?}");
    assert_eq!((c.old.clone(), c.new.clone()), (json!(old), json!(new)));
    c.breaking
}

#[test]
fn narrowed_and_incompatible_types_break() {
    for (old, new) in [
        ("string", "integer"),
        ("integer", "string"),
        ("number decimal(12,2)", "number decimal(10,2)"),
        ("number decimal(12,2)", "number decimal(12,4)"),
        ("number decimal(12,2)", "number decimal(12,1)"),
        ("integer bigint", "integer int"),
        ("integer int", "integer smallint"),
        ("timestamp timestamp", "date date"),
        ("date date", "timestamp timestamp"),
        ("number double", "integer bigint"),
        ("integer bigint", "number double"),
        ("number double", "number float"),
        ("number double", "number decimal(38,10)"),
        ("string varchar(20)", "string varchar(10)"),
        ("string varchar", "string varchar(10)"),
        ("boolean", "string"),
    ] {
        assert!(type_change(old, new), "{old} → {new} should break");
    }
}

#[test]
fn widened_types_do_not_break() {
    for (old, new) in [
        ("integer int", "integer bigint"),
        ("integer smallint", "integer int"),
        ("number decimal(12,2)", "number decimal(14,2)"),
        ("number decimal(12,2)", "number decimal(14,4)"),
        ("number float", "number double"),
        ("integer int", "number double"),
        ("integer int", "number decimal(12,0)"),
        ("string varchar(10)", "string varchar(20)"),
        ("string varchar(10)", "string varchar"),
        ("integer bigint", "integer int8"),
    ] {
        assert!(!type_change(old, new), "{old} → {new} should not break");
    }
    // Physical types are compared without case.
    assert!(
        changes(
            &prop("a", "integer BIGINT", ""),
            &prop("a", "integer bigint", "")
        )
        .is_empty()
    );
}

#[test]
fn integer_formats_are_part_of_the_type() {
    let c = one(
        &prop("a", "integer", "logicalTypeOptions:\n  format: i64"),
        &prop("a", "integer", "logicalTypeOptions:\n  format: i32"),
    );
    expect(
        &c,
        ChangeKind::TypeChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.format",
    );
    let c = one(
        &prop("a", "integer", "logicalTypeOptions:\n  format: u8"),
        &prop("a", "integer", "logicalTypeOptions:\n  format: i16"),
    );
    assert!(!c.breaking, "{c:#?}");
}

// ---------------------------------------------------------------------------------------------
// Flags and keys

#[test]
fn required_and_unique_break_when_set() {
    let c = one(
        &prop("a", "string", ""),
        &prop("a", "string", "required: true"),
    );
    expect(
        &c,
        ChangeKind::RequiredChanged,
        true,
        "schema.t.properties.a.required",
    );
    assert_eq!(
        (c.old.clone(), c.new.clone(), c.line),
        (json!(false), json!(true), Some(11))
    );
    let c = one(
        &prop("a", "string", "required: true"),
        &prop("a", "string", ""),
    );
    expect(
        &c,
        ChangeKind::RequiredChanged,
        false,
        "schema.t.properties.a.required",
    );
    assert!(c.note.contains("nulls"), "{}", c.note);
    let c = one(
        &prop("a", "string", ""),
        &prop("a", "string", "unique: true"),
    );
    expect(
        &c,
        ChangeKind::UniqueChanged,
        true,
        "schema.t.properties.a.unique",
    );
    let c = one(
        &prop("a", "string", "unique: true"),
        &prop("a", "string", "unique: false"),
    );
    expect(
        &c,
        ChangeKind::UniqueChanged,
        false,
        "schema.t.properties.a.unique",
    );
}

#[test]
fn primary_key_columns_and_order() {
    let key = |a: i64, b: i64| {
        format!(
            "{}{}",
            prop(
                "a",
                "string",
                &format!("primaryKey: true\nprimaryKeyPosition: {a}")
            ),
            prop(
                "b",
                "string",
                &format!("primaryKey: true\nprimaryKeyPosition: {b}")
            ),
        )
    };
    let c = one(&key(1, 2), &key(2, 1));
    expect(
        &c,
        ChangeKind::PrimaryKeyChanged,
        true,
        "schema.t.primaryKey",
    );
    assert_eq!(
        (c.old.clone(), c.new.clone()),
        (json!(["a", "b"]), json!(["b", "a"]))
    );
    assert_eq!(
        c.line,
        Some(11),
        "the first column whose part in the key changed"
    );
    let single = format!(
        "{}{}",
        prop("a", "string", "primaryKey: true"),
        prop("b", "string", "")
    );
    let c = one(&single, &key(1, 2));
    expect(
        &c,
        ChangeKind::PrimaryKeyChanged,
        true,
        "schema.t.primaryKey",
    );
    assert_eq!(c.line, Some(11));
    // Numbering a single-column key changes nothing.
    let numbered = format!(
        "{}{}",
        prop("a", "string", "primaryKey: true\nprimaryKeyPosition: 1"),
        prop("b", "string", "")
    );
    assert!(changes(&single, &numbered).is_empty());
}

#[test]
fn partitioning_changes_break() {
    let c = one(
        &prop("d", "date", "partitioned: true\npartitionKeyPosition: 1"),
        &prop("d", "date", ""),
    );
    expect(
        &c,
        ChangeKind::PartitioningChanged,
        true,
        "schema.t.partitionKey",
    );
    assert_eq!((c.old.clone(), c.new.clone()), (json!(["d"]), json!([])));
}

#[test]
fn becoming_pii_breaks_other_classifications_do_not() {
    let c = one(
        &prop("e", "string", "classification: internal"),
        &prop("e", "string", "classification: PII"),
    );
    expect(
        &c,
        ChangeKind::ClassificationChanged,
        true,
        "schema.t.properties.e.classification",
    );
    let c = one(
        &prop("e", "string", "classification: pii"),
        &prop("e", "string", "classification: restricted"),
    );
    assert!(!c.breaking);
    let c = one(
        &prop("e", "string", "classification: internal"),
        &prop("e", "string", "classification: restricted"),
    );
    assert!(!c.breaking);
}

// ---------------------------------------------------------------------------------------------
// logicalTypeOptions

fn options(ty: &str, options: &str) -> String {
    if options.is_empty() {
        return prop("a", ty, "logicalTypeOptions: {}");
    }
    let indented: String = options.lines().map(|l| format!("  {l}\n")).collect();
    prop("a", ty, &format!("logicalTypeOptions:\n{indented}"))
}

#[test]
fn ranges_tightened_break_relaxed_do_not() {
    let c = one(
        &options("number", "minimum: 0\nmaximum: 100000"),
        &options("number", "minimum: 0\nmaximum: 50000"),
    );
    expect(
        &c,
        ChangeKind::RangeChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.maximum",
    );
    assert_eq!(
        (c.old.clone(), c.new.clone(), c.line),
        (json!(100000), json!(50000), Some(13))
    );
    for (old, new, breaking) in [
        ("maximum: 10", "maximum: 20", false),
        ("minimum: 0", "minimum: 1", true),
        ("minimum: 1", "minimum: 0.5", false),
        ("minimum: 0", "exclusiveMinimum: 0", true),
        ("exclusiveMinimum: 0", "minimum: 0", false),
        ("maximum: 10", "exclusiveMaximum: 11", false),
        ("maximum: 10", "exclusiveMaximum: 10", true),
        ("", "maximum: 10", true),
        ("maximum: 10", "", false),
    ] {
        let c = one(&options("number", old), &options("number", new));
        assert_eq!(
            (c.kind, c.breaking),
            (ChangeKind::RangeChanged, breaking),
            "{old} → {new}"
        );
    }
    // Same bound, other spelling: no change.
    assert!(
        changes(
            &options("number", "minimum: 0"),
            &options("number", "minimum: 0.0")
        )
        .is_empty()
    );
}

#[test]
fn date_bounds_compare_as_dates() {
    let c = one(
        &options("date", "minimum: '2020-01-01'"),
        &options("date", "minimum: '2021-06-30'"),
    );
    assert!(c.breaking, "{c:#?}");
    let c = one(
        &options("date", "maximum: '2030-12-31'"),
        &options("date", "maximum: '2031-01-01'"),
    );
    assert!(!c.breaking, "{c:#?}");
    let c = one(
        &options("timestamp", "exclusiveMaximum: '2030-01-01T00:00:00Z'"),
        &options("timestamp", "exclusiveMaximum: '2030-01-01T01:00:00+02:00'"),
    );
    assert!(c.breaking, "an hour earlier in UTC: {c:#?}");
    // Bounds that cannot be compared count as tightened.
    let c = one(
        &options("date", "minimum: '2020-01-01'"),
        &options("date", "minimum: 'last year'"),
    );
    assert!(c.breaking && c.note.contains("cannot compare"), "{c:#?}");
}

#[test]
fn odcs_3_0_boolean_exclusive_bounds() {
    let v30 = |version: &str, options: &str| {
        let text = format!(
            "apiVersion: v3.0.2\nkind: DataContract\nid: c\nversion: {version}\nstatus: active\n\
             schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: number\n\
             \x20       logicalTypeOptions:\n{options}"
        );
        Contract::from_yaml(&text, "c.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    };
    let d = diff(
        &v30("1.0.0", "          maximum: 10\n"),
        &v30(
            "2.0.0",
            "          maximum: 10\n          exclusiveMaximum: true\n",
        ),
    );
    assert_eq!(d.changes.len(), 1, "{:#?}", d.changes);
    let c = &d.changes[0];
    expect(
        c,
        ChangeKind::RangeChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.maximum",
    );
    assert_eq!(
        (c.old.clone(), c.new.clone()),
        (json!("<= 10"), json!("< 10"))
    );
}

#[test]
fn lengths() {
    for (old, new, breaking) in [
        ("maxLength: 20", "maxLength: 10", true),
        ("maxLength: 10", "maxLength: 20", false),
        ("minLength: 1", "minLength: 2", true),
        ("minLength: 2", "minLength: 1", false),
        ("", "maxLength: 10", true),
        ("", "minLength: 1", true),
        ("maxLength: 10", "", false),
    ] {
        let c = one(&options("string", old), &options("string", new));
        assert_eq!(
            (c.kind, c.breaking),
            (ChangeKind::LengthChanged, breaking),
            "{old} → {new}"
        );
    }
    let c = one(
        &options("array", "maxItems: 5"),
        &options("array", "maxItems: 3"),
    );
    expect(
        &c,
        ChangeKind::LengthChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.maxItems",
    );
}

#[test]
fn patterns_and_formats() {
    for (old, new, kind, breaking) in [
        ("", "pattern: '^[A-Z]+$'", ChangeKind::PatternChanged, true),
        (
            "pattern: '^[A-Z]+$'",
            "pattern: '^[A-Z]{3}$'",
            ChangeKind::PatternChanged,
            true,
        ),
        ("pattern: '^[A-Z]+$'", "", ChangeKind::PatternChanged, false),
        ("", "format: email", ChangeKind::FormatChanged, true),
        (
            "format: email",
            "format: uuid",
            ChangeKind::FormatChanged,
            true,
        ),
        ("format: email", "", ChangeKind::FormatChanged, false),
    ] {
        let c = one(&options("string", old), &options("string", new));
        assert_eq!((c.kind, c.breaking), (kind, breaking), "{old} → {new}");
    }
}

#[test]
fn multiples() {
    for (old, new, breaking) in [
        ("multipleOf: 0.01", "multipleOf: 0.05", true),
        ("multipleOf: 0.05", "multipleOf: 0.01", false),
        ("multipleOf: 5", "multipleOf: 2", true),
        ("multipleOf: 10", "multipleOf: 5", false),
        ("", "multipleOf: 5", true),
        ("multipleOf: 5", "", false),
    ] {
        let c = one(&options("number", old), &options("number", new));
        assert_eq!(
            (c.kind, c.breaking),
            (ChangeKind::MultipleOfChanged, breaking),
            "{old} → {new}"
        );
    }
}

#[test]
fn time_zones_array_and_object_options_and_unknown_options() {
    let c = one(
        &options("timestamp", "defaultTimezone: Europe/Paris"),
        &options("timestamp", "defaultTimezone: Etc/UTC"),
    );
    expect(
        &c,
        ChangeKind::TimezoneChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.defaultTimezone",
    );
    let c = one(
        &options("array", "uniqueItems: false"),
        &options("array", "uniqueItems: true"),
    );
    expect(
        &c,
        ChangeKind::OptionChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.uniqueItems",
    );
    let c = one(
        &options("array", "uniqueItems: true"),
        &options("array", ""),
    );
    assert!(!c.breaking);
    let c = one(
        &options("object", "required: [x]"),
        &options("object", "required: [x, y]"),
    );
    assert!(c.breaking && c.note.contains('y'), "{c:#?}");
    let c = one(
        &options("object", "required: [x, y]"),
        &options("object", "required: [x]"),
    );
    assert!(!c.breaking);
    // The schema lets booleans have any option; one Tessera does not know breaks.
    let c = one(
        &options("boolean", "encoding: yes-no"),
        &options("boolean", "encoding: y-n"),
    );
    expect(
        &c,
        ChangeKind::OptionChanged,
        true,
        "schema.t.properties.a.logicalTypeOptions.encoding",
    );
}

// ---------------------------------------------------------------------------------------------
// Quality rules

fn rule(yaml: &str) -> String {
    let mut lines = yaml.lines();
    let mut out = format!("  - {}\n", lines.next().unwrap_or_default());
    for line in lines {
        out.push_str(&format!("    {line}\n"));
    }
    prop("status", "string", &format!("quality:\n{out}"))
}

#[test]
fn valid_values_removed_break_added_do_not() {
    let valid = |values: &str| {
        rule(&format!(
            "name: status_valid\nmetric: invalidValues\narguments:\n  validValues: [{values}]\nmustBe: 0"
        ))
    };
    let c = one(&valid("placed, paid, shipped"), &valid("placed, shipped"));
    expect(
        &c,
        ChangeKind::ValidValuesChanged,
        true,
        "schema.t.properties.status.quality.status_valid.arguments.validValues",
    );
    assert!(c.note.contains("\"paid\""), "{}", c.note);
    assert_eq!(c.line, Some(15));
    let c = one(&valid("placed, paid"), &valid("placed, paid, refunded"));
    expect(
        &c,
        ChangeKind::ValidValuesChanged,
        false,
        "schema.t.properties.status.quality.status_valid.arguments.validValues",
    );
    // ODCS 3.0 spelling: the values next to the rule.
    let v30 = |values: &str| {
        rule(&format!(
            "rule: validValues\nvalidValues: [{values}]\nmustBe: 0"
        ))
    };
    let all = changes_v30(&v30("a, b"), &v30("a"));
    expect(
        &all[0],
        ChangeKind::ValidValuesChanged,
        true,
        "schema.t.properties.status.quality[0].validValues",
    );
}

#[test]
fn missing_values_added_break() {
    let missing = |values: &str| {
        rule(&format!(
            "metric: missingValues\narguments:\n  missingValues: [{values}]\nmustBeLessThan: 5"
        ))
    };
    let c = one(&missing("null, ''"), &missing("null, '', 'n/a'"));
    expect(
        &c,
        ChangeKind::MissingValuesChanged,
        true,
        "schema.t.properties.status.quality[0].arguments.missingValues",
    );
    let c = one(&missing("null, '', 'n/a'"), &missing("null"));
    assert!(!c.breaking, "{c:#?}");
    // Absent means [null, ''].
    let bare = rule("metric: missingValues\nmustBeLessThan: 5");
    assert!(changes(&bare, &missing("null, ''")).len() == 1);
    assert!(!one(&bare, &missing("null, ''")).breaking);
    assert!(one(&bare, &missing("null, '', '-'")).breaking);
}

#[test]
fn thresholds_stricter_break_looser_do_not() {
    let nulls = |op: &str| rule(&format!("metric: nullValues\n{op}"));
    for (old, new, breaking) in [
        ("mustBeLessThan: 10", "mustBeLessThan: 5", true),
        ("mustBeLessThan: 5", "mustBeLessThan: 10", false),
        ("mustBe: 0", "mustBeLessOrEqualTo: 5", false),
        ("mustBeLessOrEqualTo: 5", "mustBe: 0", true),
        ("mustBeLessThan: 1", "mustBe: 0", false),
        ("mustBe: 0", "mustBeLessThan: 1", false),
        ("mustBeBetween: [0, 10]", "mustBeBetween: [0, 5]", true),
        ("mustBeBetween: [2, 5]", "mustBeLessThan: 6", false),
        ("mustBeGreaterThan: 3", "mustNotBe: 2", false),
        ("mustBeGreaterThan: 1", "mustNotBe: 2", true),
        ("mustBeLessThan: 5", "mustNotBeBetween: [5, 8]", false),
        ("mustBeLessThan: 5", "mustNotBeBetween: [4, 8]", true),
    ] {
        let c = one(&nulls(old), &nulls(new));
        assert_eq!(
            (c.kind, c.breaking),
            (ChangeKind::QualityRuleChanged, breaking),
            "{old} → {new}"
        );
    }
    let c = one(&nulls("mustBeLessThan: 10"), &nulls("mustBeLessThan: 5"));
    assert_eq!(
        c.path,
        "schema.t.properties.status.quality[0].mustBeLessThan"
    );
    assert_eq!(
        (c.old.clone(), c.new.clone()),
        (json!("< 10"), json!("< 5"))
    );
    // Percentages are not whole numbers: < 1 % and = 0 % differ.
    let pct = |op: &str| rule(&format!("metric: nullValues\nunit: percent\n{op}"));
    assert!(one(&pct("mustBeLessThan: 1"), &pct("mustBe: 0")).breaking);
    // Rows and percentages cannot be compared.
    let c = one(&nulls("mustBeLessThan: 5"), &pct("mustBeLessThan: 5"));
    expect(
        &c,
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.properties.status.quality[0].unit",
    );
}

#[test]
fn row_count_raised_breaks() {
    let rows = |n: u32| {
        format!(
            "      - name: mustBeGreaterThan\n        metric: rowCount\n        mustBeGreaterThan: {n}\n"
        )
    };
    let d = diff(
        &contract("1.0.0", ID, &rows(0)),
        &contract("1.1.0", ID, &rows(10)),
    );
    assert_eq!(d.changes.len(), 1, "{:#?}", d.changes);
    expect(
        &d.changes[0],
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.quality.mustBeGreaterThan.mustBeGreaterThan",
    );
    assert_eq!(d.verdict, Verdict::Fail);
}

#[test]
fn rules_added_removed_and_severity() {
    let none = prop("status", "string", "");
    let nulls = rule("metric: nullValues\nmustBe: 0");
    let c = one(&none, &nulls);
    expect(
        &c,
        ChangeKind::QualityRuleAdded,
        true,
        "schema.t.properties.status.quality[0]",
    );
    assert_eq!(c.new, json!({"metric": "nullValues", "mustBe": 0}));
    let c = one(&nulls, &none);
    expect(
        &c,
        ChangeKind::QualityRuleRemoved,
        false,
        "schema.t.properties.status.quality[0]",
    );
    assert_eq!(c.side, Side::Old);
    // Warnings and text rules never fail a run.
    let warning = rule("metric: nullValues\nmustBe: 0\nseverity: warning");
    assert!(!one(&none, &warning).breaking);
    assert!(
        !one(
            &none,
            &rule("type: text\ndescription: Statuses are lower case.")
        )
        .breaking
    );
    let c = one(&warning, &nulls);
    expect(
        &c,
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.properties.status.quality[0].severity",
    );
    assert!(!one(&nulls, &warning).breaking);
    // A warning made stricter is still only a warning.
    let strict_warning = rule("metric: nullValues\nmustBeLessThan: 1\nseverity: warning");
    let loose_warning = rule("metric: nullValues\nmustBeLessThan: 9\nseverity: warning");
    assert!(!one(&loose_warning, &strict_warning).breaking);
}

#[test]
fn rules_are_matched_by_name_then_content_then_metric() {
    let named = |name: &str, op: &str| rule(&format!("name: {name}\nmetric: nullValues\n{op}"));
    // Renamed, same content: a documentation change.
    let c = one(&named("a", "mustBe: 0"), &named("b", "mustBe: 0"));
    expect(
        &c,
        ChangeKind::DocumentationChanged,
        false,
        "schema.t.properties.status.quality.b.name",
    );
    // Same name, other metric: a different rule.
    let c = one(
        &named("a", "mustBe: 0"),
        &rule("name: a\nmetric: duplicateValues\nmustBe: 0"),
    );
    expect(
        &c,
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.properties.status.quality.a",
    );
    // Unnamed rules pair by metric, in order.
    let all = changes(
        &rule("metric: nullValues\nmustBeLessThan: 3\ndescription: few nulls"),
        &rule("metric: nullValues\nmustBeLessThan: 2\ndescription: fewer nulls"),
    );
    let kinds: Vec<(ChangeKind, bool)> = all.iter().map(|c| (c.kind, c.breaking)).collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::QualityRuleChanged, true),
            (ChangeKind::DocumentationChanged, false)
        ]
    );
}

#[test]
fn sql_and_custom_rules_cannot_be_compared() {
    let sql = |q: &str| rule(&format!("type: sql\nquery: {q}\nmustBe: 0"));
    let c = one(&sql("SELECT 1"), &sql("SELECT 2"));
    expect(
        &c,
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.properties.status.quality[0].query",
    );
    let custom = |i: &str| rule(&format!("type: custom\nengine: soda\nimplementation: {i}"));
    let c = one(&custom("a"), &custom("b"));
    expect(
        &c,
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.properties.status.quality[0].implementation",
    );
}

#[test]
fn duplicate_values_over_fewer_columns_break() {
    let dup = |cols: &str| {
        format!(
            "      - metric: duplicateValues\n        arguments:\n          properties: [{cols}]\n        mustBe: 0\n"
        )
    };
    let props = format!("{ID}{}", prop("day", "date", ""));
    let run = |a: &str, b: &str| {
        diff(
            &contract("1.0.0", &props, &dup(a)),
            &contract("2.0.0", &props, &dup(b)),
        )
        .changes
    };
    let c = &run("id, day", "id")[0];
    expect(
        c,
        ChangeKind::QualityRuleChanged,
        true,
        "schema.t.quality[0].arguments.properties",
    );
    let c = &run("id", "id, day")[0];
    assert!(!c.breaking);
}

// ---------------------------------------------------------------------------------------------
// Documentation and metadata

#[test]
fn documentation_and_metadata_never_break() {
    let c = one(
        &prop("a", "string", "description: old\ntags: [x]"),
        &prop("a", "string", "description: new\ntags: [x]"),
    );
    expect(
        &c,
        ChangeKind::DocumentationChanged,
        false,
        "schema.t.properties.a.description",
    );
    assert_eq!(c.line, Some(11));
    let c = one(
        &prop("a", "string", ""),
        &prop("a", "string", "businessName: A"),
    );
    expect(
        &c,
        ChangeKind::DocumentationChanged,
        false,
        "schema.t.properties.a.businessName",
    );
    let c = one(
        &prop("a", "string", "examples: [x]"),
        &prop("a", "string", ""),
    );
    assert_eq!((c.side, c.breaking), (Side::Old, false));

    let head = |version: &str, extra: &str| {
        format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: {version}\nstatus: active\n{extra}"
        )
    };
    let old = head(
        "1.0.0",
        "description:\n  purpose: old\nslaProperties:\n  - property: latency\n    value: 4\n    unit: d\n",
    );
    let new = head(
        "1.0.1",
        "description:\n  purpose: new\nslaProperties:\n  - property: latency\n    value: 8\n    unit: d\n\
         support:\n  - channel: '#data'\n",
    );
    let d = diff(
        &Contract::from_yaml(&old, "o").unwrap(),
        &Contract::from_yaml(&new, "n").unwrap(),
    );
    let paths: Vec<(&str, ChangeKind, bool)> = d
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.kind, c.breaking))
        .collect();
    assert_eq!(
        paths,
        [
            (
                "description.purpose",
                ChangeKind::DocumentationChanged,
                false
            ),
            ("slaProperties.latency.value", ChangeKind::SlaChanged, false),
            ("support", ChangeKind::MetadataChanged, false),
        ]
    );
    assert_eq!(d.verdict, Verdict::Ok);
}

#[test]
fn a_new_id_breaks() {
    let old = Contract::from_yaml(
        "apiVersion: v3.1.0\nkind: DataContract\nid: a\nversion: 1.0.0\nstatus: active\n",
        "o",
    )
    .unwrap();
    let new = Contract::from_yaml(
        "apiVersion: v3.1.0\nkind: DataContract\nid: b\nversion: 1.1.0\nstatus: active\n",
        "n",
    )
    .unwrap();
    let d = diff(&old, &new);
    expect(&d.changes[0], ChangeKind::IdChanged, true, "id");
    assert_eq!(d.changes[0].line, Some(3));
    assert_eq!(d.verdict, Verdict::Fail);
}

// ---------------------------------------------------------------------------------------------
// Versions and the verdict

fn verdict(old_version: &str, old: &str, new_version: &str, new: &str) -> ContractDiff {
    diff(
        &contract(old_version, old, ""),
        &contract(new_version, new, ""),
    )
}

#[test]
fn breaking_changes_need_a_major_version() {
    let old = format!("{ID}{}", prop("a", "string", ""));
    let d = verdict("1.4.2", &old, "1.5.0", ID);
    assert_eq!(d.verdict, Verdict::Fail);
    assert_eq!(
        d.reasons,
        ["1 breaking change(s) need a new major version (e.g. 2.0.0), not 1.5.0"]
    );
    assert!(!d.version.major_bumped);
    let d = verdict("1.4.2", &old, "2.0.0", ID);
    assert_eq!(d.verdict, Verdict::Ok, "{:?}", d.reasons);
    assert!(d.version.major_bumped);
    assert_eq!(d.breaking().count(), 1);
    // Below 1.0.0 the minor is the major.
    assert_eq!(verdict("0.3.1", &old, "0.4.0", ID).verdict, Verdict::Ok);
    assert_eq!(verdict("0.3.1", &old, "0.3.2", ID).verdict, Verdict::Fail);
    // A pre-release of the next major is a major bump.
    assert_eq!(
        verdict("1.4.2", &old, "v2.0.0-rc.1", ID).verdict,
        Verdict::Ok
    );
}

#[test]
fn compatible_changes_need_a_new_version_and_versions_never_go_down() {
    let new = format!("{ID}{}", prop("a", "string", ""));
    let d = verdict("1.0.0", ID, "1.0.0", &new);
    assert_eq!(d.verdict, Verdict::Fail);
    assert!(
        d.reasons[0].contains("its version did not"),
        "{:?}",
        d.reasons
    );
    let d = verdict("1.0.0", ID, "1.1.0", &new);
    assert_eq!(
        (d.verdict, d.version.direction),
        (Verdict::Ok, Direction::Up)
    );
    assert_eq!(
        d.reasons,
        ["1 compatible change(s) in a new version (1.0.0 → 1.1.0)"]
    );
    let d = verdict("1.2.0", ID, "1.1.9", &new);
    assert_eq!(
        (d.verdict, d.version.direction),
        (Verdict::Fail, Direction::Down)
    );
    // Only the version changed: fine, even down is not (a version never goes back).
    assert_eq!(
        verdict("1.0.0", ID, "1.0.1", ID).reasons,
        ["only the version changed (1.0.0 → 1.0.1)"]
    );
    assert_eq!(verdict("1.0.1", ID, "1.0.0", ID).verdict, Verdict::Fail);
    // Build metadata does not make another version.
    assert_eq!(
        verdict("1.0.0+a", ID, "1.0.0+b", &new).verdict,
        Verdict::Fail
    );
}

#[test]
fn versions_must_be_semantic_when_anything_changed() {
    let new = format!("{ID}{}", prop("a", "string", ""));
    let d = verdict("1.0.0", ID, "latest", &new);
    assert_eq!(d.version.direction, Direction::Unknown);
    assert_eq!(d.verdict, Verdict::Fail);
    assert!(
        d.reasons[0].contains("`latest` is not a semantic version"),
        "{:?}",
        d.reasons
    );
    assert_eq!(verdict("draft", ID, "draft", ID).verdict, Verdict::Ok);
}

#[test]
fn semver_precedence() {
    let v = |s: &str| Semver::parse(s).unwrap_or_else(|| panic!("{s}"));
    let ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1",
        "v2",
    ];
    for pair in ordered.windows(2) {
        assert_eq!(
            v(pair[0]).precedence(&v(pair[1])),
            Ordering::Less,
            "{pair:?}"
        );
    }
    assert_eq!(v("1.2").core, [1, 2, 0]);
    for bad in [
        "",
        "1.2.3.4",
        "1..2",
        "x.1",
        "1.0.0-",
        "1.0.0-a..b",
        "-1.0.0",
    ] {
        assert!(Semver::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn accepted_measurements() {
    use Operator::*;
    // Row counts are whole numbers: `< 1` is `= 0`.
    assert!(accepts_all(LessThan(1.0), Equal(0.0), true));
    assert!(!accepts_all(LessThan(1.0), Equal(0.0), false));
    // Negative measurements do not exist.
    assert!(accepts_all(LessOrEqual(3.0), Between(-5.0, 3.0), true));
    assert!(accepts_all(NotEqual(-1.0), GreaterOrEqual(0.0), false));
    // Neighbouring whole-number intervals join: [0, 1] and [2, ∞) cover everything.
    assert!(accepts_all(GreaterOrEqual(0.0), NotBetween(1.2, 1.8), true));
    assert!(!accepts_all(
        GreaterOrEqual(0.0),
        NotBetween(1.2, 1.8),
        false
    ));
    assert!(!accepts_all(GreaterOrEqual(0.0), NotEqual(3.0), true));
}
