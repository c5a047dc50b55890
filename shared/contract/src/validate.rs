//! Validation against the official ODCS JSON Schemas.
//!
//! Both schemas ship inside the crate (`schemas/`). The contract's `apiVersion`
//! picks one: `v3.0.x` → ODCS 3.0.2, `v3.1.x` → ODCS 3.1.0; anything else is
//! refused at the `apiVersion` line. A `v3.0.x` contract that fails the 3.0.2
//! schema but passes 3.1.0 is accepted: 3.1 only adds to 3.0, and the official
//! examples themselves use 3.1 constructs under a 3.0.2 header. Otherwise every
//! violation is reported, each at the line of the offending node.

use std::sync::LazyLock;

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::error::{ContractError, Problem, Result};
use crate::yaml::Locations;

/// Messages longer than this leave out the offending value.
const MAX_MESSAGE_CHARS: usize = 160;

static ODCS_3_0: LazyLock<Result<Validator, String>> =
    LazyLock::new(|| compile(include_str!("../schemas/odcs-json-schema-v3.0.2.json")));
static ODCS_3_1: LazyLock<Result<Validator, String>> =
    LazyLock::new(|| compile(include_str!("../schemas/odcs-json-schema-v3.1.0.json")));

static ODPS_1_0: LazyLock<Result<Validator, String>> =
    LazyLock::new(|| compile(include_str!("../schemas/odps-json-schema-v1.0.0.json")));

/// Checks a data product descriptor against the official ODPS v1.0.0 JSON Schema; the problems
/// are `<JSON pointer>: <message>`.
pub fn validate_odps(document: &Value) -> std::result::Result<(), Vec<String>> {
    let validator = ODPS_1_0
        .as_ref()
        .map_err(|e| vec![format!("the ODPS schema: {e}")])?;
    let problems: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn compile(text: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    jsonschema::options()
        .with_draft(Draft::Draft201909)
        .build(&schema)
        .map_err(|e| e.to_string())
}

/// Checks `document` against the schema its `apiVersion` names.
pub(crate) fn validate(document: &Value, locations: &Locations, origin: &str) -> Result<()> {
    let fail = |problems: Vec<Problem>| {
        let mut problems: Vec<Problem> =
            problems.into_iter().map(|p| locations.locate(p)).collect();
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ContractError::new(origin, problems))
    };
    let version = match document.get("apiVersion") {
        None => {
            return fail(vec![Problem::at(
                "",
                "missing `apiVersion` (expected v3.0.x or v3.1.x)",
            )]);
        }
        Some(Value::String(version)) => version.as_str(),
        Some(other) => {
            return fail(vec![Problem::at(
                "/apiVersion",
                format!("`apiVersion` must be a string such as v3.1.0, not {other}"),
            )]);
        }
    };
    let (primary, fallback) = if version.starts_with("v3.0.") {
        (&*ODCS_3_0, Some(&*ODCS_3_1))
    } else if version.starts_with("v3.1.") {
        (&*ODCS_3_1, None)
    } else {
        return fail(vec![Problem::at(
            "/apiVersion",
            format!("unsupported apiVersion `{version}`: Tessera reads ODCS v3.0.x and v3.1.x"),
        )]);
    };
    let validator = primary.as_ref().map_err(|e| internal(origin, e))?;
    let problems = violations(validator, document);
    if problems.is_empty() {
        return Ok(());
    }
    if let Some(fallback) = fallback {
        let validator = fallback.as_ref().map_err(|e| internal(origin, e))?;
        if validator.is_valid(document) {
            return Ok(());
        }
    }
    fail(problems)
}

/// Every schema violation, as problems located by JSON pointer.
fn violations(validator: &Validator, document: &Value) -> Vec<Problem> {
    let mut problems: Vec<Problem> = Vec::new();
    for error in validator.iter_errors(document) {
        let mut message = error.to_string();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            message = error.masked().to_string();
        }
        let problem = Problem::at(error.instance_path().as_str(), message);
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    problems
}

fn internal(origin: &str, message: &str) -> ContractError {
    ContractError::single(
        origin,
        Problem::at(
            "",
            format!("internal error: embedded ODCS schema: {message}"),
        ),
    )
}
