//! The national do-not-call registry in memory: a sorted set of E.164
//! numbers (as integers) in an Elias–Fano encoding (the `vers-vecs` crate),
//! which takes `2 + log2(universe / n)` bits per number — under one byte for
//! a national registry — and answers membership with one predecessor query.

use vers_vecs::EliasFanoVec;

/// An immutable set of phone numbers.
#[derive(Clone, Debug)]
pub struct NumberSet {
    ef: EliasFanoVec,
}

impl NumberSet {
    /// Builds the set from numbers in any order; duplicates are dropped.
    pub fn from_unsorted(mut numbers: Vec<u64>) -> Self {
        numbers.sort_unstable();
        numbers.dedup();
        Self { ef: EliasFanoVec::from_slice(&numbers) }
    }

    /// Whether `number` is in the set.
    pub fn contains(&self, number: u64) -> bool {
        self.ef.predecessor(number) == Some(number)
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> usize {
        self.ef.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ef.is_empty()
    }

    /// The numbers, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ef.iter()
    }

    /// Bytes of memory the set occupies.
    pub fn heap_bytes(&self) -> usize {
        self.ef.heap_size()
    }
}

/// An E.164 string (`+14155552671`) as the integer the registry stores.
pub fn e164_key(e164: &str) -> Option<u64> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One line of a registry file as an E.164 key: the FTC download format
/// (`area code,number`, e.g. `201,5550123`, optionally quoted), a bare
/// ten-digit US number, or an E.164 number. `None` for anything else.
pub fn parse_registry_line(line: &str, ftc: bool) -> Option<u64> {
    let line = line.trim().trim_start_matches('\u{feff}');
    if ftc {
        let digits: String = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
        if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // NANP: area code and exchange never start with 0 or 1.
        let b = digits.as_bytes();
        if b[0] < b'2' || b[3] < b'2' {
            return None;
        }
        return e164_key(&format!("+1{digits}"));
    }
    e164_key(line)
}

/// Splits a file fed in chunks of any size into lines (a line may straddle
/// chunks); shared by the registry and the reassigned-numbers imports.
#[derive(Debug, Default)]
pub struct Lines {
    rest: Vec<u8>,
}

impl Lines {
    /// Feeds the next chunk; `line` gets every line it completes.
    pub fn push(&mut self, chunk: &[u8], mut line: impl FnMut(&[u8])) {
        let mut start = 0;
        for (i, b) in chunk.iter().enumerate() {
            if *b == b'\n' {
                if self.rest.is_empty() {
                    line(&chunk[start..i]);
                } else {
                    let mut joined = std::mem::take(&mut self.rest);
                    joined.extend_from_slice(&chunk[start..i]);
                    line(&joined);
                }
                start = i + 1;
            }
        }
        self.rest.extend_from_slice(&chunk[start..]);
    }

    /// Ends the file: `line` gets the last line, if any.
    pub fn finish(self, mut line: impl FnMut(&[u8])) {
        line(&self.rest);
    }
}

/// Parses a registry file fed in chunks, keeping the numbers and counting
/// refused lines.
#[derive(Debug, Default)]
pub struct LineParser {
    ftc: bool,
    lines: Lines,
    /// Numbers parsed so far.
    pub numbers: Vec<u64>,
    /// Lines refused so far (blank lines are not counted).
    pub rejected: u64,
}

impl LineParser {
    /// A parser for the FTC format (`ftc`) or E.164 lines.
    pub fn new(ftc: bool) -> Self {
        Self { ftc, ..Default::default() }
    }

    /// Feeds the next chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        let Self { ftc, lines, numbers, rejected } = self;
        lines.push(chunk, |l| Self::line(*ftc, numbers, rejected, l));
    }

    /// Ends the file; returns the numbers and the count of refused lines.
    pub fn finish(self) -> (Vec<u64>, u64) {
        let Self { ftc, lines, mut numbers, mut rejected } = self;
        lines.finish(|l| Self::line(ftc, &mut numbers, &mut rejected, l));
        (numbers, rejected)
    }

    fn line(ftc: bool, numbers: &mut Vec<u64>, rejected: &mut u64, raw: &[u8]) {
        let Ok(text) = std::str::from_utf8(raw) else {
            *rejected += 1;
            return;
        };
        if text.trim().is_empty() {
            return;
        }
        match parse_registry_line(text, ftc) {
            Some(n) => numbers.push(n),
            None => *rejected += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_exact() {
        let set = NumberSet::from_unsorted(vec![12_025_550_143, 8_613_812_345_678, 12_025_550_143, 14_155_552_671]);
        assert_eq!(set.len(), 3, "duplicates dropped");
        assert!(set.contains(12_025_550_143) && set.contains(8_613_812_345_678) && set.contains(14_155_552_671));
        for absent in [0, 12_025_550_142, 12_025_550_144, 8_613_812_345_679, u64::MAX] {
            assert!(!set.contains(absent), "{absent}");
        }
        assert!(!NumberSet::from_unsorted(Vec::new()).contains(1));
    }

    #[test]
    fn a_dense_registry_takes_about_a_byte_per_number() {
        // Every 20th number of one area code: the density of a real registry.
        let n: Vec<u64> = (0..200_000u64).map(|i| 12_015_550_000 + i * 20).collect();
        let set = NumberSet::from_unsorted(n.clone());
        assert!(n.iter().all(|x| set.contains(*x)));
        assert!(!set.contains(12_015_550_001));
        let per_number = set.heap_bytes() as f64 / set.len() as f64;
        assert!(per_number < 1.2, "{per_number} bytes per number");
    }

    #[test]
    fn registry_lines_in_ftc_and_e164_formats() {
        assert_eq!(parse_registry_line("201,5550123", true), Some(12_015_550_123));
        assert_eq!(parse_registry_line("\"201\",\"5550123\"\r", true), Some(12_015_550_123));
        assert_eq!(parse_registry_line("2015550123", true), Some(12_015_550_123));
        assert_eq!(parse_registry_line("101,5550123", true), None, "area codes never start with 1");
        assert_eq!(parse_registry_line("201,555012", true), None);
        assert_eq!(parse_registry_line("+8613812345678", false), Some(8_613_812_345_678));
        assert_eq!(parse_registry_line("8613812345678", false), None, "E.164 needs the plus");
        assert_eq!(parse_registry_line("+86 138", false), None);
        assert_eq!(e164_key("+1234567890123456"), None, "longer than E.164 allows");
    }

    #[test]
    fn lines_straddling_chunks_parse_once() {
        let file = b"201,5550123\r\n202,5550199\nnot a number\n\n203,5550100";
        for split in 1..file.len() {
            let mut p = LineParser::new(true);
            p.push(&file[..split]);
            p.push(&file[split..]);
            let (numbers, rejected) = p.finish();
            assert_eq!(numbers, vec![12_015_550_123, 12_025_550_199, 12_035_550_100], "split at {split}");
            assert_eq!(rejected, 1);
        }
    }
}
