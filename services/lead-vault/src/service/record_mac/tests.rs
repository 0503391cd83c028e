//! The record MAC's formats on their own, and a table holding rows of both
//! formats moved to the second on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use guardline_audit_client::{AuditClient, AuditedDb};
use guardline_authz::Subject;

use super::*;
use crate::service::LeadInput;

fn row() -> lead::Model {
    lead::Model {
        id: "l1".into(),
        tenant_id: "t1".into(),
        owner_id: "u1".into(),
        team_id: "team".into(),
        status: "active".into(),
        version: 3,
        source: "import".into(),
        region: "US".into(),
        time_zone: "America/New_York".into(),
        tags: "[]".into(),
        key_data_key_id: "dk1".into(),
        key_sealed: None,
        phones_sealed: vec![],
        name_sealed: vec![],
        address_sealed: vec![],
        needs_sealed: vec![],
        notes_sealed: vec![],
        mac: vec![],
        created_at: chrono::DateTime::UNIX_EPOCH,
    }
}

#[test]
fn format_two_covers_the_time_zone_and_region() {
    let key = [7u8; 32];
    let mut r = row();
    r.mac = v2(&key, &r);
    assert!(verify(&key, &r, false));
    for edit in [
        |r: &mut lead::Model| r.time_zone = "America/Los_Angeles".into(),
        |r: &mut lead::Model| r.region = "CN".into(),
        |r: &mut lead::Model| r.tags = "[\"vip\"]".into(),
        |r: &mut lead::Model| r.owner_id = "u2".into(),
        |r: &mut lead::Model| r.version = 2,
    ] {
        let mut edited = r.clone();
        edit(&mut edited);
        assert!(!verify(&key, &edited, true), "an edited column is caught");
    }
}

#[test]
fn format_one_verifies_only_while_allowed_and_never_covers_the_zone() {
    let key = [7u8; 32];
    let mut r = row();
    r.mac = v1(&key, &r);
    assert!(verify(&key, &r, true));
    assert!(!verify(&key, &r, false), "after the upgrade format 1 is refused");
    let mut moved = r.clone();
    moved.time_zone = "Asia/Shanghai".into();
    assert!(verify(&key, &moved, true), "format 1 never covered the zone: why it must go");
    assert!(!verify(&[8u8; 32], &r, true), "another key");
    r.mac = vec![V2; 32];
    assert!(!verify(&key, &r, true), "a truncated format 2 is no format 1");
}

/// A vault on its own database (SQLite file or a fresh PostgreSQL
/// database) with a local keyring; audit is never reached (creation queues
/// its events in the outbox).
async fn vault(postgres: bool, dir: &std::path::Path) -> Vault {
    guardline_runtime::tls::install_crypto_provider();
    let url = if postgres {
        guardline_testkit::Postgres::shared().await.expect("pg").database().await.expect("db")
    } else {
        format!("sqlite://{}", dir.join("vault.db").display())
    };
    let args =
        guardline_runtime::args::DatabaseArgs { database_url: url, database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::open::<crate::store::Migrator>(&args).await.expect("db");
    let ca =
        guardline_runtime::devca::DevCa::open_or_create(&dir.join("pki"), "guardline.local", "guardline").expect("ca");
    let tls = guardline_runtime::tls::TlsMaterial::load(ca.issue("lead-vault").expect("cert")).expect("tls");
    let audit = AuditClient::new(
        guardline_runtime::connect("https://localhost:9", tls).expect("channel"),
        Duration::from_secs(1),
    );
    let keyring = guardline_keys::local::LocalKeyring::open(
        &dir.join("k.json"),
        guardline_keys::SecretKey::generate().expect("key"),
    )
    .expect("keyring");
    let envelope = Arc::new(guardline_keys::Envelope::new(Arc::new(keyring), db.clone(), Duration::from_secs(300)));
    let store = crate::store::Store::new(AuditedDb::new(db, Arc::new(tokio::sync::Notify::new())));
    Vault::new(store, envelope, audit)
}

async fn stored(v: &Vault, id: &str) -> lead::Model {
    v.store.tenant_lead("t1", id).await.expect("read").expect("row")
}

/// Writes a row behind the service's back, as a database insider would.
async fn plant(v: &Vault, row: lead::Model) {
    v.store.overwrite_lead(row).await.expect("write behind the service");
}

async fn a_table_with_both_formats_moves_to_the_second(postgres: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let v = vault(postgres, dir.path()).await;
    let who = Subject::from_claims("t1", "u1", &[], &["lead.write:tenant".into(), "lead.read:tenant".into()]);
    let mut ids = Vec::new();
    for n in ["+8613812345671", "+8613812345672", "+8613812345673"] {
        let input = LeadInput { phones: vec![n.into()], name: "张三".into(), ..Default::default() };
        ids.push(v.create(&who, "t1", input).await.expect("create").row.id);
    }
    // Two rows as an older release wrote them (format 1), one as today.
    let key = v.tenant_secret("t1", super::super::MAC_KEY).await.expect("mac key");
    for id in &ids[..2] {
        let mut row = stored(&v, id).await;
        row.mac = v1(&key, &row);
        plant(&v, row).await;
    }
    // One of them was also edited behind the service before the move.
    plant(&v, lead::Model { owner_id: "intruder".into(), ..stored(&v, &ids[1]).await }).await;
    for id in [&ids[0], &ids[2]] {
        v.get(&who, "t1", id).await.expect("both formats verify during the move");
    }
    assert!(v.get(&who, "t1", &ids[1]).await.is_err(), "an edited format-1 row fails");

    assert_eq!(v.upgrade_macs().await.expect("upgrade"), (1, 1), "one moved, the edited one refused");
    let moved = stored(&v, &ids[0]).await;
    assert_eq!((moved.mac.len(), moved.mac[0]), (33, 2));
    for id in [&ids[0], &ids[2]] {
        v.get(&who, "t1", id).await.expect("format 2 verifies");
    }
    // After the move a format-1 MAC vouches for nothing, even a genuine
    // one over a row whose time zone was then moved.
    let mut planted = stored(&v, &ids[2]).await;
    planted.time_zone = "America/Los_Angeles".into();
    planted.mac = v1(&key, &planted);
    plant(&v, planted).await;
    assert!(v.get(&who, "t1", &ids[2]).await.is_err(), "a planted format-1 MAC is refused");
    assert_eq!(v.upgrade_macs().await.expect("again"), (0, 2), "and no later pass blesses it");
}

guardline_testkit::on_both_stores!(a_table_with_both_formats_moves_to_the_second);
