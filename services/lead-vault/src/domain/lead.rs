//! A lead's clear content as callers submit and read it, and the rules a
//! creation or an update checks it against. Pure: no keys, no storage.

use guardline_phone::{Phone, PhoneError};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A structured address.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Address {
    /// Province or state.
    pub province: String,
    /// City.
    pub city: String,
    /// District.
    pub district: String,
    /// Street.
    pub street: String,
}

/// What dialer-policy needs to decide on a call.
#[derive(Clone)]
pub struct DialTarget {
    /// E.164 number.
    pub e164: String,
    /// Its blind index.
    pub blind_index: Vec<u8>,
    /// The callee's IANA time zone (empty when unknown).
    pub time_zone: String,
    /// Owning agent.
    pub owner_id: String,
    /// Owning team.
    pub team_id: String,
    /// Why the number is on the internal do-not-call list, if it is.
    pub internal_dnc: Option<String>,
    /// The address's province or state as written, for state laws.
    pub address_region: String,
}

/// What a caller submits for a lead, in clear.
#[derive(Clone, Default)]
pub struct LeadInput {
    /// Raw phone numbers.
    pub phones: Vec<String>,
    /// Region for national numbers.
    pub default_region: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: Address,
    /// Needs.
    pub needs: String,
    /// Notes.
    pub notes: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Source.
    pub source: String,
    /// Time zone.
    pub time_zone: String,
    /// Owner (the caller when empty).
    pub owner_id: String,
    /// Team (the caller's first team when empty).
    pub team_id: String,
}

/// The decrypted PII of a lead.
#[derive(Clone, Default)]
pub struct Pii {
    /// E.164 numbers.
    pub phones: Vec<String>,
    /// Name.
    pub name: String,
    /// Address.
    pub address: Address,
    /// Needs.
    pub needs: String,
    /// Notes.
    pub notes: String,
}

/// A revealable field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A phone, by position.
    Phone(usize),
    /// Name.
    Name,
    /// Full address.
    Address,
    /// Needs.
    Needs,
    /// Notes.
    Notes,
}

impl Field {
    /// The field's name in audit events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Phone(_) => "phone",
            Self::Name => "name",
            Self::Address => "address",
            Self::Needs => "needs",
            Self::Notes => "notes",
        }
    }
}

/// The lead's IANA time zone: the one given, else the one its primary number
/// determines (see [`Phone::derived_time_zone`]); empty when the number's
/// country has several zones, so that the dialer respects all of them.
pub fn time_zone_or_derived(given: &str, primary: &Phone) -> Result<String> {
    if given.is_empty() {
        return Ok(primary.derived_time_zone().map(|tz| tz.name().to_owned()).unwrap_or_default());
    }
    given.parse::<chrono_tz::Tz>().map_err(|_| Error::invalid("lead.time_zone", "not an IANA time zone"))?;
    Ok(given.to_owned())
}

/// Checks free text: length and no control characters (newlines allowed).
pub fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(field, format!("at most {max} printable characters")));
    }
    Ok(())
}

/// Parses a lead's numbers; the region applies to national numbers.
pub fn parse_phones(raw: &[String], default_region: &str) -> Result<Vec<Phone>> {
    if raw.is_empty() {
        return Err(Error::invalid("lead.phones", "at least one phone number"));
    }
    let region = (!default_region.is_empty()).then_some(default_region);
    raw.iter()
        .enumerate()
        .map(|(i, raw)| {
            Phone::parse(raw, region).map_err(|e| match e {
                PhoneError::Region => Error::invalid("lead.default_region", "not an ISO 3166 region code"),
                PhoneError::Invalid => Error::invalid(format!("lead.phones[{i}]"), "not a valid phone number"),
            })
        })
        .collect()
}

/// The name's limit, in characters.
pub const MAX_NAME: usize = 200;
/// The needs' and notes' limit, in characters.
pub const MAX_TEXT: usize = 4000;

/// Checks an address, part by part.
pub fn check_address(a: &Address) -> Result<()> {
    for (f, v) in [
        ("lead.address.province", &a.province),
        ("lead.address.city", &a.city),
        ("lead.address.district", &a.district),
        ("lead.address.street", &a.street),
    ] {
        check_text(f, v, MAX_NAME)?;
    }
    Ok(())
}

impl LeadInput {
    /// Checks the free-text fields: name, needs, notes, address.
    pub fn check_texts(&self) -> Result<()> {
        check_text("lead.name", &self.name, MAX_NAME)?;
        check_text("lead.needs", &self.needs, MAX_TEXT)?;
        check_text("lead.notes", &self.notes, MAX_TEXT)?;
        check_address(&self.address)
    }
}

impl Pii {
    /// One field's clear value.
    pub fn value(&self, field: Field) -> Result<String> {
        Ok(match field {
            Field::Phone(i) => {
                self.phones.get(i).cloned().ok_or_else(|| Error::invalid("index", "no phone at that position"))?
            }
            Field::Name => self.name.clone(),
            Field::Address => {
                let a = &self.address;
                [&a.province, &a.city, &a.district, &a.street]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Field::Needs => self.needs.clone(),
            Field::Notes => self.notes.clone(),
        })
    }
}
