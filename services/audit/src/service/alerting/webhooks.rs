//! Webhook delivery. Each round takes the due deliveries, groups them by
//! webhook and sends each webhook's in order, at most [`CONCURRENCY`]
//! webhooks at once. A failure stays with its webhook, whatever failed (its
//! secret, Vault, the receiver, a timeout): its oldest delivery is retried
//! with exponential backoff and the webhook's other deliveries wait with it,
//! while every other webhook, of this tenant or another, goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;

use super::{Alerting, SECRET_KIND, secret_id, signature};
use crate::domain::egress::Egress;
use crate::error::{AuditError, Error, Result};
use crate::store::delivery;

/// Webhooks delivered to at once.
pub const CONCURRENCY: usize = 16;

/// How long one delivery may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How one send ended.
enum Sent {
    Delivered,
    /// The receiver did not take it: why, without its URL.
    Refused(String),
}

impl Alerting {
    /// Sends the due webhook deliveries once; returns how many succeeded.
    /// Only reading the due deliveries can fail the round.
    pub async fn deliver_due(&self) -> Result<usize> {
        let due = self.store.due_deliveries(self.clock.now()).await?;
        let mut hooks: Vec<Vec<delivery::Model>> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for d in due {
            let i = *index.entry((d.tenant_id.clone(), d.url.clone())).or_insert_with(|| {
                hooks.push(Vec::new());
                hooks.len() - 1
            });
            hooks[i].push(d);
        }
        let sent = futures::stream::iter(hooks)
            .map(|queue| self.deliver_in_order(queue))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<usize>>()
            .await;
        Ok(sent.into_iter().sum())
    }

    /// One webhook's deliveries, oldest first, until one fails. The webhook
    /// and its secret are the same for the whole queue: looked up and
    /// opened once.
    async fn deliver_in_order(&self, queue: Vec<delivery::Model>) -> usize {
        let Some(first) = queue.first() else { return 0 };
        let secret = match self.secret_of(first).await {
            Ok(Some(secret)) => secret,
            // Nothing to deliver to any more: the webhook was removed, or
            // the egress rules now refuse it.
            Ok(None) => {
                for d in &queue {
                    if let Err(error) = self.store.drop_delivery(&d.id).await {
                        tracing::error!(%error, alert = %d.alert_id, "could not drop a webhook delivery");
                    }
                }
                return 0;
            }
            Err(e) => {
                self.back_off(first, &e.to_string()).await;
                return 0;
            }
        };
        let mut sent = 0;
        for d in &queue {
            let why = match self.send(d, &secret).await {
                Ok(Sent::Delivered) => {
                    sent += 1;
                    continue;
                }
                Ok(Sent::Refused(why)) => why,
                Err(e) => e.to_string(),
            };
            self.back_off(d, &why).await;
            break;
        }
        sent
    }

    /// The opened secret of `d`'s webhook, or `None` when it is gone or the
    /// egress rules refuse it.
    async fn secret_of(&self, d: &delivery::Model) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let hook = self.webhooks(&d.tenant_id).await?.into_iter().find(|h| h.url == d.url);
        let Some(hook) = hook.filter(|_| self.egress.check_url(&d.url).is_ok()) else { return Ok(None) };
        let sealed = B64.decode(&hook.sealed_secret).map_err(|_| AuditError::WebhookSecretUnreadable)?;
        let secret =
            self.envelope.open_secret(&d.tenant_id, SECRET_KIND, &hook.url, &hook.data_key_id, &sealed).await?;
        Ok(Some(secret))
    }

    async fn send(&self, d: &delivery::Model, secret: &[u8]) -> Result<Sent> {
        let ts = self.clock.now().timestamp();
        let sent = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("x-guardline-timestamp", ts.to_string())
            .header("x-guardline-signature", signature(secret, ts, d.payload.as_bytes()))
            .header("x-guardline-secret-id", secret_id(secret))
            .body(d.payload.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                self.store.delivered(&d.id, self.clock.now()).await?;
                Ok(Sent::Delivered)
            }
            Ok(r) => Ok(Sent::Refused(format!("answered {}", r.status()))),
            // A webhook URL may carry a credential in its query: never shown.
            Err(e) => Ok(Sent::Refused(e.without_url().to_string())),
        }
    }

    /// Counts a failed attempt at `d` and postpones its webhook's deliveries
    /// by 200 ms doubling per attempt, at most ten minutes.
    async fn back_off(&self, d: &delivery::Model, why: &str) {
        let backoff =
            chrono::Duration::milliseconds(200 * (1i64 << d.attempts.clamp(0, 12))).min(chrono::Duration::minutes(10));
        tracing::warn!(alert = %d.alert_id, attempts = d.attempts + 1, %why, "webhook delivery failed, will retry");
        let next = self.clock.now() + backoff;
        if let Err(error) = self.store.retry_delivery(&d.id, &d.tenant_id, &d.url, next).await {
            tracing::error!(%error, alert = %d.alert_id, "could not reschedule a webhook delivery");
        }
    }
}

/// The webhook client: [`TIMEOUT`] per delivery, no redirects, and every
/// address a host name resolves to checked against the egress rules.
pub(super) fn http_client(egress: &Egress) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver(egress.clone())))
        .build()
        .map_err(|e| Error::Internal(format!("http client: {e}")))
}

/// The system resolver, keeping only the addresses the egress rules allow.
struct CheckedResolver(Egress);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| egress.check_ip(a.ip()).is_ok())
                .collect();
            if addrs.is_empty() {
                return Err("the webhook host resolves to no address it may reach".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
