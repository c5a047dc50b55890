//! `tessera portal`: a static site of the mesh (plain HTML and CSS, charts and the lineage graph
//! as inline SVG), generated from the mesh file and what the environment's storage and catalog
//! hold. Every link is relative and nothing is fetched from elsewhere, so the pages work from the
//! file system and from S3 static website hosting alike.
//!
//! Pages: `index.html` (domains, products, the lineage of the whole mesh), `domain-<d>.html`,
//! `product-<d>.<p>.html`, and `style.css`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use tessera_contract::Property;
use tessera_core::Context;
use tessera_core::catalog::Table;
use tessera_core::mesh::{Domain, Mesh, Product, ProductKind};
use tessera_core::publish::{self, Commit};
use tessera_core::runs::{self, RunRecord};
use tessera_core::sla::{self, SlaReport, SlaStatus};

/// What the portal shows of one product, read from the environment.
#[derive(Debug)]
pub struct ProductState {
    /// Runs of the stage that publishes the product (contract-check, or aggregate), oldest
    /// first.
    pub runs: Vec<RunRecord>,
    /// The commit log, oldest first.
    pub commits: Vec<Commit>,
    /// Service levels now.
    pub sla: SlaReport,
    /// The catalog's table, once registered.
    pub table: Option<Table>,
}

/// Reads every product's state from `ctx` and writes the portal into `out` (created if needed;
/// files of an earlier portal are overwritten, others left alone). Returns the files written.
pub async fn generate(ctx: &Context, out: &Path, now: DateTime<Utc>) -> Result<Vec<PathBuf>> {
    let mut states = BTreeMap::new();
    for (domain, product) in ctx.mesh.products() {
        let state = read_state(ctx, domain, product, now)
            .await
            .with_context(|| format!("reading {}.{}", domain.name, product.name))?;
        states.insert((domain.name.clone(), product.name.clone()), state);
    }
    write(&ctx.mesh, &states, out, now)
}

/// One product's runs, commits, service levels and catalog table.
pub async fn read_state(
    ctx: &Context,
    domain: &Domain,
    product: &Product,
    now: DateTime<Utc>,
) -> Result<ProductState> {
    let stage = match product.kind {
        ProductKind::Source { .. } => "contract-check",
        ProductKind::Aggregate { .. } => "aggregate",
    };
    let runs = runs::history(&ctx.storage, &domain.bucket, &product.name, stage).await?;
    let commits = publish::commits(&ctx.storage, &domain.bucket, &product.name)
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let sla = sla::evaluate(ctx, domain, product, now).await?;
    let table = ctx
        .catalog
        .get_table(&domain.database, &product.name)
        .await?;
    Ok(ProductState {
        runs,
        commits,
        sla,
        table,
    })
}

/// Renders the pages for `states` (keyed by domain and product) into `out`.
pub fn write(
    mesh: &Mesh,
    states: &BTreeMap<(String, String), ProductState>,
    out: &Path,
    now: DateTime<Utc>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating `{}`", out.display()))?;
    let mut pages: Vec<(String, String)> = vec![
        ("style.css".into(), STYLE.into()),
        ("index.html".into(), index_page(mesh, states, now)),
    ];
    for domain in &mesh.domains {
        pages.push((
            domain_file(&domain.name),
            domain_page(mesh, domain, states, now),
        ));
        for product in &domain.products {
            if let Some(state) = states.get(&(domain.name.clone(), product.name.clone())) {
                pages.push((
                    product_file(&domain.name, &product.name),
                    product_page(mesh, domain, product, state, now),
                ));
                // The product's ODPS descriptor, linked from its page.
                let descriptor = tessera_core::odps::descriptor(mesh, domain, product);
                pages.push((
                    descriptor_file(&domain.name, &product.name),
                    serde_json::to_string_pretty(&descriptor)? + "\n",
                ));
            }
        }
    }
    let mut written = Vec::new();
    for (name, text) in pages {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A name safe as a file name and in a URL: ASCII letters, digits, `_` and `-` kept, anything
/// else as `~hh` (hex of its UTF-8 bytes).
fn file_part(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "~{b:02x}");
        }
    }
    out
}

/// The file of a domain's page.
pub fn domain_file(domain: &str) -> String {
    format!("domain-{}.html", file_part(domain))
}

/// The file of a product's page.
pub fn product_file(domain: &str, product: &str) -> String {
    format!("product-{}.{}.html", file_part(domain), file_part(product))
}

/// The file of a product's Open Data Product Standard descriptor.
pub fn descriptor_file(domain: &str, product: &str) -> String {
    format!(
        "product-{}.{}.odps.json",
        file_part(domain),
        file_part(product)
    )
}

/// Text escaped for HTML content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, breadcrumbs: &[(String, String)], body: &str, now: DateTime<Utc>) -> String {
    let mut nav = String::from("<a href=\"index.html\">Mesh</a>");
    for (href, label) in breadcrumbs {
        let _ = write!(nav, " / <a href=\"{}\">{}</a>", esc(href), esc(label));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"style.css\">\n</head>\n<body>\n\
         <header><nav>{nav}</nav></header>\n<main>\n{body}</main>\n\
         <footer>Generated by <code>tessera portal</code> at {at}</footer>\n</body>\n</html>\n",
        title = esc(title),
        at = esc(&now.format("%Y-%m-%d %H:%M UTC").to_string()),
    )
}

fn quality_of(state: &ProductState) -> &str {
    state
        .table
        .as_ref()
        .and_then(|t| t.parameters.get("quality_status"))
        .map_or("unregistered", String::as_str)
}

fn badge(status: &str) -> String {
    let class = match status {
        "passed" | "met" => "ok",
        "failed" | "breached" => "bad",
        _ => "none",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(status))
}

fn sla_badge(report: &SlaReport) -> String {
    if report.breached().next().is_some() {
        badge("breached")
    } else if report.checks.iter().any(|c| c.status == SlaStatus::Met) {
        badge("met")
    } else {
        badge("not evaluated")
    }
}

fn last_publish(state: &ProductState) -> String {
    state
        .commits
        .iter()
        .map(|c| c.committed_at)
        .max()
        .map_or_else(
            || "never".into(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
}

fn owner_of(product: &Product) -> String {
    let team = &product.contract.team;
    team.iter()
        .find(|m| m.role.as_deref() == Some("owner"))
        .or_else(|| team.first())
        .and_then(|m| m.username.clone().or_else(|| m.name.clone()))
        .unwrap_or_else(|| "—".into())
}

fn product_rows(
    mesh: &Mesh,
    products: &[(&Domain, &Product)],
    states: &BTreeMap<(String, String), ProductState>,
) -> String {
    let mut rows = String::new();
    for (d, p) in products {
        let Some(state) = states.get(&(d.name.clone(), p.name.clone())) else {
            continue;
        };
        let kind = match p.kind {
            ProductKind::Source { .. } => "source",
            ProductKind::Aggregate { .. } => "aggregate",
        };
        let _ = writeln!(
            rows,
            "<tr><td><a href=\"{href}\">{d}.{p}</a></td><td>{kind}</td><td>{owner}</td>\
             <td>{version}</td><td>{quality}</td><td>{sla}</td><td>{last}</td><td>{readers}</td></tr>",
            href = esc(&product_file(&d.name, &p.name)),
            d = esc(&d.name),
            p = esc(&p.name),
            owner = esc(&owner_of(p)),
            version = esc(&p.contract.version),
            quality = badge(quality_of(state)),
            sla = sla_badge(&state.sla),
            last = esc(&last_publish(state)),
            readers = mesh.consumers(&d.name, &p.name).len(),
        );
    }
    format!(
        "<table>\n<thead><tr><th>product</th><th>kind</th><th>owner</th><th>contract</th>\
         <th>quality</th><th>service levels</th><th>last publish (UTC)</th><th>read by</th></tr></thead>\n\
         <tbody>\n{rows}</tbody>\n</table>\n"
    )
}

fn index_page(
    mesh: &Mesh,
    states: &BTreeMap<(String, String), ProductState>,
    now: DateTime<Utc>,
) -> String {
    let mut body = format!(
        "<h1>{}</h1>\n<p>{} domains, {} data products.</p>\n<h2>Domains</h2>\n<ul class=\"cards\">\n",
        esc(&mesh.name),
        mesh.domains.len(),
        mesh.products().count()
    );
    for d in &mesh.domains {
        let _ = writeln!(
            body,
            "<li><a href=\"{}\"><strong>{}</strong></a><br>{}<br><small>{} products</small></li>",
            esc(&domain_file(&d.name)),
            esc(&d.name),
            esc(d.description.as_deref().unwrap_or("")),
            d.products.len()
        );
    }
    body.push_str("</ul>\n<h2>Data products</h2>\n");
    let all: Vec<(&Domain, &Product)> = mesh.products().collect();
    body.push_str(&product_rows(mesh, &all, states));
    body.push_str("<h2>Lineage</h2>\n");
    let nodes: Vec<(String, String)> = all
        .iter()
        .map(|(d, p)| (d.name.clone(), p.name.clone()))
        .collect();
    body.push_str(&lineage_svg(mesh, &nodes, None));
    page(&mesh.name, &[], &body, now)
}

fn domain_page(
    mesh: &Mesh,
    domain: &Domain,
    states: &BTreeMap<(String, String), ProductState>,
    now: DateTime<Utc>,
) -> String {
    let mut body = format!(
        "<h1>Domain {}</h1>\n<p>{}</p>\n<dl>\n<dt>bucket</dt><dd><code>{}</code></dd>\n\
         <dt>database</dt><dd><code>{}</code></dd>\n</dl>\n<h2>Data products</h2>\n",
        esc(&domain.name),
        esc(domain.description.as_deref().unwrap_or("")),
        esc(&domain.bucket),
        esc(&domain.database),
    );
    let products: Vec<(&Domain, &Product)> = domain.products.iter().map(|p| (domain, p)).collect();
    body.push_str(&product_rows(mesh, &products, states));
    // The domain's products with what they read and what reads them, of any domain.
    let mut nodes = BTreeSet::new();
    for p in &domain.products {
        nodes.insert((domain.name.clone(), p.name.clone()));
        for i in p.inputs() {
            nodes.insert((i.domain, i.product));
        }
        for (d, c, _) in mesh.consumers(&domain.name, &p.name) {
            nodes.insert((d.name.clone(), c.name.clone()));
        }
    }
    body.push_str("<h2>Lineage</h2>\n");
    body.push_str(&lineage_svg(
        mesh,
        &nodes.into_iter().collect::<Vec<_>>(),
        None,
    ));
    page(
        &format!("{} — {}", domain.name, mesh.name),
        &[(domain_file(&domain.name), domain.name.clone())],
        &body,
        now,
    )
}

/// Columns flattened with their nesting (`address.city`, `tags[]`).
fn flatten<'a>(prefix: &str, props: &'a [Property], out: &mut Vec<(String, &'a Property)>) {
    for p in props {
        let name = if prefix.is_empty() {
            p.name.clone()
        } else {
            format!("{prefix}.{}", p.name)
        };
        out.push((name.clone(), p));
        flatten(&name, &p.properties, out);
        if let Some(items) = &p.items {
            let item_name = format!("{name}[]");
            flatten(&item_name, &items.properties, out);
        }
    }
}

fn schema_table(product: &Product) -> String {
    let mut cols = Vec::new();
    flatten("", &product.schema().properties, &mut cols);
    let mut rows = String::new();
    for (name, p) in &cols {
        let logical = p
            .logical_type
            .map(|t| format!("{t:?}").to_lowercase())
            .unwrap_or_default();
        let mut flags = Vec::new();
        if p.primary_key {
            flags.push("key");
        }
        if p.required {
            flags.push("required");
        }
        if p.unique {
            flags.push("unique");
        }
        if p.partitioned {
            flags.push("partition");
        }
        let mask = product
            .mask
            .get(name.as_str())
            .map(|m| format!("{m:?}").to_lowercase())
            .unwrap_or_default();
        let _ = writeln!(
            rows,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(&logical),
            esc(p.physical_type.as_deref().unwrap_or("")),
            esc(&flags.join(", ")),
            esc(p.classification.as_deref().unwrap_or("")),
            esc(&mask),
            esc(p.description.as_deref().unwrap_or("")),
        );
    }
    format!(
        "<table class=\"schema\">\n<thead><tr><th>column</th><th>logical type</th>\
         <th>physical type</th><th>constraints</th><th>classification</th><th>published as</th>\
         <th>description</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"
    )
}

fn sla_table(product: &Product, report: &SlaReport) -> String {
    let mut out = String::new();
    if product.contract.sla_properties.is_empty() {
        return "<p>The contract declares no service levels.</p>\n".into();
    }
    out.push_str(
        "<table>\n<thead><tr><th>property</th><th>promised</th><th>observed</th>\
         <th>status</th><th>detail</th></tr></thead>\n<tbody>\n",
    );
    for c in &report.checks {
        let status = match c.status {
            SlaStatus::Met => "met",
            SlaStatus::Breached => "breached",
            SlaStatus::NotEvaluated => "not evaluated",
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.property),
            esc(&c.expectation),
            esc(c.observed.as_deref().unwrap_or("—")),
            badge(status),
            esc(c.detail.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// An axis label: whole numbers as such, others with one decimal.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The run history as an inline SVG: stacked bars of passed and failed checks per run, and the
/// rows each run published as a line with one point per run (right axis).
pub fn history_chart(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "<p class=\"empty\">No runs yet.</p>\n".into();
    }
    let (w, h) = (760.0_f64, 260.0_f64);
    let (left, right, top, bottom) = (48.0, 56.0, 20.0, 48.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max_checks = runs
        .iter()
        .map(|r| r.checks.passed + r.checks.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_rows = runs.iter().map(|r| r.rows_out).max().unwrap_or(0).max(1) as f64;
    let n = runs.len() as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.5).clamp(2.0, 40.0);
    let y_checks = |v: f64| top + plot_h - v / max_checks * plot_h;
    let y_rows = |v: f64| top + plot_h - v / max_rows * plot_h;
    let mut svg = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"Checks and rows per run\">\n\
         <title>Checks passed and failed, and rows published, per run</title>\n"
    );
    // Axes and gridlines.
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = top + plot_h - f * plot_h;
        let _ = writeln!(
            svg,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <text class=\"axis rows\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            tick(f * max_checks),
            left + plot_w + 6.0,
            y + 4.0,
            tick(f * max_rows),
        );
    }
    let mut points = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        let x = cx - bar_w / 2.0;
        let passed = r.checks.passed as f64;
        let failed = r.checks.failed as f64;
        let y_pass = y_checks(passed);
        let y_fail = y_checks(passed + failed);
        let when = r.started_at.format("%Y-%m-%d %H:%M:%S").to_string();
        let _ = writeln!(
            svg,
            "<rect class=\"bar passed\" x=\"{x:.1}\" y=\"{y_pass:.1}\" width=\"{bar_w:.1}\" \
             height=\"{:.1}\"><title>{} — {} checks passed</title></rect>\
             <rect class=\"bar failed\" x=\"{x:.1}\" y=\"{y_fail:.1}\" width=\"{bar_w:.1}\" \
             height=\"{:.1}\"><title>{} — {} checks failed</title></rect>",
            top + plot_h - y_pass,
            esc(&when),
            r.checks.passed,
            y_pass - y_fail,
            esc(&when),
            r.checks.failed,
        );
        let cy = y_rows(r.rows_out as f64);
        points.push(format!("{cx:.1},{cy:.1}"));
        let label = if runs.len() <= 12 {
            r.started_at.format("%m-%d %H:%M").to_string()
        } else {
            (i + 1).to_string()
        };
        let _ = writeln!(
            svg,
            "<text class=\"axis\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + plot_h + 16.0,
            esc(&label)
        );
    }
    let _ = writeln!(
        svg,
        "<polyline class=\"rows\" points=\"{}\"/>",
        points.join(" ")
    );
    for (r, p) in runs.iter().zip(&points) {
        let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
        let status = format!("{:?}", r.status).to_lowercase();
        let _ = writeln!(
            svg,
            "<circle class=\"point\" cx=\"{cx}\" cy=\"{cy}\" r=\"4\" data-rows=\"{}\">\
             <title>{} — {} rows out of {} in ({})</title></circle>",
            r.rows_out,
            esc(&r.started_at.format("%Y-%m-%d %H:%M:%S").to_string()),
            r.rows_out,
            r.rows_in,
            esc(&status)
        );
    }
    let ly = h - 10.0;
    let _ = writeln!(
        svg,
        "<g class=\"legend\"><rect class=\"bar passed\" x=\"{left}\" y=\"{:.1}\" width=\"10\" height=\"10\"/>\
         <text x=\"{:.1}\" y=\"{ly:.1}\">checks passed</text>\
         <rect class=\"bar failed\" x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\"/>\
         <text x=\"{:.1}\" y=\"{ly:.1}\">checks failed</text>\
         <circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/>\
         <text x=\"{:.1}\" y=\"{ly:.1}\">rows published (right axis)</text></g>\n</svg>",
        ly - 9.0,
        left + 14.0,
        left + 120.0,
        ly - 9.0,
        left + 134.0,
        left + 245.0,
        ly - 4.0,
        left + 254.0,
    );
    svg
}

/// A layered lineage graph of `nodes` (domain, product) with the input-port edges between them:
/// each product one column right of the furthest product it reads. Boxes link to product pages
/// and are coloured by domain; `focus` is drawn highlighted.
pub fn lineage_svg(mesh: &Mesh, nodes: &[(String, String)], focus: Option<(&str, &str)>) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let set: BTreeSet<&(String, String)> = nodes.iter().collect();
    let mut edges = Vec::new();
    for (d, p) in nodes {
        if let Some(product) = mesh.product(d, p) {
            for i in product.inputs() {
                let from = (i.domain, i.product);
                if set.contains(&from) {
                    edges.push((from, (d.clone(), p.clone())));
                }
            }
        }
    }
    // Depth: longest path from a node without inputs (the mesh refuses cycles; the bound keeps
    // this finite regardless).
    let mut depth: BTreeMap<&(String, String), usize> = nodes.iter().map(|n| (n, 0)).collect();
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (from, to) in &edges {
            let next = depth.get(from).copied().unwrap_or(0) + 1;
            if let Some(d) = depth.get_mut(to)
                && *d < next
            {
                *d = next;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut columns: BTreeMap<usize, Vec<&(String, String)>> = BTreeMap::new();
    for n in nodes {
        columns
            .entry(depth.get(n).copied().unwrap_or(0))
            .or_default()
            .push(n);
    }
    let domains: Vec<&str> = mesh.domains.iter().map(|d| d.name.as_str()).collect();
    let (box_w, box_h, gap_x, gap_y, pad) = (200.0_f64, 44.0_f64, 80.0_f64, 18.0_f64, 16.0_f64);
    let rows = columns.values().map(Vec::len).max().unwrap_or(1) as f64;
    let w = pad * 2.0 + columns.len() as f64 * (box_w + gap_x) - gap_x;
    let h = pad * 2.0 + rows * (box_h + gap_y) - gap_y + 22.0;
    let mut pos = BTreeMap::new();
    for (ci, col) in columns.values().enumerate() {
        for (ri, n) in col.iter().enumerate() {
            let x = pad + ci as f64 * (box_w + gap_x);
            let y = pad + ri as f64 * (box_h + gap_y);
            pos.insert(*n, (x, y));
        }
    }
    let mut svg = format!(
        "<svg class=\"lineage\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"Lineage\">\n\
         <title>Lineage: which products read which, across domains</title>\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\"/></marker></defs>\n"
    );
    for (from, to) in &edges {
        if let (Some((x1, y1)), Some((x2, y2))) = (pos.get(from), pos.get(to)) {
            let (sx, sy) = (x1 + box_w, y1 + box_h / 2.0);
            let (ex, ey) = (*x2, y2 + box_h / 2.0);
            let mx = (sx + ex) / 2.0;
            let _ = writeln!(
                svg,
                "<path class=\"edge\" d=\"M {sx:.1} {sy:.1} C {mx:.1} {sy:.1}, {mx:.1} {ey:.1}, {ex:.1} {ey:.1}\" \
                 marker-end=\"url(#arrow)\"><title>{}.{} → {}.{}</title></path>",
                esc(&from.0),
                esc(&from.1),
                esc(&to.0),
                esc(&to.1)
            );
        }
    }
    for n in nodes {
        let Some((x, y)) = pos.get(n) else { continue };
        let colour = domains.iter().position(|d| *d == n.0).unwrap_or(0) % 6;
        let focused = focus.is_some_and(|(d, p)| d == n.0 && p == n.1);
        let class = if focused { " focus" } else { "" };
        let _ = writeln!(
            svg,
            "<a href=\"{href}\"><g class=\"node d{colour}{class}\">\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"6\"/>\
             <text x=\"{tx:.1}\" y=\"{ty1:.1}\" class=\"domain\">{d}</text>\
             <text x=\"{tx:.1}\" y=\"{ty2:.1}\">{p}</text></g></a>",
            href = esc(&product_file(&n.0, &n.1)),
            tx = x + 10.0,
            ty1 = y + 17.0,
            ty2 = y + 35.0,
            d = esc(&n.0),
            p = esc(&n.1),
        );
    }
    // Legend: one swatch per domain.
    let ly = h - pad;
    let mut lx = pad;
    svg.push_str("<g class=\"legend\">");
    for (i, d) in domains.iter().enumerate() {
        let _ = write!(
            svg,
            "<g class=\"node d{}\"><rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" rx=\"2\"/></g>\
             <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
            i % 6,
            ly - 10.0,
            lx + 16.0,
            esc(d)
        );
        lx += 30.0 + 8.0 * d.chars().count() as f64;
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}

fn queries(domain: &Domain, product: &Product) -> String {
    let cols: Vec<&str> = product
        .schema()
        .properties
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let athena_cols = cols
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let athena = format!(
        "SELECT {athena_cols}\nFROM \"{}\".\"{}\"\nLIMIT 10;",
        domain.database.replace('"', "\"\""),
        product.name.replace('"', "\"\"")
    );
    let cli = format!(
        "tessera query \"SELECT {} FROM {}.{} LIMIT 10\"",
        cols.join(", "),
        domain.name,
        product.name
    );
    format!(
        "<h3>Athena</h3>\n<pre><code>{}</code></pre>\n\
         <h3>tessera (DataFusion over the catalog, any environment)</h3>\n<pre><code>{}</code></pre>\n",
        esc(&athena),
        esc(&cli)
    )
}

fn product_page(
    mesh: &Mesh,
    domain: &Domain,
    product: &Product,
    state: &ProductState,
    now: DateTime<Utc>,
) -> String {
    let c = &product.contract;
    let mut body = format!(
        "<h1>{}.{}</h1>\n<p class=\"lead\">{}</p>\n",
        esc(&domain.name),
        esc(&product.name),
        esc(c.description.purpose.as_deref().unwrap_or(""))
    );
    // Facts.
    let kind = match &product.kind {
        ProductKind::Source { source, .. } => format!("source ({})", source.format.name()),
        ProductKind::Aggregate { engine, .. } => {
            format!("aggregate ({})", format!("{engine:?}").to_lowercase())
        }
    };
    let mut team = String::new();
    for m in &c.team {
        let who = m.name.as_deref().or(m.username.as_deref()).unwrap_or("—");
        let _ = write!(
            team,
            "<li>{}{}{}</li>",
            esc(who),
            m.username
                .as_deref()
                .filter(|u| Some(*u) != m.name.as_deref() && m.name.is_some())
                .map(|u| format!(" &lt;{}&gt;", esc(u)))
                .unwrap_or_default(),
            m.role
                .as_deref()
                .map(|r| format!(" — {}", esc(r)))
                .unwrap_or_default()
        );
    }
    let mut support = String::new();
    for s in &c.support {
        let label = [s.tool.as_deref(), s.channel.as_deref(), s.url.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        // URLs are shown, not linked: the portal links nowhere outside itself.
        let _ = write!(support, "<li>{}</li>", esc(&label));
    }
    let rows_now: u64 = {
        let log: Vec<(String, Commit)> = state
            .commits
            .iter()
            .map(|c| (c.version.clone(), c.clone()))
            .collect();
        let superseded = publish::superseded(&log);
        let start = state
            .commits
            .iter()
            .rposition(|c| c.mode == publish::CommitMode::Overwrite)
            .unwrap_or(0);
        state
            .commits
            .iter()
            .zip(superseded)
            .skip(start)
            .filter(|(_, s)| !s)
            .map(|(c, _)| c.rows)
            .sum()
    };
    let _ = writeln!(
        body,
        "<section class=\"facts\">\n<dl>\n\
         <dt>kind</dt><dd>{kind}</dd>\n\
         <dt>contract</dt><dd><code>{id}</code> {version} ({status})</dd>\n\
         <dt>quality</dt><dd>{quality}</dd>\n\
         <dt>service levels</dt><dd>{sla}</dd>\n\
         <dt>versions published</dt><dd>{versions}</dd>\n\
         <dt>rows now</dt><dd>{rows_now}</dd>\n\
         <dt>last publish (UTC)</dt><dd>{last}</dd>\n\
         </dl>\n<div><h3>Team</h3><ul>{team}</ul><h3>Support</h3><ul>{support}</ul></div>\n</section>",
        kind = esc(&kind),
        id = esc(&c.id),
        version = esc(&c.version),
        status = esc(&c.status),
        quality = badge(quality_of(state)),
        sla = sla_badge(&state.sla),
        versions = state.commits.len(),
        last = esc(&last_publish(state)),
    );
    if let Some(v) = state
        .table
        .as_ref()
        .and_then(|t| t.parameters.get("last_violation_checks"))
        .filter(|_| quality_of(state) == "failed")
    {
        let _ = writeln!(
            body,
            "<p class=\"alert\">Last version refused: {}</p>",
            esc(v)
        );
    }
    for (title, text) in [
        ("Usage", &c.description.usage),
        ("Limitations", &c.description.limitations),
    ] {
        if let Some(t) = text {
            let _ = writeln!(body, "<h3>{title}</h3>\n<p>{}</p>", esc(t));
        }
    }
    body.push_str("<h2>Schema</h2>\n");
    body.push_str(&schema_table(product));
    body.push_str("<h2>Service levels</h2>\n");
    body.push_str(&sla_table(product, &state.sla));
    let stage = match product.kind {
        ProductKind::Source { .. } => "contract-check",
        ProductKind::Aggregate { .. } => "aggregate",
    };
    let _ = writeln!(
        body,
        "<h2>Quality over the run history</h2>\n<p>Each run of {} ({} runs): checks passed and \
         failed, and the rows it published.</p>",
        esc(stage),
        state.runs.len()
    );
    body.push_str(&history_chart(&state.runs));
    body.push_str("<h2>Lineage</h2>\n");
    let mut nodes = vec![(domain.name.clone(), product.name.clone())];
    for i in product.inputs() {
        nodes.push((i.domain, i.product));
    }
    for (d, p, _) in mesh.consumers(&domain.name, &product.name) {
        nodes.push((d.name.clone(), p.name.clone()));
    }
    nodes.sort();
    nodes.dedup();
    if nodes.len() == 1 {
        body.push_str("<p>Reads raw files only; no product reads it yet.</p>\n");
    }
    body.push_str(&lineage_svg(
        mesh,
        &nodes,
        Some((&domain.name, &product.name)),
    ));
    body.push_str("<h2>Query it</h2>\n");
    body.push_str(&queries(domain, product));
    let _ = writeln!(
        body,
        "<p>The product's <a href=\"{}\">Open Data Product Standard descriptor</a> (ODPS v1.0.0, \
         from its contract and the mesh: <code>tessera describe {}.{}</code>).</p>",
        esc(&descriptor_file(&domain.name, &product.name)),
        esc(&domain.name),
        esc(&product.name)
    );
    page(
        &format!("{}.{} — {}", domain.name, product.name, mesh.name),
        &[
            (domain_file(&domain.name), domain.name.clone()),
            (
                product_file(&domain.name, &product.name),
                product.name.clone(),
            ),
        ],
        &body,
        now,
    )
}

const STYLE: &str = r#":root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #f6f7fa;
  --ok: #1f8a4c; --bad: #c0392b; --accent: #2f5fd0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 10px 24px; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { max-width: 1120px; margin: 0 auto; padding: 8px 24px 24px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 16px; }
h1 { margin: 16px 0 4px; } h2 { margin-top: 28px; border-bottom: 1px solid var(--line); }
a { color: var(--accent); }
.lead { color: var(--muted); font-size: 16px; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #fff; border: 1px solid var(--line); padding: 10px; overflow-x: auto; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; color: #fff; background: #8a93a5; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); }
.alert { border-left: 4px solid var(--bad); background: #fdecea; padding: 6px 10px; }
.facts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; background: #fff;
  border: 1px solid var(--line); padding: 8px 16px; }
.facts dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; }
.facts h3 { margin: 8px 0 2px; font-size: 14px; } .facts ul { margin: 0; padding-left: 18px; }
.cards { list-style: none; padding: 0; display: flex; gap: 12px; flex-wrap: wrap; }
.cards li { background: #fff; border: 1px solid var(--line); padding: 10px 14px; min-width: 220px; }
svg { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
.chart .grid { stroke: #e8ebf0; } .chart .axis { fill: var(--muted); font-size: 11px; }
.chart .bar.passed { fill: var(--ok); } .chart .bar.failed { fill: var(--bad); }
.chart .rows { fill: none; stroke: var(--accent); stroke-width: 2; }
.chart .point { fill: var(--accent); stroke: #fff; stroke-width: 1.5; }
.chart text.rows { fill: var(--accent); stroke: none; }
.lineage .edge { fill: none; stroke: #7b8496; stroke-width: 1.5; }
.lineage marker path { fill: #7b8496; }
.lineage .node rect { stroke-width: 1.5; }
.lineage .node text.domain { fill: var(--muted); font-size: 11px; }
.lineage .node.focus rect { stroke-width: 3.5; }
.d0 rect { fill: #e6eefc; stroke: #2f5fd0; } .d1 rect { fill: #e8f6ee; stroke: #1f8a4c; }
.d2 rect { fill: #fdf1e3; stroke: #c77700; } .d3 rect { fill: #f3e9fb; stroke: #7b3fb3; }
.d4 rect { fill: #e5f6f7; stroke: #15808a; } .d5 rect { fill: #fbe9ee; stroke: #b3345a; }
.empty { color: var(--muted); }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_file_names_are_safe() {
        assert_eq!(
            esc(r#"<a href="x">O'Brien & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Brien &amp; co&lt;/a&gt;"
        );
        assert_eq!(product_file("sales", "orders"), "product-sales.orders.html");
        assert_eq!(
            domain_file("a b/../é"),
            "domain-a~20b~2f~2e~2e~2f~c3~a9.html"
        );
    }

    #[test]
    fn no_runs_no_chart() {
        assert!(history_chart(&[]).contains("No runs yet"));
    }
}
