//! What changed between two versions of a contract, and whether it breaks anyone.
//!
//! [`diff`] compares an OLD and a NEW contract and lists every [`Change`]: where it is (a dotted
//! path such as `schema.orders.properties.amount.logicalTypeOptions.maximum`, and its line in
//! NEW, or in OLD when the thing is gone), what kind of change it is, the old and new values,
//! whether it is **breaking**, and why. Schema objects, properties (at every depth) and quality
//! rules are matched by name; a property removed and another added at the same position with
//! the same type is reported as a probable rename.
//!
//! # Whose view
//!
//! A contract is a promise to the product's consumers about **the published table**, and that
//! table holds versions published under OLD as well as the ones NEW will govern. Tessera takes
//! the consumer's view of that table. A change is breaking when
//!
//! * something a consumer's query or reader uses disappears or changes shape: a schema object,
//!   a column, a type it can no longer read, the primary key, the partitioning, the values it
//!   sees (a column newly classified `pii` is published hashed); or
//! * NEW promises more than OLD did (a tightened constraint): rows already published under OLD
//!   may not keep the new promise, so the table would lie to consumers. The producer-side
//!   effect is the same change seen from upstream: a feed that passed OLD may now be
//!   quarantined, and consumers then miss those rows.
//!
//! A relaxation (a wider type, a looser bound, more valid values, `required` dropped) keeps
//! every promise true of every published row, so it is not breaking. It is still a change
//! consumers may care about: rows published under NEW can use the room (nulls, new enum values,
//! larger amounts), which each change's note says. What Tessera cannot compare (two regular
//! expressions, two SQL queries, an option it does not know) is treated as breaking.
//!
//! # Classification
//!
//! | change | breaking |
//! |---|---|
//! | contract `id` changed | yes: consumers find the contract by its id |
//! | schema object removed / added | yes / no |
//! | object or column `physicalName` changed | yes: readers address the data by it |
//! | column removed; probably renamed (same type and position) | yes |
//! | column added: `required` / optional | yes (published rows have no value) / no |
//! | columns reordered | no |
//! | type narrowed or incompatible: `string`→`integer`, `decimal(12,2)`→`decimal(10,2)`, `bigint`→`int`, `timestamp`→`date`, `date`→`timestamp`, `number`→`integer`, `varchar(20)`→`varchar(10)` | yes |
//! | type widened: `int`→`bigint`, `float`→`double`, `integer`→`number` that holds it, `decimal(p,s)`→`decimal(p',s')` keeping integer digits and scale, a longer or unlimited `varchar`, another spelling of the same type | no |
//! | `required` false→true / true→false | yes / no |
//! | `unique` false→true / true→false | yes / no |
//! | primary key changed (columns or their order) | yes |
//! | partition columns changed (columns or their order) | yes: the table's layout changes |
//! | `classification` becomes `pii` / any other change | yes (values are published hashed) / no |
//! | `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` tightened / relaxed (numbers, dates, times; a bound that cannot be compared counts as tightened) | yes / no |
//! | `minLength`, `maxLength`, `minItems`, `maxItems`, `minProperties`, `maxProperties` tightened / relaxed | yes / no |
//! | `pattern` or `format` added or changed / removed | yes / no |
//! | `multipleOf` added or changed to a value OLD's is not a multiple of / removed or relaxed | yes / no |
//! | `uniqueItems` false→true; object `required` names added | yes |
//! | `timezone`, `defaultTimezone` changed (the same raw text becomes another instant) | yes |
//! | any other `logicalTypeOptions` key changed | yes (not understood) |
//! | quality rule added (`library`, `sql` or `custom` with severity `error`) / removed | yes / no |
//! | quality rule made stricter: its accepted range of measurements shrinks (`mustBeLessThan` lowered, `mustBe: 0` from `mustBeLessOrEqualTo: 5`, ...), `unit` changed, severity raised to `error`, `sql` query or `custom` implementation changed, metric changed | yes |
//! | quality rule relaxed: accepted range grows, severity lowered from `error` | no |
//! | `validValues` (enum) values removed / only added | yes / no |
//! | `missingValues` values added / removed (absent means `[null, ""]`) | yes / no |
//! | schema-level `duplicateValues` over fewer columns / more columns | yes / no |
//! | any change to a rule whose severity is `warning` or `info`, or to a `text` rule | no |
//! | description, business name, tags, examples, names of rules, authoritative definitions, custom properties | no |
//! | SLA properties (not enforced by Tessera yet), team, support, servers, status and other top-level fields | no |
//!
//! # Versions and the verdict
//!
//! Versions are semantic versions (`MAJOR.MINOR.PATCH`, optionally with a `v` prefix, a
//! pre-release and build metadata; `1` and `1.2` read as `1.0.0` and `1.2.0`). While the
//! major is 0, a minor bump counts as a major one (0.3 → 0.4), as Cargo reads versions.
//! The [`Verdict`] is [`Verdict::Fail`] when
//!
//! * anything changed (the version aside) and the version did not (same precedence);
//! * the version went down;
//! * a change is breaking and the major version did not go up;
//! * something changed and a version is not a semantic version;
//!
//! and [`Verdict::Ok`] otherwise (no change at all, only the version changed, compatible
//! changes in a new version, or breaking changes in a new major version).
//!
//! ```
//! let old = tessera_contract::Contract::from_yaml(
//!     "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
//!      schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: integer\n",
//!     "old.yaml",
//! )?;
//! let new = tessera_contract::Contract::from_yaml(
//!     "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.1.0\nstatus: active\n\
//!      schema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: integer\n        required: true\n",
//!     "new.yaml",
//! )?;
//! let diff = tessera_contract::diff(&old, &new);
//! let change = &diff.changes[0];
//! assert_eq!(change.path, "schema.t.properties.a.required");
//! assert!(change.breaking);
//! assert_eq!(change.line, Some(11));
//! assert_eq!(diff.verdict, tessera_contract::Verdict::Fail);
//! # Ok::<(), tessera_contract::ContractError>(())
//! ```

use std::cmp::Ordering;
use std::collections::BTreeSet;

use arrow::datatypes::DataType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::escape_token;
use crate::model::{Contract, LogicalType, Property, SchemaObject};
use crate::quality::{Operator, QualityRule, RuleKind, Severity, Unit};

/// Everything that changed from OLD to NEW, and the verdict on the new version.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractDiff {
    /// The contract id (NEW's; a changed id is itself a breaking change).
    pub id: String,
    /// OLD's and NEW's versions.
    pub version: VersionChange,
    /// The changes, object by object and property by property; the version is not one of
    /// them.
    pub changes: Vec<Change>,
    /// Whether NEW may replace OLD as it is versioned.
    pub verdict: Verdict,
    /// Why the verdict is what it is, one sentence each.
    pub reasons: Vec<String>,
}

/// One change between OLD and NEW.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Dotted path of what changed, by names: `schema.<object>.properties.<column>.<key>`,
    /// nested columns as `.properties.<name>` again, array elements as `.items`, quality rules
    /// as `.quality.<rule name>` or `.quality[<index>]`, and two keys of Tessera's own:
    /// `schema.<object>.primaryKey` and `schema.<object>.partitionKey` (the ordered columns).
    pub path: String,
    /// What kind of change.
    pub kind: ChangeKind,
    /// Whether it breaks the promise to consumers (see the module documentation).
    pub breaking: bool,
    /// The value in OLD (`null` when absent): the contract's value, or text for computed ones
    /// such as types (`number decimal(12,2)`) or bounds (`< 100`).
    pub old: Value,
    /// The value in NEW (`null` when absent).
    pub new: Value,
    /// The document `line` refers to: NEW, or OLD for what is gone.
    pub side: Side,
    /// The 1-based line in that document, when known.
    pub line: Option<usize>,
    /// Why it is breaking or not, in a few words.
    pub note: String,
}

/// Which of the two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The previous contract.
    Old,
    /// The proposed contract.
    New,
}

/// Whether NEW may replace OLD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing breaks, or breaking changes come with a new major version.
    Ok,
    /// See [`ContractDiff::reasons`].
    Fail,
}

/// The two versions and how they relate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionChange {
    /// OLD's `version`.
    pub old: String,
    /// NEW's `version`.
    pub new: String,
    /// Up, same, down, or unknown when a version is not a semantic version.
    pub direction: Direction,
    /// Whether the major version went up (or, below 1.0.0, the minor).
    pub major_bumped: bool,
}

/// How NEW's version compares with OLD's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// NEW is a later version.
    Up,
    /// Same precedence (build metadata aside).
    Same,
    /// NEW is an earlier version.
    Down,
    /// A version is not a semantic version.
    Unknown,
}

/// The kinds of change [`diff`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// The contract `id`.
    IdChanged,
    /// A schema object appeared.
    ObjectAdded,
    /// A schema object is gone.
    ObjectRemoved,
    /// A property appeared.
    PropertyAdded,
    /// A property is gone.
    PropertyRemoved,
    /// A property is gone and another with the same type took its place.
    PropertyRenamed,
    /// The order of the properties kept.
    PropertiesReordered,
    /// `logicalType`, `physicalType` or a numeric `format`.
    TypeChanged,
    /// `required`.
    RequiredChanged,
    /// `unique`.
    UniqueChanged,
    /// The primary key's columns or order.
    PrimaryKeyChanged,
    /// The partition columns or order.
    PartitioningChanged,
    /// `classification`.
    ClassificationChanged,
    /// `physicalName`.
    PhysicalNameChanged,
    /// `minimum`, `maximum` and their exclusive forms.
    RangeChanged,
    /// `minLength`, `maxLength`, `minItems`, `maxItems`, `minProperties`, `maxProperties`.
    LengthChanged,
    /// `pattern` (in `logicalTypeOptions` or a rule's arguments).
    PatternChanged,
    /// `format` of a non-numeric type.
    FormatChanged,
    /// `multipleOf`.
    MultipleOfChanged,
    /// `timezone` or `defaultTimezone`.
    TimezoneChanged,
    /// Another `logicalTypeOptions` key (`uniqueItems`, object `required`, unknown keys).
    OptionChanged,
    /// The valid values (enum) of an `invalidValues` rule.
    ValidValuesChanged,
    /// The values a `missingValues` rule counts as missing.
    MissingValuesChanged,
    /// A quality rule appeared.
    QualityRuleAdded,
    /// A quality rule is gone.
    QualityRuleRemoved,
    /// A quality rule's metric, threshold, unit, severity, query, columns or arguments.
    QualityRuleChanged,
    /// Descriptions, business names, tags, examples and other documentation.
    DocumentationChanged,
    /// SLA properties.
    SlaChanged,
    /// Other top-level fields: team, support, servers, status, ...
    MetadataChanged,
    /// Anything else.
    OtherChanged,
}

impl ChangeKind {
    /// A few words for people, e.g. `column removed`.
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::IdChanged => "contract id changed",
            ChangeKind::ObjectAdded => "object added",
            ChangeKind::ObjectRemoved => "object removed",
            ChangeKind::PropertyAdded => "column added",
            ChangeKind::PropertyRemoved => "column removed",
            ChangeKind::PropertyRenamed => "column renamed?",
            ChangeKind::PropertiesReordered => "columns reordered",
            ChangeKind::TypeChanged => "type changed",
            ChangeKind::RequiredChanged => "required changed",
            ChangeKind::UniqueChanged => "unique changed",
            ChangeKind::PrimaryKeyChanged => "primary key changed",
            ChangeKind::PartitioningChanged => "partitioning changed",
            ChangeKind::ClassificationChanged => "classification changed",
            ChangeKind::PhysicalNameChanged => "physical name changed",
            ChangeKind::RangeChanged => "range changed",
            ChangeKind::LengthChanged => "length changed",
            ChangeKind::PatternChanged => "pattern changed",
            ChangeKind::FormatChanged => "format changed",
            ChangeKind::MultipleOfChanged => "multipleOf changed",
            ChangeKind::TimezoneChanged => "time zone changed",
            ChangeKind::OptionChanged => "option changed",
            ChangeKind::ValidValuesChanged => "valid values changed",
            ChangeKind::MissingValuesChanged => "missing values changed",
            ChangeKind::QualityRuleAdded => "quality rule added",
            ChangeKind::QualityRuleRemoved => "quality rule removed",
            ChangeKind::QualityRuleChanged => "quality rule changed",
            ChangeKind::DocumentationChanged => "documentation",
            ChangeKind::SlaChanged => "SLA changed",
            ChangeKind::MetadataChanged => "metadata changed",
            ChangeKind::OtherChanged => "changed",
        }
    }
}

impl ContractDiff {
    /// The breaking changes.
    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.breaking)
    }
}

/// Compares OLD with NEW: every change, classified, and the verdict on NEW's version.
pub fn diff(old: &Contract, new: &Contract) -> ContractDiff {
    let mut d = Differ {
        old,
        new,
        changes: Vec::new(),
    };
    d.top_level();
    let version = versions(&old.version, &new.version);
    let (verdict, reasons) = judge(&version, &d.changes);
    ContractDiff {
        id: new.id.clone(),
        version,
        changes: d.changes,
        verdict,
        reasons,
    }
}

// ---------------------------------------------------------------------------------------------
// Walking both documents

/// A place in both documents: the dotted path, and the JSON pointers in OLD and NEW (for an
/// item present on one side only, the other pointer is its parent's).
#[derive(Debug, Clone)]
struct At {
    path: String,
    old: String,
    new: String,
}

impl At {
    fn root() -> At {
        At {
            path: String::new(),
            old: String::new(),
            new: String::new(),
        }
    }

    /// A key present (or absent) at the same place on both sides.
    fn key(&self, key: &str) -> At {
        let token = escape_token(key);
        At {
            path: join(&self.path, key),
            old: format!("{}/{token}", self.old),
            new: format!("{}/{token}", self.new),
        }
    }

    /// A list item named `label`, at `old` in OLD's list `list` and `new` in NEW's.
    fn item(&self, list: &str, label: &str, old: Option<usize>, new: Option<usize>) -> At {
        let pointer = |base: &str, index: Option<usize>| match index {
            Some(i) => format!("{base}/{list}/{i}"),
            None => base.to_owned(),
        };
        At {
            path: join(&join(&self.path, list), label),
            old: pointer(&self.old, old),
            new: pointer(&self.new, new),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Absent, or how `Option<Value>` reads in a change.
fn value(v: Option<&Value>) -> Value {
    v.cloned().unwrap_or(Value::Null)
}

struct Differ<'a> {
    old: &'a Contract,
    new: &'a Contract,
    changes: Vec<Change>,
}

/// How a property takes part in an ordered key: (member, position).
type Membership = fn(&Property) -> (bool, i64);

/// Documentation keys: changing them never breaks anyone.
const DOC_KEYS: &[&str] = &[
    "description",
    "businessName",
    "tags",
    "examples",
    "authoritativeDefinitions",
    "customProperties",
    "dataGranularityDescription",
    "transformDescription",
    "transformLogic",
    "transformSourceObjects",
    "criticalDataElement",
    "name",
    "dimension",
    "businessImpact",
];

impl Differ<'_> {
    /// Records a change; `line` is looked up in NEW, or in OLD when only OLD has the value.
    fn push(
        &mut self,
        at: &At,
        kind: ChangeKind,
        breaking: bool,
        old: Value,
        new: Value,
        note: impl Into<String>,
    ) {
        let side = if new.is_null() && !old.is_null() {
            Side::Old
        } else {
            Side::New
        };
        let line = match side {
            Side::Old => self.old.line(&at.old),
            Side::New => self.new.line(&at.new),
        };
        self.changes.push(Change {
            path: at.path.clone(),
            kind,
            breaking,
            old,
            new,
            side,
            line,
            note: note.into(),
        });
    }

    fn raw_old(&self, pointer: &str) -> Option<&Value> {
        self.old.raw.pointer(pointer).filter(|v| !v.is_null())
    }

    fn raw_new(&self, pointer: &str) -> Option<&Value> {
        self.new.raw.pointer(pointer).filter(|v| !v.is_null())
    }

    /// The keys of the mappings at `at` on both sides, OLD's order first, minus `handled`.
    fn other_keys(&self, at: &At, handled: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for map in [self.raw_old(&at.old), self.raw_new(&at.new)]
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
        {
            for key in map.keys() {
                if !handled.contains(&key.as_str()) && !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        keys
    }

    /// Compares the keys of `at` that no specific rule handles: documentation keys as
    /// documentation, the rest as `other`; none of it breaking.
    fn rest(&mut self, at: &At, handled: &[&str], other: ChangeKind) {
        for key in self.other_keys(at, handled) {
            let kind = if DOC_KEYS.contains(&key.as_str()) {
                ChangeKind::DocumentationChanged
            } else {
                other
            };
            self.values(
                &at.key(&key),
                kind,
                "documentation and metadata break nobody",
            );
        }
    }

    /// Compares two raw values at `at`, down through mappings; lists and scalars as a whole.
    fn values(&mut self, at: &At, kind: ChangeKind, note: &str) {
        let (o, n) = (self.raw_old(&at.old), self.raw_new(&at.new));
        if o == n {
            return;
        }
        if let (Some(Value::Object(_)), Some(Value::Object(_))) = (o, n) {
            for key in self.other_keys(at, &[]) {
                self.values(&at.key(&key), kind, note);
            }
            return;
        }
        self.push(at, kind, false, value(o), value(n), note);
    }

    fn top_level(&mut self) {
        let root = At::root();
        if self.old.id != self.new.id {
            self.push(
                &root.key("id"),
                ChangeKind::IdChanged,
                true,
                Value::from(self.old.id.clone()),
                Value::from(self.new.id.clone()),
                "consumers find the contract by its id",
            );
        }
        for key in self.other_keys(&root, &["id", "version"]) {
            let at = root.key(&key);
            match key.as_str() {
                "schema" => self.objects(),
                "slaProperties" => self.sla(&at),
                "description"
                | "tags"
                | "name"
                | "authoritativeDefinitions"
                | "customProperties" => self.values(
                    &at,
                    ChangeKind::DocumentationChanged,
                    "documentation breaks nobody",
                ),
                _ => self.values(
                    &at,
                    ChangeKind::MetadataChanged,
                    "metadata does not change the data",
                ),
            }
        }
    }

    /// SLA properties, matched by `property` (and `element`).
    fn sla(&mut self, at: &At) {
        let key = |v: &Value| {
            format!(
                "{}{}",
                v.get("property")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                v.get("element")
                    .and_then(Value::as_str)
                    .map(|e| format!("({e})"))
                    .unwrap_or_default()
            )
        };
        let list = |v: Option<&Value>| -> Vec<Value> {
            v.and_then(Value::as_array).cloned().unwrap_or_default()
        };
        let (old, new) = (list(self.raw_old(&at.old)), list(self.raw_new(&at.new)));
        let note = "Tessera does not enforce SLA properties yet";
        let root = At::root();
        for (i, o) in old.iter().enumerate() {
            let j = new.iter().position(|n| key(n) == key(o));
            let here = root.item("slaProperties", &key(o), Some(i), j);
            match j {
                Some(_) => self.values(&here, ChangeKind::SlaChanged, note),
                None => self.push(
                    &here,
                    ChangeKind::SlaChanged,
                    false,
                    o.clone(),
                    Value::Null,
                    note,
                ),
            }
        }
        for (j, n) in new.iter().enumerate() {
            if !old.iter().any(|o| key(o) == key(n)) {
                let here = root.item("slaProperties", &key(n), None, Some(j));
                self.push(
                    &here,
                    ChangeKind::SlaChanged,
                    false,
                    Value::Null,
                    n.clone(),
                    note,
                );
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Schema objects

    fn objects(&mut self) {
        let root = At::root();
        let (old, new) = (&self.old.schema, &self.new.schema);
        for (i, o) in old.iter().enumerate() {
            match new.iter().position(|n| n.name == o.name) {
                Some(j) => {
                    let here = root.item("schema", &o.name, Some(i), Some(j));
                    self.object(&here, o, &new[j]);
                }
                None => {
                    let here = root.item("schema", &o.name, Some(i), None);
                    self.push(
                        &here,
                        ChangeKind::ObjectRemoved,
                        true,
                        Value::from(o.name.clone()),
                        Value::Null,
                        "consumers of the object lose it",
                    );
                }
            }
        }
        for (j, n) in new.iter().enumerate() {
            if !old.iter().any(|o| o.name == n.name) {
                let here = root.item("schema", &n.name, None, Some(j));
                self.push(
                    &here,
                    ChangeKind::ObjectAdded,
                    false,
                    Value::Null,
                    Value::from(n.name.clone()),
                    "a new object breaks nobody",
                );
            }
        }
    }

    fn object(&mut self, at: &At, o: &SchemaObject, n: &SchemaObject) {
        if (o.physical_name.is_some() || n.physical_name.is_some())
            && o.table_name() != n.table_name()
        {
            self.push(
                &at.key("physicalName"),
                ChangeKind::PhysicalNameChanged,
                true,
                Value::from(o.table_name()),
                Value::from(n.table_name()),
                "readers address the data by its physical name",
            );
        }
        self.rest(
            at,
            &["name", "physicalName", "properties", "quality"],
            ChangeKind::OtherChanged,
        );
        self.properties(at, &o.properties, &n.properties);
        self.keys(at, o, n);
        self.quality(at, &o.quality, &n.quality);
    }

    /// Primary key and partition columns, in order.
    fn keys(&mut self, at: &At, o: &SchemaObject, n: &SchemaObject) {
        self.ordered_key(
            at,
            "primaryKey",
            (o.primary_key(), n.primary_key()),
            (o, n, |p| (p.primary_key, p.primary_key_position)),
            ChangeKind::PrimaryKeyChanged,
            "consumers join, deduplicate and merge on the key",
        );
        self.ordered_key(
            at,
            "partitionKey",
            (o.partition_columns(), n.partition_columns()),
            (o, n, |p| (p.partitioned, p.partition_key_position)),
            ChangeKind::PartitioningChanged,
            "the table's layout and catalog partition keys change",
        );
    }

    /// An ordered key (`primaryKey` or `partitionKey`): its columns in OLD and NEW, and how a
    /// property takes part in it (flag, position).
    fn ordered_key(
        &mut self,
        at: &At,
        key: &str,
        (old, new): (Vec<&Property>, Vec<&Property>),
        (o, n, member): (&SchemaObject, &SchemaObject, Membership),
        kind: ChangeKind,
        note: &str,
    ) {
        let names = |ps: &[&Property]| -> Vec<Value> {
            ps.iter().map(|p| Value::from(p.name.clone())).collect()
        };
        let (old, new) = (names(&old), names(&new));
        if old == new {
            return;
        }
        // The line: the first property of NEW whose part in the key changed.
        let flag = if key == "primaryKey" {
            "primaryKey"
        } else {
            "partitioned"
        };
        let moved = n
            .properties
            .iter()
            .position(|p| member(p).0 && o.property(&p.name).map(member) != Some(member(p)));
        let mut here = at.key(key);
        if let Some(k) = moved {
            here.new = format!("{}/properties/{k}/{flag}", at.new);
        }
        self.push(
            &here,
            kind,
            true,
            Value::Array(old),
            Value::Array(new),
            note,
        );
    }

    // -----------------------------------------------------------------------------------------
    // Properties

    /// The properties of `at` (an object or an object property), matched by name.
    fn properties(&mut self, at: &At, old: &[Property], new: &[Property]) {
        let renamed: Vec<(usize, usize)> = old
            .iter()
            .enumerate()
            .filter(|(_, o)| !new.iter().any(|n| n.name == o.name))
            .filter_map(|(i, o)| {
                let n = new.get(i)?;
                let added = !old.iter().any(|p| p.name == n.name);
                (added && same_type(o, n)).then_some((i, i))
            })
            .collect();
        for (i, o) in old.iter().enumerate() {
            if let Some(j) = new.iter().position(|n| n.name == o.name) {
                let here = at.item("properties", &o.name, Some(i), Some(j));
                self.property(&here, o, &new[j]);
            } else if let Some(&(_, j)) = renamed.iter().find(|(r, _)| *r == i) {
                let n = &new[j];
                let mut here = at.item("properties", &o.name, Some(i), Some(j));
                here.new.push_str("/name");
                self.push(
                    &here,
                    ChangeKind::PropertyRenamed,
                    true,
                    Value::from(o.name.clone()),
                    Value::from(n.name.clone()),
                    format!(
                        "probably renamed (same type and position): consumers of `{}` break",
                        o.name
                    ),
                );
                let here = at.item("properties", &n.name, Some(i), Some(j));
                self.property(&here, o, n);
            } else {
                let here = at.item("properties", &o.name, Some(i), None);
                self.push(
                    &here,
                    ChangeKind::PropertyRemoved,
                    true,
                    Value::from(o.name.clone()),
                    Value::Null,
                    format!("consumers that read `{}` break", o.name),
                );
            }
        }
        for (j, n) in new.iter().enumerate() {
            if old.iter().any(|o| o.name == n.name) || renamed.iter().any(|(_, r)| *r == j) {
                continue;
            }
            let here = at.item("properties", &n.name, None, Some(j));
            let (breaking, note) = if n.required {
                (
                    true,
                    "a new required column: rows published under OLD have no value for it, and producers must now send it",
                )
            } else {
                (false, "a new optional column breaks nobody")
            };
            self.push(
                &here,
                ChangeKind::PropertyAdded,
                breaking,
                Value::Null,
                Value::from(n.name.clone()),
                note,
            );
        }
        let common_old: Vec<Value> = old
            .iter()
            .filter(|o| new.iter().any(|n| n.name == o.name))
            .map(|o| Value::from(o.name.clone()))
            .collect();
        let common_new: Vec<Value> = new
            .iter()
            .filter(|n| old.iter().any(|o| o.name == n.name))
            .map(|n| Value::from(n.name.clone()))
            .collect();
        if common_old != common_new {
            self.push(
                &at.key("properties"),
                ChangeKind::PropertiesReordered,
                false,
                Value::Array(common_old),
                Value::Array(common_new),
                "columns are read by name",
            );
        }
    }

    fn property(&mut self, at: &At, o: &Property, n: &Property) {
        let (ol, nl) = (o.logical(), n.logical());
        let nested = ol == nl
            && match ol {
                LogicalType::Object => !o.properties.is_empty() && !n.properties.is_empty(),
                LogicalType::Array => o.items.is_some() && n.items.is_some(),
                _ => false,
            };
        if !nested {
            self.types(at, o, n);
        }
        self.flag(
            at,
            "required",
            o.required,
            n.required,
            ChangeKind::RequiredChanged,
            "nulls are now refused: rows published under OLD may have some, and producers that send them are quarantined",
            "rows published under NEW may have nulls; consumers that assumed values should check",
        );
        self.flag(
            at,
            "unique",
            o.unique,
            n.unique,
            ChangeKind::UniqueChanged,
            "duplicates are now refused: rows published under OLD may have some",
            "rows published under NEW may repeat values; consumers that joined on it should check",
        );
        if o.classification != n.classification {
            let pii = |c: &Option<String>| {
                c.as_deref()
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("pii"))
            };
            let (breaking, note) = match (pii(&o.classification), pii(&n.classification)) {
                (false, true) => (
                    true,
                    "personal data is published hashed: consumers see other values",
                ),
                (true, false) => (
                    false,
                    "no longer personal data: values may be published in clear (check the recipe's masks)",
                ),
                _ => (false, "access policies may change; the values do not"),
            };
            self.push(
                &at.key("classification"),
                ChangeKind::ClassificationChanged,
                breaking,
                value(self.raw_old(&at.key("classification").old)),
                value(self.raw_new(&at.key("classification").new)),
                note,
            );
        }
        if (o.physical_name.is_some() || n.physical_name.is_some())
            && o.physical_name.as_deref().unwrap_or(&o.name)
                != n.physical_name.as_deref().unwrap_or(&n.name)
        {
            self.push(
                &at.key("physicalName"),
                ChangeKind::PhysicalNameChanged,
                true,
                Value::from(o.physical_name.as_deref().unwrap_or(&o.name)),
                Value::from(n.physical_name.as_deref().unwrap_or(&n.name)),
                "readers address the column by its physical name",
            );
        }
        self.options(at, o, n);
        self.quality(at, &o.quality, &n.quality);
        if nested {
            match (&o.items, &n.items) {
                (Some(oi), Some(ni)) => {
                    let here = at.key("items");
                    self.property(&here, oi, ni);
                }
                _ => self.properties(at, &o.properties, &n.properties),
            }
        }
        self.rest(
            at,
            &[
                "name",
                "logicalType",
                "physicalType",
                "logicalTypeOptions",
                "required",
                "unique",
                "primaryKey",
                "primaryKeyPosition",
                "partitioned",
                "partitionKeyPosition",
                "classification",
                "physicalName",
                "quality",
                "items",
                "properties",
            ],
            ChangeKind::OtherChanged,
        );
    }

    /// A boolean that is a constraint when true.
    #[allow(clippy::too_many_arguments)]
    fn flag(
        &mut self,
        at: &At,
        key: &str,
        old: bool,
        new: bool,
        kind: ChangeKind,
        tightened: &str,
        relaxed: &str,
    ) {
        if old != new {
            let note = if new { tightened } else { relaxed };
            self.push(
                &at.key(key),
                kind,
                new,
                Value::Bool(old),
                Value::Bool(new),
                note,
            );
        }
    }

    /// The type of a leaf property (or of a nested one whose shape changed).
    fn types(&mut self, at: &At, o: &Property, n: &Property) {
        let (ol, nl) = (o.logical(), n.logical());
        let numeric = |l: LogicalType| matches!(l, LogicalType::Integer | LogicalType::Number);
        let (op, np) = (physical(o), physical(n));
        let format_differs = numeric(ol) && numeric(nl) && o.options.format != n.options.format;
        if ol == nl && op == np && !format_differs {
            return;
        }
        let key = if ol != nl {
            at.key("logicalType")
        } else if op != np {
            at.key("physicalType")
        } else {
            at.key("logicalTypeOptions").key("format")
        };
        let (oa, na) = (o.resolve("", "").ok(), n.resolve("", "").ok());
        let (breaking, note) = match (&oa, &na) {
            (Some(a), Some(b)) if ol == nl && a == b => {
                match (char_length(&op), char_length(&np)) {
                    (Some(x), Some(y)) if y < x => {
                        (true, format!("at most {y} characters, not {x}"))
                    }
                    (None, Some(y)) => (true, format!("now at most {y} characters")),
                    _ => (false, format!("the same values ({})", arrow_name(a))),
                }
            }
            (Some(a), Some(b)) => {
                let logical_ok =
                    ol == nl || (ol, nl) == (LogicalType::Integer, LogicalType::Number);
                if logical_ok && widens(a, b) {
                    (
                        false,
                        format!(
                            "widened: every {} value fits in {}",
                            arrow_name(a),
                            arrow_name(b)
                        ),
                    )
                } else if widens(b, a) {
                    (
                        true,
                        format!(
                            "narrowed: not every {} value fits in {}",
                            arrow_name(a),
                            arrow_name(b)
                        ),
                    )
                } else {
                    (
                        true,
                        format!(
                            "incompatible: {} values are not {}",
                            arrow_name(a),
                            arrow_name(b)
                        ),
                    )
                }
            }
            _ => (true, "a type Tessera cannot map changed".to_owned()),
        };
        self.push(
            &key,
            ChangeKind::TypeChanged,
            breaking,
            Value::from(type_text(o)),
            Value::from(type_text(n)),
            note,
        );
    }

    // -----------------------------------------------------------------------------------------
    // logicalTypeOptions

    fn options(&mut self, at: &At, o: &Property, n: &Property) {
        let at = at.key("logicalTypeOptions");
        let empty = Map::new();
        let om = self
            .raw_old(&at.old)
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone();
        let nm = self
            .raw_new(&at.new)
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone();
        if om == nm {
            return;
        }
        self.bound(&at, &om, &nm, true);
        self.bound(&at, &om, &nm, false);
        for (key, min) in [
            ("minLength", true),
            ("maxLength", false),
            ("minItems", true),
            ("maxItems", false),
            ("minProperties", true),
            ("maxProperties", false),
        ] {
            let (a, b) = (
                om.get(key).and_then(Value::as_f64),
                nm.get(key).and_then(Value::as_f64),
            );
            let tightened = match (a, b, min) {
                (x, y, _) if x == y => continue,
                (x, Some(y), true) => y > x.unwrap_or(0.0),
                (None, Some(_), false) => true,
                (Some(x), Some(y), false) => y < x,
                (_, None, _) => false,
            };
            let note = if tightened {
                "tightened: values published under OLD may not fit"
            } else {
                "relaxed: rows published under NEW may use the room"
            };
            self.push(
                &at.key(key),
                ChangeKind::LengthChanged,
                tightened,
                value(om.get(key)),
                value(nm.get(key)),
                note,
            );
        }
        let numeric =
            |p: &Property| matches!(p.logical(), LogicalType::Integer | LogicalType::Number);
        let format_is_type = numeric(o) && numeric(n);
        for (key, kind) in [
            ("pattern", ChangeKind::PatternChanged),
            ("format", ChangeKind::FormatChanged),
        ] {
            if key == "format" && format_is_type {
                continue;
            }
            self.constraint(&at.key(key), om.get(key), nm.get(key), kind);
        }
        let (a, b) = (
            om.get("multipleOf").and_then(Value::as_f64),
            nm.get("multipleOf").and_then(Value::as_f64),
        );
        if a != b {
            let tightened = match (a, b) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(x), Some(y)) => {
                    let ratio = x / y;
                    (ratio - ratio.round()).abs() > 1e-9 || ratio.round() < 1.0
                }
            };
            let note = if tightened {
                "values published under OLD may not be multiples of the new factor"
            } else {
                "every multiple of OLD's factor is a multiple of NEW's"
            };
            self.push(
                &at.key("multipleOf"),
                ChangeKind::MultipleOfChanged,
                tightened,
                value(om.get("multipleOf")),
                value(nm.get("multipleOf")),
                note,
            );
        }
        let (a, b) = (om.get("uniqueItems"), nm.get("uniqueItems"));
        let truthy = |v: Option<&Value>| v.and_then(Value::as_bool).unwrap_or(false);
        if truthy(a) != truthy(b) {
            self.push(
                &at.key("uniqueItems"),
                ChangeKind::OptionChanged,
                truthy(b),
                value(a),
                value(b),
                if truthy(b) {
                    "arrays with repeated items are now refused"
                } else {
                    "arrays may now repeat items"
                },
            );
        }
        let names = |v: Option<&Value>| -> BTreeSet<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (a, b) = (names(om.get("required")), names(nm.get("required")));
        if a != b {
            let added: Vec<&String> = b.difference(&a).collect();
            self.push(
                &at.key("required"),
                ChangeKind::OptionChanged,
                !added.is_empty(),
                value(om.get("required")),
                value(nm.get("required")),
                if added.is_empty() {
                    "fewer fields are required".to_owned()
                } else {
                    format!("newly required fields: {}", list(added))
                },
            );
        }
        for key in ["timezone", "defaultTimezone"] {
            if om.get(key) != nm.get(key) {
                self.push(
                    &at.key(key),
                    ChangeKind::TimezoneChanged,
                    true,
                    value(om.get(key)),
                    value(nm.get(key)),
                    "the same raw timestamp may publish another instant",
                );
            }
        }
        const HANDLED: &[&str] = &[
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "pattern",
            "format",
            "multipleOf",
            "uniqueItems",
            "required",
            "timezone",
            "defaultTimezone",
        ];
        let mut seen = BTreeSet::new();
        for key in om.keys().chain(nm.keys()) {
            if HANDLED.contains(&key.as_str()) || !seen.insert(key) {
                continue;
            }
            if om.get(key) != nm.get(key) {
                self.push(
                    &at.key(key),
                    ChangeKind::OptionChanged,
                    true,
                    value(om.get(key)),
                    value(nm.get(key)),
                    "an option Tessera does not know: treated as breaking",
                );
            }
        }
    }

    /// A constraint that cannot be compared (a pattern, a format): adding or changing it
    /// tightens, removing it relaxes.
    fn constraint(&mut self, at: &At, old: Option<&Value>, new: Option<&Value>, kind: ChangeKind) {
        if old == new {
            return;
        }
        let (breaking, note) = match new {
            None => (false, "removed: rows published under NEW may not follow it"),
            Some(_) if old.is_none() => {
                (true, "added: values published under OLD may not follow it")
            }
            Some(_) => (
                true,
                "changed: values published under OLD may not follow the new one",
            ),
        };
        self.push(at, kind, breaking, value(old), value(new), note);
    }

    /// The lower (`min`) or upper bound.
    fn bound(&mut self, at: &At, om: &Map<String, Value>, nm: &Map<String, Value>, min: bool) {
        let (a, b) = (Bound::of(om, min), Bound::of(nm, min));
        let tighter = match (&a, &b) {
            (None, None) => return,
            (None, Some(_)) => Some(true),
            (Some(_), None) => Some(false),
            (Some(x), Some(y)) => {
                if x.value == y.value && x.strict == y.strict {
                    return;
                }
                match compare_values(&y.value, &x.value) {
                    Some(Ordering::Equal) if x.strict == y.strict => return,
                    Some(Ordering::Equal) => Some(y.strict),
                    Some(ordering) => Some((ordering == Ordering::Greater) == min),
                    None => None,
                }
            }
        };
        let key = b.as_ref().or(a.as_ref()).map_or("minimum", |x| x.key);
        let same_key = match (&a, &b) {
            (Some(x), Some(y)) => x.key == y.key && !x.flag && !y.flag,
            (Some(x), None) | (None, Some(x)) => !x.flag,
            (None, None) => true,
        };
        let show = |x: &Option<Bound>| match x {
            None => Value::Null,
            Some(x) if same_key => x.value.clone(),
            Some(x) => Value::from(x.text(min)),
        };
        let (breaking, note) = match tighter {
            Some(true) => (
                true,
                "tightened: values published under OLD may be out of range",
            ),
            Some(false) => (
                false,
                "relaxed: rows published under NEW may use the wider range",
            ),
            None => (true, "bounds Tessera cannot compare: treated as breaking"),
        };
        self.push(
            &at.key(key),
            ChangeKind::RangeChanged,
            breaking,
            show(&a),
            show(&b),
            note,
        );
    }

    // -----------------------------------------------------------------------------------------
    // Quality rules

    /// The quality rules of `at` (an object or a property), matched by name, then by content,
    /// then by kind and metric.
    fn quality(&mut self, at: &At, old: &[QualityRule], new: &[QualityRule]) {
        let raw = |c: &Contract, base: &str, i: usize| {
            c.raw
                .pointer(&format!("{base}/quality/{i}"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let old_raw: Vec<Value> = (0..old.len()).map(|i| raw(self.old, &at.old, i)).collect();
        let new_raw: Vec<Value> = (0..new.len()).map(|j| raw(self.new, &at.new, j)).collect();
        let mut pair: Vec<Option<usize>> = vec![None; old.len()];
        let mut taken = vec![false; new.len()];
        let passes: [&dyn Fn(usize, usize) -> bool; 3] = [
            &|i, j| old[i].name.is_some() && old[i].name == new[j].name,
            &|i, j| without_docs(&old_raw[i]) == without_docs(&new_raw[j]),
            &|i, j| {
                (old[i].name.is_none() || new[j].name.is_none())
                    && family(&old[i]) == family(&new[j])
            },
        ];
        for pass in passes {
            for (i, slot) in pair.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                if let Some(j) = (0..new.len()).find(|&j| !taken[j] && pass(i, j)) {
                    *slot = Some(j);
                    taken[j] = true;
                }
            }
        }
        let label = |r: &QualityRule, index: usize| match &r.name {
            Some(name) => name.clone(),
            None => format!("[{index}]"),
        };
        let item = |label: String, i: Option<usize>, j: Option<usize>| {
            let mut here = at.item("quality", "", i, j);
            // `quality.name` or `quality[0]`
            here.path = if label.starts_with('[') {
                format!("{}{label}", join(&at.path, "quality"))
            } else {
                join(&join(&at.path, "quality"), &label)
            };
            here
        };
        for (i, o) in old.iter().enumerate() {
            match pair[i] {
                Some(j) => {
                    let here = item(label(&new[j], j), Some(i), Some(j));
                    self.rule(&here, o, &new[j]);
                }
                None => {
                    let here = item(label(o, i), Some(i), None);
                    self.push(
                        &here,
                        ChangeKind::QualityRuleRemoved,
                        false,
                        old_raw[i].clone(),
                        Value::Null,
                        if enforcing(o) {
                            "relaxed: consumers lose the guarantee this rule gave"
                        } else {
                            "the rule did not fail checks"
                        },
                    );
                }
            }
        }
        for (j, n) in new.iter().enumerate() {
            if taken[j] {
                continue;
            }
            let here = item(label(n, j), None, Some(j));
            let breaking = enforcing(n);
            self.push(
                &here,
                ChangeKind::QualityRuleAdded,
                breaking,
                Value::Null,
                new_raw[j].clone(),
                if breaking {
                    "a new check: rows published under OLD may fail it, and producers' data may be quarantined"
                } else {
                    "the rule does not fail checks"
                },
            );
        }
    }

    fn rule(&mut self, at: &At, o: &QualityRule, n: &QualityRule) {
        let strict = enforcing(n);
        let matters = |tightened: bool| tightened && strict;
        if family(o) != family(n) {
            self.push(
                at,
                ChangeKind::QualityRuleChanged,
                strict,
                Value::from(family(o)),
                Value::from(family(n)),
                "another metric or kind: a different rule",
            );
            return;
        }
        if o.severity != n.severity {
            let raised = strict && !enforcing(o);
            self.push(
                &at.key("severity"),
                ChangeKind::QualityRuleChanged,
                raised,
                Value::from(o.severity.as_str()),
                Value::from(n.severity.as_str()),
                if raised {
                    "a failure now fails the check"
                } else {
                    "failures no longer fail the check"
                },
            );
        }
        if o.unit != n.unit {
            self.push(
                &at.key("unit"),
                ChangeKind::QualityRuleChanged,
                strict,
                Value::from(o.unit.as_str()),
                Value::from(n.unit.as_str()),
                "rows and percentages cannot be compared: treated as breaking",
            );
        } else if o.operator != n.operator {
            let contained = match (o.operator, n.operator) {
                (Some(a), Some(b)) => accepts_all(a, b, o.unit == Unit::Rows),
                (_, None) => true,
                (None, Some(_)) => false,
            };
            let key = operator_key(self.raw_new(&at.new))
                .or_else(|| operator_key(self.raw_old(&at.old)))
                .unwrap_or("mustBe");
            let show =
                |op: Option<Operator>| op.map_or(Value::Null, |op| Value::from(op.describe()));
            self.push(
                &at.key(key),
                ChangeKind::QualityRuleChanged,
                matters(!contained),
                show(o.operator),
                show(n.operator),
                if !contained {
                    "stricter: measurements OLD accepted now fail"
                } else {
                    "relaxed: every measurement OLD accepted still passes"
                },
            );
        }
        match (&o.kind, &n.kind) {
            (RuleKind::Library { arguments: a, .. }, RuleKind::Library { arguments: b, .. }) => {
                self.arguments(at, a, b, strict)
            }
            (RuleKind::Sql { query: a }, RuleKind::Sql { query: b }) if a != b => {
                self.push(
                    &at.key("query"),
                    ChangeKind::QualityRuleChanged,
                    strict,
                    Value::from(a.clone()),
                    Value::from(b.clone()),
                    "another query: Tessera cannot compare queries, treated as breaking",
                );
            }
            _ => {}
        }
        for key in ["engine", "implementation"] {
            let (a, b) = (
                self.raw_old(&at.key(key).old).cloned(),
                self.raw_new(&at.key(key).new).cloned(),
            );
            if a != b {
                self.push(
                    &at.key(key),
                    ChangeKind::QualityRuleChanged,
                    strict,
                    a.unwrap_or(Value::Null),
                    b.unwrap_or(Value::Null),
                    "a custom check changed: Tessera cannot compare it, treated as breaking",
                );
            }
        }
        let mut handled = vec![
            "type",
            "metric",
            "rule",
            "arguments",
            "validValues",
            "missingValues",
            "unit",
            "severity",
            "query",
            "engine",
            "implementation",
        ];
        handled.extend(OPERATOR_KEYS);
        self.rest(at, &handled, ChangeKind::OtherChanged);
    }

    /// Where a rule's argument is: under `arguments`, or next to the metric as ODCS 3.0 put
    /// `validValues` and `missingValues`.
    fn argument_at(&self, at: &At, key: &str) -> At {
        let nested = at.key("arguments").key(key);
        let top = at.key(key);
        let present = |c: &Contract, p: &str| c.raw.pointer(p).is_some();
        let mut here = nested.clone();
        if !present(self.new, &nested.new) && present(self.new, &top.new) {
            here.new = top.new;
            here.path = top.path;
        }
        if !present(self.old, &nested.old) && present(self.old, &top.old) {
            here.old = top.old;
        }
        here
    }

    /// The arguments of two library rules with the same metric.
    fn arguments(&mut self, at: &At, a: &Map<String, Value>, b: &Map<String, Value>, strict: bool) {
        let mut keys: Vec<&String> = a.keys().collect();
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
        for key in keys {
            let (x, y) = (a.get(key), b.get(key));
            if x == y {
                continue;
            }
            let here = self.argument_at(at, key);
            match key.as_str() {
                "validValues" => {
                    let (removed, added) = set_changes(x, y);
                    let (tightened, note) = match (x, y) {
                        (None, Some(_)) => (true, "a list of valid values now applies".to_owned()),
                        (Some(_), None) => (false, "any value is now valid".to_owned()),
                        _ if !removed.is_empty() => (
                            true,
                            format!(
                                "removed {}: rows published under OLD may hold them",
                                list(&removed)
                            ),
                        ),
                        _ => (
                            false,
                            format!("added {}: consumers may see new values", list(&added)),
                        ),
                    };
                    self.push(
                        &here,
                        ChangeKind::ValidValuesChanged,
                        tightened && strict,
                        value(x),
                        value(y),
                        note,
                    );
                }
                "missingValues" => {
                    let default = Value::Array(vec![Value::Null, Value::from("")]);
                    let (removed, added) =
                        set_changes(Some(x.unwrap_or(&default)), Some(y.unwrap_or(&default)));
                    let tightened = !added.is_empty();
                    let note = if tightened {
                        format!("{} now count as missing", list(&added))
                    } else {
                        format!("{} no longer count as missing", list(&removed))
                    };
                    self.push(
                        &here,
                        ChangeKind::MissingValuesChanged,
                        tightened && strict,
                        value(x),
                        value(y),
                        note,
                    );
                }
                "pattern" => self.constraint(&here, x, y, ChangeKind::PatternChanged),
                "properties" => {
                    let (removed, added) = set_changes(x, y);
                    let (tightened, note) = match (removed.is_empty(), added.is_empty()) {
                        (false, true) => (
                            true,
                            "unique over fewer columns: rows published under OLD may repeat",
                        ),
                        (true, false) => (false, "unique over more columns: a weaker promise"),
                        _ => (true, "unique over other columns"),
                    };
                    self.push(
                        &here,
                        ChangeKind::QualityRuleChanged,
                        tightened && strict,
                        value(x),
                        value(y),
                        note,
                    );
                }
                _ => self.push(
                    &here,
                    ChangeKind::QualityRuleChanged,
                    strict,
                    value(x),
                    value(y),
                    "an argument Tessera does not know: treated as breaking",
                ),
            }
        }
    }
}

/// `<=` or the set-based subset test on what a rule accepts: whether every measurement `old`
/// accepts, `new` accepts too. Measurements are at least 0; counts of rows are whole numbers.
fn accepts_all(old: Operator, new: Operator, whole: bool) -> bool {
    let a = accepted(old, whole);
    let b = accepted(new, whole);
    a.iter().all(|x| b.iter().any(|y| y.contains(x)))
}

/// An interval of measurements; `lo_in`/`hi_in` say whether the ends belong to it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Interval {
    lo: f64,
    lo_in: bool,
    hi: f64,
    hi_in: bool,
}

impl Interval {
    fn new(lo: f64, lo_in: bool, hi: f64, hi_in: bool) -> Interval {
        Interval {
            lo,
            lo_in,
            hi,
            hi_in,
        }
    }

    fn is_empty(&self) -> bool {
        self.lo > self.hi || (self.lo == self.hi && !(self.lo_in && self.hi_in))
    }

    fn contains(&self, other: &Interval) -> bool {
        let lo = self.lo < other.lo || (self.lo == other.lo && (self.lo_in || !other.lo_in));
        let hi = other.hi < self.hi || (other.hi == self.hi && (self.hi_in || !other.hi_in));
        lo && hi
    }

    /// The whole numbers in the interval, as a closed interval.
    fn whole(self) -> Interval {
        let lo = if self.lo.fract() == 0.0 && !self.lo_in {
            self.lo + 1.0
        } else {
            self.lo.ceil()
        };
        let hi = if self.hi.fract() == 0.0 && !self.hi_in {
            self.hi - 1.0
        } else {
            self.hi.floor()
        };
        Interval::new(lo, true, hi, true)
    }
}

/// The measurements an operator accepts, within `[0, ∞)`, as disjoint intervals.
fn accepted(op: Operator, whole: bool) -> Vec<Interval> {
    let inf = f64::INFINITY;
    let raw = match op {
        Operator::Equal(v) => vec![Interval::new(v, true, v, true)],
        Operator::NotEqual(v) => vec![
            Interval::new(-inf, false, v, false),
            Interval::new(v, false, inf, false),
        ],
        Operator::GreaterThan(v) => vec![Interval::new(v, false, inf, false)],
        Operator::GreaterOrEqual(v) => vec![Interval::new(v, true, inf, false)],
        Operator::LessThan(v) => vec![Interval::new(-inf, false, v, false)],
        Operator::LessOrEqual(v) => vec![Interval::new(-inf, false, v, true)],
        Operator::Between(lo, hi) => vec![Interval::new(lo, true, hi, true)],
        Operator::NotBetween(lo, hi) => vec![
            Interval::new(-inf, false, lo, false),
            Interval::new(hi, false, inf, false),
        ],
    };
    let mut out: Vec<Interval> = Vec::new();
    for mut x in raw {
        // Clip to [0, ∞): a lower end below 0 becomes 0, included.
        if x.lo < 0.0 {
            x.lo = 0.0;
            x.lo_in = true;
        }
        if whole {
            x = x.whole();
        }
        if x.is_empty() {
            continue;
        }
        // Whole numbers: neighbouring intervals ([0, 1] and [2, ∞)) are one.
        match out.last_mut() {
            Some(last) if whole && last.hi + 1.0 >= x.lo => last.hi = last.hi.max(x.hi),
            _ => out.push(x),
        }
    }
    out
}

const OPERATOR_KEYS: [&str; 10] = [
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeGreaterThanOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeLessThanOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
];

/// The operator key a raw rule uses.
fn operator_key(rule: Option<&Value>) -> Option<&'static str> {
    let map = rule?.as_object()?;
    OPERATOR_KEYS.into_iter().find(|k| map.contains_key(*k))
}

/// Whether a rule can fail a check run: executable, severity `error`.
fn enforcing(rule: &QualityRule) -> bool {
    !matches!(rule.kind, RuleKind::Text) && rule.severity == Severity::Error
}

/// What a rule measures: `library:<metric>`, `sql`, `text`, `custom`.
fn family(rule: &QualityRule) -> String {
    match &rule.kind {
        RuleKind::Library { metric, .. } => format!("library:{}", metric.as_str()),
        RuleKind::Sql { .. } => "sql".into(),
        RuleKind::Text => "text".into(),
        RuleKind::Custom { .. } => "custom".into(),
    }
}

/// A raw rule without the keys that only document it.
fn without_docs(rule: &Value) -> Value {
    match rule {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !DOC_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Values of list `old` missing from `new`, and values of `new` missing from `old`.
fn set_changes(old: Option<&Value>, new: Option<&Value>) -> (Vec<Value>, Vec<Value>) {
    let items = |v: Option<&Value>| -> Vec<Value> {
        v.and_then(Value::as_array).cloned().unwrap_or_default()
    };
    let (a, b) = (items(old), items(new));
    let removed = a.iter().filter(|x| !b.contains(x)).cloned().collect();
    let added = b.iter().filter(|x| !a.contains(x)).cloned().collect();
    (removed, added)
}

/// `a, b, c` for values or names.
fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Types

/// The physical type, trimmed and lower case, for comparison.
fn physical(p: &Property) -> String {
    p.physical_type
        .as_deref()
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether a removed and an added property look like one property renamed.
fn same_type(o: &Property, n: &Property) -> bool {
    o.logical() == n.logical() && physical(o) == physical(n) && o.options.format == n.options.format
}

/// `number decimal(12,2)`, `integer format i32`, `string`.
fn type_text(p: &Property) -> String {
    let mut text = match p.logical_type {
        Some(l) => logical_name(l).to_owned(),
        None => logical_name(p.logical()).to_owned(),
    };
    if let Some(physical) = &p.physical_type {
        text.push(' ');
        text.push_str(physical.trim());
    }
    if matches!(p.logical(), LogicalType::Integer | LogicalType::Number)
        && let Some(format) = &p.options.format
    {
        text.push_str(" format ");
        text.push_str(format.trim());
    }
    text
}

fn logical_name(l: LogicalType) -> &'static str {
    match l {
        LogicalType::String => "string",
        LogicalType::Date => "date",
        LogicalType::Timestamp => "timestamp",
        LogicalType::Time => "time",
        LogicalType::Number => "number",
        LogicalType::Integer => "integer",
        LogicalType::Object => "object",
        LogicalType::Array => "array",
        LogicalType::Boolean => "boolean",
    }
}

/// Short Arrow type names for notes.
fn arrow_name(t: &DataType) -> String {
    match t {
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::List(_) => "list".into(),
        DataType::Struct(_) => "struct".into(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// Physical types whose parenthesised number is a length in characters.
fn char_length_applies(physical: &str) -> bool {
    let base = physical.split(['(', ' ']).next().unwrap_or_default();
    matches!(
        base,
        "varchar"
            | "char"
            | "nvarchar"
            | "nchar"
            | "character"
            | "varchar2"
            | "nvarchar2"
            | "string"
            | "text"
    )
}

/// The length of `varchar(20)` and the like.
fn char_length(physical: &str) -> Option<u64> {
    if !char_length_applies(physical) {
        return None;
    }
    let inner = physical.split_once('(')?.1.split_once(')')?.0;
    inner.trim().parse().ok()
}

/// Whether every value of Arrow type `old` is exactly a value of `new`.
fn widens(old: &DataType, new: &DataType) -> bool {
    use DataType::*;
    if old == new {
        return true;
    }
    // (signed, bits) of integer types.
    let int = |t: &DataType| match t {
        Int8 => Some((true, 8)),
        Int16 => Some((true, 16)),
        Int32 => Some((true, 32)),
        Int64 => Some((true, 64)),
        UInt8 => Some((false, 8)),
        UInt16 => Some((false, 16)),
        UInt32 => Some((false, 32)),
        UInt64 => Some((false, 64)),
        _ => None,
    };
    // Decimal digits every value of an integer type fits in.
    let digits = |bits: u32, signed: bool| match (bits, signed) {
        (8, _) => 3,
        (16, _) => 5,
        (32, _) => 10,
        (64, true) => 19,
        _ => 20,
    };
    match (int(old), int(new), old, new) {
        (Some((s1, b1)), Some((s2, b2)), _, _) => match (s1, s2) {
            (true, true) | (false, false) => b2 > b1,
            (false, true) => b2 > b1,
            (true, false) => false,
        },
        (Some((signed, bits)), None, _, Decimal128(p, s)) => {
            i64::from(*p) - i64::from(*s) >= digits(bits, signed)
        }
        (Some((_, bits)), None, _, Float64) => bits <= 32,
        (Some((_, bits)), None, _, Float32) => bits <= 16,
        (None, None, Float32, Float64) => true,
        (None, None, Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && i64::from(*p2) - i64::from(*s2) >= i64::from(*p1) - i64::from(*s1)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds

/// An effective lower or upper bound from `logicalTypeOptions`.
#[derive(Debug, Clone)]
struct Bound {
    value: Value,
    strict: bool,
    /// The key holding the value.
    key: &'static str,
    /// Strictness comes from an ODCS 3.0 boolean `exclusiveMinimum: true`.
    flag: bool,
}

impl Bound {
    fn of(map: &Map<String, Value>, min: bool) -> Option<Bound> {
        let (inclusive, exclusive) = if min {
            ("minimum", "exclusiveMinimum")
        } else {
            ("maximum", "exclusiveMaximum")
        };
        let inc = map.get(inclusive).filter(|v| !v.is_null());
        let exc = map.get(exclusive).filter(|v| !v.is_null());
        let plain = |strict: bool, flag: bool| {
            inc.map(|v| Bound {
                value: v.clone(),
                strict,
                key: inclusive,
                flag,
            })
        };
        match exc {
            None => plain(false, false),
            Some(Value::Bool(flag)) => plain(*flag, *flag),
            Some(v) => {
                let exclusive_bound = Bound {
                    value: v.clone(),
                    strict: true,
                    key: exclusive,
                    flag: false,
                };
                match plain(false, false) {
                    // Both given: the tighter one holds.
                    Some(b) => match compare_values(&b.value, v) {
                        Some(Ordering::Greater) if min => Some(b),
                        Some(Ordering::Less) if !min => Some(b),
                        _ => Some(exclusive_bound),
                    },
                    None => Some(exclusive_bound),
                }
            }
        }
    }

    /// `>= 0`, `< 100`.
    fn text(&self, min: bool) -> String {
        let op = match (min, self.strict) {
            (true, false) => ">=",
            (true, true) => ">",
            (false, false) => "<=",
            (false, true) => "<",
        };
        let v = match &self.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        format!("{op} {v}")
    }
}

/// A bound value that can be ordered: a number, a date, an instant or a time of day.
#[derive(Debug, PartialEq, PartialOrd)]
enum Ordered {
    Number(f64),
    Date(NaiveDate),
    Instant(i64),
    Time(NaiveTime),
}

impl Ordered {
    fn read(v: &Value) -> Option<Ordered> {
        match v {
            Value::Number(n) => n.as_f64().map(Ordered::Number),
            Value::String(s) => {
                let s = s.trim();
                if let Ok(n) = s.parse::<f64>() {
                    return Some(Ordered::Number(n));
                }
                if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    return Some(Ordered::Date(d));
                }
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    return Some(Ordered::Instant(t.timestamp_micros()));
                }
                for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                    if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
                        return Some(Ordered::Instant(t.and_utc().timestamp_micros()));
                    }
                }
                for format in ["%H:%M:%S%.f", "%H:%M"] {
                    if let Ok(t) = NaiveTime::parse_from_str(s, format) {
                        return Some(Ordered::Time(t));
                    }
                }
                None
            }
            _ => None,
        }
    }
}

/// Orders two bound values of the same sort; `None` when they cannot be compared.
fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    let (x, y) = (Ordered::read(a)?, Ordered::read(b)?);
    if std::mem::discriminant(&x) != std::mem::discriminant(&y) {
        return None;
    }
    x.partial_cmp(&y)
}

// ---------------------------------------------------------------------------------------------
// Versions and the verdict

/// A semantic version: numbers, and pre-release identifiers (build metadata is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Semver {
    core: [u64; 3],
    pre: Vec<String>,
}

impl Semver {
    fn parse(text: &str) -> Option<Semver> {
        let text = text.trim();
        let text = text
            .strip_prefix('v')
            .or_else(|| text.strip_prefix('V'))
            .unwrap_or(text);
        let text = text.split_once('+').map_or(text, |(v, _)| v);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut numbers = [0u64; 3];
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => {
                let ids: Vec<String> = pre.split('.').map(str::to_owned).collect();
                if ids.iter().any(|i| {
                    i.is_empty() || !i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }) {
                    return None;
                }
                ids
            }
        };
        Some(Semver { core: numbers, pre })
    }

    /// Semantic-versioning precedence.
    fn precedence(&self, other: &Semver) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&other.pre) {
                        let ordering = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if ordering != Ordering::Equal {
                            return ordering;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            })
    }

    /// The part a breaking change must bump: the major, or the minor below 1.0.0.
    fn compatibility(&self) -> (u64, u64) {
        match self.core {
            [0, minor, _] => (0, minor),
            [major, _, _] => (major, 0),
        }
    }
}

fn versions(old: &str, new: &str) -> VersionChange {
    let (direction, major_bumped) = match (Semver::parse(old), Semver::parse(new)) {
        (Some(a), Some(b)) => {
            let direction = match b.precedence(&a) {
                Ordering::Greater => Direction::Up,
                Ordering::Equal => Direction::Same,
                Ordering::Less => Direction::Down,
            };
            (direction, b.compatibility() > a.compatibility())
        }
        _ => (Direction::Unknown, false),
    };
    VersionChange {
        old: old.to_owned(),
        new: new.to_owned(),
        direction,
        major_bumped,
    }
}

fn judge(version: &VersionChange, changes: &[Change]) -> (Verdict, Vec<String>) {
    let breaking = changes.iter().filter(|c| c.breaking).count();
    let (old, new) = (&version.old, &version.new);
    let mut fail = Vec::new();
    match version.direction {
        Direction::Down => fail.push(format!("the version went down ({old} → {new})")),
        Direction::Same if !changes.is_empty() => fail.push(format!(
            "the contract changed ({} change(s)) but its version did not ({new})",
            changes.len()
        )),
        Direction::Unknown if !changes.is_empty() || old != new => {
            for v in [old, new] {
                if Semver::parse(v).is_none() {
                    fail.push(format!(
                        "version `{v}` is not a semantic version (MAJOR.MINOR.PATCH)"
                    ));
                }
            }
        }
        _ => {}
    }
    if breaking > 0 && !version.major_bumped {
        let next = Semver::parse(old)
            .map(|v| match v.core {
                [0, minor, _] => format!(" (e.g. 0.{}.0)", minor + 1),
                [major, _, _] => format!(" (e.g. {}.0.0)", major + 1),
            })
            .unwrap_or_default();
        fail.push(format!(
            "{breaking} breaking change(s) need a new major version{next}, not {new}"
        ));
    }
    if !fail.is_empty() {
        return (Verdict::Fail, fail);
    }
    let reason = match (changes.len(), breaking) {
        (0, _) if old == new => "no change".to_owned(),
        (0, _) => format!("only the version changed ({old} → {new})"),
        (n, 0) => format!("{n} compatible change(s) in a new version ({old} → {new})"),
        (n, b) => format!("{b} breaking change(s) of {n} in a new major version ({old} → {new})"),
    };
    (Verdict::Ok, vec![reason])
}

#[cfg(test)]
mod tests;
