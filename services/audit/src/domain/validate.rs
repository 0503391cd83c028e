//! What an event must look like to be appended. Details carry ids and masked
//! values only: anything that parses as a phone number is refused.

use super::canonical::Event;

/// Why an event was refused, naming the field (never repeating the value).
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path, e.g. `events[3].details.note`.
    pub field: String,
    /// What is wrong.
    pub reason: &'static str,
}

const OUTCOMES: [&str; 3] = ["allowed", "denied", "failed"];

fn looks_like_phone(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    if digits < 7 || value.contains('*') {
        return false;
    }
    // Ids (uuids, hex) are letters and digits run together; a phone number is digits and separators.
    if !value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return false;
    }
    [None, Some(phonenumber::country::Id::CN), Some(phonenumber::country::Id::US)]
        .into_iter()
        .any(|region| phonenumber::parse(region, value).is_ok_and(|n| phonenumber::is_valid(&n)))
}

/// Checks one event of a batch (`index` names it in errors).
pub fn check(index: usize, e: &Event) -> Result<(), Invalid> {
    let field = |f: &str| format!("events[{index}].{f}");
    let required = [("id", &e.id), ("tenant_id", &e.tenant_id), ("action", &e.action)];
    for (name, v) in required {
        if v.is_empty() || v.len() > 128 {
            return Err(Invalid { field: field(name), reason: "required, at most 128 characters" });
        }
    }
    if !OUTCOMES.contains(&e.outcome.as_str()) {
        return Err(Invalid { field: field("outcome"), reason: "must be ALLOWED, DENIED or FAILED" });
    }
    if e.details.len() > 64 {
        return Err(Invalid { field: field("details"), reason: "at most 64 entries" });
    }
    let mut keys: Vec<&String> = e.details.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        let v = &e.details[k];
        // A key is shown only when it is a plain name; any other key is a
        // submitted value and is named by its position instead, so nothing
        // the sender chose reaches the error, the logs or a parked row.
        let plain =
            !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
        let detail = if plain { format!("details.{k}") } else { format!("details[{i}]") };
        if k.len() > 64 || v.len() > 1024 {
            return Err(Invalid { field: field(&detail), reason: "keys at most 64, values at most 1024 characters" });
        }
        if looks_like_phone(v) || looks_like_phone(k) {
            return Err(Invalid {
                field: field(&detail),
                reason: "looks like a phone number; audit details must not hold PII",
            });
        }
    }
    for (name, v) in [("reason", &e.reason), ("resource.id", &e.resource_id)] {
        if looks_like_phone(v) {
            return Err(Invalid {
                field: field(name),
                reason: "looks like a phone number; audit events must not hold PII",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(details: &[(&str, &str)]) -> Event {
        Event {
            id: "e1".into(),
            tenant_id: "t1".into(),
            action: "lead.update".into(),
            outcome: "allowed".into(),
            details: details.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn phone_numbers_in_details_are_refused() {
        for phone in ["13812345678", "+86 138 1234 5678", "(415) 555-2671", "+14155552671"] {
            let err = check(2, &event(&[("note", phone)])).expect_err(phone);
            assert_eq!(err.field, "events[2].details.note");
        }
    }

    #[test]
    fn a_key_that_is_a_value_is_named_by_position_not_repeated() {
        for key in ["13812345678", "+86 138 1234 5678"] {
            let err = check(0, &event(&[(key, "x")])).expect_err(key);
            assert_eq!(err.field, "events[0].details[0]", "{key}");
        }
        // A plain key is kept: it names the field whose value is refused.
        let err = check(0, &event(&[("a_note", "13812345678"), ("Call Me", "x")])).expect_err("value");
        assert_eq!(err.field, "events[0].details.a_note");
    }

    #[test]
    fn ids_counts_and_masked_values_pass() {
        for ok in [
            "138****5678",
            "0190f3c2-7a1b-7c3d-9e8f-0123456789ab",
            "1000",
            "lead-12345678",
            "2026-11-28",
            "name,phones",
        ] {
            check(0, &event(&[("v", ok)])).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        }
    }

    #[test]
    fn required_fields_and_outcome() {
        let mut e = event(&[]);
        e.id.clear();
        assert_eq!(check(0, &e).expect_err("no id").field, "events[0].id");
        let mut e = event(&[]);
        e.outcome = "maybe".into();
        assert_eq!(check(1, &e).expect_err("bad outcome").field, "events[1].outcome");
    }
}
