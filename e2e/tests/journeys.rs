//! User journeys against the mesh as separate processes (see the crate's
//! docs): each journey a test, each in its own tenant.

use guardline_e2e::Cluster;
use guardline_journeys::{Org, PASSWORD};
use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::GrpcChannel;
use tonic::{Code, Request};

fn with<T>(token: &str, mut r: Request<T>) -> Request<T> {
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

async fn cluster() -> &'static Cluster {
    Cluster::shared().await.expect("the mesh starts")
}

fn identity(c: &Cluster, who: &str) -> IdentityServiceClient<GrpcChannel> {
    IdentityServiceClient::new(c.channel("identity", who).expect("channel"))
}

fn vault(c: &Cluster) -> LeadVaultServiceClient<GrpcChannel> {
    LeadVaultServiceClient::new(c.channel("lead-vault", "gateway").expect("channel"))
}

async fn onboard(c: &'static Cluster, name: &str) -> Org {
    let org = guardline_journeys::onboard(c, name).await.expect("onboarding");
    assert_eq!(org.admin_without_totp.code(), Code::FailedPrecondition, "{:?}", org.admin_without_totp);
    org
}

async fn login(c: &'static Cluster, tenant: &str, login: &str, totp: &str) -> Result<String, tonic::Status> {
    guardline_journeys::login(c, tenant, login, totp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_1_onboarding() {
    let c = cluster().await;
    let org = onboard(c, "Onboarding").await;
    // The agent's token carries only an agent's permissions.
    let denied = identity(c, "gateway")
        .create_user(with(
            &org.agent1,
            Request::new(idpb::CreateUserRequest { tenant_id: org.tenant.clone(), ..Default::default() }),
        ))
        .await
        .expect_err("an agent manages no users");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(!org.admin.is_empty() && !org.auditor.is_empty() && !org.team_lead.is_empty() && !org.agent2.is_empty());
}

async fn list(c: &Cluster, org: &Org, token: &str) -> Vec<vpb::Lead> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = vpb::ListLeadsRequest {
            tenant_id: org.tenant.clone(),
            page: Some(guardline_proto::common::v1::PageRequest { page_size: 1000, page_token: page_token.clone() }),
            ..Default::default()
        };
        let r = vault(c).list_leads(with(token, Request::new(req))).await.expect("list").into_inner();
        out.extend(r.leads);
        page_token = r.page.map(|p| p.next_page_token).unwrap_or_default();
        if page_token.is_empty() {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_2_leads() {
    let c = cluster().await;
    let org = onboard(c, "Leads").await;
    // 1,000 leads from CSV, three bad rows among them; 900 for agent 1, the rest for agent 2.
    let mut csv = String::from("phones,name,province,city,owner_id,team_id\n");
    for i in 0..1000 {
        let (owner, team) = if i < 900 { (&org.agent1_id, &org.teams[0]) } else { (&org.agent2_id, &org.teams[1]) };
        csv.push_str(&format!("139{:08},客户{i},广东省,深圳市,{owner},{team}\n", 10_000_000 + i));
    }
    csv.push_str(
        "not a number,坏行,广东省,深圳市,,\n12,短号,广东省,深圳市,,\n13800000000;xyz,两个号,广东省,深圳市,,\n",
    );
    // Another owner's lead must name its team.
    csv.push_str(&format!("13700000000,无队,广东省,深圳市,{},\n", org.agent1_id));
    let file = c.data_dir().join("leads-journey.csv");
    std::fs::write(&file, csv).expect("csv");
    let out = std::process::Command::new(Cluster::cli().expect("cli"))
        .args(["leads", "import"])
        .arg(&file)
        .args(["--tenant", &org.tenant, "--default-region", "CN", "--endpoint", c.endpoint("lead-vault")])
        .arg("--data-dir")
        .arg(c.data_dir())
        .env("GUARDLINE_TOKEN", &org.admin)
        .output()
        .expect("guardline leads import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("imported 1000, skipped 0 duplicates, refused 4 rows"), "{stdout}");
    assert!(stdout.contains("line 1002: lead.phones[0]"), "{stdout}");
    assert!(stdout.contains("line 1005: lead.team_id"), "{stdout}");

    // Agent 1 sees only their own leads, masked.
    let mine = list(c, &org, &org.agent1).await;
    assert_eq!(mine.len(), 900);
    assert!(mine.iter().all(|l| l.owner_id == org.agent1_id));
    let phone = &mine[0].phones[0];
    assert!(phone.masked.starts_with("+86 139****") && !phone.clear, "{phone:?}");
    // The team lead of North sees North's leads (agent 1's), not South's.
    let team = list(c, &org, &org.team_lead).await;
    assert_eq!(team.len(), 900);
    // Agent 2's lead does not exist for agent 1.
    let theirs = list(c, &org, &org.agent2).await;
    assert_eq!(theirs.len(), 100);
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: theirs[0].id.clone() };
    let hidden = vault(c).get_lead(with(&org.agent1, Request::new(get))).await.expect_err("another team's lead");
    assert_eq!(hidden.code(), Code::NotFound);

    // A reveal with a reason works and shows in audit.
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: mine[0].id.clone(),
        field: vpb::LeadField::Phone as i32,
        index: 0,
        reason: "customer called back about the quote".into(),
    };
    let clear = vault(c).reveal_field(with(&org.admin, Request::new(reveal))).await.expect("reveal").into_inner();
    assert!(clear.value.starts_with("+86139"), "a clear E.164 number");
    let events = audit_events(c, &org, "lead.reveal").await;
    assert!(events.iter().any(|e| e.resource.as_ref().is_some_and(|r| r.id == mine[0].id)), "{events:?}");
    assert!(events.iter().all(|e| !format!("{e:?}").contains(&clear.value)), "no number in audit");

    // An agent of another tenant sees nothing here.
    let other = onboard(c, "Elsewhere").await;
    let req = vpb::ListLeadsRequest { tenant_id: org.tenant.clone(), ..Default::default() };
    let foreign = vault(c).list_leads(with(&other.agent1, Request::new(req))).await.expect_err("another tenant");
    assert_eq!(foreign.code(), Code::PermissionDenied);
}

/// The tenant's audit events of `action`, read by the auditor once they
/// arrived (the outboxes deliver asynchronously).
async fn audit_events(c: &Cluster, org: &Org, action: &str) -> Vec<guardline_proto::audit::v1::AuditEvent> {
    use guardline_proto::audit::v1::QueryEventsRequest;
    use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
    let mut audit = AuditServiceClient::new(c.channel("audit", "gateway").expect("channel"));
    for _ in 0..100 {
        let q = QueryEventsRequest { tenant_id: org.tenant.clone(), action: action.into(), ..Default::default() };
        let events = audit.query_events(with(&org.auditor, Request::new(q))).await.expect("query").into_inner().events;
        if !events.is_empty() {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {action} event arrived in audit");
}

fn dialer(
    c: &Cluster,
    identity: &str,
) -> guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient<GrpcChannel> {
    guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient::new(
        c.channel("dialer-policy", identity).expect("channel"),
    )
}

fn ts(s: &str) -> prost_types::Timestamp {
    let t = chrono::DateTime::parse_from_rfc3339(s).expect("rfc3339");
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// A lead of agent 1 with marketing consent granted yesterday; returns its id.
async fn consented_lead(c: &Cluster, org: &Org, phone: &str) -> String {
    let input = vpb::LeadInput { phones: vec![phone.into()], name: "王五".into(), ..Default::default() };
    let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
    let id = vault(c).create_lead(with(&org.agent1, Request::new(req))).await.expect("lead").into_inner().id;
    let consent = vpb::RecordConsentRequest {
        tenant_id: org.tenant.clone(),
        lead_id: id.clone(),
        purpose: "marketing".into(),
        channel: "web_form".into(),
        evidence: Some(vpb::ConsentEvidence {
            form_sha256: vec![1; 32],
            disclosure_version: "v2".into(),
            ..Default::default()
        }),
        granted_at: Some(at(chrono::Utc::now() - chrono::Duration::days(1))),
        expires_at: None,
    };
    vault(c).record_consent(with(&org.agent1, Request::new(consent))).await.expect("consent");
    id
}

fn at(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// Whether the dialer's `cn` pack (with its official calendars) works on a day.
fn cn_works() -> impl Fn(chrono::NaiveDate) -> bool {
    let packs = guardline_dialer_policy::domain::window::Packs::load(None).expect("packs");
    move |d| packs.get("cn").is_some_and(|p| p.works_on(d, &Default::default()))
}

/// Agent 1's check of `lead` at the server's time (a plan for `plan`).
fn call(
    org: &Org,
    lead: &str,
    plan: Option<chrono::DateTime<chrono::Utc>>,
) -> guardline_proto::dialer::v1::CheckCallRequest {
    guardline_proto::dialer::v1::CheckCallRequest {
        tenant_id: org.tenant.clone(),
        callee: Some(guardline_proto::dialer::v1::check_call_request::Callee::LeadId(lead.into())),
        caller_line: "+14155552671".into(),
        purpose: "marketing".into(),
        plan_at: plan.map(at),
        ..Default::default()
    }
}

fn denied_by(d: &guardline_proto::dialer::v1::CheckCallResponse) -> Vec<String> {
    use guardline_proto::dialer::v1::Verdict;
    d.rules.iter().filter(|r| r.outcome != Verdict::Allow as i32).map(|r| format!("{}: {}", r.rule, r.reason)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_3_dialing() {
    use guardline_proto::dialer::v1 as dpb;
    let c = cluster().await;
    let org = onboard(c, "Dialing").await;
    let check = |req: dpb::CheckCallRequest| {
        let token = org.agent1.clone();
        async move { dialer(c, "gateway").check_call(with(&token, Request::new(req))).await.expect("check").into_inner() }
    };
    // Decisions are made at the services' clock, the real now: every case
    // is built from it, so the journey passes at any hour of any day.
    let now = chrono::Utc::now();
    let today = now.date_naive();
    use guardline_journeys::time::{nth, number_closed_now, number_open_now};
    let (open, closed) = (number_open_now(now), number_closed_now(now));
    // Campaign `sun` holds every callee to the TCPA's 08:00–21:00 in its local time.
    let sun = dpb::DialPolicy {
        tenant_id: org.tenant.clone(),
        campaign_id: "sun".into(),
        jurisdiction_packs: Some(dpb::Strings { values: vec!["us-tcpa".into()] }),
        ..Default::default()
    };
    dialer(c, "gateway")
        .set_dial_policy(with(&org.admin, Request::new(dpb::SetDialPolicyRequest { policy: Some(sun) })))
        .await
        .expect("campaign");
    let in_sun = |lead: &str| dpb::CheckCallRequest { campaign_id: "sun".into(), ..call(&org, lead, None) };

    // A number on the national registry is denied.
    let registry = [
        dpb::ImportDncRequest {
            item: Some(dpb::import_dnc_request::Item::Header(dpb::ImportDncHeader {
                list: dpb::DncList::National as i32,
                format: dpb::DncFormat::Ftc as i32,
                copy_date: Some(at(today.and_hms_opt(0, 0, 0).expect("midnight").and_utc())),
                ..Default::default()
            })),
        },
        dpb::ImportDncRequest {
            item: Some(dpb::import_dnc_request::Item::Data(b"202,5550143\n202,5550144\n".to_vec())),
        },
    ];
    let loaded = dialer(c, "operator").import_dnc(tokio_stream::iter(registry)).await.expect("operator loads the copy");
    assert_eq!(loaded.into_inner().loaded, 2);
    let listed = consented_lead(c, &org, "+12025550143").await;
    let d = check(call(&org, &listed, None)).await;
    assert_eq!(d.verdict, dpb::Verdict::Deny as i32);
    assert!(denied_by(&d).contains(&format!("dnc.national: on the national registry copy of {today}")), "{d:?}");

    // Where it is the middle of the night now, the call is deferred.
    let asleep = consented_lead(c, &org, &nth(closed, 77)).await;
    let d = check(in_sun(&asleep)).await;
    assert_eq!(d.verdict, dpb::Verdict::Defer as i32, "{d:?}");
    assert!(!d.plan);

    // A plan for the next Saturday morning in Beijing: deferred to Monday
    // 09:00 Beijing time, marked as a plan, and no attempt can use it.
    let cn = consented_lead(c, &org, "+8613912340001").await;
    let (saturday, monday) = guardline_journeys::time::cn_saturday_and_monday(now, cn_works());
    let d = check(call(&org, &cn, Some(saturday))).await;
    assert_eq!((d.verdict, d.plan), (dpb::Verdict::Defer as i32, true), "{d:?}");
    assert_eq!(d.earliest_allowed_at, Some(at(monday)));
    let attempt = dpb::RecordCallAttemptRequest {
        tenant_id: org.tenant.clone(),
        decision_id: d.decision_id.clone(),
        ..Default::default()
    };
    let refused = dialer(c, "gateway").record_call_attempt(with(&org.agent1, Request::new(attempt))).await;
    assert_eq!(refused.expect_err("a plan admits no call").code(), Code::FailedPrecondition);

    // Past the cap, the next call is denied.
    let policy = dpb::DialPolicy { tenant_id: org.tenant.clone(), callee_max_24h: Some(1), ..Default::default() };
    dialer(c, "gateway")
        .set_dial_policy(with(&org.admin, Request::new(dpb::SetDialPolicyRequest { policy: Some(policy) })))
        .await
        .expect("policy");
    let awake = consented_lead(c, &org, &nth(open, 78)).await;
    let d = check(in_sun(&awake)).await;
    assert_eq!(d.verdict, dpb::Verdict::Allow as i32, "{d:?}");
    let attempt = dpb::RecordCallAttemptRequest {
        tenant_id: org.tenant.clone(),
        decision_id: d.decision_id.clone(),
        ..Default::default()
    };
    dialer(c, "gateway").record_call_attempt(with(&org.agent1, Request::new(attempt))).await.expect("attempt");
    let d = check(in_sun(&awake)).await;
    assert!(denied_by(&d).contains(&"cap.callee.24h: 1 of 1 calls in the last 24 h".to_owned()), "{d:?}");

    // Withdrawn consent is denied at once.
    let other = consented_lead(c, &org, &nth(open, 79)).await;
    let history = vpb::GetConsentHistoryRequest { tenant_id: org.tenant.clone(), lead_id: other.clone() };
    let h = vault(c).get_consent_history(with(&org.agent1, Request::new(history))).await.expect("history").into_inner();
    let w = vpb::WithdrawConsentRequest { tenant_id: org.tenant.clone(), consent_id: h.records[0].id.clone() };
    vault(c).withdraw_consent(with(&org.agent1, Request::new(w))).await.expect("withdraw");
    let d = check(in_sun(&other)).await;
    assert!(denied_by(&d).contains(&"consent.marketing: no active marketing consent".to_owned()), "{d:?}");

    // An allowed call gets an AXB number; the agent never receives the real
    // number, the telephony bridge resolves it.
    let allowed_number = nth(open, 80);
    let allowed = consented_lead(c, &org, &allowed_number).await;
    assert_eq!(check(in_sun(&allowed)).await.verdict, dpb::Verdict::Allow as i32);
    let pool = dpb::AddPrivacyNumbersRequest { tenant_id: org.tenant.clone(), numbers: vec!["+14155550100".into()] };
    dialer(c, "gateway").add_privacy_numbers(with(&org.admin, Request::new(pool))).await.expect("pool");
    let bind = dpb::BindPrivacyNumberRequest {
        tenant_id: org.tenant.clone(),
        agent_line: "+14155552671".into(),
        lead_id: allowed.clone(),
        ttl_seconds: 300,
    };
    let b = dialer(c, "gateway").bind_privacy_number(with(&org.agent1, Request::new(bind))).await.expect("bind");
    let b = b.into_inner();
    assert_eq!(b.privacy_number, "+14155550100");
    assert!(!format!("{b:?}").contains(&allowed_number[4..]), "the agent's answer holds no real number");
    let resolve = dpb::ResolveBindingRequest {
        tenant_id: org.tenant.clone(),
        privacy_number: b.privacy_number.clone(),
        calling_line: "+14155552671".into(),
    };
    let as_agent = dialer(c, "gateway").resolve_binding(with(&org.agent1, Request::new(resolve.clone()))).await;
    assert_eq!(as_agent.expect_err("not the bridge").code(), Code::PermissionDenied);
    let real = dialer(c, "telephony-bridge").resolve_binding(resolve).await.expect("the bridge resolves").into_inner();
    assert_eq!(real.e164, allowed_number);
}

fn audit_verify(c: &Cluster, org: &Org, save: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(Cluster::cli().expect("cli"))
        .args(["audit", "verify", "--tenant", &org.tenant, "--endpoint", c.endpoint("audit")])
        .arg("--data-dir")
        .arg(c.data_dir())
        .arg("--save")
        .arg(save)
        .env("GUARDLINE_TOKEN", &org.auditor)
        .output()
        .expect("guardline audit verify");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_8_audit() {
    let c = cluster().await;
    let org = onboard(c, "Audit").await;
    // Some data operations of the tenant, and the log has them.
    let lead = consented_lead(c, &org, "+8613912348888").await;
    let events = audit_events(c, &org, "consent.record").await;
    assert!(events.iter().any(|e| e.resource.as_ref().is_some_and(|r| r.id == lead)), "{events:?}");

    // The tenant's log, exported and verified offline by the CLI.
    let export = c.data_dir().join(format!("audit-{}.jsonl", org.tenant));
    let (ok, out) = audit_verify(c, &org, &export);
    assert!(ok, "{out}");
    assert!(out.contains("intact: "), "{out}");
    let offline = std::process::Command::new(Cluster::cli().expect("cli"))
        .args(["audit", "verify", "--file"])
        .arg(&export)
        .output()
        .expect("offline verify");
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stdout));

    // One byte of one stored entry changed in PostgreSQL: verification names it.
    let url = &c.databases.iter().find(|(n, _)| n == "audit").expect("audit db").1;
    let pg = guardline_testkit::Postgres::shared().await.expect("postgres");
    let tamper = format!(
        "UPDATE audit_events SET entry = set_byte(entry, length(entry) - 3, get_byte(entry, length(entry) - 3) # 1) \
         WHERE tenant_id = '{}' AND idx = 2",
        org.tenant
    );
    pg.psql(url, &tamper).await.expect("tamper");
    let (ok, out) = audit_verify(c, &org, &c.data_dir().join("tampered.jsonl"));
    assert!(!ok, "{out}");
    assert!(out.contains("TAMPERED at index 2"), "{out}");
}

/// A 10 kB recording of a call to `lead`, uploaded by the telephony bridge.
async fn upload_recording(c: &Cluster, org: &Org, lead: &str) -> guardline_proto::recordings::v1::Recording {
    upload_recording_with(c, org, lead, None).await
}

/// As [`upload_recording`], with a spoken-consent segment (offset, length in ms).
async fn upload_recording_with(
    c: &Cluster,
    org: &Org,
    lead: &str,
    consent: Option<(u64, u64)>,
) -> guardline_proto::recordings::v1::Recording {
    use guardline_proto::recordings::v1 as rpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    let header = rpb::RecordingHeader {
        tenant_id: org.tenant.clone(),
        call_id: format!("call-{lead}"),
        lead_id: lead.into(),
        agent_id: org.agent1_id.clone(),
        team_id: org.teams[0].clone(),
        caller_line: "+14155552671".into(),
        started_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        duration_seconds: 30,
        format: "audio/wav".into(),
        consent_offset_ms: consent.map(|c| c.0),
        consent_length_ms: consent.map(|c| c.1),
        ..Default::default()
    };
    let audio = vec![7u8; 10_000];
    let msgs = vec![
        rpb::UploadRecordingRequest { item: Some(rpb::upload_recording_request::Item::Header(header)) },
        rpb::UploadRecordingRequest { item: Some(rpb::upload_recording_request::Item::Chunk(audio.clone())) },
        rpb::UploadRecordingRequest {
            item: Some(rpb::upload_recording_request::Item::End(rpb::UploadEnd {
                size_bytes: audio.len() as u64,
                sha256: vec![],
            })),
        },
    ];
    let mut bridge = RecordingsServiceClient::new(c.channel("recordings", "telephony-bridge").expect("channel"));
    bridge.upload_recording(tokio_stream::iter(msgs)).await.expect("upload").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_6_erasure() {
    use guardline_proto::dialer::v1 as dpb;
    use guardline_proto::recordings::v1 as rpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    let c = cluster().await;
    let org = onboard(c, "Erasure").await;
    let lead = consented_lead(c, &org, "+8613912347777").await;
    let rec = upload_recording(c, &org, &lead).await;

    // The customer asks, by phone number; the admin executes.
    let ask = vpb::RequestErasureRequest {
        tenant_id: org.tenant.clone(),
        subject: Some(vpb::request_erasure_request::Subject::Phone("+8613912347777".into())),
    };
    let case = vault(c).request_erasure(with(&org.admin, Request::new(ask))).await.expect("request").into_inner();
    let exec = vpb::ExecuteErasureRequest { tenant_id: org.tenant.clone(), case_id: case.id.clone() };
    let done = vault(c).execute_erasure(with(&org.admin, Request::new(exec))).await.expect("execute").into_inner();
    assert_eq!(done.state, vpb::ErasureState::Done as i32, "{done:?}");

    // The lead and its recording are gone.
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
    assert_eq!(vault(c).get_lead(with(&org.admin, Request::new(get))).await.expect_err("gone").code(), Code::NotFound);
    let mut recordings = RecordingsServiceClient::new(c.channel("recordings", "gateway").expect("channel"));
    let get = rpb::GetRecordingRequest { tenant_id: org.tenant.clone(), recording_id: rec.id.clone() };
    let gone = recordings.get_recording(with(&org.admin, Request::new(get))).await.expect_err("recording erased");
    assert_eq!(gone.code(), Code::NotFound);

    // Its number is denied by the dialer, on the internal list.
    let call = dpb::CheckCallRequest {
        tenant_id: org.tenant.clone(),
        callee: Some(dpb::check_call_request::Callee::E164("+8613912347777".into())),
        caller_line: "+14155552671".into(),
        purpose: "service".into(),
        ..Default::default()
    };
    let d = dialer(c, "gateway").check_call(with(&org.agent1, Request::new(call))).await.expect("check").into_inner();
    assert_eq!(d.verdict, dpb::Verdict::Deny as i32);
    assert!(denied_by(&d).iter().any(|r| r.starts_with("dnc.internal: erasure on ")), "{d:?}");

    // The consent history is kept, without PII; the receipt is in audit.
    let h = vpb::GetConsentHistoryRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
    let kept = vault(c).get_consent_history(with(&org.admin, Request::new(h))).await;
    let kept = kept.expect("the consent history outlives the lead").into_inner().records;
    assert_eq!(kept.len(), 1);
    assert!(!format!("{kept:?}").contains("13912347777"), "{kept:?}");
    let receipts = audit_events(c, &org, "erasure.execute").await;
    assert!(receipts.iter().any(|e| e.resource.as_ref().is_some_and(|r| r.id == case.id)), "{receipts:?}");
}

async fn download(c: &Cluster, org: &Org, token: &str, recording: &str) -> Result<Vec<u8>, tonic::Status> {
    use guardline_proto::recordings::v1 as rpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    let mut rec = RecordingsServiceClient::new(c.channel("recordings", "gateway").expect("channel"));
    let req = rpb::DownloadRecordingRequest {
        tenant_id: org.tenant.clone(),
        recording_id: recording.into(),
        offset: 0,
        length: 0,
    };
    let mut stream = rec.download_recording(with(token, Request::new(req))).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.extend_from_slice(&m.chunk);
    }
    Ok(out)
}

/// Every lead opens (a masked read and a reveal) and the recording plays.
async fn everything_reads(c: &Cluster, org: &Org, leads: &[String], recording: &str) {
    for id in leads {
        let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: id.clone() };
        let lead = vault(c).get_lead(with(&org.agent1, Request::new(get))).await.expect("the lead opens").into_inner();
        assert!(lead.phones[0].masked.starts_with("+86 139****"));
    }
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: leads[0].clone(),
        field: vpb::LeadField::Name as i32,
        index: 0,
        reason: "checking the rotation".into(),
    };
    let name = vault(c).reveal_field(with(&org.admin, Request::new(reveal))).await.expect("reveal").into_inner();
    assert_eq!(name.value, "王五");
    assert_eq!(download(c, org, &org.agent1, recording).await.expect("the recording plays"), vec![7u8; 10_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_7_rotation() {
    use guardline_proto::recordings::v1 as rpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    let c = cluster().await;
    let org = onboard(c, "Rotation").await;
    let mut leads = Vec::new();
    for i in 0..3 {
        leads.push(consented_lead(c, &org, &format!("+86139123460{i:02}")).await);
    }
    let rec = upload_recording(c, &org, &leads[0]).await;
    everything_reads(c, &org, &leads, &rec.id).await;

    // The tenant key is rotated in Vault; every service holding its data keys rewraps them.
    let key = format!("{}/keys/tenant-{}", c.transit, org.tenant);
    c.bao.cli(&["write", "-f", &format!("{key}/rotate")]).expect("rotate in Vault");
    let mut vault_op = LeadVaultServiceClient::new(c.channel("lead-vault", "operator").expect("channel"));
    let r = vault_op.rewrap_tenant_keys(vpb::RewrapTenantKeysRequest { tenant_id: org.tenant.clone() }).await;
    let r = r.expect("vault rewrap").into_inner();
    assert_eq!((r.rewrapped, r.tenant_key_version), (1, 2));
    let mut rec_op = RecordingsServiceClient::new(c.channel("recordings", "operator").expect("channel"));
    let r = rec_op.rewrap_tenant_keys(rpb::RewrapTenantKeysRequest { tenant_id: org.tenant.clone() }).await;
    assert_eq!(r.expect("recordings rewrap").into_inner().rewrapped, 1);

    // A new data key, and every record key re-wrapped in the background.
    let started = vault_op.rotate_data_key(vpb::RotateDataKeyRequest { tenant_id: org.tenant.clone() }).await;
    let mut status = started.expect("rotate the data key").into_inner();
    for _ in 0..200 {
        if !status.in_progress {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let req = vpb::GetKeyStatusRequest { tenant_id: org.tenant.clone() };
        status = vault_op.get_key_status(req).await.expect("status").into_inner();
    }
    assert!(!status.in_progress && status.rewrapped == status.total && status.total == 3, "{status:?}");
    everything_reads(c, &org, &leads, &rec.id).await;

    // The old key version is made unusable in Vault: everything still reads.
    c.bao.cli(&["write", &format!("{key}/config"), "min_decryption_version=2"]).expect("min_decryption_version");
    everything_reads(c, &org, &leads, &rec.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_4_recording() {
    use guardline_proto::recordings::v1 as rpb;
    use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
    let c = cluster().await;
    let org = onboard(c, "Recording").await;
    let input = vpb::LeadInput { phones: vec!["+8613912345555".into()], name: "赵六".into(), ..Default::default() };
    let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
    let lead = vault(c).create_lead(with(&org.agent1, Request::new(req))).await.expect("lead").into_inner().id;

    // The call, with the spoken consent 12.5 s in, 8 s long; the consent record points at it.
    let rec = upload_recording_with(c, &org, &lead, Some((12_500, 8_000))).await;
    let consent = vpb::RecordConsentRequest {
        tenant_id: org.tenant.clone(),
        lead_id: lead.clone(),
        purpose: "marketing".into(),
        channel: "call_recording".into(),
        evidence: Some(vpb::ConsentEvidence {
            recording_id: rec.id.clone(),
            recording_offset_ms: 12_500,
            recording_length_ms: 8_000,
            disclosure_version: "script-7".into(),
            ..Default::default()
        }),
        granted_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        expires_at: None,
    };
    let recorded = vault(c).record_consent(with(&org.agent1, Request::new(consent))).await.expect("consent");
    let evidence = recorded.into_inner().evidence.expect("evidence");
    assert_eq!((evidence.recording_id.as_str(), evidence.recording_offset_ms), (rec.id.as_str(), 12_500));

    // The owner plays it; an agent of another team cannot.
    assert_eq!(download(c, &org, &org.agent1, &rec.id).await.expect("the owner plays it"), vec![7u8; 10_000]);
    let refused = download(c, &org, &org.agent2, &rec.id).await.expect_err("another team's agent");
    assert!(matches!(refused.code(), Code::NotFound | Code::PermissionDenied), "{refused:?}");

    // A later call without consent is under a legal hold: a purge past the
    // default retention (three years) keeps both, the held one and the
    // consent evidence (kept four years).
    let held = upload_recording(c, &org, &lead).await;
    let mut recordings = RecordingsServiceClient::new(c.channel("recordings", "gateway").expect("channel"));
    let hold = rpb::SetLegalHoldRequest {
        tenant_id: org.tenant.clone(),
        recording_id: held.id.clone(),
        reason: "complaint under investigation".into(),
    };
    recordings.set_legal_hold(with(&org.admin, Request::new(hold))).await.expect("hold");
    let mut operator = RecordingsServiceClient::new(c.channel("recordings", "operator").expect("channel"));
    let purge = rpb::PurgeExpiredRequest { tenant_id: org.tenant.clone(), as_of: Some(ts("2030-01-01T00:00:00Z")) };
    let purged = operator.purge_expired(purge).await.expect("purge").into_inner();
    assert_eq!((purged.purged, purged.held, purged.kept_for_consent), (0, 1, 1), "{purged:?}");
    assert_eq!(download(c, &org, &org.agent1, &held.id).await.expect("still there"), vec![7u8; 10_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_5_exfiltration() {
    use guardline_proto::audit::v1 as apb;
    use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
    let c = cluster().await;
    let org = onboard(c, "Exfiltration").await;
    // The tenant alerts on more than 50 records exported by one user in an hour, at a webhook.
    let (url, seen) = guardline_testkit::webhook_receiver(false).await.expect("webhook receiver");
    let secret = "a shared secret of the security team";
    let mut audit = AuditServiceClient::new(c.channel("audit", "gateway").expect("channel"));
    let configure = apb::ConfigureAlertsRequest {
        tenant_id: org.tenant.clone(),
        thresholds: Some(apb::AlertThresholds {
            bulk_records: 50,
            bulk_window_seconds: 3600,
            failed_logins: 20,
            failed_login_window_seconds: 600,
            modifications: 100,
            modification_window_seconds: 600,
            delivery_gap_seconds: 3600,
        }),
        webhooks: vec![apb::Webhook { url: url.clone(), secret: secret.into() }],
    };
    audit.configure_alerts(with(&org.admin, Request::new(configure))).await.expect("configure alerts");
    let watch = apb::WatchAlertsRequest { tenant_id: org.tenant.clone() };
    let mut alerts = audit.watch_alerts(with(&org.auditor, Request::new(watch))).await.expect("watch").into_inner();

    // An agent whose role allows exports (a leaver's account) takes 60 leads.
    let role = idpb::CreateRoleRequest {
        tenant_id: org.tenant.clone(),
        name: "exporting_agent".into(),
        permissions: vec!["lead.read:own".into(), "lead.write:own".into(), "lead.export".into()],
    };
    identity(c, "gateway").create_role(with(&org.admin, Request::new(role))).await.expect("role");
    let leaver = idpb::CreateUserRequest {
        tenant_id: org.tenant.clone(),
        login: "leaver".into(),
        display_name: "leaver".into(),
        password: PASSWORD.into(),
        roles: vec!["exporting_agent".into()],
        team_ids: vec![org.teams[0].clone()],
    };
    identity(c, "gateway").create_user(with(&org.admin, Request::new(leaver))).await.expect("user");
    let token = login(c, &org.tenant, "leaver", "").await.expect("login");
    for i in 0..60 {
        let input =
            vpb::LeadInput { phones: vec![format!("+86138555{i:05}")], name: "客户".into(), ..Default::default() };
        let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
        vault(c).create_lead(with(&token, Request::new(req))).await.expect("lead");
    }
    let export = vpb::ExportLeadsRequest { tenant_id: org.tenant.clone(), ..Default::default() };
    let mut stream = vault(c).export_leads(with(&token, Request::new(export))).await.expect("export").into_inner();
    let mut exported = 0;
    while let Some(row) = stream.message().await.expect("row") {
        assert!(row.clear_phones.is_empty(), "masked: no lead.reveal");
        exported += 1;
    }
    assert_eq!(exported, 60);

    // The alert reaches the watcher...
    let alert = tokio::time::timeout(std::time::Duration::from_secs(20), alerts.message())
        .await
        .expect("an alert within 20 s")
        .expect("stream")
        .expect("alert");
    assert_eq!(alert.rule, "bulk_access", "{alert:?}");
    // ...and the webhook, signed: HMAC-SHA256 over "timestamp.body" with the shared secret.
    let mut delivered = None;
    for _ in 0..100 {
        delivered = seen.lock().expect("lock").iter().find(|(_, body)| body.contains("bulk_access")).cloned();
        if delivered.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (headers, body) = delivered.expect("the webhook received the alert");
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone()).expect("header");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{}.{body}", header("x-guardline-timestamp")).as_bytes());
    let expected: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(header("x-guardline-signature"), format!("sha256={expected}"));
    assert!(!body.contains("138555"), "no number in the alert");
}

fn traced<T>(trace_id: &str, span: u64, token: &str, r: Request<T>) -> Request<T> {
    let mut r = with(token, r);
    let parent = format!("00-{trace_id}-{span:016x}-01");
    r.metadata_mut().insert("traceparent", parent.parse().expect("ascii"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_9_telemetry() {
    use guardline_proto::dialer::v1 as dpb;
    let c = cluster().await;
    let org = onboard(c, "Telemetry").await;
    let lead = consented_lead(c, &org, "+8613912349999").await;
    // A gateway starts one trace for the journey and passes it on every call.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let trace_id = format!("{nanos:032x}");
    let check = dpb::CheckCallRequest {
        tenant_id: org.tenant.clone(),
        callee: Some(dpb::check_call_request::Callee::LeadId(lead.clone())),
        caller_line: "+14155552671".into(),
        purpose: "marketing".into(),
        ..Default::default()
    };
    dialer(c, "gateway").check_call(traced(&trace_id, 1, &org.agent1, Request::new(check))).await.expect("check");
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: lead.clone(),
        field: vpb::LeadField::Name as i32,
        index: 0,
        reason: "telemetry journey".into(),
    };
    vault(c).reveal_field(traced(&trace_id, 2, &org.admin, Request::new(reveal))).await.expect("reveal");
    let keys = idpb::GetVerificationKeysRequest {};
    identity(c, "gateway")
        .get_verification_keys(traced(&trace_id, 3, &org.admin, Request::new(keys)))
        .await
        .expect("keys");

    // The spans arrive at the test's OTLP receiver, from at least three services.
    let mut services = std::collections::BTreeSet::new();
    for _ in 0..150 {
        services = c
            .spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| s.service.clone())
            .collect();
        if services.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for expected in ["dialer-policy", "lead-vault", "audit", "identity"] {
        assert!(services.contains(expected), "{expected} missing from the trace: {services:?}");
    }
}
