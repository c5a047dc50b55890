//! Names of what the stacks create: AWS resource names, logical ids, export names.
//!
//! AWS names start with `tessera-<mesh>-`; a domain's add its name (`tessera-sample-sales-ingest`),
//! the platform's add `platform`. EventBridge rules are named as `tessera dev` names them on an
//! emulator.

use tessera_core::routing::{Function, Rule};

use crate::{Error, Result};

/// Longest Lambda function name.
const MAX_FUNCTION_NAME: usize = 64;
/// Longest EventBridge rule name.
const MAX_RULE_NAME: usize = 64;
/// Longest SQS queue name.
const MAX_QUEUE_NAME: usize = 80;

/// `tessera-<mesh>`.
pub fn mesh_prefix(mesh: &str) -> String {
    format!("tessera-{mesh}")
}

/// `tessera-<mesh>-<domain>`: the prefix of everything a domain's stack names.
pub fn domain_prefix(mesh: &str, domain: &str) -> String {
    format!("tessera-{mesh}-{domain}")
}

fn bounded(name: String, max: usize, what: &str) -> Result<String> {
    if name.len() > max {
        return Err(Error::Config(format!(
            "{what} name `{name}` is longer than {max} characters: shorten the mesh or domain name"
        )));
    }
    Ok(name)
}

/// Lambda function name: `tessera-<mesh>-<domain>-<function>`.
pub fn function_name(mesh: &str, domain: &str, function: Function) -> Result<String> {
    bounded(
        format!("{}-{}", domain_prefix(mesh, domain), function.name()),
        MAX_FUNCTION_NAME,
        "function",
    )
}

/// EventBridge rule name: `tessera-<mesh>-<domain>-<rule>`, as `tessera dev` names it.
pub fn rule_name(mesh: &str, domain: &str, rule: &Rule) -> Result<String> {
    domain_rule_name(mesh, domain, rule.name)
}

/// Name of a domain's EventBridge rule that is not a routing rule (the service-level check's
/// schedule): `tessera-<mesh>-<domain>-<name>`, like the others.
pub fn domain_rule_name(mesh: &str, domain: &str, name: &str) -> Result<String> {
    bounded(
        format!("{}-{name}", domain_prefix(mesh, domain)),
        MAX_RULE_NAME,
        "rule",
    )
}

/// SQS queue name under a domain's prefix.
pub fn queue_name(mesh: &str, domain: &str, what: &str) -> Result<String> {
    bounded(
        format!("{}-{what}", domain_prefix(mesh, domain)),
        MAX_QUEUE_NAME,
        "queue",
    )
}

/// The log group Lambda writes a function's logs to.
pub fn log_group_name(function_name: &str) -> String {
    format!("/aws/lambda/{function_name}")
}

/// Name of an export of the platform stack.
pub fn platform_export(mesh: &str, what: &str) -> String {
    format!("{}-platform-{what}", mesh_prefix(mesh))
}

/// Name of an export of a domain stack.
pub fn domain_export(mesh: &str, domain: &str, what: &str) -> String {
    format!("{}-{what}", domain_prefix(mesh, domain))
}

/// `daily_revenue` → `DailyRevenue`, `contract-check` → `ContractCheck`.
pub fn pascal(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// Logical id of a function's resource: `IngestFunction`, `ContractCheckRole`.
pub fn function_id(function: Function, suffix: &str) -> String {
    format!("{}{suffix}", pascal(function.name()))
}

/// Logical id of a rule's resource: `RawToIngestRule`.
pub fn rule_id(rule: &Rule, suffix: &str) -> String {
    format!("{}{suffix}", pascal(rule.name))
}

/// Logical id of a product's Glue table: `DailyRevenueTable`.
pub fn table_id(product: &str) -> String {
    format!("{}Table", pascal(product))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_pascal_case() {
        assert_eq!(pascal("daily_revenue"), "DailyRevenue");
        assert_eq!(pascal("contract-check"), "ContractCheck");
        assert_eq!(pascal("a__b2"), "AB2");
        assert_eq!(
            function_id(Function::CatalogRegister, "Role"),
            "CatalogRegisterRole"
        );
    }

    #[test]
    fn names_too_long_for_aws_are_refused() {
        assert_eq!(
            function_name("sample", "sales", Function::ContractCheck).unwrap(),
            "tessera-sample-sales-contract-check"
        );
        let long = "d".repeat(50);
        assert!(function_name("sample", &long, Function::CatalogRegister).is_err());
    }
}
