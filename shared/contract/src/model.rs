//! The typed contract model.
//!
//! [`Contract::from_yaml`] reads YAML safely, validates it against the official
//! ODCS JSON Schema for its `apiVersion`, and deserializes the parts Tessera
//! uses into these structs (camelCase field names; anything else stays
//! available in [`Contract::raw`]). Every property ends up with a
//! [`LogicalType`]: when the contract leaves it out, it is inferred from
//! `physicalType` (`varchar(20)` → string, `bigint` → integer, ...).
//!
//! ```
//! let contract = tessera_contract::Contract::from_yaml(
//!     r#"
//! apiVersion: v3.1.0
//! kind: DataContract
//! id: orders
//! version: 1.0.0
//! status: active
//! team:
//!   members:
//!     - username: ada
//!       role: owner
//! schema:
//!   - name: orders
//!     properties:
//!       - name: order_id
//!         logicalType: integer
//!         primaryKey: true
//!         required: true
//!       - name: placed_on
//!         physicalType: date
//! "#,
//!     "orders.odcs.yaml",
//! )?;
//! let orders = contract.object("orders").expect("declared above");
//! assert_eq!(contract.owner(), Some("ada"));
//! assert_eq!(orders.primary_key()[0].name, "order_id");
//! assert_eq!(
//!     orders.property("placed_on").and_then(|p| p.logical_type),
//!     Some(tessera_contract::LogicalType::Date)
//! );
//! # Ok::<(), tessera_contract::ContractError>(())
//! ```

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{ContractError, Problem, Result, escape_token};
use crate::quality::QualityRule;
use crate::yaml::{self, Locations};

/// An ODCS v3 data contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// ODCS version the contract is written against, e.g. `v3.1.0`.
    pub api_version: String,
    /// Unique identifier of the contract.
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: Option<String>,
    /// Version of the contract itself.
    pub version: String,
    /// Lifecycle status, e.g. `active`, `draft`, `deprecated`.
    pub status: String,
    /// Business domain the data belongs to.
    #[serde(default)]
    pub domain: Option<String>,
    /// Data product the contract describes.
    #[serde(default)]
    pub data_product: Option<String>,
    /// Tenant or organisation.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Purpose, usage and limitations of the data.
    #[serde(default)]
    pub description: Description,
    /// Team members (ODCS 3.0 list form or 3.1 `team.members`).
    #[serde(default, deserialize_with = "team_members")]
    pub team: Vec<TeamMember>,
    /// Support channels.
    #[serde(default)]
    pub support: Vec<SupportChannel>,
    /// The schema objects (tables, topics, files, ...).
    #[serde(default)]
    pub schema: Vec<SchemaObject>,
    /// Service-level agreement properties.
    #[serde(default)]
    pub sla_properties: Vec<SlaProperty>,
    /// The whole validated document as JSON, including fields not modelled here.
    #[serde(skip_deserializing)]
    pub raw: Value,
    /// Where each node of [`Contract::raw`] was in the YAML text (see [`Contract::line`]).
    #[serde(skip)]
    pub(crate) locations: Locations,
}

/// The contract's high-level description.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// Why the data exists.
    #[serde(default)]
    pub purpose: Option<String>,
    /// How the data is meant to be used.
    #[serde(default)]
    pub usage: Option<String>,
    /// Known limitations.
    #[serde(default)]
    pub limitations: Option<String>,
}

/// A member of the team responsible for the contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamMember {
    /// User name or e-mail.
    #[serde(default)]
    pub username: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Role, e.g. `owner`, `data steward`.
    #[serde(default)]
    pub role: Option<String>,
}

/// A support channel (Slack channel, mailing list, ticket queue, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportChannel {
    /// Channel name or identifier.
    #[serde(default)]
    pub channel: Option<String>,
    /// Access URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Tool, e.g. `slack`, `email`, `teams`.
    #[serde(default)]
    pub tool: Option<String>,
}

/// One service-level agreement property.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaProperty {
    /// Which SLA property, e.g. `latency`, `retention`, `frequency`.
    pub property: String,
    /// The agreed value (string, number, boolean or null).
    pub value: Value,
    /// Unit of the value, e.g. `d`, `y`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Element(s) the SLA applies to, e.g. `orders.placed_at`.
    #[serde(default)]
    pub element: Option<String>,
    /// Description for humans.
    #[serde(default)]
    pub description: Option<String>,
}

/// A schema object: a table, view, topic or file and its properties.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaObject {
    /// Logical name of the object.
    pub name: String,
    /// Physical name in the data store, when it differs from `name`.
    #[serde(default)]
    pub physical_name: Option<String>,
    /// Business name.
    #[serde(default)]
    pub business_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Physical type, e.g. `table`, `view`, `topic`.
    #[serde(default)]
    pub physical_type: Option<String>,
    /// The columns / fields, in declared order.
    #[serde(default)]
    pub properties: Vec<Property>,
    /// Object-level quality rules.
    #[serde(default)]
    pub quality: Vec<QualityRule>,
}

/// A property (column or field) of a schema object, possibly nested.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// Name of the property; also the Arrow field name. Empty for array `items`.
    #[serde(default)]
    pub name: String,
    /// Physical name in the data source.
    #[serde(default)]
    pub physical_name: Option<String>,
    /// Business name.
    #[serde(default)]
    pub business_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Logical type; inferred from `physical_type` when the contract omits it.
    #[serde(default)]
    pub logical_type: Option<LogicalType>,
    /// Physical type in the data source, e.g. `varchar(20)`, `decimal(10,2)`.
    #[serde(default)]
    pub physical_type: Option<String>,
    /// Whether nulls are forbidden.
    #[serde(default)]
    pub required: bool,
    /// Whether values must be unique.
    #[serde(default)]
    pub unique: bool,
    /// Whether the property is (part of) the primary key.
    #[serde(default)]
    pub primary_key: bool,
    /// Position in a composite primary key, from 1; -1 when not set.
    #[serde(default = "unset_position")]
    pub primary_key_position: i64,
    /// Whether the data is partitioned by this property.
    #[serde(default)]
    pub partitioned: bool,
    /// Position among partition columns, from 1; -1 when not set.
    #[serde(default = "unset_position")]
    pub partition_key_position: i64,
    /// Data classification, e.g. `public`, `restricted`.
    #[serde(default)]
    pub classification: Option<String>,
    /// `logicalTypeOptions`: constraints on the values.
    #[serde(default, rename = "logicalTypeOptions")]
    pub options: TypeOptions,
    /// Property-level quality rules.
    #[serde(default)]
    pub quality: Vec<QualityRule>,
    /// Element definition of an array property.
    #[serde(default)]
    pub items: Option<Box<Property>>,
    /// Fields of an object property.
    #[serde(default)]
    pub properties: Vec<Property>,
    /// Sample values.
    #[serde(default)]
    pub examples: Vec<Value>,
}

/// ODCS logical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogicalType {
    /// Text.
    String,
    /// Calendar date.
    Date,
    /// Instant in time (ODCS 3.1).
    Timestamp,
    /// Time of day (ODCS 3.1).
    Time,
    /// Floating-point or decimal number.
    Number,
    /// Whole number.
    Integer,
    /// Nested record.
    Object,
    /// List of values.
    Array,
    /// True or false.
    Boolean,
}

/// `logicalTypeOptions`: value constraints, checked by [`crate::Checker`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeOptions {
    /// Minimum string length, in characters.
    #[serde(default)]
    pub min_length: Option<u64>,
    /// Maximum string length, in characters.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Regular expression every value must match (unanchored, like JSON Schema).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Format hint: `i32`, `u8`, `f32`, `yyyy-MM-dd`, `email`, ...
    #[serde(default)]
    pub format: Option<String>,
    /// Inclusive lower bound (number, or date/time text).
    #[serde(default)]
    pub minimum: Option<Value>,
    /// Inclusive upper bound (number, or date/time text).
    #[serde(default)]
    pub maximum: Option<Value>,
    /// Exclusive lower bound; in ODCS 3.0 a boolean making `minimum` exclusive.
    #[serde(default)]
    pub exclusive_minimum: Option<Value>,
    /// Exclusive upper bound; in ODCS 3.0 a boolean making `maximum` exclusive.
    #[serde(default)]
    pub exclusive_maximum: Option<Value>,
    /// Values must be a multiple of this number.
    #[serde(default)]
    pub multiple_of: Option<f64>,
    /// Whether timestamps carry a time zone.
    #[serde(default)]
    pub timezone: Option<bool>,
    /// Time zone of timestamps written without one (IANA name, e.g. `Europe/Paris`).
    #[serde(default)]
    pub default_timezone: Option<String>,
}

fn unset_position() -> i64 {
    -1
}

/// Accepts `team` as a list of members (ODCS 3.0) or as an object with `members` (3.1).
fn team_members<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<TeamMember>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Team {
        List(Vec<TeamMember>),
        Object {
            #[serde(default)]
            members: Vec<TeamMember>,
        },
    }
    Ok(match Team::deserialize(deserializer)? {
        Team::List(members) | Team::Object { members } => members,
    })
}

impl Contract {
    /// Parses, validates and models a contract; `origin` (a file name) prefixes messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Contract> {
        load(text, origin, SchemaValidation::Run).map(|(contract, _)| contract)
    }

    /// The owner: the team member whose role is `owner` (any case), else the first
    /// member; their name, or user name when no name is given.
    pub fn owner(&self) -> Option<&str> {
        let is_owner = |m: &&TeamMember| {
            m.role
                .as_deref()
                .is_some_and(|r| r.trim().eq_ignore_ascii_case("owner"))
        };
        let member = self
            .team
            .iter()
            .find(is_owner)
            .or_else(|| self.team.first())?;
        member.name.as_deref().or(member.username.as_deref())
    }

    /// The 1-based line in the contract's YAML text of the node at `pointer` (a JSON pointer
    /// into [`Contract::raw`], e.g. `/schema/0/properties/2/required`), or of its nearest
    /// ancestor that has one; `None` for a contract not read from YAML.
    pub fn line(&self, pointer: &str) -> Option<usize> {
        self.locations.find(pointer).map(|(line, _)| line)
    }

    /// The schema object called `name` (or, failing that, whose physical name is `name`).
    pub fn object(&self, name: &str) -> Option<&SchemaObject> {
        self.schema.iter().find(|o| o.name == name).or_else(|| {
            self.schema
                .iter()
                .find(|o| o.physical_name.as_deref() == Some(name))
        })
    }
}

impl SchemaObject {
    /// The name of the table in storage: `physical_name`, else `name`.
    pub fn table_name(&self) -> &str {
        self.physical_name.as_deref().unwrap_or(&self.name)
    }

    /// The top-level property called `name`.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Primary-key properties, ordered by `primaryKeyPosition` (unpositioned last).
    pub fn primary_key(&self) -> Vec<&Property> {
        ordered(self.properties.iter().filter(|p| p.primary_key), |p| {
            p.primary_key_position
        })
    }

    /// Partition columns, ordered by `partitionKeyPosition` (unpositioned last).
    pub fn partition_columns(&self) -> Vec<&Property> {
        ordered(self.properties.iter().filter(|p| p.partitioned), |p| {
            p.partition_key_position
        })
    }
}

/// Sorts properties by a 1-based position; positions below 1 keep declared order, last.
fn ordered<'a>(
    properties: impl Iterator<Item = &'a Property>,
    position: impl Fn(&Property) -> i64,
) -> Vec<&'a Property> {
    let mut out: Vec<&Property> = properties.collect();
    out.sort_by_key(|p| match position(p) {
        n if n >= 1 => n,
        _ => i64::MAX,
    });
    out
}

impl LogicalType {
    /// Best guess from a physical type such as `VARCHAR(20)`, `bigint` or `timestamp_ntz`;
    /// `None` when the physical type is not recognised.
    pub(crate) fn infer(physical_type: &str) -> Option<LogicalType> {
        let lower = physical_type.trim().to_ascii_lowercase();
        let base = lower.split(['(', '<', '[', ' ']).next().unwrap_or_default();
        let logical = match base {
            "varchar" | "char" | "nvarchar" | "nchar" | "string" | "text" | "clob" | "uuid"
            | "character" | "varchar2" | "nvarchar2" | "enum" => LogicalType::String,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "long"
            | "short" | "byte" | "int2" | "int4" | "int8" | "int16" | "int32" | "int64"
            | "serial" | "bigserial" | "smallserial" => LogicalType::Integer,
            "decimal" | "numeric" | "number" | "float" | "double" | "real" | "float4"
            | "float8" | "float32" | "float64" | "money" => LogicalType::Number,
            "bool" | "boolean" | "bit" => LogicalType::Boolean,
            "date" => LogicalType::Date,
            "time" | "timetz" => LogicalType::Time,
            "array" | "list" => LogicalType::Array,
            "struct" | "object" | "record" | "map" | "json" | "jsonb" | "variant" => {
                LogicalType::Object
            }
            _ if base.starts_with("timestamp") || base.starts_with("datetime") => {
                LogicalType::Timestamp
            }
            _ => return None,
        };
        Some(logical)
    }
}

/// Whether reading a contract checks it against the official ODCS JSON Schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaValidation {
    /// Check it: every violation is reported at its line.
    Run,
    /// Skip it, because this exact text already passed it: a function loading the contracts
    /// its deployment package vouches for (see `tessera_core::mesh::VALIDATED_FILE`).
    /// Compiling the schema is about 10 ms, half of a function's start. Everything else (the
    /// YAML limits, the typed model, lint and policy) still runs.
    Vouched,
}

/// Reads, validates and models a contract, keeping the YAML positions for later checks.
pub(crate) fn load(
    text: &str,
    origin: &str,
    schema: SchemaValidation,
) -> Result<(Contract, Locations)> {
    let document = yaml::parse(text, origin)?;
    if schema == SchemaValidation::Run {
        crate::validate::validate(&document.value, &document.locations, origin)?;
    }
    let mut contract: Contract = serde_path_to_error::deserialize(&document.value)
        .map_err(|e| model_error(&e, &document.locations, origin))?;
    for object in &mut contract.schema {
        for property in &mut object.properties {
            fill_logical_types(property);
        }
    }
    contract.raw = document.value;
    contract.locations = document.locations.clone();
    Ok((contract, document.locations))
}

/// Sets the logical type of `property` and everything nested in it when it was left out.
fn fill_logical_types(property: &mut Property) {
    if property.logical_type.is_none() {
        property.logical_type = Some(
            property
                .physical_type
                .as_deref()
                .and_then(LogicalType::infer)
                .unwrap_or(LogicalType::String),
        );
    }
    if let Some(items) = &mut property.items {
        fill_logical_types(items);
    }
    for nested in &mut property.properties {
        fill_logical_types(nested);
    }
}

/// Locates a deserialization error by the path serde took to reach it.
pub(crate) fn model_error(
    error: &serde_path_to_error::Error<serde_json::Error>,
    locations: &Locations,
    origin: &str,
) -> ContractError {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&escape_token(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let problem = Problem::at(pointer, error.inner().to_string());
    ContractError::single(origin, locations.locate(problem))
}
