//! Infrastructure as code for a Tessera mesh: CloudFormation and SAM templates generated from the
//! mesh file and the contracts, never written by hand.
//!
//! * the **platform stack** ([`platform`]), one per mesh: the product event bus, the Athena
//!   workgroup and its results bucket, Glue Data Catalog encryption;
//! * one **domain stack** per domain ([`domain`], SAM): its key and bucket, the five functions
//!   with one role each ([`access`]: least privilege per stage), one EventBridge rule per
//!   routing rule of [`tessera_core::routing::rules`], the hourly schedule of the service-level
//!   check, and the Glue database and tables ([`glue`]: the tables catalog-register writes);
//! * the **mesh layer**: the mesh file and its contracts, which every function loads from
//!   `/opt`.
//!
//! Output is deterministic byte for byte ([`json`]), so the generated files are committed and a
//! test proves they are current.
#![warn(missing_docs)]

use std::path::{Component, Path, PathBuf};

use serde_json::Value;
use tessera_core::mesh::{Environment, Mesh, VALIDATED_FILE, Validated};

pub mod access;
pub mod cfn;
pub mod domain;
pub mod events;
pub mod glue;
pub mod json;
pub mod names;
pub mod platform;
pub mod resources;

/// What can go wrong generating templates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mesh or the options cannot be turned into stacks.
    #[error("{0}")]
    Config(String),
    /// The mesh (a contract, a product) could not be described.
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Folder, next to the templates, holding the mesh layer's content.
pub const MESH_LAYER_DIR: &str = "mesh";
/// File name of the platform stack's template.
pub const PLATFORM_TEMPLATE: &str = "platform.template.json";
/// Environment the stacks are generated for unless told otherwise.
pub const DEFAULT_ENVIRONMENT: &str = "aws";

/// The domains in the order their stacks deploy: a domain after the domains whose products its
/// aggregations read (its stack imports their keys' ARNs); otherwise in mesh order. The mesh
/// refuses cycles of input ports, but two domains may still read each other's products: their
/// stacks then cannot be ordered, and the error says so.
pub fn deploy_order(mesh: &Mesh) -> Result<Vec<&tessera_core::mesh::Domain>> {
    let reads = |d: &tessera_core::mesh::Domain| -> Vec<String> {
        access::aggregation_inputs(d)
            .into_iter()
            .filter(|i| i.domain != d.name)
            .map(|i| i.domain)
            .collect()
    };
    let mut order: Vec<&tessera_core::mesh::Domain> = Vec::with_capacity(mesh.domains.len());
    while order.len() < mesh.domains.len() {
        let next = mesh.domains.iter().find(|d| {
            !order.iter().any(|o| o.name == d.name)
                && reads(d).iter().all(|r| order.iter().any(|o| o.name == *r))
        });
        match next {
            Some(d) => order.push(d),
            None => {
                let left: Vec<&str> = mesh
                    .domains
                    .iter()
                    .filter(|d| !order.iter().any(|o| o.name == d.name))
                    .map(|d| d.name.as_str())
                    .collect();
                return Err(Error::Config(format!(
                    "the stacks of domains {left:?} import each other's exports: they cannot be \
                     deployed in any order"
                )));
            }
        }
    }
    Ok(order)
}

/// File name of a domain stack's template.
pub fn domain_template_file(domain: &str) -> String {
    format!("{domain}.template.json")
}

/// Where the functions' code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// The Cargo workspace, relative to the template's folder: `sam build` compiles each
    /// function with cargo-lambda.
    Workspace(String),
    /// Zips already uploaded: `s3://<bucket>/<prefix>/<function>.zip` for each function, and
    /// `mesh.zip` for the mesh layer (the content of the `mesh/` folder `synth` writes, the mesh
    /// file at the zip's root), so the template deploys without `sam build` or packaging.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix, without trailing slash.
        prefix: String,
    },
}

impl Code {
    /// `s3://bucket/prefix` for uploaded zips, anything else a workspace path.
    pub fn parse(uri: &str) -> Result<Code> {
        match uri.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::Config(format!("`{uri}` names no bucket")));
                }
                Ok(Code::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
            None if uri.is_empty() => Err(Error::Config("empty code location".into())),
            None => Ok(Code::Workspace(uri.to_owned())),
        }
    }
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mesh environment the functions run in (`TESSERA_ENV`); it must be AWS itself.
    pub environment: String,
    /// File name of the mesh file, in the mesh's folder (`samplecli.toml`).
    pub mesh_file: String,
    /// Where the functions' code comes from.
    pub code: Code,
}

impl Options {
    /// Defaults: the `aws` environment, code built from the workspace one folder up (templates
    /// live in `infra/`).
    pub fn new(mesh_file: impl Into<String>) -> Options {
        Options {
            environment: DEFAULT_ENVIRONMENT.to_owned(),
            mesh_file: mesh_file.into(),
            code: Code::Workspace("..".to_owned()),
        }
    }
}

/// What the stacks take from the mesh environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Environment name.
    pub environment: String,
    /// Region the functions call.
    pub region: String,
    /// Name of the product event bus.
    pub event_bus: String,
}

impl Settings {
    /// The settings of `environment`, which must be AWS itself (not an emulator).
    pub fn resolve(mesh: &Mesh, environment: &str) -> Result<Settings> {
        match mesh.environment(environment)? {
            Environment::Aws {
                region,
                endpoint_url: None,
                event_bus,
                endpoints,
                ..
            } if *endpoints == Default::default() => Ok(Settings {
                environment: environment.to_owned(),
                region: region.clone(),
                event_bus: event_bus.clone(),
            }),
            Environment::Aws { .. } => Err(Error::Config(format!(
                "environment `{environment}` points at an endpoint (an emulator): stacks are for AWS itself"
            ))),
            Environment::Embedded { .. } => Err(Error::Config(format!(
                "environment `{environment}` is embedded: stacks need an `aws` backend"
            ))),
        }
    }
}

/// Which stacks to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stacks {
    /// The platform stack.
    Platform,
    /// One domain's stack (and the mesh layer it uses).
    Domain(String),
    /// Every stack and the mesh layer.
    All,
}

/// A generated file, relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Path under the output folder.
    pub path: PathBuf,
    /// Content.
    pub contents: Vec<u8>,
}

fn template_artifact(path: String, template: &Value) -> Artifact {
    Artifact {
        path: PathBuf::from(path),
        contents: json::to_text(template).into_bytes(),
    }
}

/// The platform stack's template.
pub fn platform_template(mesh: &Mesh, options: &Options) -> Result<Value> {
    platform::template(mesh, &Settings::resolve(mesh, &options.environment)?)
}

/// A domain stack's template.
pub fn domain_template(mesh: &Mesh, domain: &str, options: &Options) -> Result<Value> {
    check(mesh, options)?;
    let d = mesh
        .domain(domain)
        .ok_or_else(|| Error::Config(format!("the mesh has no domain `{domain}`")))?;
    domain::template(
        mesh,
        d,
        &Settings::resolve(mesh, &options.environment)?,
        options,
    )
}

fn check(mesh: &Mesh, options: &Options) -> Result<()> {
    if options.mesh_file.is_empty() || options.mesh_file.contains(['/', '\\']) {
        return Err(Error::Config(format!(
            "`{}` is not a file name: give the mesh file's name, in the mesh folder",
            options.mesh_file
        )));
    }
    if let Some(d) = mesh.domains.iter().find(|d| d.name == "platform") {
        return Err(Error::Config(format!(
            "a domain may not be called `{}`: the platform stack has that name",
            d.name
        )));
    }
    Ok(())
}

/// The files of the mesh layer: the mesh file, every contract it names and its policy file, at
/// their paths relative to the mesh file, under [`MESH_LAYER_DIR`], with the stamp
/// ([`VALIDATED_FILE`]) that spares the functions the contracts' JSON Schema at start.
pub fn mesh_layer(mesh: &Mesh, options: &Options) -> Result<Vec<Artifact>> {
    check(mesh, options)?;
    let mut files = vec![PathBuf::from(&options.mesh_file)];
    let named = mesh
        .products()
        .map(|(_, p)| ("contract", &p.contract_path))
        .chain(mesh.policy_path.iter().map(|p| ("policy", p)));
    for (what, path) in named {
        let relative = path.strip_prefix(&mesh.root).unwrap_or(path);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Error::Config(format!(
                "{what} `{}` is outside the mesh folder: it cannot be packaged with the mesh file",
                path.display()
            )));
        }
        files.push(relative.to_path_buf());
    }
    files.sort();
    files.dedup();
    let mut artifacts = files
        .into_iter()
        .map(|relative| {
            let source = mesh.root.join(&relative);
            let contents = std::fs::read(&source).map_err(|e| Error::Io {
                path: source.clone(),
                source: e,
            })?;
            Ok(Artifact {
                path: Path::new(MESH_LAYER_DIR).join(relative),
                contents,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // `mesh` was loaded with every contract checked: the functions need not check them again.
    let stamp = Validated::of(mesh)?;
    artifacts.push(Artifact {
        path: Path::new(MESH_LAYER_DIR).join(VALIDATED_FILE),
        contents: stamp.to_json(),
    });
    Ok(artifacts)
}

/// Every file of `stacks`: templates, and the mesh layer when a domain stack is included.
pub fn synth(mesh: &Mesh, options: &Options, stacks: &Stacks) -> Result<Vec<Artifact>> {
    check(mesh, options)?;
    let mut out = Vec::new();
    if matches!(stacks, Stacks::Platform | Stacks::All) {
        out.push(template_artifact(
            PLATFORM_TEMPLATE.to_owned(),
            &platform_template(mesh, options)?,
        ));
    }
    let domains: Vec<&str> = match stacks {
        Stacks::Platform => vec![],
        Stacks::Domain(d) => vec![d.as_str()],
        Stacks::All => mesh.domains.iter().map(|d| d.name.as_str()).collect(),
    };
    for d in &domains {
        out.push(template_artifact(
            domain_template_file(d),
            &domain_template(mesh, d, options)?,
        ));
    }
    if !domains.is_empty() {
        out.extend(mesh_layer(mesh, options)?);
    }
    Ok(out)
}

/// The generated files found in `out`: `*.template.json` and everything under the mesh layer
/// folder, sorted, relative to `out`.
pub fn generated_files(out: &Path) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut found = Vec::new();
    if out.is_dir() {
        for entry in std::fs::read_dir(out).map_err(io(out))? {
            let entry = entry.map_err(io(out))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".template.json") && entry.path().is_file() {
                found.push(PathBuf::from(name));
            }
        }
    }
    let mut stack = vec![PathBuf::from(MESH_LAYER_DIR)];
    while let Some(dir) = stack.pop() {
        let full = out.join(&dir);
        if !full.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&full).map_err(io(&full))? {
            let entry = entry.map_err(io(&full))?;
            let relative = dir.join(entry.file_name());
            if entry.path().is_dir() {
                stack.push(relative);
            } else {
                found.push(relative);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `artifacts` under `out`. With `prune`, generated files no artifact names (a domain
/// removed from the mesh, a contract moved) are deleted. Returns what changed: written files,
/// then deleted ones.
pub fn write(
    out: &Path,
    artifacts: &[Artifact],
    prune: bool,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut written = Vec::new();
    for a in artifacts {
        let path = out.join(&a.path);
        if std::fs::read(&path).is_ok_and(|current| current == a.contents) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &a.contents).map_err(io(&path))?;
        written.push(path);
    }
    let mut deleted = Vec::new();
    if prune {
        for stale in generated_files(out)?
            .into_iter()
            .filter(|f| !artifacts.iter().any(|a| &a.path == f))
        {
            let path = out.join(stale);
            std::fs::remove_file(&path).map_err(io(&path))?;
            deleted.push(path);
        }
    }
    Ok((written, deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's root.
    pub(crate) fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The sample mesh of the repository.
    pub(crate) fn sample() -> Mesh {
        Mesh::load(&repo_root().join("samplecli.toml")).unwrap()
    }

    #[test]
    fn a_domain_deploys_after_the_domains_it_reads() {
        let mesh = sample();
        let order: Vec<&str> = deploy_order(&mesh)
            .unwrap()
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        // sales.segment_revenue reads customers.customers.
        assert_eq!(order, ["customers", "sales"]);
    }

    #[test]
    fn code_locations() {
        assert_eq!(Code::parse("..").unwrap(), Code::Workspace("..".into()));
        assert_eq!(
            Code::parse("s3://artifacts/tessera/v1/").unwrap(),
            Code::S3 {
                bucket: "artifacts".into(),
                prefix: "tessera/v1".into()
            }
        );
        assert!(Code::parse("s3:///x").is_err());
    }

    #[test]
    fn uploaded_zips_hold_the_functions_and_the_mesh_layer() {
        let mesh = sample();
        let mut options = Options::new("samplecli.toml");
        let t = domain_template(&mesh, "sales", &options).unwrap();
        assert_eq!(
            t["Resources"]["MeshLayer"]["Properties"]["ContentUri"],
            "mesh/"
        );
        assert_eq!(
            t["Resources"]["IngestFunction"]["Properties"]["CodeUri"],
            ".."
        );
        options.code = Code::parse("s3://artifacts/tessera/v1").unwrap();
        let t = domain_template(&mesh, "sales", &options).unwrap();
        assert_eq!(
            t["Resources"]["MeshLayer"]["Properties"]["ContentUri"],
            serde_json::json!({ "Bucket": "artifacts", "Key": "tessera/v1/mesh.zip" })
        );
        assert_eq!(
            t["Resources"]["ContractCheckFunction"]["Properties"]["CodeUri"],
            serde_json::json!({ "Bucket": "artifacts", "Key": "tessera/v1/contract-check.zip" })
        );
        // Nothing left for `sam build` to build.
        assert!(
            t["Resources"]["ContractCheckFunction"]["Metadata"]
                .get("BuildMethod")
                .is_none()
        );
        options.code = Code::parse("s3://artifacts").unwrap();
        let t = domain_template(&mesh, "sales", &options).unwrap();
        assert_eq!(
            t["Resources"]["MeshLayer"]["Properties"]["ContentUri"]["Key"],
            "mesh.zip"
        );
    }

    #[test]
    fn only_aws_itself_gets_stacks() {
        let mesh = sample();
        assert_eq!(
            Settings::resolve(&mesh, "aws").unwrap().event_bus,
            "tessera-products"
        );
        for env in ["embedded", "emulator", "localstack", "nowhere"] {
            assert!(Settings::resolve(&mesh, env).is_err(), "{env}");
        }
    }

    #[test]
    fn write_prunes_stale_generated_files_only() {
        let mesh = sample();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join("README.md"), "keep").unwrap();
        std::fs::write(out.join("gone.template.json"), "{}").unwrap();
        std::fs::create_dir_all(out.join("mesh/old")).unwrap();
        std::fs::write(out.join("mesh/old/x.odcs.yaml"), "x").unwrap();
        let artifacts = synth(&mesh, &Options::new("samplecli.toml"), &Stacks::All).unwrap();
        let (written, deleted) = write(out, &artifacts, true).unwrap();
        assert_eq!(written.len(), artifacts.len());
        assert_eq!(deleted.len(), 2);
        assert!(out.join("README.md").exists());
        let on_disk = generated_files(out).unwrap();
        let mut expected: Vec<PathBuf> = artifacts.iter().map(|a| a.path.clone()).collect();
        expected.sort();
        assert_eq!(on_disk, expected);
        // Nothing changes the second time.
        assert_eq!(write(out, &artifacts, true).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn the_mesh_layer_holds_the_mesh_file_and_every_contract() {
        let mesh = sample();
        let layer = mesh_layer(&mesh, &Options::new("samplecli.toml")).unwrap();
        let paths: Vec<String> = layer.iter().map(|a| a.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "mesh/domains/customers/customer_changes/customer_changes.odcs.yaml",
                "mesh/domains/customers/customer_state/customer_state.odcs.yaml",
                "mesh/domains/customers/customers/customers.odcs.yaml",
                "mesh/domains/sales/daily_revenue/daily_revenue.odcs.yaml",
                "mesh/domains/sales/order_events/order_events.odcs.yaml",
                "mesh/domains/sales/orders/orders.odcs.yaml",
                "mesh/domains/sales/segment_revenue/segment_revenue.odcs.yaml",
                "mesh/policy.yaml",
                "mesh/samplecli.toml",
                "mesh/.tessera-validated.json",
            ]
        );
        // What the functions load from /opt is a mesh that loads, and the stamp vouches for
        // every contract in it.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &layer, false).unwrap();
        let loaded = Mesh::load(&dir.path().join("mesh/samplecli.toml")).unwrap();
        assert_eq!(loaded.products().count(), mesh.products().count());
        let stamp: serde_json::Value =
            serde_json::from_slice(&layer.last().unwrap().contents).unwrap();
        assert_eq!(stamp["contracts"].as_object().unwrap().len(), 7);
        assert_eq!(
            Validated::of(&loaded).unwrap().to_json(),
            layer.last().unwrap().contents
        );
        assert!(mesh_layer(&mesh, &Options::new("dir/samplecli.toml")).is_err());
    }
}
