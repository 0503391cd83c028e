//! Fuzzing of phone-number parsing (seeded by `PROPTEST_RNG_SEED`,
//! `PROPTEST_CASES` cases; failures kept in `proptest-regressions/`): any
//! input parses or is refused without a panic, and what parses is in E.164
//! and parses again to itself.

use guardline_phone::Phone;
use proptest::prelude::*;

fn region() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), Just(Some("CN".into())), Just(Some("US".into())), "[A-Za-z]{0,3}".prop_map(Some)]
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        "[+]?[0-9 ()./-]{0,24}",
        ("[+]?[0-9]{1,3}", "[0-9]{4,14}").prop_map(|(c, n)| format!("{c}{n}")),
    ]
}

proptest! {
    #[test]
    fn parses_or_refuses_and_what_parses_is_e164(s in input(), r in region()) {
        if let Ok(p) = Phone::parse(&s, r.as_deref()) {
            let digits = p.e164().strip_prefix('+').expect("a leading +");
            prop_assert!(!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()));
            let again = Phone::parse(p.e164(), None).expect("its own E.164 parses");
            prop_assert_eq!(again.e164(), p.e164());
        }
    }
}
