//! The lead vault over real mTLS with the real identity and audit services,
//! on SQLite with the local keyring and on PostgreSQL with OpenBao.

use std::sync::Arc;
use std::time::Duration;

use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::vault::v1 as pb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::GrpcChannel;
use guardline_runtime::args::DatabaseArgs;
use guardline_runtime::error::{error_info, field_violations, reason};
use guardline_testmesh::{Keys, TestMesh};
use tonic::{Code, Request};

struct Mesh {
    t: TestMesh,
    vault_uri: String,
    id_uri: String,
    audit_uri: String,
    rec_uri: String,
    vault_db: String,
    vault_args: guardline_lead_vault::Args,
}

async fn start(postgres: bool) -> Mesh {
    let mut t = TestMesh::new(postgres, Keys::OpenBao, |_| {}).await;
    let mut recordings = t.recordings_args();
    recordings.upload_idle_timeout = Duration::from_secs(5);
    let vault = guardline_lead_vault::Args { reveal_quota: 3, export_quota: 3, ..t.vault_args() };
    t.start_recordings(recordings).await;
    t.start_identity(t.identity_args()).await;
    t.start_audit(t.audit_args()).await;
    t.start_vault(vault.clone()).await;
    t.wait_serving("gateway").await;
    Mesh {
        vault_uri: t.endpoint("lead-vault"),
        id_uri: t.endpoint("identity"),
        audit_uri: t.endpoint("audit"),
        rec_uri: t.endpoint("recordings"),
        vault_db: t.database("lead-vault").to_owned(),
        vault_args: vault,
        t,
    }
}

impl Mesh {
    /// Stops the lead vault (the process is gone; what it committed stays).
    async fn stop_vault(&mut self) {
        self.t.stop("lead-vault").await;
    }

    /// Starts the lead vault again on the same address and database.
    async fn start_vault(&mut self) {
        self.t.start_vault(self.vault_args.clone()).await;
    }

    fn channel(&self, uri: &str, name: &str) -> GrpcChannel {
        self.t.connect(uri, name)
    }
    fn vault(&self) -> LeadVaultServiceClient<GrpcChannel> {
        LeadVaultServiceClient::new(self.channel(&self.vault_uri, "gateway"))
    }
    fn identity(&self) -> IdentityServiceClient<GrpcChannel> {
        IdentityServiceClient::new(self.channel(&self.id_uri, "platform-admin"))
    }
}

struct Tenant {
    id: String,
    tokens: Vec<String>,
}

/// agent1 (team A), agent2 (team B), lead1 (leads A), comp1 (tenant-wide reader).
async fn tenant(m: &Mesh) -> Tenant {
    let mut p = m.identity();
    let id = p
        .create_tenant(idpb::CreateTenantRequest { name: "V".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let mut teams = Vec::new();
    for n in ["A", "B"] {
        teams.push(
            p.create_team(idpb::CreateTeamRequest { tenant_id: id.clone(), name: n.into() })
                .await
                .expect("team")
                .into_inner()
                .id,
        );
    }
    let pw = "a long enough passphrase".to_owned();
    let users = [
        ("agent1", "agent", 0),
        ("agent2", "agent", 1),
        ("lead1", "team_lead", 0),
        ("comp1", "compliance_officer", 0),
        ("lead2", "team_lead", 0),
    ];
    let mut ids = Vec::new();
    for (login, role, team) in users {
        let u = p
            .create_user(idpb::CreateUserRequest {
                tenant_id: id.clone(),
                login: login.into(),
                display_name: login.into(),
                password: pw.clone(),
                roles: vec![role.into()],
                team_ids: vec![teams[team].clone()],
            })
            .await
            .expect("user");
        ids.push(u.into_inner().id);
    }
    p.set_team_members(idpb::SetTeamMembersRequest {
        tenant_id: id.clone(),
        team_id: teams[0].clone(),
        member_ids: vec![ids[0].clone()],
        lead_ids: vec![ids[2].clone(), ids[4].clone()],
    })
    .await
    .expect("lead");
    let mut tokens = Vec::new();
    for (login, ..) in users {
        tokens.push(
            p.login(idpb::LoginRequest {
                tenant_id: id.clone(),
                login: login.into(),
                password: pw.clone(),
                totp_code: String::new(),
                context: None,
            })
            .await
            .expect("login")
            .into_inner()
            .access_token,
        );
    }
    Tenant { id, tokens }
}

fn with<T>(token: &str, mut r: Request<T>) -> Request<T> {
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

fn lead(phones: &[&str]) -> pb::LeadInput {
    pb::LeadInput {
        phones: phones.iter().map(|p| (*p).to_owned()).collect(),
        default_region: "CN".into(),
        name: "张三".into(),
        address: Some(pb::Address {
            province: "广东省".into(),
            city: "深圳市".into(),
            district: "南山区".into(),
            street: "科技园路1号".into(),
        }),
        needs: "wants a quote for car insurance".into(),
        notes: "call after 6pm".into(),
        ..Default::default()
    }
}

async fn create(m: &Mesh, t: &Tenant, who: usize, input: pb::LeadInput) -> Result<pb::Lead, tonic::Status> {
    m.vault()
        .create_lead(with(
            &t.tokens[who],
            Request::new(pb::CreateLeadRequest { tenant_id: t.id.clone(), lead: Some(input) }),
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(m: &Mesh, t: &Tenant, who: &str, id: &str) -> Result<pb::Lead, tonic::Status> {
    m.vault()
        .get_lead(with(who, Request::new(pb::GetLeadRequest { tenant_id: t.id.clone(), lead_id: id.into() })))
        .await
        .map(tonic::Response::into_inner)
}

async fn reveal(
    m: &Mesh,
    t: &Tenant,
    who: usize,
    id: &str,
    field: pb::LeadField,
    reason: &str,
) -> Result<String, tonic::Status> {
    let r = pb::RevealFieldRequest {
        tenant_id: t.id.clone(),
        lead_id: id.into(),
        field: field as i32,
        index: 0,
        reason: reason.into(),
    };
    m.vault().reveal_field(with(&t.tokens[who], Request::new(r))).await.map(|r| r.into_inner().value)
}

async fn leads_are_encrypted_masked_and_scoped(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let l = create(&m, &t, 0, lead(&["138 1234 5678"])).await.expect("create");
    assert_eq!(l.phones[0].masked, "+86 138****5678");
    assert_eq!(l.time_zone, "Asia/Shanghai", "derived from a Chinese number");
    let us = create(&m, &t, 0, lead(&["+1 202 555 0143"])).await.expect("a US lead");
    assert_eq!((us.region.as_str(), us.time_zone.as_str()), ("US", ""), "the US has many zones: left to the dialer");
    let read = get(&m, &t, &t.tokens[0], &l.id).await.expect("owner reads");
    assert_eq!(read.name.expect("name").masked, "张*");
    assert_eq!(read.address.expect("address").masked, "广东省 深圳市");
    assert_eq!(read.needs.expect("needs").masked, "[withheld]");
    assert_eq!(get(&m, &t, &t.tokens[1], &l.id).await.expect_err("another team's agent").code(), Code::NotFound);
    assert!(get(&m, &t, &t.tokens[2], &l.id).await.is_ok(), "the team lead");
    assert!(get(&m, &t, &t.tokens[3], &l.id).await.is_ok(), "a tenant-wide reader");
    let other = tenant(&m).await;
    assert_eq!(get(&m, &t, &other.tokens[3], &l.id).await.expect_err("other tenant").code(), Code::PermissionDenied);
    let list =
        |who: &str| with(who, Request::new(pb::ListLeadsRequest { tenant_id: t.id.clone(), ..Default::default() }));
    assert_eq!(m.vault().list_leads(list(&t.tokens[0])).await.expect("list").into_inner().leads.len(), 2);
    assert_eq!(m.vault().list_leads(list(&t.tokens[1])).await.expect("list").into_inner().leads.len(), 0);

    // Bad input names the field and writes nothing.
    let f = |r: Result<pb::Lead, tonic::Status>| field_violations(&r.expect_err("refused"))[0].field.clone();
    assert_eq!(f(create(&m, &t, 0, lead(&["+8613912345678", "not a number"])).await), "lead.phones[1]");
    assert_eq!(
        f(create(&m, &t, 0, lead(&["+8613812345678"])).await),
        "lead.phones[0]",
        "a duplicate of the first lead"
    );
    let mut bad_tz = lead(&["+8613712345678"]);
    bad_tz.time_zone = "Mars/Olympus".into();
    assert_eq!(f(create(&m, &t, 0, bad_tz).await), "lead.time_zone");
    assert_eq!(
        m.vault().list_leads(list(&t.tokens[3])).await.expect("list").into_inner().leads.len(),
        2,
        "nothing half-written"
    );
    let mut not_mine = lead(&["+8613612345678"]);
    not_mine.owner_id = "someone-else".into();
    assert_eq!(create(&m, &t, 0, not_mine).await.expect_err("agent for another owner").code(), Code::PermissionDenied);

    // The database holds no clear phone, name or address.
    let db = guardline_runtime::storage::connect(&DatabaseArgs::url(m.vault_db.clone())).await.expect("db");
    use sea_orm::{ConnectionTrait, Statement};
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT * FROM vault_leads"))
        .await
        .expect("rows");
    let dump = format!("{rows:?}");
    for clear in ["13812345678", "张三", "深圳", "insurance"] {
        assert!(!dump.contains(clear), "{clear} found in clear");
    }
}

async fn reveal_needs_permission_a_reason_and_audit(postgres: bool) {
    let mut m = start(postgres).await;
    let t = tenant(&m).await;
    let l = create(&m, &t, 0, lead(&["+8613812345678"])).await.expect("create");
    assert_eq!(
        reveal(&m, &t, 0, &l.id, pb::LeadField::Phone, "customer asked").await.expect_err("agent").code(),
        Code::PermissionDenied
    );
    // Authorization comes first: a caller who may not reveal learns nothing
    // of the request's rules, not even that the reason is too short.
    let unauthorized = reveal(&m, &t, 0, &l.id, pb::LeadField::Phone, "").await.expect_err("agent, no reason");
    assert_eq!(unauthorized.code(), Code::PermissionDenied);
    let short = reveal(&m, &t, 2, &l.id, pb::LeadField::Phone, "").await.expect_err("no reason");
    assert_eq!(field_violations(&short)[0].field, "reason");
    assert_eq!(
        reveal(&m, &t, 2, &l.id, pb::LeadField::Phone, "customer asked for a call back").await.expect("team lead"),
        "+8613812345678"
    );
    assert_eq!(reveal(&m, &t, 2, &l.id, pb::LeadField::Name, "to address the customer").await.expect("name"), "张三");
    let outside = reveal(&m, &t, 1, &l.id, pb::LeadField::Phone, "curious").await.expect_err("other team");
    assert_eq!(outside.code(), Code::PermissionDenied, "an agent of another team may not reveal at all");

    // The third reveal of the day is the last one (quota 3 in this mesh).
    assert!(reveal(&m, &t, 2, &l.id, pb::LeadField::Address, "to send the contract").await.is_ok());
    let spent = reveal(&m, &t, 2, &l.id, pb::LeadField::Needs, "one too many").await.expect_err("quota");
    assert_eq!((spent.code(), reason(&spent).as_str()), (Code::ResourceExhausted, "REVEAL_QUOTA_USED_UP"));

    // With audit down, nothing is revealed.
    m.t.stop("audit").await;
    let down = reveal(&m, &t, 4, &l.id, pb::LeadField::Phone, "customer asked again").await.expect_err("audit down");
    assert_eq!(down.code(), Code::Unavailable);
    // More refused reveals than the quota of 3: none of them used it up.
    for _ in 0..4 {
        let again =
            reveal(&m, &t, 4, &l.id, pb::LeadField::Phone, "customer asked again").await.expect_err("still down");
        assert_eq!(again.code(), Code::Unavailable, "a refused reveal does not use up quota");
    }
}

async fn a_ciphertext_moved_to_another_lead_does_not_open(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let a = create(&m, &t, 0, lead(&["+8613812345678"])).await.expect("create");
    let b = create(&m, &t, 0, lead(&["+8613912345678"])).await.expect("create");
    let c = create(&m, &t, 0, lead(&["+8613712345678"])).await.expect("create");
    let db = guardline_runtime::storage::connect(&DatabaseArgs::url(m.vault_db.clone())).await.expect("db");
    use guardline_lead_vault::store::lead as entity;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
    let row_a = entity::Entity::find_by_id(a.id.clone()).one(&db).await.expect("q").expect("row");
    entity::ActiveModel { id: Set(b.id.clone()), name_sealed: Set(row_a.name_sealed.clone()), ..Default::default() }
        .update(&db)
        .await
        .expect("move");
    let moved = get(&m, &t, &t.tokens[0], &b.id).await.expect_err("moved ciphertext");
    let info = error_info(&moved).expect("the refusal's ErrorInfo");
    assert_eq!((moved.code(), info.reason.as_str()), (Code::DataLoss, "LEAD_FIELD_UNREADABLE"));
    assert_eq!(info.metadata["field"], "name");
    assert!(get(&m, &t, &t.tokens[0], &a.id).await.is_ok(), "the original still opens");

    // An owner column edited in the database is caught by the record MAC: the
    // edit does not hand the lead to anyone, and the scan names it.
    entity::ActiveModel { id: Set(a.id.clone()), owner_id: Set("intruder".into()), ..Default::default() }
        .update(&db)
        .await
        .expect("tamper");
    let tampered = get(&m, &t, &t.tokens[3], &a.id).await.expect_err("tampered metadata");
    assert_eq!((tampered.code(), reason(&tampered).as_str()), (Code::DataLoss, "LEAD_INTEGRITY_FAILED"));
    // So is a time zone moved to open another calling window.
    entity::ActiveModel { id: Set(c.id.clone()), time_zone: Set("America/Los_Angeles".into()), ..Default::default() }
        .update(&db)
        .await
        .expect("tamper");
    let moved_zone = get(&m, &t, &t.tokens[3], &c.id).await.expect_err("tampered time zone");
    assert_eq!(reason(&moved_zone), "LEAD_INTEGRITY_FAILED");
    let scan = |who: &str| with(who, Request::new(pb::VerifyIntegrityRequest { tenant_id: t.id.clone() }));
    assert_eq!(m.vault().verify_integrity(scan(&t.tokens[0])).await.expect_err("agent").code(), Code::PermissionDenied);
    let report = m.vault().verify_integrity(scan(&t.tokens[3])).await.expect("scan").into_inner();
    assert_eq!(report.scanned, 3);
    let mut found: Vec<(String, String)> = report.findings.into_iter().map(|f| (f.lead_id, f.problem)).collect();
    found.sort();
    let mut want = vec![
        (a.id.clone(), "mac_mismatch".to_owned()),
        (b.id.clone(), "undecryptable".to_owned()),
        (c.id.clone(), "mac_mismatch".to_owned()),
    ];
    want.sort();
    assert_eq!(found, want);
}

async fn the_consent_ledger(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let l = create(&m, &t, 0, lead(&["+8613812345678"])).await.expect("create");
    let now = prost_types::Timestamp::from(std::time::SystemTime::now());
    let record = |channel: &str| pb::RecordConsentRequest {
        tenant_id: t.id.clone(),
        lead_id: l.id.clone(),
        purpose: "marketing".into(),
        channel: channel.into(),
        evidence: Some(pb::ConsentEvidence {
            form_sha256: vec![7; 32],
            disclosure_version: "v3".into(),
            ..Default::default()
        }),
        granted_at: Some(now),
        expires_at: None,
    };
    let c = m
        .vault()
        .record_consent(with(&t.tokens[0], Request::new(record("web_form"))))
        .await
        .expect("owner records")
        .into_inner();
    assert_eq!(
        m.vault()
            .record_consent(with(&t.tokens[1], Request::new(record("web_form"))))
            .await
            .expect_err("other team")
            .code(),
        Code::NotFound
    );
    let bad = m
        .vault()
        .record_consent(with(&t.tokens[0], Request::new(record("carrier_pigeon"))))
        .await
        .expect_err("channel");
    assert_eq!(field_violations(&bad)[0].field, "channel");

    // Only dialer-policy asks; the answer follows withdrawal at once.
    let check = || pb::CheckConsentRequest {
        tenant_id: t.id.clone(),
        lead_id: l.id.clone(),
        purpose: "marketing".into(),
        at: None,
    };
    let dialer = || LeadVaultServiceClient::new(m.channel(&m.vault_uri, "dialer-policy"));
    assert!(dialer().check_consent(check()).await.expect("check").into_inner().active);
    assert_eq!(m.vault().check_consent(check()).await.expect_err("not the dialer").code(), Code::PermissionDenied);
    let w = pb::WithdrawConsentRequest { tenant_id: t.id.clone(), consent_id: c.id.clone() };
    m.vault().withdraw_consent(with(&t.tokens[0], Request::new(w))).await.expect("withdraw");
    assert!(
        !dialer().check_consent(check()).await.expect("check").into_inner().active,
        "withdrawal is effective at once"
    );
    let h = pb::GetConsentHistoryRequest { tenant_id: t.id.clone(), lead_id: l.id.clone() };
    let history =
        m.vault().get_consent_history(with(&t.tokens[0], Request::new(h))).await.expect("history").into_inner().records;
    assert_eq!(history.len(), 1);
    assert!(history[0].withdrawn_at.is_some());
    assert_eq!(history[0].evidence.as_ref().expect("evidence").form_sha256, vec![7; 32]);
}

async fn lead_ids(m: &Mesh, t: &Tenant, token: &str) -> Vec<String> {
    let r = pb::ListLeadsRequest { tenant_id: t.id.clone(), ..Default::default() };
    m.vault()
        .list_leads(with(token, Request::new(r)))
        .await
        .expect("list")
        .into_inner()
        .leads
        .into_iter()
        .map(|l| l.id)
        .collect()
}

async fn updates_and_transfers(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let l = create(&m, &t, 0, lead(&["+8613812345678"])).await.expect("create");
    let update = |who: &str, version: u64, fields: &[&str], name: &str| {
        let mut input = lead(&[]);
        input.name = name.into();
        with(
            who,
            Request::new(pb::UpdateLeadRequest {
                tenant_id: t.id.clone(),
                lead_id: l.id.clone(),
                expected_version: version,
                lead: Some(input),
                update_fields: fields.iter().map(|f| (*f).to_owned()).collect(),
                status: 0,
            }),
        )
    };
    let v2 =
        m.vault().update_lead(update(&t.tokens[0], 1, &["name"], "李四")).await.expect("owner updates").into_inner();
    assert_eq!((v2.version, v2.name.expect("name").masked.as_str()), (2, "李*"));
    assert_eq!(v2.phones[0].masked, "+86 138****5678", "untouched fields still open under the new version");
    assert_eq!(
        m.vault().update_lead(update(&t.tokens[0], 1, &["name"], "王五")).await.expect_err("stale").code(),
        Code::Aborted
    );
    let bad = m.vault().update_lead(update(&t.tokens[0], 2, &["salary"], "x")).await.expect_err("unknown field");
    assert_eq!(field_violations(&bad)[0].field, "update_fields[0]");
    // An update checks what it changes as a creation would: the address too.
    let mut long_city = update(&t.tokens[0], 2, &["address"], "x");
    if let Some(input) = long_city.get_mut().lead.as_mut() {
        input.address = Some(pb::Address { city: "长".repeat(201), ..Default::default() });
    }
    let bad = m.vault().update_lead(long_city).await.expect_err("an over-long city");
    assert_eq!(field_violations(&bad)[0].field, "lead.address.city");
    assert_eq!(
        m.vault().update_lead(update(&t.tokens[1], 2, &["name"], "x")).await.expect_err("other team").code(),
        Code::NotFound
    );

    // An agent leaves: the team lead hands the leads to another agent.
    let agent1 = l.owner_id.clone();
    let agent2_id = {
        let mut p = m.identity();
        let users = p
            .list_users(idpb::ListUsersRequest { tenant_id: t.id.clone(), ..Default::default() })
            .await
            .expect("users")
            .into_inner()
            .users;
        users.into_iter().find(|u| u.login == "agent2").expect("agent2").id
    };
    let transfer = |who: &str| {
        with(
            who,
            Request::new(pb::TransferOwnershipRequest {
                tenant_id: t.id.clone(),
                from_owner_id: agent1.clone(),
                to_owner_id: agent2_id.clone(),
                lead_ids: vec![],
            }),
        )
    };
    assert_eq!(
        m.vault().transfer_ownership(transfer(&t.tokens[0])).await.expect_err("agent").code(),
        Code::PermissionDenied
    );
    use guardline_lead_vault::store::lead as entity;
    use sea_orm::{ActiveModelTrait, EntityTrait};
    let db = guardline_runtime::storage::connect(&DatabaseArgs::url(m.vault_db.clone())).await.expect("db");
    let before_transfer = entity::Entity::find_by_id(l.id.clone()).one(&db).await.expect("q").expect("row");
    assert_eq!(
        m.vault().transfer_ownership(transfer(&t.tokens[2])).await.expect("team lead").into_inner().transferred,
        1
    );
    assert!(lead_ids(&m, &t, &t.tokens[0]).await.is_empty(), "the leaver no longer sees it");
    assert_eq!(lead_ids(&m, &t, &t.tokens[1]).await, vec![l.id.clone()], "the new owner does");
    assert_eq!(get(&m, &t, &t.tokens[1], &l.id).await.expect("opens").version, 3);

    // The transfer undone by restoring the older row, MAC and all: the
    // leaver sees the lead again, but the scan names it against the
    // version the audit log recorded for the transfer.
    wait_for_audit(&m, &t, "lead.transfer", &l.id).await;
    let scan = || with(&t.tokens[3], Request::new(pb::VerifyIntegrityRequest { tenant_id: t.id.clone() }));
    let clean = m.vault().verify_integrity(scan()).await.expect("scan").into_inner();
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    entity::ActiveModel::from(before_transfer).reset_all().update(&db).await.expect("restore an older copy");
    assert_eq!(get(&m, &t, &t.tokens[0], &l.id).await.expect("it opens: its MAC is genuine").version, 2);
    let report = m.vault().verify_integrity(scan()).await.expect("scan").into_inner();
    let found: Vec<(String, String)> = report.findings.into_iter().map(|f| (f.lead_id, f.problem)).collect();
    assert_eq!(found, vec![(l.id.clone(), "rolled_back".to_owned())]);
}

/// Waits until audit's log holds an `action` event about `lead` (the
/// vault's outbox delivers after the commit).
async fn wait_for_audit(m: &Mesh, t: &Tenant, action: &str, lead: &str) {
    use guardline_proto::audit::v1 as apb;
    let mut audit = apb::audit_service_client::AuditServiceClient::new(m.channel(&m.audit_uri, "gateway"));
    for _ in 0..200 {
        let q = apb::QueryEventsRequest { tenant_id: t.id.clone(), action: action.into(), ..Default::default() };
        let events = audit.query_events(with(&t.tokens[3], Request::new(q))).await.expect("query").into_inner().events;
        if events.iter().any(|e| e.resource.as_ref().is_some_and(|r| r.id == lead)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("audit never received {action} of the lead");
}

/// A user of `t` with a custom role of `perms`, logged in.
async fn custom_user(m: &Mesh, t: &Tenant, login: &str, perms: &[&str]) -> String {
    let mut p = m.identity();
    let role = format!("role_{login}");
    p.create_role(idpb::CreateRoleRequest {
        tenant_id: t.id.clone(),
        name: role.clone(),
        permissions: perms.iter().map(|x| (*x).to_owned()).collect(),
    })
    .await
    .expect("role");
    let pw = "a long enough passphrase".to_owned();
    p.create_user(idpb::CreateUserRequest {
        tenant_id: t.id.clone(),
        login: login.into(),
        display_name: login.into(),
        password: pw.clone(),
        roles: vec![role],
        team_ids: vec![],
    })
    .await
    .expect("user");
    p.login(idpb::LoginRequest {
        tenant_id: t.id.clone(),
        login: login.into(),
        password: pw,
        totp_code: String::new(),
        context: None,
    })
    .await
    .expect("login")
    .into_inner()
    .access_token
}

async fn export(
    m: &Mesh,
    t: &Tenant,
    token: &str,
    clear: bool,
    reason: &str,
) -> Result<Vec<pb::ExportLeadsResponse>, tonic::Status> {
    let req = pb::ExportLeadsRequest { tenant_id: t.id.clone(), filter: None, clear, reason: reason.into() };
    let mut s = m.vault().export_leads(with(token, Request::new(req))).await?.into_inner();
    let mut out = Vec::new();
    while let Some(x) = s.message().await? {
        out.push(x);
    }
    Ok(out)
}

async fn guarded_export_and_validated_import(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let exporter = custom_user(&m, &t, "exporter1", &["lead.read:tenant", "lead.export"]).await;
    let clear_exporter = custom_user(&m, &t, "exporter2", &["lead.read:tenant", "lead.export", "lead.reveal"]).await;

    // Import: three good rows, a bad number, a duplicate of an earlier row.
    let row = |n: u64, phone: &str| pb::ImportLeadsRequest {
        item: Some(pb::import_leads_request::Item::Row(pb::ImportRow { row_number: n, lead: Some(lead(&[phone])) })),
    };
    let header = pb::ImportLeadsRequest {
        item: Some(pb::import_leads_request::Item::Header(pb::ImportHeader {
            tenant_id: t.id.clone(),
            default_region: "CN".into(),
            default_owner_id: String::new(),
        })),
    };
    let msgs = vec![
        header,
        row(1, "13812345671"),
        row(2, "13812345672"),
        row(3, "not a phone"),
        row(4, "13812345671"),
        row(5, "13812345673"),
    ];
    let report = m
        .vault()
        .import_leads(with(&t.tokens[0], Request::new(tokio_stream::iter(msgs))))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((report.imported, report.duplicates), (3, 1));
    assert_eq!(
        report.errors.iter().map(|e| (e.row_number, e.field.as_str())).collect::<Vec<_>>(),
        vec![(3, "lead.phones[0]")]
    );
    assert_eq!(lead_ids(&m, &t, &t.tokens[0]).await.len(), 3, "the bad row wrote nothing");

    // Export: permission, masking, clear values with a reason, the quota (3 a day here).
    assert_eq!(export(&m, &t, &t.tokens[0], false, "").await.expect_err("agent").code(), Code::PermissionDenied);
    assert_eq!(
        export(&m, &t, &exporter, true, "for the call center").await.expect_err("no reveal").code(),
        Code::PermissionDenied
    );
    let no_reason = export(&m, &t, &clear_exporter, true, "").await.expect_err("no reason");
    assert_eq!(field_violations(&no_reason)[0].field, "reason");
    let clear = export(&m, &t, &clear_exporter, true, "quarterly review").await.expect("clear export");
    assert_eq!(clear.len(), 3);
    assert!(
        clear.iter().all(|x| x.lead.as_ref().expect("lead").phones[0].masked.contains("****")),
        "the record stays masked"
    );
    let mut phones: Vec<String> = clear.iter().flat_map(|x| x.clear_phones.clone()).collect();
    phones.sort();
    assert_eq!(phones, vec!["+8613812345671", "+8613812345672", "+8613812345673"]);
    let over = export(&m, &t, &exporter, false, "").await.expect_err("quota");
    assert_eq!(
        (over.code(), reason(&over).as_str()),
        (Code::ResourceExhausted, "EXPORT_QUOTA_EXCEEDED"),
        "3 of 3 leads already exported today"
    );
}

async fn key_status(m: &Mesh, t: &Tenant) -> pb::KeyStatus {
    let mut op = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "operator"));
    op.get_key_status(pb::GetKeyStatusRequest { tenant_id: t.id.clone() }).await.expect("status").into_inner()
}

async fn every_lead_opens(m: &Mesh, t: &Tenant, ids: &[String]) {
    // Masking needs the clear value: a read opens the record.
    for id in ids {
        let l = get(m, t, &t.tokens[0], id).await.expect("opens");
        assert!(l.phones[0].masked.starts_with("+86 138****567"), "{}", l.phones[0].masked);
    }
}

async fn key_rotation_keeps_every_record_open(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(create(&m, &t, 0, lead(&[&format!("1381234567{i}")])).await.expect("create").id);
    }
    let mut op = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "operator"));

    // Rejections: a user without key.rotate, a service without a token, no tenant.
    let denied = m
        .vault()
        .rotate_data_key(with(&t.tokens[3], Request::new(pb::RotateDataKeyRequest { tenant_id: t.id.clone() })))
        .await
        .expect_err("compliance officer");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anon = m.vault().rewrap_tenant_keys(pb::RewrapTenantKeysRequest { tenant_id: t.id.clone() }).await;
    assert_eq!(anon.expect_err("gateway, no token").code(), Code::Unauthenticated);
    let empty = op.get_key_status(pb::GetKeyStatusRequest::default()).await.expect_err("no tenant");
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&empty)[0].field, "tenant_id");

    let before = key_status(&m, &t).await;
    assert!(!before.active_data_key_id.is_empty() && before.retiring_data_key_ids.is_empty());

    // The tenant key is rotated in OpenBao or the local keyring, then the
    // stored data keys are rewrapped and the old version disabled.
    let keyring = m.vault_args.keys.provider(false).await.expect("key provider");
    let v2 = keyring.rotate(&t.id).await.expect("rotate tenant key");
    let r = op.rewrap_tenant_keys(pb::RewrapTenantKeysRequest { tenant_id: t.id.clone() }).await.expect("rewrap");
    let r = r.into_inner();
    assert_eq!((r.rewrapped, u64::from(r.tenant_key_version)), (1, v2));
    keyring.set_min_decryption_version(&t.id, v2).await.expect("min version");
    use guardline_keys::store::entity as dk;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let db = sea_orm::Database::connect(&m.vault_db).await.expect("db");
    let stored = dk::Entity::find().filter(dk::Column::TenantId.eq(&t.id)).all(&db).await.expect("keys");
    for k in &stored {
        // Opens under the new version only: the old one is disabled now.
        keyring.unwrap(&t.id, &guardline_keys::provider::WrappedKey(k.wrapped.clone())).await.expect("rewrapped");
    }
    every_lead_opens(&m, &t, &ids).await;

    // A new data key; every record key is re-wrapped in the background.
    let started = op.rotate_data_key(pb::RotateDataKeyRequest { tenant_id: t.id.clone() }).await.expect("rotate");
    let started = started.into_inner();
    assert_ne!(started.active_data_key_id, before.active_data_key_id);
    assert_eq!(started.total, 3);
    let mut status = started;
    for _ in 0..200 {
        if !status.in_progress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        status = key_status(&m, &t).await;
    }
    assert!(!status.in_progress, "the re-wrap finishes");
    assert_eq!((status.rewrapped, status.total), (3, 3));
    assert!(status.retiring_data_key_ids.is_empty(), "the old data key is retired once unused");
    let old = dk::Entity::find_by_id(before.active_data_key_id.clone()).one(&db).await.expect("q").expect("row");
    assert_eq!(old.state, guardline_keys::store::state::RETIRED);
    // The blind-index and MAC keys moved to the new data key as well.
    use guardline_lead_vault::store::tenant_secret;
    let secrets = tenant_secret::Entity::find().filter(tenant_secret::Column::TenantId.eq(&t.id)).all(&db).await;
    let secrets = secrets.expect("secrets");
    assert!(!secrets.is_empty());
    assert!(secrets.iter().all(|s| s.data_key_id == status.active_data_key_id), "no secret left on a retired key");
    every_lead_opens(&m, &t, &ids).await;
    let checked = m
        .vault()
        .verify_integrity(with(&t.tokens[3], Request::new(pb::VerifyIntegrityRequest { tenant_id: t.id.clone() })))
        .await
        .expect("verify")
        .into_inner();
    assert_eq!((checked.scanned, checked.findings.len()), (3, 0));
}

/// What a kill -9 right after RotateDataKey committed leaves on disk (the
/// vault stopped): a new active data key, every record still under the old
/// one, the job running. Returns the database, the envelope and the new key.
async fn interrupted_rotation(
    m: &mut Mesh,
    t: &Tenant,
) -> (sea_orm::DatabaseConnection, Arc<guardline_keys::envelope::Envelope>, String) {
    m.stop_vault().await;
    let keyring = m.vault_args.keys.provider(false).await.expect("key provider");
    let db = sea_orm::Database::connect(&m.vault_db).await.expect("db");
    let envelope = guardline_keys::envelope::Envelope::new(keyring, db.clone(), Duration::from_secs(1));
    let new_dk = envelope.rotate_data_key(&t.id).await.expect("new data key");
    use guardline_lead_vault::store::rotation;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    rotation::Entity::insert(rotation::ActiveModel {
        tenant_id: Set(t.id.clone()),
        new_data_key_id: Set(new_dk.clone()),
        total: Set(3),
        rewrapped: Set(0),
        state: Set("running".into()),
    })
    .exec(&db)
    .await
    .expect("job");
    (db, Arc::new(envelope), new_dk)
}

async fn three_leads(m: &Mesh, t: &Tenant) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(create(m, t, 0, lead(&[&format!("1381234567{i}")])).await.expect("create").id);
    }
    ids
}

async fn an_interrupted_rotation_resumes_at_start(postgres: bool) {
    let mut m = start(postgres).await;
    let t = tenant(&m).await;
    let ids = three_leads(&m, &t).await;
    let before = key_status(&m, &t).await;
    let (_, _, new_dk) = interrupted_rotation(&mut m, &t).await;

    m.start_vault().await;
    let mut status = pb::KeyStatus { in_progress: true, ..Default::default() };
    for _ in 0..200 {
        let mut op = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "operator"));
        if let Ok(s) = op.get_key_status(pb::GetKeyStatusRequest { tenant_id: t.id.clone() }).await {
            status = s.into_inner();
            if !status.in_progress {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!status.in_progress, "the restarted service finished the job");
    assert_eq!((status.active_data_key_id.as_str(), status.rewrapped, status.total), (new_dk.as_str(), 3, 3));
    assert!(status.retiring_data_key_ids.is_empty());
    assert_ne!(before.active_data_key_id, new_dk);
    every_lead_opens(&m, &t, &ids).await;
}

/// A replica died holding a tenant's rotation: another replica leaves the
/// job alone while the lease runs, then takes it up and finishes it.
async fn a_rotation_runs_under_its_lease_and_passes_on(postgres: bool) {
    use guardline_lead_vault::service::rotation::{Run, TERM};
    let mut m = start(postgres).await;
    let t = tenant(&m).await;
    let ids = three_leads(&m, &t).await;
    let (db, envelope, new_dk) = interrupted_rotation(&mut m, &t).await;
    let clock = guardline_runtime::clock::ManualClock::default();
    let dead = guardline_runtime::lease::Leases::new(db.clone(), clock.clock());
    assert!(dead.acquire(&format!("lead-vault.rotation.{}", t.id), TERM).await.expect("lease"));

    let store = guardline_lead_vault::store::Store::new(guardline_audit_client::AuditedDb::new(db, Default::default()));
    let audit = guardline_audit_client::AuditClient::new(m.channel(&m.audit_uri, "lead-vault"), Duration::from_secs(5));
    let mut replica = guardline_lead_vault::service::Vault::new(store, envelope, audit);
    replica.set_clock(clock.clock());
    assert_eq!(replica.rotation_pass().await.expect("pass"), vec![(t.id.clone(), Run::HeldElsewhere)]);
    let status = replica.key_status(&t.id).await.expect("status");
    assert!(status.in_progress && status.rewrapped == 0, "left alone while the lease runs: {status:?}");

    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(replica.rotation_pass().await.expect("pass"), vec![(t.id.clone(), Run::Done)]);
    let status = replica.key_status(&t.id).await.expect("status");
    assert_eq!((status.in_progress, status.rewrapped, status.active.as_str()), (false, 3, new_dk.as_str()));
    assert!(status.retiring.is_empty());
    m.start_vault().await;
    every_lead_opens(&m, &t, &ids).await;
}

async fn upload_recording(m: &Mesh, t: &Tenant, lead: &pb::Lead) -> guardline_proto::recordings::v1::Recording {
    use guardline_proto::recordings::v1 as recpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    let header = recpb::RecordingHeader {
        tenant_id: t.id.clone(),
        call_id: format!("call-{}", lead.id),
        lead_id: lead.id.clone(),
        agent_id: lead.owner_id.clone(),
        team_id: lead.team_id.clone(),
        caller_line: "+12025550100".into(),
        started_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        duration_seconds: 30,
        format: "audio/wav".into(),
        ..Default::default()
    };
    let audio = vec![1u8; 10_000];
    let msgs = vec![
        recpb::UploadRecordingRequest { item: Some(recpb::upload_recording_request::Item::Header(header)) },
        recpb::UploadRecordingRequest { item: Some(recpb::upload_recording_request::Item::Chunk(audio.clone())) },
        recpb::UploadRecordingRequest {
            item: Some(recpb::upload_recording_request::Item::End(recpb::UploadEnd {
                size_bytes: audio.len() as u64,
                sha256: vec![],
            })),
        },
    ];
    let mut bridge = RecordingsServiceClient::new(m.channel(&m.rec_uri, "telephony-bridge"));
    bridge.upload_recording(tokio_stream::iter(msgs)).await.expect("upload").into_inner()
}

async fn erasure_shreds_the_lead_and_keeps_the_consent(postgres: bool) {
    use guardline_proto::recordings::v1 as recpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    use pb::request_erasure_request::Subject as S;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let gone = create(&m, &t, 0, lead(&["13812345671", "13812345679"])).await.expect("create");
    let kept = create(&m, &t, 0, lead(&["13812345672"])).await.expect("create");
    let consent = pb::RecordConsentRequest {
        tenant_id: t.id.clone(),
        lead_id: gone.id.clone(),
        purpose: "marketing".into(),
        channel: "web_form".into(),
        evidence: Some(pb::ConsentEvidence {
            form_sha256: vec![7; 32],
            disclosure_version: "v3".into(),
            ..Default::default()
        }),
        granted_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        expires_at: None,
    };
    m.vault().record_consent(with(&t.tokens[0], Request::new(consent))).await.expect("consent");
    // A recording of the call, uploaded by the telephony bridge.
    let rec = upload_recording(&m, &t, &gone).await;
    let get_rec = recpb::GetRecordingRequest { tenant_id: t.id.clone(), recording_id: rec.id.clone() };
    let mut player = RecordingsServiceClient::new(m.channel(&m.rec_uri, "gateway"));
    player.get_recording(with(&t.tokens[3], Request::new(get_rec.clone()))).await.expect("recording readable");
    let db = sea_orm::Database::connect(&m.vault_db).await.expect("db");
    use guardline_lead_vault::store::{consent as consent_rows, internal_dnc, lead as lead_rows};
    let backup = lead_rows::Entity::find_by_id(gone.id.clone()).one(&db).await.expect("q").expect("row");

    // Rejections: an agent, no subject, a bad number, no case id.
    let ask = |s: Option<S>| pb::RequestErasureRequest { tenant_id: t.id.clone(), subject: s };
    let by_phone = || Some(S::Phone("+8613812345671".into()));
    let agent = m.vault().request_erasure(with(&t.tokens[0], Request::new(ask(by_phone())))).await;
    assert_eq!(agent.expect_err("agent").code(), Code::PermissionDenied);
    let none = m.vault().request_erasure(with(&t.tokens[3], Request::new(ask(None)))).await.expect_err("none");
    assert_eq!(field_violations(&none)[0].field, "subject");
    let bad = ask(Some(S::Phone("12".into())));
    let bad = m.vault().request_erasure(with(&t.tokens[3], Request::new(bad))).await.expect_err("bad number");
    assert_eq!(field_violations(&bad)[0].field, "phone");
    let unknown = ask(Some(S::Phone("+8613900000000".into())));
    let unknown = m.vault().request_erasure(with(&t.tokens[3], Request::new(unknown))).await;
    assert_eq!(unknown.expect_err("no such lead").code(), Code::NotFound);
    let other = tenant(&m).await;
    let foreign = pb::RequestErasureRequest { tenant_id: other.id.clone(), subject: Some(S::LeadId(gone.id.clone())) };
    let foreign = m.vault().request_erasure(with(&t.tokens[3], Request::new(foreign))).await;
    assert_eq!(foreign.expect_err("another tenant").code(), Code::PermissionDenied);
    let unseen = pb::RequestErasureRequest { tenant_id: other.id.clone(), subject: Some(S::LeadId(gone.id.clone())) };
    let unseen = m.vault().request_erasure(with(&other.tokens[3], Request::new(unseen))).await;
    assert_eq!(unseen.expect_err("not that tenant's lead").code(), Code::NotFound);
    let no_case = pb::ExecuteErasureRequest { tenant_id: t.id.clone(), case_id: String::new() };
    let no_case = m.vault().execute_erasure(with(&t.tokens[3], Request::new(no_case))).await.expect_err("no id");
    assert_eq!(field_violations(&no_case)[0].field, "case_id");

    // Opened by phone number, once.
    let case = m.vault().request_erasure(with(&t.tokens[3], Request::new(ask(by_phone())))).await.expect("open");
    let case = case.into_inner();
    assert_eq!((case.lead_id.as_str(), case.state), (gone.id.as_str(), pb::ErasureState::Open as i32));
    let days = (case.due_at.expect("due").seconds - case.requested_at.expect("at").seconds) / 86_400;
    assert_eq!(days, 30);
    let again = ask(Some(S::LeadId(gone.id.clone())));
    let again = m.vault().request_erasure(with(&t.tokens[3], Request::new(again))).await.expect("again");
    assert_eq!(again.into_inner().id, case.id, "one open case per lead");
    let list = |state: pb::ErasureState, overdue_only: bool| pb::ListErasureCasesRequest {
        tenant_id: t.id.clone(),
        state: state as i32,
        overdue_only,
    };
    let mut v = m.vault();
    let open = v.list_erasure_cases(with(&t.tokens[3], Request::new(list(pb::ErasureState::Open, false)))).await;
    assert_eq!(open.expect("list").into_inner().cases.len(), 1);
    let overdue = v.list_erasure_cases(with(&t.tokens[3], Request::new(list(pb::ErasureState::Unspecified, true))));
    assert!(overdue.await.expect("list").into_inner().cases.is_empty());

    let exec = pb::ExecuteErasureRequest { tenant_id: t.id.clone(), case_id: case.id.clone() };
    let agent = m.vault().execute_erasure(with(&t.tokens[0], Request::new(exec.clone()))).await;
    assert_eq!(agent.expect_err("agent").code(), Code::PermissionDenied);
    let done = m.vault().execute_erasure(with(&t.tokens[3], Request::new(exec.clone()))).await.expect("execute");
    let done = done.into_inner();
    assert_eq!(done.state, pb::ErasureState::Done as i32);
    assert!(done.executed_at.is_some());
    let twice = m.vault().execute_erasure(with(&t.tokens[3], Request::new(exec))).await.expect_err("twice");
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // The lead is gone, the other one is not.
    assert_eq!(get(&m, &t, &t.tokens[3], &gone.id).await.expect_err("erased").code(), Code::NotFound);
    get(&m, &t, &t.tokens[3], &kept.id).await.expect("kept");
    assert!(lead_rows::Entity::find_by_id(gone.id.clone()).one(&db).await.expect("q").is_none());
    // Its recording too.
    let rec_gone = player.get_recording(with(&t.tokens[3], Request::new(get_rec))).await.expect_err("recording erased");
    assert_eq!(rec_gone.code(), Code::NotFound);
    // Both numbers are on the internal do-not-call list.
    let dnc =
        internal_dnc::Entity::find().filter(internal_dnc::Column::TenantId.eq(&t.id)).all(&db).await.expect("dnc");
    assert_eq!(dnc.len(), 2);
    // The consent history survives, with the blind index and hashes only.
    let consents = consent_rows::Entity::find().filter(consent_rows::Column::LeadId.eq(&gone.id)).all(&db).await;
    let consents = consents.expect("consents");
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].form_sha256, vec![7; 32]);
    assert!(dnc.iter().any(|d| d.blind_index == consents[0].blind_index));
    // Through the API: the compliance officer still reads it; the agent who owned the lead does not.
    let history = || pb::GetConsentHistoryRequest { tenant_id: t.id.clone(), lead_id: gone.id.clone() };
    let evidence = m.vault().get_consent_history(with(&t.tokens[3], Request::new(history()))).await;
    assert_eq!(evidence.expect("the officer reads the evidence").into_inner().records.len(), 1);
    let agent = m.vault().get_consent_history(with(&t.tokens[0], Request::new(history()))).await;
    assert_eq!(agent.expect_err("the agent's lead is gone").code(), Code::NotFound);
    // The dialer sees the erased number as on the internal list; not the kept one.
    let mut dialer = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "dialer-policy"));
    let look = |e164: &str| pb::LookupNumberRequest { tenant_id: t.id.clone(), e164: e164.into() };
    let erased = dialer.lookup_number(look("+8613812345679")).await.expect("lookup").into_inner();
    assert!(erased.internal_dnc && erased.internal_dnc_reason.starts_with("erasure on "), "{erased:?}");
    assert!(!dialer.lookup_number(look("+8613812345672")).await.expect("lookup").into_inner().internal_dnc);
    // The ciphertext copied out before erasure opens with no record key the system still has.
    let keyring = m.vault_args.keys.provider(false).await.expect("key provider");
    let envelope = guardline_keys::envelope::Envelope::new(keyring, db.clone(), Duration::from_secs(1));
    let remaining =
        lead_rows::Entity::find().filter(lead_rows::Column::TenantId.eq(&t.id)).all(&db).await.expect("rows");
    assert!(!remaining.is_empty());
    for r in &remaining {
        assert_ne!(r.key_sealed, backup.key_sealed);
        let sealed = guardline_keys::SealedRecordKey {
            data_key_id: r.key_data_key_id.clone(),
            sealed: r.key_sealed.clone().expect("sealed"),
        };
        let rk = envelope.open_record_key(&t.id, &r.id, &sealed).await.expect("a live record key");
        let v = backup.version as u64;
        assert!(guardline_keys::open_field(&rk, &t.id, &gone.id, "phones", v, &backup.phones_sealed).is_err());
    }
    // The receipt is in audit.
    use guardline_proto::audit::v1 as apb;
    let mut audit = apb::audit_service_client::AuditServiceClient::new(m.channel(&m.audit_uri, "gateway"));
    let q = apb::QueryEventsRequest { tenant_id: t.id.clone(), action: "erasure.execute".into(), ..Default::default() };
    let mut found = Vec::new();
    for _ in 0..100 {
        found =
            audit.query_events(with(&t.tokens[3], Request::new(q.clone()))).await.expect("query").into_inner().events;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "one erasure receipt");
    assert_eq!(found[0].details.get("lead_id"), Some(&gone.id));
    assert_eq!(found[0].details.get("recordings_erased").map(String::as_str), Some("1"));
    assert_eq!(found[0].details.get("dnc_added").map(String::as_str), Some("2"));

    // A recording under legal hold blocks the case; the lead stays whole.
    let held_lead = create(&m, &t, 0, lead(&["13812345673"])).await.expect("create");
    let held = upload_recording(&m, &t, &held_lead).await;
    let hold =
        recpb::SetLegalHoldRequest { tenant_id: t.id.clone(), recording_id: held.id, reason: "litigation 42".into() };
    player.set_legal_hold(with(&t.tokens[3], Request::new(hold))).await.expect("hold");
    let ask_held = ask(Some(S::LeadId(held_lead.id.clone())));
    let case = m.vault().request_erasure(with(&t.tokens[3], Request::new(ask_held))).await.expect("open").into_inner();
    let exec = pb::ExecuteErasureRequest { tenant_id: t.id.clone(), case_id: case.id.clone() };
    let blocked = m.vault().execute_erasure(with(&t.tokens[3], Request::new(exec))).await.expect("execute");
    let blocked = blocked.into_inner();
    assert_eq!(blocked.state, pb::ErasureState::Blocked as i32);
    assert!(blocked.blocked_reason.contains("legal hold"), "{}", blocked.blocked_reason);
    get(&m, &t, &t.tokens[3], &held_lead.id).await.expect("still whole");
    let listed = v.list_erasure_cases(with(&t.tokens[3], Request::new(list(pb::ErasureState::Blocked, false)))).await;
    assert_eq!(listed.expect("list").into_inner().cases.len(), 1);
}

async fn dial_target_is_for_dialer_policy_only(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let other = tenant(&m).await;
    let mut input = lead(&["13812345671", "+1 202 555 0143"]);
    input.time_zone = "Asia/Shanghai".into();
    let l = create(&m, &t, 0, input).await.expect("create");
    assert_eq!(l.region, "CN", "the region of the first number");
    let us = create(&m, &t, 0, lead(&["+1 202 555 0144"])).await.expect("create");
    assert_eq!(us.region, "US", "derived from the number, not the default region");
    let mut dialer = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "dialer-policy"));
    let ask = |tenant: &str, lead: &str, phone_index: u32| pb::GetDialTargetRequest {
        tenant_id: tenant.into(),
        lead_id: lead.into(),
        phone_index,
    };
    let second = dialer.get_dial_target(ask(&t.id, &l.id, 1)).await.expect("target").into_inner();
    assert_eq!(second.e164, "+12025550143");
    assert_eq!((second.time_zone.as_str(), second.owner_id.as_str()), ("Asia/Shanghai", l.owner_id.as_str()));
    let first = dialer.get_dial_target(ask(&t.id, &l.id, 0)).await.expect("target").into_inner();
    assert_eq!(first.e164, "+8613812345671");
    assert_eq!(first.blind_index.len(), 32);
    assert_ne!(first.blind_index, second.blind_index);
    assert_eq!((first.team_id.is_empty(), first.internal_dnc), (false, false));
    let look = |e164: &str| pb::LookupNumberRequest { tenant_id: t.id.clone(), e164: e164.into() };
    let same = dialer.lookup_number(look("+8613812345671")).await.expect("lookup").into_inner();
    assert_eq!(same.blind_index, first.blind_index, "the same number, the same index");
    // A stored index edited in the database (say, to carry a listed number
    // past the do-not-call lists) changes nothing: the target's index is
    // the number's own.
    {
        use guardline_lead_vault::store::phone_index;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let db = guardline_runtime::storage::connect(&DatabaseArgs::url(m.vault_db.clone())).await.expect("db");
        let edited = phone_index::Entity::update_many()
            .col_expr(phone_index::Column::BlindIndex, Expr::value(vec![0u8; 32]))
            .filter(phone_index::Column::LeadId.eq(l.id.clone()))
            .filter(phone_index::Column::Position.eq(0))
            .exec(&db)
            .await
            .expect("tamper");
        assert_eq!(edited.rows_affected, 1);
        let again = dialer.get_dial_target(ask(&t.id, &l.id, 0)).await.expect("target").into_inner();
        assert_eq!(again.blind_index, first.blind_index, "recomputed from the number, not read from the row");
    }
    let bad = dialer.lookup_number(look("138")).await.expect_err("not E.164");
    assert_eq!(field_violations(&bad)[0].field, "e164");
    let gateway = m.vault().lookup_number(look("+8613812345671")).await.expect_err("not dialer-policy");
    assert_eq!(gateway.code(), Code::PermissionDenied);
    // In batches, in order, the same indexes.
    let many = |n: Vec<&str>| pb::LookupNumbersRequest {
        tenant_id: t.id.clone(),
        e164: n.into_iter().map(str::to_owned).collect(),
    };
    let both = dialer.lookup_numbers(many(vec!["+12025550143", "+8613812345671"])).await.expect("batch").into_inner();
    let got: Vec<&Vec<u8>> = both.lookups.iter().map(|l| &l.blind_index).collect();
    assert_eq!(got, vec![&second.blind_index, &first.blind_index]);
    let bad = dialer.lookup_numbers(many(vec!["+8613812345671", "12"])).await.expect_err("a bad number");
    assert_eq!(field_violations(&bad)[0].field, "e164[1]");
    let too_many = dialer.lookup_numbers(many(vec!["+8613812345671"; 1001])).await.expect_err("too many");
    assert_eq!(field_violations(&too_many)[0].field, "e164");
    let gateway = m.vault().lookup_numbers(many(vec!["+8613812345671"])).await.expect_err("not dialer-policy");
    assert_eq!(gateway.code(), Code::PermissionDenied);

    // Numbers looked up count against the tenant's budget (600 a second, in
    // bursts of 1200 here), and each batch is audited with its size.
    let mut m = m;
    m.stop_vault().await;
    m.vault_args.lookup_rate = 600;
    m.start_vault().await;
    let mut dialer = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "dialer-policy"));
    let thousand: Vec<String> = (0..1000).map(|i| format!("+86138000{i:05}")).collect();
    let batch = |tenant: &str| pb::LookupNumbersRequest { tenant_id: tenant.into(), e164: thousand.clone() };
    dialer.lookup_numbers(batch(&t.id)).await.expect("within the budget");
    let over = dialer.lookup_numbers(batch(&t.id)).await.map(|_| ()).expect_err("past the budget");
    assert_eq!((over.code(), reason(&over).as_str()), (Code::ResourceExhausted, "LOOKUP_BUDGET_EXCEEDED"));
    dialer.lookup_numbers(batch(&other.id)).await.expect("another tenant's budget is its own");
    wait_for_audit(&m, &t, "lead.lookup_numbers", &t.id).await;

    // Rejections: another service (even with a user token), a bad index, another tenant.
    let gateway = m.vault().get_dial_target(with(&t.tokens[3], Request::new(ask(&t.id, &l.id, 0)))).await;
    assert_eq!(gateway.expect_err("not dialer-policy").code(), Code::PermissionDenied);
    let bad = dialer.get_dial_target(ask(&t.id, &l.id, 2)).await.expect_err("no third number");
    assert_eq!(field_violations(&bad)[0].field, "phone_index");
    let elsewhere = dialer.get_dial_target(ask(&other.id, &l.id, 0)).await.expect_err("other tenant");
    assert_eq!(elsewhere.code(), Code::NotFound);
}

async fn settings_set_the_erasure_deadline_and_the_consent_retention(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let get = |who: &str| with(who, Request::new(pb::GetVaultSettingsRequest { tenant_id: t.id.clone() }));
    let set = |who: &str, deadline: Option<u32>, retention: Option<u32>| {
        with(
            who,
            Request::new(pb::UpdateVaultSettingsRequest {
                tenant_id: t.id.clone(),
                erasure_deadline_days: deadline,
                consent_retention_days: retention,
            }),
        )
    };
    let comp = &t.tokens[3];
    let defaults = m.vault().get_vault_settings(get(comp)).await.expect("defaults").into_inner();
    assert_eq!((defaults.erasure_deadline_days, defaults.consent_retention_days), (30, 1461));
    assert_eq!(
        m.vault().get_vault_settings(get(&t.tokens[0])).await.expect_err("agent").code(),
        Code::PermissionDenied
    );
    let agent = m.vault().update_vault_settings(set(&t.tokens[0], Some(10), None)).await.expect_err("agent");
    assert_eq!(agent.code(), Code::PermissionDenied);
    let other = tenant(&m).await;
    let foreign = m.vault().update_vault_settings(set(&other.tokens[3], Some(10), None)).await;
    assert_eq!(foreign.expect_err("another tenant's officer").code(), Code::PermissionDenied);
    let zero = m.vault().update_vault_settings(set(comp, Some(0), None)).await.expect_err("zero days");
    assert_eq!(field_violations(&zero)[0].field, "erasure_deadline_days");
    let short = m.vault().update_vault_settings(set(comp, Some(10), Some(3 * 365))).await.expect_err("< 3 years");
    assert_eq!(field_violations(&short)[0].field, "consent_retention_days");
    let unchanged = m.vault().get_vault_settings(get(comp)).await.expect("get").into_inner();
    assert_eq!(unchanged.erasure_deadline_days, 30, "a refused update writes nothing");

    let s = m.vault().update_vault_settings(set(comp, Some(10), None)).await.expect("officer").into_inner();
    assert_eq!((s.erasure_deadline_days, s.consent_retention_days), (10, 1461));
    // The operator writes a RetentionPolicy's consent period without a user
    // token, under the same floor; no other service may.
    let mut op = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "operator"));
    let by_operator = |retention: u32| pb::UpdateVaultSettingsRequest {
        tenant_id: t.id.clone(),
        erasure_deadline_days: None,
        consent_retention_days: Some(retention),
    };
    let floor = op.update_vault_settings(by_operator(365)).await.expect_err("below the floor");
    assert_eq!(field_violations(&floor)[0].field, "consent_retention_days");
    let s = op.update_vault_settings(by_operator(1461)).await.expect("the operator").into_inner();
    assert_eq!((s.erasure_deadline_days, s.consent_retention_days), (10, 1461));
    let mut gateway = LeadVaultServiceClient::new(m.channel(&m.vault_uri, "gateway"));
    let refused = gateway.update_vault_settings(by_operator(1461)).await.expect_err("another service, no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let overdue = pb::ListErasureCasesRequest { tenant_id: t.id.clone(), state: 0, overdue_only: true };
    assert!(op.list_erasure_cases(overdue.clone()).await.expect("the operator").into_inner().cases.is_empty());
    let refused = gateway.list_erasure_cases(overdue).await.expect_err("another service, no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let l = create(&m, &t, 0, lead(&["+8613812345670"])).await.expect("create");
    let case = pb::RequestErasureRequest {
        tenant_id: t.id.clone(),
        subject: Some(pb::request_erasure_request::Subject::LeadId(l.id.clone())),
    };
    let case = m.vault().request_erasure(with(comp, Request::new(case))).await.expect("request").into_inner();
    let due = case.due_at.expect("due").seconds - case.requested_at.expect("requested").seconds;
    assert_eq!(due, 10 * 86_400, "the tenant's deadline");

    // Consent that ended longer ago than the retention is pruned; consent
    // that ended recently and active consent stay.
    let years_ago =
        |y: u64| prost_types::Timestamp::from(std::time::SystemTime::now() - Duration::from_secs(y * 366 * 86_400));
    let record = |granted: prost_types::Timestamp, expires: Option<prost_types::Timestamp>| pb::RecordConsentRequest {
        tenant_id: t.id.clone(),
        lead_id: l.id.clone(),
        purpose: "marketing".into(),
        channel: "web_form".into(),
        evidence: Some(pb::ConsentEvidence { form_sha256: vec![7; 32], ..Default::default() }),
        granted_at: Some(granted),
        expires_at: expires,
    };
    for (granted, expires) in [(6, Some(5)), (7, Some(6)), (6, Some(2)), (1, None)] {
        let r = record(years_ago(granted), expires.map(years_ago));
        m.vault().record_consent(with(&t.tokens[0], Request::new(r))).await.expect("consent");
    }
    let prune = || pb::PruneConsentRequest { tenant_id: t.id.clone(), ..Default::default() };
    let denied = m.vault().prune_consent(with(&t.tokens[0], Request::new(prune()))).await.expect_err("agent");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let refused = gateway.prune_consent(prune()).await.expect_err("another service, no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let counted = |r: pb::PruneConsentResponse| (r.pruned, r.more);
    let dry = op.prune_consent(pb::PruneConsentRequest { dry_run: true, ..prune() }).await.expect("dry run");
    assert_eq!(counted(dry.into_inner()), (2, false), "two ended over four years ago, counted");
    let capped = op.prune_consent(pb::PruneConsentRequest { limit: 1, ..prune() }).await.expect("capped");
    assert_eq!(counted(capped.into_inner()), (1, true), "the limit leaves one for later");
    assert_eq!(counted(op.prune_consent(prune()).await.expect("operator").into_inner()), (1, false));
    assert_eq!(op.prune_consent(prune()).await.expect("again").into_inner().pruned, 0, "idempotent");
    let h = pb::GetConsentHistoryRequest { tenant_id: t.id.clone(), lead_id: l.id.clone() };
    let left = m.vault().get_consent_history(with(comp, Request::new(h))).await.expect("history").into_inner();
    assert_eq!(left.records.len(), 2, "ended two years ago and active are kept");
}

guardline_testkit::on_both_stores!(
    leads_are_encrypted_masked_and_scoped,
    reveal_needs_permission_a_reason_and_audit,
    a_ciphertext_moved_to_another_lead_does_not_open,
    the_consent_ledger,
    updates_and_transfers,
    guarded_export_and_validated_import,
    key_rotation_keeps_every_record_open,
    an_interrupted_rotation_resumes_at_start,
    a_rotation_runs_under_its_lease_and_passes_on,
    erasure_shreds_the_lead_and_keeps_the_consent,
    dial_target_is_for_dialer_policy_only,
    settings_set_the_erasure_deadline_and_the_consent_retention,
);
