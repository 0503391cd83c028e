//! Fuzzing of dialer-policy's parsers (seeded by `PROPTEST_RNG_SEED`,
//! `PROPTEST_CASES` cases; failures kept in `proptest-regressions/`): the
//! FTC and E.164 registry lines, jurisdiction packs, reassigned-number
//! answers and calendars parse or are refused without a panic, and what
//! they accept is what was meant.

use guardline_dialer_policy::domain::numbers::{e164_key, parse_registry_line};
use guardline_dialer_policy::domain::reassigned::parse_line;
use guardline_dialer_policy::domain::window::Pack;
use proptest::prelude::*;

const PACKS: [&str; 3] =
    [include_str!("../packs/us-tcpa.json"), include_str!("../packs/cn.json"), include_str!("../packs/us-fl.json")];

proptest! {
    #[test]
    fn registry_lines_parse_or_are_refused(line in "\\PC{0,40}", ftc in any::<bool>()) {
        if let Some(k) = parse_registry_line(&line, ftc) {
            prop_assert!(k > 0 && k < 1_000_000_000_000_000, "an E.164 key: at most 15 digits");
        }
    }

    #[test]
    fn an_ftc_line_is_its_number(area in 200u64..1000, exchange in 200u64..1000, line in 0u64..10_000, quoted in any::<bool>()) {
        let q = if quoted { "\"" } else { "" };
        let text = format!("{q}{area}{q},{q}{exchange}{line:04}{q}\n");
        let want = 10_000_000_000 + area * 10_000_000 + exchange * 10_000 + line;
        prop_assert_eq!(parse_registry_line(&text, true), Some(want));
        prop_assert_eq!(e164_key(&format!("+1{area}{exchange}{line:04}")), Some(want));
    }

    #[test]
    fn packs_parse_or_are_refused(pick in 0usize..3, at in any::<prop::sample::Index>(), with in "\\PC{0,3}", junk in "\\PC{0,200}") {
        let _ = Pack::parse(&junk);
        // A real pack with a piece of it replaced.
        let pack = PACKS[pick];
        let i = at.index(pack.len());
        let cut = (0..=i).rev().find(|j| pack.is_char_boundary(*j)).unwrap_or(0);
        let mutated = format!("{}{with}{}", &pack[..cut], &pack[cut..].chars().skip(1).collect::<String>());
        if let Ok(p) = Pack::parse(&mutated) {
            prop_assert!(!p.name.is_empty());
        }
        prop_assert!(Pack::parse(pack).is_ok(), "the shipped pack parses");
    }

    #[test]
    fn reassigned_answers_parse_or_are_refused(line in "\\PC{0,60}", fields in prop::collection::vec("[0-9A-Za-z+-]{0,12}", 0..5)) {
        let _ = parse_line(&line);
        if let Ok((number, _, _)) = parse_line(&fields.join(",")) {
            prop_assert!(!number.is_empty());
        }
    }
}
