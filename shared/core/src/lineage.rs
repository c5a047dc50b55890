//! What a run tells the outside world: an OpenLineage `RunEvent` (for Marquez, DataHub or any
//! OpenLineage consumer) and a CloudWatch Embedded Metric Format line (metrics from logs).
//!
//! Lineage goes where `TESSERA_LINEAGE` says (read when the ports are built, [`Target`]):
//! `http://host:port/api/v1/lineage` (an HTTP POST per event, as Marquez takes them), or a file
//! path (one event per line, appended). Unset, no lineage is sent. A lineage target that fails is
//! logged, never a failed run: the data is done.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::events::CheckCounts;
use crate::mesh::Mesh;
use crate::runs::{RunRecord, RunStatus};

/// The OpenLineage spec version the events follow.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// What produced the events.
pub const PRODUCER: &str = "https://github.com/tessera-mesh/tessera";
/// Namespace of the jobs (`tessera://<mesh>/<domain>`).
fn job_namespace(mesh: &str, domain: &str) -> String {
    format!("tessera://{mesh}/{domain}")
}

/// A run id as OpenLineage wants it (a UUID), derived from the run's stable id, so a repeated
/// delivery reports the same run.
pub fn run_uuid(run: &RunRecord) -> String {
    let seed = format!("{}\u{0}{}\u{0}{}", run.product, run.stage, run.run_id);
    let a = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    let mut b = a.to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x50; // version 5 (name-based)
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The `RunEvent` of a finished run: the job (`<product>.<stage>` in its domain), its input
/// object, its outputs (with the product's schema and the rows written), and the data quality of
/// what it read (row count, checks passed and failed).
pub fn run_event(mesh: &Mesh, run: &RunRecord) -> Value {
    let event_type = match run.status {
        RunStatus::Quarantined => "FAIL",
        RunStatus::Succeeded | RunStatus::Published | RunStatus::Skipped => "COMPLETE",
    };
    let schema = mesh.product(&run.domain, &run.product).map(|p| {
        json!({
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
            "fields": p.schema().properties.iter().map(|c| json!({
                "name": c.name,
                "type": c.physical_type.clone().or_else(|| {
                    c.logical_type
                        .and_then(|t| serde_json::to_value(t).ok())
                        .and_then(|v| v.as_str().map(str::to_owned))
                }).unwrap_or_default(),
                "description": c.description,
            })).collect::<Vec<_>>(),
        })
    });
    let input = json!({
        "namespace": format!("s3://{}", run.input.bucket),
        "name": run.input.key,
        "inputFacets": {
            "dataQualityMetrics": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/DataQualityMetricsInputDatasetFacet.json",
                "rowCount": run.rows_in,
                "columnMetrics": {},
            },
            "tessera_checks": checks_facet(run.checks),
        },
    });
    let outputs: Vec<Value> = run
        .outputs
        .iter()
        .map(|key| {
            let mut facets = serde_json::Map::new();
            let is_data = !key.starts_with(crate::keys::Zone::Quarantine.prefix());
            if let (Some(schema), true) = (&schema, is_data) {
                facets.insert("schema".into(), schema.clone());
            }
            json!({
                "namespace": format!("s3://{}", run.input.bucket),
                "name": key,
                "facets": facets,
            })
        })
        .collect();
    json!({
        "eventType": event_type,
        "eventTime": ended(run).to_rfc3339(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {
            "runId": run_uuid(run),
            "facets": {
                "tessera_run": {
                    "_producer": PRODUCER,
                    "_schemaURL": format!("{PRODUCER}/blob/main/docs/observability.md#tessera_run"),
                    "runId": run.run_id,
                    "status": run.status,
                    "rowsIn": run.rows_in,
                    "rowsOut": run.rows_out,
                    "quarantined": run.quarantined,
                    "dropped": run.dropped,
                    "notes": run.notes,
                },
            },
        },
        "job": {
            "namespace": job_namespace(&mesh.name, &run.domain),
            "name": format!("{}.{}", run.product, run.stage),
        },
        "inputs": [input],
        "outputs": outputs,
    })
}

/// When a run ended.
fn ended(run: &RunRecord) -> DateTime<Utc> {
    run.started_at + chrono::TimeDelta::milliseconds(i64::try_from(run.duration_ms).unwrap_or(0))
}

fn checks_facet(checks: CheckCounts) -> Value {
    json!({
        "_producer": PRODUCER,
        "_schemaURL": format!("{PRODUCER}/blob/main/docs/observability.md#tessera_checks"),
        "passed": checks.passed,
        "failed": checks.failed,
    })
}

/// The Embedded Metric Format line of a run: CloudWatch turns it into metrics
/// `RowsIn`, `RowsOut`, `RowsQuarantined`, `RowsDropped`, `ChecksFailed` and `Duration` in the
/// `Tessera` namespace, by domain, product and stage, at the time the run ended.
pub fn emf(run: &RunRecord) -> Value {
    json!({
        "_aws": {
            "Timestamp": ended(run).timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Tessera",
                "Dimensions": [["Domain", "Product", "Stage"]],
                "Metrics": [
                    {"Name": "RowsIn", "Unit": "Count"},
                    {"Name": "RowsOut", "Unit": "Count"},
                    {"Name": "RowsQuarantined", "Unit": "Count"},
                    {"Name": "RowsDropped", "Unit": "Count"},
                    {"Name": "ChecksFailed", "Unit": "Count"},
                    {"Name": "Duration", "Unit": "Milliseconds"},
                ],
            }],
        },
        "Domain": run.domain,
        "Product": run.product,
        "Stage": run.stage,
        "RunId": run.run_id,
        "Status": run.status,
        "RowsIn": run.rows_in,
        "RowsOut": run.rows_out,
        "RowsQuarantined": run.quarantined,
        "RowsDropped": run.dropped,
        "ChecksFailed": run.checks.failed,
        "Duration": run.duration_ms,
    })
}

/// Where lineage goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// POSTed to an HTTP endpoint (`http://host:port/path`).
    Http {
        /// `host:port`.
        authority: String,
        /// The request path.
        path: String,
    },
    /// Appended to a file, one event per line.
    File(std::path::PathBuf),
}

impl Target {
    /// The target `TESSERA_LINEAGE` names, if any.
    pub fn from_env() -> Result<Option<Target>, String> {
        match std::env::var("TESSERA_LINEAGE") {
            Ok(v) if !v.is_empty() => Target::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// `http://host[:port]/path`, or a file path (`file://` optional). `https` is refused: put
    /// the consumer behind a sidecar or proxy on the same network.
    pub fn parse(text: &str) -> Result<Target, String> {
        if let Some(rest) = text.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/api/v1/lineage"),
            };
            if authority.is_empty() {
                return Err(format!("TESSERA_LINEAGE `{text}`: no host"));
            }
            let authority = if authority.contains(':') {
                authority.to_owned()
            } else {
                format!("{authority}:80")
            };
            return Ok(Target::Http {
                authority,
                path: path.to_owned(),
            });
        }
        if text.starts_with("https://") {
            return Err(format!(
                "TESSERA_LINEAGE `{text}`: https is not supported; use http:// to a consumer or proxy on the same network, or a file"
            ));
        }
        Ok(Target::File(
            text.strip_prefix("file://").unwrap_or(text).into(),
        ))
    }

    /// Sends events.
    pub async fn send(&self, events: &[Value]) -> std::io::Result<()> {
        match self {
            Target::File(path) => {
                let mut lines = Vec::new();
                for e in events {
                    serde_json::to_writer(&mut lines, e)?;
                    lines.push(b'\n');
                }
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?
                        .write_all(&lines)
                })
                .await
                .map_err(std::io::Error::other)?
            }
            Target::Http { authority, path } => {
                for e in events {
                    post(authority, path, &serde_json::to_vec(e)?).await?;
                }
                Ok(())
            }
        }
    }
}

/// One HTTP/1.1 POST of a JSON body; an answer other than 2xx is an error.
async fn post(authority: &str, path: &str, body: &[u8]) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::net::TcpStream::connect(authority);
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .map_err(|_| {
            std::io::Error::other(format!("lineage: connecting to {authority} timed out"))
        })??;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.take(64 * 1024).read_to_end(&mut answer),
    )
    .await
    .map_err(|_| std::io::Error::other(format!("lineage: {authority} did not answer")))??;
    let status = String::from_utf8_lossy(&answer);
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        _ => Err(std::io::Error::other(format!(
            "lineage: {authority}{path} answered `{}`",
            status.lines().next().unwrap_or_default()
        ))),
    }
}

/// Sends the lineage of runs to the context's target (nothing when it has none); a failure is
/// logged, not returned: the data is done.
pub async fn emit(ctx: &crate::Context, runs: &[RunRecord]) {
    let Some(target) = &ctx.lineage else {
        return;
    };
    let events: Vec<Value> = runs.iter().map(|r| run_event(&ctx.mesh, r)).collect();
    if let Err(e) = target.send(&events).await {
        tracing::warn!(error = %e, "lineage not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("http://marquez:5000/api/v1/lineage").unwrap(),
            Target::Http {
                authority: "marquez:5000".into(),
                path: "/api/v1/lineage".into()
            }
        );
        assert_eq!(
            Target::parse("http://marquez").unwrap(),
            Target::Http {
                authority: "marquez:80".into(),
                path: "/api/v1/lineage".into()
            }
        );
        assert_eq!(
            Target::parse("file:///var/lineage.ndjson").unwrap(),
            Target::File("/var/lineage.ndjson".into())
        );
        assert!(Target::parse("https://x").is_err());
        assert!(Target::parse("http:///x").is_err());
    }
}
