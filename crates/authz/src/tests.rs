//! Unit tests of the permission model and decisions.

use super::*;

fn subject(role: &str) -> Subject {
    Subject {
        tenant: "t1".into(),
        user: "me".into(),
        teams: ["team-a".to_owned()].into(),
        permissions: builtin_role(role).expect("built-in").into_iter().collect(),
    }
}

/// own, same team, other team, other tenant.
fn resources() -> [Resource; 4] {
    let r = |tenant: &str, owner: &str, team: &str| Resource {
        tenant: tenant.into(),
        owner: Some(owner.into()),
        team: Some(team.into()),
    };
    [r("t1", "me", "team-a"), r("t1", "teammate", "team-a"), r("t1", "stranger", "team-b"), r("t2", "me", "team-a")]
}

/// Expected outcome per action on [own, same team, other team, other tenant].
/// Written out by hand from the README's matrix: never derived from BUILTIN_ROLES.
const MATRIX: &[(&str, &[(&str, &str)])] = &[
    ("agent", &[("lead.read", "Y---"), ("lead.write", "Y---"), ("recording.play", "YYY-"), ("consent.manage", "YYY-")]),
    (
        "team_lead",
        &[
            ("lead.read", "YY--"),
            ("lead.write", "YY--"),
            ("lead.reveal", "YYY-"),
            ("lead.transfer", "YYY-"),
            ("recording.play", "YYY-"),
            ("consent.manage", "YYY-"),
        ],
    ),
    (
        "admin",
        &[
            ("lead.read", "YYY-"),
            ("lead.write", "YYY-"),
            ("lead.reveal", "YYY-"),
            ("lead.export", "YYY-"),
            ("lead.transfer", "YYY-"),
            ("recording.play", "YYY-"),
            ("consent.manage", "YYY-"),
            ("erasure.execute", "YYY-"),
            ("dnc.manage", "YYY-"),
            ("policy.manage", "YYY-"),
            ("audit.read", "YYY-"),
            ("alert.manage", "YYY-"),
            ("user.manage", "YYY-"),
            ("key.rotate", "YYY-"),
        ],
    ),
    ("auditor", &[("audit.read", "YYY-"), ("alert.manage", "YYY-")]),
    (
        "compliance_officer",
        &[
            ("lead.read", "YYY-"),
            ("recording.play", "YYY-"),
            ("consent.manage", "YYY-"),
            ("erasure.execute", "YYY-"),
            ("dnc.manage", "YYY-"),
            ("policy.manage", "YYY-"),
            ("audit.read", "YYY-"),
        ],
    ),
];

#[test]
fn every_builtin_role_against_every_action_and_relation() {
    let relations = ["own", "same team", "other team", "other tenant"];
    for (role, granted) in MATRIX {
        let s = subject(role);
        for (action, _) in ACTIONS {
            let expected = granted.iter().find(|(a, _)| a == action).map_or("----", |(_, e)| *e);
            for (i, res) in resources().iter().enumerate() {
                let d = decide(&s, action, res);
                let want = expected.as_bytes()[i] == b'Y';
                assert_eq!(d.allowed, want, "{role} {action} on {} resource: {}", relations[i], d.rule);
            }
        }
    }
    assert_eq!(MATRIX.len(), BUILTIN_ROLES.len(), "every built-in role is in the matrix");
}

#[test]
fn deny_rules_say_why() {
    let agent = subject("agent");
    let [_, teammate, _, other_tenant] = resources();
    assert_eq!(decide(&agent, "lead.read", &other_tenant).rule, "cross-tenant access is never allowed");
    assert!(decide(&agent, "lead.read", &teammate).rule.contains("outside"));
    assert_eq!(decide(&agent, "lead.export", &teammate).rule, "no role grants lead.export (deny by default)");
    let [own, ..] = resources();
    assert_eq!(decide(&agent, "lead.read", &own).rule, "lead.read:own grants it (the caller owns it)");
}

#[test]
fn an_empty_subject_tenant_never_matches() {
    let mut s = subject("admin");
    s.tenant = String::new();
    let r = Resource { tenant: String::new(), ..Default::default() };
    assert!(!decide(&s, "audit.read", &r).allowed);
}

#[test]
fn permissions_parse_strictly() {
    assert_eq!("lead.read:team".parse::<Permission>().expect("valid").to_string(), "lead.read:team");
    assert_eq!("audit.read".parse::<Permission>(), Ok(Permission { action: "audit.read", scope: None }));
    assert_eq!("lead.read".parse::<Permission>(), Err(ParseError::Scope("needs a scope: own, team or tenant")));
    assert_eq!("audit.read:own".parse::<Permission>(), Err(ParseError::Scope("takes no scope")));
    assert_eq!("lead.read:galaxy".parse::<Permission>(), Err(ParseError::UnknownScope));
    assert_eq!("lead.steal".parse::<Permission>(), Err(ParseError::UnknownAction));
    assert_eq!(parse_permissions(&["audit.read", "nope"]).map(|_| ()), Err((1, ParseError::UnknownAction)));
}

#[test]
fn widest_scope_and_second_factor() {
    assert_eq!(widest_scope(&subject("agent"), "lead.read"), Some(Scope::Own));
    assert_eq!(widest_scope(&subject("team_lead"), "lead.read"), Some(Scope::Team));
    assert_eq!(widest_scope(&subject("admin"), "lead.read"), Some(Scope::Tenant));
    assert_eq!(widest_scope(&subject("auditor"), "lead.read"), None);
    assert!(requires_totp(&subject("admin").permissions));
    assert!(!requires_totp(&subject("team_lead").permissions));
}

#[test]
fn may_ever_asks_for_the_action_at_any_scope_in_the_own_tenant() {
    let lead = Subject::from_claims("t1", "u1", &[], &["lead.reveal".into(), "lead.read:team".into()]);
    assert!(lead.may_ever("lead.reveal", "t1"));
    assert!(lead.may_ever("lead.read", "t1"), "any scope");
    assert!(!lead.may_ever("lead.reveal", "t2"), "never another tenant");
    assert!(!lead.may_ever("lead.export", "t1"));
}
