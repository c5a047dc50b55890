//! Debezium change events → rows of a product's contract (`source.format = "debezium"`).
//!
//! Each line of a raw file is one Debezium change event as JSON, with or without the
//! `schema`/`payload` wrapper of Kafka Connect's JSON converter. A `null` line (a tombstone, or a
//! wrapper whose `payload` is null) is skipped and counted. Every other event becomes one row:
//!
//! * the row image is `after` for `c` (create), `u` (update) and `r` (snapshot read), `before`
//!   for `d` (delete; it must at least carry the key columns the recipe names), nothing for `t`
//!   (truncate: the row has null image columns and only the metadata);
//! * the metadata goes into the contract columns the recipe names (`source.cdc`, defaults
//!   `cdc_op`, `cdc_ts`, `cdc_position`): the operation letter, when the change happened in the
//!   database (`source.ts_ms`, else the envelope's `ts_ms`, as epoch milliseconds), and the
//!   position of the change in the database's log, as fixed-width text that sorts in source
//!   order ([`position`]). Metadata columns win over image columns of the same name.
//!
//! An event that cannot be read (not JSON, no `op`, an unknown `op`, no image, no position, a key
//! column missing) is quarantined with its line and the reason, like any bad row of ingest.

use std::io::BufRead;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::stages::ingest::MAX_RECORD_BYTES;

/// Where the CDC metadata of each event goes: contract columns, named in the recipe
/// (`source = { format = "debezium", cdc = { op = "cdc_op", ... } }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CdcColumns {
    /// Column for the operation: `c`, `u`, `d`, `r` or `t`.
    #[serde(default = "default_op")]
    pub op: String,
    /// Column for when the change happened in the source database (epoch milliseconds, typed
    /// by the contract: a timestamp or an integer).
    #[serde(default = "default_changed_at")]
    pub changed_at: String,
    /// Column for the position of the change in the source's log (text that sorts in source
    /// order).
    #[serde(default = "default_position")]
    pub position: String,
    /// Columns every row image must carry (non-null); a delete whose `before` lacks one is
    /// quarantined. Truncates carry no image and are exempt.
    #[serde(default)]
    pub key: Vec<String>,
}

fn default_op() -> String {
    "cdc_op".into()
}
fn default_changed_at() -> String {
    "cdc_ts".into()
}
fn default_position() -> String {
    "cdc_position".into()
}

impl Default for CdcColumns {
    fn default() -> Self {
        CdcColumns {
            op: default_op(),
            changed_at: default_changed_at(),
            position: default_position(),
            key: Vec::new(),
        }
    }
}

impl CdcColumns {
    /// The metadata columns, with the recipe field naming each.
    pub fn metadata(&self) -> [(&'static str, &str); 3] {
        [
            ("op", &self.op),
            ("changed_at", &self.changed_at),
            ("position", &self.position),
        ]
    }
}

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A change event, as a row: image columns and metadata columns.
    Row(Map<String, Value>),
    /// A tombstone (`null`): nothing to store.
    Tombstone,
}

/// What [`read`] hands to its caller, line by line.
#[derive(Debug)]
pub enum Item {
    /// A change event as a row.
    Row {
        /// 1-based line of the event.
        line: u64,
        /// The row: column → JSON value.
        row: Map<String, Value>,
        /// The event as read (for quarantine if the row cannot be typed).
        event: Value,
    },
    /// An event that cannot be read.
    Bad {
        /// 1-based line.
        line: u64,
        /// Why.
        reason: String,
        /// The event, or its text when it is not JSON.
        raw: Value,
    },
    /// Something to note in the run record.
    Note(String),
}

/// Reads an NDJSON stream of Debezium events and hands every row, bad event and note to `emit`.
pub fn read(
    reader: impl BufRead,
    columns: &CdcColumns,
    mut emit: impl FnMut(Item) -> Result<()>,
) -> Result<()> {
    let mut tombstones = 0u64;
    crate::stages::ingest::for_each_line(reader, |line, text| {
        let Some(text) = text else {
            return emit(Item::Bad {
                line,
                reason: format!("event longer than {MAX_RECORD_BYTES} bytes"),
                raw: Value::Null,
            });
        };
        let event: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                let raw = String::from_utf8_lossy(&text[..text.len().min(64 << 10)]).into_owned();
                return emit(Item::Bad {
                    line,
                    reason: format!("malformed JSON: {e}"),
                    raw: Value::String(raw),
                });
            }
        };
        match decode(&event, columns) {
            Ok(Decoded::Row(row)) => emit(Item::Row { line, row, event }),
            Ok(Decoded::Tombstone) => {
                tombstones += 1;
                Ok(())
            }
            Err(reason) => emit(Item::Bad {
                line,
                reason,
                raw: event,
            }),
        }
    })?;
    if tombstones > 0 {
        emit(Item::Note(format!("{tombstones} tombstone(s) skipped")))?;
    }
    Ok(())
}

/// Decodes one Debezium event (with or without the `schema`/`payload` wrapper) into a row.
pub fn decode(event: &Value, columns: &CdcColumns) -> std::result::Result<Decoded, String> {
    let payload = match event {
        Value::Null => return Ok(Decoded::Tombstone),
        Value::Object(map) if !map.contains_key("op") && map.contains_key("payload") => {
            &map["payload"]
        }
        other => other,
    };
    let envelope = match payload {
        Value::Null => return Ok(Decoded::Tombstone),
        Value::Object(map) => map,
        _ => return Err("event is not a JSON object".into()),
    };
    let op = match envelope.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err("`op` is not a string".into()),
        None => return Err("no `op`: not a Debezium change event".into()),
    };
    let image = match op {
        "c" | "u" | "r" => Some(image(envelope, "after", op)?),
        "d" => Some(image(envelope, "before", op)?),
        "t" => None,
        other => {
            return Err(format!("unknown op `{other}` (expected c, u, d, r or t)"));
        }
    };
    let mut row = image.cloned().unwrap_or_default();
    if image.is_some() {
        for k in &columns.key {
            if row.get(k).is_none_or(Value::is_null) {
                let side = if op == "d" { "before" } else { "after" };
                return Err(format!("`{side}` lacks key column `{k}`"));
            }
        }
    }
    let source = match envelope.get("source") {
        Some(Value::Object(s)) => Some(s),
        None | Some(Value::Null) => None,
        Some(_) => return Err("`source` is not an object".into()),
    };
    let envelope_ts = envelope.get("ts_ms").filter(|v| !v.is_null());
    let changed_at = source
        .and_then(|s| s.get("ts_ms"))
        .filter(|v| !v.is_null())
        .or(envelope_ts)
        .cloned()
        .unwrap_or(Value::Null);
    let position = position(source, envelope_ts)?;
    row.insert(columns.op.clone(), Value::String(op.into()));
    row.insert(columns.changed_at.clone(), changed_at);
    row.insert(columns.position.clone(), Value::String(position));
    Ok(Decoded::Row(row))
}

fn image<'a>(
    envelope: &'a Map<String, Value>,
    side: &str,
    op: &str,
) -> std::result::Result<&'a Map<String, Value>, String> {
    match envelope.get(side) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(format!("op `{op}` has no `{side}` object")),
    }
}

/// The position of a change in its source's log, as text that sorts (byte-wise) in source order
/// among the events of one connector:
///
/// * PostgreSQL (`source.connector = "postgresql"`, or an `lsn`): the LSN as 20 decimal digits,
///   e.g. `00000000000024023128` (`txId` is not needed: LSNs are unique and ordered);
/// * MySQL (`"mysql"`, or `file` and `pos`): the binlog file's sequence number (the digits after
///   its last `.`), its byte offset and the row within the event, as 10, 20 and 10 digits:
///   `0000000003-00000000000000000154-0000000000`;
/// * SQL Server (`"sqlserver"`, or `commit_lsn`/`change_lsn`): the commit LSN, the change LSN
///   (zeros for snapshot reads) and `event_serial_no` (10 digits), the LSNs as Debezium prints
///   them (`xxxxxxxx:xxxxxxxx:xxxx`, lower-case hex);
/// * any other connector: `source.ts_ms`, else the envelope's `ts_ms`, as 20 digits.
///
/// Snapshot reads share their snapshot's position; later changes sort after it.
pub fn position(
    source: Option<&Map<String, Value>>,
    envelope_ts: Option<&Value>,
) -> std::result::Result<String, String> {
    let empty = Map::new();
    let s = source.unwrap_or(&empty);
    let connector = s.get("connector").and_then(Value::as_str).unwrap_or("");
    let has = |k: &str| s.get(k).is_some_and(|v| !v.is_null());
    if connector == "postgresql" || (connector.is_empty() && has("lsn")) {
        let lsn =
            unsigned(s.get("lsn")).ok_or("postgresql event without a numeric `source.lsn`")?;
        return Ok(format!("{lsn:020}"));
    }
    if connector == "mysql" || (connector.is_empty() && has("file") && has("pos")) {
        let file = s
            .get("file")
            .and_then(Value::as_str)
            .ok_or("mysql event without `source.file`")?;
        let seq = file
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .ok_or_else(|| format!("binlog file `{file}` has no numeric extension"))?;
        let pos = unsigned(s.get("pos")).ok_or("mysql event without a numeric `source.pos`")?;
        let row = unsigned(s.get("row")).unwrap_or(0);
        return Ok(format!("{seq:010}-{pos:020}-{row:010}"));
    }
    if connector == "sqlserver"
        || (connector.is_empty() && (has("commit_lsn") || has("change_lsn")))
    {
        let lsn = |k: &str| -> std::result::Result<String, String> {
            match s.get(k) {
                None | Some(Value::Null) => Ok("00000000:00000000:0000".into()),
                Some(Value::String(v)) if is_sqlserver_lsn(v) => Ok(v.to_ascii_lowercase()),
                Some(other) => Err(format!("sqlserver `source.{k}` `{other}` is not an LSN")),
            }
        };
        if !has("commit_lsn") {
            return Err("sqlserver event without `source.commit_lsn`".into());
        }
        let serial = unsigned(s.get("event_serial_no")).unwrap_or(0);
        return Ok(format!(
            "{}-{}-{serial:010}",
            lsn("commit_lsn")?,
            lsn("change_lsn")?
        ));
    }
    let ts = unsigned(s.get("ts_ms"))
        .or_else(|| unsigned(envelope_ts))
        .ok_or("no position: neither a known connector's offset nor `ts_ms`")?;
    Ok(format!("{ts:020}"))
}

/// A non-negative integer, as a JSON number or decimal text.
fn unsigned(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `xxxxxxxx:xxxxxxxx:xxxx` in hex.
fn is_sqlserver_lsn(v: &str) -> bool {
    let parts: Vec<&str> = v.split(':').collect();
    parts.len() == 3
        && parts
            .iter()
            .zip([8, 8, 4])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_sort_in_source_order() {
        let pg = |lsn: u64| {
            position(
                json!({"connector": "postgresql", "lsn": lsn}).as_object(),
                None,
            )
        };
        assert!(pg(9).unwrap() < pg(10).unwrap());
        assert_eq!(pg(24023128).unwrap(), "00000000000024023128");
        let my = |file: &str, pos: u64, row: u64| {
            position(
                json!({"connector": "mysql", "file": file, "pos": pos, "row": row}).as_object(),
                None,
            )
            .unwrap()
        };
        assert!(my("mysql-bin.000009", 900, 0) < my("mysql-bin.000010", 4, 0));
        assert!(my("mysql-bin.000010", 4, 1) < my("mysql-bin.000010", 40, 0));
        assert!(my("mysql-bin.000010", 4, 0) < my("mysql-bin.000010", 4, 1));
        let ms = |commit: &str, change: Option<&str>| {
            position(
                json!({"connector": "sqlserver", "commit_lsn": commit, "change_lsn": change})
                    .as_object(),
                None,
            )
            .unwrap()
        };
        assert!(
            ms("00000025:00000d98:0003", None)
                < ms("00000025:00000d98:0003", Some("00000025:00000d98:0002"))
        );
        assert!(ms("00000025:00000D98:0003", None) < ms("00000025:00000e00:0001", None));
        assert_eq!(
            position(None, Some(&json!(1700000000000_u64))).unwrap(),
            "00000001700000000000"
        );
        assert!(
            position(
                json!({"connector": "mysql", "file": "binlog", "pos": 1}).as_object(),
                None
            )
            .is_err()
        );
        assert!(
            position(
                json!({"connector": "sqlserver", "commit_lsn": "25:d98:3"}).as_object(),
                None
            )
            .is_err()
        );
    }
}
