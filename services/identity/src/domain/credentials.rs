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

/// An Argon2id PHC string for `password` (default OWASP parameters, random salt).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| Error::Internal("password hashing failed".into()))
}

/// Whether `password` matches a stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
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
