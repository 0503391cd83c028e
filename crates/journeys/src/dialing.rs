//! Journey 3, dialing: one explained decision before every call, made at
//! the services' clock. Every case is built from the real now (a callee
//! where it is midday, one where it is the middle of the night, the next
//! Saturday in Beijing), so the journey holds at any hour of any day.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use guardline_proto::dialer::v1 as dpb;
use guardline_proto::vault::v1 as vpb;

use crate::time::{cn_saturday_and_monday, nth, number_closed_now, number_open_now};
use crate::{Mesh, Org, at, bearer, consented_lead, dialer, refused, vault};

/// The line agent 1 calls from.
pub const AGENT_LINE: &str = "+14155552671";
/// The tenant's one privacy (AXB) number.
pub const PRIVACY_NUMBER: &str = "+14155550100";

/// 10:00 in Beijing on China's National Day 2026, a public holiday.
pub const NATIONAL_DAY_2026: &str = "2026-10-01T02:00:00Z";

/// What journey 3 saw.
#[derive(Debug)]
pub struct Dialing {
    /// When the journey began (the day of the registry copy).
    pub now: DateTime<Utc>,
    /// Numbers the registry copy loaded.
    pub loaded: u64,
    /// A lead whose number is on the national registry.
    pub registry: dpb::CheckCallResponse,
    /// A lead where it is the middle of the night, in campaign `sun`.
    pub asleep: dpb::CheckCallResponse,
    /// A plan for the next Saturday morning in Beijing.
    pub saturday: dpb::CheckCallResponse,
    /// The Monday 09:00 in Beijing after that Saturday.
    pub monday: DateTime<Utc>,
    /// A plan for [`NATIONAL_DAY_2026`].
    pub national_day: dpb::CheckCallResponse,
    /// What recording an attempt on the plan's decision answered.
    pub plan_attempt: tonic::Status,
    /// A lead where it is midday, under a cap of one call a day: the first
    /// call, and the next after it was placed.
    pub first: dpb::CheckCallResponse,
    /// See `first`.
    pub capped: dpb::CheckCallResponse,
    /// A lead that withdrew its consent.
    pub withdrawn: dpb::CheckCallResponse,
    /// The allowed call's decision, its number and its AXB binding.
    pub allowed: dpb::CheckCallResponse,
    /// See `allowed`.
    pub allowed_number: String,
    /// See `allowed`.
    pub binding: dpb::PrivacyBinding,
    /// What agent 1 got trying to resolve the binding.
    pub agent_resolves: tonic::Status,
    /// What the telephony bridge got resolving it.
    pub resolved: dpb::ResolveBindingResponse,
}

/// Agent 1's check of `lead` at the server's time, or a plan for `plan`.
pub fn call(org: &Org, lead: &str, plan: Option<DateTime<Utc>>) -> dpb::CheckCallRequest {
    dpb::CheckCallRequest {
        tenant_id: org.tenant.clone(),
        callee: Some(dpb::check_call_request::Callee::LeadId(lead.into())),
        caller_line: AGENT_LINE.into(),
        purpose: "marketing".into(),
        plan_at: plan.map(at),
        ..Default::default()
    }
}

/// The same check in campaign `sun`, which holds every callee to the
/// TCPA's 08:00–21:00 in the callee's local time.
fn in_sun(org: &Org, lead: &str) -> dpb::CheckCallRequest {
    dpb::CheckCallRequest { campaign_id: "sun".into(), ..call(org, lead, None) }
}

/// The rules of a decision that did not allow, as `rule: reason`.
pub fn denied_by(d: &dpb::CheckCallResponse) -> Vec<String> {
    d.rules
        .iter()
        .filter(|r| r.outcome != dpb::Verdict::Allow as i32)
        .map(|r| format!("{}: {}", r.rule, r.reason))
        .collect()
}

/// A decision in a line: its verdict and the rules that did not allow.
pub fn explain(d: &dpb::CheckCallResponse) -> String {
    let verdict = dpb::Verdict::try_from(d.verdict).map(|v| v.as_str_name()).unwrap_or("?");
    let denied = denied_by(d);
    let why = if denied.is_empty() { format!("{} rules passed", d.rules.len()) } else { denied.join("; ") };
    format!("{} ({why})", verdict.trim_start_matches("VERDICT_"))
}

async fn check(m: &impl Mesh, org: &Org, req: dpb::CheckCallRequest) -> Result<dpb::CheckCallResponse> {
    Ok(dialer(m, m.gateway())?.check_call(bearer(&org.agent1, req)).await?.into_inner())
}

async fn set_policy(m: &impl Mesh, org: &Org, policy: dpb::DialPolicy) -> Result<()> {
    let req = dpb::SetDialPolicyRequest { policy: Some(policy) };
    dialer(m, m.gateway())?.set_dial_policy(bearer(&org.admin, req)).await?;
    Ok(())
}

async fn attempt(m: &impl Mesh, org: &Org, d: &dpb::CheckCallResponse) -> Result<(), tonic::Status> {
    let req = dpb::RecordCallAttemptRequest {
        tenant_id: org.tenant.clone(),
        decision_id: d.decision_id.clone(),
        ..Default::default()
    };
    let mut dialer = dialer(m, m.gateway()).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    dialer.record_call_attempt(bearer(&org.agent1, req)).await.map(drop)
}

/// The operator loads today's national registry copy: two numbers.
async fn load_registry(m: &impl Mesh, today: NaiveDate) -> Result<u64> {
    use dpb::import_dnc_request::Item;
    let header = dpb::ImportDncHeader {
        list: dpb::DncList::National as i32,
        format: dpb::DncFormat::Ftc as i32,
        copy_date: today.and_hms_opt(0, 0, 0).map(|t| at(t.and_utc())),
        ..Default::default()
    };
    let copy = [Item::Header(header), Item::Data(b"202,5550143\n202,5550144\n".to_vec())]
        .map(|item| dpb::ImportDncRequest { item: Some(item) });
    Ok(dialer(m, "operator")?.import_dnc(tokio_stream::iter(copy)).await?.into_inner().loaded)
}

/// Journey 3; `works` says whether the callee's country (China) works on
/// a day, by its official calendar.
pub async fn dialing(m: &impl Mesh, org: &Org, works: impl Fn(NaiveDate) -> bool) -> Result<Dialing> {
    m.step("3. Dialing: one explained decision before every call, at the server's time");
    let now = Utc::now();
    let (open, closed) = (number_open_now(now), number_closed_now(now));
    let sun = dpb::DialPolicy {
        tenant_id: org.tenant.clone(),
        campaign_id: "sun".into(),
        jurisdiction_packs: Some(dpb::Strings { values: vec!["us-tcpa".into()] }),
        ..Default::default()
    };
    set_policy(m, org, sun).await?;
    let loaded = load_registry(m, now.date_naive()).await?;
    m.say(&format!("the operator loads the national registry copy of {}: {loaded} numbers", now.date_naive()));
    let listed = consented_lead(m, org, "+12025550143").await?;
    let registry = check(m, org, call(org, &listed, None)).await?;
    m.say(&format!("call a US lead on the registry: {}", explain(&registry)));
    let asleep = check(m, org, in_sun(org, &consented_lead(m, org, &nth(closed, 77)).await?)).await?;
    m.say(&format!("call a lead where it is the middle of the night now: {}", explain(&asleep)));
    let (saturday, monday, plan_attempt, national_day) = plans(m, org, now, works).await?;
    let (first, capped) = capped(m, org, &nth(open, 78)).await?;
    let withdrawn = withdrawn(m, org, &nth(open, 79)).await?;
    let allowed_number = nth(open, 80);
    let allowed_lead = consented_lead(m, org, &allowed_number).await?;
    let allowed = check(m, org, in_sun(org, &allowed_lead)).await?;
    let (binding, agent_resolves, resolved) = axb(m, org, &allowed_lead).await?;
    Ok(Dialing {
        now,
        loaded,
        registry,
        asleep,
        saturday,
        monday,
        national_day,
        plan_attempt,
        first,
        capped,
        withdrawn,
        allowed,
        allowed_number,
        binding,
        agent_resolves,
        resolved,
    })
}

/// Plans for a Chinese lead: the next Saturday morning in Beijing (with the
/// Monday 09:00 it defers to, and the refusal of a call recorded on it),
/// and National Day 2026.
async fn plans(
    m: &impl Mesh,
    org: &Org,
    now: DateTime<Utc>,
    works: impl Fn(NaiveDate) -> bool,
) -> Result<(dpb::CheckCallResponse, DateTime<Utc>, tonic::Status, dpb::CheckCallResponse)> {
    let (saturday_at, monday) = cn_saturday_and_monday(now, works);
    let cn = consented_lead(m, org, "+8613912340001").await?;
    let saturday = check(m, org, call(org, &cn, Some(saturday_at))).await?;
    let plan_attempt = refused(attempt(m, org, &saturday).await, "a call on a plan")?;
    let earliest = saturday.earliest_allowed_at.as_ref().and_then(|t| DateTime::from_timestamp(t.seconds, 0));
    m.say(&format!(
        "plan: a Chinese lead on Saturday {}: DEFER until {}: {}; recording a call on it: {:?}",
        saturday_at.date_naive(),
        earliest.map(|t| t.to_rfc3339()).unwrap_or_default(),
        explain(&saturday),
        plan_attempt.code()
    ));
    let national_day = check(m, org, call(org, &cn, Some(NATIONAL_DAY_2026.parse()?))).await?;
    m.say(&format!("plan: the same lead on National Day 2026: {}", explain(&national_day)));
    Ok((saturday, monday, plan_attempt, national_day))
}

/// Under a cap of one call per callee a day: the first call to `number`,
/// placed, and the next.
async fn capped(m: &impl Mesh, org: &Org, number: &str) -> Result<(dpb::CheckCallResponse, dpb::CheckCallResponse)> {
    let policy = dpb::DialPolicy { tenant_id: org.tenant.clone(), callee_max_24h: Some(1), ..Default::default() };
    set_policy(m, org, policy).await?;
    let lead = consented_lead(m, org, number).await?;
    let first = check(m, org, in_sun(org, &lead)).await?;
    m.say(&format!("with a cap of 1 call per callee per 24 h, a lead where it is midday now: {}", explain(&first)));
    attempt(m, org, &first).await?;
    let next = check(m, org, in_sun(org, &lead)).await?;
    m.say(&format!("the call is placed; the next one: {}", explain(&next)));
    Ok((first, next))
}

/// A lead of `number` withdraws its consent; the check that follows.
async fn withdrawn(m: &impl Mesh, org: &Org, number: &str) -> Result<dpb::CheckCallResponse> {
    let lead = consented_lead(m, org, number).await?;
    let history = vpb::GetConsentHistoryRequest { tenant_id: org.tenant.clone(), lead_id: lead.clone() };
    let h = vault(m)?.get_consent_history(bearer(&org.agent1, history)).await?.into_inner();
    let w = vpb::WithdrawConsentRequest { tenant_id: org.tenant.clone(), consent_id: h.records[0].id.clone() };
    vault(m)?.withdraw_consent(bearer(&org.agent1, w)).await?;
    let d = check(m, org, in_sun(org, &lead)).await?;
    m.say(&format!("a lead withdraws consent; calling now: {}", explain(&d)));
    Ok(d)
}

/// The allowed call gets an AXB number: agent 1 never sees the real
/// number and cannot resolve the binding; the telephony bridge does.
async fn axb(
    m: &impl Mesh,
    org: &Org,
    lead: &str,
) -> Result<(dpb::PrivacyBinding, tonic::Status, dpb::ResolveBindingResponse)> {
    let pool = dpb::AddPrivacyNumbersRequest { tenant_id: org.tenant.clone(), numbers: vec![PRIVACY_NUMBER.into()] };
    dialer(m, m.gateway())?.add_privacy_numbers(bearer(&org.admin, pool)).await?;
    let bind = dpb::BindPrivacyNumberRequest {
        tenant_id: org.tenant.clone(),
        agent_line: AGENT_LINE.into(),
        lead_id: lead.into(),
        ttl_seconds: 300,
    };
    let binding = dialer(m, m.gateway())?.bind_privacy_number(bearer(&org.agent1, bind)).await?.into_inner();
    m.say(&format!(
        "an allowed call: agent1's client gets privacy number {} and binding {}, never the real number",
        binding.privacy_number, binding.id
    ));
    let resolve = dpb::ResolveBindingRequest {
        tenant_id: org.tenant.clone(),
        privacy_number: binding.privacy_number.clone(),
        calling_line: AGENT_LINE.into(),
    };
    let as_agent = dialer(m, m.gateway())?.resolve_binding(bearer(&org.agent1, resolve.clone())).await;
    let agent_resolves = refused(as_agent, "agent 1 resolving a binding")?;
    m.say(&format!("agent1 tries to resolve it: {:?}", agent_resolves.code()));
    let resolved = dialer(m, "telephony-bridge")?.resolve_binding(resolve).await?.into_inner();
    m.say("the telephony bridge's identity resolves it to the callee and connects the call (audited)");
    Ok((binding, agent_resolves, resolved))
}
