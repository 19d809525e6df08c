//! A person's demographics as one source states them: the `ProfilePatch` a mapping produces.

use serde::{Deserialize, Serialize};

/// What one source record says about a person. Empty fields say nothing (they never erase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// Identifiers with their issuing system (MRN, national id, insurance number…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Names, the preferred (official) one first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<HumanName>,
    /// Date of birth, possibly partial (year, or year and month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<BirthDate>,
    /// Administrative sex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// Phones and emails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    /// Postal addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Preferred language, as a lower-case code (`vi`, `ru`, `zh`, `en`, or what the source sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// FHIR `marital-status` code (`M`, `S`, `D`, `W`…) or what the source sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marital_status: Option<String>,
    /// `true` when the source says the person has died.
    #[serde(
        default,
        deserialize_with = "bool_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub deceased: Option<bool>,
    /// When the person died, at the precision known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deceased_at: Option<super::When>,
    /// Consents and refusals, by purpose (`notifications`, `marketing`, `sms`, `email`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<Consent>,
    /// The channel the person wants to be reached on (`sms`, `email`, `zalo`, `phone`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_channel: Option<String>,
}

/// Mappings write text; a flag arrives as `true`/`false` (a code table turns `Y`/`N` into them).
fn bool_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(d)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom("expected true or false")),
        },
    }
}

/// A small count written as text (`"1"`) or as a number (`1`, or `1.0` as some JSON writers
/// spell a whole number).
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(u32),
        Float(f64),
        Text(String),
    }
    match Option::<Count>::deserialize(d)? {
        None => Ok(None),
        Some(Count::Number(n)) => Ok(Some(n)),
        Some(Count::Float(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            Ok(Some(f as u32))
        }
        Some(Count::Float(_)) => Err(serde::de::Error::custom("expected a whole number")),
        Some(Count::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a whole number")),
    }
}

/// A consent or a refusal for one purpose, as of a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// What it is about: `notifications`, `marketing`, `research`, a channel (`sms`)…
    pub scope: String,
    pub decision: ConsentDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<super::When>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsentDecision {
    Permit,
    Deny,
}

impl ProfilePatch {
    /// True when the patch says nothing at all.
    pub fn is_empty(&self) -> bool {
        self == &ProfilePatch::default()
    }

    /// Lays a newer statement *of the same source* over this one: each field it states replaces
    /// the older value (a list as a whole — the source's current phones, not every phone it
    /// ever sent), identifiers accumulate, consents replace per purpose. A field the newer
    /// statement leaves out keeps its value: an update never erases by omission.
    pub fn overlay(&mut self, newer: &ProfilePatch) {
        fn replace<T: Clone>(into: &mut Vec<T>, from: &[T]) {
            if !from.is_empty() {
                *into = from.to_vec();
            }
        }
        for i in &newer.identifiers {
            if !self.identifiers.contains(i) {
                self.identifiers.push(i.clone());
            }
        }
        replace(&mut self.names, &newer.names);
        replace(&mut self.telecom, &newer.telecom);
        replace(&mut self.addresses, &newer.addresses);
        self.absorb_scalars(newer);
    }

    /// Merges `newer` into `self`: scalar fields take the newer value when it has one; lists
    /// gain the entries they did not have. Nothing is ever erased by an empty value.
    pub fn absorb(&mut self, newer: &ProfilePatch) {
        fn union<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
            for item in from {
                if !into.contains(item) {
                    into.push(item.clone());
                }
            }
        }
        union(&mut self.identifiers, &newer.identifiers);
        // A newer name list states the person's current names: put them first.
        if !newer.names.is_empty() {
            let mut names = newer.names.clone();
            union(&mut names, &self.names);
            self.names = names;
        }
        union(&mut self.telecom, &newer.telecom);
        union(&mut self.addresses, &newer.addresses);
        self.absorb_scalars(newer);
    }

    /// The newer value of every scalar field it states; consents replaced per purpose.
    fn absorb_scalars(&mut self, newer: &ProfilePatch) {
        if newer.birth_date.is_some() {
            self.birth_date.clone_from(&newer.birth_date);
        }
        if newer.sex.is_some() {
            self.sex = newer.sex;
        }
        if newer.language.is_some() {
            self.language.clone_from(&newer.language);
        }
        if newer.marital_status.is_some() {
            self.marital_status.clone_from(&newer.marital_status);
        }
        if newer.deceased.is_some() {
            self.deceased = newer.deceased;
        }
        if newer.deceased_at.is_some() {
            self.deceased_at.clone_from(&newer.deceased_at);
            self.deceased.get_or_insert(true);
        }
        // The newer decision for a purpose replaces the older one.
        for c in &newer.consents {
            self.consents.retain(|old| old.scope != c.scope);
            self.consents.push(c.clone());
        }
        if newer.preferred_channel.is_some() {
            self.preferred_channel.clone_from(&newer.preferred_channel);
        }
    }
}

/// An identifier and the system that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// The issuing system or assigning authority (`HOSPITAL-A`, `VN-CCCD`, an OID or URI).
    pub system: String,
    /// The identifier itself.
    pub value: String,
    /// Its kind (HL7 table 0203: `MR`, `NI`, `SS`, `PI`…), when known.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A person's name. `family` is kept apart from `given` so that family-name-first cultures
/// (Vietnamese, Chinese) and given-name-first ones are both displayed right.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HumanName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// `official`, `usual`, `nickname`, `maiden`, `old`…
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub name_use: Option<String>,
    /// The whole name as the source displays it, in its own order (`Nguyễn Thị Lan`,
    /// `Иванов Иван Иванович`): family-name-first cultures keep their order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A date of birth at the precision the source knew it: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct BirthDate(String);

impl BirthDate {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BirthDate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        // Slicing below is by byte: only ASCII can be a date (and never panics).
        let ok = s.is_ascii()
            && match s.len() {
                4 => s.parse::<u16>().is_ok(),
                7 => s[..4].parse::<u16>().is_ok() && valid_month(&s[5..7]) && &s[4..5] == "-",
                10 => s.parse::<jiff::civil::Date>().is_ok(),
                _ => false,
            };
        if ok {
            Ok(BirthDate(s))
        } else {
            // The value itself is not repeated: it may be patient data.
            Err("not a date (YYYY, YYYY-MM or YYYY-MM-DD)".to_string())
        }
    }
}

fn valid_month(m: &str) -> bool {
    matches!(m.parse::<u8>(), Ok(1..=12))
}

impl From<BirthDate> for String {
    fn from(d: BirthDate) -> String {
        d.0
    }
}

/// Administrative sex (FHIR `AdministrativeGender`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
    Other,
    Unknown,
}

/// A phone number (E.164) or an email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPoint {
    pub system: ContactSystem,
    pub value: String,
    /// `home`, `work`, `mobile`, `temp`, `old`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub contact_use: Option<String>,
    /// The order of preference, 1 first (FHIR `ContactPoint.rank`).
    #[serde(
        default,
        deserialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContactSystem {
    Phone,
    Email,
    Fax,
    Other,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `home`, `work`, `temp`, `old`, `billing`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub address_use: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_dates_keep_their_precision_and_refuse_nonsense() {
        for ok in ["1985", "1985-03", "1985-03-07"] {
            assert!(BirthDate::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in [
            "1985-13",
            "1985-02-30",
            "85",
            "19850307",
            "",
            "2024ñ1",
            "2024€",
            "1985-0३",
        ] {
            assert!(BirthDate::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rank_reads_from_a_whole_number_however_written() {
        let rank = |json: &str| {
            serde_json::from_str::<ContactPoint>(&format!(
                r#"{{"system": "phone", "value": "1", "rank": {json}}}"#
            ))
            .map(|c| c.rank)
            .map_err(|e| e.to_string())
        };
        assert_eq!(rank("2"), Ok(Some(2)));
        assert_eq!(rank("2.0"), Ok(Some(2)));
        assert_eq!(rank("\" 2 \""), Ok(Some(2)));
        assert_eq!(rank("null"), Ok(None));
        for bad in ["2.5", "-1", "4294967296", "\"two\""] {
            assert!(rank(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn absorbing_never_erases_and_does_not_duplicate() {
        let id = Identifier {
            system: "H".into(),
            value: "1".into(),
            kind: None,
        };
        let mut old = ProfilePatch {
            identifiers: vec![id.clone()],
            sex: Some(Sex::Female),
            language: Some("vi".into()),
            ..Default::default()
        };
        let newer = ProfilePatch {
            identifiers: vec![id],
            birth_date: Some(BirthDate::try_from("1985-03-07".to_string()).unwrap()),
            ..Default::default()
        };
        old.absorb(&newer);
        assert_eq!(old.identifiers.len(), 1);
        assert_eq!(old.sex, Some(Sex::Female));
        assert_eq!(old.language.as_deref(), Some("vi"));
        assert_eq!(old.birth_date.unwrap().as_str(), "1985-03-07");
    }
}
