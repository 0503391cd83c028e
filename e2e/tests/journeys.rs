//! User journeys against the mesh as separate processes (see the crate's
//! docs): each journey a test, each in its own tenant. The journeys are
//! written once, in `guardline-journeys` (which `guardline demo` narrates);
//! the tests assert on what each returns, and add what only a test may do
//! (tamper with a database, drive the CLI, receive a webhook or spans).

use guardline_e2e::Cluster;
use guardline_journeys::dialing::denied_by;
use guardline_journeys::{self as journeys, AUDIO, Org};
use guardline_proto::dialer::v1 as dpb;
use guardline_proto::identity::v1 as idpb;
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

fn vault(c: &Cluster) -> LeadVaultServiceClient<GrpcChannel> {
    LeadVaultServiceClient::new(c.channel("lead-vault", "gateway").expect("channel"))
}

async fn onboard(c: &'static Cluster, name: &str) -> Org {
    let org = journeys::onboard(c, name).await.expect("onboarding");
    assert_eq!(org.admin_without_totp.code(), Code::FailedPrecondition, "{:?}", org.admin_without_totp);
    org
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_1_onboarding() {
    let c = cluster().await;
    let org = onboard(c, "Onboarding").await;
    // The agent's token carries only an agent's permissions.
    assert_eq!(org.agent_creates_user.code(), Code::PermissionDenied, "{:?}", org.agent_creates_user);
    assert!(!org.admin.is_empty() && !org.auditor.is_empty() && !org.team_lead.is_empty() && !org.agent2.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_2_leads() {
    let c = cluster().await;
    let org = onboard(c, "Leads").await;
    // 1,000 leads, four bad rows among them; 900 for agent 1, the rest for agent 2.
    let l = journeys::leads::leads(c, &org, 1000).await.expect("journey 2");
    assert_eq!((l.report.imported, l.report.duplicates, l.report.errors.len()), (1000, 0, 4), "{:?}", l.report);
    let refused: Vec<_> = l.report.errors.iter().map(|e| (e.row_number, e.field.as_str())).collect();
    assert!(refused.contains(&(1002, "lead.phones[0]")), "{refused:?}");
    assert!(refused.contains(&(1004, "lead.phones[1]")), "{refused:?}");
    assert!(refused.contains(&(1005, "lead.team_id")), "{refused:?}");

    // Agent 1 sees only their own leads, masked.
    assert_eq!(l.mine.len(), 900);
    assert!(l.mine.iter().all(|lead| lead.owner_id == org.agent1_id));
    let phone = &l.mine[0].phones[0];
    assert!(phone.masked.starts_with("+86 139****") && !phone.clear, "{phone:?}");
    // The team lead of North sees North's leads (agent 1's), not South's.
    assert_eq!(l.team.len(), 900);
    // Agent 2's lead does not exist for agent 1.
    assert_eq!(l.theirs.len(), 100);
    assert_eq!(l.hidden.code(), Code::NotFound);

    // A reveal with a reason works and shows in audit, without the number.
    assert!(l.revealed.value.starts_with("+86139"), "a clear E.164 number");
    let revealed =
        |e: &guardline_proto::audit::v1::AuditEvent| e.resource.as_ref().is_some_and(|r| r.id == l.mine[0].id);
    assert!(l.reveal_events.iter().any(revealed), "{:?}", l.reveal_events);
    assert!(l.reveal_events.iter().all(|e| !format!("{e:?}").contains(&l.revealed.value)), "no number in audit");

    // An agent of another tenant sees nothing here.
    let other = onboard(c, "Elsewhere").await;
    let req = vpb::ListLeadsRequest { tenant_id: org.tenant.clone(), ..Default::default() };
    let foreign = vault(c).list_leads(with(&other.agent1, Request::new(req))).await.expect_err("another tenant");
    assert_eq!(foreign.code(), Code::PermissionDenied);
}

/// The CLI imports journey 2's rows from a CSV file and reports the bad
/// ones by line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_imports_leads_from_csv() {
    let c = cluster().await;
    let org = onboard(c, "Leads from CSV").await;
    let mut csv = String::from("phones,name,province,city,owner_id,team_id\n");
    for row in journeys::leads::rows(&org, 1000) {
        let lead = row.lead.expect("lead");
        let address = lead.address.unwrap_or_default();
        let phones = lead.phones.join(";");
        let line = [&phones, &lead.name, &address.province, &address.city, &lead.owner_id, &lead.team_id];
        csv.push_str(&format!("{}\n", line.map(String::as_str).join(",")));
    }
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
}

fn at(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    journeys::at(t)
}

/// Whether the dialer's `cn` pack (with its official calendars) works on a day.
fn cn_works() -> impl Fn(chrono::NaiveDate) -> bool {
    let packs = guardline_dialer_policy::domain::window::Packs::load(None).expect("packs");
    move |d| packs.get("cn").is_some_and(|p| p.works_on(d, &Default::default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_3_dialing() {
    let c = cluster().await;
    let org = onboard(c, "Dialing").await;
    let d = journeys::dialing::dialing(c, &org, cn_works()).await.expect("journey 3");
    // A number on the national registry is denied.
    assert_eq!(d.loaded, 2);
    assert_eq!(d.registry.verdict, dpb::Verdict::Deny as i32);
    let today = d.now.date_naive();
    let listed = format!("dnc.national: on the national registry copy of {today}");
    assert!(denied_by(&d.registry).contains(&listed), "{:?}", d.registry);
    // Where it is the middle of the night now, the call is deferred.
    assert_eq!(d.asleep.verdict, dpb::Verdict::Defer as i32, "{:?}", d.asleep);
    assert!(!d.asleep.plan);
    // A plan for the next Saturday morning in Beijing: deferred to Monday
    // 09:00 Beijing time, marked as a plan, and no attempt can use it.
    assert_eq!((d.saturday.verdict, d.saturday.plan), (dpb::Verdict::Defer as i32, true), "{:?}", d.saturday);
    assert_eq!(d.saturday.earliest_allowed_at, Some(at(d.monday)));
    assert_eq!(d.plan_attempt.code(), Code::FailedPrecondition);
    // National Day is a public holiday by the State Council's calendar.
    let holiday = "window.cn: 2026-10-01 in Asia/Shanghai is a public holiday, National Day";
    assert!(denied_by(&d.national_day).iter().any(|r| r.starts_with(holiday)), "{:?}", d.national_day);
    // Past the cap, the next call is denied.
    assert_eq!(d.first.verdict, dpb::Verdict::Allow as i32, "{:?}", d.first);
    let capped = "cap.callee.24h: 1 of 1 calls in the last 24 h".to_owned();
    assert!(denied_by(&d.capped).contains(&capped), "{:?}", d.capped);
    // Withdrawn consent is denied at once.
    let withdrawn = "consent.marketing: no active marketing consent".to_owned();
    assert!(denied_by(&d.withdrawn).contains(&withdrawn), "{:?}", d.withdrawn);
    // An allowed call gets an AXB number; the agent never receives the real
    // number, the telephony bridge resolves it.
    assert_eq!(d.allowed.verdict, dpb::Verdict::Allow as i32, "{:?}", d.allowed);
    assert_eq!(d.binding.privacy_number, journeys::dialing::PRIVACY_NUMBER);
    assert!(!format!("{:?}", d.binding).contains(&d.allowed_number[4..]), "the agent's answer holds no real number");
    assert_eq!(d.agent_resolves.code(), Code::PermissionDenied);
    assert_eq!(d.resolved.e164, d.allowed_number);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_4_recording() {
    let c = cluster().await;
    let org = onboard(c, "Recording").await;
    let r = journeys::recording::recording(c, &org).await.expect("journey 4");
    // The consent record points at the spoken consent, 12.5 s in.
    assert_eq!((r.evidence.recording_id.as_str(), r.evidence.recording_offset_ms), (r.recording.id.as_str(), 12_500));
    // The owner plays it; an agent of another team cannot.
    assert_eq!(r.played, AUDIO);
    assert!(matches!(r.other_team.code(), Code::NotFound | Code::PermissionDenied), "{:?}", r.other_team);
    // A purge forecast past the default retention keeps both: the held call
    // and the consent evidence.
    assert_eq!((r.purge.purged, r.purge.held, r.purge.kept_for_consent), (0, 1, 1), "{:?}", r.purge);
    assert_eq!(r.held_after_purge, AUDIO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_5_exfiltration() {
    use guardline_proto::audit::v1 as apb;
    let c = cluster().await;
    let org = onboard(c, "Exfiltration").await;
    // The tenant alerts on more than 50 records exported by one user in an
    // hour, also at a webhook; a leaver takes 60.
    let (url, seen) = guardline_testkit::webhook_receiver(false).await.expect("webhook receiver");
    let secret = "a shared secret of the security team";
    let webhook = apb::Webhook { url: url.clone(), secret: secret.into() };
    let x = journeys::exfiltration::exfiltration(c, &org, 50, 60, vec![webhook]).await.expect("journey 5");
    assert_eq!((x.exported, x.clear_rows), (60, 0), "masked: no lead.reveal");
    // The alert reaches the watcher...
    assert_eq!(x.alert.rule, "bulk_access", "{:?}", x.alert);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_6_erasure() {
    let c = cluster().await;
    let org = onboard(c, "Erasure").await;
    let e = journeys::erasure::erasure(c, &org).await.expect("journey 6");
    assert_eq!(e.done.state, vpb::ErasureState::Done as i32, "{:?}", e.done);
    // The lead and its recording are gone.
    assert_eq!(e.lead_gone.code(), Code::NotFound);
    assert_eq!(e.recording_gone.code(), Code::NotFound);
    // Its number is denied by the dialer, on the internal list.
    assert_eq!(e.dial.verdict, dpb::Verdict::Deny as i32);
    assert!(denied_by(&e.dial).iter().any(|r| r.starts_with("dnc.internal: erasure on ")), "{:?}", e.dial);
    // The consent history is kept, without PII; the receipt is in audit.
    assert_eq!(e.kept.len(), 1);
    assert!(!format!("{:?}", e.kept).contains("13912347777"), "{:?}", e.kept);
    let receipt =
        |ev: &guardline_proto::audit::v1::AuditEvent| ev.resource.as_ref().is_some_and(|r| r.id == e.opened.id);
    assert!(e.receipts.iter().any(receipt), "{:?}", e.receipts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_7_rotation() {
    let c = cluster().await;
    let org = onboard(c, "Rotation").await;
    // The journey reads every lead and the recording back after each step
    // (and fails if one does not read): before, after the rotations, and
    // with the old tenant key version made unusable in OpenBao.
    let r = journeys::rotation::rotation(c, &org).await.expect("journey 7");
    let (v, rec) = r.rewrapped.as_ref().expect("OpenBao's transit key rotates");
    assert_eq!((v.rewrapped, v.tenant_key_version), (1, 2));
    assert_eq!(rec.rewrapped, 1);
    let s = &r.status;
    assert!(!s.in_progress && s.rewrapped == s.total && s.total == 3, "{s:?}");
    assert!(r.retired_old_versions);
    assert_eq!(r.reads, 3);
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
    // Some data operations of the tenant, and the log has them; its export verifies.
    let a = journeys::audit::audit(c, &org).await.expect("journey 8");
    assert!(a.events.iter().any(|e| e.resource.as_ref().is_some_and(|r| r.id == a.lead)), "{:?}", a.events);
    assert!(matches!(a.finding, journeys::audit::Finding::Intact { size } if size > 0), "{:?}", a.finding);

    // The tenant's log, exported and verified offline by the CLI.
    let export = c.data_dir().join(format!("audit-{}.jsonl", org.tenant));
    let (ok, out) = audit_verify(c, &org, &export);
    assert!(ok, "{out}");
    assert!(out.contains("intact: "), "{out}");
    let offline = std::process::Command::new(Cluster::cli().expect("cli"))
        .args(["audit", "verify", "--file"])
        .arg(&export)
        .arg("--trusted-keys")
        .arg(c.data_dir().join(guardline_e2e::AUDIT_PINS))
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

fn traced<T>(trace_id: &str, span: u64, token: &str, r: Request<T>) -> Request<T> {
    let mut r = with(token, r);
    let parent = format!("00-{trace_id}-{span:016x}-01");
    r.metadata_mut().insert("traceparent", parent.parse().expect("ascii"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_9_telemetry() {
    use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
    use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
    let c = cluster().await;
    let org = onboard(c, "Telemetry").await;
    let lead = journeys::consented_lead(c, &org, "+8613912349999").await.expect("lead");
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
    let mut dialer = DialerPolicyServiceClient::new(c.channel("dialer-policy", "gateway").expect("channel"));
    dialer.check_call(traced(&trace_id, 1, &org.agent1, Request::new(check))).await.expect("check");
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: lead.clone(),
        field: vpb::LeadField::Name as i32,
        index: 0,
        reason: "telemetry journey".into(),
    };
    vault(c).reveal_field(traced(&trace_id, 2, &org.admin, Request::new(reveal))).await.expect("reveal");
    let keys = idpb::GetVerificationKeysRequest {};
    IdentityServiceClient::new(c.channel("identity", "gateway").expect("channel"))
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

/// The value of the first sample of `name` whose labels include every one
/// of `labels`, in a Prometheus text exposition.
fn sample(scraped: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scraped
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_10_metrics_and_probes() {
    use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
    let c = cluster().await;
    let org = onboard(c, "Metrics").await;
    let phone = "+8613912348888";
    let lead = journeys::consented_lead(c, &org, phone).await.expect("lead");
    let check = journeys::dialing::call(&org, &lead, None);
    let mut dialer = DialerPolicyServiceClient::new(c.channel("dialer-policy", "gateway").expect("channel"));
    dialer.check_call(with(&org.agent1, Request::new(check))).await.expect("check");
    let reveal = vpb::RevealFieldRequest {
        tenant_id: org.tenant.clone(),
        lead_id: lead.clone(),
        field: vpb::LeadField::Name as i32,
        index: 0,
        reason: "metrics journey".into(),
    };
    vault(c).reveal_field(with(&org.admin, Request::new(reveal))).await.expect("reveal");
    let denied = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
    let code =
        vault(c).get_lead(with(&org.agent2, Request::new(denied))).await.expect_err("another team's lead").code();

    // Each service's scrape: RPCs by the OpenTelemetry conventions and the business numbers.
    let dialer = c.scrape("dialer-policy").await.expect("scrape");
    let check_call = [r#"rpc_method="CheckCall""#, r#"rpc_service="guardline.dialer.v1.DialerPolicyService""#];
    let ok = [&check_call[..], &[r#"rpc_grpc_status_code="0""#, r#"rpc_system="grpc""#]].concat();
    assert!(sample(&dialer, "rpc_server_duration_seconds_count", &ok).is_some_and(|n| n >= 1.0), "{dialer}");
    let verdicts = ["ALLOW", "DENY", "DEFER"]
        .map(|v| sample(&dialer, "guardline_dialer_decisions_total", &[&format!("verdict=\"{v}\"")]));
    assert!(verdicts.iter().flatten().sum::<f64>() >= 1.0, "a decision counted by verdict: {dialer}");
    let vault = c.scrape("lead-vault").await.expect("scrape");
    assert!(sample(&vault, "guardline_vault_reveals_total", &[r#"field="NAME""#]).is_some_and(|n| n >= 1.0), "{vault}");
    let denied = [r#"rpc_method="GetLead""#.to_owned(), format!("rpc_grpc_status_code=\"{}\"", code as i32)];
    let denied: Vec<&str> = denied.iter().map(String::as_str).collect();
    assert!(
        sample(&vault, "rpc_server_duration_seconds_count", &denied).is_some(),
        "the refusal, by its code: {vault}"
    );
    // The lead vault's outbox delivered the reveal's audit event.
    assert!(sample(&vault, "guardline_outbox_delivered_total", &[]).is_some_and(|n| n >= 1.0), "{vault}");
    assert!(sample(&vault, "guardline_outbox_age_seconds", &[]).is_some(), "{vault}");
    assert!(sample(&vault, "guardline_outbox_depth", &[]).is_some(), "{vault}");
    let audit = c.scrape("audit").await.expect("scrape");
    assert!(sample(&audit, "guardline_audit_appended_total", &[]).is_some_and(|n| n >= 1.0), "{audit}");
    assert!(sample(&audit, "guardline_audit_append_duration_seconds_count", &[]).is_some(), "{audit}");
    // Tree sizes by powers of ten, without a tenant label: a journey's tenant
    // holds fewer than a million entries, and at least one.
    assert!(sample(&audit, "guardline_audit_tree_size_count", &[]).is_some_and(|n| n >= 1.0), "{audit}");
    assert_eq!(
        sample(&audit, "guardline_audit_tree_size_bucket", &["le=\"1000000\""]),
        sample(&audit, "guardline_audit_tree_size_count", &[]),
        "{audit}"
    );
    let identity = c.scrape("identity").await.expect("scrape");
    let expiry = sample(&identity, "guardline_tls_certificate_expiry_seconds", &[]).expect("certificate expiry");
    assert!(expiry > chrono::Utc::now().timestamp() as f64, "the certificate's expiry, in the future");

    // No label value carries anything personal or an id.
    for service in ["identity", "lead-vault", "dialer-policy", "recordings", "audit"] {
        let scraped = c.scrape(service).await.expect("scrape");
        for secret in [phone, "王五", lead.as_str(), org.tenant.as_str(), org.agent1_id.as_str()] {
            assert!(!scraped.contains(secret), "{service} exposes {secret}");
        }
    }

    // kubelet's probe port: plaintext health, no data RPC.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", c.health_port("lead-vault")))
        .expect("uri")
        .connect()
        .await
        .expect("plaintext");
    let mut health = tonic_health::pb::health_client::HealthClient::new(plain.clone());
    let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("probe");
    assert_eq!(status.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    let mut data = LeadVaultServiceClient::new(plain);
    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: lead };
    let refused = data.get_lead(with(&org.admin, Request::new(get))).await.expect_err("no data RPC on the probe port");
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
}
