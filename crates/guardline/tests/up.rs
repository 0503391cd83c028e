//! `guardline up` as a user runs it: the real binary, a real process, real
//! mTLS; once on embedded defaults (SQLite, local keyring) and once on
//! PostgreSQL and OpenBao.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use guardline_proto::audit::v1::AppendRequest;
use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::vault::v1::CheckConsentRequest;
use guardline_proto::vault::v1::lead_vault_service_client::LeadVaultServiceClient;
use guardline_runtime::devca::DevCa;
use guardline_runtime::tls::{TlsFiles, TlsMaterial};
use guardline_testkit::{OpenBao, Postgres, free_port};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICES: [(&str, &str); 5] = [
    ("identity", "guardline.identity.v1.IdentityService"),
    ("lead-vault", "guardline.vault.v1.LeadVaultService"),
    ("dialer-policy", "guardline.dialer.v1.DialerPolicyService"),
    ("recordings", "guardline.recordings.v1.RecordingsService"),
    ("audit", "guardline.audit.v1.AuditService"),
];

/// The running binary; killed if the test fails before stopping it.
struct Mesh {
    child: Option<Child>,
    ports: Vec<u16>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Mesh {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_logging(data_dir, extra, "warn", None)
    }

    /// Starts with logs at `level`, written with everything else the
    /// process prints to `log` when given.
    fn start_logging(data_dir: &Path, extra: &[&str], level: &str, log: Option<std::fs::File>) -> Self {
        let (stdout, stderr) = match log {
            Some(f) => (Stdio::from(f.try_clone().expect("log file")), Stdio::from(f)),
            None => (Stdio::piped(), Stdio::inherit()),
        };
        guardline_runtime::tls::install_crypto_provider();
        let ports: Vec<u16> = (0..5).map(|_| free_port().expect("port")).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardline"));
        cmd.arg("up").arg("--data-dir").arg(data_dir).args(["--log", level]);
        for ((name, _), port) in SERVICES.iter().zip(&ports) {
            cmd.arg(format!("--{name}-port")).arg(port.to_string());
        }
        cmd.args(extra).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = cmd.spawn().expect("guardline up");
        // Dropped on a panic; stopped by a watchdog if the test process dies.
        guardline_testkit::stop_with_this_process(&[child.id()], None).expect("watchdog");
        Self { child: Some(child), ports }
    }

    fn uri(&self, i: usize) -> String {
        format!("https://localhost:{}", self.ports[i])
    }

    /// Sends SIGTERM and waits for a clean exit (without blocking the test's
    /// runtime, whose open connections must see the server's GOAWAY).
    async fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill").success();
        assert!(ok);
        for _ in 0..250 {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "guardline up exits cleanly on SIGTERM: {status}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        panic!("guardline up did not stop within 25 s of SIGTERM");
    }
}

impl Mesh {
    /// SIGKILL: no drain, no flush, no goodbye.
    fn kill_9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    }
}

fn cert(data_dir: &Path, name: &str) -> std::sync::Arc<TlsMaterial> {
    TlsMaterial::load(TlsFiles::in_dir(&data_dir.join("pki"), name)).expect("tls")
}

/// Waits until every service reports SERVING to the CLI identity.
async fn wait_serving(mesh: &Mesh, data_dir: &Path) {
    for _ in 0..300 {
        if data_dir.join("pki/cli.pem").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cli = cert(data_dir, "cli");
    for (i, (name, service)) in SERVICES.iter().enumerate() {
        let mut client = HealthClient::new(guardline_runtime::connect(&mesh.uri(i), cli.clone()).expect("channel"));
        let mut last = None;
        for _ in 0..300 {
            match client.check(HealthCheckRequest { service: (*service).into() }).await {
                Ok(r) if r.get_ref().status() == ServingStatus::Serving => {
                    last = None;
                    break;
                }
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last.is_none(), "{name} never became SERVING: {last:?}");
    }
}

fn event(id: &str) -> guardline_proto::audit::v1::AuditEvent {
    guardline_proto::audit::v1::AuditEvent {
        id: id.into(),
        tenant_id: "t-up".into(),
        time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        action: "lead.update".into(),
        outcome: guardline_proto::common::v1::Outcome::Allowed as i32,
        ..Default::default()
    }
}

/// One reflection v1 question and its answer.
async fn reflect_v1(
    uri: &str,
    tls: std::sync::Arc<TlsMaterial>,
    question: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> Option<tonic_reflection::pb::v1::server_reflection_response::MessageResponse> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    let mut client = ServerReflectionClient::new(guardline_runtime::connect(uri, tls).expect("channel"));
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(question) };
    let mut stream = client.server_reflection_info(tokio_stream::iter([req])).await.expect("reflection").into_inner();
    stream.message().await.expect("message").and_then(|r| r.message_response)
}

async fn reflection_lists(uri: &str, tls: std::sync::Arc<TlsMaterial>) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    match reflect_v1(uri, tls, MessageRequest::ListServices(String::new())).await {
        Some(MessageResponse::ListServicesResponse(l)) => l.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_runs_on_embedded_defaults_and_refuses_strangers() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let cli = cert(dir.path(), "cli");

    // Reflection on every server.
    let listed = reflection_lists(&mesh.uri(4), cli.clone()).await;
    assert!(listed.iter().any(|s| s == "guardline.audit.v1.AuditService"), "{listed:?}");
    assert!(listed.iter().any(|s| s == "grpc.health.v1.Health"), "{listed:?}");

    // A certificate from another CA is refused at the handshake.
    let other = tempfile::tempdir().expect("tmp");
    let stranger =
        DevCa::open_or_create(other.path(), "guardline.local", "guardline").expect("ca").issue("cli").expect("cert");
    let stranger = TlsMaterial::load(TlsFiles { ca: dir.path().join("pki/ca.pem"), ..stranger }).expect("tls");
    let mut health = HealthClient::new(guardline_runtime::connect(&mesh.uri(0), stranger).expect("channel"));
    assert!(health.check(HealthCheckRequest::default()).await.is_err(), "a foreign client certificate is refused");

    // Service allow-lists: only the mesh's services may append to audit.
    let mut as_cli = AuditServiceClient::new(guardline_runtime::connect(&mesh.uri(4), cli.clone()).expect("channel"));
    let denied = as_cli.append(AppendRequest::default()).await.expect_err("cli may not append");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut as_vault = AuditServiceClient::new(
        guardline_runtime::connect(&mesh.uri(4), cert(dir.path(), "lead-vault")).expect("channel"),
    );
    let stored = as_vault.append(AppendRequest { events: vec![event("e-1")] }).await.expect("lead-vault may append");
    assert_eq!(stored.into_inner().stored_ids, vec!["e-1".to_owned()]);
    // Only dialer-policy may ask lead-vault about consent.
    let mut vault = LeadVaultServiceClient::new(guardline_runtime::connect(&mesh.uri(1), cli).expect("channel"));
    let denied = vault.check_consent(CheckConsentRequest::default()).await.expect_err("cli may not");
    assert_eq!(denied.code(), Code::PermissionDenied);

    for f in ["identity.db", "lead-vault.db", "audit.db", "master.key", "keyring.json", "pki/ca.pem"] {
        assert!(dir.path().join(f).exists(), "{f} is in the data directory");
    }
    mesh.stop().await;

    // The master key lost: no new one is made beside the keyring it sealed.
    std::fs::remove_file(dir.path().join("master.key")).expect("lose the master key");
    let out = Command::new(env!("CARGO_BIN_EXE_guardline"))
        .args(["up", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("guardline up");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("keyring.json exists but") && said.contains("Restore it from your backup"), "{said}");
    assert!(!dir.path().join("master.key").exists(), "no new master key was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_runs_on_postgres_and_openbao() {
    let pg = Postgres::shared().await.expect("postgres");
    let url = pg.database().await.expect("db");
    let bao = OpenBao::shared().await.expect("openbao");
    let mount = bao.transit_mount().await.expect("mount");
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(
        dir.path(),
        &[
            "--database-url",
            &url,
            "--vault-addr",
            &bao.addr,
            "--vault-token",
            &bao.token,
            "--vault-transit-mount",
            &mount,
        ],
    );
    wait_serving(&mesh, dir.path()).await;
    // Each service migrated its own schema, tracked in its own migration table.
    let tables = pg
        .psql(&url, "select table_schema || '.' || table_name from information_schema.tables where table_name like 'guardline_%' order by 1")
        .await
        .expect("psql");
    for expected in [
        "lead_vault.guardline_tenant_data_keys",
        "lead_vault.guardline_lead_vault_migrations",
        "recordings.guardline_audit_outbox",
        "identity.guardline_identity_migrations",
        "audit.guardline_audit_migrations",
    ] {
        assert!(tables.lines().any(|l| l == expected), "{expected} missing from:\n{tables}");
    }
    assert!(!dir.path().join("identity.db").exists(), "no SQLite file when PostgreSQL is configured");
    assert!(!dir.path().join("master.key").exists(), "no local keyring when Vault is configured");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_audit_event_survives_kill_9() {
    use guardline_proto::audit::v1::GetInclusionProofRequest;
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let mut as_vault = AuditServiceClient::new(
        guardline_runtime::connect(&mesh.uri(4), cert(dir.path(), "lead-vault")).expect("channel"),
    );
    let ack = as_vault.append(AppendRequest { events: vec![event("durable-1")] }).await.expect("acknowledged");
    assert_eq!(ack.into_inner().stored_ids, vec!["durable-1".to_owned()]);
    mesh.kill_9();

    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let mut as_vault = AuditServiceClient::new(
        guardline_runtime::connect(&mesh.uri(4), cert(dir.path(), "lead-vault")).expect("channel"),
    );
    let req = GetInclusionProofRequest { tenant_id: "t-up".into(), event_id: "durable-1".into(), tree_size: 1 };
    let proof = as_vault.get_inclusion_proof(req).await.expect("the event is still in the log").into_inner();
    assert_eq!(proof.leaf_index, 0);
    mesh.stop().await;
}

/// `guardline audit verify`, live, remembers the head it verified: the next
/// run proves the log only grew, and after an insider cut the newest
/// entries and the service restarted (so the export itself verifies, its
/// closing head re-derived from what is left), it says TRUNCATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_monitor_names_a_truncated_log() {
    use guardline_proto::identity::v1 as idpb;
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let mut id = idpb::identity_service_client::IdentityServiceClient::new(
        guardline_runtime::connect(&mesh.uri(0), cert(dir.path(), "cli")).expect("channel"),
    );
    let tenant = id
        .create_tenant(idpb::CreateTenantRequest { name: "Monitored".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let password = "a long enough passphrase".to_owned();
    let auditor = idpb::CreateUserRequest {
        tenant_id: tenant.clone(),
        login: "auditor1".into(),
        display_name: "auditor1".into(),
        password: password.clone(),
        roles: vec!["auditor".into()],
        team_ids: vec![],
    };
    id.create_user(auditor).await.expect("auditor");
    let login = || idpb::LoginRequest {
        tenant_id: tenant.clone(),
        login: "auditor1".into(),
        password: password.clone(),
        ..Default::default()
    };
    let token = id.login(login()).await.expect("login").into_inner().access_token;
    let append = |mesh: &Mesh, ids: std::ops::Range<u32>| {
        let events = ids
            .map(|i| guardline_proto::audit::v1::AuditEvent { tenant_id: tenant.clone(), ..event(&format!("m{i}")) });
        let uri = mesh.uri(4);
        let events: Vec<_> = events.collect();
        let tls = cert(dir.path(), "lead-vault");
        async move {
            let mut c = AuditServiceClient::new(guardline_runtime::connect(&uri, tls).expect("channel"));
            c.append(AppendRequest { events }).await.expect("append");
        }
    };
    let verify = |mesh: &Mesh, token: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_guardline"))
            .args(["audit", "verify", "--tenant", &tenant, "--endpoint", &mesh.uri(4), "--data-dir"])
            .arg(dir.path())
            .env("GUARDLINE_TOKEN", token)
            .output()
            .expect("guardline audit verify");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    append(&mesh, 0..5).await;
    let (ok, out) = verify(&mesh, &token);
    assert!(ok && out.contains("first head seen"), "{out}");
    append(&mesh, 5..7).await;
    let (ok, out) = verify(&mesh, &token);
    assert!(ok && out.contains("consistent with the head seen before"), "{out}");
    mesh.stop().await;

    // The newest three entries cut in the database, then a restart.
    let db = dir.path().join("audit.db");
    let cut = format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         c.execute(\"DELETE FROM audit_events WHERE tenant_id = ? AND idx >= (SELECT MAX(idx) - 2 FROM audit_events WHERE tenant_id = ?)\", ('{tenant}', '{tenant}')); c.commit()",
        db.display()
    );
    assert!(Command::new("python3").args(["-c", &cut]).status().expect("python3").success());
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let mut id = idpb::identity_service_client::IdentityServiceClient::new(
        guardline_runtime::connect(&mesh.uri(0), cert(dir.path(), "cli")).expect("channel"),
    );
    let token = id.login(login()).await.expect("login").into_inner().access_token;
    // The tenant's sequencer still counts the cut entries: audit itself
    // refuses to serve the log, naming the missing leaves.
    let (ok, out) = verify(&mesh, &token);
    assert!(!ok && out.contains("data loss") && out.contains("are missing"), "{out}");
    mesh.stop().await;

    // An insider who also winds the sequencer back: the shortened log is
    // served and verifies on its own; only the monitor names the cut.
    let wind_back = format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         c.execute(\"UPDATE audit_tree SET size = (SELECT MAX(idx) + 1 FROM audit_events WHERE tenant_id = ?) WHERE tenant_id = ?\", ('{tenant}', '{tenant}')); c.commit()",
        db.display()
    );
    assert!(Command::new("python3").args(["-c", &wind_back]).status().expect("python3").success());
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let (ok, out) = verify(&mesh, &token);
    assert!(out.contains("intact: "), "the shortened export verifies on its own: {out}");
    assert!(!ok && out.contains("TRUNCATED"), "{out}");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_upload_killed_mid_way_leaves_nothing_after_restart() {
    use guardline_proto::recordings::v1 as rpb;
    use sea_orm::{ConnectionTrait, Statement};
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let ca = DevCa::open_or_create(&dir.path().join("pki"), "guardline.local", "guardline").expect("ca");
    let bridge = TlsMaterial::load(ca.issue("telephony-bridge").expect("cert")).expect("tls");
    let mut client = rpb::recordings_service_client::RecordingsServiceClient::new(
        guardline_runtime::connect(&mesh.uri(3), bridge).expect("channel"),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let header = rpb::RecordingHeader {
        tenant_id: "t-up".into(),
        call_id: "call-1".into(),
        lead_id: "lead-1".into(),
        agent_id: "u-1".into(),
        started_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        duration_seconds: 60,
        format: "audio/wav".into(),
        ..Default::default()
    };
    tx.send(rpb::UploadRecordingRequest { item: Some(rpb::upload_recording_request::Item::Header(header)) })
        .await
        .expect("send");
    let upload =
        tokio::spawn(async move { client.upload_recording(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    for _ in 0..8 {
        tx.send(rpb::UploadRecordingRequest {
            item: Some(rpb::upload_recording_request::Item::Chunk(vec![7u8; 1 << 20])),
        })
        .await
        .expect("send");
    }
    let db_url = format!("sqlite://{}", dir.path().join("recordings.db").display());
    let rows = async |state: &str| {
        let args = guardline_runtime::args::DatabaseArgs {
            database_url: db_url.clone(),
            database_max_connections: 1,
            database_schema: None,
        };
        let db = guardline_runtime::storage::connect(&args).await.expect("db");
        let sql = format!("SELECT id FROM recordings WHERE state = '{state}'");
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("query").len()
    };
    for _ in 0..100 {
        if rows("uploading").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows("uploading").await, 1, "the upload is in flight");
    let files = || {
        let mut found = Vec::new();
        let mut stack = vec![dir.path().join("recordings")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() { stack.push(e.path()) } else { found.push(e.path()) }
            }
        }
        found
    };
    for _ in 0..100 {
        if files().iter().any(|f| f.to_string_lossy().contains('#')) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(files().iter().any(|f| f.to_string_lossy().contains('#')), "a staging file is on disk: {:?}", files());
    mesh.kill_9();
    upload.abort();

    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    assert_eq!(rows("uploading").await + rows("stored").await, 0, "the interrupted upload was swept");
    assert!(files().is_empty(), "no object or staging file is left: {:?}", files());
    drop(tx);
    mesh.stop().await;
}

/// A tenant with one team and one agent, created by the CLI identity (a
/// platform admin of `guardline up`); returns (tenant id, agent's token).
async fn tenant_with_agent(mesh: &Mesh, data_dir: &Path) -> (String, String) {
    use guardline_proto::identity::v1 as idpb;
    let mut id = idpb::identity_service_client::IdentityServiceClient::new(
        guardline_runtime::connect(&mesh.uri(0), cert(data_dir, "cli")).expect("channel"),
    );
    let tenant = id
        .create_tenant(idpb::CreateTenantRequest { name: "Import".into(), ..Default::default() })
        .await
        .expect("tenant")
        .into_inner()
        .id;
    let team = id
        .create_team(idpb::CreateTeamRequest { tenant_id: tenant.clone(), name: "A".into() })
        .await
        .expect("team")
        .into_inner()
        .id;
    let password = "a long enough passphrase".to_owned();
    id.create_user(idpb::CreateUserRequest {
        tenant_id: tenant.clone(),
        login: "agent1".into(),
        display_name: "agent1".into(),
        password: password.clone(),
        roles: vec!["agent".into()],
        team_ids: vec![team],
    })
    .await
    .expect("user");
    let login =
        idpb::LoginRequest { tenant_id: tenant.clone(), login: "agent1".into(), password, ..Default::default() };
    let token = id.login(login).await.expect("login").into_inner().access_token;
    (tenant, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_import_from_csv_reports_bad_rows_by_line_and_stores_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let (tenant, token) = tenant_with_agent(&mesh, dir.path()).await;
    let csv = dir.path().join("leads.csv");
    std::fs::write(
        &csv,
        "name,phones,city,tags\n\
         张三,138 1234 5678,深圳市,vip\n\
         李四,not a number,北京市,\n\
         王五,+8613812345678,上海市,\n\
         赵六,139 1234 5678;+1 202 555 0143,广州市,car;vip\n\
         broken,row\n\
         钱七,137 1234 5678,杭州市,\n",
    )
    .expect("csv");
    let run = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_guardline"))
            .args(["leads", "import"])
            .arg(file)
            .args(["--tenant", &tenant, "--default-region", "CN", "--endpoint", &mesh.uri(1)])
            .arg("--data-dir")
            .arg(dir.path())
            .env("GUARDLINE_TOKEN", &token)
            .output()
            .expect("guardline leads import")
    };
    let out = run(&csv);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "refused rows fail the command: {stdout}");
    assert!(stdout.contains("imported 3, skipped 1 duplicates, refused 2 rows"), "line 4 repeats line 2: {stdout}");
    assert!(stdout.contains("line 3: lead.phones[0]: not a valid phone number"), "{stdout}");
    assert!(stdout.contains("line 6: csv: malformed row"), "{stdout}");
    assert!(!stdout.contains("not a number") && !stdout.contains("13812345678"), "no values echoed: {stdout}");

    // The stored leads are the agent's, and only the good rows.
    let mut vault = LeadVaultServiceClient::new(
        guardline_runtime::connect(&mesh.uri(1), cert(dir.path(), "cli")).expect("channel"),
    );
    let mut list = tonic::Request::new(guardline_proto::vault::v1::ListLeadsRequest {
        tenant_id: tenant.clone(),
        ..Default::default()
    });
    list.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    let leads = vault.list_leads(list).await.expect("list").into_inner().leads;
    let mut cities: Vec<String> = leads.iter().map(|l| l.address.clone().expect("address").masked).collect();
    cities.sort();
    assert_eq!(cities, ["广州市", "杭州市", "深圳市"]);

    // Importing the file again finds every good row already there.
    let again = run(&csv);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("imported 0, skipped 4 duplicates"), "{stdout}");

    // A misspelt column is refused before anything is sent.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "nmae,phones\nx,138 1234 0000\n").expect("csv");
    let out = run(&bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("column 1 `nmae`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnc_import_loads_a_national_registry_copy_from_the_cli() {
    use guardline_proto::dialer::v1::GetRegistryStatusRequest;
    use guardline_proto::dialer::v1::dialer_policy_service_client::DialerPolicyServiceClient;
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let file = dir.path().join("ftc.txt");
    let mut lines = String::new();
    for i in 0..5000 {
        lines.push_str(&format!("202,555{i:04}\n"));
    }
    lines.push_str("not a number\n");
    std::fs::write(&file, lines).expect("file");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_guardline"))
            .args(["dnc", "import"])
            .arg(&file)
            .args(["--endpoint", &mesh.uri(2)])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("guardline dnc import")
    };
    let out = run(&["--national", "--copy-date", "2026-11-20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("loaded 5000 numbers, refused 1 lines"), "{stdout}");
    let mut dialer = DialerPolicyServiceClient::new(
        guardline_runtime::connect(&mesh.uri(2), cert(dir.path(), "cli")).expect("channel"),
    );
    let status = dialer.get_registry_status(GetRegistryStatusRequest {}).await.expect("status").into_inner();
    assert_eq!((status.copies[0].region.as_str(), status.copies[0].numbers), ("US", 5000));
    // A tenant list needs a user's token; the flags say so before anything is sent.
    let out = run(&["--tenant", "t1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"), "{}", String::from_utf8_lossy(&out.stderr));
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_every_journey_against_guardline_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardline"));
    cmd.arg("demo").arg("--data-dir").arg(dir.path());
    for (i, (name, _)) in SERVICES.iter().enumerate() {
        cmd.arg("--endpoint").arg(format!("{name}={}", mesh.uri(i)));
    }
    // The demo plans a call for the next Saturday in Beijing from its own now.
    let packs = guardline_dialer_policy::domain::window::Packs::load(None).expect("packs");
    let works = |d| packs.get("cn").is_some_and(|p| p.works_on(d, &Default::default()));
    let monday = || guardline_journeys::time::cn_saturday_and_monday(chrono::Utc::now(), works).1.to_rfc3339();
    let before = monday();
    let out = cmd.output().expect("guardline demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let deferred = [before, monday()].map(|m| format!("DEFER until {m}"));
    assert!(deferred.iter().any(|d| stdout.contains(d.as_str())), "missing `{}` in:\n{stdout}", deferred[0]);
    for expected in [
        "admin enrolled TOTP",
        "refused 4 rows",
        "agent1 asks for agent2's lead: NotFound",
        "DENY (dnc.national: on the national registry copy of",
        "DENY (cap.callee.24h: 1 of 1 calls in the last 24 h)",
        "DENY (consent.marketing: no active marketing consent",
        "2026-10-01 in Asia/Shanghai is a public holiday, National Day (State Council notice of 2025-11-04)",
        "agent1 tries to resolve it: PermissionDenied",
        "agent2 (another team) tries: NotFound",
        "0 would be deleted, 1 kept under a legal hold",
        "ALERT bulk_access",
        "the lead: NotFound; its recording: NotFound",
        "retiring keys left",
        "every signed tree head verified",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
    assert!(!stdout.contains("139200000"), "the demo prints no clear numbers of its leads:\n{stdout}");
    mesh.stop().await;
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The guardline files of `buf build`, source info excluded.
fn buf_built() -> std::collections::BTreeMap<String, prost_types::FileDescriptorProto> {
    let out = tempfile::NamedTempFile::new().expect("tmp");
    let buf = std::env::var("GUARDLINE_BUF")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo().join(".tools/buf/node_modules/.bin/buf"));
    let status = Command::new(buf)
        .args(["build", "--exclude-source-info", "-o"])
        .arg(out.path())
        .current_dir(repo().join("proto"))
        .status()
        .expect("buf (scripts/test-deps.sh installs it)");
    assert!(status.success(), "buf build");
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(
        std::fs::read(out.path()).expect("image").as_slice(),
    )
    .expect("image");
    set.file.into_iter().filter(|f| f.name().starts_with("guardline/")).map(|f| (f.name().to_owned(), f)).collect()
}

/// Descriptors compare without source info (buf builds without it).
fn normal(mut f: prost_types::FileDescriptorProto) -> prost_types::FileDescriptorProto {
    f.source_code_info = None;
    f
}

async fn served_v1(uri: &str, tls: std::sync::Arc<TlsMaterial>, symbol: &str) -> Vec<Vec<u8>> {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    match reflect_v1(uri, tls, MessageRequest::FileContainingSymbol(symbol.into())).await {
        Some(MessageResponse::FileDescriptorResponse(f)) => f.file_descriptor_proto,
        other => panic!("v1 answered {other:?}"),
    }
}

async fn served_v1alpha(
    uri: &str,
    tls: std::sync::Arc<guardline_runtime::tls::TlsMaterial>,
    symbol: &str,
) -> Vec<Vec<u8>> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut c = ServerReflectionClient::new(guardline_runtime::connect(uri, tls).expect("channel"));
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut s = c.server_reflection_info(tokio_stream::iter([req])).await.expect("v1alpha").into_inner();
    match s.message().await.expect("answer").and_then(|r| r.message_response) {
        Some(MessageResponse::FileDescriptorResponse(f)) => f.file_descriptor_proto,
        other => panic!("v1alpha answered {other:?}"),
    }
}

/// What a running server serves over reflection, in both versions clients
/// speak (v1 and v1alpha), equals what `buf build` makes of the protos in
/// the repository: generated code travels with the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_in_both_versions_serves_what_buf_builds() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let cli = cert(dir.path(), "cli");
    let built = buf_built();
    assert!(built.len() >= 6, "{:?}", built.keys());
    let symbols = [
        "guardline.identity.v1.IdentityService",
        "guardline.vault.v1.LeadVaultService",
        "guardline.dialer.v1.DialerPolicyService",
        "guardline.recordings.v1.RecordingsService",
        "guardline.audit.v1.AuditService",
    ];
    let mut compared = 0;
    for (i, symbol) in symbols.iter().enumerate() {
        let uri = mesh.uri(i);
        let v1 = served_v1(&uri, cli.clone(), symbol).await;
        let v1alpha = served_v1alpha(&uri, cli.clone(), symbol).await;
        for (version, files) in [("v1", v1), ("v1alpha", v1alpha)] {
            assert!(!files.is_empty(), "{symbol} over {version}");
            for bytes in files {
                use prost::Message;
                let served = normal(prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor"));
                if let Some(want) = built.get(served.name()) {
                    assert!(normal(want.clone()) == served, "{} over {version} differs from buf build", served.name());
                    compared += 1;
                }
            }
        }
    }
    assert!(compared >= 10, "compared {compared} files");
    mesh.stop().await;
}

/// `examples/python/client.py`, the way an internal service in another
/// language integrates: stubs generated from `proto/`, mTLS with a client
/// certificate, TOTP login, a masked lead, a pre-dial decision and a field
/// violation decoded from the standard error details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_example_integrates_over_mtls() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let script = repo().join("examples/python/client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("--data-dir").arg(dir.path());
    for (i, (name, _)) in SERVICES.iter().enumerate() {
        cmd.arg("--endpoint").arg(format!("{name}={}", mesh.uri(i)));
    }
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "admin logged in with TOTP",
        "read back masked: +86 138****5678",
        "pre-dial decision: VERDICT_",
        "field violation (INVALID_ARGUMENT): lead.phones[0]: not a valid phone number",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
    assert!(!stdout.contains("13812345678"), "no clear number:\n{stdout}");
    mesh.stop().await;
}

/// Raw bytes out, anything back: for sending undecodable messages.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let n = bytes::Buf::remaining(buf);
        bytes::Buf::advance(buf, n);
        Ok(Some(()))
    }
}

/// Every RPC of every service, sent a message that cannot decode (an
/// invalid wire type), answers INVALID_ARGUMENT with a generic message, or
/// refuses the caller first; never INTERNAL or UNKNOWN, never the decoder's
/// text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_the_callers_mistake_on_every_rpc() {
    use prost::Message;
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let cli = cert(dir.path(), "cli");
    let set = prost_types::FileDescriptorSet::decode(guardline_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let (mut methods, mut malformed) = (0, 0);
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            let Some(i) = SERVICES.iter().position(|(_, s)| *s == full) else { continue };
            let channel = guardline_runtime::connect(&mesh.uri(i), cli.clone()).expect("channel");
            for m in &service.method {
                methods += 1;
                let path: http::uri::PathAndQuery = format!("/{full}/{}", m.name()).parse().expect("path");
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                grpc.ready().await.expect("ready");
                let garbage = tokio_stream::iter([vec![0x0f_u8, 0xff, 0xff]]);
                let status = match grpc.streaming(tonic::Request::new(garbage), path, RawCodec).await {
                    Err(s) => s,
                    Ok(r) => match r.into_inner().message().await {
                        Err(s) => s,
                        Ok(_) => panic!("{full}/{} took an undecodable message", m.name()),
                    },
                };
                let what = format!("{full}/{}: {:?} {}", m.name(), status.code(), status.message());
                assert!(
                    matches!(status.code(), Code::InvalidArgument | Code::PermissionDenied | Code::Unauthenticated),
                    "{what}"
                );
                if status.code() == Code::InvalidArgument {
                    assert_eq!(status.message(), guardline_proto::codec::MALFORMED, "{what}");
                    malformed += 1;
                }
            }
        }
    }
    assert!(methods >= 80, "{methods} methods");
    assert!(malformed >= 40, "only {malformed} of {methods} RPCs decoded the request: the rest refused the caller");
    mesh.stop().await;
}

/// Deny by default: every RPC of every service has an explicit rule in its
/// allow-list (open to mesh peers, or to named identities), and no rule
/// names a method that does not exist.
#[test]
fn every_rpc_has_exactly_one_allow_list_rule() {
    use prost::Message;
    let mesh = guardline_runtime::args::MeshArgs::default();
    let lists = [
        ("guardline.identity.v1.IdentityService", guardline_identity::grpc::allow_list(&mesh)),
        ("guardline.vault.v1.LeadVaultService", guardline_lead_vault::grpc::allow_list(&mesh)),
        ("guardline.dialer.v1.DialerPolicyService", guardline_dialer_policy::grpc::allow_list(&mesh)),
        ("guardline.recordings.v1.RecordingsService", guardline_recordings::grpc::allow_list(&mesh)),
        ("guardline.audit.v1.AuditService", guardline_audit::grpc::allow_list(&mesh)),
    ];
    let set = prost_types::FileDescriptorSet::decode(guardline_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut total = 0;
    for (service, list) in &lists {
        let declared: std::collections::BTreeSet<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| (f.package().to_owned(), s)))
            .filter(|(p, s)| format!("{p}.{}", s.name()) == *service)
            .flat_map(|(_, s)| s.method.iter().map(|m| format!("/{service}/{}", m.name())).collect::<Vec<_>>())
            .collect();
        let ruled: std::collections::BTreeSet<String> = list.rules().map(|(m, _)| m.to_owned()).collect();
        let missing: Vec<_> = declared.difference(&ruled).collect();
        let unknown: Vec<_> = ruled.difference(&declared).collect();
        assert!(missing.is_empty(), "{service}: no rule for {missing:?}");
        assert!(unknown.is_empty(), "{service}: rules for methods that do not exist: {unknown:?}");
        assert!(!list.permits(&format!("/{service}/NoSuchMethod"), Some(&mesh.identity_of("gateway"))));
        total += declared.len();
    }
    assert!(total >= 80, "{total}");
}

/// What a fuzzed message holds in every field it fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// Plausible values (the tenant's id where a field is `tenant_id`).
    Plain,
    /// Every string and bytes field a mebibyte long.
    Huge,
    /// Every repeated field with 100,000 elements.
    Repeated,
    /// Every string field invalid UTF-8.
    BadUtf8,
    /// Every number at its extreme: all-ones varints, NaN, unknown enums.
    Extreme,
}

/// The protobuf wire encoding of a `message` filled as `fill` says, its
/// nested messages to depth 3 (built from the descriptors, so that every
/// field of every request is reached without a hand-written case).
fn fuzzed(
    message: &prost_types::DescriptorProto,
    types: &std::collections::HashMap<String, prost_types::DescriptorProto>,
    fill: Fill,
    tenant: &str,
    depth: usize,
) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    use prost_types::field_descriptor_proto::{Label, Type};
    const MIB: usize = 1 << 20;
    let mut out = Vec::new();
    for f in &message.field {
        let tag = f.number() as u32;
        let times = if f.label() == Label::Repeated && fill == Fill::Repeated { 100_000 } else { 1 };
        let mut value = Vec::new();
        let wire = match f.r#type() {
            Type::String | Type::Bytes => {
                let bytes = match fill {
                    Fill::Huge => vec![b'a'; MIB],
                    Fill::BadUtf8 if f.r#type() == Type::String => vec![0xff, 0xfe, 0xc3, 0x28],
                    _ if f.name() == "tenant_id" => tenant.as_bytes().to_vec(),
                    _ if fill == Fill::Repeated => Vec::new(),
                    _ => b"x1".to_vec(),
                };
                encode_varint(bytes.len() as u64, &mut value);
                value.extend_from_slice(&bytes);
                WireType::LengthDelimited
            }
            Type::Message => {
                let nested = types.get(f.type_name()).filter(|_| depth < 3 && fill != Fill::Repeated);
                let inner = nested.map(|m| fuzzed(m, types, fill, tenant, depth + 1)).unwrap_or_default();
                encode_varint(inner.len() as u64, &mut value);
                value.extend_from_slice(&inner);
                WireType::LengthDelimited
            }
            Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                let v: u64 = if fill == Fill::Extreme { f64::NAN.to_bits() | u64::MAX >> 1 } else { 1f64.to_bits() };
                value.extend_from_slice(&v.to_le_bytes());
                WireType::SixtyFourBit
            }
            Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                let v: u32 = if fill == Fill::Extreme { u32::MAX } else { 1 };
                value.extend_from_slice(&v.to_le_bytes());
                WireType::ThirtyTwoBit
            }
            _ => {
                encode_varint(if fill == Fill::Extreme { u64::MAX } else { 1 }, &mut value);
                WireType::Varint
            }
        };
        for _ in 0..times {
            encode_key(tag, wire, &mut out);
            out.extend_from_slice(&value);
        }
    }
    out
}

/// A deterministic byte stream (xorshift), for a seeded, repeatable run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `body` to `path` with `token`; waits out a rate limit as its
/// `RetryInfo` says. The status, or OK; `None` if it took over 30 s.
async fn send_raw(
    channel: &guardline_runtime::GrpcChannel,
    path: &str,
    body: &[u8],
    token: &str,
    server_streaming: bool,
) -> Option<tonic::Status> {
    use tonic_types::StatusExt;
    loop {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let mut req = tonic::Request::new(tokio_stream::iter([body.to_vec()]));
        req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
        let call = async {
            match grpc.streaming(req, path.parse().expect("path"), RawCodec).await {
                Err(s) => s,
                Ok(_) if server_streaming => tonic::Status::ok(""),
                Ok(r) => r.into_inner().message().await.err().unwrap_or_else(|| tonic::Status::ok("")),
            }
        };
        let status = tokio::time::timeout(Duration::from_secs(30), call).await.ok()?;
        match status.get_error_details().retry_info().and_then(|r| r.retry_delay) {
            Some(wait) if status.code() == Code::ResourceExhausted => tokio::time::sleep(wait).await,
            _ => return Some(status),
        }
    }
}

/// Every RPC of every service, sent what a fuzzer sends: random bytes,
/// truncated messages, mebibyte strings, 100,000 repeated elements, invalid
/// UTF-8 and extreme numbers, with a user token so that the messages reach
/// the handlers. None answers INTERNAL or UNKNOWN for the caller's mistake,
/// none hangs, another tenant's user is refused before any rule is checked,
/// and every service is still SERVING afterwards. A seeded run;
/// `GUARDLINE_FUZZ_ROUNDS` sends more random messages per RPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_survives_hostile_messages() {
    use prost::Message;
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), &[]);
    wait_serving(&mesh, dir.path()).await;
    let (tenant, token) = tenant_with_agent(&mesh, dir.path()).await;
    let (_, stranger) = tenant_with_agent(&mesh, dir.path()).await;
    let cli = cert(dir.path(), "cli");
    let set = prost_types::FileDescriptorSet::decode(guardline_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut types = std::collections::HashMap::new();
    for file in &set.file {
        for m in &file.message_type {
            types.insert(format!(".{}.{}", file.package(), m.name()), m.clone());
        }
    }
    let rounds: u64 = std::env::var("GUARDLINE_FUZZ_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
    let (mut sent, mut bad) = (0, Vec::new());
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            let Some(i) = SERVICES.iter().position(|(_, s)| *s == full) else { continue };
            let channel = guardline_runtime::connect(&mesh.uri(i), cli.clone()).expect("channel");
            for m in &service.method {
                let input = &types[m.input_type()];
                let plain = fuzzed(input, &types, Fill::Plain, &tenant, 0);
                let mut bodies = vec![plain[..plain.len() / 2].to_vec()];
                for fill in [Fill::Huge, Fill::Repeated, Fill::BadUtf8, Fill::Extreme] {
                    bodies.push(fuzzed(input, &types, fill, &tenant, 0));
                }
                bodies.extend((0..rounds).map(|r| noise(r * 7919 + sent as u64 + 1, 64)));
                let path = format!("/{full}/{}", m.name());
                for body in &bodies {
                    // Another tenant's user learns nothing of the rules:
                    // authorization comes first. Before it only what names
                    // the tenant can be refused (a stream's header, a
                    // policy's tenant), and a password-authenticated
                    // second-factor confirmation answers for its code.
                    const BEFORE_AUTHZ: [(&str, &str); 4] = [
                        ("ImportDnc", "header"),
                        ("ImportLeads", "header"),
                        ("SetDialPolicy", "policy.tenant_id"),
                        ("ConfirmTotp", "code"),
                    ];
                    let Some(s) = send_raw(&channel, &path, body, &stranger, m.server_streaming()).await else {
                        bad.push(format!("{path}: no answer within 30 s"));
                        continue;
                    };
                    let field = guardline_runtime::error::field_violations(&s).first().map(|v| v.field.clone());
                    let exempt = field.is_some_and(|f| BEFORE_AUTHZ.contains(&(m.name(), f.as_str())));
                    if s.code() == Code::InvalidArgument && s.message() != guardline_proto::codec::MALFORMED && !exempt
                    {
                        bad.push(format!("{path}: another tenant's user learned a rule: {}", s.message()));
                    }
                }
                for body in bodies {
                    sent += 1;
                    match send_raw(&channel, &path, &body, &token, m.server_streaming()).await {
                        None => bad.push(format!("{path}: no answer within 30 s")),
                        Some(s) if matches!(s.code(), Code::Internal | Code::Unknown) => {
                            bad.push(format!("{path}: {:?} {}", s.code(), s.message()))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    assert!(sent >= 80 * 7, "{sent} messages");
    assert!(bad.is_empty(), "{} of {sent} messages answered as the server's fault:\n{}", bad.len(), bad.join("\n"));
    wait_serving(&mesh, dir.path()).await;
    mesh.stop().await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// No PII in clear anywhere: unique markers (a name, numbers in several
/// formats, an address, needs and notes) go in through the lead vault's
/// write RPCs and in refused requests, then every journey of the demo runs
/// (import, dialing, recording, erasure, rotation, audit), all with logs at
/// their most verbose. Neither a log line, nor an error message, nor any
/// file under the data directory (databases, keyring, recordings) holds a
/// marker, a journey's customer number or name, or the recorded audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pii_reaches_a_log_an_error_or_a_file_in_clear() {
    use guardline_proto::vault::v1 as vpb;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let log_path = dir.path().join("trace.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mesh = Mesh::start_logging(&data, &[], "trace", Some(log));
    wait_serving(&mesh, &data).await;
    let (tenant, token) = tenant_with_agent(&mesh, &data).await;
    let mut vault =
        LeadVaultServiceClient::new(guardline_runtime::connect(&mesh.uri(1), cert(&data, "cli")).expect("channel"));
    fn with<T>(token: &str, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
        r
    }
    let lead = |phones: Vec<&str>, notes: &str| vpb::LeadInput {
        phones: phones.into_iter().map(str::to_owned).collect(),
        default_region: "CN".into(),
        name: "Qzxmarkername 钱十".into(),
        address: Some(vpb::Address {
            province: "广东省".into(),
            city: "深圳市".into(),
            district: "Qzxmarkerdistrict".into(),
            street: "Qzxmarkerstreet 88".into(),
        }),
        needs: "Qzxmarkerneeds".into(),
        notes: notes.into(),
        ..Default::default()
    };
    let created = vault
        .create_lead(with(
            &token,
            vpb::CreateLeadRequest {
                tenant_id: tenant.clone(),
                lead: Some(lead(vec!["+86 139 8765 4321", "139-8765-1234"], "Qzxmarkernotes")),
            },
        ))
        .await
        .expect("create")
        .into_inner();
    vault
        .update_lead(with(
            &token,
            vpb::UpdateLeadRequest {
                tenant_id: tenant.clone(),
                lead_id: created.id.clone(),
                expected_version: created.version,
                lead: Some(lead(vec![], "Qzxmarkerupdated")),
                update_fields: vec!["notes".into()],
                ..Default::default()
            },
        ))
        .await
        .expect("update");
    // Refused requests carrying markers: an invalid number, a bad region.
    let mut errors = Vec::new();
    for (phones, region) in [(vec!["139876543210999 Qzxmarkerbad"], "CN"), (vec!["+86 139 8765 4321"], "QZXMARKER")] {
        let mut bad = lead(phones, "Qzxmarkernotes");
        bad.default_region = region.into();
        let refused = vault
            .create_lead(with(&token, vpb::CreateLeadRequest { tenant_id: tenant.clone(), lead: Some(bad) }))
            .await
            .expect_err("refused");
        errors.push(format!("{refused:?}"));
    }

    let mut demo = Command::new(env!("CARGO_BIN_EXE_guardline"));
    demo.arg("demo").arg("--data-dir").arg(&data);
    for (i, (name, _)) in SERVICES.iter().enumerate() {
        demo.arg("--endpoint").arg(format!("{name}={}", mesh.uri(i)));
    }
    let out = demo.output().expect("guardline demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Its stdout is a client's display (a reveal shows what it revealed);
    // what it logs must hold nothing.
    errors.push(String::from_utf8_lossy(&out.stderr).into_owned());
    mesh.stop().await;

    let markers: Vec<Vec<u8>> = [
        "Qzxmarker",
        "钱十",
        "8765 4321",
        "98765432",
        "87654321",
        "8765-1234",
        "87651234",
        guardline_journeys::erasure::CUSTOMER,
        &guardline_journeys::erasure::CUSTOMER[3..],
        "王五",
        "赵六",
    ]
    .iter()
    .map(|m| m.as_bytes().to_vec())
    .chain([guardline_journeys::AUDIO[..512].to_vec()])
    .collect();
    let logs = std::fs::read(&log_path).expect("log");
    assert!(logs.len() > 100_000, "trace logging ran: {} bytes", logs.len());
    let mut places: Vec<(String, Vec<u8>)> = vec![("the trace log".into(), logs)];
    places.extend(errors.into_iter().enumerate().map(|(i, e)| (format!("error or output {i}"), e.into_bytes())));
    let files = files_under(&data);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "db")), "{files:?}");
    places.extend(files.into_iter().map(|f| (f.display().to_string(), std::fs::read(&f).expect("read"))));
    for (place, bytes) in &places {
        for m in &markers {
            let found = bytes.windows(m.len()).any(|w| w == m.as_slice());
            assert!(!found, "{place} holds `{}` in clear", String::from_utf8_lossy(&m[..m.len().min(40)]));
        }
    }
}
