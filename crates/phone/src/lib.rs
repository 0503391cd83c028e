//! Phone numbers: parsed and normalised to E.164 with libphonenumber's rules
//! (the `phonenumber` crate), masked for display, indexed blindly for exact
//! lookup, and placed in the time zones their country uses.
//!
//! Shared by lead-vault (which stores numbers) and dialer-policy (which
//! decides on them), so both agree on what a number and its local time are.

pub mod metadata;

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono_tz::Tz;
use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber};

/// A valid phone number in E.164 with its national digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone {
    e164: String,
    country_code: u16,
    national: String,
    region: String,
}

impl std::fmt::Debug for Phone {
    // A phone number is PII: never formatted by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Phone(..)")
    }
}

/// Why a number was refused (never repeating it).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The default region is not an ISO 3166 code.
    #[error("unknown region code")]
    Region,
    /// Not a phone number, or not a valid one.
    #[error("not a valid phone number")]
    Invalid,
}

impl Phone {
    /// Parses `input` (E.164, or national in `default_region` such as `CN`, `US`).
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let region = match default_region.filter(|r| !r.is_empty()) {
            Some(r) => Some(r.to_ascii_uppercase().parse::<Id>().map_err(|_| PhoneError::Region)?),
            None => None,
        };
        let n: PhoneNumber = phonenumber::parse(region, input.trim()).map_err(|_| PhoneError::Invalid)?;
        if !phonenumber::is_valid(&n) {
            return Err(PhoneError::Invalid);
        }
        let national = n.national().to_string();
        let region = n.country().id().map(|id| id.as_ref().to_owned()).unwrap_or_default();
        Ok(Self { e164: n.format().mode(Mode::E164).to_string(), country_code: n.code().value(), national, region })
    }

    /// The ISO 3166 region the number belongs to (`CN`, `US`), from its
    /// country code and national prefix; empty for non-geographic numbers.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The time zones the number's country uses (IANA `zone.tab`), empty
    /// for non-geographic numbers. A caller that does not know the callee's
    /// zone must respect a calling window in every one of them.
    pub fn candidate_time_zones(&self) -> &'static [Tz] {
        zones_of_region(&self.region)
    }

    /// The zones the number itself is in: its prefix's zones in
    /// libphonenumber's metadata (a US area code's zone), else the one
    /// legal time of its country, else every zone of its country. A number
    /// of a country that keeps one legal time (China) is in that time only,
    /// whatever the metadata lists.
    pub fn number_time_zones(&self) -> Vec<Tz> {
        if let Some(tz) = NATIONAL_TIME.iter().find(|(r, _)| *r == self.region).map(|(_, tz)| *tz) {
            return vec![tz];
        }
        match metadata::zones_of_digits(self.e164.trim_start_matches('+')) {
            [] => self.derived_time_zone().map_or_else(|| self.candidate_time_zones().to_vec(), |tz| vec![tz]),
            zones => zones.to_vec(),
        }
    }

    /// The US state (or `DC`) the number's area code serves, for a US number.
    pub fn us_state(&self) -> Option<&'static str> {
        if self.region != "US" {
            return None;
        }
        self.national.get(..3).and_then(metadata::us_state_of_area_code)
    }

    /// The callee's time zone when the number alone determines it: the
    /// country uses one zone, or keeps one legal national time although the
    /// tz database lists several (China: Beijing time). `None` for countries
    /// such as the US whose zone depends on more than the country.
    pub fn derived_time_zone(&self) -> Option<Tz> {
        derived_zone_of_region(&self.region)
    }

    /// `+<country><national>`.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// Masked for display: the country code, the first three and the last
    /// four national digits, e.g. `+86 138****5678`, `+1 415***2671`.
    pub fn masked(&self) -> String {
        let d: Vec<char> = self.national.chars().collect();
        let body = if d.len() >= 8 {
            let head: String = d[..3].iter().collect();
            let tail: String = d[d.len() - 4..].iter().collect();
            format!("{head}{}{tail}", "*".repeat(d.len() - 7))
        } else {
            let keep = d.len().saturating_sub(2);
            let tail: String = d[keep..].iter().collect();
            format!("{}{tail}", "*".repeat(keep))
        };
        format!("+{} {body}", self.country_code)
    }

    /// The keyed blind index of the number: HMAC-SHA256 under the tenant's
    /// index key, so equal numbers are found without storing them in clear.
    pub fn blind_index(&self, index_key: &[u8]) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, index_key);
        let tag = aws_lc_rs::hmac::sign(&key, format!("guardline/phone/v1:{}", self.e164).as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// Countries whose law keeps one national time although `zone.tab` lists
/// several zones for them. Legal fact, not geography: calling hours in China
/// are in Beijing time everywhere.
const NATIONAL_TIME: &[(&str, Tz)] = &[("CN", Tz::Asia__Shanghai)];

/// The IANA tz database's `zone.tab` (public domain): country → zones.
static ZONE_TAB: &str = include_str!("../data/zone.tab");

static ZONES: LazyLock<HashMap<&'static str, Vec<Tz>>> = LazyLock::new(|| {
    let mut map: HashMap<&'static str, Vec<Tz>> = HashMap::new();
    for line in ZONE_TAB.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(country), Some(_coords), Some(zone)) = (cols.next(), cols.next(), cols.next()) else { continue };
        // A zone chrono-tz does not know (older or newer tzdata) is skipped
        // rather than guessed.
        if let Ok(tz) = zone.parse::<Tz>() {
            map.entry(country).or_default().push(tz);
        }
    }
    map
});

/// The zones a country (ISO 3166 code) uses; empty when unknown.
pub fn zones_of_region(region: &str) -> &'static [Tz] {
    ZONES.get(region).map(Vec::as_slice).unwrap_or_default()
}

/// The single time zone of a country, if it has one (see
/// [`Phone::derived_time_zone`]).
pub fn derived_zone_of_region(region: &str) -> Option<Tz> {
    if let Some((_, tz)) = NATIONAL_TIME.iter().find(|(r, _)| *r == region) {
        return Some(*tz);
    }
    match zones_of_region(region) {
        [only] => Some(*only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_and_us_numbers_normalise_to_e164() {
        let cn = Phone::parse("138 1234 5678", Some("CN")).expect("valid");
        assert_eq!(cn.e164(), "+8613812345678");
        assert_eq!(Phone::parse("+86 138-1234-5678", None).expect("valid"), cn, "same number, other spelling");
        let us = Phone::parse("(415) 555-2671", Some("us")).expect("valid");
        assert_eq!(us.e164(), "+14155552671");
    }

    #[test]
    fn the_region_comes_from_the_number_not_the_default() {
        let us = Phone::parse("+1 202 555 0143", Some("CN")).expect("valid");
        assert_eq!(us.region(), "US");
        assert_eq!(Phone::parse("138 1234 5678", Some("CN")).expect("valid").region(), "CN");
        assert_eq!(Phone::parse("+44 20 7946 0958", Some("US")).expect("valid").region(), "GB");
        assert_eq!(Phone::parse("+1 416 555 0123", None).expect("valid").region(), "CA", "by national prefix");
    }

    #[test]
    fn invalid_input_is_refused_without_echo() {
        assert_eq!(Phone::parse("12345", Some("CN")), Err(PhoneError::Invalid));
        assert_eq!(Phone::parse("call me", Some("US")), Err(PhoneError::Invalid));
        assert_eq!(Phone::parse("13812345678", Some("ZZ")), Err(PhoneError::Region));
        assert_eq!(Phone::parse("13812345678", None), Err(PhoneError::Invalid), "national without a region");
        assert_eq!(format!("{:?}", Phone::parse("+8613812345678", None).expect("valid")), "Phone(..)");
    }

    #[test]
    fn masks_keep_the_first_three_and_last_four_national_digits() {
        assert_eq!(Phone::parse("+8613812345678", None).expect("valid").masked(), "+86 138****5678");
        assert_eq!(Phone::parse("+14155552671", None).expect("valid").masked(), "+1 415***2671");
    }

    #[test]
    fn blind_indexes_match_equal_numbers_only_under_one_key() {
        let a = Phone::parse("138 1234 5678", Some("CN")).expect("valid");
        let b = Phone::parse("+8613812345678", None).expect("valid");
        let c = Phone::parse("+8613812345679", None).expect("valid");
        assert_eq!(a.blind_index(b"tenant-1"), b.blind_index(b"tenant-1"));
        assert_ne!(a.blind_index(b"tenant-1"), c.blind_index(b"tenant-1"));
        assert_ne!(a.blind_index(b"tenant-1"), a.blind_index(b"tenant-2"), "another tenant's index differs");
    }

    #[test]
    fn time_zones_come_from_the_country_and_stay_unknown_when_ambiguous() {
        let cn = Phone::parse("+8613812345678", None).expect("valid");
        assert_eq!(cn.derived_time_zone(), Some(Tz::Asia__Shanghai), "one legal time in China");
        let gb = Phone::parse("+44 20 7946 0958", None).expect("valid");
        assert_eq!(gb.derived_time_zone(), Some(Tz::Europe__London));
        let us = Phone::parse("+1 202 555 0143", None).expect("valid");
        assert_eq!(us.derived_time_zone(), None, "the US has many zones");
        let zones = us.candidate_time_zones();
        assert!(zones.contains(&Tz::America__New_York) && zones.contains(&Tz::Pacific__Honolulu), "{zones:?}");
        assert!(!zones.contains(&Tz::Europe__London));
        assert_eq!(zones_of_region(""), &[] as &[Tz], "non-geographic");
        assert_eq!(derived_zone_of_region("ZZ"), None);
    }
}
