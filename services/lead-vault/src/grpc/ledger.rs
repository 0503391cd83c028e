//! The audit log as the ledger of lead versions: every committed update or
//! transfer of a lead is an audit event naming the lead and its new version
//! (written in the same transaction as the change), so the highest version
//! the log holds for a lead is the least its row may carry. A row restored
//! from an older copy carries less. Read with the caller's own token, who
//! holds `audit.read` to run `VerifyIntegrity` at all.

use std::collections::HashMap;

use guardline_proto::audit::v1::QueryEventsRequest;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::common::v1::PageRequest;
use guardline_runtime::GrpcChannel;
use tonic::metadata::MetadataValue;

use crate::error::{Error, Result};
use crate::service::VersionLedger;

/// The actions that give a lead a new version.
const VERSIONING: [&str; 2] = ["lead.update", "lead.transfer"];

/// Audit's events, queried as the caller.
pub struct AuditVersions {
    client: AuditServiceClient<GrpcChannel>,
    authorization: MetadataValue<tonic::metadata::Ascii>,
}

impl AuditVersions {
    /// The ledger over `channel`, asked with the `authorization` header of
    /// the request being served.
    pub fn new(channel: GrpcChannel, authorization: MetadataValue<tonic::metadata::Ascii>) -> Self {
        Self { client: AuditServiceClient::new(channel), authorization }
    }
}

fn unavailable(s: &tonic::Status) -> Error {
    Error::Unavailable(format!("audit could not be read for the leads' versions: {}", s.code()))
}

#[tonic::async_trait]
impl VersionLedger for AuditVersions {
    async fn latest_versions(&self, tenant: &str) -> Result<HashMap<String, i64>> {
        let mut latest: HashMap<String, i64> = HashMap::new();
        for action in VERSIONING {
            let mut token = String::new();
            loop {
                let page = PageRequest { page_size: 1000, page_token: token.clone() };
                let q = QueryEventsRequest {
                    tenant_id: tenant.into(),
                    action: action.into(),
                    page: Some(page),
                    ..Default::default()
                };
                let mut req = tonic::Request::new(q);
                req.metadata_mut().insert("authorization", self.authorization.clone());
                let r = self.client.clone().query_events(req).await.map_err(|s| unavailable(&s))?.into_inner();
                for e in r.events {
                    let Some(res) = e.resource.filter(|r| r.r#type == "lead") else { continue };
                    let Some(v) = e.details.get("version").and_then(|v| v.parse::<i64>().ok()) else { continue };
                    let entry = latest.entry(res.id).or_insert(v);
                    *entry = (*entry).max(v);
                }
                token = r.page.map(|p| p.next_page_token).unwrap_or_default();
                if token.is_empty() {
                    break;
                }
            }
        }
        Ok(latest)
    }
}
