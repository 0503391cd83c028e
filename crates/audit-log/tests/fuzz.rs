//! Fuzzing of the canonical event encoding (seeded by `PROPTEST_RNG_SEED`,
//! `PROPTEST_CASES` cases; failures are kept in `proptest-regressions/`):
//! encode then decode is the identity, and decode accepts only canonical
//! bytes, without a panic on any input.

use chrono::{DateTime, Utc};
use guardline_audit_log::canonical::Event;
use proptest::prelude::*;

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
}

fn event() -> impl Strategy<Value = Event> {
    let text = || "\\PC{0,40}";
    (
        (text(), text(), time(), text(), text(), text(), text(), text()),
        (text(), text(), text(), text(), text(), text(), text()),
        prop::collection::hash_map("\\PC{0,12}", "\\PC{0,24}", 0..5),
    )
        .prop_map(|(head, rest, details)| {
            let (id, tenant_id, time, actor_user, actor_service, action, resource_type, resource_id) = head;
            let (outcome, reason, source_address, device_id, user_agent, region, trace_id) = rest;
            Event {
                id,
                tenant_id,
                time,
                actor_user,
                actor_service,
                action,
                resource_type,
                resource_id,
                outcome,
                reason,
                source_address,
                device_id,
                user_agent,
                region,
                trace_id,
                details,
            }
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(e in event()) {
        let bytes = e.encode();
        prop_assert_eq!(Event::decode(&bytes), Some(e));
    }

    #[test]
    fn decode_accepts_only_canonical_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| [b"GLA1".as_slice(), &b].concat()),
        ],
    ) {
        if let Some(e) = Event::decode(&bytes) {
            prop_assert_eq!(e.encode(), bytes);
        }
    }

    #[test]
    fn a_changed_byte_of_an_encoding_never_decodes_to_the_same_event(
        e in event(), at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let mut bytes = e.encode();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert_ne!(Event::decode(&bytes), Some(e));
    }
}
