//! aggregate: `DataProductPublished` of a source product → its aggregate products, computed with SQL and published under their own contracts.
//!
//! The handler takes the trigger event and the ports and returns what it did; it runs the same
//! embedded, against an emulator and on AWS. `main.rs` only wires it to the Lambda runtime.
#![warn(missing_docs)]

use serde_json::Value;
use tessera_core::Context;
use tessera_core::function::{handle, stage};

pub use tessera_core::function::{FunctionError, Outcome};

/// Handles one event.
pub async fn handler(ctx: &Context, event: Value) -> Result<Outcome, FunctionError> {
    handle::<stage::Aggregate>(ctx, &event).await
}
