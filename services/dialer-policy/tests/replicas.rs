//! Two dialer replicas on one database: a national registry copy imported
//! through one reaches the other (whose disk is its own), and the same
//! missing calendar reported by both at once is recorded once, the later
//! transaction learning it lost instead of failing the call with a
//! duplicate key (seen in the fault suite as an INTERNAL CheckCall).

use std::time::Duration;

use guardline_audit_client::AuditedDb;
use guardline_dialer_policy::store::{Migrator, compliance};
use guardline_runtime::args::DatabaseArgs;
use guardline_testmesh::{Keys, TestMesh};

async fn a_calendar_is_reported_once_by_racing_replicas(postgres: bool) {
    let t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    let args = DatabaseArgs {
        database_url: t.database("dialer-policy").to_owned(),
        database_max_connections: 2,
        database_schema: None,
    };
    let replica = || async {
        let db = guardline_runtime::storage::open::<Migrator>(&args).await.expect("db");
        AuditedDb::new(db, Default::default())
    };
    let (a, b) = (replica().await, replica().await);
    let key = ("t1".to_owned(), "cn".to_owned(), 2027);
    let now = chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("time");
    let first = a.begin().await.expect("txn");
    assert!(compliance::calendar_report(&first, &key, now).await.expect("report"));
    // The other replica's call, while the first has not committed.
    let racing = tokio::spawn(async move {
        let second = b.begin().await.expect("txn");
        let won = compliance::calendar_report(&second, &key, now).await.expect("no duplicate key");
        b.commit(second, []).await.expect("commit");
        won
    });
    // Time for the racing call to block on the first (the assertions hold
    // whether it did or not: without the fix it fails either way).
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.commit(first, []).await.expect("commit");
    assert!(!racing.await.expect("task"), "reported once, by the first");
}

async fn a_registry_copy_imported_through_one_replica_reaches_the_others(postgres: bool) {
    use guardline_dialer_policy::domain::decision::Verdict;
    use guardline_dialer_policy::domain::policy::Policy;
    use guardline_dialer_policy::service::registry::Registry;
    let t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    let args = DatabaseArgs {
        database_url: t.database("dialer-policy").to_owned(),
        database_max_connections: 2,
        database_schema: None,
    };
    let store = || async {
        AuditedDb::new(guardline_runtime::storage::open::<Migrator>(&args).await.expect("db"), Default::default())
    };
    let (sa, sb) = (store().await, store().await);
    let (da, db) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
    let a = Registry::load(&sa, da.path().to_owned()).await.expect("a");
    let b = Registry::load(&sb, db.path().to_owned()).await.expect("b");
    let now = chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("time");
    let day = now.date_naive();
    a.install(&sa, "US", day, vec![12_015_550_123, 12_015_550_124], now).await.expect("import through a");

    let policy = Policy::default().effective();
    let callee = guardline_phone::Phone::parse("+12015550123", None).expect("number");
    let before = b.rule(&callee, now, &policy);
    assert!(before.reason.starts_with("no national registry copy"), "b has no copy yet: {before:?}");
    assert_eq!(b.refresh(&sb).await.expect("refresh"), 1);
    let after = b.rule(&callee, now, &policy);
    assert_eq!(after.outcome, Verdict::Deny);
    assert!(after.reason.starts_with("on the national registry copy"), "b now has a's copy: {after:?}");
    assert_eq!(b.refresh(&sb).await.expect("refresh"), 0, "loaded once");
    // A replica started afterwards, on an empty disk, loads it at start.
    let dc = tempfile::tempdir().expect("c");
    let c = Registry::load(&store().await, dc.path().to_owned()).await.expect("c");
    assert_eq!(c.status().len(), 1);
    // A newer copy replaces it everywhere, and the older file goes.
    a.install(&sa, "US", day, vec![12_015_550_124], now).await.expect("second import");
    assert_eq!(b.refresh(&sb).await.expect("refresh"), 1);
    let newer = b.rule(&callee, now, &policy);
    assert!(newer.reason.starts_with("not on the national registry copy"), "off the newer copy: {newer:?}");
    assert_eq!(std::fs::read_dir(db.path()).expect("dir").count(), 1, "one copy file left on b");
}

guardline_testkit::on_both_stores!(
    a_calendar_is_reported_once_by_racing_replicas,
    a_registry_copy_imported_through_one_replica_reaches_the_others
);
