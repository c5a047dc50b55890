//! `tessera new domain` and `tessera new product`: a new domain or data product from the
//! templates embedded in the binary (`templates/`), ready to pass `contract lint`, `policy check`
//! and `tessera run` before anyone edits it.
//!
//! The mesh file is edited as text, never re-serialised, so its comments and layout stay: a
//! domain is appended at its end; a product is inserted at the end of its domain's section (the
//! lines from its `[[domains]]` header to the next header that is not one of its sub-tables).
//! The edited text is loaded as a mesh before anything is written to the mesh file, and must
//! hold exactly the domains and products it held plus the new one; otherwise the files just
//! created are removed and the error carries the entry to add by hand. Existing files, domains
//! and products are never overwritten.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use tessera_core::keys::validate_identifier;
use tessera_core::mesh::Mesh;

const DOMAIN_ENTRY: &str = include_str!("../templates/domain.toml");
const DOMAIN_README: &str = include_str!("../templates/domain-README.md");
const PRODUCT_ENTRY: &str = include_str!("../templates/product.toml");
const PRODUCT_CONTRACT: &str = include_str!("../templates/product.odcs.yaml");
const PRODUCT_SAMPLE: &str = include_str!("../templates/sample.csv");

/// What a scaffolding command did.
#[derive(Debug, Serialize)]
pub struct Scaffold {
    /// The mesh file the entry was added to.
    pub mesh_file: PathBuf,
    /// The entry added to the mesh file.
    pub entry: String,
    /// Files created, in order.
    pub created: Vec<PathBuf>,
    /// Commands to run next.
    pub next: Vec<String>,
}

/// `tessera new domain NAME`: a `[[domains]]` entry appended to the mesh file (bucket
/// `tessera-<mesh>-<name>`) and the domain's folder `domains/NAME/` with a README.
pub fn new_domain(mesh_path: &Path, name: &str, description: Option<&str>) -> Result<Scaffold> {
    validate_identifier(name).map_err(|e| anyhow!("domain name: {e}"))?;
    let (mesh, text) = load(mesh_path)?;
    if mesh.domains.iter().any(|d| d.name == name) {
        bail!(
            "domain `{name}` already exists in `{}`: nothing written",
            mesh_path.display()
        );
    }
    let root = root_of(mesh_path);
    let description = description
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map_or_else(
            || format!("The {name} domain: say here what its data is about."),
            str::to_owned,
        );
    let bucket = format!("tessera-{}-{name}", mesh.name);
    let entry = render(
        DOMAIN_ENTRY,
        &[
            ("domain", name),
            ("description", &toml_escape(&description)),
            ("bucket", &bucket),
        ],
    );
    let readme = root.join("domains").join(name).join("README.md");
    refuse_existing(&[&readme])?;
    let new_text = format!("{}{entry}", with_final_newline(&text));

    let mut created = Created::default();
    let result = (|| {
        created.write(
            &readme,
            &render(
                DOMAIN_README,
                &[("domain", name), ("description", &description)],
            ),
        )?;
        let mut expected = shape(&mesh);
        expected.push((name.to_owned(), Vec::new()));
        check_edit(&new_text, mesh_path, &expected, &entry)
    })();
    finish(result, created, mesh_path, &new_text, entry, |s| {
        s.next = vec![
            command(mesh_path, &format!("new product {name} PRODUCT")),
            command(
                mesh_path,
                &format!("infra synth --domain {name} --out infra"),
            ),
        ];
    })
}

/// `tessera new product DOMAIN NAME`: an ODCS v3 contract `domains/DOMAIN/NAME/NAME.odcs.yaml`,
/// a sample CSV under `domains/DOMAIN/NAME/raw/`, and the product's `[[domains.products]]`
/// entry (CSV source over the samples, a clean recipe) inserted into the domain's section of
/// the mesh file.
pub fn new_product(
    mesh_path: &Path,
    domain: &str,
    name: &str,
    owner: Option<&str>,
) -> Result<Scaffold> {
    validate_identifier(domain).map_err(|e| anyhow!("domain name: {e}"))?;
    validate_identifier(name).map_err(|e| anyhow!("product name: {e}"))?;
    let (mesh, text) = load(mesh_path)?;
    let Some(index) = mesh.domains.iter().position(|d| d.name == domain) else {
        bail!(
            "no domain `{domain}` in `{}`: create it first with `{}`",
            mesh_path.display(),
            command(mesh_path, &format!("new domain {domain}"))
        );
    };
    if mesh.domains[index].products.iter().any(|p| p.name == name) {
        bail!(
            "product `{domain}.{name}` already exists in `{}`: nothing written",
            mesh_path.display()
        );
    }
    let owner = owner.map_or_else(|| format!("{domain}-data@example.com"), str::to_owned);
    let root = root_of(mesh_path);
    let dir = format!("domains/{domain}/{name}");
    let contract = root.join(&dir).join(format!("{name}.odcs.yaml"));
    let sample = root
        .join(&dir)
        .join("raw")
        .join(format!("{name}_2024-05-01.csv"));
    refuse_existing(&[&contract, &sample])?;
    let entry = render(
        PRODUCT_ENTRY,
        &[("domain", domain), ("product", name), ("dir", &dir)],
    );
    let new_text = insert_product(&text, index, &entry).ok_or_else(|| {
        anyhow!(
            "cannot find the section of domain `{domain}` in `{}` (its `[[domains]]` headers do \
             not match its domains): nothing written; add this entry at the end of the domain's \
             section by hand:\n{entry}",
            mesh_path.display()
        )
    })?;

    let mut created = Created::default();
    let result = (|| {
        created.write(
            &contract,
            &render(
                PRODUCT_CONTRACT,
                &[
                    ("domain", domain),
                    ("product", name),
                    ("owner", &yaml_escape(&owner)),
                ],
            ),
        )?;
        created.write(&sample, PRODUCT_SAMPLE)?;
        let mut expected = shape(&mesh);
        expected[index].1.push(name.to_owned());
        expected[index].1.sort();
        check_edit(&new_text, mesh_path, &expected, &entry)
    })();
    let contract_shown = Path::new(&dir).join(format!("{name}.odcs.yaml"));
    finish(result, created, mesh_path, &new_text, entry, |s| {
        s.next = vec![
            command(
                mesh_path,
                &format!("contract lint {}", contract_shown.display()),
            ),
            command(mesh_path, "policy check"),
            command(mesh_path, "run"),
            command(mesh_path, &format!("describe {domain}.{name}")),
            command(
                mesh_path,
                &format!("infra synth --domain {domain} --out infra"),
            ),
        ];
    })
}

/// The mesh, loaded, and its text.
fn load(mesh_path: &Path) -> Result<(Mesh, String)> {
    let text = std::fs::read_to_string(mesh_path)
        .with_context(|| format!("reading mesh file `{}`", mesh_path.display()))?;
    let mesh =
        Mesh::load(mesh_path).with_context(|| format!("loading mesh `{}`", mesh_path.display()))?;
    Ok((mesh, text))
}

fn root_of(mesh_path: &Path) -> PathBuf {
    mesh_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Domains in order, each with its products' names sorted.
fn shape(mesh: &Mesh) -> Vec<(String, Vec<String>)> {
    mesh.domains
        .iter()
        .map(|d| {
            let mut names: Vec<String> = d.products.iter().map(|p| p.name.clone()).collect();
            names.sort();
            (d.name.clone(), names)
        })
        .collect()
}

/// Loads the edited mesh text and checks it holds exactly the `expected` domains and products.
fn check_edit(
    text: &str,
    mesh_path: &Path,
    expected: &[(String, Vec<String>)],
    entry: &str,
) -> Result<()> {
    let origin = mesh_path.display().to_string();
    let mesh = Mesh::from_toml(text, &origin, &root_of(mesh_path)).with_context(|| {
        format!("the edited mesh file does not load; add this entry by hand:\n{entry}")
    })?;
    if shape(&mesh) != expected {
        bail!(
            "the edited mesh file does not hold the new entry where it belongs; add it by \
             hand:\n{entry}"
        );
    }
    Ok(())
}

/// Writes the mesh file when `result` is fine; otherwise removes what was created.
fn finish(
    result: Result<()>,
    created: Created,
    mesh_path: &Path,
    new_text: &str,
    entry: String,
    next: impl FnOnce(&mut Scaffold),
) -> Result<Scaffold> {
    let result = result.and_then(|()| {
        std::fs::write(mesh_path, new_text)
            .with_context(|| format!("writing mesh file `{}`", mesh_path.display()))
    });
    if let Err(e) = result {
        created.undo();
        return Err(e);
    }
    let mut scaffold = Scaffold {
        mesh_file: mesh_path.to_path_buf(),
        entry,
        created: created.files,
        next: Vec::new(),
    };
    next(&mut scaffold);
    Ok(scaffold)
}

/// Files and folders created so far, to remove them again when the scaffold fails.
#[derive(Debug, Default)]
struct Created {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Created {
    /// Creates `path` with `contents`; never replaces an existing file.
    fn write(&mut self, path: &Path, contents: &str) -> Result<()> {
        if let Some(parent) = path.parent() {
            let missing: Vec<&Path> = parent.ancestors().take_while(|a| !a.exists()).collect();
            for dir in missing.into_iter().rev() {
                std::fs::create_dir(dir)
                    .with_context(|| format!("creating folder `{}`", dir.display()))?;
                self.dirs.push(dir.to_path_buf());
            }
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating `{}` (it is never replaced)", path.display()))?;
        self.files.push(path.to_path_buf());
        file.write_all(contents.as_bytes())
            .with_context(|| format!("writing `{}`", path.display()))
    }

    /// Removes what was created, newest first (best effort: the error that led here matters).
    fn undo(self) {
        for f in self.files.iter().rev() {
            let _ = std::fs::remove_file(f);
        }
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn refuse_existing(paths: &[&Path]) -> Result<()> {
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        bail!("`{}` already exists: nothing written", p.display());
    }
    Ok(())
}

/// `entry` inserted into the section of the `index`-th `[[domains]]` of `text`: before the next
/// header that is not a `domains.` sub-table, and before the comments and blank lines right
/// above that header (they introduce it). `None` when the headers do not count `index + 1`
/// domains.
fn insert_product(text: &str, index: usize, entry: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut headers = Vec::new();
    let mut in_string: Option<&str> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if in_string.is_none() && trimmed.starts_with('[') {
            headers.push((i, trimmed));
        }
        for quote in ["\"\"\"", "'''"] {
            if in_string.is_none_or(|q| q == quote) && line.matches(quote).count() % 2 == 1 {
                in_string = match in_string {
                    Some(_) => None,
                    None => Some(quote),
                };
            }
        }
    }
    let is_domain = |h: &str| h.starts_with("[[domains]]");
    let start = headers
        .iter()
        .filter(|(_, h)| is_domain(h))
        .nth(index)
        .map(|(i, _)| *i)?;
    let mut end = headers
        .iter()
        .find(|(i, h)| {
            *i > start && !(h.starts_with("[domains.") || h.starts_with("[[domains.")) // sub-tables
        })
        .map_or(lines.len(), |(i, _)| *i);
    if end < lines.len() {
        while end > start + 1 && {
            let t = lines[end - 1].trim();
            t.is_empty() || t.starts_with('#')
        } {
            end -= 1;
        }
    }
    let mut out = String::with_capacity(text.len() + entry.len() + 1);
    for line in &lines[..end] {
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(entry);
    if lines.get(end).is_some_and(|l| !l.trim().is_empty()) {
        out.push('\n');
    }
    for line in &lines[end..] {
        out.push_str(line);
    }
    Some(out)
}

fn with_final_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// `{{key}}` replaced by each value.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(template.to_owned(), |t, (k, v)| {
        t.replace(&format!("{{{{{k}}}}}"), v)
    })
}

/// The inside of a TOML basic string (also valid inside a YAML double-quoted one).
fn toml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn yaml_escape(s: &str) -> String {
    toml_escape(s)
}

/// A `tessera` command line, with `--mesh` unless the mesh file is the default one.
fn command(mesh_path: &Path, args: &str) -> String {
    if mesh_path == Path::new("samplecli.toml") {
        format!("tessera {args}")
    } else {
        format!("tessera --mesh {} {args}", mesh_path.display())
    }
}

/// The domain's stack regenerated into `infra/` beside the mesh file (what `tessera infra synth
/// --domain D --out infra` writes, with the mesh layer): a new product is part of its domain's
/// stack at once. Returns the files written (unchanged ones are left alone).
pub fn write_stack(
    mesh_file: &Path,
    environment: Option<&str>,
    domain: &str,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mesh = tessera_core::mesh::Mesh::load(mesh_file)
        .map_err(|e| anyhow::anyhow!("loading mesh `{}`: {e}", mesh_file.display()))?;
    let dir = mesh_file
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join("infra");
    let artifacts = crate::commands::synth(
        &mesh,
        mesh_file,
        environment,
        &tessera_infra::Stacks::Domain(domain.to_owned()),
        "..",
    )?;
    let (written, _) = tessera_infra::write(&dir, &artifacts, false)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = "[mesh]\nname = \"m\"\n\n[[domains]]\nname = \"a\"\n\n\
        [[domains.products]]\nname = \"p\"\nsql = \"\"\"\n[not a header]\n\"\"\"\n\n\
        # introduces b\n[[domains]]\nname = \"b\"\n";

    #[test]
    fn a_product_goes_at_the_end_of_its_domain() {
        let out = insert_product(MESH, 0, "\n[[domains.products]]\nname = \"q\"\n").unwrap();
        let q = out.find("name = \"q\"").unwrap();
        assert!(q > out.find("[not a header]").unwrap());
        assert!(q < out.find("# introduces b").unwrap(), "{out}");
        let out = insert_product(MESH, 1, "\n[[domains.products]]\nname = \"r\"\n").unwrap();
        assert!(out.ends_with("name = \"b\"\n\n[[domains.products]]\nname = \"r\"\n"));
        assert!(insert_product(MESH, 2, "x").is_none());
    }

    #[test]
    fn templates_are_fully_rendered() {
        let values = [
            ("domain", "d"),
            ("product", "p"),
            ("dir", "domains/d/p"),
            ("owner", "o@example.com"),
            ("description", "x"),
            ("bucket", "b"),
        ];
        for t in [
            DOMAIN_ENTRY,
            DOMAIN_README,
            PRODUCT_ENTRY,
            PRODUCT_CONTRACT,
            PRODUCT_SAMPLE,
        ] {
            assert!(!render(t, &values).contains("{{"), "{t}");
        }
        assert_eq!(toml_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000A");
    }
}
