//! Service-to-service authorization: a per-RPC allow-list of the SPIFFE
//! identities that may call it, enforced in a tower layer before any handler.
//!
//! RPCs without a rule are open to any peer whose certificate our CA signed;
//! end-user permissions are checked by the handlers on top of this.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;

use crate::peer::{PeerInfo, SpiffeId};

/// Which service identities may call which RPC.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    rules: HashMap<String, HashSet<SpiffeId>>,
}

impl AllowList {
    /// An empty list: every RPC open to any verified peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restricts `method` (full gRPC path, e.g. `/guardline.audit.v1.AuditService/Append`)
    /// to `callers`. Calling it twice for a method widens the set.
    pub fn allow(mut self, method: &str, callers: impl IntoIterator<Item = SpiffeId>) -> Self {
        self.rules.entry(method.to_owned()).or_default().extend(callers);
        self
    }

    /// Whether `caller` may call `method`.
    pub fn permits(&self, method: &str, caller: Option<&SpiffeId>) -> bool {
        match self.rules.get(method) {
            None => true,
            Some(allowed) => caller.is_some_and(|c| allowed.contains(c)),
        }
    }
}

/// Tower layer enforcing an [`AllowList`].
#[derive(Clone, Debug)]
pub struct AllowListLayer {
    list: Arc<AllowList>,
}

impl AllowListLayer {
    /// Enforces `list`.
    pub fn new(list: AllowList) -> Self {
        Self { list: Arc::new(list) }
    }
}

impl<S> tower::Layer<S> for AllowListLayer {
    type Service = AllowListService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AllowListService { inner, list: self.list.clone() }
    }
}

/// See [`AllowListLayer`].
#[derive(Clone, Debug)]
pub struct AllowListService<S> {
    inner: S,
    list: Arc<AllowList>,
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for AllowListService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let caller = req.extensions().get::<PeerInfo>().and_then(|p| p.identity.clone());
        let method = req.uri().path();
        if !self.list.permits(method, caller.as_ref()) {
            let who = caller.map_or_else(|| "a peer without a service identity".to_owned(), |c| c.to_string());
            tracing::warn!(%method, caller = %who, "service identity refused by allow-list");
            let status = tonic::Status::permission_denied(format!("{who} may not call {method}"));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_restrict_only_their_method() {
        let vault = SpiffeId::service("td", "ns", "lead-vault");
        let agent = SpiffeId::service("td", "ns", "cli");
        let list = AllowList::new().allow("/a.S/Append", [vault.clone()]);
        assert!(list.permits("/a.S/Append", Some(&vault)));
        assert!(!list.permits("/a.S/Append", Some(&agent)));
        assert!(!list.permits("/a.S/Append", None));
        assert!(list.permits("/a.S/Query", Some(&agent)));
    }
}
