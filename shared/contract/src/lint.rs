//! Lint: what the JSON Schema cannot say.
//!
//! [`lint`] reads a contract like [`Contract::from_yaml`] and then checks that
//! it can actually be used: object and property names are unique, primary-key
//! and partition positions are consistent, every type maps to Arrow (decimal
//! precision 1..=38 and at least the scale), patterns compile, bounds can be
//! read, and every quality rule can be compiled into a check. All problems are
//! reported at once, each with its line.

use std::collections::HashMap;

use crate::check;
use crate::error::{ContractError, Problem, Result};
use crate::model::{self, Contract, Property, SchemaObject, SchemaValidation};
use crate::yaml::Locations;

/// Reads and validates a contract like [`Contract::from_yaml`], then runs the
/// semantic checks above; the error lists every problem found.
pub fn lint(text: &str, origin: &str) -> Result<Contract> {
    lint_with_locations(text, origin, SchemaValidation::Run).map(|(contract, _)| contract)
}

/// [`lint`], keeping where each node of the YAML is.
pub(crate) fn lint_with_locations(
    text: &str,
    origin: &str,
    schema: SchemaValidation,
) -> Result<(Contract, Locations)> {
    let (contract, locations) = model::load(text, origin, schema)?;
    let mut problems = Vec::new();
    let mut objects: HashMap<&str, usize> = HashMap::new();
    for (i, object) in contract.schema.iter().enumerate() {
        if let Some(first) = objects.insert(&object.name, i) {
            problems.push(Problem::at(
                format!("/schema/{i}/name"),
                format!(
                    "duplicate schema object name `{}`{}",
                    object.name,
                    first_seen(&locations, &format!("/schema/{first}/name"))
                ),
            ));
        }
        let base = format!("/schema/{i}");
        unique_names(
            &object.properties,
            &base,
            &object.name,
            &locations,
            &mut problems,
        );
        key_positions(object, &base, Key::Primary, &mut problems);
        key_positions(object, &base, Key::Partition, &mut problems);
        for (j, property) in object.properties.iter().enumerate() {
            let path = format!("{}.{}", object.name, property.name);
            nested_patterns(
                property,
                &format!("{base}/properties/{j}"),
                &path,
                &mut problems,
            );
        }
        problems.extend(
            check::issues(object)
                .into_iter()
                .map(|issue| issue.in_contract(i)),
        );
    }
    if problems.is_empty() {
        return Ok((contract, locations));
    }
    let mut problems: Vec<Problem> = problems.into_iter().map(|p| locations.locate(p)).collect();
    problems.sort_by_key(|p| (p.line, p.column));
    Err(ContractError::new(origin, problems))
}

/// ` (first declared at line N)` when the line of `pointer` is known.
fn first_seen(locations: &Locations, pointer: &str) -> String {
    locations
        .find(pointer)
        .map(|(line, _)| format!(" (first declared at line {line})"))
        .unwrap_or_default()
}

/// Property names must be unique within each list of properties, at every depth.
fn unique_names(
    properties: &[Property],
    pointer: &str,
    path: &str,
    locations: &Locations,
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (j, property) in properties.iter().enumerate() {
        let here = format!("{pointer}/properties/{j}");
        if let Some(first) = seen.insert(&property.name, j) {
            problems.push(Problem::at(
                format!("{here}/name"),
                format!(
                    "duplicate property name `{}` in `{path}`{}",
                    property.name,
                    first_seen(locations, &format!("{pointer}/properties/{first}/name"))
                ),
            ));
        }
        let nested_path = format!("{path}.{}", property.name);
        unique_names(
            &property.properties,
            &here,
            &nested_path,
            locations,
            problems,
        );
        let mut items = property.items.as_deref();
        let mut items_pointer = format!("{here}/items");
        while let Some(item) = items {
            unique_names(
                &item.properties,
                &items_pointer,
                &nested_path,
                locations,
                problems,
            );
            items = item.items.as_deref();
            items_pointer.push_str("/items");
        }
    }
}

/// The two kinds of ordered keys a property can take part in.
#[derive(Clone, Copy)]
enum Key {
    Primary,
    Partition,
}

impl Key {
    fn member(self, p: &Property) -> bool {
        match self {
            Key::Primary => p.primary_key,
            Key::Partition => p.partitioned,
        }
    }

    fn position(self, p: &Property) -> i64 {
        match self {
            Key::Primary => p.primary_key_position,
            Key::Partition => p.partition_key_position,
        }
    }

    /// (flag, position field, words for messages)
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Key::Primary => ("primaryKey", "primaryKeyPosition", "primary key"),
            Key::Partition => ("partitioned", "partitionKeyPosition", "partition"),
        }
    }
}

/// Positions are 1..=n over the n members of a key, set on every member of a
/// composite key, and only on members.
fn key_positions(object: &SchemaObject, base: &str, key: Key, problems: &mut Vec<Problem>) {
    let (flag, field, words) = key.names();
    let members = object.properties.iter().filter(|p| key.member(p)).count();
    let mut taken: HashMap<i64, &str> = HashMap::new();
    for (j, property) in object.properties.iter().enumerate() {
        let position = key.position(property);
        let at = format!("{base}/properties/{j}/{field}");
        let name = &property.name;
        let problem = if position == 0 || position < -1 {
            Some(format!(
                "`{name}`: {field} {position} is invalid; positions start at 1 (-1 means unset)"
            ))
        } else if !key.member(property) {
            (position >= 1)
                .then(|| format!("`{name}` has {field} {position} but {flag} is not true"))
        } else if position == -1 {
            (members > 1)
                .then(|| format!("`{name}` is one of {members} {words} columns but has no {field}"))
        } else if position > members as i64 {
            Some(format!(
                "`{name}`: {field} {position} is out of range; the {members} {words} column(s) are numbered 1 to {members}"
            ))
        } else {
            taken
                .insert(position, name)
                .map(|other| format!("`{name}` and `{other}` share {field} {position}"))
        };
        if let Some(message) = problem {
            problems.push(Problem::at(at, message));
        }
    }
}

/// Patterns of nested properties (top-level ones are compiled with the checks);
/// `path` names `property`, e.g. `orders.lines`.
fn nested_patterns(property: &Property, pointer: &str, path: &str, problems: &mut Vec<Problem>) {
    let children = property
        .properties
        .iter()
        .enumerate()
        .map(|(j, p)| {
            (
                p,
                format!("{pointer}/properties/{j}"),
                format!("{path}.{}", p.name),
            )
        })
        .chain(
            property
                .items
                .as_deref()
                .map(|p| (p, format!("{pointer}/items"), format!("{path}[]"))),
        );
    for (child, child_pointer, child_path) in children {
        if let Some(pattern) = &child.options.pattern
            && let Err(e) = check::regex(pattern)
        {
            problems.push(Problem::at(
                format!("{child_pointer}/logicalTypeOptions/pattern"),
                format!("property `{child_path}`: invalid pattern: {e}"),
            ));
        }
        nested_patterns(child, &child_pointer, &child_path, problems);
    }
}
