//! The audit service over real mTLS, with the real identity service for
//! tokens; every scenario on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ct_merkle::{ConsistencyProof, HashableLeaf, InclusionProof, RootHash};
use guardline_audit::domain::canonical::Event;
use guardline_audit::domain::pin::{Pins, fingerprint};
use guardline_audit::domain::verify::Finding;
use guardline_audit::error::AuditError;
use guardline_proto::audit::v1 as pb;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_runtime::GrpcChannel;
use guardline_runtime::args::DatabaseArgs;
use guardline_runtime::clock::ManualClock;
use guardline_runtime::error::field_violations;
use guardline_testmesh::{Keys, TestMesh};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sha2::Sha256;
use tonic::{Code, Request};

struct Mesh {
    t: TestMesh,
    /// Audit's own clock (the other services keep the system's): a prune
    /// deletes as of the service's clock, so the retention test moves it.
    clock: ManualClock,
    audit_uri: String,
    identity_uri: String,
    audit_db: String,
    keys: guardline_keys::args::KeysArgs,
}

async fn start(postgres: bool) -> Mesh {
    let mut t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    // The test's receiver listens on loopback.
    let clock = ManualClock::default();
    let base = t.audit_args();
    let audit = guardline_audit::Args {
        webhook_allow: vec!["127.0.0.0/8".parse().expect("net")],
        webhook_allow_http: true,
        common: base.common.clone().with_clock(clock.clock()),
        ..base
    };
    t.start_identity(t.identity_args()).await;
    t.start_audit(audit).await;
    t.wait_serving("lead-vault").await;
    Mesh {
        clock,
        audit_uri: t.endpoint("audit"),
        identity_uri: t.endpoint("identity"),
        audit_db: t.database("audit").to_owned(),
        keys: t.keys().clone(),
        t,
    }
}

impl Mesh {
    fn channel(&self, uri: &str, name: &str) -> GrpcChannel {
        self.t.connect(uri, name)
    }
    fn audit(&self, name: &str) -> AuditServiceClient<GrpcChannel> {
        AuditServiceClient::new(self.channel(&self.audit_uri, name))
    }
    fn identity(&self, name: &str) -> IdentityServiceClient<GrpcChannel> {
        IdentityServiceClient::new(self.channel(&self.identity_uri, name))
    }
    /// The fingerprints audit wrote at start, as an operator hands them out.
    fn pins(&self) -> Pins {
        Pins::from_text(&std::fs::read_to_string(self.t.audit_pin_file()).expect("pin file")).expect("pins")
    }
    /// A log over audit's database, as the service opens it.
    async fn open_log(&self, pins: Option<Pins>) -> guardline_audit::error::Result<guardline_audit::service::Log> {
        let args =
            DatabaseArgs { database_url: self.audit_db.clone(), database_max_connections: 2, database_schema: None };
        let db = guardline_runtime::storage::connect(&args).await.expect("db");
        let provider = self.keys.provider(false).await.expect("keys");
        let envelope = Arc::new(guardline_keys::Envelope::new(provider, db.clone(), Duration::from_secs(60)));
        let clock = guardline_runtime::clock::Clock::system();
        guardline_audit::service::Log::open_on(guardline_audit::store::log::Store::new(db), envelope, clock, pins).await
    }
}

fn ev(tenant: &str, id: &str, details: &[(&str, &str)]) -> Event {
    Event {
        id: id.into(),
        tenant_id: tenant.into(),
        time: chrono::DateTime::from_timestamp(1_790_000_000, 123_000_000).expect("time"),
        actor_user: "u-1".into(),
        actor_service: "spiffe://guardline.local/ns/guardline/sa/lead-vault".into(),
        action: "lead.update".into(),
        resource_type: "lead".into(),
        resource_id: format!("lead-{id}"),
        outcome: "allowed".into(),
        details: details.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn to_pb(e: &Event) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.clone(),
        tenant_id: e.tenant_id.clone(),
        time: Some(prost_types::Timestamp {
            seconds: e.time.timestamp(),
            nanos: e.time.timestamp_subsec_nanos() as i32,
        }),
        actor: Some(pb::Actor { user_id: e.actor_user.clone(), service_identity: e.actor_service.clone() }),
        action: e.action.clone(),
        resource: Some(pb::ResourceRef { r#type: e.resource_type.clone(), id: e.resource_id.clone() }),
        outcome: guardline_proto::common::v1::Outcome::Allowed as i32,
        reason: String::new(),
        context: Some(Default::default()),
        details: e.details.clone(),
    }
}

struct Leaf(Vec<u8>);
impl HashableLeaf for Leaf {
    fn hash<H: ct_merkle::digest::Update>(&self, h: &mut H) {
        h.update(&self.0);
    }
}

fn digests(path: &[Vec<u8>]) -> Vec<ct_merkle::digest::Output<Sha256>> {
    path.iter().map(|h| <[u8; 32]>::try_from(h.as_slice()).expect("32 bytes").into()).collect()
}

fn root(sth: &pb::SignedTreeHead) -> RootHash<Sha256> {
    let bytes: [u8; 32] = sth.root_hash.clone().try_into().expect("32 bytes");
    RootHash::new(bytes.into(), sth.tree_size)
}

async fn ingest_is_idempotent_atomic_and_provable(postgres: bool) {
    let m = start(postgres).await;
    let mut c = m.audit("lead-vault");
    let events: Vec<Event> = (0..10).map(|i| ev("t1", &format!("e{i}"), &[("fields", "name")])).collect();
    let first3 = c
        .append(pb::AppendRequest { events: events[..3].iter().map(to_pb).collect() })
        .await
        .expect("append")
        .into_inner();
    assert_eq!(first3.stored_ids.len(), 3);
    let sth3 = c
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: "t1".into() })
        .await
        .expect("sth")
        .into_inner();
    let all =
        c.append(pb::AppendRequest { events: events.iter().map(to_pb).collect() }).await.expect("append").into_inner();
    assert_eq!(
        (all.stored_ids.len(), all.duplicate_ids.len()),
        (7, 3),
        "duplicates are acknowledged, not stored twice"
    );

    // A batch with a phone number is refused whole, naming the field.
    let bad = vec![
        to_pb(&ev("t1", "x1", &[])),
        to_pb(&ev("t1", "x2", &[])),
        to_pb(&ev("t1", "x3", &[("note", "13812345678")])),
    ];
    let err = c.append(pb::AppendRequest { events: bad }).await.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err)[0].field, "events[2].details.note");
    assert!(!err.message().contains("13812345678"), "the value is never echoed");

    let sth = c
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: "t1".into() })
        .await
        .expect("sth")
        .into_inner();
    assert_eq!(sth.tree_size, 10, "nothing of the refused batch was stored");
    for (i, e) in events.iter().enumerate() {
        let p = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                tenant_id: "t1".into(),
                event_id: e.id.clone(),
                tree_size: 10,
            })
            .await
            .expect("proof")
            .into_inner();
        assert_eq!(p.leaf_index, i as u64);
        let proof = InclusionProof::<Sha256>::from_digests(digests(&p.path).iter());
        root(&sth)
            .verify_inclusion(&Leaf(e.encode()), p.leaf_index, &proof)
            .expect("an independent RFC 9162 verifier accepts it");
    }
    let cp = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            tenant_id: "t1".into(),
            first_size: 3,
            second_size: 10,
        })
        .await
        .expect("proof")
        .into_inner();
    let proof = ConsistencyProof::<Sha256>::from_digests(digests(&cp.path).iter());
    root(&sth).verify_consistency(&root(&sth3), &proof).expect("the log only grew");
    // Proof requests beyond the log are the caller's mistake.
    let err = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            tenant_id: "t1".into(),
            event_id: "e1".into(),
            tree_size: 11,
        })
        .await
        .expect_err("beyond");
    assert_eq!(err.code(), Code::InvalidArgument);
    // Tenants have separate trees.
    c.append(pb::AppendRequest { events: vec![to_pb(&ev("t2", "e0", &[]))] }).await.expect("append");
    let t2 = c
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: "t2".into() })
        .await
        .expect("sth")
        .into_inner();
    assert_eq!(t2.tree_size, 1);
}

async fn queries_need_audit_read_and_are_audited(postgres: bool) {
    let m = start(postgres).await;
    let mut platform = m.identity("platform-admin");
    let tenant = platform
        .create_tenant(idpb::CreateTenantRequest { name: "Q".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let token = |login: &'static str, role: &'static str| {
        let mut platform = m.identity("platform-admin");
        let tenant = tenant.clone();
        async move {
            let pw = "a long enough passphrase".to_owned();
            platform
                .create_user(idpb::CreateUserRequest {
                    tenant_id: tenant.clone(),
                    login: login.into(),
                    display_name: login.into(),
                    password: pw.clone(),
                    roles: vec![role.into()],
                    team_ids: vec![],
                })
                .await
                .expect("user");
            platform
                .login(idpb::LoginRequest {
                    tenant_id: tenant,
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
    };
    let auditor = token("auditor1", "auditor").await;
    let agent = token("agent1", "agent").await;
    let mut c = m.audit("gateway");
    m.audit("lead-vault")
        .append(pb::AppendRequest { events: (0..3).map(|i| to_pb(&ev(&tenant, &format!("q{i}"), &[]))).collect() })
        .await
        .expect("append");
    let query = |t: &str, action: &str| {
        let mut r = Request::new(pb::QueryEventsRequest {
            tenant_id: tenant.clone(),
            action: action.into(),
            ..Default::default()
        });
        r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().expect("ascii"));
        r
    };
    let bearer = |t: &str| query(t, "");
    let denied = c.query_events(bearer(&agent)).await.expect_err("agents may not read the audit log");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        c.query_events(Request::new(pb::QueryEventsRequest { tenant_id: tenant.clone(), ..Default::default() }))
            .await
            .expect_err("no token")
            .code(),
        Code::PermissionDenied
    );
    let first = c.query_events(query(&auditor, "lead.update")).await.expect("auditor reads").into_inner().events;
    assert_eq!(first.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["q2", "q1", "q0"], "newest first");
    let reads = c.query_events(query(&auditor, "audit.query")).await.expect("auditor reads").into_inner().events;
    assert_eq!(reads.len(), 1, "the first query is in the log");
    assert_eq!(reads[0].details.get("results").map(String::as_str), Some("3"));
    // Identity's logins reached this log through its outbox, over mTLS.
    let mut logins = Vec::new();
    for _ in 0..100 {
        logins = c.query_events(query(&auditor, "identity.login")).await.expect("auditor reads").into_inner().events;
        if logins.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logins.len(), 2, "both logins were delivered by identity's outbox");

    // The export verifies offline; a changed entry in it is named by index.
    let mut req = Request::new(pb::ExportEventsRequest { tenant_id: tenant.clone(), range: None });
    req.metadata_mut().insert("authorization", format!("Bearer {auditor}").parse().expect("ascii"));
    let mut stream = c.export_events(req).await.expect("export").into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        bytes.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8(bytes).expect("utf8");
    let verdict = guardline_audit::domain::export::verify_export(&text, &m.pins()).expect("readable");
    assert!(matches!(verdict, Finding::Intact { size } if size >= 8), "{verdict:?}");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut entry: serde_json::Value = serde_json::from_str(&lines[3]).expect("json");
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = b64.decode(entry["entry"].as_str().expect("entry")).expect("b64");
    let at = raw.len() - 2;
    raw[at] ^= 1;
    entry["entry"] = serde_json::Value::String(b64.encode(raw));
    lines[3] = entry.to_string();
    let verdict = guardline_audit::domain::export::verify_export(&lines.join("\n"), &m.pins()).expect("readable");
    assert!(matches!(verdict, Finding::Tampered { index: 2, .. }), "{verdict:?}");
    // Cutting the last entries is caught by the closing tree head.
    let mut cut: Vec<String> = text.lines().map(str::to_owned).collect();
    let closing = cut.pop().expect("closing head");
    cut.pop();
    cut.push(closing);
    let verdict = guardline_audit::domain::export::verify_export(&cut.join("\n"), &m.pins()).expect("readable");
    assert!(matches!(verdict, Finding::Tampered { .. }), "{verdict:?}");
}

async fn tampering_is_named_by_index(postgres: bool) {
    use guardline_audit::store::event;
    let m = start(postgres).await;
    let mut c = m.audit("lead-vault");
    c.append(pb::AppendRequest { events: (0..10).map(|i| to_pb(&ev("t1", &format!("e{i}"), &[]))).collect() })
        .await
        .expect("append");
    let args = DatabaseArgs { database_url: m.audit_db.clone(), database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    let log = m.open_log(None).await.expect("log");
    assert_eq!(log.verify("t1").await.expect("verify"), Finding::Intact { size: 10 });
    let row = |i: i64| event::Entity::find().filter(event::Column::TenantId.eq("t1")).filter(event::Column::Idx.eq(i));

    // One byte of a stored entry, as a database administrator could change it.
    let r5 = row(5).one(&db).await.expect("q").expect("row");
    let mut entry = r5.entry.clone();
    let at = entry.len() - 3;
    entry[at] ^= 1;
    event::ActiveModel { tenant_id: Set("t1".into()), idx: Set(5), entry: Set(entry), ..Default::default() }
        .update(&db)
        .await
        .expect("tamper");
    assert!(matches!(log.verify("t1").await.expect("verify"), Finding::Tampered { index: 5, .. }));
    // An entry that no longer decodes: a query names it by index.
    event::ActiveModel {
        tenant_id: Set("t1".into()),
        idx: Set(5),
        entry: Set(b"not an entry".to_vec()),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("garble");
    let filter = guardline_audit::store::log::Filter { tenant: "t1".into(), ..Default::default() };
    let corrupt = log.query(&filter, None, 100).await.expect_err("a corrupt entry");
    assert!(matches!(corrupt.refusal(), Some(AuditError::EntryCorrupt { index: 5 })), "{corrupt:?}");
    event::ActiveModel { tenant_id: Set("t1".into()), idx: Set(5), entry: Set(r5.entry.clone()), ..Default::default() }
        .update(&db)
        .await
        .expect("restore");

    // Two rows swapped.
    let (r3, r7) = (row(3).one(&db).await.expect("q").expect("row"), row(7).one(&db).await.expect("q").expect("row"));
    event::ActiveModel { tenant_id: Set("t1".into()), idx: Set(3), entry: Set(r7.entry.clone()), ..Default::default() }
        .update(&db)
        .await
        .expect("swap");
    event::ActiveModel { tenant_id: Set("t1".into()), idx: Set(7), entry: Set(r3.entry.clone()), ..Default::default() }
        .update(&db)
        .await
        .expect("swap");
    assert!(matches!(log.verify("t1").await.expect("verify"), Finding::Tampered { index: 3, .. }));
    event::ActiveModel { tenant_id: Set("t1".into()), idx: Set(3), entry: Set(r3.entry), ..Default::default() }
        .update(&db)
        .await
        .expect("restore");
    event::ActiveModel { tenant_id: Set("t1".into()), idx: Set(7), entry: Set(r7.entry), ..Default::default() }
        .update(&db)
        .await
        .expect("restore");
    assert_eq!(log.verify("t1").await.expect("verify"), Finding::Intact { size: 10 });

    // A row deleted.
    event::Entity::delete_many()
        .filter(event::Column::TenantId.eq("t1"))
        .filter(event::Column::Idx.eq(4))
        .exec(&db)
        .await
        .expect("delete");
    assert_eq!(
        log.verify("t1").await.expect("verify"),
        Finding::Tampered { index: 4, problem: "entry removed".into() }
    );
}

fn with<T>(token: &str, mut r: Request<T>) -> Request<T> {
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

async fn alerts_reach_watchers_and_signed_webhooks(postgres: bool) {
    let m = start(postgres).await;
    let mut platform = m.identity("platform-admin");
    let tenant = platform
        .create_tenant(idpb::CreateTenantRequest { name: "Alerts".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let pw = "a long enough passphrase".to_owned();
    let mut token_for = async |login: &str, role: &str| {
        platform
            .create_user(idpb::CreateUserRequest {
                tenant_id: tenant.clone(),
                login: login.into(),
                display_name: login.into(),
                password: pw.clone(),
                roles: vec![role.into()],
                team_ids: vec![],
            })
            .await
            .expect("user");
        platform
            .login(idpb::LoginRequest {
                tenant_id: tenant.clone(),
                login: login.into(),
                password: pw.clone(),
                totp_code: String::new(),
                context: None,
            })
            .await
            .expect("login")
            .into_inner()
            .access_token
    };
    let auditor = token_for("auditor1", "auditor").await;
    let agent = token_for("agent1", "agent").await;
    let mut c = m.audit("gateway");
    let (url, seen) = guardline_testkit::webhook_receiver(true).await.expect("webhook receiver");
    let secret = "0123456789abcdef-hook-secret";
    let configure = |u: &str| pb::ConfigureAlertsRequest {
        tenant_id: tenant.clone(),
        thresholds: Some(pb::AlertThresholds { bulk_records: 10, ..Default::default() }),
        webhooks: vec![pb::Webhook { url: u.into(), secret: secret.into() }],
    };
    assert_eq!(
        c.configure_alerts(with(&agent, Request::new(configure(&url)))).await.expect_err("agent").code(),
        Code::PermissionDenied
    );
    let bad = c.configure_alerts(with(&auditor, Request::new(configure("ftp://nope")))).await.expect_err("bad url");
    assert_eq!(field_violations(&bad)[0].field, "webhooks[0].url");
    // No webhook aims at internal addresses: metadata, private networks,
    // or IPv6 loopback. (The IPv4 loopback receiver below is allowed by the
    // operator's --webhook-allow.)
    for target in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/hook",
        "https://192.168.0.10/hook",
        "https://[::1]:8443/hook",
        "https://[fd12::1]/hook",
    ] {
        let refused = c.configure_alerts(with(&auditor, Request::new(configure(target)))).await.expect_err(target);
        assert_eq!(
            (refused.code(), field_violations(&refused)[0].field.as_str()),
            (Code::InvalidArgument, "webhooks[0].url"),
            "{target}"
        );
    }
    let settings =
        c.configure_alerts(with(&auditor, Request::new(configure(&url)))).await.expect("configure").into_inner();
    assert_eq!(settings.webhook_urls, vec![url.clone()]);
    assert_eq!(settings.thresholds.expect("thresholds").bulk_records, 10);

    let mut watch = c
        .watch_alerts(with(&auditor, Request::new(pb::WatchAlertsRequest { tenant_id: tenant.clone() })))
        .await
        .expect("watch")
        .into_inner();
    let export = |id: &str, count: &str| {
        let mut e = ev(&tenant, id, &[("count", count)]);
        e.action = "lead.export".into();
        e.actor_user = "agent-x".into();
        to_pb(&e)
    };
    let mut lv = m.audit("lead-vault");
    lv.append(pb::AppendRequest { events: vec![export("x1", "10")] }).await.expect("append");
    let list = |st: i32| {
        with(&auditor, Request::new(pb::ListAlertsRequest { tenant_id: tenant.clone(), state: st, page: None }))
    };
    assert!(
        c.list_alerts(list(0)).await.expect("list").into_inner().alerts.is_empty(),
        "exactly at the threshold: quiet"
    );
    lv.append(pb::AppendRequest { events: vec![export("x2", "1")] }).await.expect("append");

    let alert = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("in time")
        .expect("stream")
        .expect("an alert");
    assert_eq!((alert.rule.as_str(), alert.event_ids.clone()), ("bulk_access", vec!["x1".to_owned(), "x2".to_owned()]));
    assert_eq!(alert.actor.as_ref().expect("actor").user_id, "agent-x");

    // The webhook got it, signed, after one failed attempt was retried.
    let mut delivered = None;
    for _ in 0..100 {
        if let Some(last) = seen.lock().expect("lock").get(1).cloned() {
            delivered = Some(last);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (headers, body) = delivered.expect("delivered on retry");
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone()).expect(k);
    let ts: i64 = header("x-guardline-timestamp").parse().expect("timestamp");
    assert_eq!(
        header("x-guardline-signature"),
        guardline_audit::service::alerting::signature(secret.as_bytes(), ts, body.as_bytes()),
        "valid HMAC-SHA256"
    );
    let id = header("x-guardline-secret-id");
    assert_eq!(id, guardline_audit::service::alerting::secret_id(secret.as_bytes()), "names the secret that signed");
    assert!(id.len() == 16 && !secret.contains(&id), "{id}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["rule"], "bulk_access");
    assert_eq!(json["id"], alert.id.as_str());

    let acked = c
        .update_alert(with(
            &auditor,
            Request::new(pb::UpdateAlertRequest {
                tenant_id: tenant.clone(),
                alert_id: alert.id.clone(),
                state: pb::AlertState::Acknowledged as i32,
            }),
        ))
        .await
        .expect("ack")
        .into_inner();
    assert_eq!(acked.state, pb::AlertState::Acknowledged as i32);
    assert!(!acked.updated_by.is_empty());
    let open = c.list_alerts(list(pb::AlertState::Open as i32)).await.expect("list").into_inner().alerts;
    assert!(open.is_empty(), "{open:?}");
    let not_mine = c
        .update_alert(with(
            &auditor,
            Request::new(pb::UpdateAlertRequest { tenant_id: tenant.clone(), alert_id: "nope".into(), state: 2 }),
        ))
        .await
        .expect_err("unknown");
    assert_eq!(not_mine.code(), Code::NotFound);
}

/// One tenant's failing webhook delays no one else's: tenant C's secret no
/// longer opens, tenant A's receiver hangs, tenant D's redirects; tenant B's
/// alert, raised last, is still delivered while A's attempt is still open.
/// The failures are retried with backoff, and a redirect is never followed.
async fn webhook_failures_stay_with_their_webhook(postgres: bool) {
    use guardline_testkit::Answer;
    let m = start(postgres).await;
    let mut lv = m.audit("lead-vault");
    let mut c = m.audit("gateway");
    let (followed, followed_seen) = guardline_testkit::webhook_receiver(false).await.expect("receiver");
    let receivers = [
        guardline_testkit::webhook_receiver(false).await.expect("receiver"),
        guardline_testkit::webhook_receiver_answering(|_| Answer::Hang).await.expect("receiver"),
        guardline_testkit::webhook_receiver_answering(move |_| Answer::Redirect(followed.clone()))
            .await
            .expect("receiver"),
        guardline_testkit::webhook_receiver(false).await.expect("receiver"),
    ];
    let mut tenants = Vec::new();
    for (name, (url, _)) in ["c", "a", "d", "b"].iter().zip(&receivers) {
        let (tenant, tokens) = tenant_with(&m, &[(&format!("auditor-{name}"), "auditor")]).await;
        let configure = pb::ConfigureAlertsRequest {
            tenant_id: tenant.clone(),
            thresholds: Some(pb::AlertThresholds { bulk_records: 10, ..Default::default() }),
            webhooks: vec![pb::Webhook { url: url.clone(), secret: "0123456789abcdef-hook-secret".into() }],
        };
        c.configure_alerts(with(&tokens[0], Request::new(configure))).await.expect("configure");
        tenants.push(tenant);
    }
    // C's sealed secret is damaged in the database.
    let args = DatabaseArgs { database_url: m.audit_db.clone(), database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    let store = guardline_audit::store::log::Store::new(db.clone());
    let (thresholds, hooks) = store.alert_settings(&tenants[0]).await.expect("settings").expect("stored");
    let mut hooks: serde_json::Value = serde_json::from_str(&hooks).expect("json");
    hooks[0]["sealed_secret"] = "not base64!".into();
    store.put_alert_settings(&tenants[0], thresholds, hooks.to_string()).await.expect("damage");
    // Alerts in the order C, A, D, B: every failure comes before B's delivery.
    for (i, tenant) in tenants.iter().enumerate() {
        let mut e = ev(tenant, &format!("bulk-{i}"), &[("count", "11")]);
        e.action = "lead.export".into();
        lv.append(pb::AppendRequest { events: vec![to_pb(&e)] }).await.expect("append");
    }

    let pending = async |tenant: &str| {
        use guardline_audit::store::delivery;
        delivery::Entity::find()
            .filter(delivery::Column::TenantId.eq(tenant))
            .one(&db)
            .await
            .expect("row")
            .expect("kept")
    };
    let (_, b_seen) = &receivers[3];
    let (_, a_seen) = &receivers[1];
    wait_until("B's delivery", || b_seen.lock().expect("lock").len() == 1).await;
    // Deliveries of one round go out together: A's request reaches its
    // receiver, which holds it open.
    wait_until("A's request held", || a_seen.lock().expect("lock").len() == 1).await;
    let a = pending(&tenants[1]).await;
    assert_eq!((a.attempts, a.delivered_at), (0, None), "B was delivered while A's attempt was still open");
    // C's and D's failures are retried with backoff, not dropped; the
    // redirect's target never hears of it.
    let (_, d_seen) = &receivers[2];
    wait_until("D's retry", || d_seen.lock().expect("lock").len() >= 2).await;
    assert!(followed_seen.lock().expect("lock").is_empty(), "a redirect is never followed");
    let (c_row, d_row) = (pending(&tenants[0]).await, pending(&tenants[2]).await);
    assert!(c_row.attempts >= 1 && c_row.delivered_at.is_none(), "{c_row:?}");
    assert!(d_row.attempts >= 1 && d_row.delivered_at.is_none(), "{d_row:?}");
    assert!(receivers[0].1.lock().expect("lock").is_empty(), "C's secret never opened: nothing sent");
}

/// Waits for `done`, polling every 50 ms, for at most 15 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen");
}

/// A tenant with one user per (login, role), and their access tokens.
async fn tenant_with(m: &Mesh, users: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut platform = m.identity("platform-admin");
    let tenant = platform
        .create_tenant(idpb::CreateTenantRequest { name: "T".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let pw = "a long enough passphrase".to_owned();
    let mut tokens = Vec::new();
    for (login, role) in users {
        platform
            .create_user(idpb::CreateUserRequest {
                tenant_id: tenant.clone(),
                login: (*login).into(),
                display_name: (*login).into(),
                password: pw.clone(),
                roles: vec![(*role).into()],
                team_ids: vec![],
            })
            .await
            .expect("user");
        let t = platform
            .login(idpb::LoginRequest {
                tenant_id: tenant.clone(),
                login: (*login).into(),
                password: pw.clone(),
                totp_code: String::new(),
                context: None,
            })
            .await
            .expect("login");
        tokens.push(t.into_inner().access_token);
    }
    (tenant, tokens)
}

async fn retention_prunes_old_entries_and_the_rest_stays_provable(postgres: bool) {
    let m = start(postgres).await;
    let (tenant, tokens) = tenant_with(&m, &[("compliance1", "compliance_officer"), ("auditor1", "auditor")]).await;
    let (compliance, auditor) = (&tokens[0], &tokens[1]);
    let mut c = m.audit("gateway");
    let short = c
        .set_retention(with(
            compliance,
            Request::new(pb::SetRetentionRequest { tenant_id: tenant.clone(), retention_days: 179 }),
        ))
        .await
        .expect_err("too short");
    assert_eq!(field_violations(&short)[0].field, "retention_days");
    assert!(short.message().contains("180"), "{}", short.message());
    let set = c
        .set_retention(with(
            compliance,
            Request::new(pb::SetRetentionRequest { tenant_id: tenant.clone(), retention_days: 365 }),
        ))
        .await
        .expect("set");
    assert_eq!(set.into_inner().retention_days, 365);
    // The operator writes a RetentionPolicy's period without a user token;
    // another service without one is refused, and the floor holds for both.
    let by_operator = |days: u32| pb::SetRetentionRequest { tenant_id: tenant.clone(), retention_days: days };
    let mut op = m.audit("operator");
    assert_eq!(
        field_violations(&op.set_retention(by_operator(90)).await.expect_err("floor"))[0].field,
        "retention_days"
    );
    assert_eq!(op.set_retention(by_operator(365)).await.expect("the operator").into_inner().retention_days, 365);
    let refused = c.set_retention(by_operator(365)).await.expect_err("gateway, no token");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Identity's own events for this tenant (dated now) may already lead the
    // log; the kept events are dated five years ahead and the prune applies a
    // year from now, so everything before the first kept event is the prefix.
    let old = chrono::DateTime::from_timestamp(1_600_000_000, 0).expect("2020");
    let mut events = Vec::new();
    for i in 0..6 {
        let mut e = ev(&tenant, &format!("old{i}"), &[]);
        e.time = old + chrono::Duration::days(i);
        events.push(e);
    }
    let mut lv = m.audit("lead-vault");
    lv.append(pb::AppendRequest { events: events[..3].iter().map(to_pb).collect() }).await.expect("append");
    // A monitor remembers the head at this size, inside what will be pruned.
    let remembered = lv
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: tenant.clone() })
        .await
        .expect("sth")
        .into_inner();
    lv.append(pb::AppendRequest { events: events[3..].iter().map(to_pb).collect() }).await.expect("append");
    let fresh: Vec<Event> = (0..4)
        .map(|i| {
            let mut e = ev(&tenant, &format!("new{i}"), &[]);
            e.time = chrono::Utc::now() + chrono::Duration::days(5 * 365);
            e
        })
        .collect();
    lv.append(pb::AppendRequest { events: fresh.iter().map(to_pb).collect() }).await.expect("append");

    let sth = lv
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: tenant.clone() })
        .await
        .expect("sth")
        .into_inner();
    let denied = lv
        .prune(pb::PruneRequest { tenant_id: tenant.clone(), ..Default::default() })
        .await
        .expect_err("lead-vault is not the operator");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let first_kept = {
        let p = op
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                tenant_id: tenant.clone(),
                event_id: "new0".into(),
                tree_size: sth.tree_size,
            })
            .await
            .expect("proof");
        p.into_inner().leaf_index
    };
    let next_year = chrono::Utc::now() + chrono::Duration::days(366);
    let ahead = prost_types::Timestamp { seconds: next_year.timestamp(), nanos: 0 };
    let early = pb::PruneRequest { tenant_id: tenant.clone(), as_of: Some(ahead), dry_run: false };
    let refused = op.prune(early.clone()).await.expect_err("after the service's clock");
    assert_eq!(field_violations(&refused)[0].field, "as_of", "a caller's clock never prunes early");
    let dry = op.prune(pb::PruneRequest { dry_run: true, ..early }).await.expect("a forecast").into_inner();
    assert_eq!((dry.pruned, dry.first_index), (first_kept, 0), "counted, nothing deleted");
    // A year on, by the service's clock.
    m.clock.set(next_year);
    let prune = || pb::PruneRequest { tenant_id: tenant.clone(), as_of: None, dry_run: false };
    let pruned = op.prune(prune()).await.expect("prune").into_inner();
    assert_eq!(
        (pruned.pruned, pruned.first_index),
        (first_kept, first_kept),
        "everything older than the retention, a prefix"
    );
    assert!(first_kept >= 6, "identity's events and the six old ones");
    assert_eq!(op.prune(prune()).await.expect("again").into_inner().pruned, 0);
    // Back to the present, where the users' tokens are valid.
    m.clock.set(chrono::Utc::now());

    // The monitor's head, older than the prune, is still proven consistent
    // with today's (the pruned entries' leaf hashes were kept).
    assert!(remembered.tree_size < first_kept);
    let later = lv.append(pb::AppendRequest { events: vec![to_pb(&ev(&tenant, "after", &[]))] }).await;
    later.expect("append after the prune");
    let now = op
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: tenant.clone() })
        .await
        .expect("sth")
        .into_inner();
    let ask = pb::GetConsistencyProofRequest {
        tenant_id: tenant.clone(),
        first_size: remembered.tree_size,
        second_size: now.tree_size,
    };
    let p = op.get_consistency_proof(ask).await.expect("a proof across the prune").into_inner();
    let proof = ConsistencyProof::<Sha256>::from_digests(digests(&p.path).iter());
    root(&now).verify_consistency(&root(&remembered), &proof).expect("consistent across the prune");

    // What remains still proves against the same signed head.
    for e in &fresh {
        let p = op
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                tenant_id: tenant.clone(),
                event_id: e.id.clone(),
                tree_size: sth.tree_size,
            })
            .await
            .expect("proof")
            .into_inner();
        let proof = InclusionProof::<Sha256>::from_digests(digests(&p.path).iter());
        root(&sth).verify_inclusion(&Leaf(e.encode()), p.leaf_index, &proof).expect("still provable");
    }
    let gone = op
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            tenant_id: tenant.clone(),
            event_id: "old2".into(),
            tree_size: sth.tree_size,
        })
        .await
        .expect_err("pruned");
    assert_eq!(gone.code(), Code::NotFound);

    // Live verification and an offline export both pass after the prune.
    let log = m.open_log(None).await.expect("log");
    assert!(matches!(log.verify(&tenant).await.expect("verify"), Finding::Intact { .. }));
    let mut stream = c
        .export_events(with(auditor, Request::new(pb::ExportEventsRequest { tenant_id: tenant.clone(), range: None })))
        .await
        .expect("export")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        bytes.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8(bytes).expect("utf8");
    assert!(matches!(
        guardline_audit::domain::export::verify_export(&text, &m.pins()).expect("readable"),
        Finding::Intact { .. }
    ));
}

/// A database insider plants a head-signing key of their own beside the
/// real one, rewrites the log and re-signs every head: the service refuses
/// to start on the planted key, and verification, by the service and
/// offline, trusts only the checked (and pinned) keys.
async fn a_planted_key_and_a_resigned_log_are_caught(postgres: bool) {
    use guardline_audit::domain::merkle::{Tree, leaf_hash};
    use guardline_audit::domain::sth::{HeadSigner, TreeHead};
    use guardline_audit::store::{event, signing_key};
    let m = start(postgres).await;
    let mut c = m.audit("lead-vault");
    c.append(pb::AppendRequest { events: (0..4).map(|i| to_pb(&ev("t1", &format!("e{i}"), &[]))).collect() })
        .await
        .expect("append");
    let args = DatabaseArgs { database_url: m.audit_db.clone(), database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    let real = signing_key::Entity::find().one(&db).await.expect("q").expect("the service's key");

    // The insider's key, its row carrying the real key's sealed blob.
    let pkcs8 =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
    let planted = HeadSigner::from_pkcs8("planted", pkcs8.as_ref()).expect("signer");
    let row = signing_key::Model { kid: "planted".into(), public_key: planted.public_key(), ..real.clone() };
    signing_key::Entity::insert(signing_key::ActiveModel::from(row)).exec(&db).await.expect("plant the key");
    // Every entry's action rewritten, every head re-signed with it.
    let rows = event::Entity::find().filter(event::Column::TenantId.eq("t1")).all(&db).await.expect("rows");
    let mut tree = Tree::new();
    for r in rows {
        let mut e = Event::decode(&r.entry).expect("entry");
        e.action = "lead.create".into();
        let entry = e.encode();
        tree.push(leaf_hash(&entry));
        let size = r.idx as u64 + 1;
        let head = TreeHead {
            tenant_id: "t1".into(),
            tree_size: size,
            timestamp_ms: r.head_ts,
            root: tree.root(size).expect("root"),
        };
        event::ActiveModel {
            tenant_id: Set("t1".into()),
            idx: Set(r.idx),
            entry: Set(entry),
            leaf_hash: Set(leaf_hash(&e.encode()).to_vec()),
            head_kid: Set("planted".into()),
            head_sig: Set(planted.sign(&head)),
            ..Default::default()
        }
        .update(&db)
        .await
        .expect("re-sign");
    }
    let refused = m.open_log(None).await.expect_err("a planted key stops the start");
    assert!(
        matches!(refused.refusal(), Some(AuditError::SigningKeyMismatch { kid }) if kid == "planted"),
        "{refused:?}"
    );

    // The key row removed again; the real row given the insider's public key
    // instead (its sealed private key untouched) is caught as well.
    signing_key::Entity::delete_by_id("planted".to_owned()).exec(&db).await.expect("unplant");
    let swap = |pk: Vec<u8>| signing_key::ActiveModel {
        kid: Set(real.kid.clone()),
        public_key: Set(pk),
        ..Default::default()
    };
    swap(planted.public_key()).update(&db).await.expect("swap the public key");
    let refused = m.open_log(None).await.expect_err("a swapped public key stops the start");
    assert!(
        matches!(refused.refusal(), Some(AuditError::SigningKeyMismatch { kid }) if *kid == real.kid),
        "{refused:?}"
    );
    swap(real.public_key.clone()).update(&db).await.expect("restore");
    // The re-signed log is named at its first head.
    let log = m.open_log(None).await.expect("opens on its own key");
    let problem = "signed by key planted, which is not pinned".to_owned();
    assert_eq!(log.verify("t1").await.expect("verify"), Finding::Tampered { index: 0, problem });
    // Pins that name none of the stored keys refuse the start.
    let elsewhere = Pins::parse([fingerprint(&planted.public_key())]).expect("pins");
    let refused = m.open_log(Some(elsewhere)).await.expect_err("no pinned key to sign with");
    assert!(refused.to_string().contains("--trusted-keys"), "{refused}");
    assert!(m.pins().trusts(&real.public_key), "the pin file names the checked key");
}

/// The head-signing key rotates: later heads are signed by the new key,
/// earlier ones still verify with the old one, the rotation is in the
/// platform's log, and only the operator or a platform admin may rotate.
async fn the_signing_key_rotates_and_old_heads_stay_verifiable(postgres: bool) {
    let m = start(postgres).await;
    let mut writer = m.audit("lead-vault");
    let append = |ids: std::ops::Range<u32>| pb::AppendRequest {
        events: ids.map(|i| to_pb(&ev("t1", &format!("e{i}"), &[]))).collect(),
    };
    writer.append(append(0..3)).await.expect("append");
    let before = m.pins();
    let rotate = |reason: &str| pb::RotateSigningKeyRequest { reason: reason.into() };
    let denied = m.audit("gateway").rotate_signing_key(rotate("routine")).await.expect_err("not a key admin");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut op = m.audit("operator");
    assert_eq!(field_violations(&op.rotate_signing_key(rotate(" ")).await.expect_err("no reason"))[0].field, "reason");
    let r = op.rotate_signing_key(rotate("routine")).await.expect("rotate").into_inner();
    assert!(r.active, "no pins configured: the new key signs at once");
    assert!(Pins::parse([r.fingerprint.as_str()]).is_ok(), "{}", r.fingerprint);
    assert_ne!(r.key_id, r.previous_key_id);
    writer.append(append(3..5)).await.expect("append after the rotation");

    let log = m.open_log(None).await.expect("log");
    let records = log.records("t1").await.expect("records");
    let kids: Vec<&str> = records.iter().map(|r| r.head_kid.as_str()).collect();
    assert_eq!(kids, [&r.previous_key_id; 3].into_iter().chain([&r.key_id; 2]).map(String::as_str).collect::<Vec<_>>());
    assert_eq!(log.verify("t1").await.expect("verify"), Finding::Intact { size: 5 });
    // Offline: the old pins alone stop at the first head of the new key;
    // with the new fingerprint pinned too, the whole log verifies.
    let old_only = guardline_audit::domain::verify::verify_log(
        "t1",
        Default::default(),
        &records,
        &before.filter(&log.public_keys()),
    );
    let problem = format!("signed by key {}, which is not pinned", r.key_id);
    assert_eq!(old_only, Finding::Tampered { index: 3, problem });
    let both = Pins::parse(before.to_text().lines().chain([r.fingerprint.as_str()])).expect("pins");
    let all = guardline_audit::domain::verify::verify_log(
        "t1",
        Default::default(),
        &records,
        &both.filter(&log.public_keys()),
    );
    assert_eq!(all, Finding::Intact { size: 5 });
    // The rotation is an event of the platform's log.
    let platform = log.records("_platform").await.expect("platform log");
    let rotation =
        platform.iter().filter_map(|r| Event::decode(&r.entry)).find(|e| e.action == "audit.signing_key.rotate");
    let rotation = rotation.expect("the rotation is logged");
    assert_eq!((rotation.resource_id.as_str(), rotation.details["active"].as_str()), (r.key_id.as_str(), "true"));
    assert!(rotation.actor_service.ends_with("/sa/operator"), "{}", rotation.actor_service);

    // A service pinned to its current keys does not sign with a key nobody
    // pinned yet: the next one waits.
    let pinned = m.open_log(Some(both)).await.expect("pinned log");
    let waiting =
        pinned.rotate_signing_key("spiffe://guardline.local/ns/guardline/sa/operator", "next").await.expect("rotate");
    assert!(!waiting.active, "an unpinned key waits");
    assert_eq!(waiting.previous, r.key_id);
}

/// Tree heads published outside the database, as C2SP checkpoints written
/// once: a standard signed note under the pinned key, never overwritten,
/// and refused once the log no longer extends them (cut, or rewritten).
async fn checkpoints_are_published_once_and_hold_the_log_to_them(postgres: bool) {
    use guardline_audit::domain::checkpoint;
    use guardline_audit::service::checkpoints::{Publisher, store_of};
    use guardline_audit::store::event;
    let m = start(postgres).await;
    let mut c = m.audit("lead-vault");
    c.append(pb::AppendRequest { events: (0..6).map(|i| to_pb(&ev("t1", &format!("c{i}"), &[]))).collect() })
        .await
        .expect("append");
    let dir = tempfile::tempdir().expect("tmp");
    let url = dir.path().display().to_string();
    let publisher = |log: guardline_audit::service::Log| {
        let (objects, prefix) = store_of(&url).expect("store");
        Publisher::new(Arc::new(log), objects, prefix, "guardline.local")
    };
    let p = publisher(m.open_log(None).await.expect("log"));
    let head = p.publish("t1").await.expect("publish").expect("a head");
    assert_eq!(head.size, 6);
    let file = dir.path().join("t1").join(format!("{:020}", 6));
    let note = std::fs::read_to_string(&file).expect("written");
    let pinned = m.pins();
    let log = m.open_log(None).await.expect("log");
    let keys: Vec<Vec<u8>> = log.public_keys().into_values().filter(|k| pinned.trusts(k)).collect();
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    assert_eq!(checkpoint::open(&note, "guardline.local/audit/t1", &keys), Ok(head), "{note}");
    assert_eq!(p.publish("t1").await.expect("again"), Some(head), "the same head publishes to the same object");

    // The newest entries cut in the database (and audit restarted): the
    // published head stays, and the next publication is refused.
    let args = DatabaseArgs { database_url: m.audit_db.clone(), database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::connect(&args).await.expect("db");
    event::Entity::delete_many()
        .filter(event::Column::TenantId.eq("t1"))
        .filter(event::Column::Idx.gte(4))
        .exec(&db)
        .await
        .expect("cut");
    // The sequencer still says 6: the missing leaves are named.
    let after = publisher(m.open_log(None).await.expect("log"));
    let missing = after.publish("t1").await.expect_err("entries missing");
    assert!(missing.to_string().contains("leaf hashes from 0 to 6 are missing"), "{missing}");
    // An insider who also winds the sequencer back meets the checkpoint.
    use guardline_audit::store::tree::sequencer;
    sequencer::Entity::update_many()
        .col_expr(sequencer::Column::Size, sea_orm::sea_query::Expr::value(4i64))
        .filter(sequencer::Column::TenantId.eq("t1"))
        .exec(&db)
        .await
        .expect("wind back");
    let after = publisher(m.open_log(None).await.expect("log"));
    let refused = after.publish("t1").await.expect_err("a cut log");
    assert!(refused.to_string().contains("does not extend the checkpoint published at size 6"), "{refused}");
    assert_eq!(std::fs::read_to_string(&file).expect("still there"), note, "never overwritten");
    assert_eq!(after.newest("t1").await.expect("newest"), Some(head));
}

/// Audit takes a writer's identity from its certificate: a writer naming
/// another service is refused whole, a non-writer is refused, and an event
/// that leaves the service empty is stored under the writer's SPIFFE id.
async fn appends_are_attributed_to_the_writers_certificate(postgres: bool) {
    let m = start(postgres).await;
    let lead_vault = "spiffe://guardline.local/ns/guardline/sa/lead-vault";
    let mut c = m.audit("lead-vault");
    let mut forged = ev("t1", "f1", &[]);
    forged.actor_service = "spiffe://guardline.local/ns/guardline/sa/identity".into();
    let batch = vec![to_pb(&ev("t1", "f0", &[])), to_pb(&forged)];
    let err = c.append(pb::AppendRequest { events: batch }).await.expect_err("another service's name");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("events[1].actor.service_identity"), "{}", err.message());
    forged.actor_service = "identity".into();
    let err = c.append(pb::AppendRequest { events: vec![to_pb(&forged)] }).await.expect_err("a short name too");
    assert_eq!(err.code(), Code::PermissionDenied);
    // Refused before validation: a forged batch learns nothing of the rules.
    let mut invalid = forged.clone();
    invalid.action = String::new();
    let err = c.append(pb::AppendRequest { events: vec![to_pb(&invalid)] }).await.expect_err("forged and invalid");
    assert_eq!(err.code(), Code::PermissionDenied);

    let err = m
        .audit("guardline-cli")
        .append(pb::AppendRequest { events: vec![to_pb(&ev("t1", "n1", &[]))] })
        .await
        .expect_err("not a writer");
    assert_eq!(err.code(), Code::PermissionDenied);

    let mut unnamed = ev("t1", "u1", &[]);
    unnamed.actor_service = String::new();
    let mut by_account = ev("t1", "u2", &[]);
    by_account.actor_service = "lead-vault".into();
    let ok = c
        .append(pb::AppendRequest { events: vec![to_pb(&unnamed), to_pb(&by_account)] })
        .await
        .expect("own identity")
        .into_inner();
    assert_eq!(ok.stored_ids, vec!["u1", "u2"], "nothing of the refused batches was stored before");
    let sth = c
        .get_signed_tree_head(pb::GetSignedTreeHeadRequest { tenant_id: "t1".into() })
        .await
        .expect("sth")
        .into_inner();
    // Both leaves are the events as attributed: the writer's full SPIFFE id.
    for (i, mut e) in [unnamed, by_account].into_iter().enumerate() {
        e.actor_service = lead_vault.into();
        let p = c
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                tenant_id: "t1".into(),
                event_id: e.id.clone(),
                tree_size: sth.tree_size,
            })
            .await
            .expect("proof")
            .into_inner();
        assert_eq!(p.leaf_index, i as u64);
        let proof = InclusionProof::<Sha256>::from_digests(digests(&p.path).iter());
        root(&sth).verify_inclusion(&Leaf(e.encode()), p.leaf_index, &proof).expect("stored as the writer");
    }
}

guardline_testkit::on_both_stores!(
    ingest_is_idempotent_atomic_and_provable,
    appends_are_attributed_to_the_writers_certificate,
    queries_need_audit_read_and_are_audited,
    tampering_is_named_by_index,
    a_planted_key_and_a_resigned_log_are_caught,
    the_signing_key_rotates_and_old_heads_stay_verifiable,
    checkpoints_are_published_once_and_hold_the_log_to_them,
    alerts_reach_watchers_and_signed_webhooks,
    webhook_failures_stay_with_their_webhook,
    retention_prunes_old_entries_and_the_rest_stays_provable,
);
