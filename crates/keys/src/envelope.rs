//! Envelope encryption every service uses:
//!
//! tenant key (Vault / keyring) ─wraps→ tenant data key (stored wrapped,
//! cached in memory with a TTL, zeroized on drop) ─wraps→ record key (stored
//! beside its record) ─encrypts→ fields, with associated data binding tenant,
//! record, field and version.
//!
//! The key provider is called per tenant data key, never per record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::Mutex;

use crate::aead::{self, Binding};
use crate::error::{Error, Result};
use crate::provider::{KeyProvider, SecretKey, WrappedKey, check_tenant};
use crate::store::{entity, state};

/// How many unwrapped data keys are kept at most.
const CACHE_CAPACITY: usize = 10_000;

/// A record key wrapped by a tenant data key: what is stored beside a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRecordKey {
    /// The data key that wraps it.
    pub data_key_id: String,
    /// nonce || ciphertext || tag.
    pub sealed: Vec<u8>,
}

struct Cached {
    tenant: String,
    key: Arc<SecretKey>,
    fetched: Instant,
}

/// Envelope encryption over a key provider and the service's database.
pub struct Envelope {
    provider: Arc<dyn KeyProvider>,
    db: DatabaseConnection,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    create: Mutex<()>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").field("provider", &self.provider).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn record_key_binding<'a>(tenant: &'a str, record: &'a str, data_key_id: &'a str) -> Binding<'a> {
    Binding { kind: "record-key", tenant, record, field: data_key_id, version: 0 }
}

impl Envelope {
    /// Unwrapped data keys are kept for `ttl`.
    pub fn new(provider: Arc<dyn KeyProvider>, db: DatabaseConnection, ttl: Duration) -> Self {
        Self { provider, db, ttl, cache: Mutex::new(HashMap::new()), create: Mutex::new(()) }
    }

    /// The key provider.
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    async fn active_row(&self, tenant: &str) -> Result<Option<entity::Model>> {
        Ok(entity::Entity::find()
            .filter(entity::Column::TenantId.eq(tenant))
            .filter(entity::Column::State.eq(state::ACTIVE))
            .one(&self.db)
            .await?)
    }

    /// The tenant's active data key, created through the provider if absent.
    pub async fn active_data_key(&self, tenant: &str) -> Result<(String, Arc<SecretKey>)> {
        check_tenant(tenant)?;
        if let Some(row) = self.active_row(tenant).await? {
            let key = self.data_key(tenant, &row.id).await?;
            return Ok((row.id, key));
        }
        let _guard = self.create.lock().await;
        if let Some(row) = self.active_row(tenant).await? {
            let key = self.data_key(tenant, &row.id).await?;
            return Ok((row.id, key));
        }
        self.provider.ensure_tenant_key(tenant).await?;
        let (key, wrapped) = self.provider.generate_data_key(tenant).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let row = entity::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.to_owned()),
            wrapped: Set(wrapped.0),
            state: Set(state::ACTIVE.to_owned()),
            created_at: Set(chrono::Utc::now()),
        };
        if let Err(e) = entity::Entity::insert(row).exec(&self.db).await {
            // Another replica won the race: use its key.
            tracing::debug!(error = %e, "concurrent data key creation, using the stored one");
            let row = self.active_row(tenant).await?.ok_or(e)?;
            let key = self.data_key(tenant, &row.id).await?;
            return Ok((row.id, key));
        }
        let key = Arc::new(key);
        self.remember(tenant, &id, key.clone()).await;
        Ok((id, key))
    }

    async fn remember(&self, tenant: &str, id: &str, key: Arc<SecretKey>) {
        let mut cache = self.cache.lock().await;
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.ttl;
            cache.retain(|_, c| c.fetched.elapsed() < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(id.to_owned(), Cached { tenant: tenant.to_owned(), key, fetched: Instant::now() });
    }

    /// A tenant data key by id (from the cache, else unwrapped by the provider).
    pub async fn data_key(&self, tenant: &str, id: &str) -> Result<Arc<SecretKey>> {
        if let Some(c) = self.cache.lock().await.get(id)
            && c.tenant == tenant
            && c.fetched.elapsed() < self.ttl
        {
            return Ok(c.key.clone());
        }
        let row = entity::Entity::find_by_id(id.to_owned())
            .filter(entity::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(Error::Decrypt)?;
        let key = Arc::new(self.provider.unwrap(tenant, &WrappedKey(row.wrapped)).await?);
        self.remember(tenant, id, key.clone()).await;
        Ok(key)
    }

    /// A fresh record key for `record`, and its sealed form to store.
    pub async fn new_record_key(&self, tenant: &str, record: &str) -> Result<(SecretKey, SealedRecordKey)> {
        let (dk_id, dk) = self.active_data_key(tenant).await?;
        let rk = SecretKey::generate()?;
        let sealed = aead::seal(&dk, &record_key_binding(tenant, record, &dk_id), rk.expose())?;
        Ok((rk, SealedRecordKey { data_key_id: dk_id, sealed }))
    }

    /// Opens a stored record key; fails if it was moved to another record or tenant.
    pub async fn open_record_key(&self, tenant: &str, record: &str, sealed: &SealedRecordKey) -> Result<SecretKey> {
        let dk = self.data_key(tenant, &sealed.data_key_id).await?;
        let clear = aead::open(&dk, &record_key_binding(tenant, record, &sealed.data_key_id), &sealed.sealed)?;
        SecretKey::from_slice(&clear)
    }

    /// Re-seals a record key under the tenant's active data key.
    pub async fn rewrap_record_key(
        &self,
        tenant: &str,
        record: &str,
        sealed: &SealedRecordKey,
    ) -> Result<SealedRecordKey> {
        let rk = self.open_record_key(tenant, record, sealed).await?;
        let (dk_id, dk) = self.active_data_key(tenant).await?;
        let resealed = aead::seal(&dk, &record_key_binding(tenant, record, &dk_id), rk.expose())?;
        Ok(SealedRecordKey { data_key_id: dk_id, sealed: resealed })
    }

    /// After a tenant-key rotation: re-wraps every stored data key of the
    /// tenant under the latest version. Records are untouched. Returns the count.
    pub async fn rewrap_tenant_data_keys(&self, tenant: &str) -> Result<u64> {
        check_tenant(tenant)?;
        let rows = entity::Entity::find()
            .filter(entity::Column::TenantId.eq(tenant))
            .filter(entity::Column::State.ne(state::RETIRED))
            .all(&self.db)
            .await?;
        let mut n = 0;
        for row in rows {
            let rewrapped = self.provider.rewrap(tenant, &WrappedKey(row.wrapped.clone())).await?;
            if rewrapped.0 != row.wrapped {
                let mut active: entity::ActiveModel = row.into();
                active.wrapped = Set(rewrapped.0);
                entity::Entity::update(active).exec(&self.db).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Makes a new active data key; the old one becomes `retiring` until no
    /// record key uses it. Returns the new key's id.
    pub async fn rotate_data_key(&self, tenant: &str) -> Result<String> {
        check_tenant(tenant)?;
        let _guard = self.create.lock().await;
        self.provider.ensure_tenant_key(tenant).await?;
        let (key, wrapped) = self.provider.generate_data_key(tenant).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let txn = guardline_runtime::storage::write_txn(&self.db).await?;
        entity::Entity::update_many()
            .col_expr(entity::Column::State, sea_orm::sea_query::Expr::value(state::RETIRING))
            .filter(entity::Column::TenantId.eq(tenant))
            .filter(entity::Column::State.eq(state::ACTIVE))
            .exec(&txn)
            .await?;
        entity::Entity::insert(entity::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.to_owned()),
            wrapped: Set(wrapped.0),
            state: Set(state::ACTIVE.to_owned()),
            created_at: Set(chrono::Utc::now()),
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        self.remember(tenant, &id, Arc::new(key)).await;
        Ok(id)
    }

    /// Marks a `retiring` data key `retired` and forgets it. The caller
    /// guarantees no record key is wrapped by it any more.
    pub async fn retire_data_key(&self, tenant: &str, id: &str) -> Result<()> {
        entity::Entity::update_many()
            .col_expr(entity::Column::State, sea_orm::sea_query::Expr::value(state::RETIRED))
            .filter(entity::Column::Id.eq(id))
            .filter(entity::Column::TenantId.eq(tenant))
            .filter(entity::Column::State.eq(state::RETIRING))
            .exec(&self.db)
            .await?;
        self.cache.lock().await.remove(id);
        Ok(())
    }

    /// Forgets every cached data key (after a min_decryption_version change,
    /// so that the next use goes to the provider).
    pub async fn clear_cache(&self) {
        self.cache.lock().await.clear();
    }
}

/// The pseudo-tenant whose data key seals platform secrets (signing keys).
pub const PLATFORM: &str = "_platform";

impl Envelope {
    /// Seals a small secret (a private key, a TOTP seed) of `tenant` under its
    /// active data key, bound to `kind` and `id`. Returns the data key id and
    /// the sealed bytes, both to store.
    pub async fn seal_secret(&self, tenant: &str, kind: &str, id: &str, clear: &[u8]) -> Result<(String, Vec<u8>)> {
        let (dk_id, dk) = self.active_data_key(tenant).await?;
        let sealed = aead::seal(&dk, &Binding { kind, tenant, record: id, field: "secret", version: 0 }, clear)?;
        Ok((dk_id, sealed))
    }

    /// Opens what [`Envelope::seal_secret`] sealed.
    pub async fn open_secret(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        data_key_id: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let dk = self.data_key(tenant, data_key_id).await?;
        aead::open(&dk, &Binding { kind, tenant, record: id, field: "secret", version: 0 }, sealed)
    }
}

/// Encrypts one field under a record key, bound to tenant, record, field and version.
pub fn seal_field(
    rk: &SecretKey,
    tenant: &str,
    record: &str,
    field: &str,
    version: u64,
    clear: &[u8],
) -> Result<Vec<u8>> {
    aead::seal(rk, &Binding { kind: "field", tenant, record, field, version }, clear)
}

/// Decrypts what [`seal_field`] produced with the same binding.
pub fn open_field(
    rk: &SecretKey,
    tenant: &str,
    record: &str,
    field: &str,
    version: u64,
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    aead::open(rk, &Binding { kind: "field", tenant, record, field, version }, sealed)
}
