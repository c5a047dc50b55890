//! Duplicate counting for `duplicateValues` and `unique`, in bounded memory.
//!
//! Value hashes (128 bits) go into a hash set; past [`IN_MEMORY`] of them, the set is written
//! out to temporary files, one per hash partition, and every later hash is appended to its
//! partition's file. [`Distinct::finish`] then counts the duplicates of each partition alone.
//! Memory stays under one set of [`IN_MEMORY`] hashes (about 17 MB) whatever the file's size.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use super::values::HashSet;

/// Hashes kept in memory before they spill: just under what a table of 2^20 buckets holds.
pub(crate) const IN_MEMORY: usize = 900_000;
/// Partitions of spilled hashes.
const PARTITIONS: usize = 16;

/// Distinct value hashes seen so far.
#[derive(Debug, Default)]
pub(crate) struct Distinct {
    set: HashSet,
    spill: Vec<BufWriter<File>>,
    limit: Option<usize>,
}

impl Distinct {
    /// A counter that spills past `limit` hashes (tests use small limits).
    #[cfg(test)]
    fn with_limit(limit: usize) -> Distinct {
        Distinct {
            limit: Some(limit),
            ..Distinct::default()
        }
    }

    /// Adds a hash; `Ok(true)` when it is known at once to be a duplicate (duplicates among
    /// spilled hashes are counted by [`Distinct::finish`]).
    pub(crate) fn insert(&mut self, hash: u128) -> Result<bool, String> {
        if !self.spill.is_empty() {
            let p = ((hash >> 64) as u64 % PARTITIONS as u64) as usize;
            self.spill[p]
                .write_all(&hash.to_le_bytes())
                .map_err(|e| spill_error(&e))?;
            return Ok(false);
        }
        if !self.set.insert(hash) {
            return Ok(true);
        }
        if self.set.len() > self.limit.unwrap_or(IN_MEMORY) {
            self.spill = (0..PARTITIONS)
                .map(|_| {
                    tempfile::tempfile()
                        .map(|f| BufWriter::with_capacity(64 << 10, f))
                        .map_err(|e| spill_error(&e))
                })
                .collect::<Result<_, _>>()?;
            for h in std::mem::take(&mut self.set) {
                let p = ((h >> 64) as u64 % PARTITIONS as u64) as usize;
                self.spill[p]
                    .write_all(&h.to_le_bytes())
                    .map_err(|e| spill_error(&e))?;
            }
        }
        Ok(false)
    }

    /// Duplicates among the spilled hashes.
    pub(crate) fn finish(&mut self) -> Result<u64, String> {
        let mut duplicates = 0;
        for writer in std::mem::take(&mut self.spill) {
            let mut file = writer.into_inner().map_err(|e| spill_error(e.error()))?;
            file.rewind().map_err(|e| spill_error(&e))?;
            let mut reader = BufReader::with_capacity(64 << 10, file);
            let mut set = HashSet::default();
            let mut buf = [0u8; 16];
            loop {
                match reader.read_exact(&mut buf) {
                    Ok(()) => {
                        if !set.insert(u128::from_le_bytes(buf)) {
                            duplicates += 1;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(spill_error(&e)),
                }
            }
        }
        Ok(duplicates)
    }
}

fn spill_error(e: &std::io::Error) -> String {
    format!("could not use temporary files to count distinct values: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_hashes_count_the_same_duplicates() {
        // 5,000 values, every seventh repeated later, some three times.
        let mut values: Vec<u128> = (0..5000u128)
            .map(|i| (i * 0x9E37_79B9_7F4A_7C15) << 3)
            .collect();
        let repeats: Vec<u128> = values.iter().step_by(7).copied().collect();
        values.extend(&repeats);
        values.extend(repeats.iter().step_by(2));
        let expected = (repeats.len() + repeats.iter().step_by(2).count()) as u64;
        for mut d in [Distinct::default(), Distinct::with_limit(100)] {
            let mut found = 0;
            for v in &values {
                found += u64::from(d.insert(*v).expect("insert"));
            }
            found += d.finish().expect("finish");
            assert_eq!(found, expected);
        }
    }
}
