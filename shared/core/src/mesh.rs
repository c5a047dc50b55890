//! The mesh: domains, their products and recipes, and the environments Tessera runs in.
//!
//! A mesh is described by one TOML file (`samplecli.toml` in the repository). Every path in it
//! is relative to the file. Loading a mesh reads and validates every contract it names, so a
//! broken contract or recipe is refused before any data moves. When the mesh names the
//! organisation's policy, each product's masks follow it and its violations are listed (see
//! [`crate::policy`]).
//!
//! ```toml
//! [mesh]
//! name = "acme"
//! default_environment = "embedded"
//! policy = "policy.yaml"
//!
//! [environments.embedded]
//! backend = "embedded"
//! warehouse = ".tessera/warehouse"
//!
//! [[domains]]
//! name = "sales"
//!
//! [[domains.products]]
//! name = "orders"
//! contract = "domains/sales/orders/orders.odcs.yaml"
//! source = { format = "csv", samples = ["domains/sales/orders/raw"] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_contract::policy::{Policy, SourceMap};
use tessera_contract::{Contract, SchemaObject};
use toml::Spanned;

use crate::cdc::CdcColumns;
use crate::error::{Error, Result};
use crate::keys::validate_identifier;
use crate::policy::{self as org, PolicyViolation, RecipeLines};

mod validated;
pub use validated::{VALIDATED_FILE, Validated};

/// The mesh file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshFile {
    /// Mesh-wide settings.
    pub mesh: MeshSettings,
    /// Where Tessera runs, by name.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// The domains of the mesh.
    #[serde(default)]
    pub domains: Vec<DomainConfig>,
}

/// Mesh-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSettings {
    /// Name of the mesh (used in resource names).
    pub name: String,
    /// Environment used when none is chosen.
    #[serde(default = "default_environment")]
    pub default_environment: String,
    /// Salt for hashing personal data; overridden by `TESSERA_PII_SALT`.
    #[serde(default)]
    pub pii_salt: Option<String>,
    /// The organisation's policy file (YAML); without one, no organisation rule applies.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Attempts a stage makes at one input before it refuses it as poison (at least 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_max_attempts() -> u32 {
    crate::delivery::DEFAULT_MAX_ATTEMPTS
}

fn default_environment() -> String {
    "embedded".to_owned()
}

/// One place Tessera runs: the only difference between them is where the ports point.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum Environment {
    /// Local files, no AWS.
    Embedded {
        /// Directory holding one folder per bucket, and the catalog.
        warehouse: PathBuf,
    },
    /// AWS or an emulator of it.
    Aws {
        /// AWS region.
        region: String,
        /// Endpoint override (an emulator); `None` means AWS itself.
        #[serde(default)]
        endpoint_url: Option<String>,
        /// Path-style S3 addressing (emulators need it).
        #[serde(default)]
        force_path_style: bool,
        /// Name of the custom EventBridge bus for product events.
        #[serde(default = "default_bus")]
        event_bus: String,
        /// Per-service endpoint overrides, for a mix of emulators (LocalStack for S3 and
        /// EventBridge, moto for Glue). A service not named here uses `endpoint_url`.
        #[serde(default)]
        endpoints: ServiceEndpoints,
        /// Athena workgroup where aggregations with `engine = "athena"` run (the platform
        /// stack's enforces encrypted results and a bytes-scanned limit).
        #[serde(default = "default_workgroup")]
        athena_workgroup: String,
    },
}

/// Endpoint overrides per AWS service; the keys follow the SDKs' service ids
/// (`AWS_ENDPOINT_URL_<SERVICE>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoints {
    /// Amazon S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
    /// Amazon EventBridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventbridge: Option<String>,
    /// Amazon SQS (the local bridge's queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<String>,
    /// AWS Glue Data Catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glue: Option<String>,
    /// Amazon Athena.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub athena: Option<String>,
}

fn default_workgroup() -> String {
    "primary".to_owned()
}

fn default_bus() -> String {
    "tessera-products".to_owned()
}

/// A domain as written in the mesh file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Domain name, a valid identifier (`sales`).
    pub name: String,
    /// What the domain is about.
    #[serde(default)]
    pub description: Option<String>,
    /// Bucket of the domain; default `tessera-<mesh>-<domain>`.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Catalog database of the domain; default the domain name.
    #[serde(default)]
    pub database: Option<String>,
    /// The domain's products.
    #[serde(default)]
    pub products: Vec<ProductConfig>,
}

/// A data product as written in the mesh file: its contract and its recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// Product name, a valid identifier; also the name of its zone folders and catalog table.
    pub name: Spanned<String>,
    /// Path of the product's ODCS contract.
    pub contract: PathBuf,
    /// Schema object of the contract to use; default its only (or first) object.
    #[serde(default)]
    pub object: Option<String>,
    /// Where raw data comes from and how to read it.
    pub source: Spanned<SourceConfig>,
    /// Cleaning steps.
    #[serde(default)]
    pub clean: CleanRecipe,
    /// How personal data is protected before publishing, by column.
    #[serde(default)]
    pub mask: Option<Spanned<BTreeMap<String, MaskMethod>>>,
    /// Names of the partition folders, by partition column (`{ order_ts = "dt" }`: folders
    /// `dt=YYYY-MM-DD/`); default the column's name.
    #[serde(default)]
    pub partition_names: BTreeMap<String, String>,
    /// Aggregate products derived from this one.
    #[serde(default)]
    pub aggregations: Vec<AggregationConfig>,
    /// Entity products derived from this one (latest state per key).
    #[serde(default)]
    pub entities: Vec<EntityConfig>,
}

/// Format of raw input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Delimited text (RFC 4180 by default; see the dialect options of [`SourceConfig`]).
    Csv,
    /// Newline-delimited JSON, one object per line.
    Ndjson,
    /// One JSON array of objects (read element by element, never whole).
    Json,
    /// Apache Parquet, columns mapped onto the contract by name and cast to its types.
    Parquet,
    /// Debezium change events, one JSON event per line (see [`crate::cdc`]).
    Debezium,
}

impl SourceFormat {
    /// The name written in the mesh file.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Ndjson => "ndjson",
            SourceFormat::Json => "json",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Debezium => "debezium",
        }
    }
}

/// Text encoding of raw text files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum SourceEncoding {
    /// UTF-8 (a leading byte-order mark is skipped).
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value, decoded to UTF-8.
    #[serde(
        rename = "latin-1",
        alias = "latin1",
        alias = "iso-8859-1",
        alias = "ISO-8859-1"
    )]
    Latin1,
}

/// Compression of raw files (Parquet compresses internally and is never wrapped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceCompression {
    /// From the key's suffix (`.gz`, `.gzip`, `.zst`, `.zstd`) or the file's magic bytes; a
    /// suffix the magic bytes contradict refuses the file.
    #[default]
    Auto,
    /// Never decompress.
    None,
    /// gzip (several concatenated members are one stream).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// What ingest does with columns (CSV) or keys (JSON) the contract does not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownColumns {
    /// Drop them (they are listed in the run record's drift).
    #[default]
    Drop,
    /// Keep them, per row, as a JSON object in the recipe's `extras_column`.
    Keep,
}

/// What ingest does with a CSV row that has fewer fields than the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShortRows {
    /// Quarantine the row as malformed.
    #[default]
    Quarantine,
    /// Read the missing trailing fields as null.
    Null,
}

/// Where raw data comes from and how to read it.
///
/// Every field but `format` has a default; the CSV dialect fields (`delimiter`, `quote`,
/// `escape`, `header`) apply to `csv` only, `encoding` and `compression` to every text format
/// (`csv`, `ndjson`, `json`), drift (`unknown_columns`, `extras_column`) to every format. The
/// user's guide is `docs/ingest.md`.
///
/// ```toml
/// [[domains.products]]
/// name = "orders"
/// contract = "orders.odcs.yaml"
///
/// [domains.products.source]
/// format = "csv"
/// delimiter = ";"
/// quote = "'"
/// escape = "\\"
/// header = false
/// encoding = "latin-1"
/// compression = "auto"
/// max_decompressed_bytes = 1073741824
/// unknown_columns = "keep"
/// extras_column = "extras"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// File format.
    pub format: SourceFormat,
    /// Field delimiter for CSV (one ASCII character, e.g. `","`, `";"`, `"\t"`, `"|"`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Quote character for CSV (one ASCII character); `"none"` (or `""`) reads quotes as text.
    #[serde(default = "default_quote", deserialize_with = "optional_char")]
    pub quote: Option<char>,
    /// Escape character inside quoted CSV fields (e.g. `"\\"`); without one (the default, or
    /// `"none"`), a quote inside a quoted field is written twice, as in RFC 4180 (doubled
    /// quotes are read in either case).
    #[serde(default, deserialize_with = "optional_char")]
    pub escape: Option<char>,
    /// Whether the first CSV line names the columns; without a header, fields map by position
    /// onto the contract's columns in contract order.
    #[serde(default = "yes")]
    pub header: bool,
    /// CSV rows with fewer fields than the header: quarantined (default) or their missing
    /// trailing fields read as null (`"null"`). A row with more fields is always quarantined.
    #[serde(default)]
    pub short_rows: ShortRows,
    /// Text encoding of `csv`, `ndjson` and `json` files.
    #[serde(default)]
    pub encoding: SourceEncoding,
    /// Compression of the raw files.
    #[serde(default)]
    pub compression: SourceCompression,
    /// Largest decompressed size accepted; a file over it is refused whole as a possible
    /// decompression bomb.
    #[serde(default = "default_max_decompressed")]
    pub max_decompressed_bytes: u64,
    /// Largest ratio of decompressed to compressed bytes accepted once more than 1 MiB is
    /// decompressed; a file over it is refused whole as a possible decompression bomb.
    #[serde(default = "default_max_ratio")]
    pub max_compression_ratio: u64,
    /// What to do with columns or keys the contract does not declare.
    #[serde(default)]
    pub unknown_columns: UnknownColumns,
    /// With `unknown_columns = "keep"`: the contract's string column that receives, per row, a
    /// JSON object of the undeclared fields (null when a row has none).
    #[serde(default)]
    pub extras_column: Option<String>,
    /// Sample raw files (or folders of them) that `tessera run` lands.
    #[serde(default)]
    pub samples: Vec<PathBuf>,
    /// Debezium only: the contract columns that receive each event's CDC metadata; default
    /// `cdc_op`, `cdc_ts`, `cdc_position`.
    #[serde(default)]
    pub cdc: Option<Box<CdcColumns>>,
    /// Domain events from EventBridge batched into the raw zone (see [`crate::domain_events`]).
    #[serde(default)]
    pub events: Option<Box<EventSource>>,
}

impl SourceConfig {
    /// The CDC metadata columns: the recipe's `cdc`, or the defaults.
    pub fn cdc_columns(&self) -> CdcColumns {
        self.cdc.as_deref().cloned().unwrap_or_default()
    }
}

/// Which EventBridge events of the domain's bus feed a product's raw zone, batched by Kinesis
/// Data Firehose (or `tessera events put`) as NDJSON of each event's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSource {
    /// The events' `source`, e.g. `com.example.shop`.
    pub source: String,
    /// The events' `detail-type`s (one or several), e.g. `OrderPlaced`.
    pub detail_type: OneOrMany,
    /// Seconds Firehose buffers before writing a file (60 to 900; default 300).
    #[serde(default = "default_buffer_seconds")]
    pub buffer_seconds: u32,
    /// Mebibytes Firehose buffers before writing a file (1 to 128; default 5).
    #[serde(default = "default_buffer_mib")]
    pub buffer_mib: u32,
}

fn default_buffer_seconds() -> u32 {
    300
}

fn default_buffer_mib() -> u32 {
    5
}

/// One text, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

fn default_delimiter() -> char {
    ','
}

fn default_quote() -> Option<char> {
    Some('"')
}

/// Default of [`SourceConfig::max_decompressed_bytes`]: 4 GiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 4 << 30;
/// Default of [`SourceConfig::max_compression_ratio`].
pub const DEFAULT_MAX_COMPRESSION_RATIO: u64 = 1000;

fn default_max_decompressed() -> u64 {
    DEFAULT_MAX_DECOMPRESSED_BYTES
}

fn default_max_ratio() -> u64 {
    DEFAULT_MAX_COMPRESSION_RATIO
}

/// One character, or none when written `"none"` or `""`.
fn optional_char<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<char>, D::Error> {
    let text = String::deserialize(d)?;
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(c), None) => Ok(Some(c)),
        _ if text == "none" => Ok(None),
        _ => Err(serde::de::Error::custom(format!(
            "expected one character or \"none\", found `{text}`"
        ))),
    }
}

impl SourceConfig {
    /// What the mesh file cannot say in types: one-byte CSV characters, an `extras_column`
    /// declared as text, no compression wrapped around Parquet.
    fn check(&self, object: &SchemaObject) -> std::result::Result<(), String> {
        let mut seen = Vec::new();
        for (what, c) in [
            ("delimiter", Some(self.delimiter)),
            ("quote", self.quote),
            ("escape", self.escape),
        ] {
            let Some(c) = c else { continue };
            if !c.is_ascii() || c == '\n' || c == '\r' {
                return Err(format!(
                    "CSV {what} `{}` must be one ASCII character other than a line break",
                    c.escape_debug()
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, o)| *o == c) {
                return Err(format!(
                    "CSV {what} `{}` is also the {other}",
                    c.escape_debug()
                ));
            }
            seen.push((what, c));
        }
        if self.format == SourceFormat::Parquet
            && matches!(
                self.compression,
                SourceCompression::Gzip | SourceCompression::Zstd
            )
        {
            return Err(
                "Parquet compresses its pages itself: `compression` can only be \"auto\" or \"none\""
                    .into(),
            );
        }
        if self.max_decompressed_bytes == 0 || self.max_compression_ratio == 0 {
            return Err(
                "`max_decompressed_bytes` and `max_compression_ratio` must be positive".into(),
            );
        }
        match (self.unknown_columns, &self.extras_column) {
            (UnknownColumns::Keep, None) => {
                return Err(
                    "`unknown_columns = \"keep\"` needs `extras_column`, a string column of the contract"
                        .into(),
                );
            }
            (UnknownColumns::Drop, Some(c)) => {
                return Err(format!(
                    "`extras_column = \"{c}\"` is only used with `unknown_columns = \"keep\"`"
                ));
            }
            (UnknownColumns::Keep, Some(column)) => {
                let property = object.property(column).ok_or_else(|| {
                    format!("`extras_column` `{column}` is not a column of the contract")
                })?;
                if !property
                    .data_type()
                    .is_ok_and(|t| t == arrow::datatypes::DataType::Utf8)
                {
                    return Err(format!(
                        "`extras_column` `{column}` must be a string column: it holds JSON text"
                    ));
                }
            }
            (UnknownColumns::Drop, None) => {}
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

/// Cleaning steps of a product (the order they run in is documented in
/// [`crate::stages::clean`]; every option is described with examples in `docs/clean.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CleanRecipe {
    /// Trim strings and turn blank strings into nulls.
    #[serde(default = "yes")]
    pub trim: bool,
    /// Columns to lower-case.
    #[serde(default)]
    pub lowercase: Vec<String>,
    /// Columns to upper-case.
    #[serde(default)]
    pub uppercase: Vec<String>,
    /// Drop rows equal in every column to an earlier row.
    #[serde(default = "yes")]
    pub drop_exact_duplicates: bool,
    /// Compare rows for exact duplicates as read (strings trimmed, nothing else normalized)
    /// instead of after normalization and defaults.
    #[serde(default)]
    pub duplicates_as_read: bool,
    /// Keep only the latest row per primary key, ordered by this column (later rows win ties).
    #[serde(default)]
    pub latest_by: Option<String>,
    /// Values for nulls in optional columns (column → value, parsed as the column's type).
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// What to do with values outside the contract's ranges (`"quarantine"`, `"flag"`,
    /// `"clip"`), or a statistical detection (a table, see [`OutlierDetection`]).
    #[serde(default)]
    pub outliers: Outliers,
    /// JSON text columns flattened into contract columns: source column → its fields; field
    /// `f` of column `c` goes to column `c_f`.
    #[serde(default)]
    pub flatten: BTreeMap<String, Vec<String>>,
    /// Missing time slots of each series filled with generated rows.
    #[serde(default)]
    pub gaps: Option<Box<GapRecipe>>,
    /// How timestamps are read at ingest: formats and the zone of naive times.
    #[serde(default)]
    pub timestamps: Option<Box<TimestampRecipe>>,
    /// What typing does with a decimal with more fraction digits than its scale.
    #[serde(default)]
    pub decimal_rounding: crate::typing::DecimalRounding,
    /// The columns `decimal_rounding` applies to (for a list or struct column, its decimal
    /// fields); default every column.
    #[serde(default)]
    pub decimal_rounding_columns: Vec<String>,
    /// Regular expressions the text of a column's values must match to be typed (column →
    /// pattern); a value that does not match cannot be typed.
    #[serde(default)]
    pub patterns: BTreeMap<String, String>,
    /// Columns typed leniently at ingest: a value that cannot be typed becomes null instead of
    /// quarantining the row.
    #[serde(default)]
    pub lenient: Vec<String>,
    /// Columns typed leniently whose text is also kept in a column `<column>_raw` (staged and
    /// cleaned, carried to quarantine, never published); a required column that is null with
    /// its raw text present is quarantined as `invalid_<column>`, not `missing_<column>`.
    #[serde(default)]
    pub keep_raw: Vec<String>,
    /// Nulls of a column filled from other columns, the first non-null in order
    /// (`updated_at = ["order_ts"]`), after normalization, before defaults and deduplication.
    #[serde(default)]
    pub coalesce: BTreeMap<String, Vec<String>>,
}

impl Default for CleanRecipe {
    fn default() -> Self {
        CleanRecipe {
            trim: true,
            lowercase: Vec::new(),
            uppercase: Vec::new(),
            drop_exact_duplicates: true,
            duplicates_as_read: false,
            latest_by: None,
            defaults: BTreeMap::new(),
            outliers: Outliers::default(),
            flatten: BTreeMap::new(),
            gaps: None,
            timestamps: None,
            decimal_rounding: crate::typing::DecimalRounding::default(),
            decimal_rounding_columns: Vec::new(),
            patterns: BTreeMap::new(),
            lenient: Vec::new(),
            keep_raw: Vec::new(),
            coalesce: BTreeMap::new(),
        }
    }
}

impl CleanRecipe {
    /// Every column the recipe names (for the policy: such a column cannot be dropped).
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .lowercase
            .iter()
            .chain(&self.uppercase)
            .chain(self.latest_by.iter())
            .chain(self.defaults.keys())
            .chain(self.flatten.keys())
            .chain(&self.lenient)
            .chain(&self.decimal_rounding_columns)
            .chain(self.patterns.keys())
            .chain(&self.keep_raw)
            .chain(self.coalesce.keys())
            .chain(self.coalesce.values().flatten())
            .cloned()
            .collect();
        for (source, fields) in &self.flatten {
            out.extend(fields.iter().map(|f| format!("{source}_{f}")));
        }
        if let Some(g) = &self.gaps {
            out.push(g.time.clone());
            out.push(g.marker.clone());
            out.extend(g.by.iter().cloned());
        }
        if let Some(d) = self.outliers.detection() {
            out.extend(d.columns.iter().cloned());
            out.extend(d.flag_column.iter().cloned());
        }
        if let Some(t) = &self.timestamps {
            out.extend(t.columns.iter().cloned());
        }
        out
    }
}

/// What clean does with outliers: an action for values outside the contract's ranges, or a
/// statistical detection (which also says what to do with range rules, under `range`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outliers {
    /// `outliers = "quarantine" | "flag" | "clip"`: the contract's ranges only.
    Range(OutlierAction),
    /// `outliers = { method = "iqr", columns = [...], ... }`.
    Detect(Box<OutlierDetection>),
}

impl<'de> Deserialize<'de> for Outliers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => match s.as_str() {
                "quarantine" => Ok(Outliers::Range(OutlierAction::Quarantine)),
                "flag" => Ok(Outliers::Range(OutlierAction::Flag)),
                "clip" => Ok(Outliers::Range(OutlierAction::Clip)),
                other => Err(D::Error::custom(format!(
                    "outliers: `{other}` is not \"quarantine\", \"flag\" or \"clip\""
                ))),
            },
            table @ toml::Value::Table(_) => table
                .try_into::<OutlierDetection>()
                .map(|d| Outliers::Detect(Box::new(d)))
                .map_err(|e| D::Error::custom(format!("outliers: {e}"))),
            other => Err(D::Error::custom(format!(
                "outliers: expected \"quarantine\", \"flag\", \"clip\" or a table with `method`, not {}",
                other.type_str()
            ))),
        }
    }
}

impl Default for Outliers {
    fn default() -> Self {
        Outliers::Range(OutlierAction::Quarantine)
    }
}

impl Outliers {
    /// What to do with values outside the contract's ranges.
    pub fn range_action(&self) -> OutlierAction {
        match self {
            Outliers::Range(a) => *a,
            Outliers::Detect(d) => d.range,
        }
    }

    /// The statistical detection, if any.
    pub fn detection(&self) -> Option<&OutlierDetection> {
        match self {
            Outliers::Range(_) => None,
            Outliers::Detect(d) => Some(d),
        }
    }
}

/// Statistical outlier detection over the values of one file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// `iqr` (fences `Q1 - k·IQR`, `Q3 + k·IQR`) or `zscore` (`mean ± threshold·σ`).
    pub method: OutlierMethod,
    /// Numeric columns to test, each on its own statistics.
    pub columns: Vec<String>,
    /// IQR multiplier (default 1.5).
    #[serde(default)]
    pub k: Option<f64>,
    /// Z-score threshold (default 3.0).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// What to do with a value outside the fences.
    #[serde(default)]
    pub action: OutlierAction,
    /// Boolean contract column set true on flagged rows, false on the others.
    #[serde(default)]
    pub flag_column: Option<String>,
    /// What to do with values outside the contract's ranges.
    #[serde(default)]
    pub range: OutlierAction,
}

impl OutlierDetection {
    /// The IQR multiplier.
    pub fn k(&self) -> f64 {
        self.k.unwrap_or(1.5)
    }

    /// The z-score threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold.unwrap_or(3.0)
    }
}

/// How outliers are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierMethod {
    /// Interquartile range (exact quartiles).
    Iqr,
    /// Distance from the mean in standard deviations.
    Zscore,
}

/// What clean does with a value outside the contract's range or a statistical fence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierAction {
    /// Move the row to quarantine with the reason.
    #[default]
    Quarantine,
    /// Keep the row and count it in the run record (and set the flag column, if any).
    Flag,
    /// Set the value to the bound it crosses, keep the row and count it.
    Clip,
}

/// Gap filling: within each series, missing time slots between its first and last timestamp
/// become generated rows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GapRecipe {
    /// Timestamp (or date) column.
    pub time: String,
    /// Frequency: a number and a unit (`s`, `m`, `h`, `d`), e.g. `15m`, `1h`.
    pub every: String,
    /// Columns identifying a series (none: the whole file is one series).
    #[serde(default)]
    pub by: Vec<String>,
    /// What the other columns of a generated row hold.
    #[serde(default)]
    pub fill: GapFill,
    /// Boolean contract column: true on generated rows, false on real ones.
    pub marker: String,
    /// Most rows generated per file; more and the file is refused.
    #[serde(default = "default_max_filled")]
    pub max_filled_rows: u64,
}

fn default_max_filled() -> u64 {
    100_000
}

impl GapRecipe {
    /// The frequency in microseconds.
    pub fn every_micros(&self) -> std::result::Result<i64, String> {
        let e = self.every.trim();
        let split = e.find(|c: char| !c.is_ascii_digit()).unwrap_or(e.len());
        let (n, unit) = e.split_at(split);
        let n: i64 = n
            .parse()
            .map_err(|_| format!("gaps.every `{e}`: expected a number and a unit, e.g. `1h`"))?;
        let unit = match unit.trim() {
            "s" => 1_000_000,
            "m" | "min" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            other => {
                return Err(format!(
                    "gaps.every `{e}`: unknown unit `{other}` (use s, m, h or d)"
                ));
            }
        };
        match n.checked_mul(unit) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(format!("gaps.every `{e}` must be positive")),
        }
    }
}

/// What a generated row holds in its measure columns (every column but the time, series and
/// marker columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GapFill {
    /// Zero in numeric columns, null in the others.
    Zero,
    /// Null.
    #[default]
    Null,
    /// The values of the series' previous row.
    Forward,
}

/// How ingest reads timestamps (the recipe travels with the column specs).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampRecipe {
    /// chrono formats, or `epoch_s`, `epoch_ms`, `epoch_us`, tried in order before the
    /// built-in shapes.
    #[serde(default)]
    pub formats: Vec<String>,
    /// IANA zone of naive timestamps (for columns whose contract sets no `defaultTimezone`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Timestamp columns this applies to (none: every timestamp column).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Whether the built-in shapes are tried after `formats` (default true); with `false`,
    /// a value no format reads cannot be typed.
    #[serde(default = "yes")]
    pub builtin: bool,
}

/// How a personal-data column is protected before it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMethod {
    /// SHA-256 (hex) of the salted value: joinable, not readable.
    Hash,
    /// Replaced by `****` and the last four characters.
    Redact,
    /// Replaced by null.
    Null,
    /// SHA-256 (hex) of the value without a salt: a pseudonym anyone can recompute from a
    /// guessed value, weaker than `hash` (a policy requiring a hash replaces it).
    Sha256,
}

/// An aggregate product: SQL over its parent product and its other input ports, with its own
/// contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationConfig {
    /// Product name of the aggregate.
    pub name: String,
    /// Path of the aggregate's ODCS contract.
    pub contract: PathBuf,
    /// SQL over the parent product (the table named after it) and the input ports (tables
    /// named by their `as`).
    pub sql: String,
    /// Where the SQL runs.
    #[serde(default)]
    pub engine: Engine,
    /// Other products the SQL reads, of this domain or of others.
    #[serde(default)]
    pub inputs: Vec<InputConfig>,
}

/// Where an aggregation's SQL runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// DataFusion, inside the aggregate function.
    #[default]
    Datafusion,
    /// Athena (`UNLOAD` to the product's staging folder), for inputs larger than a function
    /// should read; where no Athena is configured (embedded), DataFusion runs the same SQL.
    Athena,
}

/// An input port of an aggregation, as written in the mesh file: the anti-corruption layer
/// between a product and what it reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `domain.product`, or `product` for one of the same domain.
    pub product: String,
    /// Table name the SQL uses; default the product's name.
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
    /// Contract id the input is pinned to; default the upstream contract's id at load.
    #[serde(default)]
    pub contract_id: Option<String>,
    /// Major version of the upstream contract this product is written against (required for
    /// another domain's product).
    #[serde(default)]
    pub major: Option<u64>,
    /// Columns the SQL sees, as `local name = "upstream column"`; empty: every upstream column
    /// under its own name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

/// A loaded input port of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateInput {
    /// Domain of the product read.
    pub domain: String,
    /// Product read.
    pub product: String,
    /// Table name in the SQL.
    pub alias: String,
    /// Contract id the input is pinned to.
    pub contract_id: String,
    /// Major version pinned, if any: a version of another major stops the aggregation.
    pub major: Option<u64>,
    /// `(local, upstream)` column pairs the SQL sees; empty: all columns as they are.
    pub columns: Vec<(String, String)>,
}

/// An entity product: the latest state per key of an event or change stream (its parent),
/// recomputed whole by aggregate with SQL generated from this declaration
/// ([`crate::entity::sql`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityConfig {
    /// Product name of the entity.
    pub name: Spanned<String>,
    /// Path of the entity's ODCS contract; its columns are columns of the stream.
    pub contract: PathBuf,
    /// Columns identifying an entity.
    pub key: Vec<String>,
    /// Columns ordering a key's events, latest last; default the CDC position of a Debezium
    /// stream, required otherwise.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// SQL predicate on the stream marking deletes; default `<op> = 'd'` for a Debezium stream.
    #[serde(default)]
    pub deletes: Option<String>,
    /// SQL predicate on the stream marking truncates (everything before one is dropped); default
    /// `<op> = 't'` for a Debezium stream.
    #[serde(default)]
    pub truncates: Option<String>,
}

/// A loaded mesh: every contract parsed and validated, every name checked.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// Name of the mesh.
    pub name: String,
    /// Folder of the mesh file; relative paths resolve against it.
    pub root: PathBuf,
    /// Environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// Default environment name.
    pub default_environment: String,
    /// Salt for hashing personal data.
    pub pii_salt: String,
    /// Attempts a stage makes at one input before refusing it ([`crate::delivery`]).
    pub max_attempts: u32,
    /// The organisation's policy, when the mesh names one.
    pub policy: Option<Policy>,
    /// Path of the policy file.
    pub policy_path: Option<PathBuf>,
    /// Domains.
    pub domains: Vec<Domain>,
}

/// A loaded domain.
#[derive(Debug, Clone)]
pub struct Domain {
    /// Domain name.
    pub name: String,
    /// What the domain is about.
    pub description: Option<String>,
    /// The domain's bucket.
    pub bucket: String,
    /// The domain's catalog database.
    pub database: String,
    /// Products, source products first, then their aggregates.
    pub products: Vec<Product>,
}

/// How a product comes to be.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few products per mesh, built once at load: the recipe is not worth a box"
)]
pub enum ProductKind {
    /// Raw files through ingest, clean and contract-check.
    Source {
        /// How raw files are read.
        source: SourceConfig,
        /// Cleaning steps.
        clean: CleanRecipe,
    },
    /// SQL over a parent product and other input ports, published by aggregate.
    Aggregate {
        /// The product this one is declared under (same domain), read whole.
        parent: String,
        /// The query.
        sql: String,
        /// Other products read, each through its input port.
        inputs: Vec<AggregateInput>,
        /// Where the query runs.
        engine: Engine,
    },
}

/// A loaded product.
#[derive(Debug, Clone)]
pub struct Product {
    /// Product name.
    pub name: String,
    /// Domain name.
    pub domain: String,
    /// The product's contract.
    pub contract: Contract,
    /// Path of the contract file.
    pub contract_path: PathBuf,
    /// Name of the schema object of the contract that describes the product.
    pub object: String,
    /// Source or aggregate.
    pub kind: ProductKind,
    /// Personal-data protection, by column: the recipe's, raised to what the policy requires
    /// for each column's classification (without a policy: a hash for every column classified
    /// `pii` that the recipe does not mention).
    pub mask: BTreeMap<String, MaskMethod>,
    /// Columns of the contract the policy drops: they are not in [`Product::schema`].
    pub dropped: Vec<String>,
    /// How the product breaks the policy, as far as can be told without data.
    pub violations: Vec<PolicyViolation>,
    /// Where each node of the contract is in its file.
    pub source_map: SourceMap,
    /// Partition folder names that differ from their column's name (mesh `partition_names`).
    pub partition_names: BTreeMap<String, String>,
}

impl Product {
    /// The name of the folders of a partition column (`partition_names`, else the column's).
    pub fn partition_folder<'a>(&'a self, column: &'a str) -> &'a str {
        self.partition_names
            .get(column)
            .map_or(column, String::as_str)
    }

    /// The schema object describing the product's table.
    pub fn schema(&self) -> &SchemaObject {
        // `Mesh::load` checked that the object exists.
        self.contract
            .schema
            .iter()
            .find(|o| o.name == self.object)
            .unwrap_or(&self.contract.schema[0])
    }

    /// What the product reads, one entry per input port: an aggregate reads its parent in its
    /// own domain and the products its `inputs` name (of any domain); a source product reads
    /// raw files only.
    pub fn inputs(&self) -> Vec<InputPort> {
        match &self.kind {
            ProductKind::Source { .. } => Vec::new(),
            ProductKind::Aggregate { parent, inputs, .. } => std::iter::once(InputPort {
                domain: self.domain.clone(),
                product: parent.clone(),
                kind: InputKind::Aggregation,
            })
            .chain(inputs.iter().map(|i| InputPort {
                domain: i.domain.clone(),
                product: i.product.clone(),
                kind: InputKind::Aggregation,
            }))
            .collect(),
        }
    }
}

/// A product read by another through one of its input ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputPort {
    /// Domain of the product read.
    pub domain: String,
    /// Name of the product read.
    pub product: String,
    /// How it is read.
    pub kind: InputKind,
}

/// How a product reads another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// The aggregate's SQL reads its parent product.
    Aggregation,
}

impl Mesh {
    /// Reads a mesh file and every contract it names.
    pub fn load(path: &Path) -> Result<Mesh> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read mesh file `{}`: {e}", path.display()))
        })?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let stamp = Validated::read(&root);
        Mesh::parse(
            &text,
            &path.display().to_string(),
            &root,
            std::env::var("TESSERA_PII_SALT").ok(),
            stamp.as_ref(),
        )
    }

    /// Parses a mesh from TOML text; paths resolve against `root`.
    pub fn from_toml(text: &str, origin: &str, root: &Path) -> Result<Mesh> {
        Mesh::from_toml_with_salt(text, origin, root, std::env::var("TESSERA_PII_SALT").ok())
    }

    /// [`Mesh::from_toml`] with the salt override given instead of read from `TESSERA_PII_SALT`.
    pub fn from_toml_with_salt(
        text: &str,
        origin: &str,
        root: &Path,
        salt: Option<String>,
    ) -> Result<Mesh> {
        Mesh::parse(text, origin, root, salt, None)
    }

    /// Parses a mesh, skipping the JSON Schema for the contracts `stamp` vouches for.
    fn parse(
        text: &str,
        origin: &str,
        root: &Path,
        salt: Option<String>,
        stamp: Option<&Validated>,
    ) -> Result<Mesh> {
        let file: MeshFile =
            toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        validate_identifier(&file.mesh.name.replace('-', "_"))
            .map_err(|e| Error::Config(format!("{origin}: mesh name: {e}")))?;
        let pii_salt = salt.or(file.mesh.pii_salt.clone()).unwrap_or_default();
        let (policy, policy_path) = match load_policy(&file, origin, root)? {
            Some((policy, path)) => (Some(policy), Some(path)),
            None => (None, None),
        };
        let loader = Loader {
            text,
            origin,
            root,
            policy: policy.as_ref(),
            stamp,
        };
        let mut domains = Vec::new();
        for d in &file.domains {
            validate_identifier(&d.name)
                .map_err(|e| Error::Config(format!("{origin}: domain: {e}")))?;
            let mut products = Vec::new();
            for p in &d.products {
                let name = p.name.get_ref();
                validate_identifier(name).map_err(|e| {
                    Error::Config(format!("{origin}: product of `{}`: {e}", d.name))
                })?;
                let source = p.source.get_ref();
                let lines = RecipeLines {
                    product: Some(loader.position(p.name.span().start)),
                    mask: p.mask.as_ref().map(|m| loader.position(m.span().start)),
                    source: Some(loader.position(p.source.span().start)),
                };
                let recipe = p
                    .mask
                    .as_ref()
                    .map(|m| m.get_ref().clone())
                    .unwrap_or_default();
                let product = loader.product(
                    &d.name,
                    name,
                    &p.contract,
                    p.object.as_deref(),
                    ProductKind::Source {
                        source: source.clone(),
                        clean: p.clean.clone(),
                    },
                    &recipe,
                    lines,
                )?;
                source.check(product.schema()).map_err(|e| {
                    let (line, column) = loader.position(p.source.span().start);
                    Error::Config(format!(
                        "{origin}:{line}:{column}: product `{name}`: source: {e}"
                    ))
                })?;
                if product.mask.values().any(|m| *m == MaskMethod::Hash) && pii_salt.is_empty() {
                    return Err(Error::Config(format!(
                        "{origin}: product `{name}` hashes personal data: set `mesh.pii_salt` or TESSERA_PII_SALT",
                    )));
                }
                if source.events.is_some() && source.format != SourceFormat::Ndjson {
                    let (line, column) = loader.position(p.source.span().start);
                    return Err(Error::Config(format!(
                        "{origin}:{line}:{column}: product `{name}`: `source.events` are batched as NDJSON: use `format = \"ndjson\"`"
                    )));
                }
                let mut product = product;
                for (column, folder) in &p.partition_names {
                    let partitioned = product
                        .schema()
                        .partition_columns()
                        .iter()
                        .any(|c| &c.name == column);
                    let problem = if !partitioned {
                        Some(format!(
                            "`{column}` is not a partition column of its contract"
                        ))
                    } else if product.schema().property(folder).is_some() {
                        Some(format!(
                            "partition folder name `{folder}` is a column of its contract"
                        ))
                    } else {
                        validate_identifier(folder).err().map(|e| e.to_string())
                    };
                    if let Some(m) = problem {
                        let (line, col) = loader.position(p.name.span().start);
                        return Err(Error::Config(format!(
                            "{origin}:{line}:{col}: product `{name}`: partition_names: {m}"
                        )));
                    }
                }
                product.partition_names.clone_from(&p.partition_names);
                if let Some(e) = cdc_problem(&product, source) {
                    let (line, column) = loader.position(p.source.span().start);
                    return Err(Error::Config(format!(
                        "{origin}:{line}:{column}: product `{name}`: {e}"
                    )));
                }
                let entities = p
                    .entities
                    .iter()
                    .map(|e| loader.entity(&d.name, &product, source, e))
                    .collect::<Result<Vec<_>>>()?;
                products.push(product);
                products.extend(entities);
                for a in &p.aggregations {
                    validate_identifier(&a.name)
                        .map_err(|e| Error::Config(format!("{origin}: aggregation: {e}")))?;
                    products.push(
                        loader.product(
                            &d.name,
                            &a.name,
                            &a.contract,
                            None,
                            ProductKind::Aggregate {
                                parent: name.clone(),
                                sql: a.sql.clone(),
                                inputs: a
                                    .inputs
                                    .iter()
                                    .map(|i| declared_input(&d.name, i))
                                    .collect::<Result<_>>()
                                    .map_err(|e| {
                                        Error::Config(format!(
                                            "{origin}: aggregation `{}`: {e}",
                                            a.name
                                        ))
                                    })?,
                                engine: a.engine,
                            },
                            &BTreeMap::new(),
                            RecipeLines {
                                product: Some(loader.position(p.name.span().start)),
                                ..RecipeLines::default()
                            },
                        )?,
                    );
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for p in &products {
                if !seen.insert(p.name.as_str()) {
                    return Err(Error::Config(format!(
                        "{origin}: domain `{}` has two products named `{}`",
                        d.name, p.name
                    )));
                }
            }
            domains.push(Domain {
                name: d.name.clone(),
                description: d.description.clone(),
                bucket: d
                    .bucket
                    .clone()
                    .unwrap_or_else(|| format!("tessera-{}-{}", file.mesh.name, d.name)),
                database: d.database.clone().unwrap_or_else(|| d.name.clone()),
                products,
            });
        }
        let mesh = Mesh {
            name: file.mesh.name,
            root: root.to_path_buf(),
            environments: file.environments,
            default_environment: file.mesh.default_environment,
            pii_salt,
            max_attempts: file.mesh.max_attempts.max(1),
            policy,
            policy_path,
            domains,
        };
        mesh.resolve_inputs(origin)
    }

    /// Checks every aggregation's input ports against the products they name, now that every
    /// domain is loaded: the product exists, the pinned contract id is its contract's, and,
    /// where the pinned major is the upstream's current one, the mapped columns exist. A pin
    /// to another major is not an error here: the upstream may have moved on, and aggregate
    /// stops on it with a report when it meets such a version.
    fn resolve_inputs(mut self, origin: &str) -> Result<Mesh> {
        let contracts: BTreeMap<(String, String), (String, String, Vec<String>)> = self
            .products()
            .map(|(d, p)| {
                let columns = p.schema().properties.iter().map(|c| c.name.clone());
                (
                    (d.name.clone(), p.name.clone()),
                    (
                        p.contract.id.clone(),
                        p.contract.version.clone(),
                        columns.collect(),
                    ),
                )
            })
            .collect();
        for d in &mut self.domains {
            for p in &mut d.products {
                let ProductKind::Aggregate { parent, inputs, .. } = &mut p.kind else {
                    continue;
                };
                let mut tables = vec![parent.clone()];
                for i in inputs.iter_mut() {
                    let at = format!(
                        "{origin}: aggregation `{}.{}`, input `{}.{}`",
                        d.name, p.name, i.domain, i.product
                    );
                    let Some((id, version, columns)) =
                        contracts.get(&(i.domain.clone(), i.product.clone()))
                    else {
                        return Err(Error::Config(format!("{at}: no such product in the mesh")));
                    };
                    if i.contract_id.is_empty() {
                        i.contract_id = id.clone();
                    } else if i.contract_id != *id {
                        return Err(Error::Config(format!(
                            "{at}: pinned to contract `{}`, but the product's contract is `{id}`",
                            i.contract_id
                        )));
                    }
                    if i.domain != d.name && i.major.is_none() {
                        return Err(Error::Config(format!(
                            "{at}: a product of another domain is read through a pinned major \
                             version: add `major = {}`",
                            major_of(version).unwrap_or(1)
                        )));
                    }
                    if i.major.is_none() || i.major == major_of(version) {
                        for (local, upstream) in &i.columns {
                            if !columns.contains(upstream) {
                                return Err(Error::Config(format!(
                                    "{at}: column `{local}` maps `{upstream}`, which contract \
                                     `{id}` {version} does not declare"
                                )));
                            }
                        }
                    }
                    if tables.contains(&i.alias) {
                        return Err(Error::Config(format!(
                            "{at}: two tables of the aggregation are named `{}`: set `as`",
                            i.alias
                        )));
                    }
                    tables.push(i.alias.clone());
                }
            }
        }
        if let Some(cycle) = self.input_cycle() {
            return Err(Error::Config(format!(
                "{origin}: aggregations read each other in a cycle: {}",
                cycle.join(" → ")
            )));
        }
        Ok(self)
    }

    /// A cycle of products reading each other through their input ports, if any.
    fn input_cycle(&self) -> Option<Vec<String>> {
        fn visit(
            mesh: &Mesh,
            node: (String, String),
            path: &mut Vec<(String, String)>,
            done: &mut std::collections::BTreeSet<(String, String)>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|n| *n == node) {
                let mut cycle: Vec<String> =
                    path[at..].iter().map(|(d, p)| format!("{d}.{p}")).collect();
                cycle.push(format!("{}.{}", node.0, node.1));
                return Some(cycle);
            }
            if !done.insert(node.clone()) {
                return None;
            }
            let product = mesh.product(&node.0, &node.1)?;
            path.push(node);
            for i in product.inputs() {
                if let Some(cycle) = visit(mesh, (i.domain, i.product), path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = std::collections::BTreeSet::new();
        self.products().find_map(|(d, p)| {
            visit(
                self,
                (d.name.clone(), p.name.clone()),
                &mut Vec::new(),
                &mut done,
            )
        })
    }

    /// The policy a mesh file names, and its path, without loading the rest of the mesh (for
    /// tools that work on contracts alone).
    pub fn policy_of(path: &Path) -> Result<Option<(Policy, PathBuf)>> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read mesh file `{origin}`: {e}")))?;
        let file: MeshFile =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        load_policy(&file, &origin, &root)
    }

    /// The domain that owns a bucket.
    pub fn domain_of_bucket(&self, bucket: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.bucket == bucket)
    }

    /// A domain by name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// A product by domain and name.
    pub fn product(&self, domain: &str, name: &str) -> Option<&Product> {
        self.domain(domain)?
            .products
            .iter()
            .find(|p| p.name == name)
    }

    /// Every product of every domain.
    pub fn products(&self) -> impl Iterator<Item = (&Domain, &Product)> {
        self.domains
            .iter()
            .flat_map(|d| d.products.iter().map(move |p| (d, p)))
    }

    /// The products that read `domain.product` through an input port, each with its domain and
    /// the port.
    pub fn consumers(&self, domain: &str, product: &str) -> Vec<(&Domain, &Product, InputPort)> {
        self.products()
            .flat_map(|(d, p)| {
                p.inputs()
                    .into_iter()
                    .filter(|i| i.domain == domain && i.product == product)
                    .map(move |i| (d, p, i))
            })
            .collect()
    }

    /// An environment by name.
    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.environments
            .get(name)
            .ok_or_else(|| Error::Config(format!("no environment `{name}` in the mesh file")))
    }
}

/// The major version of a contract version (`2.1.0` → 2; `v3` → 3).
pub fn major_of(version: &str) -> Option<u64> {
    version
        .trim_start_matches(['v', 'V'])
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
}

/// An input port as declared, before the products it names are checked.
fn declared_input(domain: &str, i: &InputConfig) -> Result<AggregateInput> {
    let (upstream_domain, product) = match i.product.split_once('.') {
        Some((d, p)) => (d.to_string(), p.to_string()),
        None => (domain.to_string(), i.product.clone()),
    };
    validate_identifier(&upstream_domain.replace('-', "_"))
        .and_then(|()| validate_identifier(&product))
        .map_err(|e| Error::Config(format!("input `{}`: {e}", i.product)))?;
    let alias = i.alias.clone().unwrap_or_else(|| product.clone());
    validate_identifier(&alias).map_err(|e| Error::Config(format!("input `as`: {e}")))?;
    let mut columns = Vec::with_capacity(i.columns.len());
    for (local, upstream) in &i.columns {
        validate_identifier(local)
            .map_err(|e| Error::Config(format!("input `{}` column: {e}", i.product)))?;
        columns.push((local.clone(), upstream.clone()));
    }
    Ok(AggregateInput {
        domain: upstream_domain,
        product,
        alias,
        contract_id: i.contract_id.clone().unwrap_or_default(),
        major: i.major,
        columns,
    })
}

/// The policy file a mesh file names, read and validated.
fn load_policy(file: &MeshFile, origin: &str, root: &Path) -> Result<Option<(Policy, PathBuf)>> {
    let Some(rel) = &file.mesh.policy else {
        return Ok(None);
    };
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Config(format!(
            "{origin}: cannot read policy `{}`: {e}",
            path.display()
        ))
    })?;
    let policy = Policy::from_yaml(&text, &path.display().to_string())?;
    Ok(Some((policy, path)))
}

/// What every product of a mesh file is loaded with.
struct Loader<'a> {
    text: &'a str,
    origin: &'a str,
    root: &'a Path,
    policy: Option<&'a Policy>,
    /// The package's validation stamp, when the mesh was loaded from one.
    stamp: Option<&'a Validated>,
}

impl Loader<'_> {
    /// Line and column of a byte offset of the mesh file.
    fn position(&self, offset: usize) -> (usize, usize) {
        org::line_column(self.text, offset)
    }

    /// An entity product of `stream`: its SQL generated, its columns and settings checked
    /// against the stream's contract (errors located in the mesh file).
    fn entity(
        &self,
        domain: &str,
        stream: &Product,
        source: &SourceConfig,
        e: &EntityConfig,
    ) -> Result<Product> {
        let name = e.name.get_ref();
        let (line, column) = self.position(e.name.span().start);
        let origin = self.origin;
        let fail = |m: String| {
            Error::Config(format!(
                "{origin}:{line}:{column}: entity `{name}` of `{}`: {m}",
                stream.name
            ))
        };
        validate_identifier(name).map_err(|er| fail(er.to_string()))?;
        let spec = crate::entity::EntitySpec::resolve(stream, source, e).map_err(fail)?;
        let product = self.product(
            domain,
            name,
            &e.contract,
            None,
            ProductKind::Aggregate {
                parent: stream.name.clone(),
                sql: String::new(),
                inputs: Vec::new(),
                engine: Engine::Datafusion,
            },
            &BTreeMap::new(),
            RecipeLines {
                product: Some((line, column)),
                ..RecipeLines::default()
            },
        )?;
        let columns: Vec<String> = product
            .schema()
            .properties
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for c in &columns {
            if stream.schema().property(c).is_none() {
                return Err(fail(format!(
                    "column `{c}` of its contract is not a column of the stream"
                )));
            }
        }
        let sql = spec.sql(&columns);
        Ok(Product {
            kind: ProductKind::Aggregate {
                parent: stream.name.clone(),
                sql,
                inputs: Vec::new(),
                engine: Engine::Datafusion,
            },
            ..product
        })
    }

    /// A product: its contract read and linted, its masks resolved with the policy, the columns
    /// the policy drops removed, and its static policy violations listed.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        domain: &str,
        name: &str,
        contract_file: &Path,
        object: Option<&str>,
        kind: ProductKind,
        recipe: &BTreeMap<String, MaskMethod>,
        lines: RecipeLines,
    ) -> Result<Product> {
        let origin = self.origin;
        let fail = |e: String| Error::Config(format!("{origin}: product `{name}`: {e}"));
        let (mut contract, object, source_map) =
            load_contract(self.root, contract_file, object, self.stamp)?;
        let index = contract
            .schema
            .iter()
            .position(|o| o.name == object)
            .unwrap_or_default();
        let schema = &contract.schema[index];
        for column in recipe.keys() {
            if schema.property(column).is_none() {
                return Err(fail(format!(
                    "masked column `{column}` is not in its contract"
                )));
            }
        }
        let protection = org::protection(self.policy, schema, index, recipe);
        let contract_path = self.root.join(contract_file);
        let violations = match self.policy {
            Some(policy) => org::static_violations(&org::Subject {
                policy,
                domain,
                product: name,
                contract: &contract,
                map: &source_map,
                object: &object,
                contract_file: &contract_path,
                mesh_file: origin,
                lines,
                source: match &kind {
                    ProductKind::Source { source, .. } => Some(source.format),
                    ProductKind::Aggregate { .. } => None,
                },
                weaker: &protection.weaker,
            }),
            None => Vec::new(),
        };
        if !protection.dropped.is_empty() {
            drop_columns(&mut contract.schema[index], &protection.dropped, &kind).map_err(fail)?;
        }
        let mask = match &kind {
            // Aggregates compute from published (masked) products: nothing to mask again.
            ProductKind::Aggregate { .. } => BTreeMap::new(),
            ProductKind::Source { .. } => protection.mask,
        };
        check_masks(&contract.schema[index], &mask).map_err(fail)?;
        if let ProductKind::Source { clean, .. } = &kind {
            crate::stages::clean::validate(&contract.schema[index], clean)
                .map_err(|e| fail(format!("clean recipe: {e}")))?;
        }
        Ok(Product {
            name: name.to_owned(),
            domain: domain.to_owned(),
            contract,
            contract_path,
            object,
            kind,
            mask,
            dropped: protection.dropped,
            violations,
            source_map,
            partition_names: BTreeMap::new(),
        })
    }
}

/// What is wrong with a product's CDC settings: `cdc` on a format other than Debezium, or a
/// metadata or key column its contract does not declare (the position must be text).
fn cdc_problem(product: &Product, source: &SourceConfig) -> Option<String> {
    if source.format != SourceFormat::Debezium {
        return source
            .cdc
            .as_ref()
            .map(|_| "`source.cdc` applies to `format = \"debezium\"` only".to_owned());
    }
    let cdc = source.cdc_columns();
    let schema = product.schema();
    let named = cdc
        .metadata()
        .into_iter()
        .map(|(f, c)| (format!("source.cdc.{f}"), (*c).to_owned()))
        .chain(
            cdc.key
                .iter()
                .map(|k| ("source.cdc.key".to_owned(), k.clone())),
        );
    for (field, column) in named {
        if schema.property(&column).is_none() {
            return Some(format!(
                "`{field}` names column `{column}`, which contract `{}` does not declare",
                product.contract_path.display()
            ));
        }
    }
    let position = schema.property(&cdc.position)?;
    if !position
        .data_type()
        .is_ok_and(|t| t == arrow::datatypes::DataType::Utf8)
    {
        return Some(format!(
            "CDC position column `{}` must be text (logicalType string)",
            cdc.position
        ));
    }
    None
}

/// Removes the columns the policy drops from the product's schema object. A key, partition or
/// recipe column cannot be dropped, and the object's rules must still compile without them.
fn drop_columns(
    schema: &mut SchemaObject,
    dropped: &[String],
    kind: &ProductKind,
) -> std::result::Result<(), String> {
    for column in dropped {
        let Some(p) = schema.property(column) else {
            continue;
        };
        let role = if p.primary_key {
            Some("part of the primary key")
        } else if p.partitioned {
            Some("a partition column")
        } else if let ProductKind::Source { clean, .. } = kind
            && clean.columns().contains(column)
        {
            Some("named by the clean recipe")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(format!(
                "column `{column}` is {role}, but the policy drops its classification `{}`",
                p.classification.as_deref().unwrap_or_default()
            ));
        }
    }
    schema.properties.retain(|p| !dropped.contains(&p.name));
    tessera_contract::Checker::new(schema)
        .map(|_| ())
        .map_err(|e| format!("without the columns the policy drops, its rules do not compile: {e}"))
}

/// Each masked column exists, and only text is hashed or redacted.
fn check_masks(
    schema: &SchemaObject,
    masks: &BTreeMap<String, MaskMethod>,
) -> std::result::Result<(), String> {
    for (column, method) in masks {
        let property = schema
            .property(column)
            .ok_or_else(|| format!("masked column `{column}` is not in its contract"))?;
        let is_text = property
            .data_type()
            .is_ok_and(|t| t == arrow::datatypes::DataType::Utf8);
        if *method != MaskMethod::Null && !is_text {
            return Err(format!(
                "column `{column}` is not text: it can only be masked with `null`"
            ));
        }
    }
    Ok(())
}

fn load_contract(
    root: &Path,
    rel: &Path,
    object: Option<&str>,
    stamp: Option<&Validated>,
) -> Result<(Contract, String, SourceMap)> {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("cannot read contract `{}`: {e}", path.display())))?;
    let schema = Validated::schema_for(stamp, rel, &text);
    let (contract, map) =
        tessera_contract::policy::lint_located_with(&text, &rel.display().to_string(), schema)?;
    let name = match object {
        Some(o) => contract.object(o).map(|o| o.name.clone()).ok_or_else(|| {
            Error::Config(format!("contract `{}` has no object `{o}`", rel.display()))
        })?,
        None => contract
            .schema
            .first()
            .map(|o| o.name.clone())
            .ok_or_else(|| Error::Config(format!("contract `{}` has no schema", rel.display())))?,
    };
    Ok((contract, name, map))
}
