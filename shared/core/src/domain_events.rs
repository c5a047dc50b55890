//! Domain events from EventBridge, batched into the raw zone the way Kinesis Data Firehose does.
//!
//! A product whose source declares `events = { source = "...", detail_type = "..." }` receives
//! the matching events of the mesh's bus. On AWS, the domain stack routes them through a rule
//! (target input `$.detail`) to a Firehose delivery stream that writes NDJSON objects, one
//! `detail` per line, under Firehose's default layout:
//!
//! ```text
//! raw/<product>/YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<id>
//! ```
//!
//! (`<stream>` is [`stream_name`], the time is the delivery's, in UTC). Ingest finds the product
//! from the first folder, so the usual chain (ingest with `format = "ndjson"`, clean,
//! contract-check) picks the objects up. [`put`] is the embedded and emulator equivalent: it
//! writes one batch of full EventBridge events at that layout through the storage port (so the
//! embedded backend announces `Object Created` on the in-process bus and ingest runs).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::keys::Zone;
use crate::mesh::{EventSource, ProductKind, SourceFormat};

/// Name of a product's delivery stream: `tessera-<mesh>-<domain>-<product>-events` (what the
/// domain stack creates, and the prefix of every object it writes).
pub fn stream_name(mesh: &str, domain: &str, product: &str) -> String {
    format!("tessera-{mesh}-{domain}-{product}-events")
}

/// The key Firehose gives a batch delivered at `at`: `raw/<product>/YYYY/MM/DD/HH/<stream>-1-
/// YYYY-MM-DD-HH-MM-SS-<id>` (the `1` is the delivery stream's version).
pub fn firehose_key(product: &str, stream: &str, at: DateTime<Utc>, id: &str) -> String {
    format!(
        "{}{product}/{}/{stream}-1-{}-{id}",
        Zone::Raw.prefix(),
        at.format("%Y/%m/%d/%H"),
        at.format("%Y-%m-%d-%H-%M-%S"),
    )
}

/// Reads a batch of events: a JSON array, or one JSON value per line.
pub fn parse_batch(text: &str) -> Result<Vec<Value>> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| Error::bad_input("events", format!("not a JSON array: {e}")));
    }
    trimmed
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::bad_input("events", format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// What [`put`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Bucket written to.
    pub bucket: String,
    /// Key of the NDJSON object, `None` when no event matched.
    pub key: Option<String>,
    /// Events written (one `detail` per line).
    pub written: usize,
    /// Events the product's rule would not match, or without a `detail` object: (index in the
    /// batch, why).
    pub skipped: Vec<(usize, String)>,
}

/// Writes the events of `batch` that the product's rule matches (`source` and `detail-type`) as
/// one NDJSON object of their `detail`s, at Firehose's layout for time `at`. The object's id is a
/// hash of its content, so putting the same batch again rewrites the same object.
pub async fn put(
    ctx: &Context,
    domain: &str,
    product: &str,
    batch: &[Value],
    at: DateTime<Utc>,
) -> Result<Delivery> {
    let d = ctx
        .mesh
        .domain(domain)
        .ok_or_else(|| Error::Config(format!("no domain `{domain}` in the mesh")))?;
    let p = ctx
        .mesh
        .product(domain, product)
        .ok_or_else(|| Error::Config(format!("no product `{domain}.{product}` in the mesh")))?;
    let ProductKind::Source { source, .. } = &p.kind else {
        return Err(Error::Config(format!(
            "`{domain}.{product}` is not a source product: it takes no events"
        )));
    };
    let Some(events) = source.events.as_deref() else {
        return Err(Error::Config(format!(
            "`{domain}.{product}` declares no `source.events`"
        )));
    };
    if source.format != SourceFormat::Ndjson {
        return Err(Error::Config(format!(
            "`{domain}.{product}` takes events: its source format must be `ndjson`"
        )));
    }
    let mut body = Vec::new();
    let mut skipped = Vec::new();
    let mut written = 0;
    for (i, event) in batch.iter().enumerate() {
        match matches(events, event) {
            Ok(detail) => {
                serde_json::to_writer(&mut body, detail)?;
                body.push(b'\n');
                written += 1;
            }
            Err(why) => skipped.push((i, why)),
        }
    }
    let mut delivery = Delivery {
        bucket: d.bucket.clone(),
        key: None,
        written,
        skipped,
    };
    if written == 0 {
        return Ok(delivery);
    }
    let id = hex::encode(&Sha256::digest(&body)[..16]);
    let key = firehose_key(
        product,
        &stream_name(&ctx.mesh.name, domain, product),
        at,
        &id,
    );
    ctx.storage.put(&d.bucket, &key, body.into()).await?;
    delivery.key = Some(key);
    Ok(delivery)
}

/// The event's `detail` if the rule's pattern matches it.
fn matches<'a>(rule: &EventSource, event: &'a Value) -> std::result::Result<&'a Value, String> {
    let source = event.get("source").and_then(Value::as_str);
    if source != Some(rule.source.as_str()) {
        return Err(format!(
            "source {} is not `{}`",
            source.map_or("missing".into(), |s| format!("`{s}`")),
            rule.source
        ));
    }
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    let types = rule.detail_type.to_vec();
    if !detail_type.is_some_and(|t| types.iter().any(|x| x == t)) {
        return Err(format!(
            "detail-type {} is not one of {}",
            detail_type.map_or("missing".into(), |s| format!("`{s}`")),
            types.join(", ")
        ));
    }
    match event.get("detail") {
        Some(d @ Value::Object(_)) => Ok(d),
        _ => Err("no `detail` object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_firehose_default_layout() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T07:08:09Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            firehose_key(
                "order_events",
                "tessera-m-sales-order_events-events",
                at,
                "ab12"
            ),
            "raw/order_events/2024/05/01/07/tessera-m-sales-order_events-events-1-2024-05-01-07-08-09-ab12"
        );
        let key = firehose_key("order_events", "s", at, "x");
        let zk = crate::keys::parse_zone_key(&key, Zone::Raw).unwrap();
        assert_eq!(zk.product, "order_events");
    }

    #[test]
    fn batches_are_arrays_or_json_lines() {
        assert_eq!(parse_batch("[{\"a\":1},{\"a\":2}]").unwrap().len(), 2);
        assert_eq!(parse_batch("{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
        let err = parse_batch("{\"a\":1}\nnope\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
