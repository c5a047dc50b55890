//! The `tessera` command as a library: each command returns data, `main.rs` prints it, and the
//! end-to-end tests call the same functions.
#![warn(missing_docs)]

pub mod bench;
pub mod commands;
pub mod output;
pub mod portal;
pub mod quality;
pub mod scaffold;
pub mod status;
