//! `docs/api.md` is generated from the protos' comments: every RPC with
//! its description and the status codes it can return beyond the common
//! ones (its `Errors:` comment). The test fails when the committed file
//! differs (regenerate with `GUARDLINE_REGENERATE=1 cargo test -p
//! guardline-proto --test api_doc`) and when an RPC has no `Errors:` entry.

use std::path::PathBuf;

/// One RPC as its comments describe it.
#[derive(Debug)]
struct Rpc {
    service: String,
    name: String,
    signature: String,
    description: String,
    errors: Vec<(String, String)>,
}

const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Every RPC of one proto file, or the first RPC without an `Errors:` entry
/// (or with an unknown code in it).
fn parse(package: &str, proto: &str) -> Result<Vec<Rpc>, String> {
    let mut rpcs = Vec::new();
    let mut service = None::<String>;
    let mut comment: Vec<String> = Vec::new();
    for line in proto.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("service ") {
            service = rest.split_whitespace().next().map(|s| format!("{package}.{s}"));
            comment.clear();
        } else if let Some(c) = t.strip_prefix("//") {
            comment.push(c.strip_prefix(' ').unwrap_or(c).to_owned());
        } else if let (Some(rest), Some(svc)) = (t.strip_prefix("rpc "), &service) {
            let name = rest.split('(').next().unwrap_or_default().to_owned();
            let (mut description, mut errors, mut in_errors) = (Vec::new(), String::new(), false);
            for c in comment.drain(..) {
                if c.starts_with("buf:") {
                    continue;
                }
                if let Some(e) = c.strip_prefix("Errors:") {
                    in_errors = true;
                    errors.push_str(e.trim());
                } else if in_errors {
                    errors.push(' ');
                    errors.push_str(c.trim());
                } else {
                    description.push(c.trim().to_owned());
                }
            }
            if errors.is_empty() {
                return Err(format!("{svc}.{name} has no `Errors:` comment"));
            }
            let mut list = Vec::new();
            for entry in errors.split("; ") {
                let (code, when) = entry.split_once(' ').unwrap_or((entry, ""));
                if CODES.contains(&code) {
                    list.push((code.to_owned(), when.to_owned()));
                } else if entry.starts_with("none") || entry.starts_with("as `") {
                    list.push((String::new(), entry.to_owned()));
                } else {
                    return Err(format!("{svc}.{name}: `{code}` is not a gRPC status code"));
                }
            }
            rpcs.push(Rpc {
                service: svc.clone(),
                name,
                signature: rest.trim_end_matches(';').to_owned(),
                description: description.join(" "),
                errors: list,
            });
        } else {
            comment.clear();
        }
    }
    Ok(rpcs)
}

fn protos() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guardline");
    let mut files = Vec::new();
    for service in ["identity", "vault", "dialer", "recordings", "audit"] {
        let dir = root.join(service).join("v1");
        for e in std::fs::read_dir(&dir).expect("proto dir") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "proto") {
                let text = std::fs::read_to_string(&path).expect("proto");
                files.push((format!("guardline.{service}.v1"), text));
            }
        }
    }
    files
}

const COMMON: &str = "\
| code | when |
|---|---|
| `UNAUTHENTICATED` | a user's RPC without a valid bearer token (missing, malformed, expired, signed by an unknown key) |
| `PERMISSION_DENIED` | the caller's service identity is not on the RPC's allow-list, or the user lacks the permission or belongs to another tenant |
| `INVALID_ARGUMENT` | the request is malformed (a message that does not decode, invalid UTF-8 included, answers `malformed message` and nothing of the decoder's text); a field violation carries a standard `google.rpc.BadRequest` in `grpc-status-details-bin` whose `field` is the field's dotted path (`lead.phones[0]`) and whose description never repeats the value. Authorization comes first: a caller who may not act is refused before any rule of the request is checked |
| `OUT_OF_RANGE` | a message larger than the service's `--max-message-bytes` (4 MiB by default, set per service binary; streams such as `UploadRecording` and `ImportLeads` send many messages below it) |
| `RESOURCE_EXHAUSTED` | the server is over `--max-in-flight` requests (answered at once, never queued; retry with back-off), or the caller is over its user, tenant or service rate limit (`--rate-limit-*`; the `google.rpc.RetryInfo` says when to retry) |
| `DEADLINE_EXCEEDED` | the request took longer than `--request-timeout` |
| `UNAVAILABLE` | the server is draining, or a dependency (audit, identity, Vault, the database) cannot be reached right now; retry |
| `INTERNAL` | a fault of ours, with a generic message; details go to the server's log only |

A client certificate from another CA, or none, is refused at the TLS
handshake, before any RPC.
";

fn render(rpcs: &[Rpc]) -> String {
    let mut out = String::from(
        "# The Guardline gRPC API: methods and their errors\n\n\
         Generated from the comments of `proto/guardline/*/v1/*.proto` by\n\
         `proto/tests/api_doc.rs`; do not edit by hand. The messages are\n\
         documented in the protos themselves.\n\n\
         ## Codes every RPC can return\n\n",
    );
    out.push_str(COMMON);
    let mut service = "";
    for r in rpcs {
        if r.service != service {
            service = &r.service;
            out.push_str(&format!("\n## `{service}`\n"));
        }
        out.push_str(&format!("\n### {}\n\n`rpc {}`\n\n{}\n\n", r.name, r.signature, r.description));
        out.push_str("| code | when |\n|---|---|\n");
        for (code, when) in &r.errors {
            let code = if code.is_empty() { "—".to_owned() } else { format!("`{code}`") };
            out.push_str(&format!("| {code} | {when} |\n"));
        }
    }
    out
}

#[test]
fn docs_api_md_lists_every_rpc_with_its_codes() {
    let mut rpcs = Vec::new();
    for (package, text) in protos() {
        rpcs.extend(parse(&package, &text).unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(rpcs.len() >= 80, "only {} RPCs found", rpcs.len());
    let doc = render(&rpcs);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    if std::env::var_os("GUARDLINE_REGENERATE").is_some() {
        std::fs::write(&path, &doc).expect("write docs/api.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/api.md is not what the protos say: regenerate it with GUARDLINE_REGENERATE=1 cargo test -p guardline-proto --test api_doc"
    );
}

#[test]
fn an_rpc_without_errors_or_with_an_unknown_code_is_refused() {
    let without = "service S {\n  // Does a thing.\n  rpc Thing(A) returns (B);\n}\n";
    assert_eq!(parse("p", without).expect_err("no entry"), "p.S.Thing has no `Errors:` comment");
    let unknown =
        "service S {\n  // Does a thing.\n  // Errors: NOT_FOND when missing\n  rpc Thing(A) returns (B);\n}\n";
    assert_eq!(parse("p", unknown).expect_err("typo"), "p.S.Thing: `NOT_FOND` is not a gRPC status code");
    let ok = "service S {\n  // Does a thing.\n  // Errors: NOT_FOUND when\n  //   missing; ABORTED raced\n  rpc Thing(A) returns (B);\n}\n";
    let r = parse("p", ok).expect("parses");
    assert_eq!(r[0].errors, [("NOT_FOUND".into(), "when missing".into()), ("ABORTED".into(), "raced".into())]);
}
