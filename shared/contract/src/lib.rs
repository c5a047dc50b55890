//! Open Data Contract Standard (ODCS) v3 contracts for Tessera.
//!
//! This crate turns contract text into something a pipeline can enforce. It does
//! no I/O: callers pass the YAML text and the Arrow record batches.
//!
//! * **Read** — [`Contract::from_yaml`] parses YAML with strict resource budgets
//!   (alias bombs and deep nesting are refused early), validates it against the
//!   official ODCS JSON Schema for its `apiVersion` (v3.0.x or v3.1.x, both
//!   embedded) and builds the typed model ([`Contract`], [`SchemaObject`],
//!   [`Property`], [`QualityRule`]). Every error is a [`ContractError`] whose
//!   [`Problem`]s point at a line and column of the YAML.
//! * **Lint** — [`lint`] adds the checks a JSON Schema cannot express: unique
//!   names, consistent key positions, compilable patterns, types that map to
//!   Arrow, rules that can run.
//! * **Map** — [`SchemaObject::arrow_schema`] and [`Property::data_type`] give the
//!   Arrow schema data must have.
//! * **Check** — a [`Checker`] streams record batches through the schema check,
//!   the checks the schema implies (required, unique, primary key,
//!   `logicalTypeOptions`) and the contract's quality rules, and produces a
//!   serializable [`CheckReport`]. `sql` rules are left to the caller:
//!   [`sql_rules`] lists them and [`SqlRule::result`] turns a query's answer into a
//!   [`CheckResult`].
//! * **Diff** — [`diff`] lists what changed between two versions of a contract,
//!   classifies each change as breaking or not, and says whether the new
//!   version number fits ([`ContractDiff`]).
//!
//! ```
//! let contract = tessera_contract::lint(
//!     "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n",
//!     "c.odcs.yaml",
//! )?;
//! assert_eq!(contract.id, "c");
//! let err = tessera_contract::Contract::from_yaml("apiVersion: v9\n", "bad.yaml").unwrap_err();
//! assert_eq!(err.to_string(), "bad.yaml:1:1: unsupported apiVersion `v9`: Tessera reads ODCS v3.0.x and v3.1.x (at /apiVersion)");
//! # Ok::<(), tessera_contract::ContractError>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod check;
mod diff;
mod error;
mod lint;
mod model;
pub mod policy;
mod quality;
mod types;
mod validate;
mod yaml;

pub use check::{
    CheckReport, CheckResult, CheckStatus, Checker, HashedKeyMap, HashedKeySet, KeyHasher, SqlRule,
    sql_rules,
};
pub use diff::{Change, ChangeKind, ContractDiff, Direction, Side, Verdict, VersionChange, diff};
pub use error::{ContractError, Problem, Result};
pub use lint::lint;
pub use model::{
    Contract, Description, LogicalType, Property, SchemaObject, SchemaValidation, SlaProperty,
    SupportChannel, TeamMember, TypeOptions,
};
pub use quality::{Metric, Operator, QualityRule, RuleKind, Severity, Unit};
pub use validate::validate_odps;
