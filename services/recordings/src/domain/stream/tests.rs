//! Unit tests of the STREAM construction and chunk ranges.

use super::*;

fn b(recording: &str) -> Binding<'_> {
    Binding { tenant: "t1", recording, prefix: [7; 8] }
}

fn audio(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Encrypts `data` pushed in uneven pieces; returns the object and the size.
fn seal(k: &SecretKey, binding: Binding<'_>, data: &[u8]) -> (Vec<u8>, [u8; 32], u64) {
    let mut e = Encryptor::new(k, binding).expect("encryptor");
    let mut object = Vec::new();
    for piece in data.chunks(10_007) {
        for c in e.push(piece).expect("push") {
            object.extend(c);
        }
    }
    let (last, sha, size) = e.finish().expect("finish");
    object.extend(last);
    (object, sha, size)
}

#[test]
fn round_trips_at_chunk_boundaries() {
    let k = SecretKey::generate().expect("key");
    for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5] {
        let data = audio(n);
        let (object, sha, size) = seal(&k, b("r1"), &data);
        assert_eq!(size, n as u64);
        assert_eq!(object.len() as u64, sealed_len(size), "size {n}");
        assert_eq!(open_all(&k, &b("r1"), size, &object).expect("opens"), data, "size {n}");
        assert_eq!(sha.as_slice(), aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data).as_ref());
    }
}

#[test]
fn a_flipped_byte_fails() {
    let k = SecretKey::generate().expect("key");
    let (mut object, _, size) = seal(&k, b("r1"), &audio(2 * CHUNK + 10));
    object[CHUNK + 100] ^= 1;
    assert_eq!(open_all(&k, &b("r1"), size, &object), Err(StreamError::Chunk(1)));
}

#[test]
fn a_dropped_or_reordered_chunk_fails() {
    let k = SecretKey::generate().expect("key");
    let (object, _, size) = seal(&k, b("r1"), &audio(3 * CHUNK + 10));
    let c = |i: usize| object[i * SEALED_CHUNK..((i + 1) * SEALED_CHUNK).min(object.len())].to_vec();
    let dropped = [c(0), c(2), c(3)].concat();
    assert!(open_all(&k, &b("r1"), size, &dropped).is_err(), "a chunk removed");
    // Dropped and the size edited to match: the counter and last flag still catch it.
    assert!(open_all(&k, &b("r1"), size - CHUNK as u64, &dropped).is_err());
    let swapped = [c(1), c(0), c(2), c(3)].concat();
    assert_eq!(open_all(&k, &b("r1"), size, &swapped), Err(StreamError::Chunk(0)));
}

#[test]
fn a_truncated_object_fails_even_at_a_chunk_boundary() {
    let k = SecretKey::generate().expect("key");
    let (object, _, size) = seal(&k, b("r1"), &audio(3 * CHUNK));
    let cut = &object[..2 * SEALED_CHUNK];
    assert!(matches!(open_all(&k, &b("r1"), size, cut), Err(StreamError::Length { .. })));
    // Even with the size rewritten, chunk 1 was not sealed as the last one.
    assert_eq!(open_all(&k, &b("r1"), 2 * CHUNK as u64, cut), Err(StreamError::Chunk(1)));
}

#[test]
fn another_recordings_object_fails() {
    let k1 = SecretKey::generate().expect("key");
    let k2 = SecretKey::generate().expect("key");
    let (o1, _, s1) = seal(&k1, b("r1"), &audio(1000));
    let (o2, _, _) = seal(&k2, b("r2"), &audio(1000));
    assert!(open_all(&k1, &b("r1"), s1, &o2).is_err(), "other key");
    assert!(open_all(&k1, &b("r2"), s1, &o1).is_err(), "same key, other recording id");
}

#[test]
fn ranges_map_to_chunks() {
    let size = 3 * CHUNK as u64 + 10;
    assert_eq!(chunks_for(size, 0, 1), 0..1);
    assert_eq!(chunks_for(size, CHUNK as u64 - 1, 2), 0..2);
    assert_eq!(chunks_for(size, 3 * CHUNK as u64, 100), 3..4);
    assert_eq!(chunks_for(size, size, 5), 0..0);
    assert_eq!(sealed_range(size, 3), 3 * SEALED_CHUNK as u64..3 * SEALED_CHUNK as u64 + 10 + TAG as u64);
    let k = SecretKey::generate().expect("key");
    let data = audio(size as usize);
    let (object, _, _) = seal(&k, b("r1"), &data);
    let r = sealed_range(size, 2);
    let plain = open_chunk(&k, &b("r1"), size, 2, &object[r.start as usize..r.end as usize]).expect("chunk");
    assert_eq!(plain, &data[2 * CHUNK..3 * CHUNK]);
}
