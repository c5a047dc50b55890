//! Logging set-up: JSON lines in functions (CloudWatch), readable text in the CLI.

/// JSON logs to stdout, level from `RUST_LOG` (default `info`), without ANSI colours.
pub fn init_json() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_current_span(false)
        .try_init();
}

/// Human-readable logs to stderr, level from `RUST_LOG` (default `warn`).
pub fn init_text() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
