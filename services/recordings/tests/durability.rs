//! A recording is STORED only once its object would survive a power cut.
//!
//! A kill does not lose the page cache, so a crash is replayed instead: this
//! program runs itself under `strace`, as a child that uploads one recording
//! through the service with the production local store (`args::local`) and
//! SQLite, and records every `fsync`, `fdatasync`, `rename`, `link` and
//! `mkdir`. The replay then drops every write not made durable before the
//! commit that marked the recording STORED (the last fsync of SQLite's
//! write-ahead log): file contents never fsynced, and names whose directory
//! was not fsynced after they were made. The object must survive it.
//!
//! Without `with_fsync(true)` in `args::local`, the object is lost; without
//! the directory fsync in the local keyring's write, the tenant key is.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guardline_recordings::domain::recording::Header;
use guardline_recordings::service::Recordings;

const CHILD: &str = "GUARDLINE_DURABILITY_CHILD";

fn main() {
    match std::env::var_os(CHILD) {
        Some(dir) => child(Path::new(&dir)),
        None => parent(),
    }
}

/// Uploads one recording and prints its object's path.
fn child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        guardline_runtime::tls::install_crypto_provider();
        let objects = guardline_recordings::args::local(&dir.join("objects")).expect("store");
        let url = format!("sqlite://{}", dir.join("r.db").display());
        let args = guardline_runtime::args::DatabaseArgs {
            database_url: url,
            database_max_connections: 2,
            database_schema: None,
        };
        let db = guardline_runtime::storage::open::<guardline_recordings::store::Migrator>(&args).await.expect("db");
        let key = guardline_keys::SecretKey::generate().expect("key");
        let keyring = guardline_keys::local::LocalKeyring::open(&dir.join("k.json"), key).expect("keyring");
        let envelope = Arc::new(guardline_keys::Envelope::new(Arc::new(keyring), db.clone(), Duration::from_secs(60)));
        let notify = Arc::new(tokio::sync::Notify::new());
        let store = guardline_recordings::store::Store::new(guardline_audit_client::AuditedDb::new(db, notify));
        let recordings = Recordings::new(store, envelope, objects);
        let header = Header {
            tenant: "t1".into(),
            call_id: "c1".into(),
            lead_id: "l1".into(),
            agent_id: "u1".into(),
            started_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("time"),
            duration_seconds: 60,
            format: "audio/wav".into(),
            ..Default::default()
        };
        let audio: Vec<Result<Bytes, guardline_runtime::Error>> = vec![Ok(Bytes::from(vec![7u8; 200_000]))];
        let stored = recordings
            .upload("dialer", header, futures::stream::iter(audio), || Some((200_000, vec![])))
            .await
            .expect("upload");
        println!("object={}", stored.object_path);
    });
}

fn parent() {
    let dir = tempfile::tempdir().expect("tmp");
    // The store's root exists before the service starts, as a mounted volume does.
    std::fs::create_dir_all(dir.path().join("objects")).expect("root");
    let trace = dir.path().join("trace");
    let out = Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,link,linkat,mkdir,mkdirat"])
        .arg("-o")
        .arg(&trace)
        .arg(std::env::current_exe().expect("exe"))
        .env(CHILD, dir.path())
        .output()
        .expect("strace runs (scripts/test-deps.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the traced upload failed: {}", String::from_utf8_lossy(&out.stderr));
    let object = stdout.lines().find_map(|l| l.strip_prefix("object=")).expect("the object's path");
    let object = dir.path().join("objects").join(object);
    let calls = calls(&std::fs::read_to_string(&trace).expect("trace"));
    let commit = calls
        .iter()
        .rposition(|c| matches!(c, Call::Sync(p) if p.to_string_lossy().ends_with("r.db-wal")))
        .expect("the STORED commit was fsynced to SQLite's write-ahead log");
    let disk = replay(&calls[..=commit], &dir.path().join("objects"));
    assert!(
        disk.survives(&object),
        "a crash right after the STORED commit loses the object: contents synced {}, names not yet durable {:?}",
        disk.synced.contains(&object),
        disk.fragile
    );
    // The tenant key that seals it, made during the upload, survives too.
    let keyring = dir.path().join("k.json");
    assert!(disk.survives(&keyring), "a crash loses the keyring: not yet durable {:?}", disk.fragile);
    println!("durability: ok ({} calls replayed up to the STORED commit)", commit + 1);
}

/// The calls the crash model reads, in the order they returned.
#[derive(Debug)]
enum Call {
    /// A file's or directory's contents made durable.
    Sync(PathBuf),
    /// A name moved.
    Rename(PathBuf, PathBuf),
    /// A name made (directory or hard link).
    Create(PathBuf),
}

/// Parses `strace -f -y` output, joining calls split by other threads.
fn calls(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(char::is_whitespace) else { continue };
        let rest = rest.trim_start();
        if let Some(start) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid, start);
            continue;
        }
        let (text, result) = match rest.strip_prefix("<... ") {
            Some(resumed) => {
                let args = resumed.split_once("resumed>").map_or("", |(_, a)| a);
                (format!("{}{}", pending.remove(pid).unwrap_or(""), args), args)
            }
            None => (rest.to_owned(), rest),
        };
        if !result.trim_end().ends_with("= 0") {
            continue;
        }
        let name = text.split('(').next().unwrap_or("");
        let quoted: Vec<PathBuf> = text.split('"').skip(1).step_by(2).map(PathBuf::from).collect();
        let fd_path = || text.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(p, _)| PathBuf::from(p));
        match name {
            "fsync" | "fdatasync" => out.extend(fd_path().map(Call::Sync)),
            "rename" | "renameat" | "renameat2" if quoted.len() == 2 => {
                out.push(Call::Rename(quoted[0].clone(), quoted[1].clone()))
            }
            "link" | "linkat" if quoted.len() == 2 => out.push(Call::Create(quoted[1].clone())),
            "mkdir" | "mkdirat" if !quoted.is_empty() => out.push(Call::Create(quoted[0].clone())),
            _ => {}
        }
    }
    out
}

/// What a disk holds after a crash: file contents fsynced (by path), and
/// the names made since the start that are not yet durable.
#[derive(Debug, Default)]
struct Disk {
    synced: HashSet<PathBuf>,
    fragile: HashSet<PathBuf>,
    root: PathBuf,
}

impl Disk {
    fn survives(&self, path: &Path) -> bool {
        self.synced.contains(path)
            && path.ancestors().take_while(|p| *p != self.root).all(|p| !self.fragile.contains(p))
    }
}

fn replay(calls: &[Call], root: &Path) -> Disk {
    let mut disk = Disk { root: root.to_owned(), ..Default::default() };
    for call in calls {
        match call {
            Call::Sync(p) => {
                disk.synced.insert(p.clone());
                // A directory's fsync makes the names in it durable.
                disk.fragile.retain(|name| name.parent() != Some(p.as_path()));
            }
            Call::Rename(from, to) => {
                if disk.synced.remove(from) {
                    disk.synced.insert(to.clone());
                }
                disk.fragile.insert(to.clone());
            }
            Call::Create(p) => {
                disk.fragile.insert(p.clone());
            }
        }
    }
    disk
}
