//! Safe YAML reading.
//!
//! Contracts are parsed by serde-saphyr with explicit, small budgets (nesting
//! depth, events, nodes, aliases, scalar bytes), so alias bombs and absurdly
//! deep documents are refused after a bounded amount of work. The text becomes a
//! [`serde_json::Value`] (YAML 1.2 core schema: `2024-01-01` stays a string)
//! together with [`Locations`], which maps the JSON pointer of every mapping key
//! and sequence item to its line and column so that later stages can point at
//! the YAML.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::{MessageFormatter, Spanned};

use crate::error::{ContractError, Problem, Result, escape_token};

/// Largest contract text accepted, in bytes. Contracts are small documents.
const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences.
const MAX_DEPTH: usize = 48;

/// Parsed YAML: the value and where each of its nodes came from.
#[derive(Debug)]
pub(crate) struct Document {
    /// The document as JSON.
    pub(crate) value: Value,
    /// JSON pointer → (line, column).
    pub(crate) locations: Locations,
}

/// Line and column (1-based) of mapping keys and sequence items, by JSON pointer.
#[derive(Default, Clone)]
pub(crate) struct Locations(HashMap<String, (usize, usize)>);

impl fmt::Debug for Locations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locations({} nodes)", self.0.len())
    }
}

impl Locations {
    /// Position of `pointer`, or of its nearest ancestor that has one.
    pub(crate) fn find(&self, pointer: &str) -> Option<(usize, usize)> {
        let mut current = pointer;
        loop {
            if let Some(pos) = self.0.get(current) {
                return Some(*pos);
            }
            let (parent, _) = current.rsplit_once('/')?;
            current = parent;
        }
    }

    /// Fills in line and column of a problem from its pointer.
    pub(crate) fn locate(&self, mut problem: Problem) -> Problem {
        if problem.line.is_none()
            && let Some((line, column)) = self.find(&problem.pointer)
        {
            problem.line = Some(line);
            problem.column = Some(column);
        }
        problem
    }

    fn record(&mut self, pointer: &str, location: serde_saphyr::Location) {
        let (line, column) = (location.line(), location.column());
        if line > 0 {
            let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            self.0
                .insert(pointer.to_owned(), (to_usize(line), to_usize(column)));
        }
    }
}

/// Parses `text` as one YAML document holding a mapping.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Document> {
    parse_as(text, origin, "contract")
}

/// [`parse`] for a document that is a `what` (`contract`, `policy`), named so in messages.
pub(crate) fn parse_as(text: &str, origin: &str, what: &str) -> Result<Document> {
    let refuse = |message: &str| ContractError::single(origin, Problem::at("", message));
    if text.len() > MAX_TEXT_BYTES {
        return Err(refuse(&format!(
            "the {what} is larger than {} MiB",
            MAX_TEXT_BYTES / (1024 * 1024)
        )));
    }
    if text.trim().is_empty() {
        return Err(refuse(&format!("the {what} is empty")));
    }
    let root: Spanned<Node> =
        serde_saphyr::from_str_with_options(text, options()).map_err(|e| yaml_error(origin, &e))?;
    if !matches!(root.value, Node::Map(_)) {
        return Err(refuse(&format!(
            "a {what} must be a YAML mapping (key: value pairs) at the top level"
        )));
    }
    let mut locations = Locations::default();
    let mut pointer = String::new();
    let value = root.value.into_json(&mut pointer, &mut locations);
    locations.record("", root.referenced);
    Ok(Document { value, locations })
}

/// Parser options: strict, small budgets suited to contract documents.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_documents: 1,
            max_events: 200_000,
            max_nodes: 100_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 10_000,
            max_recorded_anchor_bytes: 1024 * 1024,
            max_total_scalar_bytes: MAX_TEXT_BYTES,
            max_merge_keys: 100,
            max_inclusion_depth: 0,
        },
        // Only `true`/`false` are booleans: `NO` (Norway) and `yes` stay text.
        strict_booleans: true,
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 1_000,
        },
    }
}

/// Converts a serde-saphyr error into a located problem.
fn yaml_error(origin: &str, error: &serde_saphyr::Error) -> ContractError {
    let mut inner = error;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let message: String = serde_saphyr::DefaultMessageFormatter
        .format_message(inner)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let location = error.location().filter(|l| l.line() > 0);
    let to_usize = |n: u64| usize::try_from(n).ok();
    ContractError::single(
        origin,
        Problem {
            line: location.and_then(|l| to_usize(l.line())),
            column: location.and_then(|l| to_usize(l.column())),
            pointer: String::new(),
            message: format!("invalid YAML: {message}"),
        },
    )
}

/// A YAML node with the positions of its children.
enum Node {
    Scalar(Value),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
}

impl Node {
    /// Converts to JSON, recording positions below `pointer` (restored on return).
    fn into_json(self, pointer: &mut String, locations: &mut Locations) -> Value {
        let base = pointer.len();
        match self {
            Node::Scalar(value) => value,
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    locations.record(pointer, item.referenced);
                    out.push(item.value.into_json(pointer, locations));
                    pointer.truncate(base);
                }
                Value::Array(out)
            }
            Node::Map(entries) => {
                let mut out = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    pointer.push('/');
                    pointer.push_str(&escape_token(&key.value.0));
                    locations.record(pointer, key.referenced);
                    out.insert(key.value.0, value.value.into_json(pointer, locations));
                    pointer.truncate(base);
                }
                Value::Object(out)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        // Beyond 64 bits: keep the digits rather than lose precision.
        Ok(Node::Scalar(Value::String(v.to_string())))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(
            String::from_utf8_lossy(v).into_owned(),
        )))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key: any scalar, as text (JSON object keys are strings).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key("null".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keys_and_items() {
        let doc = parse("a: 1\nb:\n  - x\n  - c: 2024-01-01\n", "t.yaml").unwrap();
        assert_eq!(doc.value["b"][1]["c"], Value::String("2024-01-01".into()));
        assert_eq!(doc.locations.find("/a"), Some((1, 1)));
        assert_eq!(doc.locations.find("/b"), Some((2, 1)));
        assert_eq!(doc.locations.find("/b/0"), Some((3, 5)));
        assert_eq!(doc.locations.find("/b/1/c"), Some((4, 5)));
        // Nearest ancestor for pointers without an entry.
        assert_eq!(doc.locations.find("/b/1/c/deeper"), Some((4, 5)));
    }

    #[test]
    fn scalars_keep_their_types() {
        let doc = parse(
            "i: 3\nf: 1.5\nb: true\nn: null\ns: '3'\nt: 12:30\nc: NO\n",
            "t",
        )
        .unwrap();
        assert_eq!(doc.value["i"], Value::from(3));
        assert_eq!(doc.value["f"], Value::from(1.5));
        assert_eq!(doc.value["b"], Value::Bool(true));
        assert_eq!(doc.value["n"], Value::Null);
        assert_eq!(doc.value["s"], Value::from("3"));
        assert_eq!(doc.value["t"], Value::from("12:30"));
        assert_eq!(doc.value["c"], Value::from("NO"));
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let err = parse("- a\n- b\n", "t").unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused_with_a_line() {
        let err = parse("a: 1\nb: 2\na: 3\n", "t").unwrap_err();
        assert_eq!(err.problems[0].line, Some(3), "{err}");
    }
}
