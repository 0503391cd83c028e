//! Guardline's Kubernetes operator: tenant key rotation and retention,
//! driven by the `TenantKeyPolicy` and `RetentionPolicy` resources.
//!
//! - [`crd`]: the resources as Rust types, the source of the CRDs.
//! - [`schedule`]: periods, cron schedules and backoff, pure.
//! - [`rotation`]: what to do next for one tenant's rotation, pure.
//! - [`retention`]: when a retention run is due and which periods fall
//!   below the legal floors, pure.
//! - [`conditions`]: conditions by Kubernetes API conventions.
//! - [`mesh`]: the port to Vault and the services' key RPCs.
//! - [`executor`]: one step of one tenant's rotation.
//! - [`controller`]: the `TenantKeyPolicy` reconcile: tenants, steps,
//!   events and a bounded status.
//! - [`purge`]: one tenant's retention run, its audit log checked
//!   before and after the prune.
//! - [`retention_controller`]: the `RetentionPolicy` reconcile.
//! - [`leader`]: leader election over a `Lease`.
//! - [`metrics`]: reconciles, rotation and retention progress.
//! - [`run`]: `guardline-operator run`: leader election, both
//!   controllers, graceful shutdown.

pub mod conditions;
pub mod controller;
pub mod crd;
pub mod executor;
pub mod leader;
pub mod mesh;
pub mod metrics;
pub mod purge;
pub mod retention;
pub mod retention_controller;
pub mod rotation;
pub mod run;
pub mod schedule;

use kube::CustomResourceExt;

/// The CRDs of every resource, as one YAML stream (what `crdgen` prints).
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [crd::TenantKeyPolicy::crd(), crd::RetentionPolicy::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
