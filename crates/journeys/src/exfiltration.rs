//! Journey 5, exfiltration: a leaver whose role allows exports takes more
//! leads than the tenant's threshold, and the auditor's watch (and any
//! webhook) receives the alert.

use std::time::Duration;

use anyhow::{Context, Result};
use guardline_proto::audit::v1 as apb;
use guardline_proto::identity::v1 as idpb;
use guardline_proto::vault::v1 as vpb;

use crate::{Mesh, Org, PASSWORD, audit_service, bearer, identity, login, vault};

/// What journey 5 saw.
#[derive(Debug)]
pub struct Exfiltration {
    /// Rows the leaver exported.
    pub exported: u64,
    /// Rows that carried a clear phone number (the role has no reveal).
    pub clear_rows: u64,
    /// The alert the auditor's watch received.
    pub alert: apb::Alert,
}

/// Alert thresholds with `bulk_records` in an hour; the rest generous.
fn thresholds(bulk_records: u64) -> apb::AlertThresholds {
    apb::AlertThresholds {
        bulk_records,
        bulk_window_seconds: 3600,
        failed_logins: 20,
        failed_login_window_seconds: 600,
        modifications: 100,
        modification_window_seconds: 600,
        delivery_gap_seconds: 3600,
    }
}

/// Journey 5: alerts on more than `threshold` records exported by one user
/// in an hour (also at `webhooks`); the leaver creates `taken` leads and
/// exports them. The alert must arrive within 20 s.
pub async fn exfiltration(
    m: &impl Mesh,
    org: &Org,
    threshold: u64,
    taken: u32,
    webhooks: Vec<apb::Webhook>,
) -> Result<Exfiltration> {
    m.step("5. Exfiltration: a leaver's bulk export raises an alert");
    let mut audit = audit_service(m)?;
    let configure = apb::ConfigureAlertsRequest {
        tenant_id: org.tenant.clone(),
        thresholds: Some(thresholds(threshold)),
        webhooks,
    };
    audit.configure_alerts(bearer(&org.admin, configure)).await?;
    let watch = apb::WatchAlertsRequest { tenant_id: org.tenant.clone() };
    let mut alerts = audit.watch_alerts(bearer(&org.auditor, watch)).await?.into_inner();
    m.say(&format!(
        "the tenant alerts on more than {threshold} records exported by one user in an hour; the auditor watches"
    ));
    let token = leaver(m, org).await?;
    for i in 0..taken {
        let input =
            vpb::LeadInput { phones: vec![format!("+86138555{i:05}")], name: "客户".into(), ..Default::default() };
        let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
        vault(m)?.create_lead(bearer(&token, req)).await?;
    }
    let export = vpb::ExportLeadsRequest { tenant_id: org.tenant.clone(), ..Default::default() };
    let mut rows = vault(m)?.export_leads(bearer(&token, export)).await?.into_inner();
    let (mut exported, mut clear_rows) = (0, 0);
    while let Some(row) = rows.message().await? {
        exported += 1;
        clear_rows += u64::from(!row.clear_phones.is_empty());
    }
    m.say(&format!("a user whose role allows exports exports {exported} leads (masked)"));
    let alert = tokio::time::timeout(Duration::from_secs(20), alerts.message())
        .await
        .context("no alert within 20 s")??
        .context("the alert stream ended")?;
    m.say(&format!("ALERT {}: {}", alert.rule, alert.summary));
    Ok(Exfiltration { exported, clear_rows, alert })
}

/// An agent of North whose role allows exports (a leaver's account);
/// returns its token.
async fn leaver(m: &impl Mesh, org: &Org) -> Result<String> {
    let role = idpb::CreateRoleRequest {
        tenant_id: org.tenant.clone(),
        name: "exporting_agent".into(),
        permissions: vec!["lead.read:own".into(), "lead.write:own".into(), "lead.export".into()],
    };
    identity(m, m.gateway())?.create_role(bearer(&org.admin, role)).await?;
    let user = idpb::CreateUserRequest {
        tenant_id: org.tenant.clone(),
        login: "leaver".into(),
        display_name: "leaver".into(),
        password: PASSWORD.into(),
        roles: vec!["exporting_agent".into()],
        team_ids: vec![org.teams[0].clone()],
    };
    identity(m, m.gateway())?.create_user(bearer(&org.admin, user)).await?;
    Ok(login(m, &org.tenant, "leaver", "").await?)
}
