//! Which rows of a file clean drops as exact duplicates or superseded versions, in bounded
//! memory.
//!
//! The scan records, per row, its 128-bit row hash, its key hash (none for a null key), its
//! ordering value and its position. Small files keep these records in memory. Larger ones
//! spill them to temporary files, one per hash partition (the key hash, or the row hash for rows
//! without a key: equal rows always share a partition, and so do the versions of one key); each
//! partition is then decided alone. Memory is one partition's records and hash tables, plus one
//! byte per row for the verdicts, whatever the file's size.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use tessera_contract::{HashedKeyMap, HashedKeySet};

use crate::error::{Error, Result};

/// Rows whose records are decided in memory at once (about 80 bytes of records and 70 bytes of
/// hash tables each: some 75 MB); a file with more rows is split into
/// `ceil(rows / PARTITION_ROWS)` partitions on disk.
pub const PARTITION_ROWS: u64 = 500_000;

/// What becomes of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fate {
    /// Kept (as far as deduplication goes).
    Keep = 0,
    /// Equal to an earlier row.
    Duplicate = 1,
    /// Not the latest version of its key.
    Superseded = 2,
}

/// One row's facts for deduplication.
#[derive(Debug, Clone, Copy)]
struct Facts {
    row_hash: u128,
    key_hash: Option<u128>,
    order: i128,
    row: u64,
}

const FACTS_BYTES: usize = 16 + 1 + 16 + 16 + 8;

impl Facts {
    fn partition(&self, partitions: usize) -> usize {
        let h = self.key_hash.unwrap_or(self.row_hash);
        ((h >> 64) as u64 % partitions as u64) as usize
    }

    fn encode(&self, out: &mut [u8; FACTS_BYTES]) {
        out[0..16].copy_from_slice(&self.row_hash.to_le_bytes());
        out[16] = u8::from(self.key_hash.is_some());
        out[17..33].copy_from_slice(&self.key_hash.unwrap_or(0).to_le_bytes());
        out[33..49].copy_from_slice(&self.order.to_le_bytes());
        out[49..57].copy_from_slice(&self.row.to_le_bytes());
    }

    fn decode(b: &[u8; FACTS_BYTES]) -> Facts {
        let u128_at = |i: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[i..i + 16]);
            a
        };
        let mut row = [0u8; 8];
        row.copy_from_slice(&b[49..57]);
        Facts {
            row_hash: u128::from_le_bytes(u128_at(0)),
            key_hash: (b[16] == 1).then(|| u128::from_le_bytes(u128_at(17))),
            order: i128::from_le_bytes(u128_at(33)),
            row: u64::from_le_bytes(row),
        }
    }
}

/// Collects every row's facts, then decides each row's [`Fate`].
#[derive(Debug)]
pub struct Dedupe {
    exact: bool,
    latest: bool,
    rows: u64,
    /// In memory (one partition).
    facts: Vec<Facts>,
    /// On disk, one file per partition.
    spill: Vec<BufWriter<File>>,
}

impl Dedupe {
    /// A scan of a file of about `expected_rows` rows; `exact` drops equal rows, `latest` keeps
    /// only the latest row of each key.
    pub fn new(expected_rows: u64, exact: bool, latest: bool) -> Result<Dedupe> {
        let partitions = expected_rows.div_ceil(PARTITION_ROWS).max(1) as usize;
        let spill = if partitions > 1 {
            (0..partitions)
                .map(|_| {
                    tempfile::tempfile()
                        .map(|f| BufWriter::with_capacity(64 << 10, f))
                        .map_err(|e| spill_error(&e))
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(Dedupe {
            exact,
            latest,
            rows: 0,
            facts: Vec::new(),
            spill,
        })
    }

    /// Partitions on disk (0: the records stay in memory).
    pub fn spilled_partitions(&self) -> usize {
        self.spill.len()
    }

    /// Adds the next rows, in file order: their row hashes, key hashes and ordering values.
    pub fn scan(
        &mut self,
        row_hashes: &[u128],
        key_hashes: &[Option<u128>],
        order: &[i128],
    ) -> Result<()> {
        for ((&row_hash, &key_hash), &order) in row_hashes.iter().zip(key_hashes).zip(order) {
            let facts = Facts {
                row_hash,
                key_hash: if self.latest { key_hash } else { None },
                order,
                row: self.rows,
            };
            self.rows += 1;
            if self.spill.is_empty() {
                self.facts.push(facts);
            } else {
                let p = facts.partition(self.spill.len());
                let mut buf = [0u8; FACTS_BYTES];
                facts.encode(&mut buf);
                self.spill[p].write_all(&buf).map_err(|e| spill_error(&e))?;
            }
        }
        Ok(())
    }

    /// The fate of every row scanned, by position.
    pub fn finish(self) -> Result<Vec<Fate>> {
        let mut fates = vec![Fate::Keep; self.rows as usize];
        if self.spill.is_empty() {
            decide(&self.facts, self.exact, &mut fates);
            return Ok(fates);
        }
        for writer in self.spill {
            let mut file = writer.into_inner().map_err(|e| spill_error(e.error()))?;
            use std::io::Seek;
            file.rewind().map_err(|e| spill_error(&e))?;
            let mut reader = BufReader::with_capacity(64 << 10, file);
            let mut facts = Vec::new();
            let mut buf = [0u8; FACTS_BYTES];
            loop {
                match reader.read_exact(&mut buf) {
                    Ok(()) => facts.push(Facts::decode(&buf)),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(spill_error(&e)),
                }
            }
            decide(&facts, self.exact, &mut fates);
        }
        Ok(fates)
    }
}

/// Decides the rows of one partition (in file order): the first of equal rows is kept, then
/// the latest row of each key (ordering value, null lowest; ties to the later row).
fn decide(facts: &[Facts], exact: bool, fates: &mut [Fate]) {
    let mut seen = HashedKeySet::with_capacity_and_hasher(facts.len(), Default::default());
    let mut winners: HashedKeyMap<(i128, u64)> =
        HashedKeyMap::with_capacity_and_hasher(facts.len(), Default::default());
    for f in facts {
        if exact && !seen.insert(f.row_hash) {
            fates[f.row as usize] = Fate::Duplicate;
            continue;
        }
        if let Some(k) = f.key_hash {
            let candidate = (f.order, f.row);
            winners
                .entry(k)
                .and_modify(|w| {
                    if candidate.0 >= w.0 {
                        *w = candidate;
                    }
                })
                .or_insert(candidate);
        }
    }
    for f in facts {
        if fates[f.row as usize] == Fate::Duplicate {
            continue;
        }
        if let Some(k) = f.key_hash
            && winners.get(&k).is_some_and(|w| w.1 != f.row)
        {
            fates[f.row as usize] = Fate::Superseded;
        }
    }
}

fn spill_error(e: &std::io::Error) -> Error {
    Error::Internal(format!(
        "deduplication could not use its temporary files: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expected_rows: u64, rows: &[(u128, Option<u128>, i128)]) -> Vec<Fate> {
        let mut d = Dedupe::new(expected_rows, true, true).unwrap();
        let row_hashes: Vec<u128> = rows.iter().map(|r| r.0).collect();
        let keys: Vec<Option<u128>> = rows.iter().map(|r| r.1).collect();
        let order: Vec<i128> = rows.iter().map(|r| r.2).collect();
        d.scan(&row_hashes, &keys, &order).unwrap();
        d.finish().unwrap()
    }

    #[test]
    fn spilled_partitions_decide_as_memory_does() {
        // 3,000 rows, every tenth an exact copy of the row before; the others over 270 keys
        // (`i % 300` for `i % 10 != 9`); then two equal rows without a key.
        let mut rows = Vec::new();
        for i in 0..3000u128 {
            if i % 10 == 9 {
                let prev = rows[rows.len() - 1];
                rows.push(prev);
            } else {
                let key = i % 300;
                rows.push((i * 7919 + 1, Some(key * 104_729 + 3), (i % 17) as i128));
            }
        }
        rows.push((u128::MAX, None, 0));
        rows.push((u128::MAX, None, 0));
        let memory = run(10, &rows);
        let spilled = run(PARTITION_ROWS * 5, &rows);
        assert_eq!(memory, spilled);
        let count = |f: Fate| memory.iter().filter(|&&x| x == f).count();
        assert_eq!(count(Fate::Duplicate), 301);
        assert_eq!(count(Fate::Keep), 270 + 1);
        assert_eq!(count(Fate::Superseded), rows.len() - 301 - 271);
    }

    #[test]
    fn latest_wins_and_ties_go_to_the_later_row() {
        let fates = run(
            3,
            &[
                (1, Some(9), 5),
                (2, Some(9), 7),
                (3, Some(9), 7),
                (4, Some(8), i128::MIN),
            ],
        );
        assert_eq!(
            fates,
            [Fate::Superseded, Fate::Superseded, Fate::Keep, Fate::Keep]
        );
    }
}
