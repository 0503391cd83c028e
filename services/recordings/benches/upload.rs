//! Upload throughput: the full encrypted upload (STREAM AES-256-GCM chunks,
//! SHA-256, multipart write, metadata) next to a plain multipart write of the
//! same bytes to the same local store, in the same run.
//!
//! Run: `cargo bench -p guardline-recordings --bench upload`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use guardline_recordings::service::{Header, Recordings};
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

const MIB: usize = 1 << 20;
const SIZE: usize = 64 * MIB;
const PIECE: usize = 256 * 1024;
const ROUNDS: usize = 3;

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    guardline_runtime::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("store"));
    let audio: Vec<Bytes> = (0..SIZE / PIECE).map(|i| Bytes::from(vec![(i % 251) as u8; PIECE])).collect();

    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let args =
        guardline_runtime::args::DatabaseArgs { database_url: url, database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::open::<guardline_recordings::store::Migrator>(&args).await.expect("db");
    let keyring = guardline_keys::local::LocalKeyring::open(
        &dir.path().join("k.json"),
        guardline_keys::SecretKey::generate().expect("key"),
    )
    .expect("keyring");
    let envelope = Arc::new(guardline_keys::Envelope::new(Arc::new(keyring), db.clone(), Duration::from_secs(60)));
    let db = guardline_recordings::store::Store::new(guardline_audit_client::AuditedDb::new(
        db,
        Arc::new(tokio::sync::Notify::new()),
    ));
    let recordings = Recordings::new(db, envelope, store.clone());

    let (mut plain, mut sealed) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let start = Instant::now();
        let upload =
            store.put_multipart(&object_store::path::Path::from(format!("plain/{round}"))).await.expect("multipart");
        let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * MIB);
        for piece in &audio {
            w.wait_for_capacity(4).await.expect("capacity");
            w.write(piece);
        }
        w.finish().await.expect("finish");
        plain += start.elapsed();

        let header = Header {
            tenant: "t1".into(),
            call_id: format!("c{round}"),
            lead_id: "l1".into(),
            agent_id: "u1".into(),
            started_at: chrono::Utc::now(),
            duration_seconds: 600,
            format: "audio/wav".into(),
            ..Default::default()
        };
        let start = Instant::now();
        let stream = futures::stream::iter(audio.iter().cloned().map(Ok));
        recordings.upload("bench", header, stream, || Some((SIZE as u64, vec![]))).await.expect("upload");
        sealed += start.elapsed();
    }
    let total = SIZE * ROUNDS;
    println!("upload of {} MiB x {ROUNDS}, local filesystem store:", SIZE / MIB);
    println!("  plain multipart write (baseline)   {:>8.1} MB/s", mb_per_s(total, plain));
    println!("  encrypted upload                   {:>8.1} MB/s", mb_per_s(total, sealed));
    println!("  ratio encrypted / baseline time    {:>8.2}", sealed.as_secs_f64() / plain.as_secs_f64());
}
