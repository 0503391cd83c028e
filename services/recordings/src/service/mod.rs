//! Recordings' operations: streaming encrypted upload to object storage,
//! ranged decrypting reads, verification, legal hold, retention purge and
//! erasure. Metadata and audit events commit together; audio never leaves
//! this module in clear except to an authorized reader.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use guardline_audit_client::{EventBuilder, Outcome};
use guardline_keys::{Envelope, SealedRecordKey};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::domain::recording::validate_class;
pub use crate::domain::recording::{
    CONSENT_RETENTION_DAYS, DEFAULT_DELETE_AFTER_DAYS, DEFAULT_MIN_DAYS, Header, ListFilter,
};
use crate::domain::stream::{self, Binding, Encryptor};
use crate::error::{Error, RecordingError, Result};
use crate::store::{Store, recording, state};

mod integrity;
mod retention;

/// How a purge runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PurgeRun {
    /// At most this many deletions; 0 for no limit.
    pub limit: u32,
    /// Count only.
    pub dry_run: bool,
}

/// What a purge did (or, in a dry run, would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Recordings deleted.
    pub purged: u64,
    /// Due recordings kept under a legal hold.
    pub held: u64,
    /// Recordings past their class kept as consent evidence.
    pub kept_for_consent: u64,
    /// Due recordings left for a later run by the limit.
    pub more: bool,
}

/// A replica's liveness lease term; renewed every [`HEARTBEAT`].
pub const LIVENESS: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a replica renews its liveness lease and sweeps dead uploads.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// The liveness lease of the replica `holder`.
fn alive(holder: &str) -> String {
    format!("recordings.replica.{holder}")
}

/// The recordings service's state.
pub struct Recordings {
    store: Store,
    envelope: Arc<Envelope>,
    objects: Arc<dyn ObjectStore>,
    // The directory of a local-filesystem store, whose interrupted multipart
    // uploads leave `<object>#<n>` staging files behind.
    local_root: Option<std::path::PathBuf>,
    // An upload that sends nothing for this long is abandoned and removed.
    idle_timeout: std::time::Duration,
    // The server's time: retention dates, leases.
    clock: guardline_runtime::clock::Clock,
    // This replica's liveness lease, which its uploads in flight name.
    leases: guardline_runtime::lease::Leases,
    // Rows without a MAC pass until the start-up upgrade has given every
    // stored row one (see `integrity`).
    mac_legacy_accepted: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings").field("objects", &self.objects.to_string()).finish_non_exhaustive()
    }
}

fn object_error(e: object_store::Error) -> Error {
    Error::Unavailable(format!("object storage: {}", e.to_string().chars().take(200).collect::<String>()))
}

fn sealed_key(row: &recording::Model) -> Option<SealedRecordKey> {
    Some(SealedRecordKey { data_key_id: row.key_data_key_id.clone(), sealed: row.key_sealed.clone()? })
}

impl Recordings {
    /// Assembles the service.
    pub fn new(store: Store, envelope: Arc<Envelope>, objects: Arc<dyn ObjectStore>) -> Self {
        let clock = guardline_runtime::clock::Clock::system();
        Self {
            leases: store.leases(clock.clone()),
            store,
            envelope,
            objects,
            local_root: None,
            idle_timeout: std::time::Duration::from_secs(60),
            clock,
            mac_legacy_accepted: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Abandons uploads that send nothing for `timeout`.
    pub fn with_idle_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The same service on `clock`.
    pub fn with_clock(mut self, clock: guardline_runtime::clock::Clock) -> Self {
        self.leases = self.leases.clone().with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// The server's time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Declares the store a local directory, so the sweep can remove staging files.
    pub fn with_local_root(mut self, dir: std::path::PathBuf) -> Self {
        self.local_root = Some(dir);
        self
    }

    /// Renews this replica's liveness lease; its uploads in flight are safe
    /// from every replica's sweep while it holds it.
    pub async fn heartbeat(&self) -> Result<()> {
        self.leases.acquire(&alive(self.leases.holder()), LIVENESS).await?;
        Ok(())
    }

    /// Removes the uploads whose replica died (its liveness lease ran out),
    /// objects and staging files with them, so nothing is left orphaned;
    /// with `at_start`, also those begun by a version that named no replica,
    /// and on a one-process store (SQLite) every other process's.
    pub async fn sweep(&self, at_start: bool) -> Result<usize> {
        let mut swept = 0;
        let sole = at_start && self.store.single_process();
        // One lease lookup per replica, however many uploads it holds.
        let mut replicas: std::collections::HashMap<String, bool> = Default::default();
        for (r, holder) in self.store.uploading().await? {
            let dead = match holder {
                Some(h) if h == self.leases.holder() => false,
                _ if sole => true,
                None => at_start,
                Some(h) => match replicas.get(&h) {
                    Some(dead) => *dead,
                    None => {
                        let lease = self.leases.holder_of(&alive(&h)).await?;
                        let dead = lease.is_none_or(|(_, until)| until < self.clock.now());
                        *replicas.entry(h).or_insert(dead)
                    }
                },
            };
            if dead {
                self.remove_upload(&r).await?;
                swept += 1;
            }
        }
        if swept > 0 {
            tracing::warn!(count = swept, "removed uploads whose replica died");
        }
        Ok(swept)
    }

    async fn remove_upload(&self, r: &recording::Model) -> Result<()> {
        match self.objects.delete(&Path::from(r.object_path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(object_error(e)),
        }
        if let Some(root) = &self.local_root {
            let dest = root.join(&r.object_path);
            if let (Some(dir), Some(name)) = (dest.parent(), dest.file_name().and_then(|n| n.to_str())) {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    if entry.file_name().to_str().is_some_and(|f| f.starts_with(&format!("{name}#"))) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        self.store.delete(&r.id).await
    }

    /// Receives, encrypts and stores a recording. Nothing is visible until the
    /// object is complete; a failed upload leaves nothing behind.
    pub async fn upload<S, E>(&self, uploader: &str, h: Header, mut audio: S, closing: E) -> Result<recording::Model>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
        E: FnOnce() -> Option<(u64, Vec<u8>)>,
    {
        h.validate()?;
        let class_name = h.class().to_owned();
        let (_, delete_after) = self.retention_class(&h.tenant, &class_name).await?;
        let id = format!("rec-{}", uuid::Uuid::now_v7().simple());
        let (rk, sealed) = self.envelope.new_record_key(&h.tenant, &id).await?;
        let prefix = stream::new_prefix().map_err(|e| Error::Internal(e.to_string()))?;
        let row = uploading_row(&id, &h, prefix, sealed, class_name);
        self.store.insert(row.clone(), self.leases.holder()).await?;
        let (size, sha) = match self.receive(&rk, &row, &mut audio, closing).await {
            Ok(v) => v,
            Err(e) => {
                self.store.delete(&id).await?;
                return Err(e);
            }
        };
        let now = self.clock.now();
        let event = EventBuilder::new(&h.tenant, "recording.upload")
            .actor("", uploader)
            .resource("recording", &id)
            .detail("lead", &h.lead_id)
            .detail("bytes", size);
        let mut stored = recording::Model {
            state: state::STORED.into(),
            size_bytes: size as i64,
            sha256: Some(sha.to_vec()),
            stored_at: Some(now),
            retain_until: h.retain_until(now, delete_after),
            ..row
        };
        stored.mac = Some(integrity::mac_of(rk.expose(), &stored));
        self.store.mark_stored(stored, event).await
    }

    async fn receive<S, E>(
        &self,
        rk: &guardline_keys::SecretKey,
        row: &recording::Model,
        audio: &mut S,
        closing: E,
    ) -> Result<(u64, [u8; 32])>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
        E: FnOnce() -> Option<(u64, Vec<u8>)>,
    {
        let prefix: [u8; 8] =
            row.nonce_prefix.clone().try_into().map_err(|_| Error::Internal("nonce prefix".into()))?;
        let binding = Binding { tenant: &row.tenant_id, recording: &row.id, prefix };
        let mut enc = Encryptor::new(rk, binding).map_err(|e| Error::Internal(e.to_string()))?;
        let upload = self.objects.put_multipart(&Path::from(row.object_path.as_str())).await.map_err(object_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
        let outcome: Result<()> = async {
            loop {
                let next = tokio::time::timeout(self.idle_timeout, audio.next())
                    .await
                    .map_err(|_| Error::Unavailable("the upload stalled; start it again".into()))?;
                let Some(data) = next else { break };
                for sealed in enc.push(&data?).map_err(|e| Error::Internal(e.to_string()))? {
                    writer.wait_for_capacity(4).await.map_err(object_error)?;
                    writer.write(&sealed);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            let _ = writer.abort().await;
            return Err(e);
        }
        let (last, sha, size) = enc.finish().map_err(|e| Error::Internal(e.to_string()))?;
        let checked = match closing() {
            None => Err(Error::Unavailable("the upload ended without its end message; nothing was stored".into())),
            Some((n, _)) if n != size => Err(Error::invalid("end.size_bytes", "differs from the bytes received")),
            Some((_, h)) if !h.is_empty() && h != sha => {
                Err(Error::invalid("end.sha256", "differs from the audio received"))
            }
            Some(_) => Ok(()),
        };
        if let Err(e) = checked {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.write(&last);
        writer.finish().await.map_err(object_error)?;
        Ok((size, sha))
    }

    /// (min days, delete-after days) of a tenant's class; `default` exists always.
    pub async fn retention_class(&self, tenant: &str, name: &str) -> Result<(i64, i64)> {
        match self.store.retention_class(tenant, name).await? {
            Some(class) => Ok(class),
            None if name == "default" => Ok((DEFAULT_MIN_DAYS, DEFAULT_DELETE_AFTER_DAYS)),
            None => Err(Error::invalid("header.retention_class", "no such retention class in the tenant")),
        }
    }

    /// Defines or changes a retention class (existing recordings keep their dates).
    pub async fn set_retention_class(
        &self,
        tenant: &str,
        name: &str,
        min_days: u32,
        delete_after_days: u32,
        actor: (&str, &str),
    ) -> Result<()> {
        validate_class(name, min_days, delete_after_days)?;
        let event = EventBuilder::new(tenant, "recording.retention_class")
            .actor(actor.0, actor.1)
            .resource("retention_class", name)
            .detail("min_days", min_days)
            .detail("delete_after_days", delete_after_days);
        self.store.put_retention_class((tenant, name), (min_days, delete_after_days), event).await
    }

    /// A stored recording of the tenant (tombstones and uploads are not
    /// found), its MAC checked; a failure is audited with `actor`.
    pub async fn get(&self, tenant: &str, id: &str, actor: &str) -> Result<recording::Model> {
        let row = self.store.find(id).await?;
        let row = row.filter(|r| r.tenant_id == tenant && r.state == state::STORED).ok_or(Error::NotFound)?;
        self.checked(row, actor).await
    }

    /// Stored recordings matching the filters, newest first; a row whose
    /// MAC fails is left out (and audited), never shown on its edited scope.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &ListFilter,
        limit: u64,
        actor: &str,
    ) -> Result<Vec<recording::Model>> {
        let mut out = Vec::new();
        for row in self.store.list(tenant, filter, limit).await? {
            out.extend(self.intact(row, actor).await?);
        }
        Ok(out)
    }

    async fn key(&self, row: &recording::Model) -> Result<(guardline_keys::SecretKey, [u8; 8])> {
        let sealed = sealed_key(row).ok_or(Error::NotFound)?;
        let rk = self
            .envelope
            .open_record_key(&row.tenant_id, &row.id, &sealed)
            .await
            .map_err(|_| RecordingError::KeyUnreadable)?;
        let prefix = row.nonce_prefix.clone().try_into().map_err(|_| RecordingError::KeyUnreadable)?;
        Ok((rk, prefix))
    }

    async fn tampered(&self, row: &recording::Model, actor: &str, problem: &str) -> Error {
        let event = EventBuilder::new(&row.tenant_id, "recording.tamper_detected")
            .actor(actor, "")
            .resource("recording", &row.id)
            .outcome(Outcome::Failed, problem);
        // Best effort: the caller learns of the damage whether or not the
        // event could be written.
        if let Err(e) = self.store.audit(event).await {
            tracing::error!(recording = %row.id, error = %e, "the tamper event could not be written");
        }
        tracing::error!(recording = %row.id, %problem, "recording failed authentication");
        RecordingError::Tampered.into()
    }

    /// Decrypted audio bytes `[offset, offset + len)` (to the end when len = 0),
    /// one piece per sealed chunk read.
    pub async fn read_range(&self, row: &recording::Model, actor: &str, offset: u64, len: u64) -> Result<Vec<Bytes>> {
        let (rk, prefix) = self.key(row).await?;
        let size = row.size_bytes as u64;
        let len = if len == 0 { size.saturating_sub(offset) } else { len };
        let binding = Binding { tenant: &row.tenant_id, recording: &row.id, prefix };
        let path = Path::from(row.object_path.as_str());
        let meta = self.objects.head(&path).await.map_err(object_error)?;
        if meta.size != stream::sealed_len(size) {
            return Err(self.tampered(row, actor, "object length differs from the recorded size").await);
        }
        let mut out = Vec::new();
        for i in stream::chunks_for(size, offset, len) {
            let r = stream::sealed_range(size, i);
            let sealed = self.objects.get_range(&path, r).await.map_err(object_error)?;
            let plain = match stream::open_chunk(&rk, &binding, size, i, &sealed) {
                Ok(p) => p,
                Err(e) => return Err(self.tampered(row, actor, &e.to_string()).await),
            };
            let chunk_start = i * stream::CHUNK as u64;
            let from = offset.saturating_sub(chunk_start) as usize;
            let to = ((offset + len).min(chunk_start + plain.len() as u64) - chunk_start) as usize;
            out.push(Bytes::copy_from_slice(&plain[from.min(to)..to]));
        }
        Ok(out)
    }

    /// Records that `actor` played (part of) a recording.
    pub async fn audit_play(&self, row: &recording::Model, actor: &str, offset: u64, len: u64) -> Result<()> {
        let event = EventBuilder::new(&row.tenant_id, "recording.play")
            .actor(actor, "")
            .resource("recording", &row.id)
            .detail("lead", &row.lead_id)
            .detail("offset", offset)
            .detail("length", len);
        self.store.audit(event).await
    }

    /// Re-reads a whole recording and checks every chunk and the SHA-256.
    pub async fn verify(&self, row: &recording::Model, actor: &str) -> Result<(bool, String)> {
        let pieces = match self.read_range(row, actor, 0, 0).await {
            Ok(p) => p,
            Err(e) if e.refusal::<RecordingError>().is_some() => return Ok((false, e.to_string())),
            Err(e) => return Err(e),
        };
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for p in &pieces {
            ctx.update(p);
        }
        if row.sha256.as_deref() != Some(ctx.finish().as_ref()) {
            return Ok((false, self.tampered(row, actor, "plaintext hash differs").await.to_string()));
        }
        Ok((true, String::new()))
    }

    /// Places or clears a legal hold, with a reason; audited.
    pub async fn set_hold(
        &self,
        tenant: &str,
        id: &str,
        hold: bool,
        reason: &str,
        actor: &str,
    ) -> Result<recording::Model> {
        if reason.trim().is_empty() || reason.len() > 500 {
            return Err(Error::invalid("reason", "required, at most 500 characters"));
        }
        let row = self.get(tenant, id, actor).await?;
        let action = if hold { "recording.legal_hold.set" } else { "recording.legal_hold.clear" };
        let event = EventBuilder::new(tenant, action)
            .actor(actor, "")
            .resource("recording", id)
            .outcome(Outcome::Allowed, reason);
        let reason = if hold { reason.to_owned() } else { String::new() };
        let next = self.maced(recording::Model { legal_hold: hold, legal_hold_reason: reason, ..row }).await?;
        self.store.set_hold(next, event).await
    }

    /// Rewraps the tenant's stored data keys under the newest tenant-key
    /// version (after a rotation in Vault); recordings are untouched.
    /// Audited with the count.
    pub async fn rewrap_tenant_keys(&self, tenant: &str, actor: (&str, &str)) -> Result<u64> {
        if tenant.is_empty() {
            return Err(Error::invalid("tenant_id", "required"));
        }
        let rewrapped = self.envelope.rewrap_tenant_data_keys(tenant).await?;
        let event = EventBuilder::new(tenant, "recordings.keys.rewrap")
            .actor(actor.0, actor.1)
            .resource("tenant", tenant)
            .detail("rewrapped", rewrapped);
        self.store.audit(event).await?;
        Ok(rewrapped)
    }
}

/// The row of an upload that begins: invisible (`uploading`) until stored.
fn uploading_row(
    id: &str,
    h: &Header,
    prefix: [u8; 8],
    sealed: SealedRecordKey,
    retention_class: String,
) -> recording::Model {
    recording::Model {
        id: id.to_owned(),
        tenant_id: h.tenant.clone(),
        call_id: h.call_id.clone(),
        lead_id: h.lead_id.clone(),
        agent_id: h.agent_id.clone(),
        team_id: h.team_id.clone(),
        caller_line: h.caller_line.clone(),
        started_at: h.started_at,
        duration_seconds: i64::from(h.duration_seconds),
        format: h.format.clone(),
        consent_offset_ms: h.consent.map(|c| c.0 as i64),
        consent_length_ms: h.consent.map(|c| c.1 as i64),
        size_bytes: 0,
        sha256: None,
        nonce_prefix: prefix.to_vec(),
        key_data_key_id: sealed.data_key_id,
        key_sealed: Some(sealed.sealed),
        object_path: format!("recordings/{}/{id}", h.tenant),
        state: state::UPLOADING.into(),
        stored_at: None,
        retain_until: h.started_at,
        retention_class,
        legal_hold: false,
        legal_hold_reason: String::new(),
        mac: None,
    }
}

/// A payload for object stores (used by the benchmark's baseline).
pub fn payload(bytes: Vec<u8>) -> PutPayload {
    PutPayload::from(bytes)
}
