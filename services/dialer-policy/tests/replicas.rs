//! Two dialer replicas reporting the same missing calendar at once: the
//! report is recorded once, and the later transaction learns it lost
//! instead of failing the call with a duplicate key (seen in the fault
//! suite as an INTERNAL CheckCall).

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

guardline_testkit::on_both_stores!(a_calendar_is_reported_once_by_racing_replicas);
