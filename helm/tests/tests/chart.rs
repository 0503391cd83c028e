//! The chart, checked offline: lint, rendering over several values files
//! validated as Kubernetes manifests, the values schema's refusals, the
//! security posture of everything rendered, and that every setting the
//! chart passes is one its binary accepts.

use std::collections::BTreeSet;

use guardline_chart::{accepted_env, at, documents, numbers_as_floats, of_kind, run_helm, str_at, template, validate};
use serde_yaml::Value;

const VALUES: &[&str] = &[
    "ci/minimal-values.yaml",
    "ci/production-values.yaml",
    "ci/no-networkpolicies-values.yaml",
    "ci/vault-pki-approle-values.yaml",
];

fn rendered(values: &str) -> Vec<Value> {
    let out = template(&[values], &[]).expect("helm").unwrap_or_else(|e| panic!("{values}: {e}"));
    documents(&out)
}

/// Pod specs of every workload (Deployments and the test Pod), by name.
fn pods(docs: &[Value]) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for d in docs {
        match str_at(d, "kind") {
            "Deployment" => out.push((str_at(d, "metadata.name").to_owned(), at(d, "spec.template"))),
            "Pod" => out.push((str_at(d, "metadata.name").to_owned(), d)),
            _ => {}
        }
    }
    out
}

fn containers(pod: &Value) -> Vec<&Value> {
    at(pod, "spec.containers").as_sequence().map(|s| s.iter().collect()).unwrap_or_default()
}

#[test]
fn the_chart_lints_strictly_with_every_values_file() {
    for values in VALUES {
        let (ok, out, err) = run_helm(&["lint", "--strict", ".", "-f", values]).expect("helm");
        assert!(ok, "{values}: {out}{err}");
    }
}

#[test]
fn every_values_file_renders_manifests_kubernetes_accepts() {
    for values in VALUES {
        let out = template(&[values], &[]).expect("helm").unwrap_or_else(|e| panic!("{values}: {e}"));
        validate(&out).expect("kubernetes-validate").unwrap_or_else(|e| panic!("{values}: {e}"));
    }
}

#[test]
fn kubernetes_validate_refuses_a_broken_manifest() {
    // The check above can fail: an unknown field in a Deployment is refused.
    let out = template(&["ci/minimal-values.yaml"], &[]).expect("helm").expect("renders");
    let broken = out.replacen("  replicas: 1\n", "  replicas: 1\n  replica: 1\n", 1);
    assert_ne!(broken, out);
    assert!(validate(&broken).expect("kubernetes-validate").is_err(), "an unknown field is refused");
}

#[test]
fn bad_values_are_refused_naming_the_value() {
    let cases: &[(&[&str], &str)] = &[
        (&["components.identity.replicas=two"], "components.identity.replicas"),
        (&["unknownKey=1"], "unknownKey"),
        (&["components.audit.typo=1"], "typo"),
        (&["postgres.existingSecret="], "postgres.existingSecret"),
        (&["tls.source=selfSigned"], "tls.source"),
        (&["vault.auth.method=token"], "vault.auth.method"),
        (&["components.identity.env.RUST_LOG=debug"], "components.identity.env"),
        (&["components.leadVault.replicas=3"], "components.leadVault.replicas"),
        (&["components.recordings.autoscaling.enabled=true"], "components.recordings.replicas"),
        (&["vault.auth.method=approle"], "vault.auth.approle.existingSecret"),
        (&["recordings.storage=volume"], "recordings.volume.existingClaim"),
        (&["tls.source=existingSecrets"], "tls.existingSecrets"),
    ];
    let base = ["ci/minimal-values.yaml"];
    for (set, names) in cases {
        let err = template(&base, set).expect("helm").expect_err(&format!("{set:?} refused"));
        assert!(err.contains(names), "{set:?}: the error names {names}: {err}");
    }
    // A missing secret, with no values file at all.
    let err = template(&[], &[]).expect("helm").expect_err("no PostgreSQL secret");
    assert!(err.contains("postgres.existingSecret"), "{err}");
}

#[test]
fn every_container_is_restricted_and_bounded() {
    for values in VALUES {
        let docs = rendered(values);
        let pods = pods(&docs);
        assert!(pods.len() >= 7, "{values}: five components, the operator and the test pod");
        for (name, pod) in &pods {
            let p = at(pod, "spec.securityContext");
            assert_eq!(at(p, "runAsNonRoot").as_bool(), Some(true), "{values} {name}");
            assert_eq!(str_at(p, "seccompProfile.type"), "RuntimeDefault", "{values} {name}");
            let mounts_token = at(pod, "spec.automountServiceAccountToken").as_bool();
            let expected = if name == "operator" { Some(true) } else { Some(false) };
            assert_eq!(mounts_token, expected, "{values} {name}: only the operator gets an API token");
            if str_at(pod, "kind") != "Pod" {
                assert!(at(pod, "spec.topologySpreadConstraints").as_sequence().is_some_and(|s| !s.is_empty()));
            }
            for c in containers(pod) {
                let s = at(c, "securityContext");
                let who = format!("{values} {name}/{}", str_at(c, "name"));
                assert_eq!(at(s, "allowPrivilegeEscalation").as_bool(), Some(false), "{who}");
                assert_eq!(at(s, "readOnlyRootFilesystem").as_bool(), Some(true), "{who}");
                assert_eq!(at(s, "runAsUser").as_u64(), Some(65532), "{who}");
                assert_eq!(at(s, "capabilities.drop"), &serde_yaml::from_str::<Value>("[ALL]").expect("yaml"), "{who}");
                assert_eq!(str_at(s, "seccompProfile.type"), "RuntimeDefault", "{who}");
                for k in [
                    "resources.requests.cpu",
                    "resources.requests.memory",
                    "resources.limits.cpu",
                    "resources.limits.memory",
                ] {
                    assert!(!at(c, k).is_null(), "{who}: {k}");
                }
            }
        }
    }
}

fn selects(policy: &Value, labels: &Value) -> bool {
    let want = at(policy, "spec.podSelector.matchLabels");
    want.as_mapping().is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn every_pod_is_selected_by_a_network_policy_with_only_the_architectures_edges() {
    let docs = rendered("ci/production-values.yaml");
    let policies = of_kind(&docs, "NetworkPolicy");
    for (name, pod) in pods(&docs) {
        let labels = at(pod, "metadata.labels");
        let own: Vec<&&Value> = policies
            .iter()
            .filter(|p| selects(p, labels) && str_at(p, "metadata.name") != "guardline-default-deny")
            .collect();
        assert!(
            policies.iter().any(|p| str_at(p, "metadata.name") == "guardline-default-deny" && selects(p, labels)),
            "{name}: default deny"
        );
        assert_eq!(own.len(), 1, "{name}: its own policy");
    }
    // The call graph the policies allow, from their egress rules to other components.
    let mut edges = BTreeSet::new();
    for p in &policies {
        let from = str_at(p, "metadata.name");
        for rule in at(p, "spec.egress").as_sequence().into_iter().flatten() {
            for peer in at(rule, "to").as_sequence().into_iter().flatten() {
                let to = str_at(peer, "podSelector.matchLabels.app\u{2e}kubernetes\u{2e}io/name");
                let to = if to.is_empty() {
                    at(peer, "podSelector.matchLabels")
                        .get("app.kubernetes.io/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                } else {
                    to
                };
                if !to.is_empty() && from != "helm-test" {
                    edges.insert(format!("{from} -> {to}"));
                }
            }
        }
    }
    let expected: BTreeSet<String> = [
        "audit -> identity",
        "dialer-policy -> audit",
        "dialer-policy -> identity",
        "dialer-policy -> lead-vault",
        "identity -> audit",
        "lead-vault -> audit",
        "lead-vault -> identity",
        "lead-vault -> recordings",
        "operator -> audit",
        "operator -> identity",
        "operator -> lead-vault",
        "operator -> recordings",
        "recordings -> audit",
        "recordings -> identity",
    ]
    .map(String::from)
    .into();
    assert_eq!(edges, expected);
    // Without them, no policy at all.
    assert!(of_kind(&rendered("ci/no-networkpolicies-values.yaml"), "NetworkPolicy").is_empty());
}

#[test]
fn no_secret_carries_a_credential_and_every_credential_comes_from_a_secret() {
    for values in VALUES {
        let docs = rendered(values);
        assert!(of_kind(&docs, "Secret").is_empty(), "{values}: the chart renders no Secret");
        for (name, pod) in pods(&docs) {
            for c in containers(pod) {
                for e in at(c, "env").as_sequence().into_iter().flatten() {
                    let var = str_at(e, "name");
                    let secret =
                        ["SECRET", "TOKEN", "PASSWORD", "DATABASE_URL", "ACCESS_KEY"].iter().any(|w| var.contains(w));
                    if secret && !var.ends_with("_PATH") {
                        assert!(at(e, "value").is_null(), "{values} {name}: {var} is a literal");
                        assert!(!at(e, "valueFrom.secretKeyRef").is_null(), "{values} {name}: {var} from a Secret");
                    }
                }
            }
        }
    }
}

/// The binary a container runs, from its image name (`guardline-<binary>`).
fn binary(image: &str) -> (String, Vec<&'static str>) {
    let name = image.rsplit('/').next().unwrap_or_default().split(':').next().unwrap_or_default();
    match name {
        "guardline-cli" => ("guardline".into(), vec!["health"]),
        "guardline-operator" => (name.into(), vec!["run"]),
        _ => (name.into(), vec![]),
    }
}

#[test]
fn every_setting_the_chart_passes_is_one_its_binary_accepts() {
    for values in VALUES {
        for (name, pod) in pods(&rendered(values)) {
            for c in containers(pod) {
                let (bin, sub) = binary(str_at(c, "image"));
                let accepted = accepted_env(&bin, &sub).expect("the binary's --help");
                assert!(!accepted.is_empty(), "{bin}: its --help names its variables");
                for e in at(c, "env").as_sequence().into_iter().flatten() {
                    let var = str_at(e, "name");
                    assert!(accepted.iter().any(|a| a == var), "{values} {name}: {bin} has no {var}");
                }
            }
        }
    }
}

#[test]
fn the_crds_ship_as_templates_with_a_keep_policy() {
    let docs = rendered("ci/minimal-values.yaml");
    let crds = of_kind(&docs, "CustomResourceDefinition");
    let names: Vec<&str> = crds.iter().map(|c| str_at(c, "metadata.name")).collect();
    assert_eq!(names, ["tenantkeypolicies.guardline.io", "retentionpolicies.guardline.io"]);
    for c in &crds {
        assert_eq!(at(c, "metadata.annotations").get("helm.sh/resource-policy").and_then(Value::as_str), Some("keep"));
    }
    // The same schema as the committed files (which a test keeps equal to the code's).
    let committed = std::fs::read_to_string(guardline_chart::chart().join("files/crds.yaml")).expect("crds");
    let committed = documents(&committed);
    for (shipped, file) in crds.iter().zip(&committed) {
        assert_eq!(numbers_as_floats(at(shipped, "spec")), numbers_as_floats(at(file, "spec")));
    }
    let off = template(&["ci/minimal-values.yaml"], &["crds.enabled=false"]).expect("helm").expect("renders");
    assert!(of_kind(&documents(&off), "CustomResourceDefinition").is_empty());
    let unkept = template(&["ci/minimal-values.yaml"], &["crds.keep=false"]).expect("helm").expect("renders");
    assert!(!unkept.contains("helm.sh/resource-policy"));
}

#[test]
fn the_operator_has_least_privilege_and_sres_get_the_policies_through_aggregated_roles() {
    let docs = rendered("ci/minimal-values.yaml");
    let role =
        of_kind(&docs, "Role").into_iter().find(|r| str_at(r, "metadata.name") == "guardline-operator").expect("role");
    let mut grants = BTreeSet::new();
    for rule in at(role, "rules").as_sequence().into_iter().flatten() {
        for r in at(rule, "resources").as_sequence().into_iter().flatten() {
            for v in at(rule, "verbs").as_sequence().into_iter().flatten() {
                grants.insert(format!("{} {}", r.as_str().unwrap_or_default(), v.as_str().unwrap_or_default()));
            }
        }
    }
    for forbidden in ["secrets get", "pods create", "tenantkeypolicies delete", "retentionpolicies update"] {
        assert!(!grants.contains(forbidden), "{forbidden}");
    }
    for needed in ["tenantkeypolicies watch", "retentionpolicies/status patch", "events create", "leases update"] {
        assert!(grants.contains(needed), "{needed}: {grants:?}");
    }
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty(), "no cluster-wide grant to the operator");
    let aggregated: Vec<&str> = of_kind(&docs, "ClusterRole")
        .iter()
        .filter(|r| at(r, "metadata.labels").get("rbac.authorization.k8s.io/aggregate-to-edit").is_some())
        .map(|r| str_at(r, "metadata.name"))
        .collect();
    assert_eq!(aggregated, ["guardline-policies-view", "guardline-policies-edit"]);
}

#[test]
fn certificates_carry_each_components_spiffe_id() {
    let docs = rendered("ci/production-values.yaml");
    let certs = of_kind(&docs, "Certificate");
    assert_eq!(certs.len(), 7, "five components, the operator, the test client");
    for c in certs {
        let name = str_at(c, "metadata.name");
        let uri = at(c, "spec.uris").as_sequence().and_then(|u| u.first()).and_then(Value::as_str).unwrap_or_default();
        assert_eq!(uri, format!("spiffe://callcenter.example.com/ns/guardline/sa/{name}"));
        assert_eq!(str_at(c, "spec.issuerRef.name"), "company-intermediate");
        assert_eq!(str_at(c, "spec.secretName"), format!("{name}-tls"));
    }
    // Each Deployment runs as the ServiceAccount its certificate names.
    for d in of_kind(&docs, "Deployment") {
        assert_eq!(str_at(d, "spec.template.spec.serviceAccountName"), str_at(d, "metadata.name"));
    }
    let vault = rendered("ci/vault-pki-approle-values.yaml");
    let issuer = of_kind(&vault, "Issuer");
    assert_eq!(issuer.len(), 1);
    assert_eq!(str_at(issuer[0], "spec.vault.path"), "pki_int/sign/guardline");
    assert_eq!(of_kind(&vault, "Certificate").len(), 6, "the test client brings its own secret");
}

#[test]
fn probes_use_the_health_only_port_and_the_grace_period_covers_the_drain() {
    let docs = rendered("ci/production-values.yaml");
    for d in of_kind(&docs, "Deployment").into_iter().filter(|d| str_at(d, "metadata.name") != "operator") {
        let name = str_at(d, "metadata.name");
        let spec = at(d, "spec.template.spec");
        let c = containers(at(d, "spec.template"))[0];
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(at(c, &format!("{probe}.grpc.port")).as_u64(), Some(8081), "{name} {probe}");
        }
        let env = |k: &str| {
            at(c, "env")
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|e| str_at(e, "name") == k)
                .map(|e| str_at(e, "value").to_owned())
        };
        assert_eq!(env("GUARDLINE_HEALTH_LISTEN").as_deref(), Some("0.0.0.0:8081"));
        let drain: u64 =
            env("GUARDLINE_DRAIN_TIMEOUT").and_then(|d| d.trim_end_matches('s').parse().ok()).expect("drain");
        let pre_stop = at(c, "lifecycle.preStop.sleep.seconds").as_u64().expect("preStop");
        let grace = at(spec, "terminationGracePeriodSeconds").as_u64().expect("grace");
        assert!(grace > drain + pre_stop, "{name}: grace {grace} > preStop {pre_stop} + drain {drain}");
    }
}

#[test]
fn the_readme_tables_are_generated_from_the_commented_values() {
    let root = guardline_chart::root();
    let generator = root.join(".tools/readme-generator/node_modules/.bin/readme-generator");
    let dir = std::env::temp_dir().join(format!("guardline-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let copy = dir.join("README.md");
    let committed = std::fs::read_to_string(guardline_chart::chart().join("README.md")).expect("README");
    std::fs::write(&copy, &committed).expect("copy");
    let out = std::process::Command::new(&generator)
        .args(["-v", "helm/guardline/values.yaml", "-r"])
        .arg(&copy)
        .current_dir(&root)
        .output()
        .expect("readme-generator (scripts/test-deps.sh installs it)");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && !log.contains("ERROR"), "every value is documented:\n{log}");
    let generated = std::fs::read_to_string(&copy).expect("generated");
    std::fs::remove_dir_all(&dir).ok();
    assert!(generated == committed, "helm/guardline/README.md is stale: run `make chart-readme`");
    assert!(committed.contains("| `postgres.existingSecret`"), "the tables are there");
}
