//! Errors that point back at the contract text.
//!
//! Every failure is a [`ContractError`]: the origin (usually the file name the
//! caller passed in) and one or more [`Problem`]s. A problem carries the JSON
//! pointer of the offending node and, when the node came from YAML, its line
//! and column, so a message reads like a compiler diagnostic:
//!
//! ```text
//! orders.odcs.yaml:12:7: "yes" is not of type "boolean" (at /schema/0/properties/1/required)
//! ```

use std::fmt;

use serde::Serialize;

/// `Result` with [`ContractError`] as the default error type.
pub type Result<T, E = ContractError> = std::result::Result<T, E>;

/// One thing wrong with a contract, located by JSON pointer and (when known) line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line in the YAML text, when known.
    pub line: Option<usize>,
    /// 1-based column in the YAML text, when known.
    pub column: Option<usize>,
    /// JSON pointer of the offending node (`""` is the whole document).
    pub pointer: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Problem {
    /// A problem at `pointer` whose position is not known (yet).
    pub(crate) fn at(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            line: None,
            column: None,
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// A contract could not be read, validated or used; lists every problem found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ContractError {
    /// Where the contract came from (a file name, or an object name for errors
    /// raised on a schema object outside of a whole contract).
    pub origin: String,
    /// The problems, in document order where that is known.
    pub problems: Vec<Problem>,
}

impl ContractError {
    /// An error with the given problems.
    pub(crate) fn new(origin: &str, problems: Vec<Problem>) -> Self {
        ContractError {
            origin: origin.to_owned(),
            problems,
        }
    }

    /// An error with a single problem.
    pub(crate) fn single(origin: &str, problem: Problem) -> Self {
        Self::new(origin, vec![problem])
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&self.origin)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
                if let Some(column) = p.column {
                    write!(f, ":{column}")?;
                }
            }
            write!(f, ": {}", p.message)?;
            if !p.pointer.is_empty() {
                write!(f, " (at {})", p.pointer)?;
            }
        }
        Ok(())
    }
}

/// Escapes one reference token for a JSON pointer (RFC 6901).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A problem found inside one schema object, before the object's place in a
/// contract (and so its line) is known.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    /// Pointer relative to the schema object, e.g. `/properties/2/physicalType`.
    pub(crate) pointer: String,
    /// What is wrong; names the property path (`orders.items.unit_price`).
    pub(crate) message: String,
}

impl Issue {
    /// An issue at `pointer` (relative to the schema object).
    pub(crate) fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    /// The issue as a problem of the whole contract, for the object at `/schema/{index}`.
    pub(crate) fn in_contract(self, index: usize) -> Problem {
        Problem::at(format!("/schema/{index}{}", self.pointer), self.message)
    }
}

/// Issues of the schema object `origin` as an error.
pub(crate) fn object_error(origin: &str, issues: Vec<Issue>) -> ContractError {
    let problems = issues
        .into_iter()
        .map(|i| Problem::at(i.pointer, i.message))
        .collect();
    ContractError::new(origin, problems)
}
