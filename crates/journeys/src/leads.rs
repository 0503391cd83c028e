//! Journey 2, leads: an import with bad rows among good ones, masking by
//! role, scopes by owner and team, and a reveal with a reason that shows in
//! audit.

use anyhow::{Context, Result};
use guardline_proto::audit::v1 as apb;
use guardline_proto::common::v1::PageRequest;
use guardline_proto::vault::v1 as vpb;

use crate::{Mesh, Org, audit_events, bearer, refused, vault};

/// What journey 2 saw.
#[derive(Debug)]
pub struct Leads {
    /// The import's report.
    pub report: vpb::ImportLeadsResponse,
    /// Agent 1's leads, as agent 1 lists them.
    pub mine: Vec<vpb::Lead>,
    /// North's leads, as its team lead lists them.
    pub team: Vec<vpb::Lead>,
    /// Agent 2's leads, as agent 2 lists them.
    pub theirs: Vec<vpb::Lead>,
    /// What agent 1 got asking for one of agent 2's leads.
    pub hidden: tonic::Status,
    /// The admin's reveal of the first phone of `mine[0]`.
    pub revealed: vpb::RevealFieldResponse,
    /// The `lead.reveal` events in the tenant's audit log.
    pub reveal_events: Vec<apb::AuditEvent>,
}

/// The rows journey 2 imports, numbered as the lines of a CSV file with a
/// header: `good` leads (nine in ten for agent 1 in North, the rest for
/// agent 2 in South), then four bad rows: a number that is none, a number
/// too short, a second phone that is no number, and another owner's lead
/// without a team.
pub fn rows(org: &Org, good: u64) -> Vec<vpb::ImportRow> {
    let row = |n: u64, phones: Vec<String>, name: String, owner: &str, team: &str| vpb::ImportRow {
        row_number: n,
        lead: Some(vpb::LeadInput {
            phones,
            name,
            address: Some(vpb::Address {
                province: "广东省".into(), city: "深圳市".into(), ..Default::default()
            }),
            owner_id: owner.into(),
            team_id: team.into(),
            ..Default::default()
        }),
    };
    let mut rows: Vec<_> = (0..good)
        .map(|i| {
            let (owner, team) =
                if i < good * 9 / 10 { (&org.agent1_id, &org.teams[0]) } else { (&org.agent2_id, &org.teams[1]) };
            row(i + 2, vec![format!("139{:08}", 10_000_000 + i)], format!("客户{i}"), owner, team)
        })
        .collect();
    let bad = [
        (vec!["not a number".to_owned()], "坏行", ""),
        (vec!["12".to_owned()], "短号", ""),
        (vec!["13800000000".to_owned(), "xyz".to_owned()], "两个号", ""),
        (vec!["13700000000".to_owned()], "无队", org.agent1_id.as_str()),
    ];
    for (i, (phones, name, owner)) in bad.into_iter().enumerate() {
        rows.push(row(good + 2 + i as u64, phones, name.into(), owner, ""));
    }
    rows
}

/// Every lead `token` may list, page by page.
pub async fn list(m: &impl Mesh, org: &Org, token: &str) -> Result<Vec<vpb::Lead>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = vpb::ListLeadsRequest {
            tenant_id: org.tenant.clone(),
            page: Some(PageRequest { page_size: 1000, page_token: page_token.clone() }),
            ..Default::default()
        };
        let r = vault(m)?.list_leads(bearer(token, req)).await?.into_inner();
        out.extend(r.leads);
        page_token = r.page.map(|p| p.next_page_token).unwrap_or_default();
        if page_token.is_empty() {
            return Ok(out);
        }
    }
}

/// Journey 2 with `good` leads to import.
pub async fn leads(m: &impl Mesh, org: &Org, good: u64) -> Result<Leads> {
    m.step("2. Leads: an import with bad rows, masking by role, scopes, an audited reveal");
    let header = vpb::ImportHeader {
        tenant_id: org.tenant.clone(),
        default_region: "CN".into(),
        default_owner_id: String::new(),
    };
    use vpb::import_leads_request::Item;
    let stream: Vec<_> = std::iter::once(Item::Header(header))
        .chain(rows(org, good).into_iter().map(Item::Row))
        .map(|item| vpb::ImportLeadsRequest { item: Some(item) })
        .collect();
    let report = vault(m)?.import_leads(bearer(&org.admin, tokio_stream::iter(stream))).await?.into_inner();
    m.say(&format!("admin imported {} leads; refused {} rows:", report.imported, report.errors.len()));
    for e in &report.errors {
        m.say(&format!("  row {}: {}: {}", e.row_number, e.field, e.description));
    }
    let (mine, team, theirs) =
        (list(m, org, &org.agent1).await?, list(m, org, &org.team_lead).await?, list(m, org, &org.agent2).await?);
    let sample = mine.first().context("agent 1 sees no lead")?;
    m.say(&format!(
        "agent1 sees {} leads (own only), masked: {} / {} / {}; lead1 sees North's {}",
        mine.len(),
        sample.phones[0].masked,
        sample.name.as_ref().map(|n| n.masked.as_str()).unwrap_or(""),
        sample.address.as_ref().map(|a| a.masked.as_str()).unwrap_or(""),
        team.len()
    ));
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: theirs[0].id.clone() };
    let hidden = refused(vault(m)?.get_lead(bearer(&org.agent1, get)).await, "agent 1 reading agent 2's lead")?;
    m.say(&format!("agent1 asks for agent2's lead: {:?}", hidden.code()));
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: sample.id.clone(),
        field: vpb::LeadField::Phone as i32,
        index: 0,
        reason: "customer called back about the quote".into(),
    };
    let revealed = vault(m)?.reveal_field(bearer(&org.admin, reveal)).await?.into_inner();
    let reveal_events = audit_events(m, org, "lead.reveal").await?;
    m.say(&format!(
        "admin reveals the phone with a reason: clear value returned, audited ({} reveals left today)",
        revealed.remaining_quota
    ));
    Ok(Leads { report, mine, team, theirs, hidden, revealed, reveal_events })
}
