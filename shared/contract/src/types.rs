//! Mapping contract properties to Arrow.
//!
//! The mapping is documented on [`Property::data_type`]. Fields keep the
//! declared order, are nullable unless `required`, and carry `description` and
//! `classification` metadata when the contract sets them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::{Issue, Result, object_error};
use crate::model::{LogicalType, Property, SchemaObject};

/// Largest precision of `Decimal128`.
const MAX_DECIMAL_PRECISION: u64 = 38;

/// The Arrow timestamp type every instant is stored as.
pub(crate) fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl SchemaObject {
    /// The Arrow schema of the object's top-level properties, in declared order:
    /// nullable unless `required`, with `description` and `classification` field
    /// metadata when set, types as in [`Property::data_type`].
    ///
    /// Errors name the property path (`orders.items.unit_price`) and carry a
    /// pointer relative to the object.
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        self.arrow_fields()
            .map(|fields| Arc::new(Schema::new(fields)))
            .map_err(|e| object_error(&self.name, vec![e]))
    }

    /// All top-level fields, or the first type error.
    pub(crate) fn arrow_fields(&self) -> Result<Vec<Field>, Issue> {
        self.properties
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.field(
                    &format!("{}.{}", self.name, p.name),
                    &format!("/properties/{i}"),
                )
            })
            .collect()
    }
}

impl Property {
    /// The Arrow data type of the property's values:
    ///
    /// | logical type | Arrow type |
    /// |---|---|
    /// | `string` | `Utf8` |
    /// | `boolean` | `Boolean` |
    /// | `integer` | by `logicalTypeOptions.format` (`i8`..`u64`), else physical type (`tinyint` `Int8`, `smallint` `Int16`, `int` `Int32`, `bigint` `Int64`), else `Int64` |
    /// | `number` | `decimal(p,s)` / `numeric(p,s)` → `Decimal128(p,s)`; `float`, `real` or format `f32` → `Float32`; else `Float64` |
    /// | `date` | `Date32`; `Timestamp(µs, UTC)` when the physical type is a `timestamp…`/`datetime…` |
    /// | `timestamp` | `Timestamp(µs, UTC)`: Tessera normalizes every instant to UTC |
    /// | `time` | `Time64(µs)` |
    /// | `array` | `List` of the `items` type (element field `item`, nullable); `List<Utf8>` without `items` |
    /// | `object` | `Struct` of its properties; `Utf8` (JSON text) without properties |
    ///
    /// Errors name the property and say why (decimal precision above 38 or
    /// below the scale, an integer format without an Arrow type).
    pub fn data_type(&self) -> Result<DataType> {
        self.resolve(&self.name, "")
            .map_err(|e| object_error(&self.name, vec![e]))
    }

    /// The logical type, inferred from the physical type when not declared.
    pub(crate) fn logical(&self) -> LogicalType {
        self.logical_type
            .or_else(|| self.physical_type.as_deref().and_then(LogicalType::infer))
            .unwrap_or(LogicalType::String)
    }

    /// The property as an Arrow field named after it.
    pub(crate) fn field(&self, path: &str, pointer: &str) -> Result<Field, Issue> {
        let mut metadata = HashMap::new();
        if let Some(description) = &self.description {
            metadata.insert("description".to_owned(), description.clone());
        }
        if let Some(classification) = &self.classification {
            metadata.insert("classification".to_owned(), classification.clone());
        }
        Ok(
            Field::new(&self.name, self.resolve(path, pointer)?, !self.required)
                .with_metadata(metadata),
        )
    }

    /// The data type; `path` and `pointer` locate the property for error messages.
    pub(crate) fn resolve(&self, path: &str, pointer: &str) -> Result<DataType, Issue> {
        let physical = self
            .physical_type
            .as_deref()
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let format = self.options.format.as_deref().map(str::trim);
        let fail = |field: &str, message: String| {
            Issue::new(
                format!("{pointer}/{field}"),
                format!("property `{path}`: {message}"),
            )
        };
        Ok(match self.logical() {
            LogicalType::String => DataType::Utf8,
            LogicalType::Boolean => DataType::Boolean,
            LogicalType::Integer => match format {
                Some(format) => integer_format(format).ok_or_else(|| {
                    fail(
                        "logicalTypeOptions/format",
                        format!(
                            "integer format `{format}` has no Arrow type (use i8..i64 or u8..u64)"
                        ),
                    )
                })?,
                None => integer_physical(&physical).unwrap_or(DataType::Int64),
            },
            LogicalType::Number => {
                if let Some(decimal) = decimal(&physical) {
                    let (precision, scale) =
                        decimal.map_err(|message| fail("physicalType", message))?;
                    DataType::Decimal128(precision, scale)
                } else {
                    match format {
                        Some("f32") => DataType::Float32,
                        Some("f64") => DataType::Float64,
                        _ if single_precision(&physical) => DataType::Float32,
                        _ => DataType::Float64,
                    }
                }
            }
            LogicalType::Date => {
                if physical.starts_with("timestamp") || physical.starts_with("datetime") {
                    utc_timestamp()
                } else {
                    DataType::Date32
                }
            }
            LogicalType::Timestamp => utc_timestamp(),
            LogicalType::Time => DataType::Time64(TimeUnit::Microsecond),
            LogicalType::Array => {
                let item = match &self.items {
                    Some(items) => items.resolve(path, &format!("{pointer}/items"))?,
                    None => DataType::Utf8,
                };
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            LogicalType::Object if self.properties.is_empty() => DataType::Utf8,
            LogicalType::Object => DataType::Struct(
                self.properties
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        p.field(
                            &format!("{path}.{}", p.name),
                            &format!("{pointer}/properties/{i}"),
                        )
                    })
                    .collect::<Result<Fields, _>>()?,
            ),
        })
    }
}

/// `i8`..`i64`, `u8`..`u64`.
fn integer_format(format: &str) -> Option<DataType> {
    Some(match format {
        "i8" => DataType::Int8,
        "i16" => DataType::Int16,
        "i32" => DataType::Int32,
        "i64" => DataType::Int64,
        "u8" => DataType::UInt8,
        "u16" => DataType::UInt16,
        "u32" => DataType::UInt32,
        "u64" => DataType::UInt64,
        _ => return None,
    })
}

/// Integer width from a SQL physical type.
fn integer_physical(physical: &str) -> Option<DataType> {
    let base = physical.split(['(', ' ']).next().unwrap_or_default();
    Some(match base {
        "tinyint" => DataType::Int8,
        "smallint" | "smallserial" => DataType::Int16,
        "int" | "integer" | "mediumint" | "serial" => DataType::Int32,
        "bigint" | "long" | "bigserial" => DataType::Int64,
        _ => return None,
    })
}

/// `float`, `real`, `float4`, or `float(p)` with p ≤ 24: single precision.
fn single_precision(physical: &str) -> bool {
    let compact: String = physical.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.split_once('(') {
        Some(("float", args)) => match args.trim_end_matches(')').parse::<u32>() {
            Ok(bits) => bits <= 24,
            Err(_) => true,
        },
        Some(_) => false,
        None => matches!(compact.as_str(), "float" | "real" | "float4" | "float32"),
    }
}

/// `decimal(p,s)`, `numeric(p,s)`, `number(p,s)` (scale optional, case and spaces free):
/// `None` when the type is not such a decimal, else its checked precision and scale.
fn decimal(physical: &str) -> Option<Result<(u8, i8), String>> {
    let compact: String = physical.chars().filter(|c| !c.is_whitespace()).collect();
    let (base, args) = compact.split_once('(')?;
    if !matches!(base, "decimal" | "numeric" | "number") {
        return None;
    }
    let args = args.strip_suffix(')')?;
    let mut parts = args.split(',');
    let precision = parts.next()?.parse::<u64>().ok()?;
    let scale = match parts.next() {
        Some(scale) => scale.parse::<u64>().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(if precision == 0 || precision > MAX_DECIMAL_PRECISION {
        Err(format!(
            "decimal precision {precision} is out of range 1..={MAX_DECIMAL_PRECISION}"
        ))
    } else if scale > precision {
        Err(format!(
            "decimal scale {scale} is larger than precision {precision}"
        ))
    } else {
        // Both fit: precision ≤ 38 and scale ≤ precision.
        Ok((precision as u8, scale as i8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps a property written in YAML (as it would appear in `properties:`).
    fn map(yaml: &str) -> Result<DataType> {
        let object = format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: t\nversion: 1.0.0\nstatus: active\n\
             schema:\n  - name: t\n    properties:\n      - name: c\n{}",
            yaml.lines()
                .map(|l| format!("        {l}\n"))
                .collect::<String>()
        );
        let contract = crate::Contract::from_yaml(&object, "t.yaml")?;
        contract.schema[0].properties[0].data_type()
    }

    fn check(yaml: &str, expected: DataType) {
        match map(yaml) {
            Ok(actual) => assert_eq!(actual, expected, "for:\n{yaml}"),
            Err(e) => panic!("for:\n{yaml}\nunexpected error: {e}"),
        }
    }

    fn list(item: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", item, true)))
    }

    #[test]
    fn type_mapping_table() {
        let ts = utc_timestamp();
        let cases: Vec<(&str, DataType)> = vec![
            ("logicalType: string", DataType::Utf8),
            ("physicalType: varchar(20)", DataType::Utf8),
            ("physicalType: mystery", DataType::Utf8),
            ("logicalType: boolean", DataType::Boolean),
            ("physicalType: bool", DataType::Boolean),
            ("logicalType: integer", DataType::Int64),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: i8}",
                DataType::Int8,
            ),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: i16}",
                DataType::Int16,
            ),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: i32}",
                DataType::Int32,
            ),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: u8}",
                DataType::UInt8,
            ),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: u16}",
                DataType::UInt16,
            ),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: u32}",
                DataType::UInt32,
            ),
            (
                "logicalType: integer\nlogicalTypeOptions: {format: u64}",
                DataType::UInt64,
            ),
            (
                "logicalType: integer\nphysicalType: TINYINT",
                DataType::Int8,
            ),
            (
                "logicalType: integer\nphysicalType: smallint",
                DataType::Int16,
            ),
            ("logicalType: integer\nphysicalType: int", DataType::Int32),
            (
                "logicalType: integer\nphysicalType: INTEGER",
                DataType::Int32,
            ),
            (
                "logicalType: integer\nphysicalType: bigint",
                DataType::Int64,
            ),
            ("logicalType: integer\nphysicalType: long", DataType::Int64),
            ("physicalType: bigint", DataType::Int64),
            (
                "logicalType: integer\nphysicalType: int\nlogicalTypeOptions: {format: i64}",
                DataType::Int64,
            ),
            ("logicalType: number", DataType::Float64),
            (
                "logicalType: number\nphysicalType: double",
                DataType::Float64,
            ),
            (
                "logicalType: number\nphysicalType: decimal(10,2)",
                DataType::Decimal128(10, 2),
            ),
            (
                "logicalType: number\nphysicalType: NUMERIC( 38 , 0 )",
                DataType::Decimal128(38, 0),
            ),
            (
                "logicalType: number\nphysicalType: Decimal(5)",
                DataType::Decimal128(5, 0),
            ),
            ("physicalType: decimal(12,4)", DataType::Decimal128(12, 4)),
            (
                "logicalType: number\nphysicalType: float",
                DataType::Float32,
            ),
            ("logicalType: number\nphysicalType: REAL", DataType::Float32),
            (
                "logicalType: number\nphysicalType: float(3,2)",
                DataType::Float32,
            ),
            (
                "logicalType: number\nphysicalType: float(53)",
                DataType::Float64,
            ),
            (
                "logicalType: number\nlogicalTypeOptions: {format: f32}",
                DataType::Float32,
            ),
            (
                "logicalType: number\nphysicalType: float\nlogicalTypeOptions: {format: f64}",
                DataType::Float64,
            ),
            ("logicalType: date", DataType::Date32),
            ("physicalType: date", DataType::Date32),
            ("logicalType: date\nphysicalType: timestamp", ts.clone()),
            ("logicalType: date\nphysicalType: DATETIME2", ts.clone()),
            ("logicalType: timestamp", ts.clone()),
            ("physicalType: timestamp_ntz", ts.clone()),
            ("logicalType: time", DataType::Time64(TimeUnit::Microsecond)),
            ("logicalType: array", list(DataType::Utf8)),
            (
                "logicalType: array\nitems: {logicalType: integer, logicalTypeOptions: {format: i32}}",
                list(DataType::Int32),
            ),
            (
                "logicalType: array\nitems:\n  logicalType: array\n  items: {logicalType: date}",
                list(list(DataType::Date32)),
            ),
            ("logicalType: object", DataType::Utf8),
            ("physicalType: json", DataType::Utf8),
            (
                "logicalType: object\nproperties:\n  - {name: a, logicalType: integer, required: true}\n  - {name: b, logicalType: string}",
                DataType::Struct(Fields::from(vec![
                    Field::new("a", DataType::Int64, false),
                    Field::new("b", DataType::Utf8, true),
                ])),
            ),
        ];
        for (yaml, expected) in cases {
            check(yaml, expected);
        }
    }

    #[test]
    fn type_errors_name_the_property_path() {
        let yaml = "apiVersion: v3.1.0\nkind: DataContract\nid: t\nversion: 1.0.0\nstatus: active\n\
                    schema:\n  - name: orders\n    properties:\n      - name: items\n        \
                    logicalType: array\n        items:\n          logicalType: object\n          \
                    properties:\n            - name: unit_price\n              logicalType: number\n              \
                    physicalType: decimal(50,2)\n";
        let contract = crate::Contract::from_yaml(yaml, "t.yaml").unwrap();
        let err = contract.schema[0].arrow_schema().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("orders.items.unit_price"), "{text}");
        assert!(text.contains("precision 50"), "{text}");
        assert_eq!(
            err.problems[0].pointer,
            "/properties/0/items/properties/0/physicalType"
        );
        assert!(map("logicalType: number\nphysicalType: decimal(5,7)").is_err());
        assert!(map("logicalType: integer\nlogicalTypeOptions: {format: i128}").is_err());
    }

    #[test]
    fn arrow_schema_fields_and_metadata() {
        let yaml = "apiVersion: v3.1.0\nkind: DataContract\nid: t\nversion: 1.0.0\nstatus: active\n\
                    schema:\n  - name: t\n    properties:\n      - name: id\n        logicalType: integer\n        \
                    required: true\n        description: the key\n        classification: public\n      \
                    - name: note\n        logicalType: string\n";
        let contract = crate::Contract::from_yaml(yaml, "t.yaml").unwrap();
        let schema = contract.schema[0].arrow_schema().unwrap();
        assert_eq!(schema.fields().len(), 2);
        let id = schema.field(0);
        assert_eq!((id.name().as_str(), id.is_nullable()), ("id", false));
        assert_eq!(
            id.metadata().get("description").map(String::as_str),
            Some("the key")
        );
        assert_eq!(
            id.metadata().get("classification").map(String::as_str),
            Some("public")
        );
        let note = schema.field(1);
        assert!(note.is_nullable() && note.metadata().is_empty());
    }
}
