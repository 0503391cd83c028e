//! CheckCall over mTLS gRPC, in requests per second, next to an empty RPC
//! (the gRPC health check) on the same server, in the same run, with the
//! same concurrency.
//!
//! A CheckCall by lead asks the lead vault for the dial target (which opens
//! the lead and writes its own audit event) and the consent: two mTLS calls.
//! By number, for a purpose needing no consent, it asks the vault only for
//! the blind index. Both count the caps and the line's health in the store
//! and write the decision row and its audit event. Embedded store (SQLite,
//! local keyring), everything in one process on two cores.
//!
//! Run: `cargo bench -p guardline-dialer-policy --bench check`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use guardline_proto::dialer::v1 as pb;
use support::{AGENT1, Tenant, cn_open, lead, start, tenant, with};
use tonic::Request;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const CLIENTS: usize = 16;
const ROUND: Duration = Duration::from_secs(5);

async fn drive<F, Fut>(make: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS).map(|i| tokio::spawn(make(i))).collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("client");
    }
    done as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let m = start(false).await;
    // Decisions are made at the mesh's clock: inside the `cn` window.
    m.clock.set(cn_open());
    let t: Tenant = tenant(&m).await;
    // One lead per client: the callee caps stay out of the way (the
    // decisions are not turned into attempts).
    let mut leads = Vec::new();
    for i in 0..CLIENTS {
        leads.push(lead(&m, &t, &format!("+861381234{i:04}"), true).await);
    }
    let health_channel = m.channel(&m.dialer_uri, "gateway");
    let token = t.tokens[AGENT1].clone();
    let mut rows = Vec::new();
    for round in 0..3 {
        let ch = health_channel.clone();
        let empty = drive(move |_| {
            let mut c = HealthClient::new(ch.clone());
            async move {
                let (t, mut n) = (Instant::now(), 0);
                while t.elapsed() < ROUND {
                    c.check(HealthCheckRequest { service: String::new() }).await.expect("health");
                    n += 1;
                }
                n
            }
        })
        .await;
        let (m, leads, t, token) = (&m, &leads, &t, &token);
        let check = |by_lead: bool| {
            drive(move |i| {
                let mut c = m.dialer();
                let (callee, purpose) = if by_lead {
                    (pb::check_call_request::Callee::LeadId(leads[i].clone()), "marketing")
                } else {
                    (pb::check_call_request::Callee::E164(format!("+861381234{i:04}")), "service")
                };
                let req = pb::CheckCallRequest {
                    tenant_id: t.id.clone(),
                    callee: Some(callee),
                    caller_line: "+14155552671".into(),
                    purpose: purpose.into(),
                    ..Default::default()
                };
                let token = token.clone();
                async move {
                    let (t, mut n) = (Instant::now(), 0);
                    while t.elapsed() < ROUND {
                        let d = c.check_call(with(&token, Request::new(req.clone()))).await.expect("check");
                        assert_eq!(d.into_inner().verdict, pb::Verdict::Allow as i32);
                        n += 1;
                    }
                    n
                }
            })
        };
        let lead = check(true).await;
        let number = check(false).await;
        rows.push((round, empty, lead, number));
    }
    println!(
        "| round | empty RPC (health) | CheckCall by lead, marketing | ratio | CheckCall by number, service | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for (round, empty, lead, number) in rows {
        println!(
            "| {} | {empty:.0} req/s | {lead:.0} req/s | {:.1} | {number:.0} req/s | {:.1} |",
            round + 1,
            empty / lead,
            empty / number
        );
    }
}
