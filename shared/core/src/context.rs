//! The ports a stage runs against, built once per process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bus::{EventBus, InProcessBus};
use crate::catalog::{Catalog, FileCatalog};
use crate::error::{Error, Result};
use crate::mesh::{Domain, Environment, Mesh};
use crate::query::PushDown;
use crate::storage::{LocalBuckets, Storage};

/// Everything a stage needs: the mesh and the four ports.
#[derive(Debug, Clone)]
pub struct Context {
    /// Domains, products, contracts and recipes.
    pub mesh: Arc<Mesh>,
    /// Object storage.
    pub storage: Storage,
    /// Where product events go.
    pub bus: Arc<dyn EventBus>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// Where aggregations with `engine = "athena"` run; `None` (embedded): in process.
    pub pushdown: Option<Arc<dyn PushDown>>,
    /// The domain this process serves (a domain's functions, from `TESSERA_DOMAIN`); `None`:
    /// every domain of the mesh (embedded runs, `cargo lambda watch`).
    pub scope: Option<String>,
    /// Where the runs' OpenLineage events go (`TESSERA_LINEAGE`); `None`: nowhere.
    pub lineage: Option<crate::lineage::Target>,
}

/// The embedded ports, with the bus kept concrete so a router can drain it.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The context to hand to stages.
    pub context: Context,
    /// The in-process bus, to drain.
    pub bus: Arc<InProcessBus>,
    /// The warehouse directory.
    pub warehouse: PathBuf,
}

impl Context {
    /// Whether this process acts for `domain`.
    pub fn serves(&self, domain: &Domain) -> bool {
        self.scope.as_deref().is_none_or(|s| s == domain.name)
    }

    /// Embedded ports over a warehouse directory: buckets are folders, the catalog is JSON files,
    /// and writes notify the in-process bus as S3 would notify EventBridge.
    pub fn embedded(mesh: Arc<Mesh>, warehouse: &Path) -> Result<Embedded> {
        std::fs::create_dir_all(warehouse)?;
        let bus = Arc::new(InProcessBus::default());
        let as_bus: Arc<dyn EventBus> = bus.clone();
        let storage = Storage::new(
            Arc::new(LocalBuckets::new(warehouse)),
            Some(Arc::clone(&as_bus)),
        );
        let catalog = Arc::new(FileCatalog::new(warehouse.join("_catalog")));
        Ok(Embedded {
            context: Context {
                mesh,
                storage,
                bus: as_bus,
                catalog,
                pushdown: None,
                scope: None,
                lineage: crate::lineage::Target::from_env().map_err(Error::Config)?,
            },
            bus,
            warehouse: warehouse.to_path_buf(),
        })
    }

    /// Ports for a named environment of the mesh.
    pub fn for_environment(mesh: Arc<Mesh>, environment: &str) -> Result<Context> {
        match mesh.environment(environment)?.clone() {
            Environment::Embedded { warehouse } => {
                let dir = if warehouse.is_absolute() {
                    warehouse
                } else {
                    mesh.root.join(warehouse)
                };
                Ok(Context::embedded(mesh, &dir)?.context)
            }
            Environment::Aws { .. } => Err(Error::Config(format!(
                "environment `{environment}` uses the aws backend: build its ports with `tessera_aws::context`"
            ))),
        }
    }
}
