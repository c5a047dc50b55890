//! The validation stamp of a packaged mesh: which contracts already passed the ODCS JSON Schema.
//!
//! `tessera infra synth` loads the mesh (every contract checked in full) and writes the mesh
//! layer: the mesh file, its contracts and its policy, plus [`VALIDATED_FILE`], which lists each
//! contract's path and the SHA-256 of its text, with the Tessera version that checked them.
//! A function loading the mesh from that folder skips the schema for a contract whose text still
//! has that digest; any other contract (edited, added, or stamped by another version) is checked
//! in full, and a missing or unreadable stamp changes nothing. Compiling the schema is about
//! 10 ms, half of a function's start before its first event.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_contract::SchemaValidation;

use super::Mesh;
use crate::error::{Error, Result};

/// The stamp's file name, next to the mesh file.
pub const VALIDATED_FILE: &str = ".tessera-validated.json";

/// The contracts a package vouches for (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validated {
    /// The Tessera version that checked them: another version checks again.
    tessera: String,
    /// Path relative to the mesh file (`/`-separated) → SHA-256 (hex) of the text.
    contracts: BTreeMap<String, String>,
}

impl Validated {
    /// The stamp of `mesh`'s contracts as their files read now. Call it on a mesh that was just
    /// loaded, so that what it vouches for is what was checked.
    pub fn of(mesh: &Mesh) -> Result<Validated> {
        let mut contracts = BTreeMap::new();
        for (_, product) in mesh.products() {
            let path = &product.contract_path;
            let text = std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read contract `{}`: {e}", path.display()))
            })?;
            let relative = path.strip_prefix(&mesh.root).unwrap_or(path);
            contracts.insert(key(relative), digest(&text));
        }
        Ok(Validated {
            tessera: version().into(),
            contracts,
        })
    }

    /// The stamp as the file holds it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The stamp next to a mesh file in `root`, when there is one this version wrote.
    pub(super) fn read(root: &Path) -> Option<Validated> {
        let text = std::fs::read(root.join(VALIDATED_FILE)).ok()?;
        let stamp: Validated = serde_json::from_slice(&text).ok()?;
        (stamp.tessera == version()).then_some(stamp)
    }

    /// Whether the schema step can be skipped for the contract at `relative` with `text`.
    pub(super) fn schema_for(
        stamp: Option<&Validated>,
        relative: &Path,
        text: &str,
    ) -> SchemaValidation {
        let vouched = stamp
            .and_then(|s| s.contracts.get(&key(relative)))
            .is_some_and(|d| *d == digest(text.as_bytes()));
        if vouched {
            SchemaValidation::Vouched
        } else {
            SchemaValidation::Run
        }
    }
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// A relative path as one key: its plain components joined by `/` (`./a//b` and `a/b` match).
fn key(relative: &Path) -> String {
    relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contract the typed model reads but the ODCS schema refuses (`kind` must be `DataContract`).
    const SCHEMA_INVALID: &str = "apiVersion: v3.1.0\nkind: Contract\nid: t\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: id\n        logicalType: integer\n";

    fn mesh_folder(contract: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mesh.toml"),
            "[mesh]\nname = \"m\"\ndefault_environment = \"embedded\"\n\n[environments.embedded]\nbackend = \"embedded\"\nwarehouse = \"w\"\n\n[[domains]]\nname = \"d\"\n\n[[domains.products]]\nname = \"t\"\ncontract = \"./c/t.yaml\"\nsource = { format = \"csv\" }\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c/t.yaml"), contract).unwrap();
        dir
    }

    fn stamp(dir: &Path, contract: &str, tessera: &str) {
        let stamp = Validated {
            tessera: tessera.into(),
            contracts: BTreeMap::from([("c/t.yaml".into(), digest(contract.as_bytes()))]),
        };
        std::fs::write(dir.join(VALIDATED_FILE), stamp.to_json()).unwrap();
    }

    #[test]
    fn without_a_stamp_the_schema_refuses_the_contract() {
        let dir = mesh_folder(SCHEMA_INVALID);
        let err = Mesh::load(&dir.path().join("mesh.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind"), "{err}");
    }

    #[test]
    fn a_stamp_skips_the_schema_only_for_the_text_it_names() {
        let dir = mesh_folder(SCHEMA_INVALID);
        stamp(dir.path(), SCHEMA_INVALID, version());
        let mesh = Mesh::load(&dir.path().join("mesh.toml")).unwrap();
        assert_eq!(mesh.products().count(), 1);

        // Edited after stamping: checked in full again.
        let edited = SCHEMA_INVALID.replace("version: 1.0.0", "version: 1.0.1");
        std::fs::write(dir.path().join("c/t.yaml"), &edited).unwrap();
        assert!(Mesh::load(&dir.path().join("mesh.toml")).is_err());
    }

    #[test]
    fn a_stamp_of_another_version_or_unreadable_is_ignored() {
        let dir = mesh_folder(SCHEMA_INVALID);
        stamp(dir.path(), SCHEMA_INVALID, "0.0.0-other");
        assert!(Mesh::load(&dir.path().join("mesh.toml")).is_err());
        std::fs::write(dir.path().join(VALIDATED_FILE), "{not json").unwrap();
        assert!(Mesh::load(&dir.path().join("mesh.toml")).is_err());
    }

    #[test]
    fn the_stamp_of_a_loaded_mesh_vouches_for_its_contracts() {
        let valid = SCHEMA_INVALID.replace("kind: Contract", "kind: DataContract");
        let dir = mesh_folder(&valid);
        let mesh = Mesh::load(&dir.path().join("mesh.toml")).unwrap();
        let stamp = Validated::of(&mesh).unwrap();
        assert_eq!(
            stamp.contracts.get("c/t.yaml"),
            Some(&digest(valid.as_bytes()))
        );
        assert_eq!(
            Validated::schema_for(Some(&stamp), Path::new("./c/t.yaml"), &valid),
            SchemaValidation::Vouched
        );
        assert_eq!(
            Validated::schema_for(Some(&stamp), Path::new("c/t.yaml"), "other text"),
            SchemaValidation::Run
        );
        assert_eq!(
            Validated::schema_for(None, Path::new("c/t.yaml"), &valid),
            SchemaValidation::Run
        );
    }
}
