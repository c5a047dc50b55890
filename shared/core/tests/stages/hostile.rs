//! Generated hostile input (see `docs/hostile-input.md`): text files at the edges (empty, one
//! byte, byte-order marks, CRLF, invalid UTF-8, ragged rows), an unterminated quote over
//! megabytes, JSON nested 100,000 deep, gzip and zstd bombs, Parquet decompression bombs, and
//! contracts with alias bombs and deep nesting. Each ends accepted, or refused / quarantined
//! with a reason that says where; nothing panics and nothing takes long.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tessera_core::runs::RunStatus;

use crate::corpora::{Fate, ingest};
use crate::support::{BUCKET, Fx, ORDERS_CONTRACT};

/// The `orders` product read from `format`, with more recipe settings (`, key = value`).
fn fx(format: &str, settings: &str) -> Fx {
    Fx::new(
        &format!(
            "[[domains.products]]\nname = \"orders\"\ncontract = \"orders.odcs.yaml\"\n\
             source = {{ format = \"{format}\"{settings} }}\n"
        ),
        &[("orders.odcs.yaml", ORDERS_CONTRACT)],
    )
}

const HEADER: &str = "order_id,email,amount,order_day,note\n";
const ROW: &str = "O-1,,1.00,2024-05-01,\n";
const LINE: &str = r#"{"order_id": "O-1", "amount": "1.00", "order_day": "2024-05-01"}"#;

/// Lands a file through the handler; the fate, and how long it took.
async fn land(fx: &Fx, key: &str, data: Vec<u8>) -> (Fate, Duration) {
    let started = Instant::now();
    let fate = ingest(fx.ctx(), key, data).await;
    (fate, started.elapsed())
}

/// A refusal's reason (after the file's name), or a panic with what happened instead.
#[track_caller]
fn refused(key: &str, fate: &Fate) -> String {
    match fate {
        Fate::Refused(reason, report) => {
            let prefix = format!("bad input `{BUCKET}/{key}`: ");
            assert!(reason.starts_with(&prefix), "{key}: {reason}");
            assert!(report.ends_with(".error.json"), "{key}: {report}");
            reason[prefix.len()..].to_owned()
        }
        other => panic!("{key}: expected a refusal, got {other:?}"),
    }
}

/// Rows staged and the quarantined rows (position, reason) of a file that was read.
#[track_caller]
fn read(key: &str, fate: &Fate) -> (u64, Vec<(u64, String)>) {
    match fate {
        Fate::Read(run, bad) => {
            let bad = bad
                .iter()
                .map(|b| {
                    let at = ["line", "element", "row"]
                        .iter()
                        .find_map(|k| b[*k].as_u64())
                        .unwrap_or_else(|| panic!("{key}: no position in {b}"));
                    (at, b["reason"].as_str().expect("reason").to_owned())
                })
                .collect();
            assert!(
                matches!(run.status, RunStatus::Succeeded | RunStatus::Skipped),
                "{run:?}"
            );
            (run.rows_out, bad)
        }
        other => panic!("{key}: expected the file to be read, got {other:?}"),
    }
}

#[tokio::test]
async fn text_files_at_the_edges_are_read_or_refused_with_a_reason() {
    let csv = fx("csv", "");
    let ndjson = fx("ndjson", "");
    // Empty and one-byte files.
    for (fx, ext) in [(&csv, "csv"), (&ndjson, "ndjson")] {
        let key = format!("raw/orders/empty.{ext}");
        let (fate, _) = land(fx, &key, Vec::new()).await;
        assert_eq!(refused(&key, &fate), "empty file");
        let key = format!("raw/orders/nul.{ext}");
        let (fate, _) = land(fx, &key, vec![0]).await;
        assert_eq!(
            refused(&key, &fate),
            "binary data (NUL bytes): not a text file"
        );
    }
    let (fate, _) = land(&csv, "raw/orders/a.csv", b"a".to_vec()).await;
    assert_eq!(
        refused("raw/orders/a.csv", &fate),
        "the header names none of the contract's columns"
    );
    let (fate, _) = land(&csv, "raw/orders/nl.csv", b"\n".to_vec()).await;
    assert!(!refused("raw/orders/nl.csv", &fate).is_empty());
    let (fate, _) = land(&ndjson, "raw/orders/brace.ndjson", b"{".to_vec()).await;
    let (rows, bad) = read("raw/orders/brace.ndjson", &fate);
    assert_eq!(rows, 0);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 1);
    assert!(bad[0].1.starts_with("malformed JSON: EOF"), "{bad:?}");
    let (fate, _) = land(&ndjson, "raw/orders/nl.ndjson", b"\n".to_vec()).await;
    assert_eq!(read("raw/orders/nl.ndjson", &fate), (0, vec![]));

    // Byte-order marks: UTF-8's is skipped; UTF-16's text has NUL bytes; a BOM alone is empty
    // of rows.
    let bom = [
        b"\xEF\xBB\xBF".as_slice(),
        HEADER.as_bytes(),
        ROW.as_bytes(),
    ]
    .concat();
    let (fate, _) = land(&csv, "raw/orders/bom.csv", bom).await;
    assert_eq!(read("raw/orders/bom.csv", &fate), (1, vec![]));
    let bom = [b"\xEF\xBB\xBF".as_slice(), LINE.as_bytes()].concat();
    let (fate, _) = land(&ndjson, "raw/orders/bom.ndjson", bom).await;
    assert_eq!(read("raw/orders/bom.ndjson", &fate), (1, vec![]));
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(HEADER.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (fate, _) = land(&csv, "raw/orders/utf16.csv", utf16).await;
    assert_eq!(
        refused("raw/orders/utf16.csv", &fate),
        "binary data (NUL bytes): not a text file"
    );
    let (fate, _) = land(
        &ndjson,
        "raw/orders/bom-only.ndjson",
        b"\xEF\xBB\xBF".to_vec(),
    )
    .await;
    assert_eq!(read("raw/orders/bom-only.ndjson", &fate), (0, vec![]));

    // CRLF line ends: rows read, bad rows at their physical line.
    let crlf = format!("{HEADER}{ROW}O-2,,lots,2024-05-01,\n{ROW}").replace('\n', "\r\n");
    let (fate, _) = land(&csv, "raw/orders/crlf.csv", crlf.into_bytes()).await;
    let (rows, bad) = read("raw/orders/crlf.csv", &fate);
    assert_eq!(rows, 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 3);
    assert!(bad[0].1.starts_with("column `amount`: "), "{bad:?}");
    let crlf = format!("{LINE}\r\n{{\"order_id\": \r\n{LINE}\r\n");
    let (fate, _) = land(&ndjson, "raw/orders/crlf.ndjson", crlf.into_bytes()).await;
    let (rows, bad) = read("raw/orders/crlf.ndjson", &fate);
    assert_eq!(rows, 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 2);

    // Invalid UTF-8: the row is quarantined with the byte, the file goes on.
    let text = [
        HEADER.as_bytes(),
        b"O-1,,1.00,2024-05-01,caf\xE9\n",
        ROW.as_bytes(),
    ]
    .concat();
    let (fate, _) = land(&csv, "raw/orders/latin.csv", text).await;
    assert_eq!(
        read("raw/orders/latin.csv", &fate),
        (
            1,
            vec![(2, "column `note`: invalid UTF-8 at byte 3".into())]
        )
    );
    let text = [
        LINE.as_bytes(),
        b"\n{\"order_id\": \"O-\xFF\"}\n",
        LINE.as_bytes(),
    ]
    .concat();
    let (fate, _) = land(&ndjson, "raw/orders/latin.ndjson", text).await;
    let (rows, bad) = read("raw/orders/latin.ndjson", &fate);
    assert_eq!(rows, 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 2);
    assert!(
        bad[0].1.starts_with("malformed JSON: invalid unicode"),
        "{bad:?}"
    );

    // Ragged rows: quarantined with the count of fields, each at its line.
    let text = format!("{HEADER}{ROW}O-2,,1.00\nO-3,,1.00,2024-05-01,,extra,more\n{ROW}");
    let (fate, _) = land(&csv, "raw/orders/ragged.csv", text.into_bytes()).await;
    assert_eq!(
        read("raw/orders/ragged.csv", &fate),
        (
            2,
            vec![
                (3, "malformed row: 3 fields where the header has 5".into()),
                (4, "malformed row: 7 fields where the header has 5".into()),
            ]
        )
    );
}

#[tokio::test]
async fn an_unterminated_quote_is_refused_at_its_line_without_holding_the_file() {
    let fx = fx("csv", "");
    // Mid-file, over more than the runaway cap: refused whole, at the record's line.
    let mut text = format!("{HEADER}{ROW}O-2,,1.00,2024-05-01,\"never closed\n").into_bytes();
    let filler = format!("{ROW}O-9,x@example.com,9.99,2024-05-09,text\n").repeat(1 << 12);
    while text.len() < 48 << 20 {
        text.extend_from_slice(filler.as_bytes());
    }
    let key = "raw/orders/quote.csv";
    let (fate, took) = land(&fx, key, text).await;
    assert_eq!(
        refused(key, &fate),
        "line 3: a CSV record runs on for more than 32 MiB or 1048576 lines without ending (an unterminated quote?)"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    // Within the cap, at the end of the file: the quoted field runs to the end, so the record
    // is one malformed row, at its line.
    let mut text = format!("{HEADER}{ROW}O-2,\"never closed,1.00,2024-05-01,\n").into_bytes();
    text.extend_from_slice(&b"x".repeat(3 << 20));
    let key = "raw/orders/quote-end.csv";
    let (fate, _) = land(&fx, key, text).await;
    let (rows, bad) = read(key, &fate);
    assert_eq!(rows, 1);
    assert_eq!(
        bad,
        [(3, "malformed row: 2 fields where the header has 5".into())]
    );
}

#[tokio::test]
async fn json_nested_100000_deep_is_quarantined_not_a_stack_overflow() {
    let arrays = "[".repeat(100_000);
    let objects = "{\"a\":".repeat(100_000);
    let ndjson = fx("ndjson", "");
    let text = format!("{LINE}\n{arrays}\n{objects}\n{LINE}\n");
    let key = "raw/orders/deep.ndjson";
    let (fate, took) = land(&ndjson, key, text.into_bytes()).await;
    let (rows, bad) = read(key, &fate);
    assert_eq!(rows, 2);
    assert_eq!(
        bad.iter().map(|b| b.0).collect::<Vec<_>>(),
        [2, 3],
        "{bad:?}"
    );
    for (_, reason) in &bad {
        assert!(
            reason.starts_with("malformed JSON: recursion limit exceeded at line 1 column"),
            "{reason}"
        );
    }
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The same inside an element of a JSON array: the array cannot be resumed, so the file
    // is refused whole, naming the element.
    let json = fx("json", "");
    let text = format!("[{LINE}, {{\"order_id\": {arrays}");
    let key = "raw/orders/deep.json";
    let (fate, _) = land(&json, key, text.into_bytes()).await;
    let reason = refused(key, &fate);
    assert!(
        reason.starts_with("malformed JSON in or after element 1: recursion limit exceeded"),
        "{reason}"
    );
    // And in a file that is one deep document.
    let key = "raw/orders/deep-doc.json";
    let (fate, _) = land(&json, key, arrays.into_bytes()).await;
    assert!(refused(key, &fate).contains("recursion limit exceeded"));
}

#[tokio::test]
async fn gzip_and_zstd_bombs_are_refused_under_the_caps() {
    let rows = ROW.repeat(1 << 14);
    // gzip past `max_decompressed_bytes`.
    let fx_gz = fx("csv", ", max_decompressed_bytes = 4194304");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(HEADER.as_bytes()).expect("gzip");
    let mut written = 0;
    while written < 16 << 20 {
        gz.write_all(rows.as_bytes()).expect("gzip");
        written += rows.len();
    }
    let gz = gz.finish().expect("gzip");
    let key = "raw/orders/bomb.csv.gz";
    let (fate, took) = land(&fx_gz, key, gz).await;
    assert_eq!(
        refused(key, &fate),
        "gzip data decompresses to more than 4194304 bytes (`max_decompressed_bytes`): refused as a possible decompression bomb"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    // zstd past `max_compression_ratio` (the default, 1000).
    let fx_zst = fx("csv", "");
    let mut zst = zstd::stream::write::Encoder::new(Vec::new(), 19).expect("zstd");
    zst.write_all(HEADER.as_bytes()).expect("zstd");
    let mut written = 0;
    while written < 256 << 20 {
        zst.write_all(rows.as_bytes()).expect("zstd");
        written += rows.len();
    }
    let zst = zst.finish().expect("zstd");
    assert!(zst.len() < 256 << 10, "{}", zst.len());
    let key = "raw/orders/bomb.csv.zst";
    let (fate, took) = land(&fx_zst, key, zst).await;
    assert_eq!(
        refused(key, &fate),
        "zstd data decompresses to more than 1000 times its compressed size (`max_compression_ratio`): refused as a possible decompression bomb"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// A Parquet file of `rows` rows of the `orders` columns (strings), one value repeated, written
/// plain (no dictionary) and zstd-compressed: small on disk, large once decompressed.
fn parquet_bomb(rows: usize, row_group: usize) -> Vec<u8> {
    let schema = Arc::new(Schema::new(
        ["order_id", "amount", "order_day"]
            .map(|n| Field::new(n, DataType::Utf8, true))
            .to_vec(),
    ));
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(19).expect("level")))
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, Arc::clone(&schema), Some(props)).expect("writer");
    let batch_rows = 1 << 16;
    let columns: Vec<ArrayRef> = ["O-00000000000000000001", "1.00", "2024-05-01"]
        .map(|v| Arc::new(StringArray::from(vec![v; batch_rows])) as ArrayRef)
        .to_vec();
    let batch = RecordBatch::try_new(schema, columns).expect("batch");
    for _ in 0..rows / batch_rows {
        writer.write(&batch).expect("write");
    }
    writer.close().expect("close");
    out
}

#[tokio::test]
async fn parquet_bombs_are_refused_from_the_footer_before_decoding() {
    // 4M rows of 26-byte strings plain-encoded: ~110 MB declared, a few hundred KB on disk.
    let data = parquet_bomb(1 << 22, 1 << 22);
    assert!(data.len() < 2 << 20, "{}", data.len());
    let fx_ratio = fx("parquet", "");
    let key = "raw/orders/bomb.parquet";
    let (fate, took) = land(&fx_ratio, key, data.clone()).await;
    let reason = refused(key, &fate);
    assert!(
        reason.starts_with("column `order_id` of row group 0 declares ")
            && reason.ends_with(
                "more than 1000 times (`max_compression_ratio`): refused as a possible decompression bomb"
            ),
        "{reason}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // An honest file over `max_decompressed_bytes`: refused from the footer's total.
    let fx_total = fx(
        "parquet",
        ", max_decompressed_bytes = 1048576, max_compression_ratio = 1000000",
    );
    let (fate, _) = land(&fx_total, key, parquet_bomb(1 << 16, 1 << 14)).await;
    let reason = refused(key, &fate);
    assert!(
        reason.starts_with("the footer declares ")
            && reason.ends_with(
                "more than 1048576 (`max_decompressed_bytes`): refused as a possible decompression bomb"
            ),
        "{reason}"
    );
    // Within the caps, the same file is read.
    let fx_ok = fx("parquet", ", max_compression_ratio = 1000000");
    let (fate, _) = land(&fx_ok, key, parquet_bomb(1 << 16, 1 << 16)).await;
    assert_eq!(read(key, &fate), (1 << 16, vec![]));
}

/// A contract refused by the loader; its problems as text, and how long the refusal took.
fn refuse_contract(text: &str) -> (tessera_contract::ContractError, Duration) {
    let started = Instant::now();
    let err = tessera_contract::Contract::from_yaml(text, "hostile.odcs.yaml")
        .expect_err("the contract must be refused");
    (err, started.elapsed())
}

#[test]
fn contract_alias_bombs_and_deep_nesting_are_refused_quickly_with_a_place() {
    // Billion laughs, block style, nine levels of nine aliases (9^9 nodes if expanded).
    let mut laughs =
        String::from("apiVersion: v3.1.0\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        laughs.push_str(&format!("l{i}: &l{i}\n"));
        for _ in 0..9 {
            laughs.push_str(&format!("  - *l{}\n", i - 1));
        }
    }
    // Merge keys that multiply: each mapping merges the previous one nine times over.
    let mut merges = String::from("apiVersion: v3.1.0\nm0: &m0 {a: 1, b: 2, c: 3}\n");
    for i in 1..=12 {
        merges.push_str(&format!(
            "m{i}: &m{i}\n  <<: [*m{p}, *m{p}, *m{p}, *m{p}, *m{p}, *m{p}, *m{p}, *m{p}, *m{p}]\n  k{i}: {i}\n",
            p = i - 1
        ));
    }
    // One anchor aliased a hundred thousand times.
    let mut many = String::from("apiVersion: v3.1.0\nx: &x {a: [1, 2, 3]}\ny:\n");
    many.push_str(&"  - *x\n".repeat(100_000));
    for (name, text) in [("laughs", &laughs), ("merges", &merges), ("many", &many)] {
        let (err, took) = refuse_contract(text);
        let problem = &err.problems[0];
        assert!(
            problem.message.starts_with("invalid YAML") && problem.line.is_some(),
            "{name}: {err}"
        );
        assert!(took < Duration::from_secs(2), "{name}: {took:?}");
    }
    // Deep nesting: flow and block sequences, block mappings.
    let flow = format!("apiVersion: v3.1.0\na: {}", "[".repeat(100_000));
    let block = format!("apiVersion: v3.1.0\na:\n{}x\n", "- ".repeat(100_000));
    let mappings: String = (0..1000)
        .map(|depth| format!("{}k:\n", " ".repeat(depth)))
        .collect();
    for (name, text) in [("flow", &flow), ("block", &block), ("mappings", &mappings)] {
        let (err, took) = refuse_contract(text);
        let problem = &err.problems[0];
        assert!(
            problem.message.starts_with("invalid YAML")
                && problem.line.is_some()
                && problem.column.is_some(),
            "{name}: {err}"
        );
        assert!(took < Duration::from_secs(2), "{name}: {took:?}");
        assert!(
            err.to_string().starts_with("hostile.odcs.yaml:"),
            "{name}: {err}"
        );
    }
    // Too large, before parsing; invalid YAML at its line and column.
    let (err, _) = refuse_contract(&format!(
        "apiVersion: v3.1.0\nx: '{}'\n",
        "a".repeat(5 << 20)
    ));
    assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
    let (err, _) = refuse_contract("apiVersion: v3.1.0\nkind: [DataContract\nid: x\n");
    assert!(err.problems[0].line.is_some(), "{err}");
    assert!(err.to_string().starts_with("hostile.odcs.yaml:"), "{err}");
}

#[test]
fn a_mesh_whose_contract_is_an_alias_bomb_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut bomb = ORDERS_CONTRACT.to_owned();
    bomb.push_str("x-laughs: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for name in ["b", "c", "d", "e", "f", "g", "h", "i"] {
        let previous = (name.as_bytes()[0] - 1) as char;
        bomb.push_str(&format!(
            "x-{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
        ));
    }
    let products = [("orders".to_owned(), "{ format = \"csv\" }".to_owned(), bomb)];
    let started = Instant::now();
    let err = crate::corpora::mesh(dir.path(), &products).expect_err("refused");
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = err.to_string();
    assert!(
        text.contains("orders.odcs.yaml:") && text.contains("invalid YAML"),
        "{text}"
    );
}
