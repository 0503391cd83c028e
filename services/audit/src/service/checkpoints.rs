//! Publishes each tenant's newest tree head outside the database, as a C2SP
//! `tlog-checkpoint` note written once to object storage
//! (`<tenant>/<size, 20 digits>` under `--checkpoint-url`), for auditors and
//! witnesses.
//!
//! An object is never overwritten (`PutMode::Create`): a database insider
//! who rewrites or cuts the log cannot touch what was published, and the
//! next publication after such an edit is refused, since the log no longer
//! extends the newest published head. Before writing, the publisher checks
//! that the log still contains that head (same root at its size).

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio_util::sync::CancellationToken;

use super::Log;
use crate::domain::checkpoint;
use crate::domain::monitor::Head;
use crate::error::{Error, Result};

/// Where checkpoints go, and for which trust domain.
pub struct Publisher {
    log: Arc<Log>,
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    trust_domain: String,
    /// The newest head published per tenant, once listed or written, so
    /// that a publication lists the store only the first time.
    published: std::sync::Mutex<std::collections::HashMap<String, Head>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn object_error(e: object_store::Error) -> Error {
    Error::Unavailable(format!("checkpoint store: {e}"))
}

/// The object store of `--checkpoint-url`: `s3://bucket/prefix` (the
/// `AWS_*` environment configures it), or a local directory.
pub fn store_of(url: &str) -> anyhow::Result<(Arc<dyn ObjectStore>, Path)> {
    if url.starts_with("s3://") {
        let rest = url.trim_start_matches("s3://");
        let prefix = rest.split_once('/').map(|(_, p)| p).unwrap_or_default();
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_url(url)
            .build()
            .map_err(|e| anyhow::anyhow!("--checkpoint-url: {e}"))?;
        return Ok((Arc::new(s3), Path::from(prefix)));
    }
    let dir = url.trim_start_matches("file://");
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("--checkpoint-url {dir}: {e}"))?;
    Ok((Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?), Path::default()))
}

impl Publisher {
    /// Publishes `log`'s heads to `objects` under `prefix`.
    pub fn new(log: Arc<Log>, objects: Arc<dyn ObjectStore>, prefix: Path, trust_domain: &str) -> Self {
        Self { log, objects, prefix, trust_domain: trust_domain.to_owned(), published: Default::default() }
    }

    fn dir(&self, tenant: &str) -> Path {
        self.prefix.clone().join(tenant)
    }

    /// The newest checkpoint published for `tenant`, opened with the log's
    /// trusted keys.
    pub async fn newest(&self, tenant: &str) -> Result<Option<Head>> {
        let listed = futures::TryStreamExt::try_collect::<Vec<_>>(self.objects.list(Some(&self.dir(tenant))))
            .await
            .map_err(object_error)?;
        let Some(newest) = listed.iter().map(|m| m.location.clone()).max() else { return Ok(None) };
        let bytes = self.objects.get(&newest).await.map_err(object_error)?.bytes().await.map_err(object_error)?;
        let note = String::from_utf8(bytes.to_vec()).map_err(|_| Error::DataLoss("a checkpoint is not text".into()))?;
        let keys = self.log.public_keys();
        let keys: Vec<&[u8]> = keys.values().map(Vec::as_slice).collect();
        let origin = checkpoint::origin(&self.trust_domain, tenant);
        checkpoint::open(&note, &origin, &keys)
            .map(Some)
            .map_err(|e| Error::DataLoss(format!("a published checkpoint: {e}")))
    }

    /// Publishes the tenant's newest head, unless the log no longer extends
    /// the newest head already published (then it says so, and writes
    /// nothing). Returns the head published.
    pub async fn publish(&self, tenant: &str) -> Result<Option<Head>> {
        let origin = checkpoint::origin(&self.trust_domain, tenant);
        let Some((head, note)) = self.log.checkpoint(tenant, &origin).await? else { return Ok(None) };
        let known = self.published.lock().ok().and_then(|p| p.get(tenant).copied());
        let newest = match known {
            Some(h) => Some(h),
            None => self.newest(tenant).await?,
        };
        if let Some(published) = newest {
            let extends = published.size <= head.size
                && self.log.root_at(tenant, published.size).await.is_ok_and(|r| r == published.root);
            if !extends {
                tracing::error!(%tenant, published = published.size, now = head.size, "the audit log no longer extends its published checkpoint");
                return Err(Error::DataLoss(format!(
                    "the log (size {}) does not extend the checkpoint published at size {}",
                    head.size, published.size
                )));
            }
        }
        let path = self.dir(tenant).join(format!("{:020}", head.size));
        let once = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.objects.put_opts(&path, PutPayload::from(note.into_bytes()), once).await {
            // Already there: another replica (or an earlier round) published
            // this size, and the same head signs to the same note.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {
                if let Ok(mut p) = self.published.lock() {
                    p.insert(tenant.to_owned(), head);
                }
                Ok(Some(head))
            }
            Err(e) => Err(object_error(e)),
        }
    }

    /// Publishes, every `interval`, the tenants appended to since.
    pub async fn run(self, interval: std::time::Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for tenant in self.log.take_unpublished() {
                if let Err(e) = self.publish(&tenant).await {
                    tracing::error!(%tenant, error = %e, "checkpoint not published");
                }
            }
        }
    }
}
