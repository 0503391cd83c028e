//! dialer-policy over real mTLS with the real identity, audit and lead-vault
//! services, on SQLite with the local keyring and on PostgreSQL with OpenBao.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use guardline_proto::dialer::v1 as pb;
use guardline_proto::vault::v1 as vpb;
use guardline_runtime::error::{error_info, field_violations, reason};
use support::{AGENT1, AGENT2, COMPLIANCE, Mesh, Tenant, at, cn_open, lead, start, tenant, ts, utc, with, zoned_lead};
use tonic::{Code, Request};

/// The check before a call, decided at the mesh's clock.
fn call(t: &Tenant, callee: pb::check_call_request::Callee, purpose: &str) -> pb::CheckCallRequest {
    pb::CheckCallRequest {
        tenant_id: t.id.clone(),
        callee: Some(callee),
        caller_line: "+14155552671".into(),
        purpose: purpose.into(),
        ..Default::default()
    }
}

/// A planning query for `when`.
fn plan(
    t: &Tenant,
    callee: pb::check_call_request::Callee,
    purpose: &str,
    when: DateTime<Utc>,
) -> pb::CheckCallRequest {
    pb::CheckCallRequest { plan_at: Some(ts(when)), ..call(t, callee, purpose) }
}

fn by_lead(id: &str) -> pb::check_call_request::Callee {
    pb::check_call_request::Callee::LeadId(id.into())
}

fn by_number(n: &str) -> pb::check_call_request::Callee {
    pb::check_call_request::Callee::E164(n.into())
}

async fn check(m: &Mesh, token: &str, r: pb::CheckCallRequest) -> Result<pb::CheckCallResponse, tonic::Status> {
    m.dialer().check_call(with(token, Request::new(r))).await.map(tonic::Response::into_inner)
}

fn rule<'a>(d: &'a pb::CheckCallResponse, name: &str) -> &'a pb::RuleResult {
    d.rules.iter().find(|r| r.rule == name).unwrap_or_else(|| panic!("no rule {name} in {:?}", d.rules))
}

fn verdict(d: &pb::CheckCallResponse) -> pb::Verdict {
    pb::Verdict::try_from(d.verdict).expect("verdict")
}

/// Agent1 records the attempt a decision allowed, at the mesh's clock.
async fn record(m: &Mesh, t: &Tenant, decision: &str) -> Result<String, tonic::Status> {
    let r =
        pb::RecordCallAttemptRequest { tenant_id: t.id.clone(), decision_id: decision.into(), ..Default::default() };
    m.dialer().record_call_attempt(with(&t.tokens[AGENT1], Request::new(r))).await.map(|r| r.into_inner().attempt_id)
}

async fn outcome(m: &Mesh, t: &Tenant, attempt: &str, result: pb::CallResult, seconds: u32) {
    let r = pb::RecordCallOutcomeRequest {
        tenant_id: t.id.clone(),
        attempt_id: attempt.into(),
        result: result as i32,
        duration_seconds: seconds,
    };
    m.dialer().record_call_outcome(with(&t.tokens[AGENT1], Request::new(r))).await.expect("outcome");
}

async fn a_decision_explains_every_rule(postgres: bool) {
    let m = start(postgres).await;
    m.clock.set(cn_open());
    let mut t = tenant(&m).await;
    let consented = lead(&m, &t, "+8613812345678", true).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&consented), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
    let names: Vec<&str> = d.rules.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        names,
        [
            "dnc.national",
            "dnc.internal",
            "consent.marketing",
            "window.cn",
            "cap.callee.24h",
            "cap.callee.30d",
            "line.health"
        ]
    );
    assert_eq!(rule(&d, "dnc.national").reason, "no national registry applies to CN by policy");
    assert_eq!(rule(&d, "window.cn").reason, "10:00 CST is inside 09:00–18:00");
    assert_eq!(rule(&d, "cap.callee.24h").reason, "0 of 3 calls in the last 24 h");
    assert!(!d.decision_id.is_empty());

    assert!(!d.plan, "a decision before a call is no plan");
    assert_eq!(d.decided_for.as_ref().map(|t| t.seconds / 60), Some(cn_open().timestamp() / 60), "the server's time");

    // Saturday: deferred to Monday 09:00 Beijing time.
    at(&m, &mut t, utc("2026-11-28T02:00:00Z")).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&consented), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Defer);
    assert_eq!(d.earliest_allowed_at, Some(ts(utc("2026-11-30T01:00:00Z"))));
    assert_eq!(rule(&d, "window.cn").reason, "Sat 10:00 Asia/Shanghai is outside 09:00–18:00");
    at(&m, &mut t, cn_open()).await;

    // A bare Chinese number is in Beijing time, though zone.tab also lists Urumqi.
    let bare = check(&m, &t.tokens[AGENT1], call(&t, by_number("+8613812345677"), "service")).await;
    let bare = bare.expect("check");
    assert_eq!(
        (verdict(&bare), rule(&bare, "window.cn").reason.as_str()),
        (pb::Verdict::Allow, "10:00 CST is inside 09:00–18:00")
    );

    // No consent: denied for marketing, allowed for service.
    let unconsented = lead(&m, &t, "+8613812345679", false).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&unconsented), "marketing")).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "consent.marketing").reason.as_str()),
        (pb::Verdict::Deny, "no active marketing consent")
    );
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&unconsented), "service")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
    // Withdrawal is effective at once.
    let history = vpb::GetConsentHistoryRequest { tenant_id: t.id.clone(), lead_id: consented.clone() };
    let c = m.vault().get_consent_history(with(&t.tokens[AGENT1], Request::new(history))).await.expect("history");
    let w = vpb::WithdrawConsentRequest { tenant_id: t.id.clone(), consent_id: c.into_inner().records[0].id.clone() };
    m.vault().withdraw_consent(with(&t.tokens[AGENT1], Request::new(w))).await.expect("withdraw");
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&consented), "marketing")).await;
    assert_eq!(verdict(&d.expect("check")), pb::Verdict::Deny, "withdrawn consent");

    // No answer ever names a number.
    for r in &d_rules_of(&m, &t, &unconsented).await {
        assert!(!r.reason.contains("13812345679"), "{r:?}");
    }

    // Rejections name the field, or refuse the caller.
    let f =
        |r: Result<pb::CheckCallResponse, tonic::Status>| field_violations(&r.expect_err("refused"))[0].field.clone();
    let mut bad = call(&t, by_lead(&consented), "marketing");
    bad.caller_line = "12345".into();
    assert_eq!(f(check(&m, &t.tokens[AGENT1], bad).await), "caller_line");
    assert_eq!(f(check(&m, &t.tokens[AGENT1], call(&t, by_lead(&consented), "Marketing!")).await), "purpose");
    assert_eq!(f(check(&m, &t.tokens[AGENT1], call(&t, by_number("+86 138"), "service")).await), "e164");
    let mut none = call(&t, by_lead(&consented), "service");
    none.callee = None;
    assert_eq!(f(check(&m, &t.tokens[AGENT1], none).await), "callee");
    let other = tenant(&m).await;
    let foreign = check(&m, &other.tokens[AGENT1], call(&t, by_lead(&consented), "service")).await;
    assert_eq!(foreign.expect_err("another tenant's user").code(), Code::PermissionDenied);
    let elsewhere = check(&m, &other.tokens[AGENT1], call(&other, by_lead(&consented), "service")).await;
    assert_eq!(elsewhere.expect_err("a lead of another tenant").code(), Code::NotFound);
    // The gateway without the user's token is refused; the dialer
    // application, trusted to act alone, may ask and is audited as itself.
    let tokenless = m.dialer().check_call(call(&t, by_lead(&unconsented), "service")).await;
    assert_eq!(tokenless.expect_err("a gateway must forward the token").code(), Code::Unauthenticated);
    let for_agent =
        pb::CheckCallRequest { agent_id: t.users[AGENT1].clone(), ..call(&t, by_lead(&unconsented), "service") };
    let app = m.dialer_as("dialer-app").check_call(for_agent).await;
    assert_eq!(verdict(&app.expect("a service").into_inner()), pb::Verdict::Allow);

    // A campaign list, scrubbed in one stream: answers in order, a bad row denied in place.
    let rows = vec![
        pb::CheckCallRequest { correlation_id: "1".into(), ..call(&t, by_lead(&unconsented), "service") },
        pb::CheckCallRequest { correlation_id: "2".into(), ..call(&t, by_number("nonsense"), "service") },
        pb::CheckCallRequest { correlation_id: "3".into(), ..call(&t, by_lead(&unconsented), "marketing") },
    ];
    let out = m
        .dialer()
        .check_calls(with(&t.tokens[AGENT1], Request::new(tokio_stream::iter(rows))))
        .await
        .expect("stream")
        .into_inner();
    let answers: Vec<pb::CheckCallResponse> =
        tokio_stream::StreamExt::collect::<Vec<_>>(out).await.into_iter().map(|r| r.expect("answer")).collect();
    let got: Vec<(&str, pb::Verdict)> = answers.iter().map(|a| (a.correlation_id.as_str(), verdict(a))).collect();
    assert_eq!(got, [("1", pb::Verdict::Allow), ("2", pb::Verdict::Deny), ("3", pb::Verdict::Deny)]);
    assert_eq!(answers[1].rules[0].rule, "request");
}

async fn d_rules_of(m: &Mesh, t: &Tenant, lead: &str) -> Vec<pb::RuleResult> {
    check(m, &t.tokens[AGENT1], call(t, by_lead(lead), "marketing")).await.expect("check").rules
}

async fn import_registry(
    m: &Mesh,
    who: &str,
    lines: &str,
    copy: DateTime<Utc>,
) -> Result<pb::ImportDncResponse, tonic::Status> {
    let header = pb::ImportDncHeader {
        list: pb::DncList::National as i32,
        format: pb::DncFormat::Ftc as i32,
        copy_date: Some(ts(copy)),
        ..Default::default()
    };
    let (a, b) = lines.split_at(lines.len() / 2);
    let msgs = vec![
        pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Header(header)) },
        pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Data(a.as_bytes().to_vec())) },
        pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Data(b.as_bytes().to_vec())) },
    ];
    m.dialer_as(who).import_dnc(tokio_stream::iter(msgs)).await.map(tonic::Response::into_inner)
}

async fn the_national_registry(postgres: bool) {
    let m = start(postgres).await;
    // Friday 15:00 in New York, 10:00 in Honolulu and Adak: open in every US zone.
    m.clock.set(utc("2026-11-27T20:00:00Z"));
    let t = tenant(&m).await;
    let listed = call(&t, by_number("+12025550143"), "service");
    let d = check(&m, &t.tokens[AGENT1], listed.clone()).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "dnc.national").reason.as_str()),
        (pb::Verdict::Deny, "no national registry copy for US is loaded")
    );
    assert!(rule(&d, "window.us-tcpa").reason.contains("is inside 08:00–21:00"), "{:?}", d.rules);

    // Only the registry admins' service loads a copy.
    let file = "202,5550143\n202,5550144\n\"303\",\"5550100\"\nnot a line\n";
    let copy_31_days = utc("2026-10-27T00:00:00Z");
    let refused = import_registry(&m, "gateway", file, copy_31_days).await.expect_err("not a registry admin");
    assert_eq!(refused.code(), Code::Unauthenticated, "a gateway acts for users only");
    let refused = import_registry(&m, "dialer-app", file, copy_31_days).await.expect_err("not a registry admin");
    assert_eq!(refused.code(), Code::PermissionDenied, "trusted, but not with the registry");
    let done = import_registry(&m, "operator", file, copy_31_days).await.expect("operator");
    assert_eq!((done.loaded, done.rejected), (3, 1));
    let ask = with(&t.tokens[AGENT1], Request::new(pb::GetRegistryStatusRequest {}));
    let status = m.dialer().get_registry_status(ask).await.expect("status").into_inner();
    assert_eq!((status.copies[0].region.as_str(), status.copies[0].numbers), ("US", 3));

    let d = check(&m, &t.tokens[AGENT1], listed.clone()).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "dnc.national").reason.as_str()),
        (pb::Verdict::Deny, "on the national registry copy of 2026-10-27")
    );
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_number("+12025550145"), "service")).await.expect("check");
    assert_eq!((verdict(&d), rule(&d, "dnc.national").outcome), (pb::Verdict::Allow, pb::Verdict::Allow as i32));

    // A copy 32 days old is too old: every US call is denied until a new one is loaded.
    import_registry(&m, "operator", file, utc("2026-10-26T00:00:00Z")).await.expect("older copy");
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_number("+12025550145"), "service")).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "dnc.national").reason.as_str()),
        (pb::Verdict::Deny, "the registry copy of 2026-10-26 is 32 days old (limit 31)")
    );
}

async fn caps_hold_under_parallel_attempts(postgres: bool) {
    let mut m = start(postgres).await;
    // Half the attempts go through a second dialer replica on the same database.
    let second = m.second_dialer().await;
    m.clock.set(cn_open());
    let mut t = tenant(&m).await;
    let l = lead(&m, &t, "+8613812345670", true).await;
    let mut allowed = Vec::new();
    for _ in 0..16 {
        let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
        assert_eq!(verdict(&d), pb::Verdict::Allow);
        allowed.push(d.decision_id);
    }
    // Sixteen callers race to place calls the decisions allowed, through two
    // replicas: the cap of 3 holds.
    let through_second = |id: &String| {
        let mut c = second.clone();
        let r = pb::RecordCallAttemptRequest { tenant_id: t.id.clone(), decision_id: id.clone(), ..Default::default() };
        let req = with(&t.tokens[AGENT1], Request::new(r));
        async move { c.record_call_attempt(req).await.map(|r| r.into_inner().attempt_id) }
    };
    type Attempt<'a> = std::pin::Pin<Box<dyn Future<Output = Result<String, tonic::Status>> + Send + 'a>>;
    let results = futures::future::join_all(allowed.iter().enumerate().map(|(i, id)| -> Attempt<'_> {
        if i % 2 == 0 { Box::pin(record(&m, &t, id)) } else { Box::pin(through_second(id)) }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), Code::FailedPrecondition, "{r:?}");
        let info = error_info(r).expect("the refusal's ErrorInfo");
        assert_eq!((info.reason.as_str(), info.metadata["rule"].as_str()), ("CAP_REACHED", "cap.callee.24h"));
        assert_eq!((info.metadata["count"].as_str(), info.metadata["limit"].as_str()), ("3", "3"));
    }
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "cap.callee.24h").reason.as_str()),
        (pb::Verdict::Deny, "3 of 3 calls in the last 24 h")
    );
    // A plan for 24 hours later: the rolling window will have moved on.
    let next_day = m.clock.now() + chrono::Duration::hours(24) + chrono::Duration::minutes(1);
    let d = check(&m, &t.tokens[AGENT1], plan(&t, by_lead(&l), "marketing", next_day)).await.expect("plan");
    assert_eq!(rule(&d, "cap.callee.24h").reason, "0 of 3 calls in the last 24 h");
    assert_eq!(rule(&d, "cap.callee.30d").reason, "3 of 10 calls in the last 30 days");

    // A decision is used once, and only an ALLOW admits a call.
    let used = allowed.iter().zip(&results).find(|(_, r)| r.is_ok()).expect("one").0;
    let again = record(&m, &t, used).await.expect_err("used");
    assert_eq!(reason(&again), "DECISION_ALREADY_USED", "{again:?}");
    let denied = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
    let refused = record(&m, &t, &denied.decision_id).await.expect_err("a DENY");
    assert_eq!(reason(&refused), "DECISION_NOT_ALLOWED", "{refused:?}");
    let bad = record(&m, &t, "").await.expect_err("no id");
    assert_eq!(field_violations(&bad)[0].field, "decision_id");
    // Seen from the next day, that tenant's decisions are stale anyway.
    at(&m, &mut t, next_day).await;
    let other = tenant(&m).await;
    let r =
        pb::RecordCallAttemptRequest { tenant_id: other.id.clone(), decision_id: used.clone(), ..Default::default() };
    let foreign = m.dialer().record_call_attempt(with(&other.tokens[AGENT1], Request::new(r))).await;
    assert_eq!(foreign.expect_err("another tenant's decision").code(), Code::NotFound);
}

async fn opt_outs_and_tenant_lists(postgres: bool) {
    let m = start(postgres).await;
    m.clock.set(cn_open());
    let t = tenant(&m).await;
    let l = lead(&m, &t, "+8613812340001", true).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
    let attempt = record(&m, &t, &d.decision_id).await.expect("attempt");
    outcome(&m, &t, &attempt, pb::CallResult::OptOut, 20).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Deny);
    assert!(rule(&d, "dnc.internal").reason.starts_with("opt-out on a call on "), "{:?}", d.rules);
    // The same number dialled as a bare number is on the list too.
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_number("+8613812340001"), "service")).await.expect("check");
    assert_eq!(rule(&d, "dnc.internal").outcome, pb::Verdict::Deny as i32);

    // A campaign list, managed with dnc.manage.
    let other_lead = lead(&m, &t, "+8613812340002", true).await;
    let add = |who: usize, list: pb::DncList, reason: &str| {
        with(
            &t.tokens[who],
            Request::new(pb::AddToDncRequest {
                tenant_id: t.id.clone(),
                list: list as i32,
                campaign_id: "spring".into(),
                e164: vec!["+8613812340002".into()],
                blind_indexes: vec![],
                reason: reason.into(),
            }),
        )
    };
    let agent = m.dialer().add_to_dnc(add(AGENT1, pb::DncList::Campaign, "asked")).await.expect_err("agent");
    assert_eq!(agent.code(), Code::PermissionDenied);
    let no_reason = m.dialer().add_to_dnc(add(COMPLIANCE, pb::DncList::Campaign, " ")).await.expect_err("reason");
    assert_eq!(field_violations(&no_reason)[0].field, "reason");
    let national = m.dialer().add_to_dnc(add(COMPLIANCE, pb::DncList::National, "x")).await.expect_err("national");
    assert_eq!(field_violations(&national)[0].field, "list");
    let added = m.dialer().add_to_dnc(add(COMPLIANCE, pb::DncList::Campaign, "asked")).await.expect("added");
    assert_eq!(added.into_inner().added, 1);
    let in_campaign =
        pb::CheckCallRequest { campaign_id: "spring".into(), ..call(&t, by_lead(&other_lead), "marketing") };
    let d = check(&m, &t.tokens[AGENT1], in_campaign.clone()).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "dnc.campaign").reason.as_str()),
        (pb::Verdict::Deny, "on the list of campaign spring")
    );
    let elsewhere = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&other_lead), "marketing")).await.expect("check");
    assert_eq!(verdict(&elsewhere), pb::Verdict::Allow, "other campaigns may call");
    let remove = pb::RemoveFromDncRequest {
        tenant_id: t.id.clone(),
        list: pb::DncList::Campaign as i32,
        campaign_id: "spring".into(),
        e164: vec!["+8613812340002".into()],
        reason: "consent renewed".into(),
    };
    let removed = m.dialer().remove_from_dnc(with(&t.tokens[COMPLIANCE], Request::new(remove))).await.expect("remove");
    assert_eq!(removed.into_inner().removed, 1);
    assert_eq!(verdict(&check(&m, &t.tokens[AGENT1], in_campaign).await.expect("check")), pb::Verdict::Allow);
}

async fn set_policy(m: &Mesh, t: &Tenant, p: pb::DialPolicy) -> Result<pb::DialPolicy, tonic::Status> {
    m.dialer()
        .set_dial_policy(with(&t.tokens[COMPLIANCE], Request::new(pb::SetDialPolicyRequest { policy: Some(p) })))
        .await
        .map(tonic::Response::into_inner)
}

fn strings(v: &[&str]) -> Option<pb::Strings> {
    Some(pb::Strings { values: v.iter().map(|s| (*s).to_owned()).collect() })
}

async fn policies_per_tenant_and_campaign(postgres: bool) {
    let m = start(postgres).await;
    m.clock.set(cn_open());
    let mut t = tenant(&m).await;
    let base = pb::DialPolicy { tenant_id: t.id.clone(), ..Default::default() };
    let agent = m
        .dialer()
        .set_dial_policy(with(&t.tokens[AGENT1], Request::new(pb::SetDialPolicyRequest { policy: Some(base.clone()) })))
        .await;
    assert_eq!(agent.expect_err("agent").code(), Code::PermissionDenied);
    let bad = set_policy(&m, &t, pb::DialPolicy { jurisdiction_packs: strings(&["mars"]), ..base.clone() }).await;
    assert_eq!(field_violations(&bad.expect_err("unknown pack"))[0].field, "policy.jurisdiction_packs[0]");
    let bad = set_policy(&m, &t, pb::DialPolicy { holidays: strings(&["someday"]), ..base.clone() }).await;
    assert_eq!(field_violations(&bad.expect_err("bad holiday"))[0].field, "policy.holidays[0]");

    let tenant_policy = pb::DialPolicy { callee_max_24h: Some(2), holidays: strings(&["2026-11-27"]), ..base.clone() };
    set_policy(&m, &t, tenant_policy).await.expect("tenant policy");
    let campaign = pb::DialPolicy { campaign_id: "spring".into(), callee_max_24h: Some(1), ..base.clone() };
    set_policy(&m, &t, campaign).await.expect("campaign policy");
    let get = |campaign: &str| pb::GetDialPolicyRequest { tenant_id: t.id.clone(), campaign_id: campaign.into() };
    let p = m.dialer().get_dial_policy(with(&t.tokens[AGENT1], Request::new(get("spring")))).await.expect("get");
    let p = p.into_inner();
    assert_eq!(p.callee_max_24h, Some(1), "the campaign's own");
    assert_eq!(p.holidays, strings(&["2026-11-27"]), "inherited from the tenant");
    assert_eq!(p.callee_max_30d, Some(10), "the default");
    // Without a user token no service reads a tenant's policy, not even one
    // trusted to act alone.
    let tokenless = m.dialer_as("dialer-app").get_dial_policy(get("spring")).await;
    assert_eq!(tokenless.expect_err("a service").code(), Code::PermissionDenied);

    // The tenant's holiday closes the window.
    let l = lead(&m, &t, "+8613812340003", true).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
    assert_eq!(rule(&d, "window.cn").reason, "2026-11-27 in Asia/Shanghai is a holiday in the tenant's calendar");
    // A pack loaded from the packs directory, chosen per campaign; no code.
    let anytime = pb::DialPolicy { campaign_id: "night".into(), jurisdiction_packs: strings(&["anytime"]), ..base };
    set_policy(&m, &t, anytime).await.expect("anytime");
    at(&m, &mut t, utc("2026-11-27T17:00:00Z")).await;
    let night = pb::CheckCallRequest { campaign_id: "night".into(), ..call(&t, by_lead(&l), "marketing") };
    let d = check(&m, &t.tokens[AGENT1], night).await.expect("check");
    assert_eq!(rule(&d, "window.anytime").outcome, pb::Verdict::Allow as i32, "{:?}", d.rules);
}

async fn privacy_numbers(postgres: bool) {
    let m = start(postgres).await;
    let t = tenant(&m).await;
    let l = lead(&m, &t, "+8613812340004", false).await;
    let add = pb::AddPrivacyNumbersRequest {
        tenant_id: t.id.clone(),
        numbers: vec!["+14155550100".into(), "+14155550101".into()],
    };
    let agent = m.dialer().add_privacy_numbers(with(&t.tokens[AGENT1], Request::new(add.clone()))).await;
    assert_eq!(agent.expect_err("agent").code(), Code::PermissionDenied);
    let bad = pb::AddPrivacyNumbersRequest { numbers: vec!["+14155550100".into(), "12".into()], ..add.clone() };
    let bad = m.dialer().add_privacy_numbers(with(&t.tokens[COMPLIANCE], Request::new(bad))).await.expect_err("bad");
    assert_eq!(field_violations(&bad)[0].field, "numbers[1]");
    let pool = m.dialer().add_privacy_numbers(with(&t.tokens[COMPLIANCE], Request::new(add))).await.expect("pool");
    assert_eq!(pool.into_inner().pool_size, 2);

    let bind = |who: usize, lead: &str, ttl: u32| {
        with(
            &t.tokens[who],
            Request::new(pb::BindPrivacyNumberRequest {
                tenant_id: t.id.clone(),
                agent_line: "+8610012345".into(),
                lead_id: lead.into(),
                ttl_seconds: ttl,
            }),
        )
    };
    let first = m.dialer().bind_privacy_number(bind(AGENT1, &l, 600)).await;
    let bad_line = first.expect_err("the agent line is not E.164");
    assert_eq!(field_violations(&bad_line)[0].field, "agent_line");
    let bind = |who: usize, lead: &str, ttl: u32| {
        with(
            &t.tokens[who],
            Request::new(pb::BindPrivacyNumberRequest {
                tenant_id: t.id.clone(),
                agent_line: "+14155552671".into(),
                lead_id: lead.into(),
                ttl_seconds: ttl,
            }),
        )
    };
    let zero = m.dialer().bind_privacy_number(bind(AGENT1, &l, 0)).await.expect_err("ttl");
    assert_eq!(field_violations(&zero)[0].field, "ttl_seconds");
    let b1 = m.dialer().bind_privacy_number(bind(AGENT1, &l, 600)).await.expect("bind").into_inner();
    assert!(["+14155550100", "+14155550101"].contains(&b1.privacy_number.as_str()));
    let shown = format!("{b1:?}");
    assert!(!shown.contains("13812340004"), "the agent never receives B's number: {shown}");
    let other_team = m.dialer().bind_privacy_number(bind(AGENT2, &l, 600)).await.expect_err("not agent2's lead");
    assert_eq!(other_team.code(), Code::NotFound);

    // The telephony bridge resolves X called from A to B; nobody else can.
    let resolve = |x: &str| pb::ResolveBindingRequest {
        tenant_id: t.id.clone(),
        privacy_number: x.into(),
        calling_line: "+14155552671".into(),
    };
    let bridge = || m.dialer_as("telephony-bridge");
    let b = bridge().resolve_binding(resolve(&b1.privacy_number)).await.expect("bridge").into_inner();
    assert_eq!((b.e164.as_str(), b.binding_id.as_str()), ("+8613812340004", b1.id.as_str()));
    let as_agent = m.dialer().resolve_binding(with(&t.tokens[AGENT1], Request::new(resolve(&b1.privacy_number)))).await;
    assert_eq!(as_agent.expect_err("an agent identity").code(), Code::PermissionDenied);
    let wrong_a = pb::ResolveBindingRequest { calling_line: "+14155552672".into(), ..resolve(&b1.privacy_number) };
    assert_eq!(bridge().resolve_binding(wrong_a).await.expect_err("another A").code(), Code::NotFound);

    // The pool of two is exhausted for this agent line at the third binding.
    let b2 = m.dialer().bind_privacy_number(bind(AGENT1, &l, 1)).await.expect("second").into_inner();
    assert_ne!(b2.privacy_number, b1.privacy_number);
    let full = m.dialer().bind_privacy_number(bind(AGENT1, &l, 600)).await.expect_err("exhausted");
    assert_eq!(full.code(), Code::ResourceExhausted);
    let info = error_info(&full).expect("the refusal's ErrorInfo");
    assert_eq!((info.reason.as_str(), info.metadata["pool_size"].as_str()), ("PRIVACY_POOL_EXHAUSTED", "2"));
    // An expired binding does not resolve, and frees its number.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        bridge().resolve_binding(resolve(&b2.privacy_number)).await.expect_err("expired").code(),
        Code::NotFound
    );
    let b3 = m.dialer().bind_privacy_number(bind(AGENT1, &l, 600)).await.expect("freed by expiry").into_inner();
    assert_eq!(b3.privacy_number, b2.privacy_number);
    // Released: gone at once.
    let release = pb::ReleaseBindingRequest { tenant_id: t.id.clone(), binding_id: b1.id.clone() };
    let not_yours = m.dialer().release_binding(with(&t.tokens[AGENT2], Request::new(release.clone()))).await;
    assert_eq!(not_yours.expect_err("agent2").code(), Code::NotFound);
    m.dialer().release_binding(with(&t.tokens[AGENT1], Request::new(release))).await.expect("release");
    assert_eq!(
        bridge().resolve_binding(resolve(&b1.privacy_number)).await.expect_err("released").code(),
        Code::NotFound
    );
}

async fn a_line_drifting_toward_blocking_is_throttled(postgres: bool) {
    let m = start(postgres).await;
    let now = cn_open();
    m.clock.set(now - chrono::Duration::days(2));
    let mut t = tenant(&m).await;
    let policy = pb::DialPolicy {
        tenant_id: t.id.clone(),
        jurisdiction_packs: strings(&["anytime"]),
        consent_required_purposes: strings(&[]),
        line_throttle_per_hour: Some(5),
        ..Default::default()
    };
    set_policy(&m, &t, policy).await.expect("policy");
    // Two days ago the line was answered; in the last hour nobody picks up.
    let mut n = 0;
    for (start, result) in [
        (now - chrono::Duration::days(2), pb::CallResult::Answered),
        (now - chrono::Duration::minutes(50), pb::CallResult::NoAnswer),
    ] {
        at(&m, &mut t, start).await;
        // 20: the smallest sample whose answer rate is trusted, 20 s apart
        // (within the tokens' lifetime).
        for i in 0..20 {
            n += 1;
            m.clock.set(start + chrono::Duration::seconds(i * 20));
            let number = format!("+86138000{n:05}");
            let d = check(&m, &t.tokens[AGENT1], call(&t, by_number(&number), "marketing")).await.expect("check");
            assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
            let attempt = record(&m, &t, &d.decision_id).await.expect("attempt");
            outcome(&m, &t, &attempt, result, if result == pb::CallResult::Answered { 60 } else { 0 }).await;
        }
    }
    at(&m, &mut t, now).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_number("+8613899999999"), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Defer, "{:?}", d.rules);
    assert_eq!(
        rule(&d, "line.health").reason,
        "throttled: 20 calls in the last hour (threshold 5) with the answer rate down to 0% from 100%"
    );
    let until = d.earliest_allowed_at.expect("until").seconds;
    assert!(until > now.timestamp() && until <= (now + chrono::Duration::hours(1)).timestamp(), "{until}");
    let h = pb::GetLineHealthRequest { tenant_id: t.id.clone(), caller_line: "+14155552671".into() };
    let h = m.dialer().get_line_health(with(&t.tokens[AGENT1], Request::new(h))).await.expect("health").into_inner();
    assert!(h.throttled && h.attempts_last_hour == 20 && h.answer_rate == 0.0, "{h:?}");
    let other = tenant(&m).await;
    let h = pb::GetLineHealthRequest { tenant_id: t.id.clone(), caller_line: "+14155552671".into() };
    let foreign = m.dialer().get_line_health(with(&other.tokens[AGENT1], Request::new(h))).await;
    assert_eq!(foreign.expect_err("another tenant's line").code(), Code::PermissionDenied);
    let h = pb::GetLineHealthRequest { tenant_id: t.id.clone(), caller_line: "4155552671".into() };
    let bad = m.dialer().get_line_health(with(&t.tokens[AGENT1], Request::new(h))).await.expect_err("not E.164");
    assert_eq!(field_violations(&bad)[0].field, "caller_line");
    // Throttling raised one alert event, not one per deferred call; every
    // decision is in audit, with no number in it.
    let again = check(&m, &t.tokens[AGENT1], call(&t, by_number("+8613899999998"), "marketing")).await;
    assert_eq!(verdict(&again.expect("check")), pb::Verdict::Defer);
    let throttled = audit_events(&m, &t, "dialer.line.throttled", 1).await;
    assert_eq!(throttled.len(), 1);
    assert!(throttled[0].details["reason"].starts_with("20 calls in the last hour"), "{:?}", throttled[0].details);
    let checks = audit_events(&m, &t, "dialer.check", 42).await;
    assert!(checks.iter().all(|e| !format!("{e:?}").contains("8613899999998")), "no callee number in audit");
    // Another line of the tenant is not affected.
    let other_line = pb::CheckCallRequest {
        caller_line: "+14155552672".into(),
        ..call(&t, by_number("+8613899999999"), "marketing")
    };
    assert_eq!(verdict(&check(&m, &t.tokens[AGENT1], other_line).await.expect("check")), pb::Verdict::Allow);
}

/// The status's first field violation.
fn field_of(s: &tonic::Status) -> String {
    field_violations(s).first().map(|v| v.field.clone()).unwrap_or_default()
}

async fn record_at(m: &Mesh, t: &Tenant, decision: &str, at: DateTime<Utc>) -> Result<String, tonic::Status> {
    let r = pb::RecordCallAttemptRequest {
        tenant_id: t.id.clone(),
        decision_id: decision.into(),
        at: Some(ts(at)),
        ..Default::default()
    };
    m.dialer().record_call_attempt(with(&t.tokens[AGENT1], Request::new(r))).await.map(|r| r.into_inner().attempt_id)
}

async fn the_servers_clock_decides(postgres: bool) {
    let m = start(postgres).await;
    m.clock.set(cn_open());
    let t = tenant(&m).await;
    let l = lead(&m, &t, "+8613812341000", true).await;
    let allow = || async { check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check") };

    // A back-dated or forward-dated `at` admits no attempt: the attempt
    // would have left the 24-hour window, or not entered it yet.
    for skew in [chrono::Duration::hours(-30), chrono::Duration::hours(30), chrono::Duration::seconds(-6)] {
        let d = allow().await;
        assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
        let refused = record_at(&m, &t, &d.decision_id, m.clock.now() + skew).await.expect_err("skewed");
        assert_eq!((refused.code(), field_of(&refused)), (Code::InvalidArgument, "at".into()), "{skew}");
    }
    // Within 5 s of the server's clock it is taken, and recorded at the server's time.
    let d = allow().await;
    record_at(&m, &t, &d.decision_id, m.clock.now() - chrono::Duration::seconds(3)).await.expect("attempt");
    assert_eq!(rule(&allow().await, "cap.callee.24h").reason, "1 of 3 calls in the last 24 h");

    // A planning query, past or future, says it is a plan, is audited as
    // one, and never admits an attempt.
    let past = cn_open() - chrono::Duration::days(3);
    let p = check(&m, &t.tokens[AGENT1], plan(&t, by_lead(&l), "marketing", past)).await.expect("plan");
    assert_eq!((verdict(&p), p.plan, p.decided_for), (pb::Verdict::Allow, true, Some(ts(past))));
    assert_eq!(rule(&p, "cap.callee.24h").reason, "0 of 3 calls in the last 24 h", "today's attempts, seen from then");
    let refused = record(&m, &t, &p.decision_id).await.expect_err("a plan");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "PLAN_ADMITS_NO_CALL", "{refused:?}");
    let saturday = utc("2026-11-28T02:00:00Z");
    let p = check(&m, &t.tokens[AGENT1], plan(&t, by_lead(&l), "marketing", saturday)).await.expect("plan");
    assert_eq!((verdict(&p), p.earliest_allowed_at), (pb::Verdict::Defer, Some(ts(utc("2026-11-30T01:00:00Z")))));
    let plans = audit_events(&m, &t, "dialer.plan", 2).await;
    assert_eq!(plans.len(), 2);
    assert!(plans.iter().any(|e| e.details["at"] == past.to_rfc3339()), "{plans:?}");

    // An ALLOW at 17:59 Beijing time places no call at 18:01: the attempt
    // rechecks the window at its own time.
    let mut t = t;
    at(&m, &mut t, utc("2026-11-27T09:59:00Z")).await;
    let late = lead(&m, &t, "+8613812341002", true).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&late), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
    m.clock.advance(chrono::Duration::minutes(2));
    let refused = record(&m, &t, &d.decision_id).await.expect_err("closed by now");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let info = error_info(&refused).expect("the refusal's ErrorInfo");
    assert_eq!((info.reason.as_str(), info.metadata["rule"].as_str()), ("CLOSED_SINCE_DECISION", "window.cn"));
    // The message explains, as the decision's rules do.
    assert_eq!(refused.message(), "window.cn: Fri 18:01 Asia/Shanghai is outside 09:00–18:00");
    // A registry copy on its last day at the decision is too old at the attempt.
    at(&m, &mut t, utc("2026-11-27T23:59:50Z")).await;
    import_registry(&m, "operator", "202,5550143\n", utc("2026-10-27T00:00:00Z")).await.expect("copy");
    let p = pb::DialPolicy {
        tenant_id: t.id.clone(),
        campaign_id: "always".into(),
        jurisdiction_packs: strings(&["anytime"]),
        ..Default::default()
    };
    set_policy(&m, &t, p).await.expect("policy");
    let us = lead(&m, &t, "+12125553000", true).await;
    let always = pb::CheckCallRequest { campaign_id: "always".into(), ..call(&t, by_lead(&us), "marketing") };
    let d = check(&m, &t.tokens[AGENT1], always).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
    m.clock.advance(chrono::Duration::seconds(20));
    let refused = record(&m, &t, &d.decision_id).await.expect_err("stale copy by now");
    let info = error_info(&refused).expect("the refusal's ErrorInfo");
    assert_eq!((info.reason.as_str(), info.metadata["rule"].as_str()), ("CLOSED_SINCE_DECISION", "dnc.national"));
    assert_eq!(refused.message(), "dnc.national: the registry copy of 2026-10-27 is 32 days old (limit 31)");
    at(&m, &mut t, cn_open() + chrono::Duration::minutes(1)).await;

    // A user's agent cap holds with an empty agent_id; naming another agent is refused.
    let p = pb::DialPolicy { tenant_id: t.id.clone(), agent_max_per_hour: Some(1), ..Default::default() };
    set_policy(&m, &t, p).await.expect("policy");
    let l2 = lead(&m, &t, "+8613812341001", true).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l2), "marketing")).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "cap.agent.1h").reason.as_str()),
        (pb::Verdict::Deny, "1 of 1 calls in the last hour")
    );
    let as_other = pb::CheckCallRequest { agent_id: t.users[AGENT2].clone(), ..call(&t, by_lead(&l2), "marketing") };
    let refused = check(&m, &t.tokens[AGENT1], as_other).await.expect_err("another agent");
    assert_eq!((refused.code(), field_of(&refused)), (Code::InvalidArgument, "agent_id".into()));
    // A service acting for an agent must name the agent, whose cap then holds.
    let refused =
        m.dialer_as("dialer-app").check_call(call(&t, by_lead(&l2), "marketing")).await.expect_err("no agent");
    assert_eq!((refused.code(), field_of(&refused)), (Code::InvalidArgument, "agent_id".into()));
    let for_agent1 = pb::CheckCallRequest { agent_id: t.users[AGENT1].clone(), ..call(&t, by_lead(&l2), "marketing") };
    let d = m.dialer_as("dialer-app").check_call(for_agent1).await.expect("service").into_inner();
    assert_eq!(rule(&d, "cap.agent.1h").outcome, pb::Verdict::Deny as i32);
    // A decision made for agent2 is not agent1's to use.
    let for_agent2 = pb::CheckCallRequest { agent_id: t.users[AGENT2].clone(), ..call(&t, by_lead(&l2), "marketing") };
    let d = m.dialer_as("dialer-app").check_call(for_agent2).await.expect("service").into_inner();
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
    assert_eq!(record(&m, &t, &d.decision_id).await.expect_err("agent2's").code(), Code::PermissionDenied);
}

/// The window (both sides of a daylight-saving change in New York), the
/// caps' rolling 24 hours and the registry copy's age (both sides of
/// midnight UTC), each with the mesh's clock set to the case's instant.
async fn rules_hold_at_every_clock_setting(postgres: bool) {
    let m = start(postgres).await;
    m.clock.set(utc("2026-10-31T12:30:00Z"));
    let mut t = tenant(&m).await;
    let always = pb::DialPolicy {
        tenant_id: t.id.clone(),
        campaign_id: "always".into(),
        jurisdiction_packs: strings(&["anytime"]),
        ..Default::default()
    };
    set_policy(&m, &t, always).await.expect("policy");
    // (instant, New York local time, whether us-tcpa's 08:00–21:00 is open, when it opens)
    let cases = [
        ("2026-10-31T12:30:00Z", "Sat 08:30 EDT, the day before the clocks go back", None),
        ("2026-11-01T12:30:00Z", "Sun 07:30 EST, after they went back", Some("2026-11-01T13:00:00Z")),
        ("2027-03-13T12:30:00Z", "Sat 07:30 EST, the day before they go forward", Some("2027-03-13T13:00:00Z")),
        ("2027-03-14T12:30:00Z", "Sun 08:30 EDT, after they went forward", None),
        ("2027-01-05T23:59:50Z", "10 s before midnight UTC", None),
        ("2027-01-06T00:00:10Z", "10 s after midnight UTC", None),
    ];
    for (i, (instant, what, opens)) in cases.into_iter().enumerate() {
        let now = utc(instant);
        // A copy that is 31 days old today (the limit) and 32 tomorrow.
        let copy = (now.date_naive() - chrono::Duration::days(31)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        at(&m, &mut t, now - chrono::Duration::hours(23) - chrono::Duration::minutes(59)).await;
        import_registry(&m, "operator", "202,5550143\n", copy).await.expect("copy");
        let l = zoned_lead(&m, &t, &format!("+1212555{:04}", 2000 + i), "America/New_York", true).await;
        let anytime =
            |t: &Tenant| pb::CheckCallRequest { campaign_id: "always".into(), ..call(t, by_lead(&l), "marketing") };
        // An attempt 23 h 59 min ago...
        let d = check(&m, &t.tokens[AGENT1], anytime(&t)).await.expect("check");
        record(&m, &t, &d.decision_id).await.unwrap_or_else(|e| panic!("{what}: {e:?} {:?}", d.rules));
        at(&m, &mut t, now).await;
        // ...counts now, and no longer two minutes from now.
        let d = check(&m, &t.tokens[AGENT1], anytime(&t)).await.expect("check");
        assert_eq!(rule(&d, "cap.callee.24h").reason, "1 of 3 calls in the last 24 h", "{what}");
        let later = now + chrono::Duration::minutes(2);
        let p = check(&m, &t.tokens[AGENT1], plan(&t, by_lead(&l), "marketing", later)).await.expect("plan");
        assert_eq!(rule(&p, "cap.callee.24h").reason, "0 of 3 calls in the last 24 h", "{what}");
        // The window in the callee's local time.
        let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&l), "marketing")).await.expect("check");
        match opens {
            None => assert_eq!(verdict(&d), pb::Verdict::Allow, "{what}: {:?}", d.rules),
            Some(o) => {
                assert_eq!(verdict(&d), pb::Verdict::Defer, "{what}: {:?}", d.rules);
                assert_eq!(d.earliest_allowed_at, Some(ts(utc(o))), "{what}");
            }
        }
        // The copy is usable today and refused from the next UTC day on.
        assert_eq!(
            rule(&d, "dnc.national").reason,
            format!("not on the national registry copy of {}", copy.date_naive()),
            "{what}"
        );
        let tomorrow = (now.date_naive() + chrono::Duration::days(1)).and_hms_opt(0, 0, 5).expect("t").and_utc();
        let p = check(&m, &t.tokens[AGENT1], plan(&t, by_lead(&l), "marketing", tomorrow)).await.expect("plan");
        assert_eq!(
            (verdict(&p), rule(&p, "dnc.national").reason.clone()),
            (pb::Verdict::Deny, format!("the registry copy of {} is 32 days old (limit 31)", copy.date_naive())),
            "{what}"
        );
    }
}

async fn import_results(
    m: &Mesh,
    t: &Tenant,
    who: usize,
    lines: &str,
    obtained: DateTime<Utc>,
) -> Result<pb::ImportDncResponse, tonic::Status> {
    let header = pb::ImportDncHeader {
        tenant_id: t.id.clone(),
        list: pb::DncList::Reassigned as i32,
        format: pb::DncFormat::Rnd as i32,
        copy_date: Some(ts(obtained)),
        ..Default::default()
    };
    let msgs = vec![
        pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Header(header)) },
        pb::ImportDncRequest { item: Some(pb::import_dnc_request::Item::Data(lines.as_bytes().to_vec())) },
    ];
    m.dialer()
        .import_dnc(with(&t.tokens[who], Request::new(tokio_stream::iter(msgs))))
        .await
        .map(tonic::Response::into_inner)
}

/// China's official holiday schedule, the US state laws by area code and
/// address with a per-subject cap across campaigns, and reassigned numbers.
async fn calendars_state_laws_and_reassigned_numbers(postgres: bool) {
    let m = start(postgres).await;
    // Monday 2026-02-16 10:00 Beijing time, in the Spring Festival holiday.
    m.clock.set(utc("2026-02-16T02:00:00Z"));
    let mut t = tenant(&m).await;
    let cn = lead(&m, &t, "+8613812342000", true).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&cn), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Defer);
    assert_eq!(
        rule(&d, "window.cn").reason,
        "2026-02-16 in Asia/Shanghai is a public holiday, Spring Festival (State Council notice of 2025-11-04)"
    );
    // Saturday 2026-02-14 10:00 is a working day (调休).
    at(&m, &mut t, utc("2026-02-14T02:00:00Z")).await;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&cn), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);

    // Friday 2026-11-27 10:00 in Miami and New York, 09:00 in Oklahoma City.
    at(&m, &mut t, utc("2026-11-27T15:00:00Z")).await;
    import_registry(&m, "operator", "202,5550143\n", utc("2026-11-20T00:00:00Z")).await.expect("copy");
    let tenant_policy = pb::DialPolicy { tenant_id: t.id.clone(), callee_max_24h: Some(10), ..Default::default() };
    set_policy(&m, &t, tenant_policy).await.expect("policy");
    for (campaign, subject) in [("spring", Some("solar")), ("summer", Some("solar")), ("autumn", None)] {
        let p = pb::DialPolicy {
            tenant_id: t.id.clone(),
            campaign_id: campaign.into(),
            subject: subject.map(str::to_owned),
            ..Default::default()
        };
        set_policy(&m, &t, p).await.expect("campaign");
    }
    let bad = pb::DialPolicy { tenant_id: t.id.clone(), subject: Some(String::new()), ..Default::default() };
    assert_eq!(field_of(&set_policy(&m, &t, bad).await.expect_err("empty subject")), "policy.subject");
    let florida = lead(&m, &t, "+13055552000", true).await;
    let in_campaign =
        |t: &Tenant, c: &str| pb::CheckCallRequest { campaign_id: c.into(), ..call(t, by_lead(&florida), "marketing") };
    for campaign in ["spring", "summer", "spring"] {
        let d = check(&m, &t.tokens[AGENT1], in_campaign(&t, campaign)).await.expect("check");
        assert_eq!(verdict(&d), pb::Verdict::Allow, "{campaign}: {:?}", d.rules);
        assert_eq!(rule(&d, "window.us-fl").outcome, pb::Verdict::Allow as i32);
        record(&m, &t, &d.decision_id).await.expect("attempt");
    }
    // Florida: three calls in 24 hours on one subject, whatever the campaign.
    let d = check(&m, &t.tokens[AGENT1], in_campaign(&t, "summer")).await.expect("check");
    assert_eq!(
        (verdict(&d), rule(&d, "cap.subject.24h").reason.as_str()),
        (pb::Verdict::Deny, "3 of 3 calls in the last 24 h on this subject")
    );
    let d = check(&m, &t.tokens[AGENT1], in_campaign(&t, "autumn")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "another subject: {:?}", d.rules);
    // 20:30 in Miami: inside the federal window, outside Florida's; the stricter wins.
    let p = check(&m, &t.tokens[AGENT1], plan(&t, by_lead(&florida), "marketing", utc("2026-11-28T01:30:00Z"))).await;
    let p = p.expect("plan");
    assert_eq!(rule(&p, "window.us-tcpa").outcome, pb::Verdict::Allow as i32);
    assert_eq!(
        (verdict(&p), rule(&p, "window.us-fl").reason.as_str()),
        (pb::Verdict::Defer, "Fri 20:30 America/New_York is outside 08:00–20:00")
    );
    // A New York number whose address is in Oklahoma: Oklahoma's pack applies too.
    let input = vpb::LeadInput {
        phones: vec!["+12125552001".into()],
        address: Some(vpb::Address { province: "Oklahoma".into(), ..Default::default() }),
        ..Default::default()
    };
    let req = vpb::CreateLeadRequest { tenant_id: t.id.clone(), lead: Some(input) };
    let okie = m.vault().create_lead(with(&t.tokens[AGENT1], Request::new(req))).await.expect("lead").into_inner().id;
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&okie), "service")).await.expect("check");
    assert_eq!(rule(&d, "window.us-ok").outcome, pb::Verdict::Allow as i32, "{:?}", d.rules);

    // Reassigned numbers: consent from before the disconnection does not count.
    let before = lead(&m, &t, "+12125552002", true).await; // consent of 2026-10-28
    let after = zoned_lead(&m, &t, "+12125552003", "", false).await;
    let consent = vpb::RecordConsentRequest {
        tenant_id: t.id.clone(),
        lead_id: after.clone(),
        purpose: "marketing".into(),
        channel: "web_form".into(),
        evidence: Some(vpb::ConsentEvidence { form_sha256: vec![7; 32], ..Default::default() }),
        granted_at: Some(ts(utc("2026-11-26T12:00:00Z"))),
        expires_at: None,
    };
    m.vault().record_consent(with(&t.tokens[AGENT1], Request::new(consent))).await.expect("consent");
    let results = "+12125552002,2026-10-28,yes\n+12125552003,2026-01-01,yes\nnot a line\n";
    let refused = import_results(&m, &t, AGENT1, results, utc("2026-11-20T00:00:00Z")).await.expect_err("agent");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let done = import_results(&m, &t, COMPLIANCE, results, utc("2026-11-20T00:00:00Z")).await.expect("import");
    assert_eq!((done.loaded, done.rejected), (2, 1));
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&before), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Deny);
    assert!(
        rule(&d, "consent.reassigned")
            .reason
            .starts_with("the number was permanently disconnected after 2026-10-28, after the consent of 2026-10-28"),
        "{:?}",
        d.rules
    );
    assert!(rule(&d, "consent.reassigned").reason.ends_with("(reassigned-numbers results of 2026-11-20)"));
    let d = check(&m, &t.tokens[AGENT1], call(&t, by_lead(&after), "marketing")).await.expect("check");
    assert_eq!(verdict(&d), pb::Verdict::Allow, "{:?}", d.rules);
    assert!(rule(&d, "consent.reassigned").reason.starts_with("the consent of 2026-11-26 came after"));
    let future = import_results(&m, &t, COMPLIANCE, results, utc("2026-12-20T00:00:00Z")).await.expect_err("future");
    assert_eq!(field_of(&future), "header.copy_date");

    // From 1 December, the missing 2027 calendar is reported once for the tenant.
    at(&m, &mut t, utc("2026-12-02T02:00:00Z")).await;
    for _ in 0..2 {
        check(&m, &t.tokens[AGENT1], call(&t, by_lead(&cn), "marketing")).await.expect("check");
    }
    let missing = audit_events(&m, &t, "dialer.calendar.missing", 1).await;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!((missing[0].details["pack"].as_str(), missing[0].details["year"].as_str()), ("cn", "2027"));
}

/// The `kid` header of an access token.
fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}

/// A signing key revoked in an emergency stops verifying at every service
/// within the key refresh interval; a new login works at once.
async fn a_revoked_signing_key_stops_everywhere(postgres: bool) {
    use guardline_proto::identity::v1 as idpb;
    let m = start(postgres).await;
    let mut t = tenant(&m).await;
    let token = t.tokens[AGENT1].clone();
    let tenant_id = t.id.clone();
    let at_vault = |token: String| {
        let req = vpb::GetLeadRequest { tenant_id: tenant_id.clone(), lead_id: "l-none".into() };
        let mut v = m.vault();
        async move { v.get_lead(with(&token, Request::new(req))).await.expect_err("no such lead").code() }
    };
    let at_dialer = |token: String| {
        let mut d = m.dialer();
        async move { d.get_registry_status(with(&token, Request::new(pb::GetRegistryStatusRequest {}))).await.map(|_| ()) }
    };
    assert_eq!(at_vault(token.clone()).await, Code::NotFound, "the token is good at the vault");
    at_dialer(token.clone()).await.expect("and at the dialer");
    let kid = kid_of(&token);
    let revoke = |kid: &str, reason: &str| idpb::RevokeSigningKeyRequest { kid: kid.into(), reason: reason.into() };
    let mut as_agent = guardline_proto::identity::v1::identity_service_client::IdentityServiceClient::new(
        m.channel(&m.id_uri, "gateway"),
    );
    let refused = as_agent.revoke_signing_key(with(&token, Request::new(revoke(&kid, "test")))).await;
    assert_eq!(refused.expect_err("not a platform admin").code(), Code::PermissionDenied);
    let no_reason = m.identity().revoke_signing_key(revoke(&kid, " ")).await.expect_err("no reason");
    assert_eq!(field_of(&no_reason), "reason");
    let unknown = m.identity().revoke_signing_key(revoke("k-unknown", "test")).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    m.identity().revoke_signing_key(revoke(&kid, "suspected compromise")).await.expect("revoked");
    // Both services drop the key at their next refresh.
    let mut stopped = false;
    for _ in 0..100 {
        let vault = at_vault(token.clone()).await;
        let dialer = at_dialer(token.clone()).await;
        if vault == Code::Unauthenticated && dialer.is_err_and(|s| s.code() == Code::Unauthenticated) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the revoked key still verifies");
    t.login(&m).await;
    assert_eq!(at_vault(t.tokens[AGENT1].clone()).await, Code::NotFound, "a new key signs new tokens");
    at_dialer(t.tokens[AGENT1].clone()).await.expect("at the dialer too");
}

/// The tenant's audit events of `action`, once at least `want` arrived
/// (the outbox delivers them asynchronously).
async fn audit_events(m: &Mesh, t: &Tenant, action: &str, want: usize) -> Vec<guardline_proto::audit::v1::AuditEvent> {
    use guardline_proto::audit::v1::QueryEventsRequest;
    use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
    let mut audit = AuditServiceClient::new(m.channel(&m.audit_uri, "gateway"));
    let mut last = Vec::new();
    for _ in 0..100 {
        let q = QueryEventsRequest {
            tenant_id: t.id.clone(),
            action: action.into(),
            page: Some(guardline_proto::common::v1::PageRequest { page_size: 500, ..Default::default() }),
            ..Default::default()
        };
        last =
            audit.query_events(with(&t.tokens[COMPLIANCE], Request::new(q))).await.expect("query").into_inner().events;
        if last.len() >= want {
            // Give a duplicate the chance to show up before counting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let q = QueryEventsRequest {
                tenant_id: t.id.clone(),
                action: action.into(),
                page: Some(guardline_proto::common::v1::PageRequest { page_size: 500, ..Default::default() }),
                ..Default::default()
            };
            return audit
                .query_events(with(&t.tokens[COMPLIANCE], Request::new(q)))
                .await
                .expect("query")
                .into_inner()
                .events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("only {} {action} events arrived", last.len());
}

guardline_testkit::on_both_stores!(
    a_decision_explains_every_rule,
    the_national_registry,
    caps_hold_under_parallel_attempts,
    opt_outs_and_tenant_lists,
    policies_per_tenant_and_campaign,
    privacy_numbers,
    a_line_drifting_toward_blocking_is_throttled,
    the_servers_clock_decides,
    rules_hold_at_every_clock_setting,
    calendars_state_laws_and_reassigned_numbers,
    a_revoked_signing_key_stops_everywhere,
);
