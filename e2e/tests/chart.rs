//! The chart boots the mesh. `helm template` renders helm/guardline for
//! this machine (OpenBao as Vault with AppRole login, a PostgreSQL database
//! per component, recordings on a volume); each Deployment's image,
//! arguments and environment are taken exactly as rendered, and only what a
//! pod gets from Kubernetes is mapped to this machine:
//!
//! - mounted secrets and volumes to local files (the certificates come from
//!   OpenBao's PKI, as in the other e2e tests; every mount must be mapped);
//! - `secretKeyRef`s to the values the secrets would hold;
//! - Service DNS names (`identity.e2e.svc`) to `localhost`, and the ports
//!   every pod has to itself (health, metrics) to free ones.
//!
//! The real binaries then run the journeys, and the `helm test` Pod's own
//! command checks them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use guardline_chart::{at, documents, str_at, template_in};
use guardline_e2e::{Cluster, NAMESPACE, SERVICES, Stage, TRUST_DOMAIN, binary};
use guardline_journeys as journeys;
use serde_yaml::Value;

/// The values key of a component.
fn key(service: &str) -> &'static str {
    match service {
        "identity" => "identity",
        "lead-vault" => "leadVault",
        "dialer-policy" => "dialerPolicy",
        "recordings" => "recordings",
        "audit" => "audit",
        other => panic!("no component {other}"),
    }
}

/// AppRole login in OpenBao: a policy on the stage's transit mount and a
/// role per component; returns the mount and the secret's keys and values.
fn approle(stage: &Stage) -> (String, HashMap<String, String>) {
    let bao = stage.bao;
    let mount = format!("approle-{}", stage.transit.trim_start_matches("transit-"));
    bao.cli(&["auth", "enable", &format!("-path={mount}"), "approle"]).expect("approle");
    let policy = stage.dir.join("transit.hcl");
    let rules =
        format!("path \"{t}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"list\"] }}", t = stage.transit);
    std::fs::write(&policy, rules).expect("policy");
    let name = format!("guardline-{mount}");
    bao.cli(&["policy", "write", &name, &policy.display().to_string()]).expect("policy");
    let mut secret = HashMap::new();
    for service in SERVICES.iter().filter(|s| **s != "dialer-policy") {
        let role = format!("auth/{mount}/role/{service}");
        bao.cli(&["write", &role, &format!("token_policies={name}"), "token_ttl=1h"]).expect("role");
        let id = bao.cli(&["read", "-field=role_id", &format!("{role}/role-id")]).expect("role id");
        let secret_id = bao.cli(&["write", "-f", "-field=secret_id", &format!("{role}/secret-id")]).expect("secret id");
        secret.insert(format!("{service}-role-id"), id.trim().to_owned());
        secret.insert(format!("{service}-secret-id"), secret_id.trim().to_owned());
    }
    (mount, secret)
}

/// The chart rendered for this stage.
fn render(stage: &Stage, approle_mount: &str) -> Vec<Value> {
    let mut set = vec![
        format!("trustDomain={TRUST_DOMAIN}"),
        format!("vault.address={}", stage.bao.addr),
        format!("vault.transitMount={}", stage.transit),
        "vault.auth.method=approle".into(),
        format!("vault.auth.approle.mount={approle_mount}"),
        "vault.auth.approle.existingSecret=guardline-approle".into(),
        "postgres.existingSecret=guardline-postgres".into(),
        "postgres.mode=database".into(),
        "recordings.storage=volume".into(),
        "recordings.volume.existingClaim=guardline-recordings".into(),
        format!("otlpEndpoint={}", stage.otlp),
        "log.level=warn".into(),
        // The journeys' webhook receiver listens on loopback, over http.
        "components.audit.env.GUARDLINE_WEBHOOK_ALLOW=127.0.0.0/8".into(),
        "components.audit.env.GUARDLINE_WEBHOOK_ALLOW_HTTP=true".into(),
        // The fingerprints the journeys pin, as an operator would hand them out.
        format!("components.audit.env.GUARDLINE_PIN_FILE={}", stage.dir.join(guardline_e2e::AUDIT_PINS).display()),
    ];
    for (service, port) in SERVICES.iter().zip(&stage.ports) {
        set.push(format!("components.{}.port={port}", key(service)));
    }
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    // The release namespace is the one in the mesh's SPIFFE ids.
    let rendered = template_in(NAMESPACE, &[], &set).expect("helm");
    documents(&rendered.unwrap_or_else(|e| panic!("the chart renders for this machine: {e}")))
}

/// What a pod of `service` sees at `value`, on this machine.
struct Mapping<'a> {
    stage: &'a Stage,
    service: &'a str,
    secrets: HashMap<(String, String), String>,
    /// Mount path prefix → local directory.
    mounts: Vec<(String, PathBuf)>,
}

impl Mapping<'_> {
    fn value(&self, name: &str, value: &str) -> String {
        let (_, metrics, health) =
            self.stage.side_ports.iter().find(|(s, _, _)| s == self.service).cloned().expect("side ports");
        match name {
            "GUARDLINE_HEALTH_LISTEN" => return format!("127.0.0.1:{health}"),
            "GUARDLINE_METRICS_ADDRESS" => return format!("127.0.0.1:{metrics}"),
            "GUARDLINE_LISTEN" => return value.replace("0.0.0.0", "127.0.0.1"),
            // The test's own addition (what the journeys pin), a path on this machine.
            "GUARDLINE_PIN_FILE" => return value.to_owned(),
            _ => {}
        }
        if value.ends_with("_ENDPOINT") || value.starts_with("https://") {
            let mut v = value.to_owned();
            for s in SERVICES {
                v = v.replace(&format!("https://{s}.{NAMESPACE}.svc:"), "https://localhost:");
            }
            return v;
        }
        if value.starts_with('/') {
            return self.path(value).display().to_string();
        }
        value.to_owned()
    }

    fn path(&self, p: &str) -> PathBuf {
        let tls = |f: &str| match f {
            "tls.crt" => format!("{}.pem", self.service),
            "tls.key" => format!("{}-key.pem", self.service),
            "ca.crt" => "ca.pem".to_owned(),
            other => panic!("an unknown file of the TLS secret: {other}"),
        };
        if let Some(f) = p.strip_prefix("/etc/guardline/tls/") {
            return self.stage.pki_dir.join(tls(f));
        }
        for (prefix, dir) in &self.mounts {
            if let Some(rest) = p.strip_prefix(prefix.as_str()) {
                return dir.join(rest.trim_start_matches('/'));
            }
        }
        panic!("{}: the chart names {p}, which no mapped mount holds", self.service)
    }
}

/// `service`'s process, configured exactly as its rendered Deployment.
fn command(stage: &Stage, docs: &[Value], service: &str, m: &Mapping) -> Command {
    let d = docs
        .iter()
        .find(|d| str_at(d, "kind") == "Deployment" && str_at(d, "metadata.name") == service)
        .unwrap_or_else(|| panic!("a Deployment for {service}"));
    let c = &at(d, "spec.template.spec.containers")[0];
    assert!(str_at(c, "image").contains(&format!("/guardline-{service}:")), "{service}'s image");
    for mount in at(c, "volumeMounts").as_sequence().into_iter().flatten() {
        let path = str_at(mount, "mountPath");
        if path != "/etc/guardline/tls" && path != "/tmp" {
            m.path(path); // panics when a mount is not mapped
        }
    }
    let mut cmd = Command::new(binary(service).expect("binary"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for a in at(c, "args").as_sequence().into_iter().flatten() {
        cmd.arg(a.as_str().expect("string argument"));
    }
    for e in at(c, "env").as_sequence().into_iter().flatten() {
        let name = str_at(e, "name");
        let value = if let Some(v) = at(e, "value").as_str() {
            m.value(name, v)
        } else {
            let r = at(e, "valueFrom.secretKeyRef");
            let k = (str_at(r, "name").to_owned(), str_at(r, "key").to_owned());
            m.secrets.get(&k).cloned().unwrap_or_else(|| panic!("{service}: no secret {k:?} for {name}"))
        };
        cmd.env(name, value);
    }
    let log = stage.log_file(service).expect("log");
    cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log);
    cmd
}

fn run_helm_test_hook(stage_dir: &Path, docs: &[Value], cluster: &Cluster) -> String {
    let pod = docs.iter().find(|d| str_at(d, "kind") == "Pod").expect("the helm test Pod");
    assert_eq!(at(pod, "metadata.annotations").get("helm.sh/hook").and_then(Value::as_str), Some("test"));
    let c = &at(pod, "spec.containers")[0];
    let args: Vec<String> = at(c, "args")
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|a| {
            let mut a = a.as_str().expect("string").replace("/var/run/guardline", &stage_dir.display().to_string());
            for s in SERVICES {
                a = a.replace(&format!("https://{s}.{NAMESPACE}.svc:"), "https://localhost:");
            }
            a
        })
        .collect();
    let out = Command::new(Cluster::cli().expect("the CLI")).args(&args).output().expect("guardline health");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the helm test hook's command fails:\n{text}\n{}", cluster.log("audit"));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_configures_the_binaries_that_run_the_journeys() {
    let stage = Stage::new().await.expect("stage");
    let (mount, approle_secret) = approle(&stage);
    let docs = render(&stage, &mount);
    let mut secrets = HashMap::new();
    for (service, url) in &stage.databases {
        secrets.insert(("guardline-postgres".to_owned(), format!("{service}-url")), url.clone());
    }
    for (k, v) in approle_secret {
        secrets.insert(("guardline-approle".to_owned(), k), v);
    }
    let mounts = vec![
        ("/var/lib/guardline/recordings".to_owned(), stage.dir.join("recordings")),
        ("/var/lib/guardline/registry".to_owned(), stage.dir.join("registry")),
    ];
    let commands: Vec<Command> = SERVICES
        .iter()
        .map(|s| {
            let m = Mapping { stage: &stage, service: s, secrets: secrets.clone(), mounts: mounts.clone() };
            command(&stage, &docs, s, &m)
        })
        .collect();
    // The helm test client's certificate, laid out as the Pod mounts its secret.
    let hook_dir = stage.dir.join("helm-test");
    std::fs::create_dir_all(hook_dir.join("pki")).expect("dir");
    Cluster::issue(stage.bao, &stage.pki, "helm-test", &hook_dir).expect("helm-test certificate");
    for (from, to) in [("helm-test.pem", "cli.pem"), ("helm-test-key.pem", "cli-key.pem")] {
        std::fs::rename(hook_dir.join(from), hook_dir.join("pki").join(to)).expect("move");
    }
    std::fs::copy(&stage.ca, hook_dir.join("pki/ca.pem")).expect("ca");
    let cluster = Cluster::launch(stage, commands).await.expect("the mesh as the chart configures it");

    let org = journeys::onboard(&cluster, "Charted").await.expect("journey 1 on the chart's configuration");
    let leads = journeys::leads::leads(&cluster, &org, 20).await.expect("journey 2");
    assert_eq!((leads.report.imported, leads.report.errors.len()), (20, 4), "{:?}", leads.report);
    assert!(leads.revealed.value.starts_with("+86139"), "a reveal through Vault's transit keys");
    let recording = journeys::recording::recording(&cluster, &org).await.expect("journey 4: recordings on the volume");
    assert_eq!(recording.played.len(), journeys::AUDIO.len());

    let said = run_helm_test_hook(&hook_dir, &docs, &cluster);
    for s in SERVICES {
        assert!(said.contains(s), "{s} checked: {said}");
    }
}
