//! Masking of names and addresses, done in the service, never left to a UI.

/// Whether `c` belongs to a script written without spaces between given and
/// family names (Han, Hiragana, Katakana, Hangul).
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// `张三` → `张*`, `欧阳娜娜` → `欧***`, `John Smith` → `J*** S****`.
pub fn name(full: &str) -> String {
    let full = full.trim();
    if full.chars().next().is_some_and(is_cjk) {
        let mut chars = full.chars().filter(|c| !c.is_whitespace());
        let first = chars.next().map(String::from).unwrap_or_default();
        return format!("{first}{}", "*".repeat(chars.count()));
    }
    full.split_whitespace()
        .map(|w| {
            let mut cs = w.chars();
            let first = cs.next().map(String::from).unwrap_or_default();
            format!("{first}{}", "*".repeat(cs.count()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An address shown at city level: province or state, and city.
pub fn address(province: &str, city: &str) -> String {
    [province.trim(), city.trim()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// What free text (needs, notes) shows when masked.
pub const WITHHELD: &str = "[withheld]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name("张三"), "张*");
        assert_eq!(name("欧阳娜娜"), "欧***");
        assert_eq!(name("John Smith"), "J*** S****");
        assert_eq!(name("  Ana  "), "A**");
        assert_eq!(name(""), "");
    }

    #[test]
    fn addresses_stop_at_the_city() {
        assert_eq!(address("广东省", "深圳市"), "广东省 深圳市");
        assert_eq!(address("CA", "San Francisco"), "CA San Francisco");
        assert_eq!(address("", "Beijing"), "Beijing");
    }
}
