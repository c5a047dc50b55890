//! The `contract-check` Lambda function: wiring only (see the library for the handler).

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    tessera_core::process::runtime()?.block_on(async {
        tessera_core::telemetry::init_json();
        let ctx = tessera_aws::context_from_env().await?;
        let ctx = &ctx;
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                contract_check::handler(ctx, event.payload)
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
