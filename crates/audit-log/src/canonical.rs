//! The canonical byte encoding of an audit event: the Merkle leaf `entry`.
//! Documented in `docs/audit-log-format.md`; any change is a new magic.
//!
//! ```text
//! "GLA1"                                   4 bytes
//! 15 fields, each: u32 big-endian length || UTF-8 bytes, in this order:
//!   id, tenant_id, time (RFC 3339, UTC, nanoseconds, 'Z'), actor.user_id,
//!   actor.service_identity, action, resource.type, resource.id, outcome
//!   ("allowed" | "denied" | "failed"), reason, context.source_address,
//!   context.device_id, context.user_agent, context.region, context.trace_id
//! u32 big-endian number of details, then per detail sorted by key:
//!   u32 length || key, u32 length || value
//! ```

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// The decoded fields of an event, in canonical form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Event id (idempotency key).
    pub id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Acting user.
    pub actor_user: String,
    /// Acting or relaying service.
    pub actor_service: String,
    /// Action.
    pub action: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource id.
    pub resource_id: String,
    /// `allowed`, `denied` or `failed`.
    pub outcome: String,
    /// Reason.
    pub reason: String,
    /// Source address.
    pub source_address: String,
    /// Device id.
    pub device_id: String,
    /// User agent.
    pub user_agent: String,
    /// Region.
    pub region: String,
    /// Trace id.
    pub trace_id: String,
    /// Details (ids and masked values only).
    pub details: HashMap<String, String>,
}

const MAGIC: &[u8; 4] = b"GLA1";

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Event {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let time = self.time.to_rfc3339_opts(SecondsFormat::Nanos, true);
        for f in [
            &self.id,
            &self.tenant_id,
            &time,
            &self.actor_user,
            &self.actor_service,
            &self.action,
            &self.resource_type,
            &self.resource_id,
            &self.outcome,
            &self.reason,
            &self.source_address,
            &self.device_id,
            &self.user_agent,
            &self.region,
            &self.trace_id,
        ] {
            put(&mut out, f);
        }
        let mut keys: Vec<&String> = self.details.keys().collect();
        keys.sort();
        out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        for k in keys {
            put(&mut out, k);
            put(&mut out, &self.details[k]);
        }
        out
    }

    /// Decodes canonical bytes; `None` if they are not exactly that.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return None;
        }
        let mut f = || r.string();
        let mut e = Event { id: f()?, tenant_id: f()?, ..Default::default() };
        let time = f()?;
        e.time = DateTime::parse_from_rfc3339(&time).ok()?.with_timezone(&Utc);
        e.actor_user = f()?;
        e.actor_service = f()?;
        e.action = f()?;
        e.resource_type = f()?;
        e.resource_id = f()?;
        e.outcome = f()?;
        e.reason = f()?;
        e.source_address = f()?;
        e.device_id = f()?;
        e.user_agent = f()?;
        e.region = f()?;
        e.trace_id = f()?;
        let n = r.u32()?;
        for _ in 0..n {
            let (k, v) = (r.string()?, r.string()?);
            e.details.insert(k, v);
        }
        (r.pos == bytes.len() && e.encode() == bytes).then_some(e)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            id: "e1".into(),
            tenant_id: "t1".into(),
            time: DateTime::parse_from_rfc3339("2026-11-28T10:00:00.123456789Z").expect("time").with_timezone(&Utc),
            action: "lead.reveal".into(),
            outcome: "allowed".into(),
            details: [("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let e = sample();
        let bytes = e.encode();
        assert_eq!(Event::decode(&bytes), Some(e.clone()));
        assert_eq!(bytes, e.clone().encode(), "detail order does not matter");
        assert!(bytes.starts_with(b"GLA1"));
    }

    #[test]
    fn any_change_or_garbage_is_detected() {
        let bytes = sample().encode();
        assert!(Event::decode(&bytes[..bytes.len() - 1]).is_none(), "truncated");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Event::decode(&extra).is_none(), "trailing bytes");
        assert!(Event::decode(b"GLA2").is_none());
        let mut flipped = bytes;
        flipped[10] ^= 0x20;
        assert_ne!(Event::decode(&flipped), Some(sample()));
    }
}
