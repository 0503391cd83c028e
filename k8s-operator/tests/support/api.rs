//! A mocked Kubernetes API server, kube-rs controller-rs style: each
//! scenario takes the operator's requests one by one, asserts method, path
//! and body, and answers as the API server would. A request the scenario
//! does not expect is never answered, so the reconcile hangs and the
//! test's timeout fails it.

use std::sync::Arc;

use guardline_operator::controller::Context;
use guardline_runtime::clock::Clock;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Recorder;
use serde_json::Value;

/// The test's end of the mocked API server.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The namespace the operator watches.
pub const NS: &str = "guardline";

/// The query of the operator's status applies.
pub const STATUS: &str = "/status?&force=true&fieldManager=guardline-operator";

/// The path events are created at.
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/guardline/events?";

/// A context whose Kubernetes API is the mock, and the mock's handle.
pub fn context<M>(mesh: M, clock: Clock) -> (Arc<Context<M>>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let recorder = Recorder::new(client.clone(), "guardline-operator".into());
    (Arc::new(Context::new(client, recorder, mesh, clock)), handle)
}

/// The next request, checked; answered with `answer(body)`.
pub async fn expect(handle: &mut Handle, method: Method, path: &str, answer: impl FnOnce(&Value) -> Value) -> Value {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "{}", request.uri());
    assert_eq!(request.uri().to_string(), path);
    let bytes = request.into_body().collect_bytes().await.expect("body");
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("json body") };
    let reply = serde_json::to_vec(&answer(&body)).expect("reply");
    send.send_response(Response::builder().body(Body::from(reply)).expect("response"));
    body
}

/// The object as the API server has it after a status apply.
pub fn applied(stored: &Value, patch: &Value) -> Value {
    let mut object = stored.clone();
    object["status"] = patch["status"].clone();
    object
}

/// Condition `type_` of a status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == type_)).expect("condition")
}
