//! Object keys: the zone layout of a domain bucket, key validation, deterministic names.
//!
//! ```text
//! raw/<product>/<file>                       landed by sources           → ingest
//! staged/<product>/<stem>-<id>.parquet       typed rows                  → clean
//! clean/<product>/<stem>-<id>.parquet        cleaned rows                → contract-check
//! products/<product>/<col>=<v>/part-<version>-<n>.parquet   published data (Hive layout)
//! products/<product>/_commits/<seq>.json     the commit log; a version is visible once committed
//! quarantine/<product>/<stage>/...           bad rows and bad files, with reasons
//! runs/<product>/<stage>/<id>.json           run records
//! ```
//!
//! Every name a stage writes is derived from its input's name and version, so a repeated event
//! produces the same objects rather than a second copy.

use crate::error::{Error, Result};

/// The zones of a domain bucket, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Files as they arrived.
    Raw,
    /// Typed Parquet written by ingest.
    Staged,
    /// Cleaned Parquet written by clean.
    Clean,
    /// Published products.
    Products,
    /// Rows and files that failed, with reasons.
    Quarantine,
    /// Run records.
    Runs,
}

impl Zone {
    /// The key prefix of the zone, with its trailing slash.
    pub fn prefix(self) -> &'static str {
        match self {
            Zone::Raw => "raw/",
            Zone::Staged => "staged/",
            Zone::Clean => "clean/",
            Zone::Products => "products/",
            Zone::Quarantine => "quarantine/",
            Zone::Runs => "runs/",
        }
    }
}

/// Longest key S3 accepts.
pub const MAX_KEY_BYTES: usize = 1024;

/// Decodes a key as S3 events carry it (URL-encoded, `+` for space) and validates it.
pub fn decode_event_key(raw: &str) -> Result<String> {
    let plus = raw.replace('+', " ");
    let bytes = plus.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    let key = String::from_utf8(out)
        .map_err(|_| Error::BadEvent(format!("object key `{raw}` is not UTF-8 once decoded")))?;
    validate_key(&key)?;
    Ok(key)
}

/// Refuses keys that could escape their zone or confuse a reader.
pub fn validate_key(key: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::BadEvent(format!(
            "object key `{}` refused: {why}",
            key.escape_debug()
        )))
    };
    if key.is_empty() {
        return refuse("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return refuse("longer than 1,024 bytes");
    }
    if key.chars().any(char::is_control) {
        return refuse("control character");
    }
    if key.starts_with('/') || key.split('/').any(|s| s == ".." || s == ".") {
        return refuse("relative or absolute path segment");
    }
    Ok(())
}

/// A key split into its zone, product and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneKey {
    /// The zone.
    pub zone: Zone,
    /// The product folder.
    pub product: String,
    /// The file name (last segment).
    pub file: String,
}

/// Splits `zone/product/.../file`.
pub fn parse_zone_key(key: &str, zone: Zone) -> Result<ZoneKey> {
    let rest = key
        .strip_prefix(zone.prefix())
        .ok_or_else(|| Error::BadEvent(format!("key `{key}` is not under `{}`", zone.prefix())))?;
    let (product, tail) = rest
        .split_once('/')
        .ok_or_else(|| Error::BadEvent(format!("key `{key}` names no product folder")))?;
    validate_identifier(product).map_err(|e| Error::BadEvent(format!("key `{key}`: {e}")))?;
    let file = tail.rsplit('/').next().unwrap_or(tail);
    if file.is_empty() {
        return Err(Error::BadEvent(format!(
            "key `{key}` is a folder, not an object"
        )));
    }
    Ok(ZoneKey {
        zone,
        product: product.to_owned(),
        file: file.to_owned(),
    })
}

/// Checks a name that becomes a catalog, SQL or folder identifier: `^[a-z][a-z0-9_]*$`, at most 255.
pub fn validate_identifier(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid identifier (lower-case letters, digits and `_`, starting with a letter)",
            name.escape_debug()
        ))
    }
}

/// A short, stable id for an input object version: the same input always gets the same id.
pub fn input_id(bucket: &str, key: &str, version: &str) -> String {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{bucket}\u{0}{key}\u{0}{version}").as_bytes());
    format!("{h:016x}")
}

/// A stable id for an object of a derived zone, whose name already carries the version of the
/// raw object it came from.
pub fn derived_id(bucket: &str, key: &str) -> String {
    input_id(bucket, key, "derived")
}

/// The run id a stage gives an input object of `zone`: raw objects by key and version; staged
/// and clean objects by key alone (their key already carries the raw object's version, so an
/// object rewritten by a repeated delivery, with a new etag, is still the same input).
pub fn object_run_id(zone: Zone, bucket: &str, key: &str, version: &str) -> String {
    match zone {
        Zone::Staged | Zone::Clean => derived_id(bucket, key),
        _ => input_id(bucket, key, version),
    }
}

/// The file stem of a key without its extensions (`orders.csv.gz` → `orders`), made safe for keys.
pub fn stem(file: &str) -> String {
    let base = file.split('.').next().unwrap_or(file);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

/// Key of a run record.
pub fn run_key(product: &str, stage: &str, id: &str) -> String {
    format!("{}{id}.json", run_prefix(product, stage))
}

/// The folder of a product's run records of one stage.
pub fn run_prefix(product: &str, stage: &str) -> String {
    format!("{}{product}/{stage}/", Zone::Runs.prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_decoded_like_s3_encodes_them() {
        assert_eq!(
            decode_event_key("raw/orders/my+file%281%29.csv").unwrap(),
            "raw/orders/my file(1).csv"
        );
        assert_eq!(
            decode_event_key("raw/orders/a%2Bb.csv").unwrap(),
            "raw/orders/a+b.csv"
        );
        assert_eq!(
            decode_event_key("raw/orders/100%").unwrap(),
            "raw/orders/100%"
        );
    }

    #[test]
    fn hostile_keys_are_refused() {
        for key in [
            "raw/../secrets/x.csv",
            "raw/orders/%2e%2e/x.csv",
            "raw/orders/a%0Ab.csv",
            "/raw/orders/x.csv",
            "",
        ] {
            assert!(decode_event_key(key).is_err(), "{key} should be refused");
        }
        let long = format!("raw/orders/{}", "a".repeat(1015));
        assert_eq!(long.len(), 1026);
        assert!(decode_event_key(&long).is_err());
    }

    #[test]
    fn zone_keys_split_into_product_and_file() {
        let k = parse_zone_key("raw/orders/2024/05/orders_1.csv", Zone::Raw).unwrap();
        assert_eq!(k.product, "orders");
        assert_eq!(k.file, "orders_1.csv");
        assert!(parse_zone_key("raw/Orders!/x.csv", Zone::Raw).is_err());
        assert!(parse_zone_key("staged/orders/x.csv", Zone::Raw).is_err());
        assert!(parse_zone_key("raw/orders/", Zone::Raw).is_err());
    }

    #[test]
    fn identifiers_follow_glue_rules() {
        assert!(validate_identifier("daily_revenue_2").is_ok());
        for bad in ["", "2x", "Orders", "a-b", "a b", "x;drop"] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_and_stems_are_stable() {
        assert_eq!(input_id("b", "k", "v"), input_id("b", "k", "v"));
        assert_ne!(input_id("b", "k", "v1"), input_id("b", "k", "v2"));
        assert_eq!(stem("orders 2024.csv.gz"), "orders_2024");
    }
}
