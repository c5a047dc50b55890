//! Loading a mesh refuses recipes that would publish personal data unprotected.

use tessera_core::mesh::{MaskMethod, Mesh};

use crate::support::{ORDERS_CONTRACT, ORDERS_CSV};

fn load(settings: &str, salt: &str) -> Result<Mesh, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.odcs.yaml"), ORDERS_CONTRACT).unwrap();
    let toml = format!(
        "[mesh]\nname = \"test\"\n{salt}\n[[domains]]\nname = \"shop\"\n{ORDERS_CSV}{settings}\n"
    );
    Mesh::from_toml_with_salt(&toml, "mesh.toml", dir.path(), None).map_err(|e| e.to_string())
}

#[test]
fn pii_columns_are_hashed_unless_the_recipe_says_otherwise() {
    let mesh = load("", "pii_salt = \"pepper\"").unwrap();
    let orders = mesh.product("shop", "orders").unwrap();
    assert_eq!(orders.mask.get("email"), Some(&MaskMethod::Hash));
    let mesh = load("mask = { email = \"redact\" }", "pii_salt = \"pepper\"").unwrap();
    assert_eq!(
        mesh.product("shop", "orders").unwrap().mask.get("email"),
        Some(&MaskMethod::Redact)
    );
}

#[test]
fn hashing_without_a_salt_is_refused() {
    let err = load("", "").unwrap_err();
    assert!(
        err.contains("set `mesh.pii_salt` or TESSERA_PII_SALT"),
        "{err}"
    );
    // Masking with null needs no salt.
    load("mask = { email = \"null\" }", "").unwrap();
}

#[test]
fn only_text_can_be_hashed_or_redacted() {
    let err = load("mask = { amount = \"hash\" }", "pii_salt = \"pepper\"").unwrap_err();
    assert!(err.contains("column `amount` is not text"), "{err}");
    let err = load("mask = { nope = \"null\" }", "pii_salt = \"pepper\"").unwrap_err();
    assert!(
        err.contains("masked column `nope` is not in its contract"),
        "{err}"
    );
    load("mask = { amount = \"null\" }", "pii_salt = \"pepper\"").unwrap();
}
