//! Service-to-service authorization: a per-RPC allow-list of the SPIFFE
//! identities that may call it, enforced in a tower layer before any handler.
//!
//! Deny by default: an RPC without a rule is refused to every peer. A rule
//! opens a method to every peer our CA signed (`mesh`: the handler then
//! requires a user token or checks its own trusted services), or only to
//! named service identities (`allow`). End-user permissions are checked by
//! the handlers on top of this. Health and reflection are open to the mesh.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;

use crate::peer::{PeerInfo, SpiffeId};

/// Who may call one RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every verified mesh peer; the handler decides on the user's token.
    Mesh,
    /// Only these service identities.
    Only(HashSet<SpiffeId>),
}

/// Which service identities may call which RPC.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    rules: HashMap<String, Rule>,
    /// Whole services open to the mesh (health, reflection, test doubles).
    open_services: HashSet<String>,
}

impl AllowList {
    /// An empty list: every RPC refused until a rule opens it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restricts `method` (full gRPC path, e.g. `/guardline.audit.v1.AuditService/Append`)
    /// to `callers`. Calling it twice for a method widens the set.
    pub fn allow(mut self, method: &str, callers: impl IntoIterator<Item = SpiffeId>) -> Self {
        let rule = self.rules.entry(method.to_owned()).or_insert_with(|| Rule::Only(HashSet::new()));
        if let Rule::Only(set) = rule {
            set.extend(callers);
        }
        self
    }

    /// Opens `service`'s methods `names` (e.g. `guardline.vault.v1.LeadVaultService`,
    /// `["GetLead"]`) to every verified mesh peer.
    pub fn mesh(mut self, service: &str, names: &[&str]) -> Self {
        for n in names {
            self.rules.insert(format!("/{service}/{n}"), Rule::Mesh);
        }
        self
    }

    /// Opens every method of `service` to every verified mesh peer.
    pub fn mesh_service(mut self, service: &str) -> Self {
        self.open_services.insert(service.to_owned());
        self
    }

    /// The methods that have a rule, with it.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.rules.iter().map(|(m, r)| (m.as_str(), r))
    }

    /// Whether `caller` may call `method`.
    pub fn permits(&self, method: &str, caller: Option<&SpiffeId>) -> bool {
        match self.rules.get(method) {
            Some(Rule::Mesh) => true,
            Some(Rule::Only(allowed)) => caller.is_some_and(|c| allowed.contains(c)),
            None => {
                let service = method.trim_start_matches('/').split('/').next().unwrap_or_default();
                self.open_services.contains(service)
            }
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
    fn rules_open_or_restrict_their_method_and_the_rest_is_refused() {
        let vault = SpiffeId::service("td", "ns", "lead-vault");
        let agent = SpiffeId::service("td", "ns", "cli");
        let list = AllowList::new().allow("/a.S/Append", [vault.clone()]).mesh("a.S", &["Query"]);
        assert!(list.permits("/a.S/Append", Some(&vault)));
        assert!(!list.permits("/a.S/Append", Some(&agent)));
        assert!(!list.permits("/a.S/Append", None));
        assert!(list.permits("/a.S/Query", Some(&agent)));
        assert!(!list.permits("/a.S/Forgotten", Some(&vault)), "deny by default");
        let open = list.mesh_service("grpc.health.v1.Health");
        assert!(open.permits("/grpc.health.v1.Health/Check", Some(&agent)));
        assert!(!open.permits("/grpc.health.v1.Healthy/Check", Some(&agent)));
    }
}
