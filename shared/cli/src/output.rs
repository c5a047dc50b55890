//! Printing command results: aligned tables for people, JSON for programs.

use arrow::array::RecordBatch;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use serde_json::Value;
use tessera_contract::{Side, Verdict};
use tessera_core::policy::PolicyReport;

use crate::commands::{CatalogEntry, DiffReport, LintResult, RunSummary};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.to_vec());
    t
}

fn right(v: impl ToString) -> Cell {
    Cell::new(v.to_string()).set_alignment(CellAlignment::Right)
}

/// A time, and how long ago it was.
fn ago(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let d = now - at;
    let how = if d.num_days() >= 1 {
        format!("{} d", d.num_days())
    } else if d.num_hours() >= 1 {
        format!("{} h", d.num_hours())
    } else if d.num_minutes() >= 1 {
        format!("{} min", d.num_minutes())
    } else {
        format!("{} s", d.num_seconds().max(0))
    };
    format!("{} ({how} ago)", at.format("%Y-%m-%d %H:%M"))
}

/// The table `tessera status` prints, then the latest failure of each product that has some.
pub fn status(
    products: &[crate::status::ProductStatus],
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut t = table(&[
        "product",
        "last run",
        "last publish",
        "freshness",
        "quality",
        "failures (7 d)",
    ]);
    for p in products {
        t.add_row(vec![
            Cell::new(&p.product),
            Cell::new(p.last_run.as_ref().map_or("never".into(), |r| {
                format!("{} {:?} {}", r.stage, r.status, ago(r.at, now)).to_lowercase()
            })),
            Cell::new(
                p.last_publish
                    .as_ref()
                    .map_or("never".into(), |p| ago(p.at, now)),
            ),
            Cell::new(&p.freshness),
            Cell::new(p.quality.as_deref().unwrap_or("-")),
            right(p.recent_failures.len()),
        ]);
    }
    let mut out = t.to_string();
    for p in products {
        if let Some((stage, at, why)) = p.recent_failures.first() {
            let why: String = why.chars().take(160).collect();
            out.push_str(&format!(
                "\n{}: {stage} refused its input {}: {why}",
                p.product,
                ago(*at, now)
            ));
        }
        for detail in p
            .freshness_detail
            .iter()
            .filter(|_| p.freshness == "breached")
        {
            out.push_str(&format!("\n{}: {detail}", p.product));
        }
    }
    out
}

/// The table `tessera run` prints.
pub fn run_summary(s: &RunSummary) -> String {
    let mut t = table(&[
        "product",
        "rows in",
        "published",
        "dropped",
        "quarantined",
        "checks ✓/✗",
        "status",
        "location",
        "time",
    ]);
    for p in &s.products {
        let status = match (p.published > 0, p.refused) {
            (true, 0) => "published".to_owned(),
            (true, r) => format!("published; {r} input(s) refused"),
            (false, 0) => "nothing published".to_owned(),
            (false, r) => format!("{r} input(s) refused"),
        };
        t.add_row(vec![
            Cell::new(&p.name),
            right(p.rows_in),
            right(p.published),
            right(p.dropped),
            right(p.quarantined),
            right(
                p.checks
                    .map_or("-".to_owned(), |(ok, bad)| format!("{ok}/{bad}")),
            ),
            Cell::new(status),
            Cell::new(p.location.display()),
            right(format!("{} ms", p.duration_ms)),
        ]);
    }
    let mut out = format!(
        "landed {} raw files ({} unchanged), {} deliveries, warehouse `{}`\n{t}\n",
        s.landed,
        s.unchanged,
        s.deliveries,
        s.warehouse.display()
    );
    for f in &s.failures {
        out.push_str(&format!("error: {f}\n"));
    }
    out.push_str(&format!("done in {:.2} s", s.elapsed.as_secs_f64()));
    out
}

/// What `tessera reconcile` found and did, as text.
pub fn reconcile(r: &crate::commands::ReconcileReport) -> String {
    let mut out = String::new();
    if r.unfinished.is_empty() {
        out.push_str("every object has a finished run: nothing to re-drive");
        return out;
    }
    out.push_str(&format!(
        "{} object(s) without a finished run:\n",
        r.unfinished.len()
    ));
    let width = r
        .unfinished
        .iter()
        .map(|u| u.function.name().len())
        .max()
        .unwrap_or(0);
    for u in &r.unfinished {
        out.push_str(&format!(
            "  {:width$}  s3://{}/{}\n",
            u.function.name(),
            u.bucket,
            u.key
        ));
    }
    if r.redriven {
        out.push_str(&format!(
            "re-driven: {} deliveries, {} failed",
            r.deliveries,
            r.failures.len()
        ));
    } else {
        out.push_str("not re-driven (--dry-run)");
    }
    out
}

/// The table `tessera catalog` prints.
pub fn catalog(entries: &[CatalogEntry]) -> String {
    let mut t = table(&[
        "table",
        "owner",
        "description",
        "contract",
        "last publish",
        "quality",
        "partitions",
    ]);
    for e in entries {
        let p = |k: &str| e.table.parameters.get(k).cloned().unwrap_or_default();
        t.add_row(vec![
            Cell::new(format!("{}.{}", e.table.database, e.table.name)),
            Cell::new(p("owner")),
            Cell::new(e.table.description.clone().unwrap_or_default()),
            Cell::new(format!("{} {}", p("contract_id"), p("contract_version"))),
            Cell::new(p("last_publish").chars().take(19).collect::<String>()),
            Cell::new(p("quality_status")),
            right(e.partitions),
        ]);
    }
    t.to_string()
}

/// Query results as a table.
pub fn batches(batches: &[RecordBatch]) -> anyhow::Result<String> {
    Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

/// Query results as JSON lines.
pub fn batches_json(batches: &[RecordBatch]) -> anyhow::Result<String> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    Ok(String::from_utf8(out)?)
}

/// Lint results, one line per file and one per problem.
pub fn lint(results: &[LintResult]) -> String {
    let mut out = String::new();
    for r in results {
        match &r.contract {
            Some((id, version)) => {
                out.push_str(&format!("ok    {} ({id} {version})\n", r.file.display()))
            }
            None => {
                out.push_str(&format!("FAIL  {}\n", r.file.display()));
                for p in &r.problems {
                    out.push_str(&format!("      {p}\n"));
                }
            }
        }
    }
    out
}

/// `tessera contract diff`: the contract and its versions, a table of the changes, who
/// publishes and who consumes the contract, and the verdict with its reasons.
pub fn contract_diff(r: &DiffReport) -> String {
    let d = &r.diff;
    let mut out = format!(
        "{} {} → {} ({} → {})\n",
        d.id,
        d.version.old,
        d.version.new,
        r.old_file.display(),
        r.new_file.display()
    );
    if d.changes.is_empty() {
        out.push_str("no change\n");
    } else {
        let mut t = table(&["breaking", "change", "path", "old → new", "line", "why"]);
        for c in &d.changes {
            let line = match (c.side, c.line) {
                (_, None) => String::new(),
                (Side::New, Some(l)) => l.to_string(),
                (Side::Old, Some(l)) => format!("old {l}"),
            };
            t.add_row(vec![
                Cell::new(if c.breaking { "yes" } else { "no" }),
                Cell::new(c.kind.label()),
                Cell::new(&c.path),
                Cell::new(old_to_new(&c.old, &c.new)),
                right(line),
                Cell::new(&c.note),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    let none = |v: &[String]| {
        if v.is_empty() {
            "none in the mesh".to_owned()
        } else {
            v.join(", ")
        }
    };
    out.push_str(&format!("published by: {}\n", none(&r.publishers)));
    let consumers: Vec<String> = r
        .consumers
        .iter()
        .map(|c| {
            let port = serde_json::to_value(c.port)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{} ({port} of {})", c.product, c.reads)
        })
        .collect();
    out.push_str(&format!("consumed by: {}\n", none(&consumers)));
    let verdict = match d.verdict {
        Verdict::Ok => "OK",
        Verdict::Fail => "FAIL",
    };
    for reason in &d.reasons {
        out.push_str(&format!("{verdict}: {reason}\n"));
    }
    out
}

/// `old → new`; two lists holding different values as what left and what came (`-cancelled
/// +refunded`), lists in another order in full.
fn old_to_new(old: &Value, new: &Value) -> String {
    if let (Value::Array(a), Value::Array(b)) = (old, new) {
        let gone = a
            .iter()
            .filter(|v| !b.contains(v))
            .map(|v| format!("-{}", short(v)));
        let came = b
            .iter()
            .filter(|v| !a.contains(v))
            .map(|v| format!("+{}", short(v)));
        let changes: Vec<String> = gone.chain(came).collect();
        if !changes.is_empty() {
            return changes.join(" ");
        }
    }
    format!("{} → {}", short(old), short(new))
}

/// A value in a table cell: text as is, absent as `-`, others as compact JSON, cut at 32
/// characters.
fn short(v: &Value) -> String {
    let text = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 32 {
        format!("{}…", text.chars().take(31).collect::<String>())
    } else {
        text
    }
}

/// The report of `tessera policy check`: what the detectors found in the samples, the violations
/// with their `file:line:column`, and a summary line.
pub fn policy(r: &PolicyReport) -> String {
    let Some(file) = &r.policy else {
        return "the mesh names no policy: no organisation rule applies\n".to_owned();
    };
    let mut out = String::new();
    if !r.findings.is_empty() {
        let mut t = table(&[
            "product",
            "column",
            "looks like",
            "values",
            "classification",
            "published as",
        ]);
        for f in &r.findings {
            t.add_row(vec![
                Cell::new(&f.product),
                Cell::new(&f.column),
                Cell::new(f.detector.describe()),
                right(format!("{}/{}", f.matches, f.values)),
                Cell::new(f.classification.as_deref().unwrap_or("-")),
                Cell::new(&f.handling),
            ]);
        }
        out.push_str(&format!("personal data in the sample files\n{t}\n"));
    }
    if !r.violations.is_empty() {
        let mut t = table(&["rule", "product", "column", "where", "problem"]);
        for v in &r.violations {
            let mut at = v.file.clone();
            if let Some(line) = v.violation.line {
                at.push_str(&format!(":{line}"));
                if let Some(column) = v.violation.column {
                    at.push_str(&format!(":{column}"));
                }
            }
            t.add_row(vec![
                Cell::new(v.violation.rule.id()),
                Cell::new(&v.product),
                Cell::new(v.violation.property.as_deref().unwrap_or("-")),
                Cell::new(at),
                Cell::new(&v.violation.message),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "policy `{}`: {}, {}\n",
        file.display(),
        plural(r.products, "product"),
        plural(r.violations.len(), "violation")
    ));
    out
}
