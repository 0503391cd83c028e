//! The gRPC face of the lead vault: resolves the caller, converts proto to
//! domain and back, and masks every value it returns (clear values leave only
//! through `RevealField`). RPCs not built yet answer UNIMPLEMENTED.

use std::sync::Arc;

use guardline_authz::Subject;
use guardline_proto::common::v1::{MaskedValue, PageResponse};
use guardline_proto::vault::v1 as pb;
use guardline_proto::vault::v1::lead_vault_service_server::{LeadVaultService, LeadVaultServiceServer};
use guardline_runtime::args::MeshArgs;
use guardline_runtime::authz::AllowList;
use guardline_runtime::token::TokenVerifier;
use tonic::{Request, Response, Status};

use crate::domain::mask;
use crate::error::Error;
use crate::service::{Address, Field, LeadInput, Vault, View};

/// The API.
#[derive(Debug)]
pub struct Api {
    vault: Arc<Vault>,
    verifier: Arc<TokenVerifier>,
}

impl Api {
    /// Serves `vault`; user tokens verified with `verifier`.
    pub fn new(vault: Arc<Vault>, verifier: Arc<TokenVerifier>) -> Self {
        Self { vault, verifier }
    }

    async fn user<T>(&self, req: &Request<T>) -> Result<Subject, Status> {
        let c = self.verifier.authenticate(req).await?;
        Ok(Subject::from_claims(&c.tenant, &c.sub, &c.teams, &c.perms))
    }
}

/// The generated server with the message size limits applied.
pub fn server(api: Api, max_message_bytes: usize) -> LeadVaultServiceServer<Api> {
    LeadVaultServiceServer::new(api)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Which service identities may call which RPC.
pub fn allow_list(mesh: &MeshArgs) -> AllowList {
    AllowList::new()
        .allow("/guardline.vault.v1.LeadVaultService/CheckConsent", [mesh.identity_of("dialer-policy")])
        .allow("/guardline.vault.v1.LeadVaultService/GetDialTarget", [mesh.identity_of("dialer-policy")])
}

fn masked(s: String) -> Option<MaskedValue> {
    Some(MaskedValue { masked: s, clear: false })
}

fn to_pb(v: View) -> pb::Lead {
    let (phones, name, address) = Vault::masked(&v);
    let r = v.row;
    pb::Lead {
        id: r.id,
        tenant_id: r.tenant_id,
        owner_id: r.owner_id,
        team_id: r.team_id,
        phones: phones.into_iter().map(|p| MaskedValue { masked: p, clear: false }).collect(),
        name: masked(name),
        address: masked(address),
        needs: masked(mask::WITHHELD.into()),
        notes: masked(mask::WITHHELD.into()),
        tags: serde_json::from_str(&r.tags).unwrap_or_default(),
        source: r.source,
        region: r.region,
        time_zone: r.time_zone,
        status: pb::LeadStatus::New as i32,
        version: r.version as u64,
    }
}

fn input(i: pb::LeadInput) -> LeadInput {
    let a = i.address.unwrap_or_default();
    LeadInput {
        phones: i.phones,
        default_region: i.default_region,
        name: i.name,
        address: Address { province: a.province, city: a.city, district: a.district, street: a.street },
        needs: i.needs,
        notes: i.notes,
        tags: i.tags,
        source: i.source,
        time_zone: i.time_zone,
        owner_id: i.owner_id,
        team_id: i.team_id,
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl LeadVaultService for Api {
    async fn create_lead(&self, req: Request<pb::CreateLeadRequest>) -> Reply<pb::Lead> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let lead = r.lead.ok_or_else(|| Status::from(Error::invalid("lead", "required")))?;
        Ok(Response::new(to_pb(self.vault.create(&who, &r.tenant_id, input(lead)).await?)))
    }

    async fn get_lead(&self, req: Request<pb::GetLeadRequest>) -> Reply<pb::Lead> {
        let who = self.user(&req).await?;
        let r = req.get_ref();
        Ok(Response::new(to_pb(self.vault.get(&who, &r.tenant_id, &r.lead_id).await?)))
    }

    async fn list_leads(&self, req: Request<pb::ListLeadsRequest>) -> Reply<pb::ListLeadsResponse> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let page = r.page.unwrap_or_default();
        let size = if page.page_size == 0 { 50 } else { u64::from(page.page_size).min(1000) };
        let before = (!page.page_token.is_empty()).then_some(page.page_token.as_str());
        let views = self.vault.list(&who, &r.tenant_id, before, size).await?;
        let next = if views.len() as u64 == size {
            views.last().map(|v| v.row.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListLeadsResponse {
            leads: views.into_iter().map(to_pb).collect(),
            page: Some(PageResponse { next_page_token: next }),
        }))
    }

    async fn reveal_field(&self, req: Request<pb::RevealFieldRequest>) -> Reply<pb::RevealFieldResponse> {
        let who = self.user(&req).await?;
        let r = req.into_inner();
        let field = match pb::LeadField::try_from(r.field) {
            Ok(pb::LeadField::Phone) => Field::Phone(r.index as usize),
            Ok(pb::LeadField::Name) => Field::Name,
            Ok(pb::LeadField::Address) => Field::Address,
            Ok(pb::LeadField::Needs) => Field::Needs,
            Ok(pb::LeadField::Notes) => Field::Notes,
            _ => return Err(Error::invalid("field", "name a field: PHONE, NAME, ADDRESS, NEEDS or NOTES").into()),
        };
        let (value, remaining_quota) = self.vault.reveal(&who, &r.tenant_id, &r.lead_id, field, &r.reason).await?;
        Ok(Response::new(pb::RevealFieldResponse { value, remaining_quota }))
    }
}
