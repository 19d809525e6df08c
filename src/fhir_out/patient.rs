//! A person's golden record as a FHIR R4 `Patient`, with `link` for merges.

use serde_json::{Value, json};

use super::{FhirOutConfig, PersonInput, clean, meta};
use crate::model::{ContactSystem, Identifier, Sex};

const NAME_USES: &[&str] = &[
    "usual",
    "official",
    "temp",
    "nickname",
    "anonymous",
    "old",
    "maiden",
];
const TELECOM_USES: &[&str] = &["home", "work", "temp", "old", "mobile"];
const ADDRESS_USES: &[&str] = &["home", "work", "temp", "old", "billing"];

/// The person as a `Patient`. A person merged into another is `active: false` with a `link`
/// of type `replaced-by` to it; the survivor carries `replaces` links to the persons merged
/// into it.
pub fn patient(p: &PersonInput<'_>, cfg: &FhirOutConfig) -> Value {
    let profile = p.profile;
    let mut ids: Vec<&Identifier> = Vec::new();
    for i in profile.identifiers.iter().chain(p.identifiers) {
        if !ids.iter().any(|o| o.system == i.system && o.value == i.value) {
            ids.push(i);
        }
    }
    let identifier: Vec<Value> = ids
        .iter()
        .map(|i| {
            json!({
                "system": cfg.system_uri(&i.system),
                "value": i.value,
                "type": i.kind.as_ref().map(|k| json!({"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": k.trim()
                }]})),
            })
        })
        .collect();
    let name: Vec<Value> = profile
        .names
        .iter()
        .map(|n| {
            json!({
                "use": allowed(n.name_use.as_deref(), NAME_USES),
                "text": n.text,
                "family": n.family,
                "given": n.given,
                "prefix": n.prefix.as_ref().map(|p| vec![p]),
                "suffix": n.suffix.as_ref().map(|s| vec![s]),
            })
        })
        .collect();
    let telecom: Vec<Value> = profile
        .telecom
        .iter()
        .map(|t| {
            json!({
                "system": match t.system {
                    ContactSystem::Phone => "phone",
                    ContactSystem::Email => "email",
                    ContactSystem::Fax => "fax",
                    ContactSystem::Other => "other",
                },
                "value": t.value,
                "use": allowed(t.contact_use.as_deref(), TELECOM_USES),
                "rank": t.rank.filter(|r| *r > 0),
            })
        })
        .collect();
    let address: Vec<Value> = profile
        .addresses
        .iter()
        .map(|a| {
            json!({
                "use": allowed(a.address_use.as_deref(), ADDRESS_USES),
                "line": a.lines,
                "city": a.city,
                "district": a.district,
                "state": a.state,
                "postalCode": a.postal_code,
                "country": a.country,
            })
        })
        .collect();
    let mut link: Vec<Value> = Vec::new();
    if let Some(survivor) = p.merged_into {
        link.push(json!({"other": {"reference": format!("Patient/{survivor}")}, "type": "replaced-by"}));
    }
    for merged in p.replaces {
        link.push(json!({"other": {"reference": format!("Patient/{merged}")}, "type": "replaces"}));
    }
    let mut res = json!({
        "resourceType": "Patient",
        "id": p.id,
        "meta": meta(p.updated_at),
        "identifier": identifier,
        "active": p.merged_into.is_none(),
        "name": name,
        "telecom": telecom,
        "gender": profile.sex.map(|s| match s {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }),
        "birthDate": profile.birth_date.as_ref().map(|d| d.as_str()),
        "address": address,
        "maritalStatus": profile.marital_status.as_ref().map(|m| json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": m.trim()
        }]})),
        "communication": profile.language.as_ref().map(|l| json!([{
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": l.trim()}]},
            "preferred": true
        }])),
        "link": link,
    });
    if let Some(at) = &profile.deceased_at {
        res["deceasedDateTime"] = json!(at.as_str());
    } else if let Some(d) = profile.deceased {
        res["deceasedBoolean"] = json!(d);
    }
    clean(&mut res);
    res
}

/// The value when FHIR's required value set holds it (lower-cased), else nothing.
fn allowed(v: Option<&str>, set: &[&'static str]) -> Option<&'static str> {
    let v = v?.trim().to_ascii_lowercase();
    set.iter().find(|s| **s == v).copied()
}
