//! Tessera's end-to-end tests, one binary: event fixtures, function handlers, the embedded
//! `tessera run` of the sample mesh, Parquet read back by another reader, the whole chain on an
//! emulator, and the generated stacks under the infrastructure checkers.

//!
//! The modules are `cfg(test)` so that their helpers, not only the `#[test]` functions, may
//! unwrap (see `clippy.toml`).

#[cfg(test)]
mod bench;
#[cfg(test)]
mod contract_diff;
#[cfg(test)]
mod deploy;
#[cfg(test)]
mod emulator;
#[cfg(test)]
mod events;
#[cfg(test)]
mod handlers;
#[cfg(test)]
mod infra_checks;
#[cfg(test)]
mod interop;
#[cfg(test)]
mod lint;
#[cfg(test)]
mod odps;
#[cfg(test)]
mod portal;
#[cfg(test)]
mod quality;
#[cfg(test)]
mod run;
#[cfg(test)]
mod scaffold;
