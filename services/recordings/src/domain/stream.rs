//! Call audio encrypted in fixed-size chunks with AES-256-GCM in a STREAM
//! construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
//! Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance"):
//!
//! - each recording has its own key and a random 8-byte nonce prefix;
//! - chunk `i` is sealed with nonce `prefix || i (u32 BE)`;
//! - the associated data binds tenant, recording, `i` and a last-chunk flag.
//!
//! So a flipped byte, a dropped, duplicated or reordered chunk, a truncated
//! object, or another recording's object all fail to open. The stored object
//! is the concatenation of the sealed chunks.

use std::ops::Range;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use guardline_keys::SecretKey;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// AES-GCM tag bytes per chunk.
pub const TAG: usize = 16;
/// Sealed bytes per full chunk.
pub const SEALED_CHUNK: usize = CHUNK + TAG;

/// Why a recording does not open.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A chunk failed authentication.
    #[error("chunk {0} failed authentication")]
    Chunk(u32),
    /// The object's length does not match the recorded size.
    #[error("the object is {actual} bytes, {expected} expected")]
    Length {
        /// Expected sealed length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// More than 2^32 chunks.
    #[error("recording too large")]
    TooLarge,
    /// The key could not be used.
    #[error("key")]
    Key,
}

/// Which recording a stream belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Recording id.
    pub recording: &'a str,
    /// Per-recording random nonce prefix.
    pub prefix: [u8; 8],
}

impl Binding<'_> {
    fn nonce(&self, i: u32) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.prefix);
        n[8..].copy_from_slice(&i.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    fn aad(&self, i: u32, last: bool) -> Vec<u8> {
        let mut a = b"guardline/recording/v1".to_vec();
        for s in [self.tenant, self.recording] {
            a.extend_from_slice(&(s.len() as u32).to_be_bytes());
            a.extend_from_slice(s.as_bytes());
        }
        a.extend_from_slice(&i.to_be_bytes());
        a.push(u8::from(last));
        a
    }
}

fn key(k: &SecretKey) -> Result<LessSafeKey, StreamError> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k.expose()).map_err(|_| StreamError::Key)?))
}

/// A fresh random nonce prefix.
pub fn new_prefix() -> Result<[u8; 8], StreamError> {
    let mut p = [0u8; 8];
    aws_lc_rs::rand::fill(&mut p).map_err(|_| StreamError::Key)?;
    Ok(p)
}

/// Encrypts a recording as it streams in; keeps one chunk back until it is
/// known whether more follows (the last chunk is sealed differently).
pub struct Encryptor<'a> {
    key: LessSafeKey,
    binding: Binding<'a>,
    next: u32,
    buf: Vec<u8>,
    sha: aws_lc_rs::digest::Context,
    size: u64,
}

impl std::fmt::Debug for Encryptor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor").field("next", &self.next).field("size", &self.size).finish_non_exhaustive()
    }
}

impl<'a> Encryptor<'a> {
    /// Starts a stream under `k`.
    pub fn new(k: &SecretKey, binding: Binding<'a>) -> Result<Self, StreamError> {
        Ok(Self {
            key: key(k)?,
            binding,
            next: 0,
            buf: Vec::with_capacity(2 * CHUNK),
            sha: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            size: 0,
        })
    }

    fn seal(&mut self, mut chunk: Vec<u8>, last: bool) -> Result<Vec<u8>, StreamError> {
        let i = self.next;
        self.next = self.next.checked_add(1).ok_or(StreamError::TooLarge)?;
        self.key
            .seal_in_place_append_tag(self.binding.nonce(i), Aad::from(self.binding.aad(i, last)), &mut chunk)
            .map_err(|_| StreamError::Key)?;
        Ok(chunk)
    }

    /// Adds plaintext; returns the sealed chunks now complete (not the last).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, StreamError> {
        self.sha.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() > CHUNK {
            let rest = self.buf.split_off(CHUNK);
            let chunk = std::mem::replace(&mut self.buf, rest);
            out.push(self.seal(chunk, false)?);
        }
        Ok(out)
    }

    /// Seals the final chunk (possibly empty). Returns it, the plaintext
    /// SHA-256 and the plaintext size.
    pub fn finish(mut self) -> Result<(Vec<u8>, [u8; 32], u64), StreamError> {
        let chunk = std::mem::take(&mut self.buf);
        let last = self.seal(chunk, true)?;
        let mut sha = [0u8; 32];
        sha.copy_from_slice(self.sha.finish().as_ref());
        Ok((last, sha, self.size))
    }
}

/// Chunks of a recording of `size` plaintext bytes (an empty one has one).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64).max(1)
}

/// Sealed length of the object of a recording of `size` bytes.
pub fn sealed_len(size: u64) -> u64 {
    size + chunk_count(size) * TAG as u64
}

/// Byte range, in the object, of sealed chunk `i`.
pub fn sealed_range(size: u64, i: u64) -> Range<u64> {
    let start = i * SEALED_CHUNK as u64;
    let plain = (size - (i * CHUNK as u64).min(size)).min(CHUNK as u64);
    start..start + plain + TAG as u64
}

/// The chunks holding plaintext bytes `[offset, offset + len)`.
pub fn chunks_for(size: u64, offset: u64, len: u64) -> Range<u64> {
    if size == 0 || len == 0 || offset >= size {
        return 0..0;
    }
    let end = (offset + len).min(size);
    offset / CHUNK as u64..end.div_ceil(CHUNK as u64)
}

/// Opens sealed chunk `i` of a recording of `size` bytes.
pub fn open_chunk(k: &SecretKey, b: &Binding<'_>, size: u64, i: u64, sealed: &[u8]) -> Result<Vec<u8>, StreamError> {
    let idx = u32::try_from(i).map_err(|_| StreamError::TooLarge)?;
    let last = i + 1 == chunk_count(size);
    let expected = sealed_range(size, i);
    if sealed.len() as u64 != expected.end - expected.start {
        return Err(StreamError::Chunk(idx));
    }
    let mut buf = sealed.to_vec();
    let n = key(k)?
        .open_in_place(b.nonce(idx), Aad::from(b.aad(idx, last)), &mut buf)
        .map_err(|_| StreamError::Chunk(idx))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// Opens a whole object, checking its length first.
pub fn open_all(k: &SecretKey, b: &Binding<'_>, size: u64, object: &[u8]) -> Result<Vec<u8>, StreamError> {
    let expected = sealed_len(size);
    if object.len() as u64 != expected {
        return Err(StreamError::Length { expected, actual: object.len() as u64 });
    }
    let mut out = Vec::with_capacity(size as usize);
    for i in 0..chunk_count(size) {
        let r = sealed_range(size, i);
        out.extend(open_chunk(k, b, size, i, &object[r.start as usize..r.end as usize])?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
