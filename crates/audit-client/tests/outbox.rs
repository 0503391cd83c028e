//! The outbox over real mTLS gRPC: nothing is lost while audit is down,
//! everything is delivered once it is back, on SQLite and PostgreSQL.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardline_audit_client::outbox::pending;
use guardline_audit_client::{AuditClient, EventBuilder, OutboxWorker, enqueue};
use guardline_proto::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use guardline_proto::audit::v1::{self as pb, AppendRequest, AppendResponse};
use guardline_runtime::args::{DatabaseArgs, ServerArgs};
use guardline_runtime::devca::DevCa;
use guardline_runtime::server::GrpcServer;
use guardline_runtime::tls::TlsMaterial;
use guardline_testkit::Postgres;
use sea_orm::{DatabaseConnection, TransactionTrait};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tokio_util::sync::CancellationToken;

/// Stands in for the audit service (its own issue builds the real one):
/// acknowledges and remembers ids, once each, and counts the ids it was
/// sent again.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicUsize>);

#[tonic::async_trait]
impl AuditService for Receiver {
    async fn append(
        &self,
        request: tonic::Request<AppendRequest>,
    ) -> Result<tonic::Response<AppendResponse>, tonic::Status> {
        let events = request.into_inner().events;
        // Like the real audit service, a batch with an invalid event is refused whole.
        if events.iter().any(|e| e.action == "poison") {
            return Err(tonic::Status::invalid_argument("events[0].details: looks like a phone number"));
        }
        let mut seen = self.0.lock().expect("lock");
        let mut resp = AppendResponse::default();
        for e in events {
            if seen.contains(&e.id) {
                self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                resp.duplicate_ids.push(e.id);
            } else {
                seen.push(e.id.clone());
                resp.stored_ids.push(e.id);
            }
        }
        Ok(tonic::Response::new(resp))
    }

    // The outbox only appends; the rest of the API is not this double's.
    type ExportEventsStream = Unused<pb::ExportChunk>;
    type WatchAlertsStream = Unused<pb::Alert>;
    async fn get_signed_tree_head(&self, _: tonic::Request<pb::GetSignedTreeHeadRequest>) -> Reply<pb::SignedTreeHead> {
        unused()
    }
    async fn get_inclusion_proof(&self, _: tonic::Request<pb::GetInclusionProofRequest>) -> Reply<pb::InclusionProof> {
        unused()
    }
    async fn get_consistency_proof(
        &self,
        _: tonic::Request<pb::GetConsistencyProofRequest>,
    ) -> Reply<pb::ConsistencyProof> {
        unused()
    }
    async fn query_events(&self, _: tonic::Request<pb::QueryEventsRequest>) -> Reply<pb::QueryEventsResponse> {
        unused()
    }
    async fn export_events(&self, _: tonic::Request<pb::ExportEventsRequest>) -> Reply<Self::ExportEventsStream> {
        unused()
    }
    async fn set_retention(&self, _: tonic::Request<pb::SetRetentionRequest>) -> Reply<pb::SetRetentionResponse> {
        unused()
    }
    async fn prune(&self, _: tonic::Request<pb::PruneRequest>) -> Reply<pb::PruneResponse> {
        unused()
    }
    async fn list_alerts(&self, _: tonic::Request<pb::ListAlertsRequest>) -> Reply<pb::ListAlertsResponse> {
        unused()
    }
    async fn watch_alerts(&self, _: tonic::Request<pb::WatchAlertsRequest>) -> Reply<Self::WatchAlertsStream> {
        unused()
    }
    async fn update_alert(&self, _: tonic::Request<pb::UpdateAlertRequest>) -> Reply<pb::Alert> {
        unused()
    }
    async fn configure_alerts(&self, _: tonic::Request<pb::ConfigureAlertsRequest>) -> Reply<pb::AlertSettings> {
        unused()
    }
    async fn rotate_signing_key(
        &self,
        _: tonic::Request<pb::RotateSigningKeyRequest>,
    ) -> Reply<pb::RotateSigningKeyResponse> {
        unused()
    }
}

type Unused<T> = tonic::codegen::BoxStream<T>;
type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

fn unused<T>() -> Reply<T> {
    Err(tonic::Status::unimplemented("not served by the test double"))
}

struct Migrator;
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        guardline_audit_client::migrations()
    }
}

async fn migrate(url: String) -> DatabaseConnection {
    let db = guardline_runtime::storage::connect(&DatabaseArgs {
        database_url: url,
        database_max_connections: 4,
        database_schema: None,
    })
    .await
    .expect("db");
    Migrator::up(&db, None).await.expect("migrate");
    db
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: DevCa,
}

fn pki() -> Pki {
    guardline_runtime::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tmp");
    let ca = DevCa::open_or_create(dir.path(), "guardline.local", "test").expect("ca");
    Pki { _dir: dir, ca }
}

async fn serve_audit(pki: &Pki, addr: SocketAddr, receiver: Receiver) -> CancellationToken {
    let listener = guardline_runtime::server::bind(addr).await.expect("bind");
    let tls = TlsMaterial::load(pki.ca.issue("audit").expect("cert")).expect("tls");
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let args = ServerArgs::on(addr);
        GrpcServer::new("audit")
            .add_service(AuditServiceServer::new(receiver))
            .allow_list(guardline_runtime::authz::AllowList::new().mesh_service("guardline.audit.v1.AuditService"))
            .serve(listener, tls, &args, s)
            .await
    });
    stop
}

fn client(pki: &Pki, addr: SocketAddr) -> AuditClient {
    let tls = TlsMaterial::load(pki.ca.issue("lead-vault").expect("cert")).expect("tls");
    let ch = guardline_runtime::connect(&format!("https://localhost:{}", addr.port()), tls).expect("channel");
    AuditClient::new(ch, Duration::from_secs(2))
}

async fn delivers_everything_once_audit_is_back(db: DatabaseConnection) {
    let pki = pki();
    let addr: SocketAddr =
        format!("127.0.0.1:{}", guardline_testkit::free_port().expect("port")).parse().expect("addr");
    let mut ids = Vec::new();
    for i in 0..25 {
        let e = EventBuilder::new("t1", "lead.update")
            .resource("lead", &format!("lead-{i}"))
            .detail("fields", "name")
            .build();
        ids.push(e.id.clone());
        let txn = db.begin().await.expect("txn");
        enqueue(&txn, &e).await.expect("enqueue");
        txn.commit().await.expect("commit");
    }
    // An event whose change rolled back is never delivered.
    let txn = db.begin().await.expect("txn");
    enqueue(&txn, &EventBuilder::new("t1", "lead.delete").build()).await.expect("enqueue");
    txn.rollback().await.expect("rollback");

    let mut worker = OutboxWorker::new(db.clone(), client(&pki, addr));
    worker.min_backoff = Duration::from_millis(20);
    worker.max_backoff = Duration::from_millis(200);
    worker.poll = Duration::from_millis(20);
    worker.batch = 10;
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pending(&db).await.expect("count"), 25, "nothing is dropped while audit is down");

    let receiver = Receiver::default();
    let server = serve_audit(&pki, addr, receiver.clone()).await;
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = receiver.0.lock().expect("lock").len();
        if delivered == 25 && pending(&db).await.expect("count") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(delivered, 25);
    assert_eq!(pending(&db).await.expect("count"), 0);
    let got = receiver.0.lock().expect("lock").clone();
    assert_eq!(got, ids, "delivered in order of creation, each once");
    stop.cancel();
    task.await.expect("worker stops");
    server.cancel();
}

async fn a_refused_event_is_parked_and_does_not_hold_back_the_rest(db: DatabaseConnection) {
    let pki = pki();
    let addr: SocketAddr =
        format!("127.0.0.1:{}", guardline_testkit::free_port().expect("port")).parse().expect("addr");
    let receiver = Receiver::default();
    let server = serve_audit(&pki, addr, receiver.clone()).await;
    let mut good = Vec::new();
    for i in 0..7 {
        let action = if i == 2 { "poison" } else { "lead.update" };
        let e = EventBuilder::new("t1", action).resource("lead", &format!("lead-{i}")).build();
        if i != 2 {
            good.push(e.id.clone());
        }
        enqueue(&db, &e).await.expect("enqueue");
    }
    let mut worker = OutboxWorker::new(db.clone(), client(&pki, addr));
    worker.poll = Duration::from_millis(20);
    worker.batch = 10;
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    for _ in 0..200 {
        if receiver.0.lock().expect("lock").len() == good.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(*receiver.0.lock().expect("lock"), good, "the others are delivered, in order");
    // Later events flow too.
    let later = EventBuilder::new("t1", "lead.update").build();
    enqueue(&db, &later).await.expect("enqueue");
    for _ in 0..200 {
        if receiver.0.lock().expect("lock").contains(&later.id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(receiver.0.lock().expect("lock").contains(&later.id));
    use sea_orm::EntityTrait;
    // The receiver may see the event before the worker has removed its row:
    // wait for the removal, not only the delivery.
    let mut left = Vec::new();
    for _ in 0..200 {
        left = guardline_audit_client::outbox::entity::Entity::find().all(&db).await.expect("rows");
        if left.len() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left.len(), 1, "the refused event is kept, not dropped");
    assert!(left[0].last_error.as_deref().is_some_and(|e| e.starts_with(guardline_audit_client::outbox::PARKED)));
    stop.cancel();
    task.await.expect("worker stops");
    server.cancel();
}

async fn synchronous_append_refuses_while_audit_is_down(_db: DatabaseConnection) {
    let pki = pki();
    let addr: SocketAddr =
        format!("127.0.0.1:{}", guardline_testkit::free_port().expect("port")).parse().expect("addr");
    let c = client(&pki, addr);
    let e = EventBuilder::new("t1", "lead.reveal").resource("lead", "lead-1").build();
    let err = c.append_now(vec![e.clone()]).await.expect_err("audit is down");
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
    let receiver = Receiver::default();
    let server = serve_audit(&pki, addr, receiver.clone()).await;
    c.append_now(vec![e.clone()]).await.expect("acknowledged");
    assert_eq!(receiver.0.lock().expect("lock").as_slice(), [e.id]);
    server.cancel();
}

/// While audit is down the outbox grows to its bound, then writes are
/// refused (UNAVAILABLE, naming the bound) until delivery catches up.
async fn writes_are_refused_past_the_bound_until_audit_catches_up(db: DatabaseConnection) {
    use guardline_audit_client::{AuditedDb, Backlog};
    let pki = pki();
    let addr: SocketAddr =
        format!("127.0.0.1:{}", guardline_testkit::free_port().expect("port")).parse().expect("addr");
    let backlog = Arc::new(Backlog::new(10));
    let audited = AuditedDb::new(db.clone(), Default::default()).with_backlog(backlog.clone());
    let mut worker = OutboxWorker::new(db.clone(), client(&pki, addr)).with_backlog(backlog.clone());
    worker.min_backoff = Duration::from_millis(1);
    worker.max_backoff = Duration::from_millis(1);
    let write = |i: usize| audited.audit(EventBuilder::new("t1", "lead.update").resource("lead", &format!("l-{i}")));
    for i in 0..10 {
        write(i).await.expect("within the bound");
    }
    assert!(worker.deliver_once().await.expect("round").is_err(), "audit is down");
    assert_eq!(backlog.depth(), 10);
    let refused = write(10).await.expect_err("at the bound");
    let message = refused.to_string();
    assert_eq!(tonic::Status::from(refused).code(), tonic::Code::Unavailable);
    assert!(message.contains("10 events wait in the outbox (limit 10)"), "{message}");
    assert_eq!(pending(&db).await.expect("count"), 10, "nothing of the refused write was stored");

    let receiver = Receiver::default();
    let server = serve_audit(&pki, addr, receiver.clone()).await;
    for _ in 0..200 {
        if worker.deliver_once().await.expect("round").is_ok_and(|_| backlog.depth() == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(backlog.depth(), 0);
    write(11).await.expect("accepted again");
    assert_eq!(receiver.0.lock().expect("lock").len(), 10, "each once");
    server.cancel();
}

/// Two workers on one database, as two replicas of a service run them:
/// each claims its own rows, so every event reaches audit once.
async fn two_workers_on_one_database_deliver_each_event_once(db: DatabaseConnection) {
    let pki = pki();
    let addr: SocketAddr =
        format!("127.0.0.1:{}", guardline_testkit::free_port().expect("port")).parse().expect("addr");
    let receiver = Receiver::default();
    let server = serve_audit(&pki, addr, receiver.clone()).await;
    for i in 0..300 {
        let e = EventBuilder::new("t1", "lead.update").resource("lead", &format!("lead-{i}")).build();
        enqueue(&db, &e).await.expect("enqueue");
    }
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut w = OutboxWorker::new(db.clone(), client(&pki, addr));
            w.poll = Duration::from_millis(5);
            w.batch = 10;
            tokio::spawn(w.run(stop.clone()))
        })
        .collect();
    for _ in 0..400 {
        if pending(&db).await.expect("count") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(pending(&db).await.expect("count"), 0);
    assert_eq!(receiver.0.lock().expect("lock").len(), 300);
    assert_eq!(receiver.1.load(std::sync::atomic::Ordering::Relaxed), 0, "no event was sent twice");
    stop.cancel();
    for w in workers {
        w.await.expect("worker stops");
    }
    server.cancel();
}

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let dir = tempfile::tempdir().expect("tmp");
                let db = super::migrate(format!("sqlite://{}", dir.path().join("o.db").display())).await;
                super::$name(db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                let pg = super::Postgres::shared().await.expect("postgres");
                let db = super::migrate(pg.database().await.expect("db")).await;
                super::$name(db).await;
            })*
        }
    };
}

store_suite!(
    delivers_everything_once_audit_is_back,
    synchronous_append_refuses_while_audit_is_down,
    a_refused_event_is_parked_and_does_not_hold_back_the_rest,
    two_workers_on_one_database_deliver_each_event_once,
    writes_are_refused_past_the_bound_until_audit_catches_up,
);
