//! A function's process on Lambda: the allocator and runtime set up, the ports from the
//! environment, then one stage serving events until the process ends.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use tessera_core::function::{Stage, handle};

/// Runs stage `S` as a Lambda function: every `main.rs` of `functions/` is this one call.
pub fn serve<S: Stage>() -> Result<(), lambda_runtime::Error> {
    lambda_environment(|v| std::env::var(v).ok())?;
    tessera_core::process::runtime()?.block_on(async {
        tessera_core::telemetry::init_json();
        let ctx = crate::context_from_env().await?;
        let ctx = &ctx;
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                handle::<S>(ctx, &event.payload)
                    .await
                    .inspect(|outcome| {
                        // CloudWatch reads metrics from these lines (Embedded Metric Format).
                        for run in &outcome.runs {
                            println!("{}", tessera_core::lineage::emf(run));
                        }
                    })
                    .map_err(|e| Diagnostic {
                        error_type: e.error_type().into(),
                        error_message: e.message,
                    })
            },
        ))
        .await
    })
}

/// The variables Lambda sets for a function's process, which `lambda_runtime` would otherwise
/// panic without: a binary started by hand gets a plain error instead.
fn lambda_environment(var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    let missing: Vec<&str> = [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ]
    .into_iter()
    .filter(|v| var(v).is_none())
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not running under Lambda: {} not set (run the pipeline locally with `tessera run`, \
             or serve the functions with `cargo lambda watch`)",
            missing.join(", ")
        ));
    }
    let memory = var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.parse::<i32>().is_err() {
        return Err(format!(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE is `{memory}`, not a number of megabytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lambda_environment;

    #[test]
    fn a_process_outside_lambda_gets_an_error_not_a_panic() {
        let err = lambda_environment(|_| None).unwrap_err();
        assert!(err.contains("not running under Lambda"), "{err}");
        assert!(err.contains("AWS_LAMBDA_RUNTIME_API"), "{err}");
        let memory = |v: &str| {
            Some(
                if v.ends_with("MEMORY_SIZE") {
                    "lots"
                } else {
                    "x"
                }
                .into(),
            )
        };
        let err = lambda_environment(memory).unwrap_err();
        assert!(err.contains("`lots`"), "{err}");
        assert!(
            lambda_environment(|v: &str| Some(
                if v.ends_with("SIZE") { "128" } else { "x" }.into()
            ))
            .is_ok()
        );
    }
}
