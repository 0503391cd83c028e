//! Several audit replicas on one database: a tenant's log is sequenced
//! through its row in `audit_tree`, so concurrent appends from two replicas
//! extend one tree (every signed head verifies against the stored order),
//! a replica that dies mid-batch leaves nothing, and a log written by a
//! version that kept no sequencer is adopted. Detection runs under a lease
//! in one replica over every replica's events, and passes on when its
//! holder dies.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use guardline_audit::domain::alerts::Thresholds;
use guardline_audit::domain::canonical::Event;
use guardline_audit::domain::egress::Egress;
use guardline_audit::domain::merkle::{Tree, leaf_hash, verify_consistency};
use guardline_audit::domain::verify::Finding;
use guardline_audit::service::Log;
use guardline_audit::service::alerting::Alerting;
use guardline_audit::store::log::Store;
use guardline_audit::store::tree::{sequencer, tile};
use guardline_runtime::args::DatabaseArgs;
use guardline_runtime::clock::ManualClock;
use guardline_runtime::lease::Leases;
use guardline_testmesh::{Keys, TestMesh};
use sea_orm::{DatabaseConnection, EntityTrait};

struct Db {
    _t: TestMesh,
    args: DatabaseArgs,
    db: DatabaseConnection,
    keys: guardline_keys::args::KeysArgs,
}

async fn database(postgres: bool) -> Db {
    let t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    let args = DatabaseArgs {
        database_url: t.database("audit").to_owned(),
        database_max_connections: 4,
        database_schema: None,
    };
    let db = guardline_runtime::storage::open::<guardline_audit::store::Migrator>(&args).await.expect("db");
    Db { keys: t.keys().clone(), _t: t, args, db }
}

impl Db {
    fn envelope(&self, db: &DatabaseConnection) -> impl std::future::Future<Output = Arc<guardline_keys::Envelope>> {
        let (keys, db) = (self.keys.clone(), db.clone());
        async move {
            let provider = keys.provider(false).await.expect("keys");
            Arc::new(guardline_keys::Envelope::new(provider, db, Duration::from_secs(60)))
        }
    }

    /// A replica dated by `clock`.
    async fn replica_on(&self, clock: &ManualClock) -> Arc<Log> {
        let db = guardline_runtime::storage::connect(&self.args).await.expect("a pool");
        let envelope = self.envelope(&db).await;
        Arc::new(Log::open_on(Store::new(db), envelope, clock.clock(), None).await.expect("log"))
    }

    /// A replica's alerting (and its leases), on its own pool.
    async fn alerting(&self, clock: &ManualClock) -> (Arc<Alerting>, Leases) {
        let db = guardline_runtime::storage::connect(&self.args).await.expect("a pool");
        let store = Store::new(db.clone());
        let egress = Egress { allow: vec!["127.0.0.0/8".parse().expect("net")], allow_http: true };
        let alerting = Alerting::new(store.clone(), self.envelope(&db).await, None)
            .expect("alerting")
            .with_clock(clock.clock())
            .with_egress(egress)
            .expect("egress");
        (Arc::new(alerting), store.leases(clock.clock()))
    }

    /// A replica: its own pool, key cache and trees, on the shared database.
    async fn replica(&self) -> Arc<Log> {
        let db = guardline_runtime::storage::connect(&self.args).await.expect("a pool");
        let envelope = self.envelope(&db).await;
        Arc::new(Log::open(Store::new(db), envelope).await.expect("log"))
    }
}

fn event(tenant: &str, id: String) -> Event {
    Event {
        id,
        tenant_id: tenant.into(),
        time: chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"),
        actor_user: "u-1".into(),
        actor_service: "spiffe://guardline.local/ns/guardline/sa/lead-vault".into(),
        action: "lead.update".into(),
        resource_type: "lead".into(),
        resource_id: "lead-1".into(),
        outcome: "allowed".into(),
        ..Default::default()
    }
}

/// `batches` batches of 20 events, alternating two tenants within a batch.
async fn load(log: Arc<Log>, name: &'static str, batches: usize) {
    for b in 0..batches {
        let events = (0..20).map(|i| event(["t1", "t2"][i % 2], format!("{name}-{b}-{i}"))).collect();
        let (stored, dups) = log.append(events).await.expect("every append succeeds");
        assert_eq!((stored.len(), dups.len()), (20, 0));
    }
}

/// The stored log of `tenant` as an independent in-memory tree.
async fn reference(log: &Log, tenant: &str) -> Tree {
    Tree::from_leaves(log.records(tenant).await.expect("records").iter().map(|r| leaf_hash(&r.entry)))
}

async fn two_replicas_extend_one_tree(postgres: bool) {
    let db = database(postgres).await;
    let (a, b) = (db.replica().await, db.replica().await);
    // Both replicas append to both tenants at once: 300 events each, across tiles.
    let (ra, rb) = tokio::join!(tokio::spawn(load(a.clone(), "a", 15)), tokio::spawn(load(b.clone(), "b", 15)));
    ra.expect("replica a");
    rb.expect("replica b");
    for tenant in ["t1", "t2"] {
        // Every head each replica signed verifies against the stored order.
        assert_eq!(a.verify(tenant).await.expect("verify"), Finding::Intact { size: 300 }, "{tenant}");
        let whole = reference(&a, tenant).await;
        // Either replica answers for the whole tree, whoever appended.
        for log in [&a, &b] {
            let head = log.head(tenant).await.expect("head").expect("a head");
            assert_eq!(head.head.root, whole.root(300).expect("root"));
            let id = if tenant == "t1" { "a-3-4" } else { "b-7-5" };
            let (idx, path) = log.inclusion(tenant, id, 300).await.expect("inclusion");
            assert_eq!(path, whole.inclusion_proof(idx, 300).expect("reference"));
            let proof = log.consistency(tenant, 37, 300).await.expect("consistency");
            let old = whole.root(37).expect("root");
            assert!(verify_consistency((37, &old), (300, &head.head.root), &proof));
        }
    }

    // A replica dies holding t1's sequencer mid-batch: the other waits,
    // then continues from what was committed.
    let store = Store::new(db.db.clone());
    let dying = store.begin_append().await.expect("txn");
    assert_eq!(dying.lock("t1").await.expect("lock"), 300);
    dying.set_size("t1", 310).await.expect("uncommitted");
    let survivor = tokio::spawn(load(b.clone(), "c", 1));
    tokio::task::yield_now().await;
    drop(dying);
    survivor.await.expect("survivor");
    assert_eq!(b.verify("t1").await.expect("verify"), Finding::Intact { size: 310 });
    assert_eq!(store.committed_size("t1").await.expect("size"), 310);
}

async fn a_log_without_a_sequencer_is_adopted(postgres: bool) {
    let db = database(postgres).await;
    let a = db.replica().await;
    load(a.clone(), "a", 30).await;
    // As an older version left it: entries only, no sequencer, no tiles.
    sequencer::Entity::delete_many().exec(&db.db).await.expect("no sequencer");
    tile::Entity::delete_many().exec(&db.db).await.expect("no tiles");
    let b = db.replica().await;
    let whole = reference(&b, "t1").await;
    let head = b.head("t1").await.expect("head").expect("a head");
    assert_eq!((head.head.tree_size, head.head.root), (300, whole.root(300).expect("root")));
    let (idx, path) = b.inclusion("t1", "a-0-0", 300).await.expect("inclusion");
    assert_eq!(path, whole.inclusion_proof(idx, 300).expect("reference"));
    assert_eq!(tile::Entity::find().all(&db.db).await.expect("tiles").len(), 1, "t1's, adopted on first read");
    load(b.clone(), "b", 1).await;
    assert_eq!(tile::Entity::find().all(&db.db).await.expect("tiles").len(), 2, "t2's, adopted on append");
    assert_eq!(b.verify("t2").await.expect("verify"), Finding::Intact { size: 310 });
}

fn export(actor: &str, count: u64) -> Event {
    let mut e = event("t9", format!("export-{actor}"));
    e.action = "lead.export".into();
    e.actor_user = actor.into();
    e.details.insert("count".into(), count.to_string());
    e
}

const TERM: Duration = Duration::from_secs(10);

async fn detection_runs_in_one_replica_and_passes_on(postgres: bool) {
    let db = database(postgres).await;
    let clock = ManualClock::starting_at(chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"));
    let (a, la) = db.alerting(&clock).await;
    let (b, lb) = db.alerting(&clock).await;
    let (url, seen) = guardline_testkit::webhook_receiver(false).await.expect("receiver");
    let thresholds = Thresholds { bulk_records: 100, ..Default::default() };
    a.configure("t9", thresholds, vec![(url, "0123456789abcdef-secret".into())]).await.expect("configure");
    let (mut watch_a, mut watch_b) = (a.subscribe(), b.subscribe());
    a.relay().await.expect("relay");
    b.relay().await.expect("relay");
    // Each log replica appends one bulk export; each alerting replica runs a round at once.
    let (log_a, log_b) = (db.replica().await, db.replica().await);
    log_a.append(vec![export("u1", 150)]).await.expect("append");
    log_b.append(vec![export("u2", 150)]).await.expect("append");
    let (ra, rb) = tokio::join!(a.round(&la, TERM), b.round(&lb, TERM));
    let (ra, rb) = (ra.expect("round a"), rb.expect("round b"));
    assert!(ra ^ rb, "one replica holds the lease: {ra} {rb}");
    let (again_a, again_b) = tokio::join!(a.round(&la, TERM), b.round(&lb, TERM));
    assert!(again_a.expect("a") ^ again_b.expect("b"), "the holder keeps it");
    let alerts = a.list("t9", None, None, 100).await.expect("alerts");
    let mut actors: Vec<&str> = alerts.iter().map(|x| x.actor_user.as_str()).collect();
    actors.sort();
    assert_eq!(actors, ["u1", "u2"], "each replica's event raised one alert, once");
    let delivered: Vec<String> = seen.lock().expect("seen").iter().map(|(_, body)| body.clone()).collect();
    assert_eq!(delivered.len(), 2, "each alert sent once");
    // Every replica's watchers hear of both, whoever raised them.
    for (alerting, watch) in [(&a, &mut watch_a), (&b, &mut watch_b)] {
        assert_eq!(alerting.relay().await.expect("relay"), 2);
        let heard: HashSet<String> = (0..2).map(|_| watch.try_recv().expect("heard").id).collect();
        assert_eq!(heard, alerts.iter().map(|x| x.id.clone()).collect());
    }

    // The holder dies. The other takes over at the lease's term, going on
    // from the stored cursor: the next event raises one alert, the old none.
    let (survivor, leases) = if ra { (&b, &lb) } else { (&a, &la) };
    log_a.append(vec![export("u3", 150)]).await.expect("append");
    assert!(!survivor.round(leases, TERM).await.expect("round"), "the lease has not run out");
    clock.advance(chrono::Duration::seconds(11));
    assert!(survivor.round(leases, TERM).await.expect("round"), "taken over at its term");
    let alerts = survivor.list("t9", None, None, 100).await.expect("alerts");
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0].actor_user, "u3");
    assert_eq!(seen.lock().expect("seen").len(), 3);
}

/// A head-signing key rotated in one replica signs in the others once they
/// have looked (every five seconds of appends), and the log verifies.
async fn a_key_rotated_in_one_replica_signs_in_all(postgres: bool) {
    let db = database(postgres).await;
    let clock = ManualClock::starting_at(chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"));
    let (a, b) = (db.replica_on(&clock).await, db.replica_on(&clock).await);
    let kid_of_last = |log: Arc<Log>| async move {
        log.records("t1").await.expect("records").last().map(|r| r.head_kid.clone()).expect("a record")
    };
    b.append(vec![event("t1", "k-0".into())]).await.expect("append");
    let first = kid_of_last(b.clone()).await;
    let rotated = a.rotate_signing_key("operator", "scheduled rotation").await.expect("rotate");
    assert_ne!(rotated.kid, first);
    b.append(vec![event("t1", "k-1".into())]).await.expect("append");
    assert_eq!(kid_of_last(b.clone()).await, first, "b has not looked yet");
    clock.advance(chrono::Duration::seconds(6));
    b.append(vec![event("t1", "k-2".into())]).await.expect("append");
    assert_eq!(kid_of_last(b.clone()).await, rotated.kid, "b signs with a's new key");
    assert_eq!(b.verify("t1").await.expect("verify"), Finding::Intact { size: 3 });
}

/// A tenant that fell silent is judged by its own delivery-gap threshold
/// (configured through any replica), not the default.
async fn a_quiet_tenants_own_gap_threshold_holds(postgres: bool) {
    let db = database(postgres).await;
    let clock = ManualClock::starting_at(chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"));
    let (a, la) = db.alerting(&clock).await;
    let (other, _) = db.alerting(&clock).await;
    let thresholds = Thresholds { delivery_gap_secs: 60, ..Default::default() };
    other.configure("t9", thresholds, vec![]).await.expect("configure through another replica");
    // An event a service relayed for another (the delivery the gap rule watches).
    let mut relayed = event("t9", "e-1".into());
    relayed.details.insert("acting_service".into(), "spiffe://guardline.local/ns/guardline/sa/call-platform".into());
    db.replica().await.append(vec![relayed]).await.expect("append");
    assert!(a.round(&la, TERM).await.expect("round"));
    clock.advance(chrono::Duration::seconds(61));
    assert!(a.round(&la, TERM).await.expect("round"));
    let alerts = a.list("t9", None, None, 10).await.expect("alerts");
    assert_eq!(alerts.iter().map(|x| x.rule.as_str()).collect::<Vec<_>>(), ["delivery_gap"], "after 61 s, not 900");
}

guardline_testkit::on_both_stores!(
    a_quiet_tenants_own_gap_threshold_holds,
    a_key_rotated_in_one_replica_signs_in_all,
    two_replicas_extend_one_tree,
    a_log_without_a_sequencer_is_adopted,
    detection_runs_in_one_replica_and_passes_on
);
