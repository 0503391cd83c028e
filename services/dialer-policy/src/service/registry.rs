//! The national do-not-call registry copies in force, one per region, held
//! in memory as [`NumberSet`]s. A new copy is built beside the old one and
//! swapped in atomically; readers never wait. Each copy's numbers are also
//! written to a file (sorted, delta-encoded: about a byte and a half per
//! number) so that a restart does not need the original download, and that
//! file is kept in the database too, so that every replica loads the copy
//! in force (its own disk is not shared): at start, and by
//! [`Registry::refresh`] every [`REFRESH`] after a copy is imported through
//! another replica.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, NaiveDate, Utc};
use guardline_phone::Phone;

use crate::domain::decision::RuleResult;
use crate::domain::numbers::{NumberSet, e164_key};
use crate::domain::policy::Effective;
use crate::error::{DialerError, Error, Result};
use crate::store::{Store, registry_copies};

/// One loaded copy.
#[derive(Debug)]
pub struct Copy {
    /// Date of the copy.
    pub date: NaiveDate,
    /// Its numbers.
    pub set: NumberSet,
    /// Its file's name (the copy's identity).
    pub file: String,
}

/// How often a replica looks for a copy imported through another.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// The rule's name.
const RULE: &str = "dnc.national";

/// The copies in force.
#[derive(Clone, Debug)]
pub struct Registry {
    copies: Arc<ArcSwap<BTreeMap<String, Arc<Copy>>>>,
    dir: PathBuf,
}

impl Registry {
    /// Loads the copies recorded in `db`, from their files under `dir`, or
    /// from the database where this replica lacks a file.
    pub async fn load(store: &Store, dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let me = Self { copies: Arc::new(ArcSwap::from_pointee(BTreeMap::new())), dir };
        me.refresh(store).await?;
        Ok(me)
    }

    /// Loads every recorded copy this replica does not hold yet (imported
    /// through another replica) and swaps it in; returns how many.
    pub async fn refresh(&self, store: &Store) -> Result<usize> {
        let mut next = (**self.copies.load()).clone();
        let (mut loaded, mut replaced) = (0, Vec::new());
        for (region, date, file) in registry_copies::all(store).await? {
            if next.get(&region).is_some_and(|c| c.file == file) {
                continue;
            }
            let path = self.dir.join(&file);
            if path.exists() {
                // A copy recorded before files were kept in the database.
                if !registry_copies::has_pieces(store, &file).await? {
                    let bytes = std::fs::read(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
                    let pieces = bytes.chunks(registry_copies::CHUNK).map(<[u8]>::to_vec);
                    registry_copies::keep_pieces(store, &file, pieces).await?;
                }
            } else {
                fetch(store, &file, &path).await?;
            }
            let numbers = tokio::task::spawn_blocking(move || read_numbers(&path))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            let copy = Arc::new(Copy { date, set: NumberSet::from_unsorted(numbers), file });
            replaced.extend(next.insert(region, copy).map(|old| old.file.clone()));
            loaded += 1;
        }
        if loaded > 0 {
            self.copies.store(Arc::new(next));
        }
        for old in replaced {
            let _ = std::fs::remove_file(self.dir.join(old));
        }
        Ok(loaded)
    }

    /// The copies: region, date, numbers, bytes.
    pub fn status(&self) -> Vec<(String, NaiveDate, u64, u64)> {
        self.copies
            .load()
            .iter()
            .map(|(r, c)| (r.clone(), c.date, c.set.len() as u64, c.set.heap_bytes() as u64))
            .collect()
    }

    /// The `dnc.national` rule for a callee, judged at `at`.
    pub fn rule(&self, callee: &Phone, at: DateTime<Utc>, p: &Effective) -> RuleResult {
        let region = callee.region();
        let copies = self.copies.load();
        let Some(copy) = copies.get(region) else {
            return self.unusable(region, at, p).unwrap_or_else(|| {
                RuleResult::allow(RULE, format!("no national registry applies to {region} by policy"))
            });
        };
        if let Some(stale) = self.unusable(region, at, p) {
            return stale;
        }
        if e164_key(callee.e164()).is_some_and(|k| copy.set.contains(k)) {
            RuleResult::deny(RULE, format!("on the national registry copy of {}", copy.date))
        } else {
            RuleResult::allow(RULE, format!("not on the national registry copy of {}", copy.date))
        }
    }

    /// The DENY owed when `region` needs a copy and has none, or when its
    /// copy is older at `at` than the policy allows; `None` when the copy
    /// (or the absence of one) is acceptable.
    pub fn unusable(&self, region: &str, at: DateTime<Utc>, p: &Effective) -> Option<RuleResult> {
        let copies = self.copies.load();
        let Some(copy) = copies.get(region) else {
            return p
                .registry_required_regions
                .iter()
                .any(|r| r == region)
                .then(|| RuleResult::deny(RULE, format!("no national registry copy for {region} is loaded")));
        };
        let age = (at.date_naive() - copy.date).num_days();
        (age > i64::from(p.registry_max_age_days)).then(|| {
            RuleResult::deny(
                RULE,
                format!("the registry copy of {} is {age} days old (limit {})", copy.date, p.registry_max_age_days),
            )
        })
    }

    /// Installs a new copy for `region`: file first, then the row, then the
    /// in-memory swap; the previous copy's file is removed afterwards.
    pub async fn install(
        &self,
        store: &Store,
        region: &str,
        date: NaiveDate,
        numbers: Vec<u64>,
        loaded_at: DateTime<Utc>,
    ) -> Result<u64> {
        let file = format!("{region}-{date}-{}.bin", uuid::Uuid::now_v7().simple());
        let path = self.dir.join(&file);
        let (set, numbers, bytes) = tokio::task::spawn_blocking(move || -> Result<(NumberSet, u64, Vec<u8>)> {
            let set = NumberSet::from_unsorted(numbers);
            write_numbers(&path, &set)?;
            let bytes = std::fs::read(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            let n = set.len() as u64;
            Ok((set, n, bytes))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let pieces = bytes.chunks(registry_copies::CHUNK).map(<[u8]>::to_vec);
        let previous =
            registry_copies::replace(store, region, (date, numbers, file.clone()), pieces, loaded_at).await?;
        let mut next = (**self.copies.load()).clone();
        next.insert(region.into(), Arc::new(Copy { date, set, file }));
        self.copies.store(Arc::new(next));
        if let Some(old) = previous {
            let _ = std::fs::remove_file(self.dir.join(old));
        }
        Ok(numbers)
    }
}

/// Writes the copy `file` from its pieces in the database to `path`.
async fn fetch(store: &Store, file: &str, path: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("part");
    let mut out = std::fs::File::create(&tmp).map_err(io)?;
    let mut seq = 0;
    while let Some(bytes) = registry_copies::piece(store, file, seq).await? {
        out.write_all(&bytes).map_err(io)?;
        seq += 1;
    }
    if seq == 0 {
        return Err(DialerError::RegistryTruncated { file: file.to_owned() }.into());
    }
    out.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Writes a set's numbers (ascending) as LEB128 deltas, via a temporary file.
fn write_numbers(path: &Path, set: &NumberSet) -> Result<()> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    w.write_all(&(set.len() as u64).to_le_bytes()).map_err(io)?;
    let mut last = 0u64;
    for n in set.iter() {
        let mut d = n - last;
        last = n;
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                w.write_all(&[byte]).map_err(io)?;
                break;
            }
            w.write_all(&[byte | 0x80]).map_err(io)?;
        }
    }
    let f = w.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read_numbers(path: &Path) -> Result<Vec<u64>> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let mut r = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut len = [0u8; 8];
    r.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len) as usize;
    let mut out = Vec::with_capacity(len);
    let mut last = 0u64;
    let mut bytes = r.bytes();
    for _ in 0..len {
        let (mut d, mut shift) = (0u64, 0);
        loop {
            let truncated = || DialerError::RegistryTruncated { file: path.display().to_string() };
            let b = bytes.next().ok_or_else(truncated)?.map_err(io)?;
            d |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 63 {
                break;
            }
        }
        last += d;
        out.push(last);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_file_reads_back_the_same_numbers() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("us.bin");
        let numbers = vec![12_015_550_123, 12_015_550_124, 19_999_999_999, 12_015_550_000];
        let set = NumberSet::from_unsorted(numbers.clone());
        write_numbers(&path, &set).expect("write");
        let mut sorted = numbers;
        sorted.sort_unstable();
        assert_eq!(read_numbers(&path).expect("read"), sorted);
        let bytes = std::fs::read(&path).expect("file");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
        let e = read_numbers(&path).expect_err("truncated");
        assert!(matches!(e.refusal(), Some(DialerError::RegistryTruncated { .. })), "{e:?}");
    }
}
