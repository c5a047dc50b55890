//! `tessera portal` over the sample mesh after `tessera run`: the pages exist, every link is
//! relative and resolves to a file, product pages carry the schema and a chart with data points;
//! and the product page rendered by headless Chromium from `file://` (a screenshot, and the DOM
//! with the chart's SVG in it).

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_cli::{commands, portal};
use tessera_tests::embedded;

/// Runs the sample mesh into a fresh warehouse and writes the portal into `<tmp>/site`.
async fn sample_portal(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let emb = embedded(&dir.join("warehouse"));
    let s = commands::run(&emb).await.unwrap();
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    let site = dir.join("site");
    let written = portal::generate(&emb.context, &site, chrono::Utc::now())
        .await
        .unwrap();
    (site, written)
}

/// The values of `attr="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[tokio::test]
async fn portal_pages_exist_and_every_link_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let (site, written) = sample_portal(dir.path()).await;
    let mesh = tessera_tests::sample_mesh();
    let mut expected = vec![site.join("index.html"), site.join("style.css")];
    for (d, p) in mesh.products() {
        expected.push(site.join(portal::domain_file(&d.name)));
        expected.push(site.join(portal::product_file(&d.name, &p.name)));
        // Each product's ODPS descriptor is beside its page, valid, and linked from it.
        let descriptor = portal::descriptor_file(&d.name, &p.name);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(site.join(&descriptor)).unwrap())
                .unwrap();
        tessera_contract::validate_odps(&doc).unwrap();
        let page =
            std::fs::read_to_string(site.join(portal::product_file(&d.name, &p.name))).unwrap();
        assert!(
            page.contains(&format!("href=\"{descriptor}\"")),
            "{descriptor}"
        );
        expected.push(site.join(descriptor));
    }
    for path in &expected {
        assert!(path.is_file(), "{} missing", path.display());
        assert!(written.contains(path), "{} not reported", path.display());
    }

    let mut links = 0;
    for path in &written {
        let text = std::fs::read_to_string(path).unwrap();
        if path.extension().is_some_and(|e| e == "html") {
            assert!(text.starts_with("<!DOCTYPE html>"), "{}", path.display());
            assert!(
                !text.contains("<script"),
                "{}: no JavaScript",
                path.display()
            );
            for link in attribute_values(&text, "href")
                .into_iter()
                .chain(attribute_values(&text, "src"))
            {
                assert!(
                    !link.contains("://") && !link.starts_with('/') && !link.starts_with("//"),
                    "{}: `{link}` is not relative",
                    path.display()
                );
                let target = link.split('#').next().unwrap_or_default();
                if !target.is_empty() {
                    assert!(
                        site.join(target).is_file(),
                        "{}: `{link}` names no file",
                        path.display()
                    );
                    links += 1;
                }
            }
        }
        // Nothing is fetched from elsewhere: no stylesheet import, no `url(...)` but the SVG's
        // own marker. (A support channel's URL from a contract is shown as text, not linked.)
        assert!(!text.contains("@import"), "{}", path.display());
        for (i, _) in text.match_indices("url(") {
            assert!(
                text[i..].starts_with("url(#"),
                "{}: {}",
                path.display(),
                &text[i..(i + 60).min(text.len())]
            );
        }
    }
    assert!(links > 50, "{links} links checked");

    // The orders page: description, owner, support, schema, service levels, chart, lineage and
    // the queries.
    let orders =
        std::fs::read_to_string(site.join(portal::product_file("sales", "orders"))).unwrap();
    for needle in [
        "<h2>Schema</h2>",
        "<code>customer_email</code>",
        "decimal(12,2)",
        "pii",
        "hash",
        "sales-data@example.com",
        "<h2>Service levels</h2>",
        "freshness",
        "<svg class=\"chart\"",
        "<svg class=\"lineage\"",
        "FROM &quot;sales&quot;.&quot;orders&quot;",
        "tessera query &quot;SELECT order_id",
        "FROM sales.orders LIMIT 10&quot;",
    ] {
        assert!(orders.contains(needle), "orders page lacks `{needle}`");
    }
    // Two runs of contract-check for orders: two points, two pairs of bars (legend aside).
    let chart = &orders[orders.find("<svg class=\"chart\"").unwrap()..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert_eq!(chart.matches("<circle class=\"point\" cx=").count(), 3);
    assert_eq!(chart.matches("data-rows=\"").count(), 2);
    assert!(chart.contains("data-rows=\"8\"") || chart.contains("data-rows=\"4\""));
    assert!(chart.contains("<polyline class=\"rows\""));
    // segment_revenue reads orders and the customers domain's product: the lineage crosses
    // domains and links to both.
    let segment =
        std::fs::read_to_string(site.join(portal::product_file("sales", "segment_revenue")))
            .unwrap();
    let lineage = &segment[segment.find("<svg class=\"lineage\"").unwrap()..];
    for href in [
        portal::product_file("sales", "orders"),
        portal::product_file("customers", "customers"),
    ] {
        assert!(lineage.contains(&format!("href=\"{href}\"")), "{href}");
    }
    assert!(lineage.matches("<path class=\"edge\"").count() >= 2);
    // The refused customers file shows: quality failed and the refused run's failed check.
    let customers =
        std::fs::read_to_string(site.join(portal::product_file("customers", "customers"))).unwrap();
    assert!(customers.contains("<span class=\"badge bad\">failed</span>"));
    assert!(customers.contains("email_mostly_present"));
    assert!(customers.contains("1 checks failed"), "{customers}");
}

/// Headless Chromium: `CHROMIUM` or `/usr/bin/chromium` (Debian's package; `tests/run.sh`
/// installs it). Missing, the test is skipped on a workstation and fails under CI (`CI` set).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "headless Chromium not found at {} (apt-get install -y chromium)",
        path.display()
    );
    eprintln!(
        "skipped: no Chromium at {} (set CI to make this a failure)",
        path.display()
    );
    None
}

fn headless(chromium: &Path, profile: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn portal_product_page_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (site, _) = sample_portal(dir.path()).await;
    let page = site.join(portal::product_file("customers", "customers"));
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let profile = dir.path().join("chromium-profile");

    let png = dir.path().join("customers.png");
    headless(
        &chromium,
        &profile,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,1600",
            &url,
        ],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 1600));
    // A blank page of that size compresses to a few KB; text, tables and a chart do not.
    assert!(bytes.len() > 40_000, "{} bytes", bytes.len());
    if let Some(keep) = std::env::var_os("TESSERA_PORTAL_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    let dom = headless(&chromium, &profile, &["--dump-dom", &url]);
    let dom = String::from_utf8(dom.stdout).unwrap();
    assert!(dom.contains("<h1>customers.customers</h1>"), "{dom}");
    let chart = &dom[dom.find("<svg class=\"chart\"").expect("chart in the DOM")..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    // Two runs: the one published, the one refused with a failed check.
    assert_eq!(chart.matches("data-rows=").count(), 2, "{chart}");
    assert!(chart.contains("<rect class=\"bar passed\""));
    assert!(chart.contains("<rect class=\"bar failed\""));
    assert!(chart.contains("<polyline class=\"rows\""));
    assert!(dom.contains("<svg class=\"lineage\""));
    assert!(dom.contains("<table class=\"schema\">"));
}
