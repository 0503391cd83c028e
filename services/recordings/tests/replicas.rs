//! Two recordings replicas on one database and one object store: an upload
//! in flight in one is safe from the other's sweep while its replica renews
//! its liveness lease, and is swept, object and row, once that lease ran
//! out (the replica died).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guardline_recordings::domain::recording::Header;
use guardline_recordings::service::Recordings;
use guardline_recordings::store::Store;
use guardline_runtime::args::DatabaseArgs;
use guardline_runtime::clock::ManualClock;
use guardline_testmesh::{Keys, TestMesh};

async fn replica(t: &TestMesh, objects: &std::path::Path, clock: &ManualClock) -> (Arc<Recordings>, Store) {
    let args = DatabaseArgs {
        database_url: t.database("recordings").to_owned(),
        database_max_connections: 2,
        database_schema: None,
    };
    let db = guardline_runtime::storage::open::<guardline_recordings::store::Migrator>(&args).await.expect("db");
    let provider = t.keys().provider(false).await.expect("keys");
    let envelope = Arc::new(guardline_keys::Envelope::new(provider, db.clone(), Duration::from_secs(60)));
    let store = Store::new(guardline_audit_client::AuditedDb::new(db, Default::default()));
    let recordings =
        Recordings::new(store.clone(), envelope, guardline_recordings::args::local(objects).expect("store"))
            .with_local_root(objects.to_owned())
            .with_clock(clock.clock())
            .with_idle_timeout(Duration::from_secs(300));
    (Arc::new(recordings), store)
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

async fn an_upload_is_swept_only_once_its_replica_died(postgres: bool) {
    let t = TestMesh::new(postgres, Keys::Local, |_| {}).await;
    let objects = tempfile::tempdir().expect("objects");
    let clock = ManualClock::default();
    let (a, store) = replica(&t, objects.path(), &clock).await;
    let (b, _) = replica(&t, objects.path(), &clock).await;
    a.heartbeat().await.expect("a alive");
    b.heartbeat().await.expect("b alive");

    // An upload in flight in a: one chunk sent, the rest still to come.
    let (tx, rx) = tokio::sync::mpsc::channel::<guardline_runtime::Result<Bytes>>(4);
    tx.send(Ok(Bytes::from(vec![3u8; 100_000]))).await.expect("chunk");
    let header = Header {
        tenant: "t1".into(),
        call_id: "c1".into(),
        lead_id: "l1".into(),
        agent_id: "u1".into(),
        started_at: clock.clock().now(),
        duration_seconds: 60,
        format: "audio/wav".into(),
        ..Default::default()
    };
    let uploader = a.clone();
    let upload = tokio::spawn(async move {
        let audio = tokio_stream::wrappers::ReceiverStream::new(rx);
        uploader.upload("bridge", header, audio, || None).await
    });
    let mut in_flight = 0;
    for _ in 0..250 {
        in_flight = store.uploading().await.expect("uploading").len();
        if in_flight == 1 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight, 1, "the upload began");

    assert_eq!(b.sweep(false).await.expect("sweep"), 0, "a is alive: its upload stays");
    if postgres {
        // (SQLite is one process's file: there, a starting process sweeps
        // every upload it finds, as `guardline up`'s test shows.)
        assert_eq!(b.sweep(true).await.expect("sweep"), 0, "also when b starts");
    }
    assert_eq!(store.uploading().await.expect("uploading").len(), 1);

    // a dies: it renews no more. At the lease's term b sweeps what it left.
    upload.abort();
    clock.advance(chrono::Duration::seconds(31));
    b.heartbeat().await.expect("b alive");
    assert_eq!(b.sweep(false).await.expect("sweep"), 1);
    assert!(store.uploading().await.expect("uploading").is_empty());
    assert!(files(objects.path()).is_empty(), "no object or staging file left: {:?}", files(objects.path()));
    drop(tx);
}

guardline_testkit::on_both_stores!(an_upload_is_swept_only_once_its_replica_died);
