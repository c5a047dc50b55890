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
    /// Comma-separated values (RFC 4180).
    Csv,
    /// Newline-delimited JSON, one object per line.
    Ndjson,
    /// Debezium change events, one JSON event per line (see [`crate::cdc`]).
    Debezium,
}

/// Where raw data comes from and how to read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// File format.
    pub format: SourceFormat,
    /// Field delimiter for CSV (one byte).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Whether the first CSV line names the columns.
    #[serde(default = "yes")]
    pub header: bool,
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

fn yes() -> bool {
    true
}

/// Cleaning steps of a product, applied in this order: trim, case, deduplicate, latest per key,
/// defaults, row rules (required, valid values, patterns, ranges).
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
    /// Keep only the latest row per primary key, ordered by this column (later rows win ties).
    #[serde(default)]
    pub latest_by: Option<String>,
    /// Values for nulls in optional columns (column → value, parsed as the column's type).
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// What to do with values outside the contract's ranges.
    #[serde(default)]
    pub outliers: OutlierAction,
}

impl Default for CleanRecipe {
    fn default() -> Self {
        CleanRecipe {
            trim: true,
            lowercase: Vec::new(),
            uppercase: Vec::new(),
            drop_exact_duplicates: true,
            latest_by: None,
            defaults: BTreeMap::new(),
            outliers: OutlierAction::default(),
        }
    }
}

/// What clean does with a value outside the contract's range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierAction {
    /// Move the row to quarantine with the reason.
    #[default]
    Quarantine,
    /// Keep the row and count it in the run record.
    Flag,
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
}

/// An aggregate product: SQL over its parent product, with its own contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationConfig {
    /// Product name of the aggregate.
    pub name: String,
    /// Path of the aggregate's ODCS contract.
    pub contract: PathBuf,
    /// SQL over the parent product, which is the table named after it.
    pub sql: String,
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
pub enum ProductKind {
    /// Raw files through ingest, clean and contract-check.
    Source {
        /// How raw files are read.
        source: SourceConfig,
        /// Cleaning steps.
        clean: CleanRecipe,
    },
    /// SQL over a parent product, published by aggregate.
    Aggregate {
        /// The product this one is computed from.
        parent: String,
        /// The query.
        sql: String,
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
}

impl Product {
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
    /// own domain; a source product reads raw files only. Input ports on other domains'
    /// products are listed here too when the mesh file can declare them.
    pub fn inputs(&self) -> Vec<InputPort> {
        match &self.kind {
            ProductKind::Source { .. } => Vec::new(),
            ProductKind::Aggregate { parent, .. } => vec![InputPort {
                domain: self.domain.clone(),
                product: parent.clone(),
                kind: InputKind::Aggregation,
            }],
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
        Mesh::from_toml(&text, &path.display().to_string(), &root)
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
                    products.push(loader.product(
                        &d.name,
                        &a.name,
                        &a.contract,
                        None,
                        ProductKind::Aggregate {
                            parent: name.clone(),
                            sql: a.sql.clone(),
                        },
                        &BTreeMap::new(),
                        RecipeLines {
                            product: Some(loader.position(p.name.span().start)),
                            ..RecipeLines::default()
                        },
                    )?);
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
        Ok(Mesh {
            name: file.mesh.name,
            root: root.to_path_buf(),
            environments: file.environments,
            default_environment: file.mesh.default_environment,
            pii_salt,
            policy,
            policy_path,
            domains,
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
        let (mut contract, object, source_map) = load_contract(self.root, contract_file, object)?;
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
            && (clean.lowercase.contains(column)
                || clean.uppercase.contains(column)
                || clean.latest_by.as_ref() == Some(column)
                || clean.defaults.contains_key(column))
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
) -> Result<(Contract, String, SourceMap)> {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("cannot read contract `{}`: {e}", path.display())))?;
    let (contract, map) =
        tessera_contract::policy::lint_located(&text, &rel.display().to_string())?;
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
