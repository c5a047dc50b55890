//! Templates as text: pretty JSON with keys in one fixed order, byte for byte the same on every
//! run and every build.
//!
//! `serde_json` keeps object keys sorted, or in insertion order when some crate of the build
//! enables its `preserve_order` feature, so its own printer is not used: this one orders keys
//! itself. Keys CloudFormation readers expect first (`Type` before `Properties`, `Effect`
//! before `Action`, `Key` before `Value`) come in the order of [`LEADING_KEYS`]; every other key
//! follows, sorted.

use serde_json::Value;

/// Keys printed before all others, in this order, wherever they appear.
pub const LEADING_KEYS: [&str; 24] = [
    "AWSTemplateFormatVersion",
    "Transform",
    "Name",
    "Description",
    "Parameters",
    "Rules",
    "Conditions",
    "Resources",
    "Outputs",
    "Type",
    "Metadata",
    "DependsOn",
    "Properties",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "Version",
    "Sid",
    "Effect",
    "Principal",
    "Action",
    "Resource",
    "Condition",
    "Key",
    "Value",
];

fn rank(key: &str) -> (usize, &str) {
    let position = LEADING_KEYS
        .iter()
        .position(|k| *k == key)
        .unwrap_or(LEADING_KEYS.len());
    (position, key)
}

/// The value as pretty JSON (two-space indent, a final newline), keys in the fixed order.
pub fn to_text(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, 0);
    out.push('\n');
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn string(out: &mut String, s: &str) {
    // Serializing a string cannot fail; the fallback only keeps this free of `unwrap`.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

fn write(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write(out, item, level + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)));
            out.push_str("{\n");
            for (i, key) in keys.iter().enumerate() {
                indent(out, level + 1);
                string(out, key);
                out.push_str(": ");
                if let Some(v) = map.get(key.as_str()) {
                    write(out, v, level + 1);
                }
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_in_the_fixed_order_whatever_the_insertion_order() {
        let mut a = serde_json::Map::new();
        a.insert(
            "Properties".into(),
            json!({"b": 1, "a": [true, null, "x\"y"]}),
        );
        a.insert("Type".into(), json!("AWS::S3::Bucket"));
        let mut b = serde_json::Map::new();
        b.insert("Type".into(), json!("AWS::S3::Bucket"));
        b.insert(
            "Properties".into(),
            json!({"a": [true, null, "x\"y"], "b": 1}),
        );
        let text = to_text(&Value::Object(a));
        assert_eq!(text, to_text(&Value::Object(b)));
        assert_eq!(
            text,
            "{\n  \"Type\": \"AWS::S3::Bucket\",\n  \"Properties\": {\n    \"a\": [\n      true,\n      null,\n      \"x\\\"y\"\n    ],\n    \"b\": 1\n  }\n}\n"
        );
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["Properties"]["b"], 1);
    }

    #[test]
    fn empty_containers_stay_on_one_line() {
        assert_eq!(
            to_text(&json!({"a": {}, "b": []})),
            "{\n  \"a\": {},\n  \"b\": []\n}\n"
        );
    }
}
