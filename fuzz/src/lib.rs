//! What the fuzz targets share: the sample mesh's products, and the reading options one byte of
//! the input picks (docs/fuzzing.md).

use std::path::Path;
use std::sync::OnceLock;

use tessera_core::mesh::{
    Mesh, Product, ProductKind, ShortRows, SourceCompression, SourceConfig, SourceEncoding,
    SourceFormat, UnknownColumns,
};
use tessera_core::stages::ingest;

/// The sample mesh (`samplecli.toml`), loaded once per process.
fn mesh() -> &'static Mesh {
    static MESH: OnceLock<Mesh> = OnceLock::new();
    MESH.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samplecli.toml");
        match Mesh::load(&path) {
            Ok(mesh) => mesh,
            Err(e) => panic!("the sample mesh does not load: {e}"),
        }
    })
}

/// A source product of the sample mesh.
fn product(domain: &str, name: &str) -> &'static Product {
    match mesh().product(domain, name) {
        Some(p) if matches!(p.kind, ProductKind::Source { .. }) => p,
        _ => panic!("the sample mesh has no source product `{domain}.{name}`"),
    }
}

/// Reads `file` as ingest does for `domain.name`, with the recipe's reading options changed by
/// the bits of `options`: bits 0-1 the compression (the file's key suffix), bit 2 the encoding,
/// bit 3 keeping undeclared columns in `extras`; `csv` and `ndjson` read bits 4-7.
pub fn read(
    domain: &str,
    name: &str,
    extras: &str,
    options: u8,
    file: &[u8],
    tune: impl FnOnce(&mut SourceConfig, u8),
) {
    let mut product = product(domain, name).clone();
    let ProductKind::Source { source, .. } = &mut product.kind else {
        return;
    };
    let extension = match source.format {
        SourceFormat::Csv => "csv",
        SourceFormat::Json => "json",
        _ => "ndjson",
    };
    let (compression, suffix) = match options & 0b11 {
        0 => (SourceCompression::Auto, ""),
        1 => (SourceCompression::None, ""),
        2 => (SourceCompression::Auto, ".gz"),
        _ => (SourceCompression::Auto, ".zst"),
    };
    source.compression = compression;
    if options & 0b100 != 0 {
        source.encoding = SourceEncoding::Latin1;
    }
    if options & 0b1000 != 0 {
        source.unknown_columns = UnknownColumns::Keep;
        source.extras_column = Some(extras.to_owned());
    }
    tune(source, options >> 4);
    let key = format!("raw/{name}/fuzz.{extension}{suffix}");
    // Bad input is an error or quarantined rows; only a panic, an abort, a timeout or running
    // out of memory is a finding.
    let _ = ingest::read_text(&product, &key, file.to_vec());
}

/// CSV dialects from 4 bits: bit 0 no header, bit 1 short rows read as null, bits 2-3 the
/// quoting (`"`, none, `'`, `"` with `\` as escape).
pub fn csv_dialect(source: &mut SourceConfig, bits: u8) {
    source.header = bits & 0b1 == 0;
    if bits & 0b10 != 0 {
        source.short_rows = ShortRows::Null;
    }
    match (bits >> 2) & 0b11 {
        0 => source.quote = Some('"'),
        1 => source.quote = None,
        2 => source.quote = Some('\''),
        _ => {
            source.quote = Some('"');
            source.escape = Some('\\');
        }
    }
}
