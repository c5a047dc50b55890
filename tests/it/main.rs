//! Tessera's end-to-end tests, one binary: event fixtures, function handlers, the embedded
//! `tessera run` of the sample mesh, and Parquet read back by another reader.

mod events;
mod handlers;
mod interop;
mod lint;
mod run;
