//! Import throughput: `Vault::import` (parse and normalise numbers, blind
//! index, record key, five sealed fields, record MAC, audit outbox) next to
//! the same rows stored in plaintext in the same table with the same
//! transaction per row, and next to encrypting each field with one Vault
//! (OpenBao) transit call, in the same run.
//!
//! Run: `cargo bench -p guardline-lead-vault --bench import`
//! (the transit line needs OpenBao: `scripts/test-deps.sh` installs it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use guardline_audit_client::{AuditClient, EventBuilder};
use guardline_authz::Subject;
use guardline_lead_vault::service::{Address, LeadInput, Vault};
use guardline_lead_vault::store::{lead, phone_index};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};

const ROWS: usize = 1_000;
const TRANSIT_ROWS: usize = 200;

fn input(i: usize) -> LeadInput {
    LeadInput {
        phones: vec![format!("+86 139 {:04} {:04}", i / 10_000, i % 10_000)],
        name: "张三丰".into(),
        address: Address {
            province: "广东省".into(),
            city: "深圳市".into(),
            district: "南山区".into(),
            street: format!("科技园路{i}号"),
        },
        needs: "wants a quote for car insurance, family of four, two cars".into(),
        notes: "prefers calls after 6pm; spoke to spouse last time".into(),
        source: "web".into(),
        ..Default::default()
    }
}

async fn open_db(dir: &std::path::Path, name: &str) -> DatabaseConnection {
    let url = format!("sqlite://{}", dir.join(name).display());
    let args =
        guardline_runtime::args::DatabaseArgs { database_url: url, database_max_connections: 2, database_schema: None };
    guardline_runtime::storage::open::<guardline_lead_vault::store::Migrator>(&args).await.expect("db")
}

/// One transaction per row: the lead row with clear bytes, its phone index
/// row and its audit outbox entry. `seal` turns each clear field into what is
/// stored (identity for the plaintext baseline, a transit call for the other).
async fn store_rows<F, Fut>(db: &DatabaseConnection, tenant: &str, offset: usize, rows: usize, seal: F)
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Vec<u8>>,
{
    for i in offset..offset + rows {
        let l = input(i);
        let phone = l.phones[0].replace(' ', "");
        let id = format!("lead-{i}");
        let row = lead::Model {
            id: id.clone(),
            tenant_id: tenant.into(),
            owner_id: "u1".into(),
            team_id: String::new(),
            status: "new".into(),
            version: 1,
            source: l.source.clone(),
            region: "CN".into(),
            time_zone: String::new(),
            tags: "[]".into(),
            key_data_key_id: String::new(),
            key_sealed: None,
            phones_sealed: seal(phone.clone().into_bytes()).await,
            name_sealed: seal(l.name.into_bytes()).await,
            address_sealed: seal(serde_json::to_vec(&l.address.street).expect("json")).await,
            needs_sealed: seal(l.needs.into_bytes()).await,
            notes_sealed: seal(l.notes.into_bytes()).await,
            mac: Vec::new(),
            created_at: chrono::Utc::now(),
        };
        let txn = guardline_runtime::storage::write_txn(db).await.expect("txn");
        phone_index::Entity::insert(phone_index::ActiveModel {
            tenant_id: Set(tenant.into()),
            blind_index: Set(phone.into_bytes()),
            lead_id: Set(id.clone()),
            position: Set(0),
        })
        .exec(&txn)
        .await
        .expect("index");
        lead::Entity::insert(lead::ActiveModel::from(row)).exec(&txn).await.expect("lead");
        let event = EventBuilder::new(tenant, "lead.create").actor("u1", "").resource("lead", &id);
        guardline_audit_client::enqueue(&txn, &event.build()).await.expect("outbox");
        txn.commit().await.expect("commit");
    }
}

fn rate(rows: usize, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    guardline_runtime::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tmp");
    let ca = guardline_runtime::devca::DevCa::open_or_create(&dir.path().join("pki"), "guardline.local", "guardline")
        .expect("ca");
    let tls = guardline_runtime::tls::TlsMaterial::load(ca.issue("lead-vault").expect("cert")).expect("tls");
    // Never reached: import queues audit events in the outbox.
    let audit = AuditClient::new(
        guardline_runtime::connect("https://localhost:9", tls).expect("channel"),
        Duration::from_secs(1),
    );

    let sealed_db = open_db(dir.path(), "sealed.db").await;
    let keyring = guardline_keys::local::LocalKeyring::open(
        &dir.path().join("k.json"),
        guardline_keys::SecretKey::generate().expect("key"),
    )
    .expect("keyring");
    let envelope =
        Arc::new(guardline_keys::Envelope::new(Arc::new(keyring), sealed_db.clone(), Duration::from_secs(300)));
    let store = guardline_lead_vault::store::Store::new(guardline_audit_client::AuditedDb::new(
        sealed_db,
        Arc::new(tokio::sync::Notify::new()),
    ));
    let vault = Vault::new(store, envelope, audit);
    let who = Subject::from_claims("t1", "u1", &[], &["lead.write:tenant".into()]);
    let plain_db = open_db(dir.path(), "plain.db").await;
    // Warm-up: creates the tenant's keys and secrets, and both files.
    vault.import(&who, "t1", vec![(0, input(ROWS * 10))]).await.expect("warm-up");
    store_rows(&plain_db, "t1", ROWS * 10, 1, |b| async move { b }).await;

    let (mut plain, mut sealed) = (Duration::ZERO, Duration::ZERO);
    let half = ROWS / 2;
    // Interleaved halves so that drift on a noisy machine hits both alike.
    for part in 0..2 {
        let start = Instant::now();
        store_rows(&plain_db, "t1", part * half, half, |b| async move { b }).await;
        plain += start.elapsed();
        let rows: Vec<(u64, LeadInput)> = (part * half..(part + 1) * half).map(|i| (i as u64, input(i))).collect();
        let start = Instant::now();
        let report = vault.import(&who, "t1", rows).await.expect("import");
        sealed += start.elapsed();
        assert_eq!(report.imported as usize, half, "every row imported");
    }
    println!("import of {ROWS} leads, SQLite, one transaction per row:");
    println!("  plaintext rows (baseline)            {:>8.0} rows/s", rate(ROWS, plain));
    println!("  Vault::import, envelope encryption   {:>8.0} rows/s", rate(ROWS, sealed));
    println!("  ratio encrypted / baseline time      {:>8.2}", sealed.as_secs_f64() / plain.as_secs_f64());

    match guardline_testkit::OpenBao::shared().await {
        Err(e) => println!("  transit per field: skipped ({e})"),
        Ok(bao) => {
            let mount = bao.transit_mount().await.expect("mount");
            let settings = vaultrs::client::VaultClientSettingsBuilder::default()
                .address(&bao.addr)
                .token(&bao.token)
                .build()
                .expect("settings");
            let client = Arc::new(vaultrs::client::VaultClient::new(settings).expect("client"));
            vaultrs::transit::key::create(&*client, &mount, "t1", None).await.expect("key");
            let transit_db = open_db(dir.path(), "transit.db").await;
            let seal = |b: Vec<u8>| {
                let (client, mount) = (client.clone(), mount.clone());
                async move {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(b);
                    let r = vaultrs::transit::data::encrypt(&*client, &mount, "t1", &b64, None).await.expect("encrypt");
                    r.ciphertext.into_bytes()
                }
            };
            let start = Instant::now();
            store_rows(&transit_db, "t1", 0, TRANSIT_ROWS, seal).await;
            let transit = start.elapsed();
            // The baseline again, at the same size, right after.
            let start = Instant::now();
            store_rows(&plain_db, "t1", ROWS, TRANSIT_ROWS, |b| async move { b }).await;
            let plain2 = start.elapsed();
            println!("transit call per field (5 per row), {TRANSIT_ROWS} rows, local OpenBao over HTTP:");
            println!("  plaintext rows (baseline)            {:>8.0} rows/s", rate(TRANSIT_ROWS, plain2));
            println!("  one transit encrypt per field        {:>8.0} rows/s", rate(TRANSIT_ROWS, transit));
            println!("  ratio transit / baseline time        {:>8.2}", transit.as_secs_f64() / plain2.as_secs_f64());
            println!(
                "  ratio transit / envelope time        {:>8.2}",
                (transit.as_secs_f64() / TRANSIT_ROWS as f64) / (sealed.as_secs_f64() / ROWS as f64)
            );
        }
    }
}
