//! libphonenumber's per-prefix metadata, generated into tables committed
//! under `data/` (`data/generate.py`; the build needs no Python): the IANA
//! zones of an E.164 prefix (a US area code's zone, for instance), and the
//! US state an area code serves.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono_tz::Tz;

static TIMEZONES_TSV: &str = include_str!("../data/timezones.tsv");
static US_STATES_TSV: &str = include_str!("../data/us_states.tsv");

/// The longest prefix in the timezone table.
const LONGEST_PREFIX: usize = 9;

fn rows(tsv: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).filter_map(|l| l.split_once('\t'))
}

static ZONES: LazyLock<HashMap<&'static str, Vec<Tz>>> = LazyLock::new(|| {
    rows(TIMEZONES_TSV)
        .map(|(prefix, zones)| {
            // A zone chrono-tz does not know (older or newer tzdata) is
            // skipped rather than guessed.
            (prefix, zones.split(',').filter_map(|z| z.parse::<Tz>().ok()).collect::<Vec<_>>())
        })
        .filter(|(_, zones)| !zones.is_empty())
        .collect()
});

static STATES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| rows(US_STATES_TSV).collect());

/// The zones of the longest prefix of `digits` (an E.164 number without its
/// `+`) that the table knows; empty when none is known.
pub fn zones_of_digits(digits: &str) -> &'static [Tz] {
    (1..=digits.len().min(LONGEST_PREFIX))
        .rev()
        .find_map(|n| ZONES.get(&digits[..n]))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The two-letter code of the US state (or `DC`) served by area code `npa`.
pub fn us_state_of_area_code(npa: &str) -> Option<&'static str> {
    STATES.get(npa).copied()
}

/// US states and DC: name and USPS code.
const US_STATES: [(&str, &str); 51] = [
    ("Alabama", "AL"),
    ("Alaska", "AK"),
    ("Arizona", "AZ"),
    ("Arkansas", "AR"),
    ("California", "CA"),
    ("Colorado", "CO"),
    ("Connecticut", "CT"),
    ("Delaware", "DE"),
    ("District of Columbia", "DC"),
    ("Florida", "FL"),
    ("Georgia", "GA"),
    ("Hawaii", "HI"),
    ("Idaho", "ID"),
    ("Illinois", "IL"),
    ("Indiana", "IN"),
    ("Iowa", "IA"),
    ("Kansas", "KS"),
    ("Kentucky", "KY"),
    ("Louisiana", "LA"),
    ("Maine", "ME"),
    ("Maryland", "MD"),
    ("Massachusetts", "MA"),
    ("Michigan", "MI"),
    ("Minnesota", "MN"),
    ("Mississippi", "MS"),
    ("Missouri", "MO"),
    ("Montana", "MT"),
    ("Nebraska", "NE"),
    ("Nevada", "NV"),
    ("New Hampshire", "NH"),
    ("New Jersey", "NJ"),
    ("New Mexico", "NM"),
    ("New York", "NY"),
    ("North Carolina", "NC"),
    ("North Dakota", "ND"),
    ("Ohio", "OH"),
    ("Oklahoma", "OK"),
    ("Oregon", "OR"),
    ("Pennsylvania", "PA"),
    ("Rhode Island", "RI"),
    ("South Carolina", "SC"),
    ("South Dakota", "SD"),
    ("Tennessee", "TN"),
    ("Texas", "TX"),
    ("Utah", "UT"),
    ("Vermont", "VT"),
    ("Virginia", "VA"),
    ("Washington", "WA"),
    ("West Virginia", "WV"),
    ("Wisconsin", "WI"),
    ("Wyoming", "WY"),
];

/// The USPS code of a US state written as a code or a name, in any case
/// (`FL`, `fl`, `Florida`), as an address's state field holds it.
pub fn us_state_code(written: &str) -> Option<&'static str> {
    let w = written.trim();
    US_STATES.iter().find(|(name, code)| name.eq_ignore_ascii_case(w) || code.eq_ignore_ascii_case(w)).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_codes_have_their_zones_and_states() {
        assert_eq!(zones_of_digits("14155552671"), [Tz::America__Los_Angeles]);
        assert_eq!(zones_of_digits("12125550100"), [Tz::America__New_York]);
        assert_eq!(zones_of_digits("18085550100"), [Tz::Pacific__Honolulu]);
        assert_eq!(zones_of_digits("8613812345678"), [Tz::Asia__Shanghai]);
        assert!(zones_of_digits("").is_empty());
        assert_eq!(us_state_of_area_code("305"), Some("FL"));
        assert_eq!(us_state_of_area_code("918"), Some("OK"));
        assert_eq!(us_state_of_area_code("410"), Some("MD"));
        assert_eq!(us_state_of_area_code("212"), Some("NY"), "named by its city");
        assert_eq!(us_state_of_area_code("416"), None, "Toronto is not a US state");
        assert_eq!(us_state_code(" florida "), Some("FL"));
        assert_eq!(us_state_code("md"), Some("MD"));
        assert_eq!(us_state_code("广东省"), None);
    }

    /// The committed tables are what the generator writes from
    /// libphonenumber's metadata (the `phonenumbers` package that
    /// `scripts/test-deps.sh` installs).
    #[test]
    fn the_committed_tables_are_regenerated_exactly() {
        let out = std::env::temp_dir().join(format!("guardline-phone-{}", std::process::id()));
        std::fs::create_dir_all(&out).expect("dir");
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        let run = std::process::Command::new("python3").arg(data.join("generate.py")).arg(&out).output();
        let run = run.expect("python3");
        assert!(run.status.success(), "generate.py: {}", String::from_utf8_lossy(&run.stderr));
        for table in ["timezones.tsv", "us_states.tsv"] {
            let fresh = std::fs::read_to_string(out.join(table)).expect("generated");
            let committed = std::fs::read_to_string(data.join(table)).expect("committed");
            assert!(fresh == committed, "data/{table} differs from what generate.py writes: regenerate it");
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}
