//! One KeyProvider suite, run against the local keyring and a real OpenBao;
//! one Envelope suite, run against SQLite and a real PostgreSQL 15.

use std::sync::Arc;
use std::time::Duration;

use guardline_keys::local::LocalKeyring;
use guardline_keys::vault::{VaultAuth, VaultProvider};
use guardline_keys::{Envelope, Error, KeyProvider, SecretKey, WrappedKey, open_field, seal_field};
use guardline_testkit::{OpenBao, Postgres};
use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationTrait, MigratorTrait};

type Fixture = (Arc<dyn KeyProvider>, Box<dyn std::any::Any + Send>);

async fn local() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let keyring =
        LocalKeyring::open(&dir.path().join("keyring.json"), SecretKey::generate().expect("key")).expect("keyring");
    (Arc::new(keyring), Box::new(dir))
}

async fn openbao() -> Fixture {
    let bao = OpenBao::shared().await.expect("openbao");
    let mount = bao.transit_mount().await.expect("mount");
    let provider = VaultProvider::connect(&bao.addr, VaultAuth::Token(bao.token.clone()), &mount).await.expect("vault");
    (Arc::new(provider), Box::new(()))
}

async fn data_key_round_trip(p: Arc<dyn KeyProvider>) {
    p.ensure_tenant_key("t1").await.expect("create");
    p.ensure_tenant_key("t1").await.expect("create is idempotent");
    let (clear, wrapped) = p.generate_data_key("t1").await.expect("data key");
    assert_eq!(wrapped.version(), Some(1));
    assert!(!wrapped.0.contains(&hex(clear.expose())), "wrapped form does not hold the key");
    let unwrapped = p.unwrap("t1", &wrapped).await.expect("unwrap");
    assert_eq!(unwrapped.expose(), clear.expose());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn unknown_tenant_and_bad_ids_are_refused(p: Arc<dyn KeyProvider>) {
    assert!(p.generate_data_key("nobody").await.is_err(), "no key was created for this tenant");
    assert!(matches!(p.ensure_tenant_key("../etc").await, Err(Error::InvalidTenant)));
    assert!(matches!(p.ensure_tenant_key("").await, Err(Error::InvalidTenant)));
}

async fn rotation_keeps_old_wraps_readable(p: Arc<dyn KeyProvider>) {
    p.ensure_tenant_key("t1").await.expect("create");
    let (clear, old) = p.generate_data_key("t1").await.expect("data key");
    assert_eq!(p.rotate("t1").await.expect("rotate"), 2);
    let v = p.versions("t1").await.expect("versions");
    assert_eq!((v.latest, v.min_decryption), (2, 1));
    assert_eq!(p.unwrap("t1", &old).await.expect("old still opens").expose(), clear.expose());
    let (_, new) = p.generate_data_key("t1").await.expect("data key");
    assert_eq!(new.version(), Some(2), "new wraps use the latest version");
}

async fn rewrap_moves_to_the_latest_version(p: Arc<dyn KeyProvider>) {
    p.ensure_tenant_key("t1").await.expect("create");
    let (clear, old) = p.generate_data_key("t1").await.expect("data key");
    p.rotate("t1").await.expect("rotate");
    let rewrapped = p.rewrap("t1", &old).await.expect("rewrap");
    assert_eq!(rewrapped.version(), Some(2));
    assert_eq!(p.unwrap("t1", &rewrapped).await.expect("opens").expose(), clear.expose());
}

async fn min_decryption_version_retires_old_wraps(p: Arc<dyn KeyProvider>) {
    p.ensure_tenant_key("t1").await.expect("create");
    let (clear, old) = p.generate_data_key("t1").await.expect("data key");
    p.rotate("t1").await.expect("rotate");
    let rewrapped = p.rewrap("t1", &old).await.expect("rewrap");
    p.set_min_decryption_version("t1", 2).await.expect("raise min version");
    assert!(matches!(p.unwrap("t1", &old).await, Err(Error::VersionRetired(1))), "v1 wraps are unusable");
    assert_eq!(p.unwrap("t1", &rewrapped).await.expect("v2 opens").expose(), clear.expose());
}

async fn trimming_deletes_versions_below_the_minimum_only(p: Arc<dyn KeyProvider>) {
    p.ensure_tenant_key("t1").await.expect("create");
    p.rotate("t1").await.expect("v2");
    p.rotate("t1").await.expect("v3");
    let v = p.versions("t1").await.expect("versions");
    assert_eq!((v.latest, v.min_decryption), (3, 1));
    // Not above the minimum decryption version: a version that still decrypts stays.
    assert!(p.trim("t1", 2).await.is_err(), "v1 still decrypts");
    p.set_min_decryption_version("t1", 3).await.expect("raise");
    p.trim("t1", 2).await.expect("trim v1");
    p.trim("t1", 2).await.expect("trimming again to the same version changes nothing");
    // v1 is gone for good: the minimum cannot come back down to it; v2 is kept.
    assert!(p.set_min_decryption_version("t1", 1).await.is_err(), "v1 was deleted");
    p.set_min_decryption_version("t1", 2).await.expect("v2 is still there");
    assert_eq!(p.versions("t1").await.expect("versions").min_decryption, 2);
}

async fn a_wrap_of_one_tenant_does_not_open_under_another(p: Arc<dyn KeyProvider>) {
    p.ensure_tenant_key("t1").await.expect("create");
    p.ensure_tenant_key("t2").await.expect("create");
    let (_, wrapped) = p.generate_data_key("t1").await.expect("data key");
    assert!(p.unwrap("t2", &wrapped).await.is_err());
    assert!(p.unwrap("t1", &WrappedKey("gl:v1:AAAA".into())).await.is_err(), "garbage is refused");
}

macro_rules! provider_suite {
    ($($name:ident),* $(,)?) => {
        mod local_keyring {
            $(#[tokio::test] async fn $name() { let (p, _keep) = super::local().await; super::$name(p).await; })*
        }
        mod openbao_transit {
            $(#[tokio::test] async fn $name() { let (p, _keep) = super::openbao().await; super::$name(p).await; })*
        }
    };
}

provider_suite!(
    data_key_round_trip,
    unknown_tenant_and_bad_ids_are_refused,
    rotation_keeps_old_wraps_readable,
    rewrap_moves_to_the_latest_version,
    min_decryption_version_retires_old_wraps,
    trimming_deletes_versions_below_the_minimum_only,
    a_wrap_of_one_tenant_does_not_open_under_another,
);

#[tokio::test]
async fn the_keyring_survives_a_restart_and_refuses_a_wrong_master_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("keyring.json");
    let master = SecretKey::generate().expect("key");
    let first = LocalKeyring::open(&path, master.clone()).expect("open");
    first.ensure_tenant_key("t1").await.expect("create");
    let (clear, wrapped) = first.generate_data_key("t1").await.expect("data key");
    drop(first);
    let again = LocalKeyring::open(&path, master).expect("reopen");
    assert_eq!(again.unwrap("t1", &wrapped).await.expect("opens").expose(), clear.expose());
    let wrong = LocalKeyring::open(&path, SecretKey::generate().expect("key")).expect_err("another master key");
    assert!(wrong.to_string().contains("does not authenticate"), "{wrong}");
    let on_disk = std::fs::read_to_string(&path).expect("read");
    assert!(!on_disk.contains(&hex(clear.expose())));
}

/// The keyring file's tenant list and `min_decryption_version`s are
/// authenticated: an edit is refused, at open and by a keyring already
/// open; a file of the first format (no MAC) is upgraded once.
#[tokio::test]
async fn an_edited_keyring_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("keyring.json");
    let master = SecretKey::generate().expect("key");
    let ring = LocalKeyring::open(&path, master.clone()).expect("open");
    ring.ensure_tenant_key("t1").await.expect("create");
    ring.rotate("t1").await.expect("rotate");
    ring.set_min_decryption_version("t1", 2).await.expect("retire version 1");
    let genuine = std::fs::read_to_string(&path).expect("read");
    let mut json: serde_json::Value = serde_json::from_str(&genuine).expect("json");
    assert!(json["mac"].is_string(), "{genuine}");
    // Version 1 brought back by an edit: refused however the keyring meets it.
    json["tenants"]["t1"]["min_decryption_version"] = 1.into();
    std::fs::write(&path, json.to_string()).expect("edit");
    let e = LocalKeyring::open(&path, master.clone()).expect_err("an edited file");
    assert!(e.to_string().contains("does not authenticate"), "{e}");
    assert!(ring.versions("t1").await.is_err(), "an open keyring re-reads the edited file and refuses it");
    // A file of the first format, as older releases wrote it (no MAC), is
    // upgraded once its master key is shown to open it.
    std::fs::write(&path, &genuine).expect("restore");
    let mut old: serde_json::Value = serde_json::from_str(&genuine).expect("json");
    old["format"] = 1.into();
    old.as_object_mut().expect("object").remove("mac");
    std::fs::write(&path, old.to_string()).expect("format 1");
    let upgraded = LocalKeyring::open(&path, master.clone()).expect("a format-1 file opens");
    assert_eq!(upgraded.versions("t1").await.expect("versions").min_decryption, 2);
    let rewritten: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!((rewritten["format"].as_u64(), rewritten["mac"].is_string()), (Some(2), true));
    // A format-1 file under another master key is refused, not blessed.
    std::fs::write(&path, old.to_string()).expect("format 1");
    assert!(LocalKeyring::open(&path, SecretKey::generate().expect("key")).is_err());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "written through a private temporary file");
    }
}

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        guardline_keys::store::migrations()
    }
}

async fn sqlite() -> (DatabaseConnection, Box<dyn std::any::Any + Send>) {
    let dir = tempfile::tempdir().expect("tmp");
    let args = guardline_runtime::args::DatabaseArgs {
        database_url: format!("sqlite://{}", dir.path().join("t.db").display()),
        database_max_connections: 4,
        database_schema: None,
    };
    let db = guardline_runtime::storage::connect(&args).await.expect("sqlite");
    Migrator::up(&db, None).await.expect("migrate");
    (db, Box::new(dir))
}

async fn postgres() -> (DatabaseConnection, Box<dyn std::any::Any + Send>) {
    let pg = Postgres::shared().await.expect("postgres");
    let args = guardline_runtime::args::DatabaseArgs {
        database_url: pg.database().await.expect("db"),
        database_max_connections: 4,
        database_schema: None,
    };
    let db = guardline_runtime::storage::connect(&args).await.expect("postgres");
    Migrator::up(&db, None).await.expect("migrate");
    (db, Box::new(()))
}

async fn envelope_fields_are_bound_to_their_place(db: DatabaseConnection, p: Arc<dyn KeyProvider>) {
    let env = Envelope::new(p, db, Duration::from_secs(60));
    let (rk, sealed_rk) = env.new_record_key("t1", "lead-1").await.expect("record key");
    let ct = seal_field(&rk, "t1", "lead-1", "name", 1, "张三".as_bytes()).expect("seal");
    let reopened = env.open_record_key("t1", "lead-1", &sealed_rk).await.expect("open record key");
    assert_eq!(&open_field(&reopened, "t1", "lead-1", "name", 1, &ct).expect("open")[..], "张三".as_bytes());
    assert!(env.open_record_key("t1", "lead-2", &sealed_rk).await.is_err(), "a record key moved to another record");
    assert!(env.open_record_key("t2", "lead-1", &sealed_rk).await.is_err(), "a record key moved to another tenant");
    assert!(open_field(&reopened, "t1", "lead-1", "notes", 1, &ct).is_err(), "a field moved to another field");
}

async fn envelope_calls_the_provider_per_data_key_not_per_record(db: DatabaseConnection, p: Arc<dyn KeyProvider>) {
    let env = Envelope::new(p, db, Duration::from_secs(60));
    let mut ids = std::collections::HashSet::new();
    for i in 0..50 {
        let (_, sealed) = env.new_record_key("t1", &format!("lead-{i}")).await.expect("record key");
        ids.insert(sealed.data_key_id);
    }
    assert_eq!(ids.len(), 1, "one tenant data key serves every record");
}

async fn envelope_survives_tenant_key_and_data_key_rotation(db: DatabaseConnection, p: Arc<dyn KeyProvider>) {
    let env = Envelope::new(p.clone(), db, Duration::from_secs(60));
    let (rk, sealed) = env.new_record_key("t1", "lead-1").await.expect("record key");
    // Tenant key rotation in the provider, then rewrap of the stored data keys.
    p.rotate("t1").await.expect("rotate");
    assert_eq!(env.rewrap_tenant_data_keys("t1").await.expect("rewrap"), 1);
    p.set_min_decryption_version("t1", 2).await.expect("retire v1");
    env.clear_cache().await;
    assert_eq!(env.open_record_key("t1", "lead-1", &sealed).await.expect("opens after rewrap").expose(), rk.expose());
    // Data key rotation: old record keys still open, re-wrapping moves them.
    let new_dk = env.rotate_data_key("t1").await.expect("rotate data key");
    assert_ne!(new_dk, sealed.data_key_id);
    let moved = env.rewrap_record_key("t1", "lead-1", &sealed).await.expect("rewrap record key");
    assert_eq!(moved.data_key_id, new_dk);
    env.retire_data_key("t1", &sealed.data_key_id).await.expect("retire");
    env.clear_cache().await;
    assert_eq!(env.open_record_key("t1", "lead-1", &moved).await.expect("opens").expose(), rk.expose());
}

async fn concurrent_first_use_creates_one_data_key(db: DatabaseConnection, p: Arc<dyn KeyProvider>) {
    // Two replicas (two Envelopes on one database) racing on a new tenant.
    let a = Arc::new(Envelope::new(p.clone(), db.clone(), Duration::from_secs(60)));
    let b = Arc::new(Envelope::new(p, db, Duration::from_secs(60)));
    let (ra, rb) = tokio::join!(a.active_data_key("t9"), b.active_data_key("t9"));
    assert_eq!(ra.expect("a").0, rb.expect("b").0);
}

macro_rules! envelope_suite {
    ($($name:ident),* $(,)?) => {
        mod envelope_sqlite_keyring {
            $(#[tokio::test] async fn $name() {
                let (db, _d) = super::sqlite().await; let (p, _k) = super::local().await; super::$name(db, p).await;
            })*
        }
        mod envelope_postgres_openbao {
            $(#[tokio::test] async fn $name() {
                let (db, _d) = super::postgres().await; let (p, _k) = super::openbao().await; super::$name(db, p).await;
            })*
        }
    };
}

envelope_suite!(
    envelope_fields_are_bound_to_their_place,
    envelope_calls_the_provider_per_data_key_not_per_record,
    envelope_survives_tenant_key_and_data_key_rotation,
    concurrent_first_use_creates_one_data_key,
);

#[tokio::test]
async fn two_processes_sharing_a_keyring_do_not_lose_each_others_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("keyring.json");
    let master = SecretKey::generate().expect("key");
    // Two handles on one file stand for two processes (lead-vault and recordings).
    let a = LocalKeyring::open(&path, master.clone()).expect("open");
    let b = LocalKeyring::open(&path, master.clone()).expect("open");
    a.ensure_tenant_key("t1").await.expect("a creates t1");
    b.ensure_tenant_key("t2").await.expect("b creates t2");
    let (k1, w1) = b.generate_data_key("t1").await.expect("b sees a's tenant");
    assert_eq!(a.unwrap("t1", &w1).await.expect("a opens").expose(), k1.expose());
    b.rotate("t1").await.expect("b rotates");
    assert_eq!(a.versions("t1").await.expect("versions").latest, 2, "a sees b's rotation");
    let reopened = LocalKeyring::open(&path, master).expect("open");
    assert!(reopened.versions("t2").await.is_ok(), "t2 survived a's writes");
}

/// A transit mount and an AppRole whose tokens live `ttl` and are renewable
/// up to `max_ttl`, allowed to use it: (mount, the role's auth).
async fn approle(bao: &OpenBao, ttl: &str, max_ttl: &str) -> (String, VaultAuth) {
    let mount = bao.transit_mount().await.expect("mount");
    let approle = format!("approle-{}", mount.trim_start_matches("transit-"));
    bao.cli(&["auth", "enable", &format!("-path={approle}"), "approle"]).expect("enable approle");
    let policy = format!(
        "path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\npath \"{mount}/keys/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}"
    );
    let policy_file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(policy_file.path(), policy).expect("write");
    bao.cli(&["policy", "write", &approle, &policy_file.path().display().to_string()]).expect("policy");
    let role = format!("auth/{approle}/role/lead-vault");
    let (ttl, max_ttl) = (format!("token_ttl={ttl}"), format!("token_max_ttl={max_ttl}"));
    bao.cli(&["write", &role, &format!("token_policies={approle}"), &ttl, &max_ttl]).expect("role");
    let role_id = bao.cli(&["read", "-field=role_id", &format!("{role}/role-id")]).expect("role id");
    let secret_id = bao.cli(&["write", "-f", "-field=secret_id", &format!("{role}/secret-id")]).expect("secret id");
    (mount, VaultAuth::AppRole { mount: approle, role_id: role_id.trim().into(), secret_id: secret_id.trim().into() })
}

/// A renewable login token is renewed before it expires: one login, then
/// renewals, and no call ever refused for an expired token.
#[tokio::test]
async fn a_login_token_is_renewed_before_it_expires() {
    let bao = OpenBao::shared().await.expect("openbao");
    // Tokens live 3 s, renewable up to a minute.
    let (mount, auth) = approle(bao, "3s", "60s").await;
    let p = VaultProvider::connect(&bao.addr, auth, &mount).await.expect("approle login");
    p.ensure_tenant_key("t1").await.expect("create");
    let (clear, wrapped) = p.generate_data_key("t1").await.expect("data key");
    // Used every 2.2 s for 8.8 s: each use past two thirds of the term renews.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(p.unwrap("t1", &wrapped).await.expect("unwrap").expose(), clear.expose());
    }
    let (logins, renewals) = p.token_history();
    assert_eq!(logins, 1, "never logged in again: the token was renewed in time");
    assert!(renewals >= 3, "renewed {renewals} times");
}

#[tokio::test]
async fn approle_login_reaches_transit() {
    let bao = OpenBao::shared().await.expect("openbao");
    // Tokens of this role expire after 2 s and cannot be renewed: the
    // provider must log in again by itself.
    let (mount, auth) = approle(bao, "2s", "2s").await;
    let p = VaultProvider::connect(&bao.addr, auth, &mount).await.expect("approle login");
    p.ensure_tenant_key("t1").await.expect("create");
    let (clear, wrapped) = p.generate_data_key("t1").await.expect("data key");
    assert_eq!(p.unwrap("t1", &wrapped).await.expect("unwrap").expose(), clear.expose());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(p.unwrap("t1", &wrapped).await.expect("unwrap after re-login").expose(), clear.expose());

    let bad = VaultAuth::AppRole { mount: "approle-none".into(), role_id: "x".into(), secret_id: "y".into() };
    assert!(matches!(VaultProvider::connect(&bao.addr, bad, &mount).await, Err(Error::Unavailable(_))));
}
