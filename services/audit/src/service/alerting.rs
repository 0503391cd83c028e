//! Alerts: the detector fed with every appended event, alerts stored and
//! broadcast to `WatchAlerts`, and webhook deliveries, durable and retried
//! with backoff, each signed with HMAC-SHA256 over `timestamp.body`.

use guardline_runtime::clock::Clock;

use crate::domain::egress::Egress;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use guardline_keys::Envelope;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;

use crate::domain::alerts::{Calendar, Detector, Raised, Thresholds};
use crate::domain::canonical::Event;
use crate::error::{Error, Result};
use crate::store::log::Store;
use crate::store::{alert, delivery};

/// Alert states as stored.
pub mod state {
    /// New.
    pub const OPEN: &str = "open";
    /// Seen.
    pub const ACKNOWLEDGED: &str = "acknowledged";
    /// Closed.
    pub const RESOLVED: &str = "resolved";
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredWebhook {
    url: String,
    data_key_id: String,
    sealed_secret: String,
}

/// The JSON a webhook receives.
#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    tenant_id: &'a str,
    rule: &'a str,
    summary: &'a str,
    actor_user: &'a str,
    actor_service: &'a str,
    event_ids: Vec<String>,
    raised_at: String,
}

mod detection;
mod webhooks;

pub use detection::LEASE;

use webhooks::http_client;

const CALENDAR_TTL: Duration = Duration::from_secs(300);
const SECRET_KIND: &str = "audit-webhook-secret";

/// The id of a webhook secret (`x-guardline-secret-id`): the first 16 hex
/// digits of HMAC-SHA256(secret, "guardline-webhook-secret-id"). A receiver
/// computes it from each secret it holds, so while a secret is rotated it
/// knows which one signed a delivery, and the id says nothing of the secret.
pub fn secret_id(secret: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, b"guardline-webhook-secret-id");
    tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The HMAC-SHA256 signature header value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A tenant's working hours, as identity keeps them (for the off-hours
/// rule). The gRPC client implements it in `grpc.rs`.
#[async_trait::async_trait]
pub trait WorkingHours: Send + Sync {
    /// The tenant's calendar; `None` when it has none or identity cannot say.
    async fn calendar(&self, tenant: &str) -> Option<Calendar>;
}

/// Detection, storage and delivery of alerts.
pub struct Alerting {
    store: Store,
    envelope: Arc<Envelope>,
    identity: Option<Arc<dyn WorkingHours>>,
    detector: Mutex<Detector>,
    thresholds: Mutex<HashMap<String, Thresholds>>,
    calendars: Mutex<HashMap<String, (Option<Calendar>, std::time::Instant)>>,
    tx: broadcast::Sender<alert::Model>,
    /// The newest alert relayed to this replica's watchers.
    relayed: Mutex<Option<String>>,
    http: reqwest::Client,
    /// The server's time: off-hours rules, gaps, delivery schedule.
    clock: Clock,
    /// Where webhooks may be sent.
    egress: Egress,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting").finish_non_exhaustive()
    }
}

impl Alerting {
    /// The same alerting on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Alerting over `db`; webhook secrets sealed by `envelope`; off-hours
    /// calendars asked of `identity`.
    pub fn new(store: Store, envelope: Arc<Envelope>, identity: Option<Arc<dyn WorkingHours>>) -> Result<Self> {
        let egress = Egress::default();
        let http = http_client(&egress)?;
        Ok(Self {
            store,
            envelope,
            identity,
            detector: Mutex::new(Detector::new()),
            thresholds: Mutex::new(HashMap::new()),
            calendars: Mutex::new(HashMap::new()),
            tx: broadcast::channel(1024).0,
            relayed: Mutex::new(None),
            http,
            clock: Clock::system(),
            egress,
        })
    }

    /// The same alerting with the operator's webhook egress rules.
    pub fn with_egress(mut self, egress: Egress) -> Result<Self> {
        self.http = http_client(&egress)?;
        self.egress = egress;
        Ok(self)
    }

    /// New alerts, as they are raised.
    pub fn subscribe(&self) -> broadcast::Receiver<alert::Model> {
        self.tx.subscribe()
    }

    async fn thresholds(&self, tenant: &str) -> Result<Thresholds> {
        if let Some(t) = self.thresholds.lock().await.get(tenant) {
            return Ok(t.clone());
        }
        let t: Thresholds = self
            .store
            .alert_settings(tenant)
            .await?
            .and_then(|(thresholds, _)| serde_json::from_str(&thresholds).ok())
            .unwrap_or_default();
        self.thresholds.lock().await.insert(tenant.to_owned(), t.clone());
        Ok(t)
    }

    async fn calendar(&self, tenant: &str) -> Option<Calendar> {
        if let Some((c, at)) = self.calendars.lock().await.get(tenant)
            && at.elapsed() < CALENDAR_TTL
        {
            return c.clone();
        }
        let c = self.identity.as_ref()?.calendar(tenant).await;
        self.calendars.lock().await.insert(tenant.to_owned(), (c.clone(), std::time::Instant::now()));
        c
    }

    /// Feeds events to the rules and stores what they raise (the lease
    /// holder's round reads them from the log).
    pub async fn observe(&self, events: &[Event]) -> Result<()> {
        for e in events {
            let t = self.thresholds(&e.tenant_id).await?;
            let cal = self.calendar(&e.tenant_id).await;
            let raised = self.detector.lock().await.observe(e, self.clock.now(), &t, cal.as_ref());
            for r in raised {
                self.raise(r).await?;
            }
        }
        Ok(())
    }

    /// Checks services for delivery gaps at `now`.
    pub async fn check_gaps(&self, now: DateTime<Utc>) -> Result<()> {
        let known = self.thresholds.lock().await.clone();
        let raised = self.detector.lock().await.check_gaps(now, |t| known.get(t).cloned().unwrap_or_default());
        for r in raised {
            self.raise(r).await?;
        }
        Ok(())
    }

    async fn raise(&self, r: Raised) -> Result<()> {
        let now = self.clock.now();
        let row = alert::Model {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: r.tenant_id.clone(),
            rule: r.rule.into(),
            summary: r.summary.clone(),
            actor_user: r.actor_user.clone(),
            actor_service: r.actor_service.clone(),
            event_ids: serde_json::to_string(&r.event_ids).unwrap_or_default(),
            state: state::OPEN.into(),
            raised_at: now,
            updated_by: String::new(),
            updated_at: None,
        };
        tracing::warn!(tenant = %row.tenant_id, rule = %row.rule, alert = %row.id, "alert raised");
        let payload = serde_json::to_string(&Payload {
            id: &row.id,
            tenant_id: &row.tenant_id,
            rule: &row.rule,
            summary: &row.summary,
            actor_user: &row.actor_user,
            actor_service: &row.actor_service,
            event_ids: r.event_ids,
            raised_at: now.to_rfc3339(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let deliveries = self
            .webhooks(&row.tenant_id)
            .await?
            .into_iter()
            .map(|hook| delivery::Model {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: row.tenant_id.clone(),
                alert_id: row.id.clone(),
                url: hook.url,
                payload: payload.clone(),
                attempts: 0,
                next_attempt_at: now,
                delivered_at: None,
            })
            .collect();
        // Watchers hear of it through the relay, on every replica.
        self.store.insert_alert(&row, deliveries).await?;
        Ok(())
    }

    async fn webhooks(&self, tenant: &str) -> Result<Vec<StoredWebhook>> {
        Ok(self
            .store
            .alert_settings(tenant)
            .await?
            .and_then(|(_, webhooks)| serde_json::from_str(&webhooks).ok())
            .unwrap_or_default())
    }

    /// Replaces a tenant's thresholds and webhooks (secrets sealed at rest).
    pub async fn configure(
        &self,
        tenant: &str,
        thresholds: Thresholds,
        hooks: Vec<(String, String)>,
    ) -> Result<(Thresholds, Vec<String>)> {
        let mut stored = Vec::new();
        for (i, (url, secret)) in hooks.iter().enumerate() {
            self.egress.check_url(url).map_err(|why| Error::invalid(format!("webhooks[{i}].url"), why))?;
            // A host name is resolved now as well; the connection checks again.
            let parsed = reqwest::Url::parse(url).ok();
            if let Some(u) = &parsed
                && let Some(url::Host::Domain(host)) = u.host()
            {
                let port = u.port_or_known_default().unwrap_or(443);
                if let Ok(addrs) = tokio::net::lookup_host((host, port)).await {
                    for a in addrs {
                        self.egress
                            .check_ip(a.ip())
                            .map_err(|why| Error::invalid(format!("webhooks[{i}].url"), why))?;
                    }
                }
            }
            if secret.len() < 16 {
                return Err(Error::invalid(format!("webhooks[{i}].secret"), "must be at least 16 characters"));
            }
            let (dk, sealed) = self.envelope.seal_secret(tenant, SECRET_KIND, url, secret.as_bytes()).await?;
            stored.push(StoredWebhook { url: url.clone(), data_key_id: dk, sealed_secret: B64.encode(sealed) });
        }
        let thresholds_json = serde_json::to_string(&thresholds).map_err(|e| Error::Internal(e.to_string()))?;
        let webhooks_json = serde_json::to_string(&stored).map_err(|e| Error::Internal(e.to_string()))?;
        self.store.put_alert_settings(tenant, thresholds_json, webhooks_json).await?;
        self.thresholds.lock().await.insert(tenant.to_owned(), thresholds.clone());
        Ok((thresholds, stored.into_iter().map(|h| h.url).collect()))
    }

    /// The thresholds in force for a tenant.
    pub async fn settings(&self, tenant: &str) -> Result<(Thresholds, Vec<String>)> {
        Ok((self.thresholds(tenant).await?, self.webhooks(tenant).await?.into_iter().map(|h| h.url).collect()))
    }

    /// Alerts of a tenant, newest first.
    pub async fn list(
        &self,
        tenant: &str,
        state: Option<&str>,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<alert::Model>> {
        self.store.alerts(tenant, state, before, limit).await
    }

    /// Moves an alert to `state`, recording who and when.
    pub async fn update(&self, tenant: &str, id: &str, state: &str, by: &str) -> Result<alert::Model> {
        let row = self.store.alert(id).await?.filter(|a| a.tenant_id == tenant).ok_or(Error::NotFound)?;
        self.store.set_alert_state(row, state, by, self.clock.now()).await
    }

    /// Until `shutdown`, every `tick`: a detection round when this replica
    /// holds the lease (its term is ten ticks, so a dead holder's work
    /// passes on within ten), and the relay of new alerts to its watchers.
    pub async fn run(self: Arc<Self>, tick: Duration, shutdown: CancellationToken) {
        let leases = self.store.leases(self.clock.clone());
        let _ = self.relay().await;
        loop {
            if let Err(error) = self.round(&leases, tick * 10).await {
                tracing::error!(%error, "alerting round failed");
            }
            if let Err(error) = self.relay().await {
                tracing::error!(%error, "relaying alerts failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = leases.release(LEASE).await;
                    return;
                }
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }
}
