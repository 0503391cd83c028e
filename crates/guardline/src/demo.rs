//! `guardline demo`: the product's journeys, short and narrated, against a
//! running `guardline up` (embedded defaults), printing each step and what
//! the services answered. Every call is a real gRPC call over mTLS; the
//! demo uses the dev CA of the data directory for the identities a real
//! deployment gives other systems (the telephony bridge, the operator).
//! All data is synthetic.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use guardline_journeys::{Org, PASSWORD, bearer};
use guardline_proto::audit::v1 as apb;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::dialer::v1 as dpb;
use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::recordings::v1 as rpb;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::GrpcChannel;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};

/// Flags of `guardline demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Data directory of `guardline up` (its dev CA and CLI certificate).
    #[arg(long, env = "GUARDLINE_DATA_DIR", default_value = "./.guardline")]
    pub data_dir: PathBuf,
    /// Endpoints as NAME=URI; defaults to the five services on localhost:7101-7105.
    #[arg(long = "endpoint", value_parser = crate::health::parse_endpoint)]
    pub endpoints: Vec<(String, String)>,
}

struct Demo {
    endpoints: Vec<(String, String)>,
    pki: PathBuf,
    ca: guardline_runtime::devca::DevCa,
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn say(line: impl AsRef<str>) {
    println!("   {}", line.as_ref());
}

fn at(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn rules(d: &dpb::CheckCallResponse) -> String {
    let not_allowed: Vec<String> = d
        .rules
        .iter()
        .filter(|r| r.outcome != dpb::Verdict::Allow as i32)
        .map(|r| format!("{}: {}", r.rule, r.reason))
        .collect();
    if not_allowed.is_empty() { format!("{} rules passed", d.rules.len()) } else { not_allowed.join("; ") }
}

fn verdict(d: &dpb::CheckCallResponse) -> &'static str {
    match dpb::Verdict::try_from(d.verdict) {
        Ok(dpb::Verdict::Allow) => "ALLOW",
        Ok(dpb::Verdict::Deny) => "DENY",
        Ok(dpb::Verdict::Defer) => "DEFER",
        _ => "?",
    }
}

impl Demo {
    fn endpoint(&self, service: &str) -> Result<&str> {
        self.endpoints.iter().find(|(n, _)| n == service).map(|(_, e)| e.as_str()).context("no endpoint")
    }

    /// A channel to `service` as `identity` (the CLI, or an identity the dev CA issues).
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        let files = if identity == guardline_runtime::devca::CLI {
            TlsFiles::in_dir(&self.pki, identity)
        } else {
            self.ca.ensure(identity)?
        };
        let tls: Arc<TlsMaterial> = TlsMaterial::load(files)?;
        Ok(guardline_runtime::connect(self.endpoint(service)?, tls)?)
    }
    fn identity(&self) -> Result<IdentityServiceClient<GrpcChannel>> {
        Ok(IdentityServiceClient::new(self.channel("identity", "cli")?))
    }
    fn vault(&self) -> Result<LeadVaultServiceClient<GrpcChannel>> {
        Ok(LeadVaultServiceClient::new(self.channel("lead-vault", "cli")?))
    }
    fn dialer(&self, who: &str) -> Result<DialerPolicyServiceClient<GrpcChannel>> {
        Ok(DialerPolicyServiceClient::new(self.channel("dialer-policy", who)?))
    }
    fn recordings(&self, who: &str) -> Result<RecordingsServiceClient<GrpcChannel>> {
        Ok(RecordingsServiceClient::new(self.channel("recordings", who)?))
    }
    fn audit(&self) -> Result<AuditServiceClient<GrpcChannel>> {
        Ok(AuditServiceClient::new(self.channel("audit", "cli")?))
    }
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let pki = args.data_dir.join("pki");
    let ca = guardline_runtime::devca::DevCa::open_or_create(&pki, "guardline.local", "guardline")
        .context("the dev CA of `guardline up` (run it first, with the same --data-dir)")?;
    let mut endpoints: Vec<(String, String)> = crate::health::SERVICE_NAMES
        .iter()
        .map(|(n, _, port)| ((*n).to_owned(), format!("https://localhost:{port}")))
        .collect();
    for (name, uri) in args.endpoints {
        if let Some(e) = endpoints.iter_mut().find(|(n, _)| *n == name) {
            e.1 = uri;
        }
    }
    let d = Demo { endpoints, pki, ca };
    println!("Guardline demo: a call center's day, against the running mesh. All data is synthetic.");
    let org = onboarding(&d).await?;
    let leads = leads(&d, &org).await?;
    dialing(&d, &org, &leads).await?;
    let recording = recording(&d, &org, &leads).await?;
    exfiltration(&d, &org).await?;
    erasure(&d, &org, &leads, &recording).await?;
    rotation(&d, &org, &leads).await?;
    audit(&d, &org).await?;
    println!(
        "\nDone: every answer above came from the services over mTLS, and every step is in the tenant's audit log."
    );
    Ok(())
}

async fn login(d: &Demo, tenant: &str, login: &str, totp: &str) -> Result<String> {
    Ok(guardline_journeys::login(d, tenant, login, totp).await?)
}

async fn onboarding(d: &Demo) -> Result<Org> {
    step("1. Onboarding: a tenant, its admin with TOTP, a team lead, two agents in two teams, an auditor");
    let name = format!("Demo Call Center {}", chrono::Utc::now().format("%H:%M:%S"));
    let org = guardline_journeys::onboard(d, &name).await?;
    say(format!("tenant `{name}` created: {}", org.tenant));
    say(format!("admin logs in without a second factor: refused: {}", org.admin_without_totp.message()));
    say("admin enrolled TOTP (RFC 6238) and logged in with a code");
    say("teams North (lead1, agent1) and South (agent2), and auditor1, created by the admin");
    Ok(org)
}

/// Ids of the leads the later steps use.
struct Leads {
    cn: String,
    /// A lead in a zone where it is midday now.
    reachable: String,
    us: String,
    withdrawn: String,
    erased: String,
    theirs: String,
}

async fn leads(d: &Demo, org: &Org) -> Result<Leads> {
    step("2. Leads: an import with bad rows, masking by role, scopes, an audited reveal");
    let mut rows = vec![vpb::ImportLeadsRequest {
        item: Some(vpb::import_leads_request::Item::Header(vpb::ImportHeader {
            tenant_id: org.tenant.clone(),
            default_region: "CN".into(),
            default_owner_id: String::new(),
        })),
    }];
    let mut row = |n: u64, phone: String, owner: &str, team: &str| {
        rows.push(vpb::ImportLeadsRequest {
            item: Some(vpb::import_leads_request::Item::Row(vpb::ImportRow {
                row_number: n,
                lead: Some(vpb::LeadInput {
                    phones: vec![phone],
                    name: format!("客户{n}"),
                    address: Some(vpb::Address {
                        province: "广东省".into(),
                        city: "深圳市".into(),
                        ..Default::default()
                    }),
                    owner_id: owner.into(),
                    team_id: team.into(),
                    ..Default::default()
                }),
            })),
        });
    };
    for n in 0..100u64 {
        let (owner, team) = if n < 90 { (&org.agent1_id, &org.teams[0]) } else { (&org.agent2_id, &org.teams[1]) };
        row(n + 2, format!("139{:08}", 20_000_000 + n), owner, team);
    }
    row(102, "+1 202 555 0143".into(), &org.agent1_id, &org.teams[0]);
    row(103, "not a number".into(), &org.agent1_id, &org.teams[0]);
    row(104, "12".into(), &org.agent1_id, &org.teams[0]);
    let report = d.vault()?.import_leads(bearer(&org.admin, tokio_stream::iter(rows))).await?.into_inner();
    say(format!("admin imported {} leads; refused {} rows:", report.imported, report.errors.len()));
    for e in &report.errors {
        say(format!("  row {}: {}: {}", e.row_number, e.field, e.description));
    }
    let list = |token: String| async move {
        let req = vpb::ListLeadsRequest {
            tenant_id: org.tenant.clone(),
            page: Some(guardline_proto::common::v1::PageRequest { page_size: 1000, page_token: String::new() }),
            ..Default::default()
        };
        d.vault()?.list_leads(bearer(&token, req)).await.map(|r| r.into_inner().leads).map_err(anyhow::Error::from)
    };
    let mine = list(org.agent1.clone()).await?;
    let theirs = list(org.agent2.clone()).await?;
    let sample = &mine[0];
    say(format!(
        "agent1 sees {} leads (own only), masked: {} / {} / {}",
        mine.len(),
        sample.phones[0].masked,
        sample.name.as_ref().map(|n| n.masked.as_str()).unwrap_or(""),
        sample.address.as_ref().map(|a| a.masked.as_str()).unwrap_or("")
    ));
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: theirs[0].id.clone() };
    let hidden = d.vault()?.get_lead(bearer(&org.agent1, get)).await.err().map(|s| format!("{:?}", s.code()));
    say(format!("agent1 asks for agent2's lead: {}", hidden.unwrap_or_else(|| "visible?!".into())));
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: sample.id.clone(),
        field: vpb::LeadField::Name as i32,
        index: 0,
        reason: "customer called back about the quote".into(),
    };
    let r = d.vault()?.reveal_field(bearer(&org.admin, reveal)).await?.into_inner();
    say(format!(
        "admin reveals the name with a reason: clear value returned, audited first ({} reveals left today)",
        r.remaining_quota
    ));
    let us = mine.iter().find(|l| l.phones[0].masked.starts_with("+1 ")).context("the US lead")?;
    let consent = |lead: &str| vpb::RecordConsentRequest {
        tenant_id: org.tenant.clone(),
        lead_id: lead.into(),
        purpose: "marketing".into(),
        channel: "web_form".into(),
        evidence: Some(vpb::ConsentEvidence {
            form_sha256: vec![1; 32],
            disclosure_version: "v2".into(),
            ..Default::default()
        }),
        granted_at: Some(at(chrono::Utc::now().timestamp() - 30 * 86_400)),
        expires_at: None,
    };
    let cn = mine.iter().filter(|l| l.phones[0].masked.starts_with("+86")).map(|l| l.id.clone()).collect::<Vec<_>>();
    // A callee somewhere on earth where it is midday now.
    let somewhere = guardline_journeys::time::nth(guardline_journeys::time::number_open_now(chrono::Utc::now()), 77);
    let input = vpb::LeadInput { phones: vec![somewhere], ..Default::default() };
    let create = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
    let reachable = d.vault()?.create_lead(bearer(&org.agent1, create)).await?.into_inner().id;
    for lead in [&cn[0], &cn[1], &cn[2], &us.id, &reachable] {
        d.vault()?.record_consent(bearer(&org.agent1, consent(lead))).await?;
    }
    say("agent1 recorded web-form marketing consent for five leads (form hash, disclosure version)");
    Ok(Leads {
        cn: cn[0].clone(),
        reachable,
        withdrawn: cn[1].clone(),
        erased: cn[2].clone(),
        us: us.id.clone(),
        theirs: theirs[0].id.clone(),
    })
}

/// A check of `lead` by agent1: at the server's time, or a plan for `plan`.
fn call(org: &Org, lead: &str, plan: Option<chrono::DateTime<chrono::Utc>>) -> dpb::CheckCallRequest {
    dpb::CheckCallRequest {
        tenant_id: org.tenant.clone(),
        callee: Some(dpb::check_call_request::Callee::LeadId(lead.into())),
        caller_line: "+14155552671".into(),
        purpose: "marketing".into(),
        plan_at: plan.map(|t| at(t.timestamp())),
        ..Default::default()
    }
}

async fn dialing(d: &Demo, org: &Org, l: &Leads) -> Result<()> {
    step("3. Dialing: one explained decision before every call, at the server's time");
    let now = chrono::Utc::now();
    let copy = now.date_naive();
    let midnight = copy.and_hms_opt(0, 0, 0).context("date")?.and_utc().timestamp();
    let registry = vec![
        dpb::ImportDncRequest {
            item: Some(dpb::import_dnc_request::Item::Header(dpb::ImportDncHeader {
                list: dpb::DncList::National as i32,
                format: dpb::DncFormat::Ftc as i32,
                copy_date: Some(at(midnight)),
                ..Default::default()
            })),
        },
        dpb::ImportDncRequest {
            item: Some(dpb::import_dnc_request::Item::Data(b"202,5550143\n202,5550199\n".to_vec())),
        },
    ];
    let loaded = d.dialer("cli")?.import_dnc(tokio_stream::iter(registry)).await?.into_inner();
    say(format!("a national registry copy of {copy} loaded: {} numbers", loaded.loaded));
    let check = |req: dpb::CheckCallRequest| async move {
        d.dialer("cli")?.check_call(bearer(&org.agent1, req)).await.map(|r| r.into_inner()).map_err(anyhow::Error::from)
    };
    let r = check(call(org, &l.us, None)).await?;
    say(format!("call a US lead on the registry: {} ({})", verdict(&r), rules(&r)));
    let packs = guardline_dialer_policy::domain::window::Packs::load(None)?;
    let cn_works = |d| packs.get("cn").is_some_and(|p| p.works_on(d, &Default::default()));
    let (saturday, _) = guardline_journeys::time::cn_saturday_and_monday(now, cn_works);
    let r = check(call(org, &l.cn, Some(saturday))).await?;
    let earliest = r.earliest_allowed_at.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
    say(format!(
        "plan: a Chinese lead on Saturday {}: {} until {} ({}); a plan never admits a call",
        saturday.date_naive(),
        verdict(&r),
        earliest.map(|t| t.to_rfc3339()).unwrap_or_default(),
        rules(&r)
    ));
    let national_day = chrono::DateTime::parse_from_rfc3339("2026-10-01T02:00:00Z")?.to_utc();
    let r = check(call(org, &l.cn, Some(national_day))).await?;
    say(format!("plan: the same lead on National Day 2026: {} ({})", verdict(&r), rules(&r)));
    let policy = dpb::DialPolicy { tenant_id: org.tenant.clone(), callee_max_24h: Some(1), ..Default::default() };
    d.dialer("cli")?.set_dial_policy(bearer(&org.admin, dpb::SetDialPolicyRequest { policy: Some(policy) })).await?;
    // Campaign `sun` holds every callee to the TCPA's 08:00–21:00 in its local time.
    let sun = dpb::DialPolicy {
        tenant_id: org.tenant.clone(),
        campaign_id: "sun".into(),
        jurisdiction_packs: Some(dpb::Strings { values: vec!["us-tcpa".into()] }),
        ..Default::default()
    };
    d.dialer("cli")?.set_dial_policy(bearer(&org.admin, dpb::SetDialPolicyRequest { policy: Some(sun) })).await?;
    let in_sun = || dpb::CheckCallRequest { campaign_id: "sun".into(), ..call(org, &l.reachable, None) };
    let r = check(in_sun()).await?;
    say(format!(
        "with a cap of 1 call per callee per 24 h, a lead where it is midday now: {} ({})",
        verdict(&r),
        rules(&r)
    ));
    let attempt = dpb::RecordCallAttemptRequest {
        tenant_id: org.tenant.clone(),
        decision_id: r.decision_id.clone(),
        ..Default::default()
    };
    d.dialer("cli")?.record_call_attempt(bearer(&org.agent1, attempt)).await?;
    let r = check(in_sun()).await?;
    say(format!("the call is placed; the next one: {} ({})", verdict(&r), rules(&r)));
    let history = vpb::GetConsentHistoryRequest { tenant_id: org.tenant.clone(), lead_id: l.withdrawn.clone() };
    let h = d.vault()?.get_consent_history(bearer(&org.agent1, history)).await?.into_inner();
    let w = vpb::WithdrawConsentRequest { tenant_id: org.tenant.clone(), consent_id: h.records[0].id.clone() };
    d.vault()?.withdraw_consent(bearer(&org.agent1, w)).await?;
    let r = check(call(org, &l.withdrawn, None)).await?;
    say(format!("a lead withdraws consent; calling now: {} ({})", verdict(&r), rules(&r)));
    let pool = dpb::AddPrivacyNumbersRequest { tenant_id: org.tenant.clone(), numbers: vec!["+14155550100".into()] };
    d.dialer("cli")?.add_privacy_numbers(bearer(&org.admin, pool)).await?;
    let bind = dpb::BindPrivacyNumberRequest {
        tenant_id: org.tenant.clone(),
        agent_line: "+14155552671".into(),
        lead_id: l.erased.clone(),
        ttl_seconds: 300,
    };
    let b = d.dialer("cli")?.bind_privacy_number(bearer(&org.agent1, bind)).await?.into_inner();
    say(format!(
        "an allowed call: agent1's client gets privacy number {} and binding {}, never the real number",
        b.privacy_number, b.id
    ));
    let resolve = dpb::ResolveBindingRequest {
        tenant_id: org.tenant.clone(),
        privacy_number: b.privacy_number.clone(),
        calling_line: "+14155552671".into(),
    };
    let agent = d
        .dialer("cli")?
        .resolve_binding(bearer(&org.agent1, resolve.clone()))
        .await
        .err()
        .map(|s| format!("{:?}", s.code()));
    say(format!("agent1 tries to resolve it: {}", agent.unwrap_or_else(|| "resolved?!".into())));
    d.dialer("telephony-bridge")?.resolve_binding(resolve).await?;
    say("the telephony bridge's identity resolves it to the callee and connects the call (audited)");
    Ok(())
}

async fn recording(d: &Demo, org: &Org, l: &Leads) -> Result<String> {
    // The call began ten minutes ago.
    let started = chrono::Utc::now().timestamp() - 600;
    step("4. Recording: encrypted, with the spoken consent pointed at, played only in scope");
    let header = rpb::RecordingHeader {
        tenant_id: org.tenant.clone(),
        call_id: "call-demo-1".into(),
        lead_id: l.cn.clone(),
        agent_id: org.agent1_id.clone(),
        team_id: org.teams[0].clone(),
        caller_line: "+14155552671".into(),
        started_at: Some(at(started)),
        duration_seconds: 45,
        format: "audio/wav".into(),
        consent_offset_ms: Some(12_500),
        consent_length_ms: Some(8_000),
        ..Default::default()
    };
    let audio = vec![7u8; 64 * 1024];
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
    let rec = d.recordings("telephony-bridge")?.upload_recording(tokio_stream::iter(msgs)).await?.into_inner();
    say(format!("the telephony bridge uploads a 64 KiB call: stored encrypted as {}", rec.id));
    let consent = vpb::RecordConsentRequest {
        tenant_id: org.tenant.clone(),
        lead_id: l.cn.clone(),
        purpose: "service".into(),
        channel: "call_recording".into(),
        evidence: Some(vpb::ConsentEvidence {
            recording_id: rec.id.clone(),
            recording_offset_ms: 12_500,
            recording_length_ms: 8_000,
            disclosure_version: "script-7".into(),
            ..Default::default()
        }),
        granted_at: Some(at(started)),
        expires_at: None,
    };
    d.vault()?.record_consent(bearer(&org.agent1, consent)).await?;
    say("consent recorded, pointing at 12.5 s to 20.5 s of the recording");
    let play = |token: String| {
        let id = rec.id.clone();
        async move {
            let req =
                rpb::DownloadRecordingRequest { tenant_id: org.tenant.clone(), recording_id: id, offset: 0, length: 0 };
            let mut s = d.recordings("cli")?.download_recording(bearer(&token, req)).await?.into_inner();
            let mut n = 0;
            while let Some(m) = s.message().await? {
                n += m.chunk.len();
            }
            Ok::<usize, anyhow::Error>(n)
        }
    };
    say(format!("agent1 (the owner) plays it: {} bytes", play(org.agent1.clone()).await?));
    let other = match play(org.agent2.clone()).await {
        Err(e) => e.downcast_ref::<tonic::Status>().map(|s| format!("{:?}", s.code())).unwrap_or_else(|| e.to_string()),
        Ok(_) => "played?!".into(),
    };
    say(format!("agent2 (another team) tries: {other}"));
    let hold = rpb::SetLegalHoldRequest {
        tenant_id: org.tenant.clone(),
        recording_id: rec.id.clone(),
        reason: "complaint".into(),
    };
    d.recordings("cli")?.set_legal_hold(bearer(&org.admin, hold)).await?;
    let purge =
        rpb::PurgeExpiredRequest { tenant_id: org.tenant.clone(), as_of: Some(at(started + 10 * 365 * 86_400)) };
    let p = d.recordings("operator")?.purge_expired(purge).await?.into_inner();
    say(format!("under a legal hold, a purge ten years on deletes {} and keeps {} held", p.purged, p.held));
    let clear = rpb::ClearLegalHoldRequest {
        tenant_id: org.tenant.clone(),
        recording_id: rec.id.clone(),
        reason: "resolved".into(),
    };
    d.recordings("cli")?.clear_legal_hold(bearer(&org.admin, clear)).await?;
    Ok(rec.id)
}

async fn exfiltration(d: &Demo, org: &Org) -> Result<()> {
    step("5. Exfiltration: a leaver's bulk export raises an alert");
    let mut audit = d.audit()?;
    let thresholds = apb::AlertThresholds {
        bulk_records: 20,
        bulk_window_seconds: 3600,
        failed_logins: 20,
        failed_login_window_seconds: 600,
        modifications: 100,
        modification_window_seconds: 600,
        delivery_gap_seconds: 3600,
    };
    let configure =
        apb::ConfigureAlertsRequest { tenant_id: org.tenant.clone(), thresholds: Some(thresholds), webhooks: vec![] };
    audit.configure_alerts(bearer(&org.admin, configure)).await?;
    let mut alerts = audit
        .watch_alerts(bearer(&org.auditor, apb::WatchAlertsRequest { tenant_id: org.tenant.clone() }))
        .await?
        .into_inner();
    say("the tenant alerts on more than 20 records exported by one user in an hour; the auditor watches");
    let role = idpb::CreateRoleRequest {
        tenant_id: org.tenant.clone(),
        name: "exporting_agent".into(),
        permissions: vec!["lead.read:own".into(), "lead.write:own".into(), "lead.export".into()],
    };
    d.identity()?.create_role(bearer(&org.admin, role)).await?;
    let user = idpb::CreateUserRequest {
        tenant_id: org.tenant.clone(),
        login: "leaver".into(),
        display_name: "leaver".into(),
        password: PASSWORD.into(),
        roles: vec!["exporting_agent".into()],
        team_ids: vec![org.teams[0].clone()],
    };
    d.identity()?.create_user(bearer(&org.admin, user)).await?;
    let token = login(d, &org.tenant, "leaver", "").await?;
    for i in 0..30 {
        let input =
            vpb::LeadInput { phones: vec![format!("+86137555{i:05}")], name: "客户".into(), ..Default::default() };
        d.vault()?
            .create_lead(bearer(&token, vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) }))
            .await?;
    }
    let export = vpb::ExportLeadsRequest { tenant_id: org.tenant.clone(), ..Default::default() };
    let mut rows = d.vault()?.export_leads(bearer(&token, export)).await?.into_inner();
    let mut n = 0;
    while rows.message().await?.is_some() {
        n += 1;
    }
    say(format!("a user whose role allows exports exports {n} leads (masked)"));
    match tokio::time::timeout(Duration::from_secs(15), alerts.message()).await {
        Ok(Ok(Some(a))) => say(format!("ALERT {}: {}", a.rule, a.summary)),
        _ => bail!("no alert within 15 s"),
    }
    Ok(())
}

async fn erasure(d: &Demo, org: &Org, l: &Leads, recording: &str) -> Result<()> {
    step("6. Erasure: crypto-shredding on request");
    let ask = vpb::RequestErasureRequest {
        tenant_id: org.tenant.clone(),
        subject: Some(vpb::request_erasure_request::Subject::LeadId(l.cn.clone())),
    };
    let case = d.vault()?.request_erasure(bearer(&org.admin, ask)).await?.into_inner();
    let due = case.due_at.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
    say(format!(
        "erasure case {} opened, due {}",
        case.id,
        due.map(|t| t.date_naive().to_string()).unwrap_or_default()
    ));
    let exec = vpb::ExecuteErasureRequest { tenant_id: org.tenant.clone(), case_id: case.id.clone() };
    d.vault()?.execute_erasure(bearer(&org.admin, exec)).await?;
    say(
        "executed: record key destroyed, ciphertexts deleted, recordings erased, number on the internal do-not-call list",
    );
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: l.cn.clone() };
    let gone = d.vault()?.get_lead(bearer(&org.admin, get)).await.err().map(|s| format!("{:?}", s.code()));
    let get = rpb::GetRecordingRequest { tenant_id: org.tenant.clone(), recording_id: recording.into() };
    let rec =
        d.recordings("cli")?.get_recording(bearer(&org.admin, get)).await.err().map(|s| format!("{:?}", s.code()));
    say(format!("the lead: {}; its recording: {}", gone.unwrap_or_default(), rec.unwrap_or_default()));
    let history = vpb::GetConsentHistoryRequest { tenant_id: org.tenant.clone(), lead_id: l.cn.clone() };
    let kept = d.vault()?.get_consent_history(bearer(&org.admin, history)).await?.into_inner().records;
    say(format!("its consent history, kept as evidence without PII: {} records", kept.len()));
    let _ = &l.theirs;
    Ok(())
}

async fn rotation(d: &Demo, org: &Org, l: &Leads) -> Result<()> {
    step("7. Rotation: a new tenant data key, every record re-wrapped in the background");
    let mut op = LeadVaultServiceClient::new(d.channel("lead-vault", "operator")?);
    let started = op.rotate_data_key(vpb::RotateDataKeyRequest { tenant_id: org.tenant.clone() }).await?.into_inner();
    let mut status = started;
    for _ in 0..200 {
        if !status.in_progress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = op.get_key_status(vpb::GetKeyStatusRequest { tenant_id: org.tenant.clone() }).await?.into_inner();
    }
    say(format!(
        "the operator rotated the data key: {} of {} record keys re-wrapped, {} retiring keys left",
        status.rewrapped,
        status.total,
        status.retiring_data_key_ids.len()
    ));
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: l.us.clone() };
    let lead = d.vault()?.get_lead(bearer(&org.agent1, get)).await?.into_inner();
    say(format!("everything still reads: {}", lead.phones[0].masked));
    Ok(())
}

async fn audit(d: &Demo, org: &Org) -> Result<()> {
    step("8. Audit: the tenant's log, exported and verified offline");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let req = apb::ExportEventsRequest { tenant_id: org.tenant.clone(), range: None };
    let mut stream = d.audit()?.export_events(bearer(&org.auditor, req)).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8(bytes)?;
    match guardline_audit_log::export::verify_export(&text).map_err(|e| anyhow::anyhow!("{e}"))? {
        guardline_audit_log::verify::Finding::Intact { size } => {
            say(format!("{size} entries, every signed tree head verified (RFC 9162 Merkle tree, Ed25519)"))
        }
        guardline_audit_log::verify::Finding::Tampered { index, problem } => {
            bail!("TAMPERED at {index}: {problem}")
        }
    }
    say("`guardline audit verify --tenant T` does the same from the command line");
    Ok(())
}

impl guardline_journeys::Mesh for Demo {
    fn channel(&self, service: &str, identity: &str) -> Result<GrpcChannel> {
        Demo::channel(self, service, identity)
    }
    /// `guardline up` makes the CLI's certificate a platform admin.
    fn platform_admin(&self) -> &str {
        guardline_runtime::devca::CLI
    }
    fn gateway(&self) -> &str {
        guardline_runtime::devca::CLI
    }
}
