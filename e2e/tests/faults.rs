//! The fault suite: two replicas of every service (real processes) behind
//! one endpoint each, on a PostgreSQL primary with a synchronous standby,
//! under a bounded mixed load (leads created and revealed, calls checked,
//! recordings uploaded, events appended to audit) that keeps a ledger of
//! every acknowledged write. One mesh serves every fault in turn:
//!
//! 1. `kill -9` of each service's replicas, one at a time, each twice;
//! 2. PostgreSQL crashed and restarted;
//! 3. every certificate rotated while serving: no RPC fails;
//! 4. OpenBao unreachable for twice the data-key cache's TTL;
//! 5. audit down (both replicas): outboxes grow to their bound and push
//!    back, reveals fail closed;
//! 6. PostgreSQL failover: the standby promoted, the old primary stopped,
//!    the endpoint moved.
//!
//! Then: every acknowledged write is there, none twice, every tenant's
//! audit chain verifies. The figures go to `fault-report.md` in cargo's
//! target tmp directory (and into docs/reliability.md by hand).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use guardline_audit_client::EventBuilder;
use guardline_audit_log::verify::Finding;
use guardline_e2e::SERVICES;
use guardline_e2e::faults::{FaultMesh, Tuning};
use guardline_journeys::{self as journeys, AUDIO, Org, bearer};
use guardline_proto::audit::v1 as apb;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
use guardline_proto::vault::v1 as vpb;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::Status;

const TUNING: Tuning = Tuning { replicas: 2, data_key_ttl: Duration::from_secs(2), outbox_limit: 40 };

/// The kinds of operation the load mixes.
const KINDS: [&str; 5] = ["lead.create", "lead.reveal", "call.check", "recording.upload", "audit.append"];

/// Failed calls by (kind, gRPC code).
type Failures = BTreeMap<(&'static str, String), u64>;

/// What the load was told, by kind: acknowledged ids, and failures by code.
#[derive(Default)]
struct Ledger {
    acked: std::sync::Mutex<BTreeMap<&'static str, Vec<String>>>,
    failed: std::sync::Mutex<Failures>,
    messages: std::sync::Mutex<Vec<String>>,
    reveals: AtomicU64,
}

impl Ledger {
    fn ack(&self, kind: &'static str, id: String) {
        self.acked.lock().expect("ledger").entry(kind).or_default().push(id);
    }
    fn fail(&self, kind: &'static str, s: &Status) {
        *self.failed.lock().expect("ledger").entry((kind, format!("{:?}", s.code()))).or_default() += 1;
        let mut m = self.messages.lock().expect("ledger");
        if m.len() < 400 {
            m.push(format!("{kind}: {:?}: {}", s.code(), s.message()));
        }
    }
    fn acked(&self, kind: &str) -> Vec<String> {
        self.acked.lock().expect("ledger").get(kind).cloned().unwrap_or_default()
    }
    fn total(&self) -> usize {
        self.acked.lock().expect("ledger").values().map(Vec::len).sum()
    }
    fn failures(&self) -> Failures {
        self.failed.lock().expect("ledger").clone()
    }
}

struct Load {
    m: Arc<FaultMesh>,
    org: Org,
    ledger: Ledger,
    n: AtomicU64,
}

fn status(e: anyhow::Error) -> Status {
    match e.downcast::<Status>() {
        Ok(s) => s,
        Err(e) => Status::unknown(e.to_string()),
    }
}

impl Load {
    fn vault(&self) -> LeadVaultServiceClient<guardline_runtime::GrpcChannel> {
        LeadVaultServiceClient::new(self.m.channel("lead-vault", "gateway").expect("channel"))
    }

    /// The admin reveals a lead's first phone number, with a reason.
    async fn reveal(&self, lead: &str) -> Result<vpb::RevealFieldResponse, Status> {
        let req = vpb::RevealFieldRequest {
            tenant_id: self.org.tenant.clone(),
            lead_id: lead.to_owned(),
            field: vpb::LeadField::Phone as i32,
            index: 0,
            reason: "the customer called back".into(),
        };
        Ok(self.vault().reveal_field(bearer(&self.org.admin, req)).await?.into_inner())
    }

    fn some_lead(&self, i: u64) -> Option<String> {
        let leads = self.ledger.acked("lead.create");
        (!leads.is_empty()).then(|| leads[(i as usize * 7919) % leads.len()].clone())
    }

    /// One operation of kind `kind`; its acknowledgement or failure in the ledger.
    async fn op(&self, kind: &'static str, i: u64) -> Result<(), Status> {
        let org = &self.org;
        match kind {
            "lead.create" => {
                let phone = format!("+86138{:08}", i % 100_000_000);
                let input = vpb::LeadInput { phones: vec![phone], name: "王五".into(), ..Default::default() };
                let req = vpb::CreateLeadRequest { tenant_id: org.tenant.clone(), lead: Some(input) };
                let id = self.vault().create_lead(bearer(&org.agent1, req)).await?.into_inner().id;
                self.ledger.ack(kind, id);
            }
            "lead.reveal" => {
                // Within the admin's daily reveal quota.
                let Some(lead) = self.some_lead(i) else { return Ok(()) };
                if self.ledger.reveals.fetch_add(1, Ordering::Relaxed) >= 30 {
                    let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: lead };
                    self.vault().get_lead(bearer(&org.agent1, get)).await?;
                    return Ok(());
                }
                self.reveal(&lead).await?;
                self.ledger.ack(kind, lead);
            }
            "call.check" => {
                let Some(lead) = self.some_lead(i) else { return Ok(()) };
                let mut d = DialerPolicyServiceClient::new(self.m.channel("dialer-policy", "gateway").expect("ch"));
                let req = journeys::dialing::call(org, &lead, None);
                let id = d.check_call(bearer(&org.agent1, req)).await?.into_inner().decision_id;
                self.ledger.ack(kind, id);
            }
            "recording.upload" => {
                let Some(lead) = self.some_lead(i) else { return Ok(()) };
                let rec = journeys::upload_recording(self.m.as_ref(), org, &lead, None).await.map_err(status)?;
                self.ledger.ack(kind, rec.id);
            }
            _ => {
                let e = EventBuilder::new(&org.tenant, "fault.append").resource("lead", &format!("l-{i}")).build();
                let id = e.id.clone();
                let mut a = AuditServiceClient::new(self.m.channel("audit", "lead-vault").expect("channel"));
                let r = a.append(apb::AppendRequest { events: vec![e] }).await?.into_inner();
                if r.stored_ids.contains(&id) || r.duplicate_ids.contains(&id) {
                    self.ledger.ack(kind, id);
                }
            }
        }
        Ok(())
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let i = self.n.fetch_add(1, Ordering::Relaxed);
            let kind = KINDS[(i % KINDS.len() as u64) as usize];
            if let Err(s) = self.op(kind, i).await {
                self.ledger.fail(kind, &s);
                // A failed call is not retried (a retry could apply a write
                // twice); the next operation goes on after a breath.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Until one operation of every kind succeeds: the time it took.
    async fn recovered(&self, deadline: Duration) -> Duration {
        let start = Instant::now();
        for (k, kind) in KINDS.iter().enumerate() {
            loop {
                let i = self.n.fetch_add(1, Ordering::Relaxed) + k as u64;
                match self.op(kind, i).await {
                    Ok(()) => break,
                    Err(s) => {
                        self.ledger.fail(kind, &s);
                        assert!(start.elapsed() < deadline, "{kind} never recovered: {s:?}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        start.elapsed()
    }
}

/// One fault as the report shows it.
struct Phase {
    name: &'static str,
    acked: usize,
    failed: Failures,
    recovery: Duration,
}

fn delta(after: &Failures, before: &Failures) -> Failures {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

/// Runs `fault` under the load, then measures the time until every kind of
/// operation succeeds again.
async fn phase(load: &Load, name: &'static str, fault: impl Future<Output = ()>) -> Phase {
    let (acked, failed) = (load.ledger.total(), load.ledger.failures());
    fault.await;
    let recovery = load.recovered(Duration::from_secs(90)).await;
    Phase { name, acked: load.ledger.total() - acked, failed: delta(&load.ledger.failures(), &failed), recovery }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_are_survived_with_nothing_acknowledged_lost() {
    let m = Arc::new(FaultMesh::start(TUNING).await.expect("the fault mesh starts"));
    let org = journeys::onboard(m.as_ref(), "Faults").await.expect("onboarding");
    let load = Arc::new(Load { m: m.clone(), org, ledger: Ledger::default(), n: AtomicU64::new(0) });
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..3).map(|_| tokio::spawn(load.clone().run(stop.clone()))).collect();
    let mut phases = Vec::new();
    let started = Instant::now();
    // Some load first, so that every kind has leads to work on.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let kills = async {
        for round in 0..2 {
            for service in SERVICES {
                m.kill(service, round).expect("kill");
                tokio::time::sleep(Duration::from_millis(700)).await;
                m.start_replica(service, round).await.expect("restart");
            }
        }
    };
    phases.push(phase(&load, "kill -9 of each service's replicas, one at a time, each twice", kills).await);
    let restart = async {
        m.pg.crash_restart_primary().await.expect("restart");
        m.pg_endpoint.cut();
    };
    phases.push(phase(&load, "PostgreSQL crashed and restarted", restart).await);
    let rotation = async {
        m.rotate_certificates().expect("rotate");
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    phases.push(phase(&load, "every certificate rotated while serving", rotation).await);
    let bao = async {
        m.bao_endpoint.pause();
        tokio::time::sleep(TUNING.data_key_ttl * 2).await;
        m.bao_endpoint.resume();
    };
    phases.push(phase(&load, "OpenBao unreachable for twice the data-key TTL", bao).await);
    let before = load.ledger.failures();
    let audit_down = async {
        m.kill("audit", 0).expect("kill");
        m.kill("audit", 1).expect("kill");
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A reveal is never answered unless audit recorded it.
        let lead = load.some_lead(1).expect("a lead");
        let refused = load.reveal(&lead).await.expect_err("fails closed");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        m.start_replica("audit", 0).await.expect("restart");
        m.start_replica("audit", 1).await.expect("restart");
    };
    phases.push(phase(&load, "audit down (both replicas): outboxes at their bound push back", audit_down).await);
    let during_audit_outage = delta(&load.ledger.failures(), &before);
    let failover = async {
        m.pg.failover().await.expect("failover");
        m.pg_endpoint.set_backends(vec![m.pg.standby_port()]);
    };
    phases.push(phase(&load, "PostgreSQL failover to the synchronous standby", failover).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    for w in workers {
        w.await.expect("load worker");
    }
    let elapsed = started.elapsed();

    let report = verify(&m, &load, &phases, &during_audit_outage, elapsed).await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-report.md");
    std::fs::write(&path, &report).expect("report");
    println!("{report}\n(written to {})", path.display());

    // Certificates rotated while serving: no call failed.
    let rotation = phases.iter().find(|p| p.name.starts_with("every certificate")).expect("phase");
    assert!(rotation.failed.is_empty(), "calls failed while certificates rotated: {:?}", rotation.failed);
    // Audit down: every refusal says retry (UNAVAILABLE, or the transport's
    // UNKNOWN for a call cut by the kill), and the outboxes pushed back.
    let retry = |c: &str| c == "Unavailable" || c == "Unknown";
    assert!(during_audit_outage.keys().all(|(_, c)| retry(c)), "{during_audit_outage:?}");
    let messages = load.ledger.messages.lock().expect("ledger").join("\n");
    assert!(messages.contains("audit is behind"), "the outbox bound pushed back:\n{messages}");
}

/// Every acknowledged write is there once; the chain verifies. Returns the report.
async fn verify(
    m: &Arc<FaultMesh>,
    load: &Load,
    phases: &[Phase],
    during_audit_outage: &Failures,
    elapsed: Duration,
) -> String {
    let org = &load.org;
    let (leads, uploads, appended) =
        (load.ledger.acked("lead.create"), load.ledger.acked("recording.upload"), load.ledger.acked("audit.append"));
    // The outboxes deliver asynchronously: wait until every acknowledged
    // lead's and recording's event arrived, then verify the chain.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (events, finding) = loop {
        let (export, finding) = export(m, org).await;
        let events = entries(&export);
        let created: Vec<&str> = of(&events, "lead.create");
        let uploaded: Vec<&str> = of(&events, "recording.upload");
        if leads.iter().all(|l| created.contains(&l.as_str())) && uploads.iter().all(|u| uploaded.contains(&u.as_str()))
        {
            break (events, finding);
        }
        assert!(Instant::now() < deadline, "acknowledged writes never reached audit");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(matches!(finding, Finding::Intact { .. }), "{finding:?}");
    let mut lost = 0;
    let mut duplicated = 0;
    let count = |list: &[&str]| {
        let mut c: HashMap<String, usize> = HashMap::new();
        for x in list {
            *c.entry((*x).to_owned()).or_default() += 1;
        }
        c
    };
    let created = count(&of(&events, "lead.create"));
    let uploaded = count(&of(&events, "recording.upload"));
    duplicated += created.values().chain(uploaded.values()).filter(|n| **n > 1).count();
    let ids: HashMap<&str, usize> = events.iter().fold(HashMap::new(), |mut c, e| {
        *c.entry(e.id.as_str()).or_default() += 1;
        c
    });
    duplicated += ids.values().filter(|n| **n > 1).count();
    lost += appended.iter().filter(|id| !ids.contains_key(id.as_str())).count();
    let mut vault = LeadVaultServiceClient::new(m.channel("lead-vault", "gateway").expect("channel"));
    for lead in &leads {
        let get = vpb::GetLeadRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
        if vault.get_lead(bearer(&org.agent1, get)).await.is_err() {
            lost += 1;
        }
    }
    for rec in &uploads {
        if journeys::download(m.as_ref(), org, &org.admin, rec).await.ok().as_deref() != Some(&AUDIO[..]) {
            lost += 1;
        }
    }
    assert_eq!((lost, duplicated), (0, 0), "acknowledged writes lost or applied twice");
    report(load, phases, during_audit_outage, elapsed, events.len())
}

fn report(load: &Load, phases: &[Phase], during_audit_outage: &Failures, elapsed: Duration, events: usize) -> String {
    let mut out = String::from(
        "| fault | writes acknowledged during | calls failed during (kind: code × n) | time to recover |\n|---|---|---|---|\n",
    );
    for p in phases {
        let failed: Vec<String> = p.failed.iter().map(|((k, c), n)| format!("{k}: {c:?} × {n}")).collect();
        let failed = if failed.is_empty() { "none".to_owned() } else { failed.join(", ") };
        out += &format!("| {} | {} | {} | {:.1} s |\n", p.name, p.acked, failed, p.recovery.as_secs_f64());
    }
    let by_kind: Vec<String> = KINDS.iter().map(|k| format!("{k} {}", load.ledger.acked(k).len())).collect();
    out += &format!(
        "\nIn {:.0} s: {} faults injected, {} writes acknowledged ({}), {} audit entries; lost 0, duplicated 0; \
         every chain verified. While audit was down: {:?}.\n",
        elapsed.as_secs_f64(),
        phases.len(),
        load.ledger.total(),
        by_kind.join(", "),
        events,
        during_audit_outage
    );
    let mut seen: Vec<String> = load.ledger.messages.lock().expect("ledger").clone();
    seen.sort();
    seen.dedup();
    out += "\nWhat the failed calls said (distinct):\n";
    for m in seen.iter().take(30) {
        out += &format!("- {m}\n");
    }
    out
}

/// The tenant's log exported by its auditor, and what verifying it with
/// the pinned keys found.
async fn export(m: &Arc<FaultMesh>, org: &Org) -> (String, Finding) {
    use guardline_journeys::Mesh;
    let req = apb::ExportEventsRequest { tenant_id: org.tenant.clone(), range: None };
    let mut a = AuditServiceClient::new(m.channel("audit", "gateway").expect("channel"));
    let mut stream = a.export_events(bearer(&org.auditor, req)).await.expect("export").into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("export") {
        bytes.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8(bytes).expect("utf-8");
    let pins = m.audit_pins().expect("pins");
    let finding = guardline_audit_log::export::verify_export(&text, &pins).expect("an export");
    (text, finding)
}

/// The events of an export.
fn entries(export: &str) -> Vec<guardline_audit_log::canonical::Event> {
    use guardline_audit_log::export::Line;
    export
        .lines()
        .filter_map(|l| match serde_json::from_str::<Line>(l) {
            Ok(Line::Entry { entry, .. }) => base64::engine::general_purpose::STANDARD.decode(entry).ok(),
            _ => None,
        })
        .filter_map(|b| guardline_audit_log::canonical::Event::decode(&b))
        .collect()
}

/// The resource ids of the events of `action`.
fn of<'a>(events: &'a [guardline_audit_log::canonical::Event], action: &str) -> Vec<&'a str> {
    events.iter().filter(|e| e.action == action).map(|e| e.resource_id.as_str()).collect()
}
