//! One NDJSON line as a flat object: its keys and scalar values borrowed from the line where
//! the JSON allows it (no escapes), nested values as [`Value`]. A JSON object already read as a
//! `Value` (an element of a JSON array) borrows into the same form ([`borrow_object`]), so that
//! rows are built from objects one way.
//!
//! Reading a line into a `serde_json::Value` builds a map and allocates every key and string,
//! only for the row to look values up by name once and type them: most of NDJSON ingest's
//! time. Typing from this representation gives the same cells (see [`Flat::cell`]).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::typing::{Cell, ColumnSpec, parse_json, parse_json_str};

/// A line: an object's fields in their order (duplicates kept; the last one wins, as in a
/// `Value`), or any other JSON value.
pub(super) enum Line<'a> {
    Object(Vec<(Cow<'a, str>, Flat<'a>)>),
    Other(Value),
}

/// A field's value.
pub(super) enum Flat<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Nested(Cow<'a, Value>),
}

impl<'a> Line<'a> {
    /// Reads a whole line; anything after the value is an error, as for `serde_json::from_slice`.
    pub(super) fn parse(text: &'a [u8]) -> serde_json::Result<Line<'a>> {
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return serde_json::from_slice(text).map(Line::Other);
        }
        let mut de = serde_json::Deserializer::from_slice(text);
        let fields = de.deserialize_map(ObjectVisitor)?;
        de.end()?;
        Ok(Line::Object(fields))
    }
}

impl Flat<'_> {
    /// The value as a `serde_json` value (for the extras column and nested types).
    pub(super) fn to_value(&self) -> Value {
        match self {
            Flat::Null => Value::Null,
            Flat::Bool(b) => Value::Bool(*b),
            Flat::Number(n) => Value::Number(n.clone()),
            Flat::Str(s) => Value::String(s.to_string()),
            Flat::Nested(v) => v.clone().into_owned(),
        }
    }

    /// The cell of `spec` for this value: what [`parse_json`] gives for the same JSON.
    pub(super) fn cell(&self, spec: &ColumnSpec) -> Result<Cell, String> {
        match self {
            Flat::Str(s) => parse_json_str(spec, s),
            Flat::Nested(v) => parse_json(spec, v),
            scalar => parse_json(spec, &scalar.to_value()),
        }
    }
}

/// The fields of an object read as a `Value`, borrowed.
pub(super) fn borrow_object(map: &serde_json::Map<String, Value>) -> Vec<(Cow<'_, str>, Flat<'_>)> {
    map.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Null => Flat::Null,
                Value::Bool(b) => Flat::Bool(*b),
                Value::Number(n) => Flat::Number(n.clone()),
                Value::String(s) => Flat::Str(Cow::Borrowed(s)),
                nested => Flat::Nested(Cow::Borrowed(nested)),
            };
            (Cow::Borrowed(k.as_str()), v)
        })
        .collect()
}

/// The last value of `key` among `fields`.
pub(super) fn get<'f, 'a>(
    fields: &'f [(Cow<'a, str>, Flat<'a>)],
    key: &str,
) -> Option<&'f Flat<'a>> {
    fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The fields of a JSON object, in order.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Vec<(Cow<'de, str>, Flat<'de>)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<Text<'de>>()? {
            fields.push((key.0, map.next_value::<Flat<'de>>()?));
        }
        Ok(fields)
    }
}

/// A key or string, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.into())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for Flat<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlatVisitor)
    }
}

struct FlatVisitor;

impl<'de> Visitor<'de> for FlatVisitor {
    type Value = Flat<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Flat::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Flat::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Flat::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Flat::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // JSON has no NaN or infinity, so this is always a number, as in a `Value`.
        Ok(Number::from_f64(v).map_or(Flat::Null, Flat::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Flat::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Flat::Str(Cow::Owned(v.into())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Flat::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| Flat::Nested(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(|v| Flat::Nested(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<(String, Value)> {
        match Line::parse(text.as_bytes()).unwrap() {
            Line::Object(fields) => fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_value()))
                .collect(),
            Line::Other(v) => panic!("not an object: {v}"),
        }
    }

    #[test]
    fn a_line_reads_as_the_value_it_is() {
        let text = r#"{"a": 1, "b": -2, "c": 1.5e3, "d": "x\"y", "e": null, "f": true, "g": [1, {"h": 2}], "i": {"j": "k"}, "l": 18446744073709551615}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        let got: serde_json::Map<String, Value> = fields(text).into_iter().collect();
        assert_eq!(Value::Object(got), expected);
    }

    #[test]
    fn unescaped_strings_are_borrowed_and_duplicates_resolve_to_the_last() {
        let text = br#"{"k": "plain", "k": "esc\u00e9"}"#;
        let Ok(Line::Object(fields)) = Line::parse(text) else {
            panic!("not an object")
        };
        assert!(matches!(&fields[0].1, Flat::Str(Cow::Borrowed("plain"))));
        assert!(matches!(get(&fields, "k"), Some(Flat::Str(s)) if s == "esc\u{e9}"));
        assert!(get(&fields, "missing").is_none());
    }

    #[test]
    fn a_value_object_borrows_into_the_same_fields() {
        let text = r#"{"a": 1, "d": "x", "g": [1], "e": null}"#;
        let Value::Object(map) = serde_json::from_str::<Value>(text).unwrap() else {
            panic!("not an object")
        };
        let mut borrowed: Vec<(String, Value)> = borrow_object(&map)
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_value()))
            .collect();
        // A `Map` keeps the text's order only with serde_json's `preserve_order`.
        let mut expected = fields(text);
        borrowed.sort_by(|a, b| a.0.cmp(&b.0));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(borrowed, expected);
    }

    #[test]
    fn other_values_and_bad_json_are_told_apart() {
        assert!(matches!(
            Line::parse(b"[1, 2]"),
            Ok(Line::Other(Value::Array(_)))
        ));
        assert!(matches!(
            Line::parse(b"\"s\""),
            Ok(Line::Other(Value::String(_)))
        ));
        assert!(matches!(
            Line::parse(b"7"),
            Ok(Line::Other(Value::Number(_)))
        ));
        let err = Line::parse(br#"{"a": 1} x"#).err().unwrap();
        let reference = serde_json::from_slice::<Value>(br#"{"a": 1} x"#).unwrap_err();
        assert_eq!(err.to_string(), reference.to_string());
        let err = Line::parse(br#"{"a": 1,"#).err().unwrap();
        let reference = serde_json::from_slice::<Value>(br#"{"a": 1,"#).unwrap_err();
        assert_eq!(err.to_string(), reference.to_string());
    }
}
