//! The body of a notification and its signature. Pure.
//!
//! `event`: `{"id", "event", "person", "merged"?, "record"?: {"kind", "resourceType", "id"},
//! "time", "subscription", "sequence"}`. `fhir`: a FHIR R4 `history` Bundle after the R4
//! Subscriptions Backport's `subscription-notification`: first a `Parameters` entry (the
//! subscription status: subscription, topic, type `event-notification`, the event's number,
//! time and focus), then one entry per resource the event is about, by reference (the
//! receiver reads them from the FHIR API). Neither carries patient data beyond ids.

use ring::hmac;
use serde_json::{Value, json};

use crate::store::DeliveryToSend;

/// The header with the body's signature: `sha256=<lower-case hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-carehub-signature";
/// The header with the change event's id: the same on every retry, the key to de-duplicate on.
pub const EVENT_ID_HEADER: &str = "x-carehub-event-id";
/// The header with the event's name.
pub const EVENT_HEADER: &str = "x-carehub-event";

/// The FHIR resource type of a clinical record kind.
pub fn resource_type(kind: &str) -> &'static str {
    match kind {
        "encounter" => "Encounter",
        "appointment" => "Appointment",
        "order" => "ServiceRequest",
        "result" => "Observation",
        "diagnosis" => "Condition",
        _ => "Basic",
    }
}

/// The body and its content type.
pub fn body(d: &DeliveryToSend) -> (Vec<u8>, &'static str) {
    match d.subscription.payload.as_str() {
        "fhir" => (fhir_bundle(d).to_string().into_bytes(), "application/fhir+json"),
        _ => (event(d).to_string().into_bytes(), "application/json"),
    }
}

fn record(d: &DeliveryToSend) -> Option<(&'static str, String)> {
    let kind = d.record_kind.as_deref()?;
    Some((
        resource_type(kind),
        d.record_id.map(|i| i.to_string()).unwrap_or_default(),
    ))
}

fn event(d: &DeliveryToSend) -> Value {
    let mut v = json!({
        "id": d.event_id,
        "event": d.event,
        "person": d.person_id,
        "time": d.created_at,
        "subscription": d.subscription.name,
        "sequence": d.seq,
    });
    if let Some(merged) = &d.other_person_id {
        v["merged"] = json!(merged);
    }
    if let (Some(kind), Some((rt, id))) = (&d.record_kind, record(d)) {
        v["record"] = json!({"kind": kind, "resourceType": rt, "id": id});
    }
    v
}

fn fhir_bundle(d: &DeliveryToSend) -> Value {
    let mut focus = vec![format!("Patient/{}", d.person_id)];
    if let Some((rt, id)) = record(d) {
        focus.insert(0, format!("{rt}/{id}"));
    }
    if let Some(merged) = &d.other_person_id {
        focus.push(format!("Patient/{merged}"));
    }
    let status = json!({
        "resourceType": "Parameters",
        "id": d.id,
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"]},
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": format!("Subscription/{}", d.subscription.name)}},
            {"name": "topic", "valueCanonical": format!("urn:carehub:event:{}", d.event)},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "notification-event", "part": [
                {"name": "event-number", "valueString": d.seq.to_string()},
                {"name": "timestamp", "valueInstant": d.created_at},
                {"name": "focus", "valueReference": {"reference": focus[0]}},
            ]},
        ],
    });
    let mut entry = vec![json!({
        "fullUrl": format!("urn:uuid:{}", d.id),
        "resource": status,
        "request": {"method": "GET", "url": format!("Subscription/{}/$status", d.subscription.name)},
        "response": {"status": "200"},
    })];
    let created = matches!(d.event.as_str(), "patient.created");
    for reference in &focus {
        entry.push(json!({
            "request": {"method": if created { "POST" } else { "PUT" }, "url": reference},
            "response": {"status": if created { "201" } else { "200" }},
        }));
    }
    json!({
        "resourceType": "Bundle",
        "id": d.event_id,
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"]},
        "type": "history",
        "timestamp": d.created_at,
        "entry": entry,
    })
}

/// `sha256=<hex>`: what [`SIGNATURE_HEADER`] carries.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChangeFilter, SubscriptionRow};

    fn delivery(payload: &str, kind: Option<&str>) -> DeliveryToSend {
        DeliveryToSend {
            id: "d1".into(),
            status: "queued".into(),
            attempts: 0,
            subscription: SubscriptionRow {
                name: "emr".into(),
                url: "http://emr.example/hook".into(),
                filter: ChangeFilter::default(),
                payload: payload.into(),
                secret: None,
                origin: "api".into(),
                through: 0,
                created_at: String::new(),
            },
            seq: 7,
            event_id: "e1".into(),
            event: if kind.is_some() {
                "record.changed"
            } else {
                "patient.created"
            }
            .into(),
            person_id: "p1".into(),
            other_person_id: None,
            record_kind: kind.map(str::to_string),
            record_id: kind.map(|_| 42),
            created_at: "2026-12-08T01:00:00Z".into(),
        }
    }

    #[test]
    fn the_event_payload_names_the_record_by_its_fhir_type() {
        let (body, ctype) = body(&delivery("event", Some("result")));
        assert_eq!(ctype, "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "e1");
        assert_eq!(v["person"], "p1");
        assert_eq!(
            v["record"],
            json!({"kind": "result", "resourceType": "Observation", "id": "42"})
        );
    }

    #[test]
    fn the_fhir_payload_is_a_history_bundle_with_the_status_first() {
        let (body, ctype) = body(&delivery("fhir", Some("appointment")));
        assert_eq!(ctype, "application/fhir+json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "history");
        assert_eq!(v["entry"][0]["resource"]["resourceType"], "Parameters");
        assert_eq!(v["entry"][1]["request"]["url"], "Appointment/42");
        assert_eq!(v["entry"][2]["request"]["url"], "Patient/p1");
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
