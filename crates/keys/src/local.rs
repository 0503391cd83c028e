//! The local keyring, Guardline's embedded default: versioned tenant keys in
//! one JSON file, each sealed by a master key (from a file or an environment
//! variable). Same operations and semantics as Vault transit, rotation
//! and min_decryption_version included.
//!
//! Wrapped data keys look like Vault's: `gl:v<N>:<base64(nonce || ct)>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::aead::{self, Binding};
use crate::error::{Error, Result};
use crate::provider::{KeyProvider, KeyVersions, SecretKey, WrappedKey, check_tenant};

#[derive(Default, Serialize, Deserialize)]
struct TenantEntry {
    min_decryption_version: u64,
    /// version -> base64(sealed tenant key)
    versions: BTreeMap<u64, String>,
}

#[derive(Default, Serialize, Deserialize)]
struct KeyringFile {
    format: u32,
    tenants: BTreeMap<String, TenantEntry>,
    /// HMAC-SHA256 (base64) of the file without this field, under a key
    /// derived from the master key: the tenant list and every
    /// `min_decryption_version` are authenticated, not only the sealed keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// The format written: 2 carries `mac`. Format 1 (no MAC) is read once and
/// rewritten as 2 when the keyring opens.
const FORMAT: u32 = 2;

/// The key that MACs the file, derived from the master key (HKDF-SHA256),
/// so that it seals nothing and opens nothing.
fn file_mac_key(master: &SecretKey) -> aws_lc_rs::hmac::Key {
    use aws_lc_rs::{hkdf, hmac};
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"guardline/keyring-file/v1").extract(master.expose());
    match prk.expand(&[b"mac"], hmac::HMAC_SHA256) {
        Ok(okm) => okm.into(),
        // The output length is the hash's own: expand cannot fail.
        Err(_) => hmac::Key::new(hmac::HMAC_SHA256, master.expose()),
    }
}

impl KeyringFile {
    /// The MAC of the file's content (everything but `mac`).
    fn mac_under(&self, key: &aws_lc_rs::hmac::Key) -> Result<Vec<u8>> {
        let content = serde_json::to_vec(&(self.format, &self.tenants)).map_err(|e| Error::Storage(e.to_string()))?;
        Ok(aws_lc_rs::hmac::sign(key, &content).as_ref().to_vec())
    }

    /// Whether the file is as this keyring last wrote it.
    fn authentic(&self, key: &aws_lc_rs::hmac::Key) -> Result<bool> {
        let Some(mac) = self.mac.as_deref().and_then(|m| B64.decode(m).ok()) else { return Ok(false) };
        Ok(aws_lc_rs::constant_time::verify_slices_are_equal(&self.mac_under(key)?, &mac).is_ok())
    }
}

/// Versioned tenant keys on disk, sealed by a master key. Several processes
/// may share the file (lead-vault and recordings under `guardline up`):
/// changes are made under an exclusive lock on `<file>.lock` after re-reading
/// the file, and every operation first picks up changes made by others.
pub struct LocalKeyring {
    path: PathBuf,
    master: SecretKey,
    file_key: aws_lc_rs::hmac::Key,
    state: Mutex<Loaded>,
}

struct Loaded {
    file: KeyringFile,
    /// Modification time and length of the file when it was read.
    seen: Option<(std::time::SystemTime, u64)>,
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
}

/// Reads the file and checks its MAC: a file of format 2 that does not
/// authenticate (edited, or sealed by another master key) is refused.
fn read_file(path: &Path, key: &aws_lc_rs::hmac::Key) -> Result<Loaded> {
    if !path.exists() {
        return Ok(Loaded { file: KeyringFile { format: FORMAT, ..Default::default() }, seen: None });
    }
    let seen = stamp(path);
    let bytes = std::fs::read(path).map_err(|e| Error::Storage(e.to_string()))?;
    let file: KeyringFile =
        serde_json::from_slice(&bytes).map_err(|e| Error::Storage(format!("keyring file is corrupt: {e}")))?;
    if file.format >= FORMAT && !file.authentic(key)? {
        return Err(Error::Crypto(
            "the keyring file does not authenticate: it was changed outside Guardline, or it is sealed by another master key"
                .into(),
        ));
    }
    Ok(Loaded { file, seen })
}

impl std::fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyring").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Reads a base64 master key (32 bytes) from `file`, creating it with a
/// fresh key (mode 0600) when `create` is set and it does not exist.
pub fn master_key_from_file(file: &Path, create: bool) -> Result<SecretKey> {
    if !file.exists() && create {
        let key = SecretKey::generate()?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Storage(e.to_string()))?;
        }
        write_atomic(file, B64.encode(key.expose()).as_bytes())?;
        return Ok(key);
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Config { field: "--master-key-file", reason: format!("cannot read: {e}") })?;
    master_key_from_base64(text.trim())
}

/// Parses a base64 master key (32 bytes).
pub fn master_key_from_base64(text: &str) -> Result<SecretKey> {
    let bytes = zeroize::Zeroizing::new(
        B64.decode(text.trim()).map_err(|_| Error::Config { field: "--master-key", reason: "not base64".into() })?,
    );
    SecretKey::from_slice(&bytes)
        .map_err(|_| Error::Config { field: "--master-key", reason: "must decode to 32 bytes".into() })
}

/// Writes `bytes` to a fresh temporary file beside `path` (created 0600 by
/// `tempfile`, whatever a stale file left behind), syncs it, renames it
/// into place and syncs the directory, so the new name survives a crash.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::Storage(e.to_string()))?;
    tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(|e| Error::Storage(e.to_string()))?;
    tmp.persist(path).map_err(|e| Error::Storage(e.error.to_string()))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::Storage(e.to_string()))?;
    Ok(())
}

fn tenant_binding<'a>(tenant: &'a str, version: u64) -> Binding<'a> {
    Binding { kind: "keyring", tenant, record: "", field: "", version }
}

fn data_key_binding(tenant: &str, version: u64) -> Binding<'_> {
    Binding { kind: "data-key", tenant, record: "", field: "", version }
}

impl LocalKeyring {
    /// Opens (or creates) the keyring file at `path`, sealed by `master`.
    /// A wrong master key is detected when a tenant key is first used.
    pub fn open(path: &Path, master: SecretKey) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Storage(e.to_string()))?;
        }
        let file_key = file_mac_key(&master);
        let state = read_file(path, &file_key)?;
        let legacy = state.seen.is_some() && state.file.format < FORMAT;
        let keyring = Self { path: path.to_owned(), master, file_key, state: Mutex::new(state) };
        if legacy {
            keyring.upgrade()?;
        }
        Ok(keyring)
    }

    /// Rewrites a format-1 file (no MAC) as format 2, after checking that
    /// the master key opens what it seals.
    fn upgrade(&self) -> Result<()> {
        let mut state = self.state.try_lock().map_err(|_| Error::Storage("keyring busy".into()))?;
        for (tenant, entry) in &state.file.tenants {
            if let Some(v) = entry.versions.keys().next_back() {
                self.tenant_key(entry, tenant, *v)?;
            }
        }
        let lock = self.lock_file()?;
        state.file = read_file(&self.path, &self.file_key)?.file;
        self.persist(&mut state)?;
        drop(lock);
        tracing::warn!(path = %self.path.display(), "keyring file upgraded to format 2 (authenticated)");
        Ok(())
    }

    fn lock_file(&self) -> Result<std::fs::File> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))
            .map_err(|e| Error::Storage(e.to_string()))?;
        lock.lock().map_err(|e| Error::Storage(format!("locking the keyring: {e}")))?;
        Ok(lock)
    }

    /// Writes the state with its MAC.
    fn persist(&self, state: &mut Loaded) -> Result<()> {
        state.file.format = FORMAT;
        state.file.mac = None;
        state.file.mac = Some(B64.encode(state.file.mac_under(&self.file_key)?));
        let json = serde_json::to_vec_pretty(&state.file).map_err(|e| Error::Storage(e.to_string()))?;
        write_atomic(&self.path, &json)?;
        state.seen = stamp(&self.path);
        Ok(())
    }

    /// The state as on disk now (re-read only if the file changed).
    async fn current(&self) -> Result<tokio::sync::MutexGuard<'_, Loaded>> {
        let mut state = self.state.lock().await;
        if stamp(&self.path) != state.seen {
            *state = read_file(&self.path, &self.file_key)?;
        }
        Ok(state)
    }

    /// Applies `change` to the freshest state under the cross-process lock and persists it.
    async fn modify<T>(&self, change: impl FnOnce(&Self, &mut KeyringFile) -> Result<T>) -> Result<T> {
        let mut state = self.state.lock().await;
        let lock = self.lock_file()?;
        *state = read_file(&self.path, &self.file_key)?;
        let out = change(self, &mut state.file)?;
        self.persist(&mut state)?;
        drop(lock);
        Ok(out)
    }

    fn tenant_key(&self, entry: &TenantEntry, tenant: &str, version: u64) -> Result<SecretKey> {
        let sealed = entry.versions.get(&version).ok_or(Error::Decrypt)?;
        let sealed = B64.decode(sealed).map_err(|_| Error::Storage("keyring entry is not base64".into()))?;
        let clear = aead::open(&self.master, &tenant_binding(tenant, version), &sealed)
            .map_err(|_| Error::Crypto("keyring entry does not open with this master key".into()))?;
        SecretKey::from_slice(&clear)
    }

    fn add_version(&self, entry: &mut TenantEntry, tenant: &str) -> Result<u64> {
        let version = entry.versions.keys().next_back().copied().unwrap_or(0) + 1;
        let key = SecretKey::generate()?;
        let sealed = aead::seal(&self.master, &tenant_binding(tenant, version), key.expose())?;
        entry.versions.insert(version, B64.encode(sealed));
        if entry.min_decryption_version == 0 {
            entry.min_decryption_version = 1;
        }
        Ok(version)
    }

    fn parse_wrapped(wrapped: &WrappedKey) -> Result<(u64, Vec<u8>)> {
        let rest = wrapped.0.strip_prefix("gl:v").ok_or(Error::Decrypt)?;
        let (v, b64) = rest.split_once(':').ok_or(Error::Decrypt)?;
        Ok((v.parse().map_err(|_| Error::Decrypt)?, B64.decode(b64).map_err(|_| Error::Decrypt)?))
    }

    fn wrap_with(&self, entry: &TenantEntry, tenant: &str, key: &SecretKey) -> Result<WrappedKey> {
        let latest = *entry.versions.keys().next_back().ok_or(Error::UnknownTenant)?;
        let tk = self.tenant_key(entry, tenant, latest)?;
        let sealed = aead::seal(&tk, &data_key_binding(tenant, latest), key.expose())?;
        Ok(WrappedKey(format!("gl:v{latest}:{}", B64.encode(sealed))))
    }

    fn unwrap_with(&self, entry: &TenantEntry, tenant: &str, wrapped: &WrappedKey) -> Result<SecretKey> {
        let (version, sealed) = Self::parse_wrapped(wrapped)?;
        if version < entry.min_decryption_version {
            return Err(Error::VersionRetired(version));
        }
        let tk = self.tenant_key(entry, tenant, version)?;
        SecretKey::from_slice(&aead::open(&tk, &data_key_binding(tenant, version), &sealed)?)
    }
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    async fn ensure_tenant_key(&self, tenant: &str) -> Result<()> {
        check_tenant(tenant)?;
        if self.current().await?.file.tenants.contains_key(tenant) {
            return Ok(());
        }
        self.modify(|this, file| {
            if !file.tenants.contains_key(tenant) {
                let mut entry = TenantEntry::default();
                this.add_version(&mut entry, tenant)?;
                file.tenants.insert(tenant.to_owned(), entry);
            }
            Ok(())
        })
        .await
    }

    async fn generate_data_key(&self, tenant: &str) -> Result<(SecretKey, WrappedKey)> {
        check_tenant(tenant)?;
        let state = self.current().await?;
        let entry = state.file.tenants.get(tenant).ok_or(Error::UnknownTenant)?;
        let key = SecretKey::generate()?;
        let wrapped = self.wrap_with(entry, tenant, &key)?;
        Ok((key, wrapped))
    }

    async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<SecretKey> {
        check_tenant(tenant)?;
        let state = self.current().await?;
        let entry = state.file.tenants.get(tenant).ok_or(Error::UnknownTenant)?;
        self.unwrap_with(entry, tenant, wrapped)
    }

    async fn rotate(&self, tenant: &str) -> Result<u64> {
        check_tenant(tenant)?;
        self.modify(|this, file| {
            let entry = file.tenants.get_mut(tenant).ok_or(Error::UnknownTenant)?;
            this.add_version(entry, tenant)
        })
        .await
    }

    async fn rewrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<WrappedKey> {
        check_tenant(tenant)?;
        let state = self.current().await?;
        let entry = state.file.tenants.get(tenant).ok_or(Error::UnknownTenant)?;
        let key = self.unwrap_with(entry, tenant, wrapped)?;
        self.wrap_with(entry, tenant, &key)
    }

    async fn versions(&self, tenant: &str) -> Result<KeyVersions> {
        check_tenant(tenant)?;
        let state = self.current().await?;
        let entry = state.file.tenants.get(tenant).ok_or(Error::UnknownTenant)?;
        let latest = entry.versions.keys().next_back().copied().unwrap_or(0);
        Ok(KeyVersions { latest, min_decryption: entry.min_decryption_version, latest_created: None })
    }

    async fn trim(&self, tenant: &str, min_available: u64) -> Result<()> {
        check_tenant(tenant)?;
        self.modify(|_, file| {
            let entry = file.tenants.get_mut(tenant).ok_or(Error::UnknownTenant)?;
            if min_available == 0 || min_available > entry.min_decryption_version {
                return Err(Error::Config {
                    field: "min_available_version",
                    reason: format!(
                        "must be between 1 and the minimum decryption version {}",
                        entry.min_decryption_version
                    ),
                });
            }
            entry.versions.retain(|v, _| *v >= min_available);
            Ok(())
        })
        .await
    }

    async fn set_min_decryption_version(&self, tenant: &str, version: u64) -> Result<()> {
        check_tenant(tenant)?;
        self.modify(|_, file| {
            let entry = file.tenants.get_mut(tenant).ok_or(Error::UnknownTenant)?;
            let latest = entry.versions.keys().next_back().copied().unwrap_or(0);
            let oldest = entry.versions.keys().next().copied().unwrap_or(0);
            if version < oldest.max(1) || version > latest {
                return Err(Error::Config {
                    field: "min_decryption_version",
                    reason: format!("must be between {} (the oldest version kept) and {latest}", oldest.max(1)),
                });
            }
            entry.min_decryption_version = version;
            Ok(())
        })
        .await
    }
}
