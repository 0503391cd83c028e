//! Where and who the callee is, for the rules that depend on it: the zones
//! a call must be inside the window in, and the US states whose laws apply.

use chrono_tz::Tz;
use guardline_phone::Phone;

/// The number's own zones (its area code's, from libphonenumber's
/// metadata) and the lead's explicit zone as well: a call must be inside the
/// window in all of them, as cautious compliance teams require.
pub fn zones(phone: &Phone, lead_zone: &str) -> Vec<Tz> {
    let mut zones = phone.number_time_zones();
    if let Ok(tz) = lead_zone.parse::<Tz>()
        && !zones.contains(&tz)
    {
        zones.push(tz);
    }
    zones
}

/// The callee's US states: the area code's and the address's.
pub fn states(phone: &Phone, address_region: &str) -> Vec<&'static str> {
    if phone.region() != "US" {
        return Vec::new();
    }
    let mut states: Vec<&'static str> = phone.us_state().into_iter().collect();
    if let Some(s) = guardline_phone::metadata::us_state_code(address_region)
        && !states.contains(&s)
    {
        states.push(s);
    }
    states
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::window::{Packs, TenantDays, WindowOutcome};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
    }

    fn phone(n: &str) -> Phone {
        Phone::parse(n, None).expect("valid")
    }

    fn open(packs: &Packs, pack: &str, at: &str, zones: &[Tz]) -> bool {
        let p = packs.get(pack).expect("pack");
        matches!(p.evaluate(utc(at), zones, &TenantDays::default()), WindowOutcome::Open(_))
    }

    #[test]
    fn a_pacific_area_code_is_callable_from_eight_pacific_time() {
        let packs = Packs::load(None).expect("packs");
        let sf = zones(&phone("+14155550100"), "");
        assert_eq!(sf, [Tz::America__Los_Angeles]);
        // 2026-12-02: PST, UTC-8.
        assert!(open(&packs, "us-tcpa", "2026-12-02T16:30:00Z", &sf), "08:30 Pacific");
        assert!(!open(&packs, "us-tcpa", "2026-12-02T15:59:00Z", &sf), "07:59 Pacific");
        // Not held to Hawaii's clock any more: 08:30 Pacific is 06:30 in Honolulu.
        let everywhere = phone("+14155550100").candidate_time_zones().to_vec();
        assert!(!open(&packs, "us-tcpa", "2026-12-02T16:30:00Z", &everywhere));
    }

    #[test]
    fn an_area_code_zone_and_an_address_zone_must_both_be_open() {
        let packs = Packs::load(None).expect("packs");
        let both = zones(&phone("+12125550100"), "America/Los_Angeles");
        assert_eq!(both, [Tz::America__New_York, Tz::America__Los_Angeles]);
        // 13:30 UTC: 08:30 in New York, 05:30 in Los Angeles.
        assert!(!open(&packs, "us-tcpa", "2026-12-02T13:30:00Z", &both));
        // 16:30 UTC: 11:30 and 08:30.
        assert!(open(&packs, "us-tcpa", "2026-12-02T16:30:00Z", &both));
        assert_eq!(zones(&phone("+12125550100"), "America/New_York"), [Tz::America__New_York], "once");
        assert_eq!(zones(&phone("+8613812345678"), ""), [Tz::Asia__Shanghai], "Beijing time, not Urumqi");
    }

    #[test]
    fn states_come_from_the_area_code_and_the_address() {
        assert_eq!(states(&phone("+13055550100"), ""), ["FL"]);
        assert_eq!(states(&phone("+12125550100"), "Oklahoma"), ["NY", "OK"]);
        assert_eq!(states(&phone("+19185550100"), "ok"), ["OK"], "once");
        assert!(states(&phone("+8613812345678"), "FL").is_empty(), "US states are for US numbers");
    }

    #[test]
    fn state_packs_close_at_eight_and_cap_three_calls_on_a_subject() {
        let packs = Packs::load(None).expect("packs");
        let ny = [Tz::America__New_York];
        let ct = [Tz::America__Chicago];
        for (pack, zones) in [("us-fl", &ny), ("us-md", &ny), ("us-ok", &ct)] {
            let p = packs.get(pack).expect("pack");
            assert_eq!(p.max_calls_per_24h, Some(3), "{pack}");
            assert!(!p.description.is_empty(), "{pack} cites its source");
            // 2026-12-02: EST UTC-5, CST UTC-6.
            let (eight, evening) = if pack == "us-ok" {
                ("2026-12-02T14:00:00Z", ["2026-12-03T01:59:00Z", "2026-12-03T02:00:00Z"])
            } else {
                ("2026-12-02T13:00:00Z", ["2026-12-03T00:59:00Z", "2026-12-03T01:00:00Z"])
            };
            assert!(open(&packs, pack, eight, zones), "{pack} 08:00");
            assert!(open(&packs, pack, evening[0], zones), "{pack} 19:59");
            assert!(!open(&packs, pack, evening[1], zones), "{pack} 20:00");
        }
        let by_state = |s| packs.for_state(s).map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            (by_state("FL"), by_state("OK"), by_state("MD")),
            (vec!["us-fl".to_owned()], vec!["us-ok".to_owned()], vec!["us-md".to_owned()])
        );
        assert!(by_state("NY").is_empty());
    }
}
