//! Tessera's pipeline: the mesh, the ports and their embedded adapters, the events that chain
//! the stages, and the five stages themselves.
//!
//! * [`mesh`]: domains, products, contracts and recipes, from the mesh file;
//! * [`policy`]: the organisation's policy applied to the products of the mesh;
//! * ports: [`storage`] (object storage), [`bus`] (event bus), [`catalog`], [`query`];
//! * [`events`] and [`routing`]: what triggers which function, defined once;
//! * [`stages`]: ingest, clean, contract-check, aggregate, catalog-register;
//! * [`function`]: what a Lambda handler shares; [`router`]: the embedded stand-in for
//!   EventBridge rules.
//!
//! Nothing here depends on the Lambda runtime: functions wire these pieces in their `main.rs`.
#![warn(missing_docs)]

pub mod bus;
pub mod catalog;
pub mod cdc;
pub mod context;
pub mod contract_test;
pub mod delivery;
pub mod domain_events;
pub mod entity;
pub mod error;
pub mod events;
pub mod function;
pub mod keys;
pub mod lineage;
pub mod mesh;
pub mod odps;
pub mod policy;
pub mod process;
pub mod publish;
pub mod query;
pub mod reconcile;
pub mod router;
pub mod routing;
pub mod runs;
pub mod sla;
pub mod stages;
pub mod storage;
pub mod telemetry;
pub mod typing;

pub use context::Context;
pub use error::{Error, ErrorKind, Result};
