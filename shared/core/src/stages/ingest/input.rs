//! Raw bytes → text: decompression (gzip, zstd) under a size cap, Latin-1 decoding, the checks
//! every text file passes (not empty, no NUL bytes) and the UTF-8 byte-order mark.
//!
//! Readers deep under the parsers refuse a file by returning an [`std::io::Error`] that carries a
//! [`Refusal`]; [`refused`] turns it back into bad input once the parser gives up. Errors of the
//! storage stream itself stay I/O errors (retried), never mistaken for corrupt data.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::mesh::{SourceCompression, SourceConfig, SourceEncoding};

/// Decompressed bytes from which `max_compression_ratio` applies: a small file may legitimately
/// compress very well.
pub const RATIO_FLOOR: u64 = 1 << 20;

/// Buffer of the text reader the parsers read from.
const TEXT_BUFFER: usize = 256 << 10;
/// Text checked for NUL bytes (binary files) before parsing.
const SNIFF: usize = 64 << 10;

/// Why a file cannot be read, carried through `std::io::Error`.
#[derive(Debug)]
pub(super) struct Refusal(pub(super) String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// An I/O error that refuses the file with `reason`.
pub(super) fn refuse(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Refusal(reason.into()))
}

/// The refusal an I/O error carries.
fn refusal_of(e: &io::Error) -> Option<&str> {
    e.get_ref()?.downcast_ref::<Refusal>().map(|r| r.0.as_str())
}

/// Turns an I/O error carrying a [`Refusal`] (directly, or inside a CSV or JSON error) into bad
/// input at `location`; other errors are returned as they are.
pub(super) fn refused(e: Error, location: &str) -> Error {
    match e {
        Error::Io(io) => match refusal_of(&io) {
            Some(reason) => Error::bad_input(location, reason),
            None => Error::Io(io),
        },
        Error::Json(j) if j.is_io() => refused(Error::Io(io::Error::from(j)), location),
        other => other,
    }
}

/// An error of the storage stream, marked so that a decoder passing it on is not blamed.
#[derive(Debug)]
struct SourceError(io::Error);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceError {}

/// The storage stream, counting the bytes read and marking its errors.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), SourceError(e)))?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Unmarks a storage error; anything else the decoder says is corrupt data.
fn codec_error(e: io::Error, codec: Codec) -> io::Error {
    if e.get_ref().is_some_and(|i| i.is::<SourceError>()) {
        return match e.into_inner().map(|i| i.downcast::<SourceError>()) {
            Some(Ok(source)) => source.0,
            Some(Err(other)) => io::Error::other(other),
            None => io::Error::other("storage stream failed"),
        };
    }
    if refusal_of(&e).is_some() {
        return e;
    }
    refuse(format!("corrupt or truncated {} data: {e}", codec.name()))
}

/// A compression ingest decompresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }

    fn magic(self) -> &'static [u8] {
        match self {
            Codec::Gzip => &[0x1f, 0x8b],
            Codec::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        }
    }

    /// The codec a key's suffix names, with the suffix.
    fn from_suffix(key: &str) -> Option<(Codec, &'static str)> {
        let lower = key.to_ascii_lowercase();
        [
            (Codec::Gzip, ".gz"),
            (Codec::Gzip, ".gzip"),
            (Codec::Zstd, ".zst"),
            (Codec::Zstd, ".zstd"),
        ]
        .into_iter()
        .find(|(_, suffix)| lower.ends_with(suffix))
    }
}

/// The codec of a file: the recipe's, or under `auto` the key's suffix (which the magic bytes
/// must confirm) or else the magic bytes alone.
pub(super) fn codec(
    compression: SourceCompression,
    key: &str,
    head: &[u8],
) -> std::result::Result<Option<Codec>, String> {
    let forced = match compression {
        SourceCompression::None => return Ok(None),
        SourceCompression::Gzip => Codec::Gzip,
        SourceCompression::Zstd => Codec::Zstd,
        SourceCompression::Auto => {
            return match Codec::from_suffix(key) {
                Some((c, _)) if head.starts_with(c.magic()) => Ok(Some(c)),
                Some((c, suffix)) => Err(format!(
                    "the key ends in `{suffix}` but the file is not {}-compressed (no {} magic bytes); set `compression = \"none\"` to read it as it is",
                    c.name(),
                    c.name()
                )),
                None => Ok([Codec::Gzip, Codec::Zstd]
                    .into_iter()
                    .find(|c| head.starts_with(c.magic()))),
            };
        }
    };
    if head.starts_with(forced.magic()) {
        Ok(Some(forced))
    } else {
        Err(format!(
            "the recipe says `compression = \"{}\"` but the file has no {} magic bytes",
            forced.name(),
            forced.name()
        ))
    }
}

/// Decompressed bytes, counted against the caps.
struct Capped<D> {
    inner: D,
    codec: Codec,
    produced: u64,
    compressed: Rc<Cell<u64>>,
    max_bytes: u64,
    max_ratio: u64,
}

impl<D: Read> Read for Capped<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|e| codec_error(e, self.codec))?;
        self.produced += n as u64;
        if self.produced > self.max_bytes {
            return Err(refuse(format!(
                "{} data decompresses to more than {} bytes (`max_decompressed_bytes`): refused as a possible decompression bomb",
                self.codec.name(),
                self.max_bytes
            )));
        }
        if self.produced > RATIO_FLOOR
            && self.produced > self.max_ratio.saturating_mul(self.compressed.get())
        {
            return Err(refuse(format!(
                "{} data decompresses to more than {} times its compressed size (`max_compression_ratio`): refused as a possible decompression bomb",
                self.codec.name(),
                self.max_ratio
            )));
        }
        Ok(n)
    }
}

/// ISO-8859-1 decoded to UTF-8: each byte is the code point of its value.
struct Latin1<R> {
    inner: R,
    buf: Vec<u8>,
    /// Second byte of a two-byte sequence that did not fit the caller's buffer.
    pending: Option<u8>,
}

impl<R: Read> Read for Latin1<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.pending.take() {
            out[0] = b;
            return Ok(1);
        }
        let want = (out.len() / 2).clamp(1, self.buf.len());
        let n = self.inner.read(&mut self.buf[..want])?;
        let mut w = 0;
        for &b in &self.buf[..n] {
            if b < 0x80 {
                out[w] = b;
                w += 1;
            } else {
                let (first, second) = (0xC0 | (b >> 6), 0x80 | (b & 0x3F));
                out[w] = first;
                w += 1;
                if w < out.len() {
                    out[w] = second;
                    w += 1;
                } else {
                    self.pending = Some(second);
                }
            }
        }
        Ok(w)
    }
}

/// The text of a raw file: decompressed per the recipe and the key, decoded to UTF-8, checked
/// (not empty, no NUL bytes) and without a UTF-8 byte-order mark.
pub(super) fn open(
    reader: impl Read + 'static,
    source: &SourceConfig,
    key: &str,
    location: &str,
) -> Result<BufReader<Box<dyn Read>>> {
    let compressed = Rc::new(Cell::new(0));
    let mut counted = Counted {
        inner: reader,
        count: Rc::clone(&compressed),
    };
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let mut byte = [0u8; 4];
        let want = 4 - head.len();
        let n = counted.read(&mut byte[..want]).map_err(codec_error_plain)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&byte[..n]);
    }
    if head.is_empty() {
        return Err(Error::bad_input(location, "empty file"));
    }
    let codec = codec(source.compression, key, &head).map_err(|r| Error::bad_input(location, r))?;
    let raw = io::Cursor::new(head).chain(counted);
    let decompressed: Box<dyn Read> = match codec {
        None => Box::new(raw),
        Some(codec) => {
            let buffered = BufReader::new(raw);
            let inner: Box<dyn Read> = match codec {
                Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
                Codec::Zstd => Box::new(
                    zstd::stream::read::Decoder::with_buffer(buffered)
                        .map_err(|e| codec_error(e, codec))?,
                ),
            };
            Box::new(Capped {
                inner,
                codec,
                produced: 0,
                compressed,
                max_bytes: source.max_decompressed_bytes,
                max_ratio: source.max_compression_ratio,
            })
        }
    };
    let decoded: Box<dyn Read> = match source.encoding {
        SourceEncoding::Utf8 => decompressed,
        SourceEncoding::Latin1 => Box::new(Latin1 {
            inner: decompressed,
            buf: vec![0; 64 << 10],
            pending: None,
        }),
    };
    let mut decoded = decoded;
    let mut head = Vec::with_capacity(SNIFF);
    (&mut decoded).take(SNIFF as u64).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(Error::bad_input(
            location,
            match codec {
                None => "empty file".to_owned(),
                Some(c) => format!("empty file (after {} decompression)", c.name()),
            },
        ));
    }
    if head.contains(&0) {
        return Err(Error::bad_input(
            location,
            match codec {
                None => "binary data (NUL bytes): not a text file".to_owned(),
                Some(c) => format!(
                    "binary data (NUL bytes) after {} decompression: not a text file",
                    c.name()
                ),
            },
        ));
    }
    let mut head = io::Cursor::new(head);
    if source.encoding == SourceEncoding::Utf8 && head.get_ref().starts_with(b"\xEF\xBB\xBF") {
        head.set_position(3);
    }
    let text: Box<dyn Read> = Box::new(head.chain(decoded));
    Ok(BufReader::with_capacity(TEXT_BUFFER, text))
}

/// A storage error while reading the first bytes, unmarked.
fn codec_error_plain(e: io::Error) -> io::Error {
    match e.into_inner().map(|i| i.downcast::<SourceError>()) {
        Some(Ok(source)) => source.0,
        Some(Err(other)) => io::Error::other(other),
        None => io::Error::other("storage stream failed"),
    }
}

/// The text of a local sample file, decoded as ingest decodes raw files (for the policy's
/// detectors over sample files).
pub(crate) fn read_sample(path: &std::path::Path, source: &SourceConfig) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Config(format!("cannot read sample `{}`: {e}", path.display())))?;
    let location = path.display().to_string();
    let mut out = Vec::new();
    let read = open(file, source, &location, &location)
        .and_then(|mut r| r.read_to_end(&mut out).map_err(Error::from));
    match read.map_err(|e| refused(e, &location)) {
        Ok(_) => Ok(out),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything with reads of at most `chunk` bytes.
    fn read_in(mut r: impl Read, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn latin_1_maps_every_byte_to_its_code_point_whatever_the_read_size() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let expected: String = bytes.iter().map(|b| char::from(*b)).collect();
        for chunk in [1, 2, 3, 7, 64, 1024] {
            let decoded = read_in(
                Latin1 {
                    inner: &bytes[..],
                    buf: vec![0; 16],
                    pending: None,
                },
                chunk,
            );
            assert_eq!(
                String::from_utf8(decoded).expect("UTF-8"),
                expected,
                "{chunk}"
            );
        }
    }

    #[test]
    fn the_codec_follows_the_recipe_then_the_suffix_then_the_magic_bytes() {
        let gz = [0x1f, 0x8b, 8, 0];
        let zs = [0x28, 0xb5, 0x2f, 0xfd];
        let auto = SourceCompression::Auto;
        assert_eq!(codec(auto, "a.csv.gz", &gz), Ok(Some(Codec::Gzip)));
        assert_eq!(codec(auto, "a.csv.ZSTD", &zs), Ok(Some(Codec::Zstd)));
        assert_eq!(codec(auto, "a.csv", &zs), Ok(Some(Codec::Zstd)));
        assert_eq!(codec(auto, "a.csv", b"id,x"), Ok(None));
        assert!(codec(auto, "a.csv.zst", &gz).is_err());
        assert_eq!(codec(SourceCompression::None, "a.csv.gz", &gz), Ok(None));
        assert_eq!(
            codec(SourceCompression::Gzip, "a.csv", &gz),
            Ok(Some(Codec::Gzip))
        );
        assert!(codec(SourceCompression::Gzip, "a.csv.gz", b"id,x").is_err());
    }
}
