//! Errors sorted by who is at fault.
//!
//! A stage meets three kinds of failure, and each is handled differently:
//!
//! * **bad data or a bad contract** ([`ErrorKind::BadData`]): retrying cannot help. The input is
//!   kept in the quarantine zone with the reason and the invocation succeeds;
//! * **infrastructure** ([`ErrorKind::Retryable`]): storage, catalog or bus trouble. The
//!   invocation fails so that Lambda and EventBridge retry it;
//! * **a bug** ([`ErrorKind::Internal`]): reported with full context, not retried blindly.

use tessera_contract::ContractError;

/// Who is at fault, which decides between quarantine and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input or its contract is wrong: quarantine and report, do not retry.
    BadData,
    /// A dependency failed: retry the invocation.
    Retryable,
    /// A defect in Tessera: report it.
    Internal,
}

/// Everything that can go wrong in a stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input object that cannot be read at all (not the encoding it claims, empty, truncated).
    #[error("bad input `{location}`: {reason}")]
    BadInput {
        /// Where: bucket and key, or a file path.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A contract that does not parse or validate.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The mesh configuration is wrong (unknown product, missing contract, bad recipe).
    #[error("configuration: {0}")]
    Config(String),
    /// An event that is not one this function is wired to, or is malformed.
    #[error("bad event: {0}")]
    BadEvent(String),
    /// Object storage failed.
    #[error("object storage: {0}")]
    Storage(#[from] object_store::Error),
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The event bus failed.
    #[error("event bus: {0}")]
    Bus(String),
    /// A remote query engine (Athena) failed.
    #[error("query engine: {0}")]
    Query(String),
    /// A compare-and-swap lost to a concurrent writer more times than allowed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An Arrow computation failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A SQL query failed.
    #[error("sql: {0}")]
    Sql(#[from] datafusion::error::DataFusionError),
    /// Local file I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// JSON encoding or decoding of Tessera's own records failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A defect: an invariant did not hold.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Who is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadInput { .. } | Error::Contract(_) | Error::Config(_) | Error::BadEvent(_) => {
                ErrorKind::BadData
            }
            Error::Storage(object_store::Error::NotFound { .. }) => ErrorKind::BadData,
            Error::Storage(_)
            | Error::Catalog(_)
            | Error::Bus(_)
            | Error::Query(_)
            | Error::Conflict(_)
            | Error::Io(_) => ErrorKind::Retryable,
            Error::Parquet(_)
            | Error::Arrow(_)
            | Error::Sql(_)
            | Error::Json(_)
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::BadInput {
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// Result with Tessera's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
