//! The committed templates under `infra/`: current, least privilege, with the controls checkov
//! does not check, and with the Glue tables catalog-register writes.
//!
//! Every check is a function returning the violations it finds, run on the committed templates
//! (none expected) and on a template broken on purpose (some expected), so a check that cannot
//! fail is caught too.
//!
//! The module is `cfg(test)` so that its helpers, not only the `#[test]` functions, may unwrap
//! (see `clippy.toml`).

#[cfg(test)]
mod committed;
