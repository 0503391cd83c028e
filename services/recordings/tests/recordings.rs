//! Recordings over real mTLS with the real identity service; every scenario
//! on SQLite and PostgreSQL, with the filesystem object store.

use std::path::PathBuf;
use std::time::Duration;

use guardline_proto::identity::v1 as idpb;
use guardline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use guardline_proto::recordings::v1 as pb;
use guardline_proto::recordings::v1::recordings_service_client::RecordingsServiceClient;
use guardline_runtime::GrpcChannel;
use guardline_runtime::args::DatabaseArgs;
use guardline_runtime::clock::ManualClock;
use guardline_runtime::error::field_violations;
use guardline_testmesh::{Keys, TestMesh};
use tonic::{Code, Request};

struct Mesh {
    t: TestMesh,
    /// Recordings' own clock (the other services keep the system's): a
    /// purge deletes as of the service's clock, so the tests move it.
    clock: ManualClock,
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    s3: bool,
    rec_uri: String,
    id_uri: String,
    rec_db: String,
    keys: guardline_keys::args::KeysArgs,
}

#[derive(Clone, Copy)]
enum Backend {
    Fs,
    S3,
}

async fn start_on(postgres: bool, backend: Backend) -> Mesh {
    let mut t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    let objects = match backend {
        Backend::Fs => guardline_recordings::args::ObjectStoreArgs {
            recordings_dir: Some(t.dir().join("objects")),
            ..Default::default()
        },
        Backend::S3 => {
            let s3 = guardline_testkit::S3::shared().await.expect("s3");
            guardline_recordings::args::ObjectStoreArgs {
                s3_bucket: Some(s3.bucket().expect("bucket")),
                s3_endpoint: Some(s3.endpoint.clone()),
                s3_access_key_id: Some("test".into()),
                s3_secret_access_key: Some("test".into()),
                s3_allow_http: true,
                ..Default::default()
            }
        }
    };
    let store = objects.build().expect("store");
    let clock = ManualClock::default();
    let base = t.recordings_args();
    let recordings = guardline_recordings::Args {
        objects,
        upload_idle_timeout: Duration::from_secs(1),
        common: base.common.clone().with_clock(clock.clock()),
        ..base
    };
    t.start_identity(t.identity_args()).await;
    t.start_recordings(recordings).await;
    t.wait_serving("gateway").await;
    Mesh {
        clock,
        store,
        s3: matches!(backend, Backend::S3),
        rec_uri: t.endpoint("recordings"),
        id_uri: t.endpoint("identity"),
        rec_db: t.database("recordings").to_owned(),
        keys: t.keys().clone(),
        t,
    }
}

impl Mesh {
    fn channel(&self, uri: &str, name: &str) -> GrpcChannel {
        self.t.connect(uri, name)
    }
    /// Recordings' database, as an insider (or a test) reaches it.
    async fn db(&self) -> sea_orm::DatabaseConnection {
        let args =
            DatabaseArgs { database_url: self.rec_db.clone(), database_max_connections: 1, database_schema: None };
        guardline_runtime::storage::connect(&args).await.expect("db")
    }
    fn rec(&self, name: &str) -> RecordingsServiceClient<GrpcChannel> {
        RecordingsServiceClient::new(self.channel(&self.rec_uri, name))
    }
    fn identity(&self, name: &str) -> IdentityServiceClient<GrpcChannel> {
        IdentityServiceClient::new(self.channel(&self.id_uri, name))
    }
    fn objects(&self) -> PathBuf {
        self.t.dir().join("objects")
    }
    fn path(tenant: &str, id: &str) -> object_store::path::Path {
        object_store::path::Path::from(format!("recordings/{tenant}/{id}"))
    }
    async fn object(&self, tenant: &str, id: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt;
        match self.store.get(&Self::path(tenant, id)).await {
            Ok(r) => Some(r.bytes().await.expect("bytes").to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }
    async fn put_object(&self, tenant: &str, id: &str, bytes: Vec<u8>) {
        use object_store::ObjectStoreExt;
        self.store.put(&Self::path(tenant, id), bytes.into()).await.expect("put");
    }
    /// Every object, and on the filesystem every staging file too.
    async fn leftovers(&self) -> Vec<String> {
        use futures::StreamExt;
        let mut out: Vec<String> = self.store.list(None).map(|m| m.expect("list").location.to_string()).collect().await;
        if !self.s3 {
            out.extend(walk(&self.objects()).into_iter().map(|p| p.display().to_string()));
        }
        out
    }
}

/// A tenant with users (login, role, team index); returns tenant, team ids, user ids and tokens.
struct Tenant {
    id: String,
    teams: Vec<String>,
    users: Vec<String>,
    tokens: Vec<String>,
}

async fn tenant(m: &Mesh, users: &[(&str, &str, usize)]) -> Tenant {
    let mut p = m.identity("platform-admin");
    let id = p
        .create_tenant(idpb::CreateTenantRequest { name: "R".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let mut teams = Vec::new();
    for name in ["A", "B"] {
        teams.push(
            p.create_team(idpb::CreateTeamRequest { tenant_id: id.clone(), name: name.into() })
                .await
                .expect("team")
                .into_inner()
                .id,
        );
    }
    let pw = "a long enough passphrase".to_owned();
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    for (login, role, team) in users {
        let u = p
            .create_user(idpb::CreateUserRequest {
                tenant_id: id.clone(),
                login: (*login).into(),
                display_name: (*login).into(),
                password: pw.clone(),
                roles: vec![(*role).into()],
                team_ids: vec![teams[*team].clone()],
            })
            .await
            .expect("user")
            .into_inner();
        ids.push(u.id);
    }
    // A team lead leads the team it is in.
    for (i, (_, role, team)) in users.iter().enumerate() {
        if *role == "team_lead" {
            let members: Vec<String> = users
                .iter()
                .enumerate()
                .filter(|(_, u)| u.2 == *team && u.1 != "team_lead")
                .map(|(j, _)| ids[j].clone())
                .collect();
            p.set_team_members(idpb::SetTeamMembersRequest {
                tenant_id: id.clone(),
                team_id: teams[*team].clone(),
                member_ids: members,
                lead_ids: vec![ids[i].clone()],
            })
            .await
            .expect("lead");
        }
    }
    for (login, ..) in users {
        tokens.push(
            p.login(idpb::LoginRequest {
                tenant_id: id.clone(),
                login: (*login).into(),
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
    Tenant { id, teams, users: ids, tokens }
}

fn with<T>(token: &str, mut r: Request<T>) -> Request<T> {
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

fn audio(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

fn header(t: &Tenant, lead: &str, agent: usize, team: usize, consent: bool) -> pb::RecordingHeader {
    pb::RecordingHeader {
        tenant_id: t.id.clone(),
        call_id: format!("call-{lead}"),
        lead_id: lead.into(),
        agent_id: t.users[agent].clone(),
        team_id: t.teams[team].clone(),
        caller_line: "+12025550100".into(),
        started_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        duration_seconds: 120,
        format: "audio/wav".into(),
        consent_offset_ms: consent.then_some(5_000),
        consent_length_ms: consent.then_some(8_000),
        retention_class: String::new(),
    }
}

async fn upload(m: &Mesh, as_name: &str, h: pb::RecordingHeader, data: &[u8]) -> Result<pb::Recording, tonic::Status> {
    let mut msgs = vec![pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::Header(h)) }];
    for c in data.chunks(40_000) {
        msgs.push(pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::Chunk(c.to_vec())) });
    }
    let end = pb::UploadEnd { size_bytes: data.len() as u64, sha256: vec![] };
    msgs.push(pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::End(end)) });
    m.rec(as_name).upload_recording(tokio_stream::iter(msgs)).await.map(tonic::Response::into_inner)
}

async fn download(
    m: &Mesh,
    token: &str,
    tenant: &str,
    id: &str,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, tonic::Status> {
    let req = pb::DownloadRecordingRequest { tenant_id: tenant.into(), recording_id: id.into(), offset, length };
    let mut s = m.rec("gateway").download_recording(with(token, Request::new(req))).await?.into_inner();
    let mut out = Vec::new();
    while let Some(c) = s.message().await? {
        out.extend(c.chunk);
    }
    Ok(out)
}

/// Users: agent1 (team A), agent2 (team B), lead1 (leads A), auditor, compliance.
async fn standard(m: &Mesh) -> Tenant {
    tenant(
        m,
        &[
            ("agent1", "agent", 0),
            ("agent2", "agent", 1),
            ("lead1", "team_lead", 0),
            ("auditor1", "auditor", 0),
            ("comp1", "compliance_officer", 0),
        ],
    )
    .await
}

async fn upload_read_and_scope(postgres: bool, backend: Backend) {
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let data = audio(200_000);
    let rec = upload(&m, "telephony-bridge", header(&t, "lead-1", 0, 0, true), &data).await.expect("upload");
    assert_eq!(rec.size_bytes, 200_000);
    assert_eq!(rec.sha256, aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data).as_ref());

    // The owner reads it whole and in ranges; the object on disk is ciphertext.
    assert_eq!(download(&m, &t.tokens[0], &t.id, &rec.id, 0, 0).await.expect("whole"), data);
    assert_eq!(
        download(&m, &t.tokens[0], &t.id, &rec.id, 70_000, 100_000).await.expect("range"),
        &data[70_000..170_000]
    );
    assert_eq!(download(&m, &t.tokens[0], &t.id, &rec.id, 199_990, 100).await.expect("tail"), &data[199_990..]);
    let object = m.object(&t.id, &rec.id).await.expect("object");
    assert!(!object.windows(64).any(|w| w == &data[1000..1064]), "no clear audio at rest");

    // Scope: another team's agent does not see it; the team lead does; no permission, no access.
    assert_eq!(download(&m, &t.tokens[1], &t.id, &rec.id, 0, 0).await.expect_err("other team").code(), Code::NotFound);
    assert_eq!(download(&m, &t.tokens[2], &t.id, &rec.id, 0, 10).await.expect("team lead").len(), 10);
    assert_eq!(
        download(&m, &t.tokens[3], &t.id, &rec.id, 0, 10).await.expect_err("auditor").code(),
        Code::PermissionDenied
    );
    let other = tenant(&m, &[("agent9", "agent", 0)]).await;
    assert_eq!(
        download(&m, &other.tokens[0], &t.id, &rec.id, 0, 0).await.expect_err("other tenant").code(),
        Code::PermissionDenied
    );
    let list = |tok: &str| {
        with(tok, Request::new(pb::ListRecordingsRequest { tenant_id: t.id.clone(), ..Default::default() }))
    };
    assert_eq!(
        m.rec("gateway").list_recordings(list(&t.tokens[0])).await.expect("list").into_inner().recordings.len(),
        1
    );
    assert_eq!(
        m.rec("gateway").list_recordings(list(&t.tokens[1])).await.expect("list").into_inner().recordings.len(),
        0
    );
    let verify = pb::VerifyRecordingRequest { tenant_id: t.id.clone(), recording_id: rec.id.clone() };
    assert!(
        m.rec("gateway")
            .verify_recording(with(&t.tokens[0], Request::new(verify)))
            .await
            .expect("verify")
            .into_inner()
            .ok
    );

    // An end that does not match what arrived stores nothing.
    let bad_end = vec![
        pb::UploadRecordingRequest {
            item: Some(pb::upload_recording_request::Item::Header(header(&t, "lead-3", 0, 0, false))),
        },
        pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::Chunk(data[..1000].to_vec())) },
        pb::UploadRecordingRequest {
            item: Some(pb::upload_recording_request::Item::End(pb::UploadEnd { size_bytes: 999, sha256: vec![] })),
        },
    ];
    let err = m.rec("telephony-bridge").upload_recording(tokio_stream::iter(bad_end)).await.expect_err("size mismatch");
    assert_eq!(field_violations(&err)[0].field, "end.size_bytes");
    let listed = m.rec("gateway").list_recordings(list(&t.tokens[0])).await.expect("list").into_inner().recordings;
    assert_eq!(listed.len(), 1, "the refused upload is not visible");

    // Only the telephony bridge uploads; bad headers name the field.
    assert_eq!(
        upload(&m, "cli", header(&t, "lead-2", 0, 0, false), &data).await.expect_err("cli").code(),
        Code::PermissionDenied
    );
    let mut h = header(&t, "lead-2", 0, 0, false);
    h.started_at = None;
    assert_eq!(
        field_violations(&upload(&m, "telephony-bridge", h, &data).await.expect_err("no start"))[0].field,
        "header.started_at"
    );
    let mut h = header(&t, "lead-2", 0, 0, true);
    h.consent_offset_ms = Some(119_000);
    assert_eq!(
        field_violations(&upload(&m, "telephony-bridge", h, &data).await.expect_err("consent"))[0].field,
        "header.consent_offset_ms"
    );
}

async fn tampering_fails_with_data_loss(postgres: bool, backend: Backend) {
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let data = audio(3 * 65_536 + 100);
    let a = upload(&m, "telephony-bridge", header(&t, "lead-a", 0, 0, false), &data).await.expect("upload");
    let b = upload(&m, "telephony-bridge", header(&t, "lead-b", 0, 0, false), &data).await.expect("upload");
    let original = m.object(&t.id, &a.id).await.expect("object");
    let check = async |what: &str| {
        let err = download(&m, &t.tokens[0], &t.id, &a.id, 0, 0).await.expect_err(what);
        let why = guardline_runtime::error::reason(&err);
        assert_eq!((err.code(), why.as_str()), (Code::DataLoss, "RECORDING_TAMPERED"), "{what}: {err:?}");
        let verify = pb::VerifyRecordingRequest { tenant_id: t.id.clone(), recording_id: a.id.clone() };
        assert!(
            !m.rec("gateway")
                .verify_recording(with(&t.tokens[0], Request::new(verify)))
                .await
                .expect("verify")
                .into_inner()
                .ok,
            "{what}"
        );
    };
    let mut flipped = original.clone();
    flipped[70_000] ^= 1;
    m.put_object(&t.id, &a.id, flipped).await;
    check("a flipped byte").await;
    let sealed = 65_536 + 16;
    let dropped = [&original[..sealed], &original[2 * sealed..]].concat();
    m.put_object(&t.id, &a.id, dropped).await;
    check("a dropped chunk").await;
    m.put_object(&t.id, &a.id, original[..2 * sealed].to_vec()).await;
    check("a truncated object").await;
    let other = m.object(&t.id, &b.id).await.expect("object");
    m.put_object(&t.id, &a.id, other).await;
    check("another recording's object").await;
    m.put_object(&t.id, &a.id, original.clone()).await;
    assert_eq!(download(&m, &t.tokens[0], &t.id, &a.id, 0, 0).await.expect("restored"), data);

    // Each failed read was audited (in the outbox, audit being unreachable here).
    let db = m.db().await;
    use sea_orm::{ConnectionTrait, Statement};
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT payload FROM guardline_audit_outbox"))
        .await
        .expect("outbox");
    let tamper = rows
        .iter()
        .filter(|r| {
            r.try_get::<Vec<u8>>("", "payload").is_ok_and(|p| p.windows(25).any(|w| w == b"recording.tamper_detected"))
        })
        .count();
    assert!(tamper >= 4, "{tamper} tamper events");
}

async fn legal_hold_purge_and_erasure(postgres: bool, backend: Backend) {
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let data = audio(1000);
    let held = upload(&m, "telephony-bridge", header(&t, "lead-h", 0, 0, false), &data).await.expect("upload");
    let plain = upload(&m, "telephony-bridge", header(&t, "lead-p", 0, 0, false), &data).await.expect("upload");
    let consent = upload(&m, "telephony-bridge", header(&t, "lead-c", 0, 0, true), &data).await.expect("upload");
    upload(&m, "telephony-bridge", header(&t, "lead-q", 0, 0, false), &data).await.expect("upload");
    let comp = &t.tokens[4];
    let hold = |reason: &str| {
        with(
            comp,
            Request::new(pb::SetLegalHoldRequest {
                tenant_id: t.id.clone(),
                recording_id: held.id.clone(),
                reason: reason.into(),
            }),
        )
    };
    assert_eq!(
        field_violations(&m.rec("gateway").set_legal_hold(hold("")).await.expect_err("no reason"))[0].field,
        "reason"
    );
    let agent_hold = with(
        &t.tokens[0],
        Request::new(pb::SetLegalHoldRequest {
            tenant_id: t.id.clone(),
            recording_id: held.id.clone(),
            reason: "x".into(),
        }),
    );
    assert_eq!(m.rec("gateway").set_legal_hold(agent_hold).await.expect_err("agent").code(), Code::PermissionDenied);
    assert!(m.rec("gateway").set_legal_hold(hold("case 2026-114")).await.expect("hold").into_inner().legal_hold);

    // Purge boundaries: one second before retain_until nothing goes; at it, it goes.
    let until = plain.retain_until.expect("retention");
    let instant = |secs: i64| chrono::DateTime::from_timestamp(secs, until.nanos as u32).expect("instant");
    let at = |secs: i64| pb::PurgeExpiredRequest {
        tenant_id: t.id.clone(),
        as_of: Some(prost_types::Timestamp { seconds: secs, nanos: until.nanos }),
        ..Default::default()
    };
    let now = || pb::PurgeExpiredRequest { tenant_id: t.id.clone(), ..Default::default() };
    let mut op = m.rec("operator");
    // The caller's clock never deletes early: a later instant is a forecast only.
    let early = op.purge_expired(at(until.seconds + 1)).await.expect_err("after the service's clock");
    assert_eq!(field_violations(&early)[0].field, "as_of");
    let forecast = op.purge_expired(pb::PurgeExpiredRequest { dry_run: true, ..at(until.seconds + 1) }).await;
    assert_eq!(forecast.expect("a dry run may look ahead").into_inner().purged, 2);
    m.clock.set(instant(until.seconds - 1));
    let before = op.purge_expired(now()).await.expect("purge").into_inner();
    assert_eq!((before.purged, before.held), (0, 0));
    m.clock.set(instant(until.seconds + 1));
    // An earlier instant than the service's deletes less, and is allowed.
    let earlier = op.purge_expired(at(until.seconds - 1)).await.expect("an earlier instant").into_inner();
    assert_eq!((earlier.purged, earlier.held), (0, 0));
    // A dry run counts and deletes nothing; a limit leaves the rest for later.
    let dry = op.purge_expired(pb::PurgeExpiredRequest { dry_run: true, ..now() }).await;
    let dry = dry.expect("dry run").into_inner();
    assert_eq!((dry.purged, dry.held, dry.kept_for_consent, dry.more), (2, 1, 1, false));
    assert!(m.object(&t.id, &plain.id).await.is_some(), "a dry run deletes nothing");
    let capped = op.purge_expired(pb::PurgeExpiredRequest { limit: 1, ..now() }).await;
    let capped = capped.expect("capped").into_inner();
    assert_eq!((capped.purged, capped.more), (1, true), "one deleted, one left by the limit");
    let due = op.purge_expired(now()).await.expect("purge").into_inner();
    assert_eq!(
        (due.purged, due.held, due.kept_for_consent, due.more),
        (1, 1, 1, false),
        "the rest purged, held kept, consent kept"
    );
    // Back to the present, where the users' tokens are valid.
    m.clock.set(chrono::Utc::now());
    assert_eq!(download(&m, &t.tokens[0], &t.id, &plain.id, 0, 0).await.expect_err("purged").code(), Code::NotFound);
    assert!(m.object(&t.id, &plain.id).await.is_none(), "object deleted");
    assert_eq!(
        m.rec("gateway").purge_expired(now()).await.expect_err("not the operator").code(),
        Code::Unauthenticated
    );

    // Erasure reports held recordings and erases the rest.
    let erase = |lead: &str| pb::EraseLeadRecordingsRequest { tenant_id: t.id.clone(), lead_id: lead.into() };
    assert_eq!(
        m.rec("cli").erase_lead_recordings(erase("lead-c")).await.expect_err("cli").code(),
        Code::PermissionDenied
    );
    let e = m.rec("lead-vault").erase_lead_recordings(erase("lead-h")).await.expect("erase").into_inner();
    assert_eq!((e.erased, e.held_recording_ids), (0, vec![held.id.clone()]));
    let e = m.rec("lead-vault").erase_lead_recordings(erase("lead-c")).await.expect("erase").into_inner();
    assert_eq!(e.erased, 1);
    assert_eq!(download(&m, &t.tokens[0], &t.id, &consent.id, 0, 0).await.expect_err("erased").code(), Code::NotFound);
}

async fn an_interrupted_upload_leaves_nothing(postgres: bool, backend: Backend) {
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::UploadRecordingRequest {
        item: Some(pb::upload_recording_request::Item::Header(header(&t, "lead-x", 0, 0, false))),
    })
    .await
    .expect("send");
    for _ in 0..3 {
        tx.send(pb::UploadRecordingRequest { item: Some(pb::upload_recording_request::Item::Chunk(audio(100_000))) })
            .await
            .expect("send");
    }
    let mut client = m.rec("telephony-bridge");
    let task =
        tokio::spawn(async move { client.upload_recording(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The client goes away mid-upload (its connection closes); the sender is
    // kept, so the stream never ends cleanly.
    task.abort();
    let db = m.db().await;
    use sea_orm::{ConnectionTrait, Statement};
    let mut left = usize::MAX;
    for _ in 0..100 {
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT state FROM recordings"))
            .await
            .expect("q");
        left = rows.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "no recording row survives a client disconnect");
    let files = m.leftovers().await;
    assert!(files.is_empty(), "no object or staging file left: {files:?}");
    drop(tx);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

async fn retention_classes_per_tenant(postgres: bool, backend: Backend) {
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let class = |name: &str, min: u32, after: u32| pb::SetRetentionClassRequest {
        class: Some(pb::RetentionClass {
            tenant_id: t.id.clone(),
            name: name.into(),
            min_days: min,
            delete_after_days: after,
        }),
    };
    let mut c = m.rec("gateway");
    assert_eq!(
        c.set_retention_class(with(&t.tokens[0], Request::new(class("short", 180, 200))))
            .await
            .expect_err("agent")
            .code(),
        Code::PermissionDenied
    );
    let bad = c
        .set_retention_class(with(&t.tokens[4], Request::new(class("short", 180, 100))))
        .await
        .expect_err("shorter than min");
    assert_eq!(field_violations(&bad)[0].field, "class.delete_after_days");
    let bad =
        c.set_retention_class(with(&t.tokens[4], Request::new(class("Bad Name", 180, 200)))).await.expect_err("name");
    assert_eq!(field_violations(&bad)[0].field, "class.name");
    c.set_retention_class(with(&t.tokens[4], Request::new(class("short", 180, 200)))).await.expect("set");
    // The operator writes a RetentionPolicy's period without a user token;
    // another service without one is refused.
    m.rec("operator").set_retention_class(class("short", 180, 200)).await.expect("the operator");
    assert_eq!(
        m.rec("gateway").set_retention_class(class("short", 180, 200)).await.expect_err("no token").code(),
        Code::Unauthenticated
    );
    let mut no_tenant = class("short", 180, 200);
    no_tenant.class.as_mut().expect("class").tenant_id.clear();
    let bad = m.rec("operator").set_retention_class(no_tenant).await.expect_err("no tenant");
    assert_eq!(field_violations(&bad)[0].field, "class.tenant_id");

    let mut h = header(&t, "lead-s", 0, 0, false);
    h.retention_class = "short".into();
    let rec = upload(&m, "telephony-bridge", h, &audio(100)).await.expect("upload");
    let days = (rec.retain_until.expect("until").seconds - rec.stored_at.expect("stored").seconds) / 86_400;
    assert_eq!(days, 200, "deleted after the class's 200 days");
    let mut h = header(&t, "lead-u", 0, 0, false);
    h.retention_class = "forever".into();
    let err = upload(&m, "telephony-bridge", h, &audio(100)).await.expect_err("unknown class");
    assert_eq!(field_violations(&err)[0].field, "header.retention_class");
    let default = upload(&m, "telephony-bridge", header(&t, "lead-d", 0, 0, false), &audio(100)).await.expect("upload");
    let days = (default.retain_until.expect("until").seconds - default.stored_at.expect("stored").seconds) / 86_400;
    assert_eq!(days, 3 * 365, "the built-in default class");
}

async fn tenant_key_rotation_rewraps_the_recording_data_keys(postgres: bool, backend: Backend) {
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let data = audio(1000);
    let rec = upload(&m, "telephony-bridge", header(&t, "lead-r", 0, 0, false), &data).await.expect("upload");
    let rewrap = |tenant: &str| pb::RewrapTenantKeysRequest { tenant_id: tenant.into() };
    let agent = m.rec("gateway").rewrap_tenant_keys(with(&t.tokens[0], Request::new(rewrap(&t.id)))).await;
    assert_eq!(agent.expect_err("an agent").code(), Code::PermissionDenied);
    let empty = m.rec("operator").rewrap_tenant_keys(rewrap("")).await.expect_err("no tenant");
    assert_eq!(field_violations(&empty)[0].field, "tenant_id");

    // The tenant key is rotated, the stored data keys rewrapped, the old version disabled.
    let keyring = m.keys.provider(false).await.expect("key provider");
    let v2 = keyring.rotate(&t.id).await.expect("rotate");
    let r = m.rec("operator").rewrap_tenant_keys(rewrap(&t.id)).await.expect("operator").into_inner();
    assert_eq!(r.rewrapped, 1);
    keyring.set_min_decryption_version(&t.id, v2).await.expect("min version");
    use guardline_keys::store::entity as dk;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let db = sea_orm::Database::connect(&m.rec_db).await.expect("db");
    let stored = dk::Entity::find().filter(dk::Column::TenantId.eq(&t.id)).all(&db).await.expect("keys");
    assert_eq!(stored.len(), 1);
    for k in &stored {
        keyring.unwrap(&t.id, &guardline_keys::provider::WrappedKey(k.wrapped.clone())).await.expect("new version");
    }
    assert_eq!(download(&m, &t.tokens[0], &t.id, &rec.id, 0, 0).await.expect("still plays"), data);
}

/// A database insider edits the columns that decide who plays a recording
/// and whether it may be deleted: every read, listing, verification and
/// erasure sees the MAC fail, and an erased recording keeps no hash of its
/// audio.
async fn edited_metadata_is_caught(postgres: bool, backend: Backend) {
    use guardline_recordings::store::recording;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
    let m = start_on(postgres, backend).await;
    let t = standard(&m).await;
    let data = audio(70_000);
    let a = upload(&m, "telephony-bridge", header(&t, "lead-a", 0, 0, false), &data).await.expect("upload");
    let b = upload(&m, "telephony-bridge", header(&t, "lead-b", 0, 0, false), &data).await.expect("upload");
    let c = upload(&m, "telephony-bridge", header(&t, "lead-c", 0, 0, false), &data).await.expect("upload");
    let db = m.db().await;
    let edit = |id: &str| recording::ActiveModel { id: Set(id.to_owned()), ..Default::default() };

    // Team B's column on A's recording, to hand it to agent2.
    let mut moved = edit(&a.id);
    moved.team_id = Set(t.teams[1].clone());
    moved.agent_id = Set(t.users[1].clone());
    moved.update(&db).await.expect("tamper");
    let err = download(&m, &t.tokens[1], &t.id, &a.id, 0, 0).await.map(|d| d.len()).expect_err("handed over");
    assert_eq!(guardline_runtime::error::reason(&err), "RECORDING_TAMPERED", "{err:?}");
    let list = |tok: &str| {
        with(tok, Request::new(pb::ListRecordingsRequest { tenant_id: t.id.clone(), ..Default::default() }))
    };
    let listed = m.rec("gateway").list_recordings(list(&t.tokens[1])).await.expect("list").into_inner().recordings;
    assert!(listed.iter().all(|r| r.id != a.id), "not listed on its edited scope");
    let verify = pb::VerifyRecordingRequest { tenant_id: t.id.clone(), recording_id: a.id.clone() };
    let report = m.rec("gateway").verify_recording(with(&t.tokens[4], Request::new(verify))).await.expect("verify");
    assert_eq!(report.into_inner().problem, "metadata differs from what was stored");

    // A hold placed through the API, cleared in the database: erasure does
    // not take the edited value, it reports the recording held.
    let hold = pb::SetLegalHoldRequest { tenant_id: t.id.clone(), recording_id: b.id.clone(), reason: "case 7".into() };
    m.rec("gateway").set_legal_hold(with(&t.tokens[4], Request::new(hold))).await.expect("hold");
    let mut cleared = edit(&b.id);
    cleared.legal_hold = Set(false);
    cleared.update(&db).await.expect("tamper");
    let erase = |lead: &str| pb::EraseLeadRecordingsRequest { tenant_id: t.id.clone(), lead_id: lead.into() };
    let e = m.rec("lead-vault").erase_lead_recordings(erase("lead-b")).await.expect("erase").into_inner();
    assert_eq!((e.erased, e.held_recording_ids), (0, vec![b.id.clone()]));
    assert!(m.object(&t.id, &b.id).await.is_some(), "the audio is still there");

    // An untouched recording is erased, and its tombstone keeps no hash.
    let e = m.rec("lead-vault").erase_lead_recordings(erase("lead-c")).await.expect("erase").into_inner();
    assert_eq!(e.erased, 1);
    let tomb = recording::Entity::find_by_id(c.id.clone()).one(&db).await.expect("q").expect("tombstone");
    assert_eq!((tomb.sha256, tomb.mac, tomb.key_sealed), (None, None, None));
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite_fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(false, super::Backend::Fs).await; })*
        }
        mod postgres_fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(true, super::Backend::Fs).await; })*
        }
        mod sqlite_s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(false, super::Backend::S3).await; })*
        }
    };
}

on_every_store!(
    upload_read_and_scope,
    tampering_fails_with_data_loss,
    edited_metadata_is_caught,
    legal_hold_purge_and_erasure,
    an_interrupted_upload_leaves_nothing,
    retention_classes_per_tenant,
    tenant_key_rotation_rewraps_the_recording_data_keys,
);
