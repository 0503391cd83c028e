//! Identity over real mTLS gRPC, every scenario on SQLite and on PostgreSQL.

mod harness;

use guardline_proto::identity::v1 as pb;
use guardline_runtime::error::{error_info, field_violations};
use guardline_runtime::token::{IdentityKeys, TokenVerifier};
use harness::{PASSWORD, bearer, login, tenant, user};
use tonic::Code;

/// The refusal's code, and the reason of its `ErrorInfo` (identity's own
/// refusals) or else its message (an authorization rule's explanation).
fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let s = r.expect_err("refused");
    let why = error_info(&s).map(|i| i.reason).unwrap_or_else(|| s.message().to_owned());
    (s.code(), why)
}

fn violated_field<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> String {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    field_violations(&s).first().map(|v| v.field.clone()).expect("names the field")
}

async fn onboarding_with_totp_for_admins(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let t = tenant(&mut platform, "Acme", None).await;
    let mut c = h.client("gateway");

    // A second admin must enroll TOTP before logging in.
    user(&mut c, &t, "admin2", &["admin"], &[]).await;
    let (code2, msg) = code(login(&mut c, &t.id, "admin2", PASSWORD, "203.0.113.7", "d", "CN-31").await);
    assert_eq!(code2, Code::FailedPrecondition, "{msg}");
    assert_eq!(msg, "ENROLL_SECOND_FACTOR");

    // The first admin logged in with TOTP; without a code it is refused, and
    // the code already spent on that login is not accepted twice.
    let (c3, _) = code(login(&mut c, &t.id, "admin", PASSWORD, "203.0.113.7", "admin-laptop", "CN-31").await);
    assert_eq!(c3, Code::Unauthenticated);
    let replay = pb::LoginRequest {
        tenant_id: t.id.clone(),
        login: "admin".into(),
        password: PASSWORD.into(),
        totp_code: t.spent_code.clone(),
        context: harness::ctx("203.0.113.7", "admin-laptop", "CN-31"),
    };
    assert_eq!(code(c.login(replay).await).0, Code::Unauthenticated, "a TOTP code is accepted once");

    // Teams, an agent, and the agent's token carrying its permissions.
    let team = c
        .create_team(bearer(pb::CreateTeamRequest { tenant_id: t.id.clone(), name: "North".into() }, &t.admin_token))
        .await
        .expect("team")
        .into_inner();
    let agent = user(&mut c, &t, "agent1", &["agent"], std::slice::from_ref(&team.id)).await;
    let lead = user(&mut c, &t, "lead1", &["team_lead"], &[]).await;
    let set = pb::SetTeamMembersRequest {
        tenant_id: t.id.clone(),
        team_id: team.id.clone(),
        member_ids: vec![agent.clone()],
        lead_ids: vec![lead.clone()],
    };
    let team = c.set_team_members(bearer(set, &t.admin_token)).await.expect("members").into_inner();
    assert_eq!((team.member_ids, team.lead_ids), (vec![agent.clone()], vec![lead.clone()]));
    let tokens = login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "phone", "CN-31").await.expect("agent login");

    // Another service verifies the token locally with keys fetched from identity.
    let verifier = TokenVerifier::new(IdentityKeys::new(h.channel("lead-vault")));
    let claims = verifier.verify(&tokens.access_token).await.expect("valid");
    assert_eq!((claims.tenant.as_str(), claims.sub.as_str()), (t.id.as_str(), agent.as_str()));
    assert!(claims.perms.contains(&"lead.read:own".to_owned()), "{:?}", claims.perms);
    assert_eq!(claims.teams, vec![team.id.clone()]);
    assert!(claims.exp - claims.iat <= 15 * 60);

    // Authorize answers with the deciding rule.
    let resource =
        |owner: &str| Some(pb::Resource { tenant_id: t.id.clone(), owner_id: owner.into(), team_id: team.id.clone() });
    let own = c
        .authorize(pb::AuthorizeRequest {
            subject: Some(pb::authorize_request::Subject::AccessToken(tokens.access_token.clone())),
            action: "lead.read".into(),
            resource: resource(&agent),
        })
        .await
        .expect("authorize")
        .into_inner();
    assert!(own.allowed, "{}", own.rule);
    let other = c
        .authorize(pb::AuthorizeRequest {
            subject: Some(pb::authorize_request::Subject::AccessToken(tokens.access_token.clone())),
            action: "lead.read".into(),
            resource: resource("someone-else"),
        })
        .await
        .expect("authorize")
        .into_inner();
    assert!(!other.allowed);
    // A principal is judged for a user of its own tenant.
    let lead_sees_team = c
        .authorize(bearer(
            pb::AuthorizeRequest {
                subject: Some(pb::authorize_request::Subject::Principal(guardline_proto::common::v1::Principal {
                    tenant_id: t.id.clone(),
                    user_id: lead.clone(),
                    roles: vec!["team_lead".into()],
                    team_ids: vec![team.id.clone()],
                    service_identity: String::new(),
                })),
                action: "lead.read".into(),
                resource: resource(&agent),
            },
            &t.admin_token,
        ))
        .await
        .expect("authorize")
        .into_inner();
    assert!(lead_sees_team.allowed, "{}", lead_sees_team.rule);

    // Every change went to the audit outbox in its transaction.
    let db = h.db().await;
    assert!(guardline_audit_client::outbox::pending(&db).await.expect("count") >= 8);
}

async fn wrong_role_wrong_tenant_and_bad_input_are_refused(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let a = tenant(&mut platform, "A", None).await;
    let b = tenant(&mut platform, "B", None).await;
    let mut c = h.client("gateway");
    user(&mut c, &a, "agent1", &["agent"], &[]).await;
    let agent =
        login(&mut c, &a.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.expect("login").into_inner_token();
    let new_user = |tenant: &str, login: &str, password: &str, roles: Vec<String>| pb::CreateUserRequest {
        tenant_id: tenant.into(),
        login: login.into(),
        display_name: "X".into(),
        password: password.into(),
        roles,
        team_ids: vec![],
    };

    // Wrong role: an agent cannot manage users.
    let (k, msg) = code(c.create_user(bearer(new_user(&a.id, "x1", PASSWORD, vec![]), &agent)).await);
    assert_eq!(k, Code::PermissionDenied, "{msg}");
    // Wrong tenant: A's admin cannot touch B.
    let (k, msg) = code(c.create_user(bearer(new_user(&b.id, "x2", PASSWORD, vec![]), &a.admin_token)).await);
    assert_eq!((k, msg.as_str()), (Code::PermissionDenied, "cross-tenant access is never allowed"));
    assert_eq!(
        code(c.get_tenant(bearer(pb::GetTenantRequest { tenant_id: b.id.clone() }, &a.admin_token)).await).0,
        Code::NotFound
    );
    // A service identity is not a platform admin.
    let (k, _) = code(c.create_tenant(pb::CreateTenantRequest { name: "Evil".into(), ..Default::default() }).await);
    assert_eq!(k, Code::PermissionDenied);
    // Tenant data needs a user token of that tenant: a mesh certificate alone
    // reads no tenant and no roles, another tenant's admin finds nothing.
    let (k, _) = code(c.list_roles(pb::ListRolesRequest { tenant_id: a.id.clone() }).await);
    assert_eq!(k, Code::PermissionDenied);
    let (k, _) = code(c.get_tenant(pb::GetTenantRequest { tenant_id: a.id.clone() }).await);
    assert_eq!(k, Code::PermissionDenied);
    let (k, _) = code(c.list_roles(bearer(pb::ListRolesRequest { tenant_id: a.id.clone() }, &b.admin_token)).await);
    assert_eq!(k, Code::NotFound);
    // Authorize judges no principal of another tenant: B's admin cannot probe
    // A's custom roles, nor can a bare mesh identity.
    let role = pb::CreateRoleRequest {
        tenant_id: a.id.clone(),
        name: "a_secret_role".into(),
        permissions: vec!["lead.read:tenant".into()],
    };
    c.create_role(bearer(role, &a.admin_token)).await.expect("A's own role");
    let probe = |roles: Vec<String>| pb::AuthorizeRequest {
        subject: Some(pb::authorize_request::Subject::Principal(guardline_proto::common::v1::Principal {
            tenant_id: a.id.clone(),
            user_id: "u-anyone".into(),
            roles,
            ..Default::default()
        })),
        action: "lead.read".into(),
        resource: Some(pb::Resource { tenant_id: a.id.clone(), ..Default::default() }),
    };
    for roles in [vec!["a_secret_role".to_owned()], vec!["no_such_role".to_owned()]] {
        let (k, msg) = code(c.authorize(bearer(probe(roles.clone()), &b.admin_token)).await);
        assert_eq!(
            (k, msg.as_str()),
            (Code::PermissionDenied, "a principal is judged only for a user of its own tenant: send the access token")
        );
        assert_eq!(code(c.authorize(probe(roles)).await).0, Code::PermissionDenied, "a bare mesh identity");
    }
    let own = c.authorize(bearer(probe(vec!["a_secret_role".into()]), &a.admin_token)).await.expect("A judges A");
    assert!(own.into_inner().allowed);

    // A forged token is refused.
    let (k, _) = code(
        c.list_roles(bearer(pb::ListRolesRequest { tenant_id: a.id.clone() }, "eyJhbGciOiJFZERTQSJ9.e30.AAAA")).await,
    );
    assert_eq!(k, Code::Unauthenticated);

    // Bad input names the field, and nothing is written.
    let admin = &a.admin_token;
    assert_eq!(
        violated_field(c.create_user(bearer(new_user(&a.id, "No Spaces!", PASSWORD, vec![]), admin)).await),
        "login"
    );
    assert_eq!(
        violated_field(c.create_user(bearer(new_user(&a.id, "shorty", "short", vec![]), admin)).await),
        "password"
    );
    assert_eq!(
        violated_field(
            c.create_user(bearer(new_user(&a.id, "ghost", PASSWORD, vec!["agent".into(), "wizard".into()]), admin))
                .await
        ),
        "roles[1]"
    );
    assert_eq!(
        violated_field(c.create_user(bearer(new_user(&a.id, "agent1", PASSWORD, vec![]), admin)).await),
        "login"
    );
    let role = |perms: Vec<&str>| pb::CreateRoleRequest {
        tenant_id: a.id.clone(),
        name: "qa".into(),
        permissions: perms.into_iter().map(Into::into).collect(),
    };
    assert_eq!(
        violated_field(c.create_role(bearer(role(vec!["lead.read:team", "lead.read"]), admin)).await),
        "permissions[1]"
    );
    let bad_tz = pb::CreateTenantRequest { name: "X".into(), time_zone: "Mars/Olympus".into(), ..Default::default() };
    assert_eq!(violated_field(platform.create_tenant(bad_tz).await), "time_zone");
    let users = c
        .list_users(bearer(pb::ListUsersRequest { tenant_id: a.id.clone(), ..Default::default() }, admin))
        .await
        .expect("list")
        .into_inner()
        .users;
    assert_eq!(
        users.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(),
        vec!["admin", "agent1"],
        "no half-written users"
    );
    let created =
        c.create_role(bearer(role(vec!["lead.read:team", "audit.read"]), admin)).await.expect("role").into_inner();
    assert_eq!(created.permissions, vec!["lead.read:team", "audit.read"]);
}

async fn lockout_after_repeated_failures(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let policy = pb::LoginRiskPolicy { low: 1, medium: 1, high: 3, max_failed_attempts: 3, lockout_seconds: 60 };
    let t = tenant(&mut platform, "Locky", Some(policy)).await;
    let mut c = h.client("gateway");
    user(&mut c, &t, "agent1", &["agent"], &[]).await;
    for _ in 0..3 {
        let (k, msg) = code(login(&mut c, &t.id, "agent1", "wrong password!!", "203.0.113.7", "d", "CN-31").await);
        assert_eq!((k, msg.as_str()), (Code::Unauthenticated, "INVALID_CREDENTIALS"));
    }
    let (k, msg) = code(login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await);
    assert_eq!((k, msg.as_str()), (Code::ResourceExhausted, "ACCOUNT_LOCKED"), "locked even with the right password");
    let events = c
        .list_login_events(bearer(
            pb::ListLoginEventsRequest { tenant_id: t.id.clone(), ..Default::default() },
            &t.admin_token,
        ))
        .await
        .expect("events")
        .into_inner()
        .events;
    let reasons: Vec<&str> = events.iter().filter(|e| !e.success).map(|e| e.failure_reason.as_str()).collect();
    assert_eq!(reasons, vec!["locked", "bad_password", "bad_password", "bad_password"], "newest first");
}

/// One refresh token spent at once through two identity replicas: one
/// spend wins, the other is reuse and revokes the family, whichever replica
/// served it.
async fn a_refresh_token_spent_on_two_replicas_at_once_is_reuse(postgres: bool) {
    let mut h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let t = tenant(&mut platform, "Twice", None).await;
    let mut a = h.client("gateway");
    let mut b = h.second_replica("gateway").await;
    user(&mut a, &t, "agent1", &["agent"], &[]).await;
    let first = login(&mut a, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.expect("login");
    let spend = |c: &mut harness::Client| {
        let mut c = c.clone();
        let token = first.refresh_token.clone();
        async move { c.refresh(pb::RefreshRequest { refresh_token: token, context: None }).await }
    };
    let (ra, rb) = tokio::join!(spend(&mut a), spend(&mut b));
    let (won, lost): (Vec<_>, Vec<_>) = [ra, rb].into_iter().partition(Result::is_ok);
    assert_eq!((won.len(), lost.len()), (1, 1), "exactly one spend wins");
    let lost = lost.into_iter().find_map(Result::err).expect("the other");
    assert_eq!(code(Err::<(), _>(lost)).1, "REFRESH_TOKEN_REUSED");
    let winner = won.into_iter().find_map(Result::ok).expect("won").into_inner().refresh_token;
    let (k, _) = code(b.refresh(pb::RefreshRequest { refresh_token: winner, context: None }).await);
    assert_eq!(k, Code::Unauthenticated, "the family is revoked on every replica");
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let t = tenant(&mut platform, "Fresh", None).await;
    let mut c = h.client("gateway");
    user(&mut c, &t, "agent1", &["agent"], &[]).await;
    let first = login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.expect("login");
    let second = c
        .refresh(pb::RefreshRequest { refresh_token: first.refresh_token.clone(), context: None })
        .await
        .expect("refresh")
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    let (k, msg) =
        code(c.refresh(pb::RefreshRequest { refresh_token: first.refresh_token.clone(), context: None }).await);
    assert_eq!(k, Code::Unauthenticated);
    assert_eq!(msg, "REFRESH_TOKEN_REUSED");
    let (k, _) =
        code(c.refresh(pb::RefreshRequest { refresh_token: second.refresh_token.clone(), context: None }).await);
    assert_eq!(k, Code::Unauthenticated, "the whole family is revoked");
    // Disabling a user ends its sessions.
    let third = login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.expect("login");
    let uid = c
        .list_users(bearer(pb::ListUsersRequest { tenant_id: t.id.clone(), ..Default::default() }, &t.admin_token))
        .await
        .expect("users")
        .into_inner()
        .users
        .into_iter()
        .find(|u| u.login == "agent1")
        .expect("agent")
        .id;
    c.disable_user(bearer(pb::DisableUserRequest { tenant_id: t.id.clone(), user_id: uid }, &t.admin_token))
        .await
        .expect("disable");
    assert_eq!(
        code(c.refresh(pb::RefreshRequest { refresh_token: third.refresh_token, context: None }).await).0,
        Code::Unauthenticated
    );
    assert_eq!(
        code(login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await).0,
        Code::Unauthenticated
    );
}

async fn unusual_logins_follow_the_tenant_policy(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    // low: alert, medium: demand TOTP, high: deny.
    let t = tenant(&mut platform, "Risky", None).await;
    let mut c = h.client("gateway");
    user(&mut c, &t, "agent1", &["agent"], &[]).await;
    let first = login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "laptop", "CN-31").await.expect("first login");
    assert_eq!(first.risk.expect("risk").level, pb::RiskLevel::None as i32);
    // New device only: low, allowed with an alert.
    let low = login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.9", "phone", "CN-31")
        .await
        .expect("low risk is allowed")
        .risk
        .expect("risk");
    assert_eq!(
        (low.level, low.reasons, low.action),
        (pb::RiskLevel::Low as i32, vec!["new_device".to_owned()], pb::RiskAction::AllowAndAlert as i32)
    );
    // New region (Hangzhou): medium, TOTP demanded but none enrolled.
    let (k, msg) = code(login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "laptop", "CN-33").await);
    assert_eq!((k, msg.as_str()), (Code::PermissionDenied, "RISK_NEEDS_SECOND_FACTOR"));
    // New York minutes after Shanghai: impossible travel, denied.
    let (k, msg) = code(login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "laptop", "US-NY").await);
    assert_eq!((k, msg.as_str()), (Code::PermissionDenied, "RISK_DENIED"));
    let events = c
        .list_login_events(bearer(
            pb::ListLoginEventsRequest { tenant_id: t.id.clone(), ..Default::default() },
            &t.admin_token,
        ))
        .await
        .expect("events")
        .into_inner()
        .events;
    let denied = events.iter().find(|e| e.failure_reason == "risk_denied").expect("recorded");
    assert!(denied.risk.as_ref().expect("risk").reasons.contains(&"impossible_travel".to_owned()));
}

async fn a_source_address_is_blocked_after_a_burst_of_failures(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let t = tenant(&mut platform, "Sprayed", None).await;
    let mut c = h.client("gateway");
    user(&mut c, &t, "agent1", &["agent"], &[]).await;
    // Password spraying: many logins, one each, all from one address.
    for i in 0..20 {
        let r = login(&mut c, &t.id, &format!("guess{i}"), "wrong password!!", "198.51.100.66", "d", "CN-31").await;
        assert_eq!(code(r).0, Code::Unauthenticated);
    }
    let (k, msg) = code(login(&mut c, &t.id, "agent1", PASSWORD, "198.51.100.66", "d", "CN-31").await);
    assert_eq!((k, msg.as_str()), (Code::ResourceExhausted, "SOURCE_LOCKED"));
    assert!(
        login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.is_ok(),
        "other addresses are unaffected"
    );
    // A caller that is not a trusted gateway cannot choose its address: the
    // one it claims is ignored, its own peer address is what is blocked.
    let mut direct = h.client("dialer-app");
    for i in 0..20 {
        let claimed = format!("192.0.2.{i}");
        let r = login(&mut direct, &t.id, &format!("spray{i}"), "wrong password!!", &claimed, "d", "CN-31").await;
        assert_eq!(code(r).0, Code::Unauthenticated);
    }
    let (k, msg) = code(login(&mut direct, &t.id, "agent1", PASSWORD, "203.0.113.8", "d", "CN-31").await);
    assert_eq!(
        (k, msg.as_str()),
        (Code::ResourceExhausted, "SOURCE_LOCKED"),
        "the peer address is blocked, whatever is claimed"
    );
    assert!(login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.8", "d", "CN-31").await.is_ok(), "the gateway's user");
}

async fn tokens_survive_a_signing_key_rotation_and_a_restart(postgres: bool) {
    use guardline_identity::service::keys::{OwnKeys, Signers};
    use guardline_runtime::token::Claims;
    let dir = tempfile::tempdir().expect("tmp");
    let url = match postgres {
        true => guardline_testkit::Postgres::shared().await.expect("postgres").database().await.expect("db"),
        false => format!("sqlite://{}", dir.path().join("keys.db").display()),
    };
    let args =
        guardline_runtime::args::DatabaseArgs { database_url: url, database_max_connections: 2, database_schema: None };
    let db = guardline_runtime::storage::open::<guardline_identity::store::Migrator>(&args).await.expect("db");
    let master = guardline_keys::SecretKey::generate().expect("key");
    let keyring = |m: guardline_keys::SecretKey| -> std::sync::Arc<dyn guardline_keys::KeyProvider> {
        std::sync::Arc::new(
            guardline_keys::local::LocalKeyring::open(&dir.path().join("keyring.json"), m).expect("keyring"),
        )
    };
    let envelope = std::sync::Arc::new(guardline_keys::Envelope::new(
        keyring(master.clone()),
        db.clone(),
        std::time::Duration::from_secs(60),
    ));
    let day = std::time::Duration::from_secs(86_400);
    let store = guardline_audit_client::AuditedDb::new(db.clone(), Default::default());
    let signers = Signers::load(store.clone(), envelope, day).await.expect("signers");
    let claims = Claims::new("t1", "u1", vec!["agent".into()], vec![], std::time::Duration::from_secs(600));
    let before = signers.sign(&claims).await.expect("sign");
    signers.rotate(chrono::Utc::now()).await.expect("rotate");
    let after = signers.sign(&claims).await.expect("sign");
    let verifier = TokenVerifier::new(OwnKeys(signers.clone()));
    assert!(verifier.verify(&before).await.is_ok(), "an unexpired token of the retired key stays valid");
    assert!(verifier.verify(&after).await.is_ok());
    let later = chrono::Utc::now() + chrono::Duration::minutes(17);
    assert_eq!(signers.published(later).await.len(), 1, "the retired key is withdrawn once its tokens expired");

    // A restart unseals the stored keys and keeps verifying.
    let envelope = std::sync::Arc::new(guardline_keys::Envelope::new(
        keyring(master),
        db.clone(),
        std::time::Duration::from_secs(60),
    ));
    let reloaded = Signers::load(store, envelope, day).await.expect("reload");
    let verifier = TokenVerifier::new(OwnKeys(reloaded.clone()));
    assert!(verifier.verify(&before).await.is_ok() && verifier.verify(&after).await.is_ok());

    // Two replicas on one database: a rotation or a revocation in one is
    // what the other publishes and signs with.
    let (a, b) = (signers, reloaded);
    let kid = |token: &str| {
        use base64::Engine;
        let header = token.split('.').next().expect("header");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url");
        let header: serde_json::Value = serde_json::from_slice(&json).expect("json");
        header["kid"].as_str().expect("kid").to_owned()
    };
    a.rotate(chrono::Utc::now()).await.expect("rotate in replica A");
    let newest = kid(&a.sign(&claims).await.expect("sign"));
    let published_by_b: Vec<String> = b.published(chrono::Utc::now()).await.into_iter().map(|(k, _)| k.kid).collect();
    assert!(published_by_b.contains(&newest), "B publishes A's new key: {published_by_b:?}");
    b.rotate_if_due(chrono::Utc::now()).await.expect("B catches up");
    assert_eq!(kid(&b.sign(&claims).await.expect("sign")), newest, "B signs with the newest active key");
    a.revoke(&kid(&before), chrono::Utc::now()).await.expect("revoke in A");
    let published_by_b: Vec<String> = b.published(chrono::Utc::now()).await.into_iter().map(|(k, _)| k.kid).collect();
    assert!(!published_by_b.contains(&kid(&before)), "B withdraws what A revoked");
}

trait TokenOf {
    fn into_inner_token(self) -> String;
}

impl TokenOf for pb::LoginResponse {
    fn into_inner_token(self) -> String {
        self.access_token
    }
}

async fn parallel_guesses_and_a_replayed_code_gain_nothing(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let policy = pb::LoginRiskPolicy { low: 1, medium: 1, high: 3, max_failed_attempts: 5, lockout_seconds: 60 };
    let t = tenant(&mut platform, "Racy", Some(policy)).await;
    let mut c = h.client("gateway");
    user(&mut c, &t, "agent1", &["agent"], &[]).await;
    // 32 wrong passwords at once: exactly five are checked, the account locks.
    let guesses = (0..32).map(|i| {
        let mut c = h.client("gateway");
        let tenant = t.id.clone();
        async move { login(&mut c, &tenant, "agent1", &format!("wrong password {i:02}"), "", "d", "CN-31").await }
    });
    let results = futures::future::join_all(guesses).await;
    let checked = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::Unauthenticated)).count();
    let locked = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::ResourceExhausted)).count();
    assert_eq!((checked, locked), (5, 27), "{results:?}");
    let (k, _) = code(login(&mut c, &t.id, "agent1", PASSWORD, "", "d", "CN-31").await);
    assert_eq!(k, Code::ResourceExhausted, "locked, even with the right password");

    // One TOTP code, eight logins at once: one session.
    let mut admin2 = platform.clone();
    admin2
        .create_user(pb::CreateUserRequest {
            tenant_id: t.id.clone(),
            login: "admin2".into(),
            display_name: "Admin 2".into(),
            password: PASSWORD.into(),
            roles: vec!["admin".into()],
            team_ids: vec![],
        })
        .await
        .expect("admin2");
    let creds = || (t.id.clone(), "admin2".to_owned(), PASSWORD.to_owned());
    let (tenant_id, login_name, password) = creds();
    let uri = admin2
        .enroll_totp(pb::EnrollTotpRequest {
            tenant_id: tenant_id.clone(),
            login: login_name.clone(),
            password: password.clone(),
            ..Default::default()
        })
        .await
        .expect("enroll")
        .into_inner()
        .provisioning_uri;
    let secret = harness::totp_secret(&uri);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let confirm = guardline_identity::domain::credentials::totp_code(&secret, now).expect("code");
    admin2
        .confirm_totp(pb::ConfirmTotpRequest {
            code: confirm,
            tenant_id,
            login: login_name,
            password,
            ..Default::default()
        })
        .await
        .expect("confirm");
    let code_once = harness::next_code(&secret);
    let logins = (0..8).map(|_| {
        let mut c = h.client("gateway");
        let (tenant_id, login, password) = creds();
        let totp_code = code_once.clone();
        async move {
            c.login(pb::LoginRequest {
                tenant_id,
                login,
                password,
                totp_code,
                context: harness::ctx("203.0.113.7", "admin-laptop", "CN-31"),
            })
            .await
        }
    });
    let results = futures::future::join_all(logins).await;
    let sessions = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(sessions, 1, "{results:?}");
}

/// A stolen password must not buy a second factor: credentials enroll only
/// while none exists, replacing one needs a current code, an administrator's
/// reset is audited, and wrong passwords on this path lock the account as
/// wrong logins do.
async fn a_password_alone_never_replaces_the_second_factor(postgres: bool) {
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let t = tenant(&mut platform, "Factor", None).await;
    let other = tenant(&mut platform, "Elsewhere", None).await;
    let mut c = h.client("gateway");
    let agent = user(&mut c, &t, "agent1", &["agent"], &[]).await;
    let with_creds = |login: &str, password: &str| pb::EnrollTotpRequest {
        tenant_id: t.id.clone(),
        login: login.into(),
        password: password.into(),
        context: harness::ctx("203.0.113.9", "d", "CN-31"),
        ..Default::default()
    };
    let confirm_creds = |code: String| pb::ConfirmTotpRequest {
        tenant_id: t.id.clone(),
        login: "agent1".into(),
        password: PASSWORD.into(),
        code,
        ..Default::default()
    };

    // Before any factor, the agent enrolls with credentials.
    let session = login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.9", "d", "CN-31").await.expect("login");
    let uri = c.enroll_totp(with_creds("agent1", PASSWORD)).await.expect("first enrolment").into_inner();
    let secret = harness::totp_secret(&uri.provisioning_uri);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let code_now = guardline_identity::domain::credentials::totp_code(&secret, now).expect("code");
    c.confirm_totp(confirm_creds(code_now)).await.expect("confirm");

    // Now credentials alone are refused on both calls, whatever the code.
    assert_eq!(
        code(c.enroll_totp(with_creds("agent1", PASSWORD)).await),
        (Code::FailedPrecondition, "SECOND_FACTOR_ENROLLED".into())
    );
    let (k, why) = code(c.confirm_totp(confirm_creds(harness::next_code(&secret))).await);
    assert_eq!((k, why.as_str()), (Code::FailedPrecondition, "SECOND_FACTOR_ENROLLED"));
    // A token holder replaces it only with a current code.
    let token = session.access_token.clone();
    let by_token = |current_code: &str| {
        bearer(pb::EnrollTotpRequest { current_code: current_code.into(), ..Default::default() }, &token)
    };
    assert_eq!(code(c.enroll_totp(by_token("")).await), (Code::FailedPrecondition, "CURRENT_CODE_REQUIRED".into()));
    let stale = guardline_identity::domain::credentials::totp_code(&secret, now - 3600).expect("code");
    assert_eq!(code(c.enroll_totp(by_token(&stale)).await), (Code::Unauthenticated, "INVALID_CREDENTIALS".into()));
    c.enroll_totp(by_token(&harness::next_code(&secret))).await.expect("replaced with a current code");

    // An administrator's reset: authorized, with a reason, audited; it ends
    // the user's sessions and lets the user enroll with credentials again.
    let reset = |token: &str, tenant: &str, reason: &str| {
        let msg = pb::ResetTotpRequest { tenant_id: tenant.into(), user_id: agent.clone(), reason: reason.into() };
        bearer(msg, token)
    };
    assert_eq!(code(c.reset_totp(reset(&token, &t.id, "lost phone")).await).0, Code::PermissionDenied);
    assert_eq!(code(c.reset_totp(reset(&other.admin_token, &t.id, "lost phone")).await).0, Code::PermissionDenied);
    assert_eq!(violated_field(c.reset_totp(reset(&t.admin_token, &t.id, " ")).await), "reason");
    let (k, _) = code(c.reset_totp(reset(&t.admin_token, &other.id, "lost phone")).await);
    assert_eq!(k, Code::PermissionDenied, "another tenant's user is out of reach");
    c.reset_totp(reset(&t.admin_token, &t.id, "lost phone")).await.expect("reset");
    let refreshed =
        c.refresh(pb::RefreshRequest { refresh_token: session.refresh_token.clone(), ..Default::default() }).await;
    assert_eq!(code(refreshed).0, Code::Unauthenticated, "the reset ended the user's sessions");
    c.enroll_totp(with_creds("agent1", PASSWORD)).await.expect("enrolment by credentials after a reset");

    // Wrong passwords on this path count towards the login lockout.
    user(&mut c, &t, "agent2", &["agent"], &[]).await;
    for _ in 0..5 {
        assert_eq!(code(c.enroll_totp(with_creds("agent2", "not the password")).await).0, Code::Unauthenticated);
    }
    let (k, why) = code(login(&mut c, &t.id, "agent2", PASSWORD, "198.51.100.1", "d", "CN-31").await);
    assert_eq!((k, why.as_str()), (Code::ResourceExhausted, "ACCOUNT_LOCKED"), "locked by guesses at EnrollTotp");
}

async fn a_hash_with_old_parameters_is_replaced_at_login(postgres: bool) {
    use sea_orm::ConnectionTrait;
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let t = tenant(&mut platform, "Rehash", None).await;
    let mut c = h.client("gateway");
    let id = user(&mut c, &t, "agent1", &["agent"], &[]).await;
    // As an older release with weaker parameters would have stored it.
    let weak = {
        use argon2::PasswordHasher;
        let p = argon2::Params::new(4096, 1, 1, None).expect("params");
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
            .hash_password(PASSWORD.as_bytes())
            .expect("hash")
            .to_string()
    };
    let db = h.db().await;
    let set = sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        match db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "UPDATE identity_users SET password_hash = $1 WHERE id = $2",
            _ => "UPDATE identity_users SET password_hash = ? WHERE id = ?",
        },
        [weak.clone().into(), id.clone().into()],
    );
    db.execute_raw(set).await.expect("plant the old hash");
    login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.expect("login with the old hash");
    let stored: String = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => "SELECT password_hash FROM identity_users WHERE id = $1",
                _ => "SELECT password_hash FROM identity_users WHERE id = ?",
            },
            [id.into()],
        ))
        .await
        .expect("read")
        .expect("row")
        .try_get("", "password_hash")
        .expect("hash");
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "rehashed: {stored}");
    login(&mut c, &t.id, "agent1", PASSWORD, "203.0.113.7", "d", "CN-31").await.expect("login with the new hash");
}

async fn tenants_are_listed_for_the_operator_and_platform_admins_only(postgres: bool) {
    use guardline_proto::common::v1::PageRequest;
    let h = harness::start(postgres).await;
    let mut platform = h.ready().await;
    let a = tenant(&mut platform, "Listed A", None).await;
    let b = tenant(&mut platform, "Listed B", None).await;
    let c3 = tenant(&mut platform, "Listed C", None).await;
    // The operator pages through every tenant, oldest first.
    let mut operator = h.client("operator");
    let page =
        |token: &str| pb::ListTenantsRequest { page: Some(PageRequest { page_size: 2, page_token: token.into() }) };
    let first = operator.list_tenants(page("")).await.expect("operator lists").into_inner();
    let token = first.page.expect("page").next_page_token;
    assert_eq!(first.tenants.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [a.id.as_str(), b.id.as_str()]);
    let second = operator.list_tenants(page(&token)).await.expect("next page").into_inner();
    assert_eq!(second.tenants.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [c3.id.as_str()]);
    assert_eq!(second.page.expect("page").next_page_token, "", "the last page");
    // A platform admin may too.
    assert_eq!(platform.list_tenants(page("")).await.expect("platform admin").into_inner().tenants.len(), 2);
    // Nobody else: another service, or a tenant's own admin through the gateway.
    let (k, _) = code(h.client("lead-vault").list_tenants(page("")).await);
    assert_eq!(k, Code::PermissionDenied);
    let (k, _) = code(h.client("gateway").list_tenants(bearer(page(""), &a.admin_token)).await);
    assert_eq!(k, Code::PermissionDenied, "a tenant admin does not see other tenants");
}

/// One tenant flooding cannot starve another: past a user's limit, and
/// past the tenant's however many of its users share it, the answer is
/// RESOURCE_EXHAUSTED with a retry hint, while another tenant's calls
/// keep succeeding. The limits count from the verified token.
async fn a_flooding_tenant_is_limited_and_others_are_served(postgres: bool) {
    use tonic_types::StatusExt;
    let h = harness::start_with(postgres, |a| {
        a.common.server.rate_limit_user = 1;
        a.common.server.rate_limit_tenant = 2;
        a.common.server.rate_limit_service = 0;
    })
    .await;
    let mut platform = h.ready().await;
    let a = tenant(&mut platform, "A", None).await;
    let b = tenant(&mut platform, "B", None).await;
    let mut gateway = h.client("gateway");
    let mut flooders = Vec::new();
    for n in 0..3 {
        let login_name = format!("agent{n}");
        platform
            .create_user(pb::CreateUserRequest {
                tenant_id: a.id.clone(),
                login: login_name.clone(),
                display_name: login_name.clone(),
                password: PASSWORD.into(),
                roles: vec!["team_lead".into()],
                team_ids: vec![],
            })
            .await
            .expect("user");
        let token = login(&mut gateway, &a.id, &login_name, PASSWORD, "203.0.113.7", "d", "CN-31").await;
        flooders.push(token.expect("login").into_inner_token());
    }
    let list = |tenant: &str, token: &str| {
        let mut c = h.client("gateway");
        let req = bearer(pb::ListRolesRequest { tenant_id: tenant.to_owned() }, token);
        async move { c.list_roles(req).await }
    };
    let flood = futures::future::join_all(
        flooders.iter().flat_map(|t| std::iter::repeat_n(t.clone(), 40)).map(|t| list(&a.id, &t)),
    )
    .await;
    let refusals: Vec<&tonic::Status> = flood.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(refusals.iter().all(|s| s.code() == Code::ResourceExhausted), "{refusals:?}");
    assert!(refusals.len() >= 100, "{} of 120 refused", refusals.len());
    for whose in ["this user's rate limit", "this tenant's rate limit"] {
        assert!(refusals.iter().any(|s| s.message().contains(whose)), "{whose}: {refusals:?}");
    }
    assert!(refusals.iter().all(|s| s.get_error_details().retry_info().is_some()), "every refusal says when to retry");
    // Tenant B, meanwhile, is served.
    for _ in 0..2 {
        list(&b.id, &b.admin_token).await.expect("another tenant's call");
    }
}

guardline_testkit::on_both_stores!(
    tenants_are_listed_for_the_operator_and_platform_admins_only,
    a_flooding_tenant_is_limited_and_others_are_served,
    onboarding_with_totp_for_admins,
    a_password_alone_never_replaces_the_second_factor,
    wrong_role_wrong_tenant_and_bad_input_are_refused,
    lockout_after_repeated_failures,
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    a_refresh_token_spent_on_two_replicas_at_once_is_reuse,
    unusual_logins_follow_the_tenant_policy,
    a_source_address_is_blocked_after_a_burst_of_failures,
    tokens_survive_a_signing_key_rotation_and_a_restart,
    parallel_guesses_and_a_replayed_code_gain_nothing,
    a_hash_with_old_parameters_is_replaced_at_login,
);
