//! Rate limits on every RPC, so that one tenant, one user or one service
//! cannot starve the others: a request with a bearer token counts against
//! its user and its tenant (taken from the verified token, never from what
//! the caller says), one without against the service identity of its
//! certificate. Past a limit the answer is RESOURCE_EXHAUSTED with a
//! `google.rpc.RetryInfo` saying when to try again; the request is refused
//! before any handler work. Health and reflection are not limited.
//!
//! The limits are GCRA buckets (`governor`): `n` requests a second, in
//! bursts of up to `2n`. A verified token is handed on to the handler in the
//! request's extensions, so a token is verified once per request.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::body::Body;

use crate::peer::PeerInfo;
use crate::token::{TokenVerifier, Verified};

/// Requests a second per key; 0 switches a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// Per user (tenant and user id from the token).
    pub user: u32,
    /// Per tenant (from the token).
    pub tenant: u32,
    /// Per service identity, for requests without a user token.
    pub service: u32,
}

impl Rates {
    /// The defaults of the `--rate-limit-*` flags: far above what a person
    /// or a healthy integration sends, low enough that one flood cannot take
    /// a service from everyone else.
    pub const DEFAULT: Rates = Rates { user: 100, tenant: 1000, service: 5000 };
}

type Keyed<K> = DefaultKeyedRateLimiter<K>;

struct Limits {
    users: Option<Keyed<(String, String)>>,
    tenants: Option<Keyed<String>>,
    services: Option<Keyed<String>>,
    verifier: Option<Arc<TokenVerifier>>,
}

/// Which limit a request ran into.
#[derive(Debug, PartialEq, Eq)]
enum Exceeded {
    User(Duration),
    Tenant(Duration),
    Service(Duration),
}

fn bucket<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<Keyed<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::dashmap(Quota::per_second(rate).allow_burst(burst)))
}

fn take<K: std::hash::Hash + Eq + Clone>(limiter: Option<&Keyed<K>>, key: &K) -> Result<(), Duration> {
    match limiter {
        None => Ok(()),
        Some(l) => l.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
    }
}

impl Limits {
    /// Charges a request: its verified token's user and tenant, or else its
    /// peer's identity. A token that does not verify is charged to the peer
    /// (the handler refuses it).
    async fn charge(&self, token: Option<&str>, peer: &str) -> (Result<(), Exceeded>, Option<Verified>) {
        let verified = match (token, &self.verifier) {
            (Some(t), Some(v)) => v.verify(t).await.ok().map(|claims| Verified { token: t.to_owned(), claims }),
            _ => None,
        };
        let outcome = match &verified {
            Some(Verified { claims, .. }) => take(self.users.as_ref(), &(claims.tenant.clone(), claims.sub.clone()))
                .map_err(Exceeded::User)
                .and_then(|()| take(self.tenants.as_ref(), &claims.tenant).map_err(Exceeded::Tenant)),
            None => take(self.services.as_ref(), &peer.to_owned()).map_err(Exceeded::Service),
        };
        (outcome, verified)
    }

    /// Forgets keys whose buckets are full again, so memory follows the
    /// callers of the last few seconds.
    fn shrink(&self) {
        if let Some(l) = &self.users {
            l.retain_recent();
        }
        if let Some(l) = &self.tenants {
            l.retain_recent();
        }
        if let Some(l) = &self.services {
            l.retain_recent();
        }
    }
}

/// A budget of units a second per key, in bursts of twice that, for limits
/// that count more than requests (numbers looked up in one call, ...).
pub struct Budget(Keyed<String>);

impl Budget {
    /// `per_second` units a key; None (no limit) for 0.
    pub fn per_second(per_second: u32) -> Option<Self> {
        bucket(per_second).map(Self)
    }

    /// Takes `units` from `key`'s budget, or says how long until they are
    /// there (a request larger than a whole burst waits a second a burst).
    pub fn take(&self, key: &str, units: u32) -> Result<(), Duration> {
        let Some(n) = NonZeroU32::new(units) else { return Ok(()) };
        match self.0.check_key_n(&key.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            Err(_) => Err(Duration::from_secs(1)),
        }
    }
}

/// Limits every RPC of a server; see the module documentation.
#[derive(Clone)]
pub struct RateLimitLayer {
    limits: Arc<Limits>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer").finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Limits at `rates`; user tokens are verified with `verifier` (without
    /// one, every request counts against its peer).
    pub fn new(rates: Rates, verifier: Option<Arc<TokenVerifier>>) -> Self {
        let limits = Arc::new(Limits {
            users: bucket(rates.user),
            tenants: bucket(rates.tenant),
            services: bucket(rates.service),
            verifier,
        });
        let weak = Arc::downgrade(&limits);
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                tick.tick().await;
                while let Some(limits) = weak.upgrade() {
                    limits.shrink();
                    drop(limits);
                    tick.tick().await;
                }
            });
        }
        Self { limits }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited { inner, limits: self.limits.clone() }
    }
}

/// See [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    limits: Arc<Limits>,
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

/// RESOURCE_EXHAUSTED naming the limit (never the key) with a retry hint.
fn exhausted(e: &Exceeded) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let (whose, wait) = match e {
        Exceeded::User(w) => ("this user's", w),
        Exceeded::Tenant(w) => ("this tenant's", w),
        Exceeded::Service(w) => ("this service identity's", w),
    };
    let wait = (*wait).max(Duration::from_millis(1));
    let message = format!("{whose} rate limit is exceeded; retry after {} ms", wait.as_millis());
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(wait)),
    )
}

impl<S> tower::Service<http::Request<Body>> for RateLimited<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path();
        if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
            return Box::pin(self.inner.call(req));
        }
        // The service that was polled ready serves this request; a fresh
        // clone takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits.clone();
        Box::pin(async move {
            let token = bearer(req.headers());
            let peer = req
                .extensions()
                .get::<PeerInfo>()
                .and_then(|p| p.identity.as_ref().map(ToString::to_string))
                .unwrap_or_default();
            let (outcome, verified) = limits.charge(token.as_deref(), &peer).await;
            if let Err(e) = outcome {
                tracing::warn!(method = req.uri().path(), limit = ?e, "rate limit exceeded");
                return Ok(exhausted(&e).into_http());
            }
            if let Some(v) = verified {
                req.extensions_mut().insert(v);
            }
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_of_twice_the_rate_then_says_how_long_to_wait() {
        let b = bucket::<String>(5).expect("on");
        let key = "t1".to_owned();
        for i in 0..10 {
            assert!(take(Some(&b), &key).is_ok(), "request {i} of the burst");
        }
        let wait = take(Some(&b), &key).expect_err("past the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(take(Some(&b), &"t2".to_owned()).is_ok(), "another key has its own bucket");
        assert!(bucket::<String>(0).is_none(), "0 switches the limit off");
        assert!(take::<String>(None, &key).is_ok());
    }

    #[test]
    fn the_refusal_names_the_limit_and_carries_a_retry_hint() {
        use tonic_types::StatusExt;
        let s = exhausted(&Exceeded::Tenant(Duration::from_millis(250)));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("tenant's rate limit"), "{}", s.message());
        let retry = s.get_error_details().retry_info().cloned().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }
}
