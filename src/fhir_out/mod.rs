//! FHIR R4 out: the stored person (its golden record) and each stored clinical record as a
//! FHIR R4 resource (`serde_json::Value`), for the read API (`api/fhir_read`), Bulk Data
//! export and change notifications.
//!
//! A projection, not a translation: the canonical model (`model/`) is shaped after FHIR R4,
//! so each function here names fields and fills in what FHIR requires (a status, a code, a
//! participant) with the honest "unknown" FHIR provides, never with a guess. Pure: no I/O, no
//! store or HTTP; the callers read rows and hand them in as [`PersonInput`] / [`RecordInput`].
//!
//! What every resource carries:
//! - `id`: a person's id; a clinical record's row id (so `Observation/42`);
//! - `meta.versionId` / `meta.lastUpdated`: both from the row's `updated_at` (the version is
//!   that time in nanoseconds since 1970: it changes whenever the row does, see
//!   [`version_id`]);
//! - identifiers with their `system` as a URI by [`FhirOutConfig::system_uri`].
//!
//! Adding a record kind (immunization, document…) is one arm in [`record_resource`] and one
//! function in `clinical.rs`.

mod clinical;
mod config;
mod patient;

use serde_json::{Map, Value, json};

pub use clinical::diagnostic_report;
pub use config::FhirOutConfig;
pub use patient::patient;

/// A stored person, as the projection needs it.
#[derive(Debug, Clone, Copy)]
pub struct PersonInput<'a> {
    pub id: &'a str,
    /// The golden record.
    pub profile: &'a crate::model::ProfilePatch,
    /// Identifiers the store holds for the person besides those of the golden record (the
    /// `identifiers` table); duplicates are dropped.
    pub identifiers: &'a [crate::model::Identifier],
    /// The row's `updated_at` (RFC 3339).
    pub updated_at: &'a str,
    /// The person this one was merged into (`Patient.link` `replaced-by`).
    pub merged_into: Option<&'a str>,
    /// The persons merged into this one (`Patient.link` `replaces`).
    pub replaces: &'a [String],
}

/// A stored clinical record, as the projection needs it.
#[derive(Debug, Clone, Copy)]
pub struct RecordInput<'a> {
    /// The row id: the resource's id.
    pub id: i64,
    /// `encounter`, `appointment`, `order`, `result`, `diagnosis` (what `clinical_records.kind` holds).
    pub kind: &'a str,
    /// The system that sent it (its identifier's system).
    pub source_system: &'a str,
    /// The key that recognises it in its system (its identifier's value).
    pub key: &'a str,
    /// The person it is filed under (its `subject`/`patient`).
    pub person_id: &'a str,
    /// The status column (it wins over the data's: a deletion sets it to `entered-in-error`).
    pub status: Option<&'a str>,
    /// The record as stored (`ClinicalRecord` JSON; nulls are ignored).
    pub data: &'a Value,
    /// The row's `updated_at` (RFC 3339).
    pub updated_at: &'a str,
}

impl<'a> RecordInput<'a> {
    /// The input of a timeline entry (`Store::timeline`).
    pub fn of(e: &'a crate::store::TimelineEntry) -> RecordInput<'a> {
        RecordInput {
            id: e.id,
            kind: &e.kind,
            source_system: &e.source_system,
            key: &e.key,
            person_id: e.person_id.as_deref().unwrap_or(""),
            status: e.status.as_deref(),
            data: &e.record,
            updated_at: &e.updated_at,
        }
    }
}

/// The FHIR resource type a stored record kind is served as, `None` for a kind this module
/// does not serve (yet). A result is an `Observation`; an order is a `ServiceRequest` (and,
/// with its results, a `DiagnosticReport`, see [`diagnostic_report`]).
pub fn resource_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "encounter" => "Encounter",
        "appointment" => "Appointment",
        "order" => "ServiceRequest",
        "result" => "Observation",
        "diagnosis" => "Condition",
        _ => return None,
    })
}

/// The record kind a FHIR resource type is stored as (the inverse of [`resource_type`];
/// `DiagnosticReport` is read from orders).
pub fn record_kind(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "Encounter" => "encounter",
        "Appointment" => "appointment",
        "ServiceRequest" | "DiagnosticReport" => "order",
        "Observation" => "result",
        "Condition" => "diagnosis",
        _ => return None,
    })
}

/// A stored clinical record as its FHIR resource; `None` for a kind not served or data that
/// is not a record of its kind (never a panic).
pub fn record_resource(r: &RecordInput<'_>, cfg: &FhirOutConfig) -> Option<Value> {
    let data = without_nulls(r.data);
    let mut res = match r.kind {
        "encounter" => clinical::encounter(r, serde_json::from_value(data).ok()?, cfg),
        "appointment" => clinical::appointment(r, serde_json::from_value(data).ok()?, cfg),
        "order" => clinical::service_request(r, serde_json::from_value(data).ok()?, cfg),
        "result" => clinical::observation(r, serde_json::from_value(data).ok()?, cfg),
        "diagnosis" => clinical::condition(r, serde_json::from_value(data).ok()?, cfg),
        _ => return None,
    };
    clean(&mut res);
    Some(res)
}

/// `meta.versionId` of a row last updated at `updated_at`: that instant in nanoseconds since
/// 1970 (digits only, a valid FHIR id); the text itself, stripped to `[A-Za-z0-9.-]`, when it
/// is no timestamp.
pub fn version_id(updated_at: &str) -> String {
    match updated_at.parse::<jiff::Timestamp>() {
        Ok(t) => t.as_nanosecond().to_string(),
        Err(_) => {
            let v: String = updated_at
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                .take(64)
                .collect();
            if v.is_empty() { "1".into() } else { v }
        }
    }
}

/// A FHIR `instant` for a stored time: UTC to the millisecond (readers built on
/// microsecond clocks refuse nanoseconds); `None` when it is no timestamp.
pub fn instant(at: &str) -> Option<String> {
    let t = at.parse::<jiff::Timestamp>().ok()?;
    Some(t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// `meta` of a row last updated at `updated_at`.
pub(crate) fn meta(updated_at: &str) -> Value {
    let mut m = Map::new();
    m.insert("versionId".into(), json!(version_id(updated_at)));
    if let Some(i) = instant(updated_at) {
        m.insert("lastUpdated".into(), json!(i));
    }
    Value::Object(m)
}

/// The data without its null fields (a later message clears a field by storing null).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Removes what FHIR forbids and a builder may have left: nulls, empty strings (after
/// trimming), empty arrays and empty objects, at every depth.
pub(crate) fn clean(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                clean(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                clean(x);
            }
            a.retain(|x| !is_empty(x));
        }
        Value::String(s) => {
            let t = s.trim();
            if t.len() != s.len() {
                *s = t.to_string();
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// A FHIR `dateTime` from a stored time: dates and instants are already in FHIR's form.
pub(crate) fn date_time(w: &crate::model::When) -> Value {
    json!(w.as_str())
}

/// A reference to a person.
pub(crate) fn patient_ref(person_id: &str) -> Value {
    json!({"reference": format!("Patient/{person_id}")})
}

#[cfg(test)]
mod tests;
