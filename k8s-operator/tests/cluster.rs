//! What only a real Kubernetes API server can show, for platform teams to
//! run against a disposable cluster (kind, k3d, a test namespace):
//!
//! ```sh
//! kubectl create namespace guardline-test
//! cargo test -p guardline-operator --test cluster -- --ignored --test-threads=1
//! ```
//!
//! They use the current kubeconfig context, install the CRDs by
//! server-side apply, and clean up what they create. None can run on the
//! machines CI uses (no API server can be installed there), so they are
//! `#[ignore]`d; the mocked-API tests in `controller.rs` and
//! `retention.rs` cover the same requests without a cluster.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

const NS: &str = "guardline-test";

async fn client() -> Client {
    Client::try_default().await.expect("a kubeconfig context with a reachable API server")
}

async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/guardline/files/crds.yaml"))
        .expect("committed CRDs");
    for doc in yaml.split("\n---\n").filter(|d| !d.trim().trim_start_matches("---").trim().is_empty()) {
        let crd: CustomResourceDefinition = serde_yaml::from_str(doc).expect("a CRD");
        let pp = PatchParams::apply("guardline-operator-test").force();
        crds.patch(&crd.name_any(), &pp, &Patch::Apply(&crd)).await.expect("applied");
    }
    // The API server serves a new CRD after a moment: wait for Established.
    for name in ["tenantkeypolicies.guardline.io", "retentionpolicies.guardline.io"] {
        let cond = kube::runtime::conditions::is_crd_established();
        let wait = kube::runtime::wait::await_condition(crds.clone(), name, cond);
        tokio::time::timeout(Duration::from_secs(30), wait).await.expect("established in time").expect("watch");
    }
}

fn example(name: &str) -> serde_json::Value {
    let path = format!("{}/../docs/operator/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("example")).expect("yaml")
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server"]
async fn the_api_server_accepts_the_examples_and_refuses_a_one_minute_period() {
    let client = client().await;
    install_crds(&client).await;
    let gvk = kube::api::GroupVersionKind::gvk("guardline.io", "v1alpha1", "TenantKeyPolicy");
    let ar = kube::api::ApiResource::from_gvk(&gvk);
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
    let mut good = example("tenantkeypolicy-default.yaml");
    good["metadata"]["namespace"] = NS.into();
    let obj: kube::api::DynamicObject = serde_json::from_value(good).expect("object");
    api.create(&PostParams::default(), &obj).await.expect("a valid policy is accepted");
    let mut bad = example("tenantkeypolicy-default.yaml");
    bad["metadata"]["name"] = "one-minute".into();
    bad["metadata"]["namespace"] = NS.into();
    bad["spec"]["rotationPeriod"] = "1m".into();
    let obj: kube::api::DynamicObject = serde_json::from_value(bad).expect("object");
    let refused = api.create(&PostParams::default(), &obj).await.expect_err("a one-minute period");
    assert!(refused.to_string().contains("spec.rotationPeriod"), "{refused}");
    api.delete("default", &DeleteParams::default()).await.expect("cleaned up");
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server"]
async fn one_of_two_replicas_leads_and_the_other_takes_over_when_it_leaves() {
    let client = client().await;
    let manager = |id: &str| {
        kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "guardline-operator-test")
            .with_namespace(NS)
            .with_identity(id)
            .with_duration(10)
            .with_grace(2)
            .build()
    };
    let (a, b) = (manager("replica-a").await.expect("a"), manager("replica-b").await.expect("b"));
    let (mut a_leads, a_task) = a.watch().await;
    let (mut b_leads, b_task) = b.watch().await;
    // Exactly one of them gets the lease.
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            tokio::select! {
                _ = a_leads.changed() => if *a_leads.borrow() { return 'a' },
                _ = b_leads.changed() => if *b_leads.borrow() { return 'b' },
            }
        }
    })
    .await
    .expect("a leader within 30 s");
    assert!(!(*a_leads.borrow() && *b_leads.borrow()), "never two leaders");
    // The leader leaves (its receiver dropped: the lease is released); the other takes over.
    let (mut other, leaving) = if first == 'a' { (b_leads, (a_leads, a_task)) } else { (a_leads, (b_leads, b_task)) };
    drop(leaving.0);
    leaving.1.await.expect("task").expect("released");
    tokio::time::timeout(Duration::from_secs(30), other.wait_for(|leads| *leads)).await.expect("taken over").ok();
    Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client, NS)
        .delete("guardline-operator-test", &DeleteParams::default())
        .await
        .ok();
}
