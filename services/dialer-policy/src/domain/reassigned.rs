//! Reassigned numbers: the FCC's Reassigned Numbers Database (RND) answers
//! "has this number been permanently disconnected since date D?". A consent
//! given before the number was disconnected (and perhaps reassigned) is not
//! consent from today's subscriber.
//!
//! Results come from a file of query results (one line per query:
//! `number,date asked about,answer` with `yes`, `no` or `no_data`) dated
//! when they were obtained, or from a live source behind the dialer's port.
//! A `yes` for D says the disconnection happened after D and no later than
//! the results' date.

use chrono::{DateTime, NaiveDate, Utc};

use super::decision::RuleResult;
use super::numbers::Lines;

/// The rule's name.
pub const RULE: &str = "consent.reassigned";

/// One RND answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Permanently disconnected since the date asked about.
    Yes,
    /// Not disconnected since that date.
    No,
    /// The database has no data on the number.
    NoData,
}

impl Answer {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::NoData => "no_data",
        }
    }

    /// From the stored or written form.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "yes" => Some(Self::Yes),
            "no" => Some(Self::No),
            "no_data" | "nodata" => Some(Self::NoData),
            _ => None,
        }
    }
}

/// One query's result for a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryResult {
    /// The date asked about.
    pub asked: NaiveDate,
    /// The answer.
    pub answer: Answer,
    /// When the results were obtained (the file's date).
    pub obtained: NaiveDate,
}

/// Parses one line: `+12025550143,2026-01-15,yes`. The number comes back in
/// E.164 digits; the error names the column, never the value.
pub fn parse_line(line: &str) -> Result<(String, NaiveDate, Answer), &'static str> {
    let mut cols = line.split(',').map(str::trim);
    let number = cols.next().filter(|n| !n.is_empty()).ok_or("number")?;
    let asked = cols.next().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()).ok_or("date")?;
    let answer = cols.next().and_then(Answer::parse).ok_or("answer")?;
    if cols.next().is_some() {
        return Err("columns");
    }
    let e164 = if number.starts_with('+') { number.to_owned() } else { format!("+{number}") };
    Ok((e164, asked, answer))
}

/// A results file fed in chunks: the parsed lines and the count of refused ones.
#[derive(Debug, Default)]
pub struct ResultsParser {
    lines: Lines,
    /// Parsed lines: number (E.164), date asked, answer.
    pub rows: Vec<(String, NaiveDate, Answer)>,
    /// Lines refused (blank lines are not counted).
    pub rejected: u64,
}

impl ResultsParser {
    /// Feeds the next chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        let Self { lines, rows, rejected } = self;
        lines.push(chunk, |l| Self::line(rows, rejected, l));
    }

    /// Ends the file.
    pub fn finish(self) -> (Vec<(String, NaiveDate, Answer)>, u64) {
        let Self { lines, mut rows, mut rejected } = self;
        lines.finish(|l| Self::line(&mut rows, &mut rejected, l));
        (rows, rejected)
    }

    fn line(rows: &mut Vec<(String, NaiveDate, Answer)>, rejected: &mut u64, raw: &[u8]) {
        match std::str::from_utf8(raw).map(str::trim) {
            Ok("") => {}
            Ok(text) => match parse_line(text) {
                Ok(row) => rows.push(row),
                Err(_) => *rejected += 1,
            },
            Err(_) => *rejected += 1,
        }
    }
}

/// The rule for a consent granted at `granted`, given every result known
/// for the number.
pub fn judge(granted: DateTime<Utc>, results: &[QueryResult]) -> RuleResult {
    let consent = granted.date_naive();
    let Some(newest) = results.iter().map(|r| r.obtained).max() else {
        return RuleResult::allow(RULE, "no reassigned-numbers result for the number");
    };
    let source = format!("reassigned-numbers results of {newest}");
    // A disconnection at or after the consent's day: the consent is stale.
    if let Some(r) = results.iter().filter(|r| r.answer == Answer::Yes && r.asked >= consent).max_by_key(|r| r.asked) {
        return RuleResult::deny(
            RULE,
            format!(
                "the number was permanently disconnected after {}, after the consent of {consent}: \
                 that consent is not from today's subscriber ({source})",
                r.asked
            ),
        );
    }
    // A disconnection reported before the consent's day, obtained after it:
    // it may have happened after the consent.
    if let Some(r) = results.iter().find(|r| r.answer == Answer::Yes && r.asked < consent && r.obtained >= consent) {
        return RuleResult::deny(
            RULE,
            format!(
                "the number was permanently disconnected between {} and {}, possibly after the consent of \
                 {consent}: ask the database about {consent} ({source})",
                r.asked, r.obtained
            ),
        );
    }
    let why = if results.iter().any(|r| r.answer == Answer::No && r.asked <= consent) {
        format!("not disconnected since before the consent of {consent} ({source})")
    } else if results.iter().any(|r| r.answer == Answer::Yes) {
        format!("the consent of {consent} came after the number's last disconnection ({source})")
    } else {
        format!("no disconnection known since the consent of {consent} ({source})")
    };
    RuleResult::allow(RULE, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::Verdict;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn at(s: &str) -> DateTime<Utc> {
        day(s).and_hms_opt(12, 0, 0).expect("noon").and_utc()
    }

    fn yes(asked: &str, obtained: &str) -> QueryResult {
        QueryResult { asked: day(asked), answer: Answer::Yes, obtained: day(obtained) }
    }

    #[test]
    fn a_consent_older_than_the_disconnection_does_not_count() {
        let r = judge(at("2026-01-10"), &[yes("2026-01-10", "2026-06-01")]);
        assert_eq!(r.outcome, Verdict::Deny);
        assert!(r.reason.contains("after 2026-01-10, after the consent of 2026-01-10"), "{}", r.reason);
        assert!(r.reason.ends_with("(reassigned-numbers results of 2026-06-01)"), "{}", r.reason);
    }

    #[test]
    fn a_consent_given_after_the_disconnection_counts() {
        let r = judge(at("2026-07-01"), &[yes("2026-01-10", "2026-06-01")]);
        assert_eq!(r.outcome, Verdict::Allow, "{}", r.reason);
        assert!(r.reason.starts_with("the consent of 2026-07-01 came after"), "{}", r.reason);
    }

    #[test]
    fn a_disconnection_that_may_follow_the_consent_denies() {
        // Asked about January, consent in March, results from June.
        let r = judge(at("2026-03-01"), &[yes("2026-01-10", "2026-06-01")]);
        assert_eq!(r.outcome, Verdict::Deny);
        assert!(r.reason.contains("ask the database about 2026-03-01"), "{}", r.reason);
    }

    #[test]
    fn no_and_no_data_allow() {
        let no = QueryResult { asked: day("2026-01-01"), answer: Answer::No, obtained: day("2026-06-01") };
        assert_eq!(judge(at("2026-02-01"), &[no]).outcome, Verdict::Allow);
        let none = QueryResult { asked: day("2026-01-01"), answer: Answer::NoData, obtained: day("2026-06-01") };
        assert_eq!(judge(at("2026-02-01"), &[none]).outcome, Verdict::Allow);
        assert_eq!(judge(at("2026-02-01"), &[]).reason, "no reassigned-numbers result for the number");
    }

    #[test]
    fn lines_parse_or_name_the_column() {
        assert_eq!(
            parse_line("+12025550143, 2026-01-15, YES"),
            Ok(("+12025550143".into(), day("2026-01-15"), Answer::Yes))
        );
        assert_eq!(parse_line("12025550143,2026-01-15,no_data").map(|r| r.0), Ok("+12025550143".into()));
        assert_eq!(parse_line(",2026-01-15,yes"), Err("number"));
        assert_eq!(parse_line("+12025550143,15/01/2026,yes"), Err("date"));
        assert_eq!(parse_line("+12025550143,2026-01-15,maybe"), Err("answer"));
        assert_eq!(parse_line("+12025550143,2026-01-15,yes,extra"), Err("columns"));
        let mut p = ResultsParser::default();
        p.push(b"+12025550143,2026-01-15,yes\n+1202555");
        p.push(b"0144,2026-01-15,no\n\nbad line\n");
        let (rows, rejected) = p.finish();
        assert_eq!((rows.len(), rejected), (2, 1));
    }
}
