//! Flags of the recordings service; every flag is also a `GUARDLINE_*` variable.

use std::path::PathBuf;
use std::sync::Arc;

use guardline_service::CommonArgs;
use object_store::ObjectStore;

/// `guardline-recordings`: encrypted streaming storage of call recordings.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "guardline-recordings",
    version,
    about = "Recordings: encrypted streaming storage of call recordings, retention, legal hold"
)]
pub struct Args {
    /// Flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where tenant keys live.
    #[command(flatten)]
    pub keys: guardline_keys::args::KeysArgs,
    /// Where encrypted audio is stored.
    #[command(flatten)]
    pub objects: ObjectStoreArgs,
    /// An upload that sends nothing for this long is abandoned and removed.
    #[arg(long, env = "GUARDLINE_UPLOAD_IDLE_TIMEOUT", default_value = "60s", value_parser = guardline_runtime::args::parse_duration)]
    pub upload_idle_timeout: std::time::Duration,
}

/// Object storage: a local directory by default, S3-compatible by configuration.
#[derive(clap::Args, Clone, Default)]
pub struct ObjectStoreArgs {
    /// Local directory for encrypted audio (used when no S3 bucket is given).
    #[arg(long, env = "GUARDLINE_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// S3 bucket for encrypted audio.
    #[arg(long, env = "GUARDLINE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint (for S3-compatible stores).
    #[arg(long, env = "GUARDLINE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "GUARDLINE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key id.
    #[arg(long, env = "GUARDLINE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "GUARDLINE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allow plain HTTP to the S3 endpoint (tests, in-cluster gateways).
    #[arg(long, env = "GUARDLINE_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
}

impl std::fmt::Debug for ObjectStoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreArgs")
            .field("recordings_dir", &self.recordings_dir)
            .field("s3_bucket", &self.s3_bucket)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreArgs {
    /// The configured store.
    pub fn build(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        if let Some(bucket) = &self.s3_bucket {
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&self.s3_region)
                .with_allow_http(self.s3_allow_http)
                .with_retry(object_store::RetryConfig { max_retries: 3, ..Default::default() });
            if let Some(e) = &self.s3_endpoint {
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            }
            if let (Some(k), Some(s)) = (&self.s3_access_key_id, &self.s3_secret_access_key) {
                b = b.with_access_key_id(k).with_secret_access_key(s);
            }
            return Ok(Arc::new(b.build().map_err(|e| anyhow::anyhow!("--s3-bucket: {e}"))?));
        }
        let dir = self
            .recordings_dir
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--recordings-dir or --s3-bucket is required"))?;
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("--recordings-dir {}: {e}", dir.display()))?;
        local(&dir)
    }
}

/// The local filesystem store of `dir`, durable as an object store promises:
/// every write is fsynced, with the directory entries that name it, before
/// it returns, so a recording is marked STORED only once its object would
/// survive a power cut (tests/durability.rs replays a crash to show it).
pub fn local(dir: &std::path::Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?.with_fsync(true)))
}
