//! A function's process on Lambda: the allocator and runtime set up, the ports from the
//! environment, then one stage serving events until the process ends.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use tessera_core::function::{Stage, handle};

/// Runs stage `S` as a Lambda function: every `main.rs` of `functions/` is this one call.
pub fn serve<S: Stage>() -> Result<(), lambda_runtime::Error> {
    tessera_core::process::runtime()?.block_on(async {
        tessera_core::telemetry::init_json();
        let ctx = crate::context_from_env().await?;
        let ctx = &ctx;
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                handle::<S>(ctx, &event.payload)
                    .await
                    .map_err(|e| Diagnostic {
                        error_type: e.error_type().into(),
                        error_message: e.message,
                    })
            },
        ))
        .await
    })
}
