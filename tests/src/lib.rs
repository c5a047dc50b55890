//! Helpers shared by Tessera's end-to-end tests (`it/`): the repository's sample mesh, its
//! event fixtures, and embedded ports over a temporary warehouse.
#![warn(missing_docs)]
// Test support: a broken fixture stops the test that needs it, with the reason.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_core::context::{Context, Embedded};
use tessera_core::mesh::Mesh;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The sample mesh (`samplecli.toml`).
pub fn sample_mesh() -> Arc<Mesh> {
    match Mesh::load(&repo_root().join("samplecli.toml")) {
        Ok(m) => Arc::new(m),
        Err(e) => panic!("the sample mesh does not load: {e}"),
    }
}

/// Embedded ports of the sample mesh over `warehouse`.
pub fn embedded(warehouse: &Path) -> Embedded {
    match Context::embedded(sample_mesh(), warehouse) {
        Ok(e) => e,
        Err(e) => panic!("cannot build embedded ports: {e}"),
    }
}

/// An event fixture from `events/`.
pub fn event(name: &str) -> serde_json::Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The Python interpreter with the test requirements (`TESSERA_PYTHON`, else `python3`).
pub fn python() -> String {
    std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".into())
}
