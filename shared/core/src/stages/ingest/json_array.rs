//! `format = "json"`: one JSON array of objects, read element by element (never whole). A bad
//! element is quarantined with its 0-based index; a file that is not an array, or whose JSON
//! breaks (the array cannot be resumed after a syntax error), is refused whole.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use serde::Deserializer as _;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde_json::Value;

use super::input::refuse;
use super::{At, MAX_RECORD_BYTES, Rows};
use crate::error::{Error, Result};

/// Bytes serde_json consumed, and where the current element started: an element longer than
/// [`MAX_RECORD_BYTES`] is refused before it is held in memory.
struct Budget<R> {
    inner: R,
    total: Rc<Cell<u64>>,
    mark: Rc<Cell<u64>>,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.total.get() - self.mark.get() > MAX_RECORD_BYTES as u64 {
            return Err(refuse(format!(
                "array element longer than {MAX_RECORD_BYTES} bytes"
            )));
        }
        let n = self.inner.read(buf)?;
        self.total.set(self.total.get() + n as u64);
        Ok(n)
    }
}

/// Forwards each element of the array to the rows.
struct Elements<'x, 'a> {
    rows: &'x mut Rows<'a>,
    index: &'x Cell<u64>,
    mark: Rc<Cell<u64>>,
    total: Rc<Cell<u64>>,
    stopped: &'x mut Option<Error>,
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        loop {
            self.mark.set(self.total.get());
            let Some(value) = seq.next_element::<Value>()? else {
                return Ok(());
            };
            let at = At::Element(self.index.get());
            if let Err(e) = self.rows.json_object(at, value) {
                *self.stopped = Some(e);
                return Err(A::Error::custom("ingest stopped"));
            }
            self.index.set(self.index.get() + 1);
        }
    }
}

/// Reads the array; `reader` is the decoded text.
pub(super) fn parse(mut reader: impl BufRead, rows: &mut Rows<'_>) -> Result<()> {
    let location = rows.plan.location.clone();
    let head = reader.fill_buf()?;
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {}
        Some(b'{') => {
            return Err(Error::bad_input(
                location,
                "the top level is a JSON object, not an array: a file of one object per line is `format = \"ndjson\"`",
            ));
        }
        Some(other) => {
            return Err(Error::bad_input(
                location,
                format!(
                    "not a JSON array: the file starts with `{}`",
                    char::from(*other).escape_default()
                ),
            ));
        }
        None => return Err(Error::bad_input(location, "no JSON value, only whitespace")),
    }
    let total = Rc::new(Cell::new(0));
    let mark = Rc::new(Cell::new(0));
    let budget = Budget {
        inner: reader,
        total: Rc::clone(&total),
        mark: Rc::clone(&mark),
    };
    let mut de = serde_json::Deserializer::from_reader(budget);
    let index = Cell::new(0);
    let mut stopped = None;
    let result = de.deserialize_seq(Elements {
        rows,
        index: &index,
        mark,
        total,
        stopped: &mut stopped,
    });
    if let Some(e) = stopped {
        return Err(e);
    }
    match result {
        Ok(()) => de.end().map_err(|e| {
            if e.is_io() {
                Error::Json(e)
            } else {
                Error::bad_input(
                    location,
                    format!("data after the end of the JSON array: {e}"),
                )
            }
        }),
        Err(e) if e.is_io() => Err(Error::Json(e)),
        Err(e) if e.is_eof() => Err(Error::bad_input(
            location,
            format!("the JSON array is cut off in element {} ({e})", index.get()),
        )),
        Err(e) => Err(Error::bad_input(
            location,
            format!("malformed JSON in or after element {}: {e}", index.get()),
        )),
    }
}
