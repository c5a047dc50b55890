//! JSON as typing reads it: [`Json`], a value whose keys and strings borrow from the text they
//! were read from wherever the JSON allows it (no escapes), and whose objects are their fields in
//! order (duplicates kept; the last one wins, as in a `serde_json::Value`).
//!
//! Reading JSON into a `Value` builds a map for every object (hashing every key) and allocates
//! every key and string, only for typing to look values up by name once: most of NDJSON ingest's
//! time, and the nested `items` of a CSV row. Typing from this representation gives the same
//! cells (the tests compare the two). A `Value` that was already read borrows into the same form
//! ([`Json::borrow`]), so typing has one definition for both.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value, borrowed where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` reads it.
    Number(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object's fields in order (see [`Fields`]).
    Object(Fields<'a>),
}

/// An object's fields in order, duplicates kept.
pub type Fields<'a> = Vec<(Cow<'a, str>, Json<'a>)>;

/// What one line of NDJSON holds: an object's fields, or any other JSON value.
#[derive(Debug)]
pub enum Line<'a> {
    /// An object.
    Object(Fields<'a>),
    /// Anything else.
    Other(Json<'a>),
}

impl<'a> Line<'a> {
    /// Reads a whole line; anything after the value is an error, as for `serde_json::from_slice`.
    pub fn parse(text: &'a [u8]) -> serde_json::Result<Line<'a>> {
        Ok(match Json::parse(text)? {
            Json::Object(fields) => Line::Object(fields),
            other => Line::Other(other),
        })
    }
}

impl<'a> Json<'a> {
    /// Reads a whole text; anything after the value is an error, as for `serde_json::from_slice`
    /// (whose error messages these are).
    pub fn parse(text: &'a [u8]) -> serde_json::Result<Json<'a>> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let value = Json::deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// A `Value` in this form, its keys and strings borrowed.
    pub fn borrow(value: &'a Value) -> Json<'a> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::Str(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::borrow).collect()),
            Value::Object(map) => Json::Object(borrow_object(map)),
        }
    }

    /// The value as a `serde_json` value: a duplicate key keeps its first place and its last
    /// value, as when `serde_json` reads the text.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::Str(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(fields) => {
                let mut map = Map::new();
                for (k, v) in fields {
                    map.insert(k.to_string(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }

    /// What kind of JSON value this is, as error messages name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// The fields of an object read as a `Value`, borrowed.
pub fn borrow_object(map: &Map<String, Value>) -> Fields<'_> {
    map.iter()
        .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::borrow(v)))
        .collect()
}

/// The last value of `key` among `fields`.
pub fn get<'f, 'a>(fields: &'f [(Cow<'a, str>, Json<'a>)], key: &str) -> Option<&'f Json<'a>> {
    fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A key, borrowed from the text when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.into())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // JSON has no NaN or infinity, so this is always a number, as in a `Value`.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.into())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            fields.push((key.0, map.next_value::<Json<'de>>()?));
        }
        Ok(Json::Object(fields))
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
            Line::Other(v) => panic!("not an object: {v:?}"),
        }
    }

    #[test]
    fn a_text_reads_as_the_value_serde_json_reads() {
        let texts = [
            r#"{"a": 1, "b": -2, "c": 1.5e3, "d": "x\"y", "e": null, "f": true, "g": [1, {"h": 2}], "i": {"j": "k"}, "l": 18446744073709551615}"#,
            r#"[{"k": 1, "k": 2, "m": [], "n": {}}, "s", 0.1, [[-0.0]]]"#,
            r#"{"dup": {"a": 1, "b": 2, "a": 3}}"#,
        ];
        for text in texts {
            let expected: Value = serde_json::from_str(text).unwrap();
            let got = Json::parse(text.as_bytes()).unwrap();
            assert_eq!(got.to_value(), expected, "{text}");
            assert_eq!(got.to_value().to_string(), expected.to_string(), "{text}");
            assert_eq!(Json::borrow(&expected).to_value(), expected, "{text}");
        }
    }

    #[test]
    fn unescaped_strings_are_borrowed_and_duplicates_resolve_to_the_last() {
        let text = br#"{"k": "plain", "k": "esc\u00e9", "n": ["in", {"deep": "er"}]}"#;
        let Ok(Line::Object(fields)) = Line::parse(text) else {
            panic!("not an object")
        };
        assert!(matches!(&fields[0].1, Json::Str(Cow::Borrowed("plain"))));
        assert!(matches!(get(&fields, "k"), Some(Json::Str(s)) if s == "esc\u{e9}"));
        let Some(Json::Array(items)) = get(&fields, "n") else {
            panic!("no array")
        };
        assert!(matches!(&items[0], Json::Str(Cow::Borrowed("in"))));
        let Json::Object(inner) = &items[1] else {
            panic!("no object")
        };
        assert!(matches!(
            &inner[0],
            (Cow::Borrowed("deep"), Json::Str(Cow::Borrowed("er")))
        ));
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
            Ok(Line::Other(Json::Array(_)))
        ));
        assert!(matches!(
            Line::parse(b"\"s\""),
            Ok(Line::Other(Json::Str(_)))
        ));
        assert!(matches!(
            Line::parse(b"7"),
            Ok(Line::Other(Json::Number(_)))
        ));
        for bad in [
            &br#"{"a": 1} x"#[..],
            br#"{"a": 1,"#,
            b"[1, 2",
            b"",
            br#"{"a": tru}"#,
        ] {
            let err = Line::parse(bad).err().unwrap();
            let reference = serde_json::from_slice::<Value>(bad).unwrap_err();
            assert_eq!(err.to_string(), reference.to_string());
        }
    }

    #[test]
    fn deep_nesting_is_refused_as_serde_json_refuses_it() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let err = Json::parse(deep.as_bytes()).unwrap_err();
        let reference = serde_json::from_str::<Value>(&deep).unwrap_err();
        assert_eq!(err.to_string(), reference.to_string());
    }
}
