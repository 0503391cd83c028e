//! A PostgreSQL primary with a synchronous streaming standby, for the
//! fault suite's crash, restart and failover cases.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::{free_port, is_root, pg_bin, pg_command, run, uuid_like, watchdog};

/// Two PostgreSQL 15 instances: a primary and a synchronous streaming
/// standby (`synchronous_standby_names = 'standby'`, so a commit waits for
/// the standby's flush), for the fault suite's restart and failover.
/// Services reach whichever is primary through one stable endpoint the
/// test provides (a TCP proxy, as CloudNativePG's `-rw` Service).
#[derive(Debug)]
pub struct ReplicatedPostgres {
    bin: PathBuf,
    primary: (PathBuf, u16),
    standby: (PathBuf, u16),
}

impl ReplicatedPostgres {
    /// Starts both and waits until the standby streams synchronously.
    pub async fn start() -> Result<Self> {
        tokio::task::spawn_blocking(Self::start_blocking).await?
    }

    fn start_blocking() -> Result<Self> {
        let bin = pg_bin()?;
        let primary = tempfile::Builder::new().prefix("guardline-pg-primary-").tempdir()?.keep();
        let standby = tempfile::Builder::new().prefix("guardline-pg-standby-").tempdir()?.keep();
        std::fs::remove_dir(&standby)?;
        let own = |dir: &Path| -> Result<()> {
            if is_root() {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres"]).arg(dir);
                run(c, "chown")?;
            }
            Ok(())
        };
        own(&primary)?;
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&primary).args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        run(initdb, "initdb")?;
        let conf = "wal_level = replica\nmax_wal_senders = 5\nsynchronous_standby_names = 'standby'\n\
                    listen_addresses = '127.0.0.1'\nmax_connections = 300\n";
        append(&primary.join("postgresql.conf"), conf)?;
        let (p1, p2) = (free_port()?, free_port()?);
        let me = Self { bin, primary: (primary, p1), standby: (standby, p2) };
        me.pg_ctl(&me.primary, "start")?;
        let mut base = pg_command(&me.bin, "pg_basebackup");
        base.args(["-h", "127.0.0.1", "-p", &p1.to_string(), "-U", "postgres", "-R", "-X", "stream", "-D"])
            .arg(&me.standby.0);
        // pg_basebackup (as postgres) creates the directory in the temporary one.
        run(base, "pg_basebackup")?;
        // The standby reports itself as `standby`; once promoted it waits for no one.
        append(
            &me.standby.0.join("postgresql.auto.conf"),
            "cluster_name = 'standby'\nsynchronous_standby_names = ''\n",
        )?;
        me.pg_ctl(&me.standby, "start")?;
        let stop = |(dir, _): &(PathBuf, u16)| {
            format!(
                "{} {} -D {} -m immediate stop; rm -rf {}",
                if is_root() { "runuser -u postgres --" } else { "" },
                me.bin.join("pg_ctl").display(),
                dir.display(),
                dir.display()
            )
        };
        watchdog(&format!("{}; {}", stop(&me.standby), stop(&me.primary)))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while me.sql(p1, "SELECT sync_state FROM pg_stat_replication")?.trim() != "sync" {
            if Instant::now() > deadline {
                bail!("the standby never became synchronous");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(me)
    }

    fn pg_ctl(&self, (dir, port): &(PathBuf, u16), action: &str) -> Result<String> {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D").arg(dir).arg("-l").arg(dir.join("server.log"));
        if action == "start" {
            c.arg("-o").arg(format!("-p {port} -k {}", dir.display()));
        }
        c.args(["-w", action]);
        run(c, &format!("pg_ctl {action}"))
    }

    fn sql(&self, port: u16, sql: &str) -> Result<String> {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-c", sql]);
        run(c, "psql")
    }

    /// The primary's port (the standby's once promoted).
    pub fn primary_port(&self) -> u16 {
        self.primary.1
    }

    /// The standby's port.
    pub fn standby_port(&self) -> u16 {
        self.standby.1
    }

    /// Creates a database on the primary (streamed to the standby); its
    /// name, for a URL through the test's endpoint.
    pub async fn create_database(&self) -> Result<String> {
        let name = format!("t_{}", uuid_like());
        let mut c = pg_command(&self.bin, "createdb");
        c.args(["-h", "127.0.0.1", "-p", &self.primary.1.to_string(), "-U", "postgres", &name]);
        tokio::task::spawn_blocking(move || run(c, "createdb")).await??;
        Ok(name)
    }

    /// Crashes the primary (`-m immediate`) and starts it again: recovery
    /// replays its WAL; the standby reconnects.
    pub async fn crash_restart_primary(&self) -> Result<()> {
        let (bin, primary) = (self.bin.clone(), self.primary.clone());
        tokio::task::spawn_blocking(move || {
            let me = Self { bin, primary: primary.clone(), standby: (PathBuf::new(), 0) };
            let mut stop = pg_command(&me.bin, "pg_ctl");
            stop.arg("-D").arg(&primary.0).args(["-m", "immediate", "stop"]);
            run(stop, "pg_ctl stop")?;
            me.pg_ctl(&primary, "start").map(drop)
        })
        .await?
    }

    /// Promotes the standby and stops the old primary (as a failover does):
    /// the standby's port is the primary from now on.
    pub async fn failover(&self) -> Result<()> {
        let (bin, primary, standby) = (self.bin.clone(), self.primary.clone(), self.standby.clone());
        tokio::task::spawn_blocking(move || {
            let me = Self { bin, primary: primary.clone(), standby: standby.clone() };
            me.pg_ctl(&standby, "promote")?;
            let mut stop = pg_command(&me.bin, "pg_ctl");
            stop.arg("-D").arg(&primary.0).args(["-m", "immediate", "stop"]);
            run(stop, "pg_ctl stop").map(drop)
        })
        .await?
    }
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
