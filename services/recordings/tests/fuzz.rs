//! Fuzzing of the recording stream framing (seeded by `PROPTEST_RNG_SEED`,
//! `PROPTEST_CASES` cases; failures kept in `proptest-regressions/`): audio
//! sealed in pieces of any sizes opens to itself, whole or chunk by chunk;
//! a changed byte or a wrong size never opens; arbitrary bytes never panic.

use guardline_keys::SecretKey;
use guardline_recordings::domain::stream::{Binding, Encryptor, chunk_count, open_all, open_chunk, sealed_range};
use proptest::prelude::*;

fn seal(k: &SecretKey, b: Binding<'_>, audio: &[u8], cuts: &[usize]) -> (Vec<u8>, u64) {
    let mut enc = Encryptor::new(k, b).expect("encryptor");
    let mut object = Vec::new();
    let mut rest = audio;
    for c in cuts {
        let (piece, after) = rest.split_at((*c).min(rest.len()));
        for sealed in enc.push(piece).expect("push") {
            object.extend(sealed);
        }
        rest = after;
    }
    for sealed in enc.push(rest).expect("push") {
        object.extend(sealed);
    }
    let (last, _sha, size) = enc.finish().expect("finish");
    object.extend(last);
    (object, size)
}

fn binding() -> Binding<'static> {
    Binding { tenant: "t1", recording: "rec-1", prefix: [7; 8] }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.min(64), ..ProptestConfig::default() })]

    #[test]
    fn sealed_audio_opens_to_itself(audio in prop::collection::vec(any::<u8>(), 0..200_000), cuts in prop::collection::vec(0usize..70_000, 0..6)) {
        let k = SecretKey::generate().expect("key");
        let (object, size) = seal(&k, binding(), &audio, &cuts);
        prop_assert_eq!(size, audio.len() as u64);
        prop_assert_eq!(open_all(&k, &binding(), size, &object).expect("opens"), audio.clone());
        let mut joined = Vec::new();
        for i in 0..chunk_count(size) {
            let r = sealed_range(size, i);
            joined.extend(open_chunk(&k, &binding(), size, i, &object[r.start as usize..r.end as usize]).expect("chunk"));
        }
        prop_assert_eq!(joined, audio);
    }

    #[test]
    fn a_changed_byte_or_size_never_opens(audio in prop::collection::vec(any::<u8>(), 1..150_000), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let k = SecretKey::generate().expect("key");
        let (mut object, size) = seal(&k, binding(), &audio, &[]);
        prop_assert!(open_all(&k, &binding(), size + 1, &object).is_err());
        prop_assert!(open_all(&k, &binding(), size.saturating_sub(1), &object).is_err());
        let other = Binding { recording: "rec-2", ..binding() };
        prop_assert!(open_all(&k, &other, size, &object).is_err(), "bound to its recording");
        let i = at.index(object.len());
        object[i] ^= flip;
        prop_assert!(open_all(&k, &binding(), size, &object).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_open(object in prop::collection::vec(any::<u8>(), 0..5_000), size in 0u64..10_000, i in 0u64..4) {
        let k = SecretKey::generate().expect("key");
        prop_assert!(open_all(&k, &binding(), size, &object).is_err() || size == 0);
        let _ = open_chunk(&k, &binding(), size, i, &object);
    }
}
