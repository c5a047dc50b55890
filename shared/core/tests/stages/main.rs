//! Integration tests of the five stages, run against the embedded ports: a mesh written into a
//! temporary directory, buckets as folders of a warehouse, the file catalog and the in-process
//! bus. Stages are called directly, and through `function::handle` where the point is what a
//! Lambda handler does with an event.
//!
//! The modules are `cfg(test)` so that their helpers, not only the `#[test]` functions, may
//! unwrap (see `clippy.toml`).

#[cfg(test)]
mod support;

#[cfg(test)]
mod aggregate;

#[cfg(test)]
mod aggregate_ports;
#[cfg(test)]
mod bad_files;
#[cfg(test)]
mod cdc;
#[cfg(test)]
mod check;
#[cfg(test)]
mod clean;
#[cfg(test)]
mod clean_steps;
#[cfg(test)]
mod corpora;

#[cfg(test)]
mod delivery;
#[cfg(test)]
mod domain_events;
#[cfg(test)]
mod hostile;
#[cfg(test)]
mod ingest_csv;
#[cfg(test)]
mod ingest_formats;
#[cfg(test)]
mod ingest_ndjson;
#[cfg(test)]
mod lenient;
#[cfg(test)]
mod mesh;
#[cfg(test)]
mod observability;
#[cfg(test)]
mod policy;
#[cfg(test)]
mod query;
#[cfg(test)]
mod register;
#[cfg(test)]
mod relationships;
#[cfg(test)]
mod sql_rules;
