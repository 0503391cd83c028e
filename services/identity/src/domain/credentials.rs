//! Passwords (Argon2id), TOTP second factors (RFC 6238) and refresh tokens.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use totp_rs::{Algorithm, Totp};

use crate::error::{Error, Result};

/// Checks a new password's strength, naming the field.
pub fn validate_password(field: &str, password: &str) -> Result<()> {
    let len = password.chars().count();
    if !(12..=256).contains(&len) {
        return Err(Error::invalid(field, "must be 12-256 characters"));
    }
    Ok(())
}

/// Argon2id parameters, pinned: OWASP's current recommendation for
/// Argon2id (19 MiB of memory, 2 iterations, 1 lane). A stored hash made
/// with other parameters is rehashed at the next successful login.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ARGON2_T: u32 = 2;
/// Lanes.
pub const ARGON2_P: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or_default();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// An Argon2id PHC string for `password` (the pinned parameters, random salt).
pub fn hash_password(password: &str) -> Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| Error::Internal("password hashing failed".into()))
}

/// Whether `password` matches a stored PHC string (with the parameters the
/// string names).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// Whether a stored hash was made with other than the pinned algorithm and
/// parameters, and so is rehashed at the next successful login.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(h) = PasswordHash::new(stored) else { return true };
    let pinned = argon2::Params::try_from(&h)
        .is_ok_and(|p| p.m_cost() == ARGON2_M_KIB && p.t_cost() == ARGON2_T && p.p_cost() == ARGON2_P);
    h.algorithm.as_str() != "argon2id" || !pinned
}

/// A hash to verify against when the login is unknown, so that an unknown
/// login takes as long as a wrong password (no user enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("guardline-dummy-password").unwrap_or_default())
}

/// 20 random bytes (160 bits, as RFC 4226 recommends) for a TOTP secret.
pub fn new_totp_secret() -> Result<Vec<u8>> {
    let mut s = vec![0u8; 20];
    aws_lc_rs::rand::fill(&mut s).map_err(|_| Error::Internal("random generation failed".into()))?;
    Ok(s)
}

fn totp(secret: &[u8], account: &str) -> Result<Totp> {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret.to_vec())
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some("Guardline"))
        .build()
        .map_err(|_| Error::Internal("totp configuration".into()))
}

/// The `otpauth://` URI for an authenticator app.
pub fn totp_uri(secret: &[u8], account: &str) -> Result<String> {
    totp(secret, account)?.to_url().map_err(|_| Error::Internal("totp uri".into()))
}

/// Checks a code at `unix_time`; returns the matched time step. A step at or
/// below `last_step` is refused: a code is accepted once (RFC 6238 §5.2).
pub fn check_totp(secret: &[u8], code: &str, unix_time: u64, last_step: Option<u64>) -> Option<u64> {
    let step = totp(secret, "x").ok()?.check(code.trim(), unix_time)?;
    match last_step {
        Some(last) if step <= last => None,
        _ => Some(step),
    }
}

/// The code for `unix_time` (tests and the demo's simulated authenticator).
pub fn totp_code(secret: &[u8], unix_time: u64) -> Result<String> {
    Ok(totp(secret, "x")?.generate(unix_time).to_string())
}

/// A fresh opaque refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> Result<(String, String)> {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| Error::Internal("random generation failed".into()))?;
    let token = format!("glr_{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = refresh_token_hash(&token);
    Ok((token, hash))
}

/// How a refresh token is stored: never in clear.
pub fn refresh_token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_use_the_pinned_parameters_and_others_are_rehashed() {
        let h = super::hash_password("a long enough passphrase").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!super::needs_rehash(&h));
        // Weaker parameters, as an older release might have stored.
        let weak = {
            use argon2::PasswordHasher;
            let p = argon2::Params::new(4096, 1, 1, None).expect("params");
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
                .hash_password(b"a long enough passphrase")
                .expect("hash")
                .to_string()
        };
        assert!(super::needs_rehash(&weak));
        assert!(super::verify_password("a long enough passphrase", &weak), "old hashes still verify");
        assert!(super::needs_rehash("not a phc string"));
    }

    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("correct horse battery stapl", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert!(validate_password("password", "short").is_err());
    }

    #[test]
    fn totp_follows_rfc6238_and_refuses_replay() {
        // RFC 6238 appendix B, SHA-1 secret, T = 59 s -> 94287082 (8 digits); we use 6: 287082.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59).expect("code"), "287082");
        let step = check_totp(secret, "287082", 59, None).expect("valid");
        assert_eq!(check_totp(secret, "287082", 59, Some(step)), None, "a code is accepted once");
        assert_eq!(check_totp(secret, "000000", 59, None), None);
        assert!(totp_uri(secret, "alice@t1").expect("uri").starts_with("otpauth://totp/Guardline:alice"));
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, ha) = new_refresh_token().expect("token");
        let (b, _) = new_refresh_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(refresh_token_hash(&a), ha);
        assert!(!ha.contains(&a[4..]));
    }
}
