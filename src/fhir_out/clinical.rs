//! Clinical records as FHIR R4 resources: `Encounter`, `Appointment`, `ServiceRequest`,
//! `Observation`, `Condition`, and a `DiagnosticReport` for an order with its results.
//!
//! Where FHIR requires an element the source did not send, the resource says "unknown" in
//! FHIR's own terms (`status: unknown`, a `NullFlavor` `UNK` class, a participant without
//! status `needs-action`) rather than inventing a value.

use serde_json::{Value, json};

use super::{FhirOutConfig, RecordInput, clean, date_time, meta, patient_ref};
use crate::model::{
    Appointment, AppointmentStatus, Code, Diagnosis, Encounter, EncounterStatus, LabResult, Order,
    OrderStatus, ResultStatus,
};

const NULL_FLAVOR: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";

/// The record's status: the column (a deletion sets it) when it is one `allowed` holds, else
/// the data's, else `fallback`.
fn status<'s>(r: &RecordInput<'_>, data: Option<&'s str>, allowed: &[&'s str], fallback: &'s str) -> &'s str {
    let pick = |s: &str| allowed.iter().find(|a| **a == s).copied();
    r.status
        .and_then(pick)
        .or_else(|| data.and_then(pick))
        .unwrap_or(fallback)
}

/// The record's identifier: its key in the system that sent it.
fn identifier(r: &RecordInput<'_>, cfg: &FhirOutConfig) -> Value {
    json!([{"system": cfg.system_uri(r.source_system), "value": r.key}])
}

fn base(resource_type: &str, r: &RecordInput<'_>, cfg: &FhirOutConfig) -> Value {
    json!({
        "resourceType": resource_type,
        "id": r.id.to_string(),
        "meta": meta(r.updated_at),
        "identifier": identifier(r, cfg),
    })
}

/// A `CodeableConcept` of a code (its system as a URI); `None` when it says nothing.
fn concept(c: &Code, cfg: &FhirOutConfig) -> Option<Value> {
    if c.code.is_none() && c.display.is_none() {
        return None;
    }
    let coding = c.code.as_ref().map(|code| {
        json!([{
            "system": c.system.as_deref().map(|s| cfg.code_system_uri(s)),
            "code": code.trim(),
            "display": c.display,
        }])
    });
    Some(json!({"coding": coding, "text": c.display}))
}

/// A concept with its text only.
fn text(t: &Option<String>) -> Option<Value> {
    t.as_ref().map(|t| json!({"text": t}))
}

/// An `instant` (a full timestamp), not a bare date.
fn is_instant(w: &crate::model::When) -> bool {
    w.as_str().len() > 10
}

fn finish(mut v: Value) -> Value {
    clean(&mut v);
    v
}

pub(super) fn encounter(r: &RecordInput<'_>, e: Encounter, cfg: &FhirOutConfig) -> Value {
    let mut v = base("Encounter", r, cfg);
    v["status"] = json!(status(
        r,
        e.status.map(|s| s.as_str()),
        EncounterStatus::ALL,
        "unknown"
    ));
    v["class"] = match &e.class {
        Some(c) => json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": c.trim()}),
        None => json!({"system": NULL_FLAVOR, "code": "UNK"}),
    };
    v["subject"] = patient_ref(r.person_id);
    v["period"] = json!({"start": e.start.as_ref().map(date_time), "end": e.end.as_ref().map(date_time)});
    v["participant"] = json!(
        e.practitioner
            .as_ref()
            .map(|p| vec![json!({"individual": {"display": p}})])
    );
    v["location"] = json!(
        e.location
            .as_ref()
            .map(|l| vec![json!({"location": {"display": l}})])
    );
    v["serviceType"] = json!(text(&e.service));
    v["reasonCode"] = json!(text(&e.reason).map(|t| vec![t]));
    v["hospitalization"] = json!({"dischargeDisposition": text(&e.discharge_disposition)});
    finish(v)
}

pub(super) fn appointment(r: &RecordInput<'_>, a: Appointment, cfg: &FhirOutConfig) -> Value {
    let mut v = base("Appointment", r, cfg);
    // AppointmentStatus has no "unknown": an appointment the source did not qualify is booked.
    v["status"] = json!(status(
        r,
        a.status.map(|s| s.as_str()),
        AppointmentStatus::ALL,
        "booked"
    ));
    // start and end are instants; a bare date is the period the patient asked for.
    let (start, end) = (a.start.as_ref(), a.end.as_ref());
    if start.is_some_and(is_instant) && end.is_none_or(is_instant) {
        v["start"] = json!(start.map(|s| s.as_str()));
        v["end"] = json!(end.map(|e| e.as_str()));
    } else if start.is_some() || end.is_some() {
        v["requestedPeriod"] = json!([{"start": start.map(date_time), "end": end.map(date_time)}]);
    }
    v["minutesDuration"] = json!(
        a.minutes
            .as_deref()
            .and_then(|m| m.trim().parse::<u32>().ok())
            .filter(|m| *m > 0)
    );
    v["serviceType"] = json!(concept(&a.service, cfg).map(|c| vec![c]));
    v["reasonCode"] = json!(text(&a.reason).map(|t| vec![t]));
    v["cancelationReason"] = json!(text(&a.cancellation_reason));
    v["comment"] = json!(a.comment);
    let mut participants = vec![json!({"actor": patient_ref(r.person_id), "status": "accepted"})];
    if let Some(p) = &a.practitioner {
        participants.push(json!({"actor": {"display": p}, "status": "accepted"}));
    }
    if let Some(l) = &a.location {
        participants.push(json!({"actor": {"display": l}, "status": "accepted"}));
    }
    v["participant"] = json!(participants);
    finish(v)
}

pub(super) fn service_request(r: &RecordInput<'_>, o: Order, cfg: &FhirOutConfig) -> Value {
    let mut v = base("ServiceRequest", r, cfg);
    let id_type = |code: &str| json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": code}]});
    let system = cfg.system_uri(r.source_system);
    let mut ids = vec![json!({"system": system, "value": r.key})];
    if let Some(p) = o.id.as_ref().filter(|p| *p != r.key) {
        ids.push(json!({"type": id_type("PLAC"), "system": system, "value": p}));
    }
    if let Some(f) = o.filler_id.as_ref().filter(|f| *f != r.key) {
        ids.push(json!({"type": id_type("FILL"), "system": system, "value": f}));
    }
    v["identifier"] = json!(ids);
    v["status"] = json!(status(
        r,
        o.status.map(|s| s.as_str()),
        OrderStatus::ALL,
        "unknown"
    ));
    v["intent"] = json!("order");
    v["code"] = json!(concept(&o.code, cfg));
    v["subject"] = patient_ref(r.person_id);
    v["authoredOn"] = json!(o.ordered_at.as_ref().map(date_time));
    v["priority"] = json!(
        o.priority
            .as_deref()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| ["routine", "urgent", "asap", "stat"].contains(&p.as_str()))
    );
    v["requester"] = json!(o.requester.as_ref().map(|d| json!({"display": d})));
    finish(v)
}

pub(super) fn observation(r: &RecordInput<'_>, o: LabResult, cfg: &FhirOutConfig) -> Value {
    let mut v = base("Observation", r, cfg);
    v["status"] = json!(status(
        r,
        o.status.map(|s| s.as_str()),
        ResultStatus::ALL,
        "unknown"
    ));
    v["category"] = json!(o.category.as_ref().map(|c| {
        let c = c.trim().to_ascii_lowercase();
        vec![json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": c
        }]})]
    }));
    v["code"] = concept(&o.code, cfg).unwrap_or_else(|| json!({"text": "unknown"}));
    v["subject"] = patient_ref(r.person_id);
    v["effectiveDateTime"] = json!(o.observed_at.as_ref().map(date_time));
    v["issued"] = json!(
        o.issued_at
            .as_ref()
            .filter(|w| is_instant(w))
            .and_then(|w| super::instant(w.as_str()))
    );
    let comparator = o
        .comparator
        .as_deref()
        .filter(|c| ["<", "<=", ">=", ">"].contains(c));
    if let Some(n) = o.numeric {
        v["valueQuantity"] = json!({"value": n, "comparator": comparator, "unit": o.unit});
    } else if let Some(c) = concept(&o.value_code, cfg) {
        v["valueCodeableConcept"] = c;
    } else if let Some(t) = &o.value {
        v["valueString"] = json!(t);
    }
    v["referenceRange"] = json!(o.reference_range.as_ref().map(|t| vec![json!({"text": t})]));
    v["interpretation"] = json!(o.abnormal_flag.as_ref().map(|f| vec![json!({"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": f.trim()
    }]})]));
    v["note"] = json!(o.notes.iter().map(|n| json!({"text": n})).collect::<Vec<_>>());
    finish(v)
}

pub(super) fn condition(r: &RecordInput<'_>, d: Diagnosis, cfg: &FhirOutConfig) -> Value {
    const CLINICAL: &[&str] = &[
        "active",
        "recurrence",
        "relapse",
        "inactive",
        "remission",
        "resolved",
    ];
    let mut v = base("Condition", r, cfg);
    if r.status == Some("entered-in-error") {
        v["verificationStatus"] = json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"
        }]});
    } else if let Some(s) = d.status.map(|s| s.as_str()).filter(|s| CLINICAL.contains(s)) {
        v["clinicalStatus"] = json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": s
        }]});
    }
    v["category"] = json!(d.kind.as_ref().map(|k| {
        let k = k.trim().to_ascii_lowercase();
        if k == "problem-list-item" || k == "encounter-diagnosis" {
            vec![json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": k}]})]
        } else {
            vec![json!({"text": k})]
        }
    }));
    v["code"] = json!(concept(&d.code, cfg));
    v["subject"] = patient_ref(r.person_id);
    v["onsetDateTime"] = json!(d.onset.as_ref().map(date_time));
    v["recordedDate"] = json!(d.recorded_at.as_ref().map(date_time));
    finish(v)
}

/// An order with its results as a `DiagnosticReport` (its id is the order's): `None` when
/// the record is no order or has no results yet. The status is the least settled of the
/// results' (`preliminary` while one is, `final` when all are final…).
pub fn diagnostic_report(
    order: &RecordInput<'_>,
    results: &[RecordInput<'_>],
    cfg: &FhirOutConfig,
) -> Option<Value> {
    if order.kind != "order" || results.is_empty() {
        return None;
    }
    let o: Order = serde_json::from_value(super::without_nulls(order.data)).ok()?;
    let parsed: Vec<(i64, LabResult, Option<&str>)> = results
        .iter()
        .filter(|r| r.kind == "result")
        .filter_map(|r| {
            let l: LabResult = serde_json::from_value(super::without_nulls(r.data)).ok()?;
            Some((r.id, l, r.status))
        })
        .collect();
    if parsed.is_empty() {
        return None;
    }
    let statuses: Vec<&str> = parsed
        .iter()
        .map(|(_, l, col)| {
            col.filter(|c| ResultStatus::ALL.contains(c))
                .or(l.status.map(|s| s.as_str()))
                .unwrap_or("unknown")
        })
        .collect();
    let report_status = if order.status == Some("entered-in-error") {
        "entered-in-error"
    } else if statuses
        .iter()
        .all(|s| *s == "cancelled" || *s == "entered-in-error")
    {
        "cancelled"
    } else if statuses.contains(&"registered")
        || statuses.contains(&"preliminary")
        || statuses.contains(&"unknown")
    {
        "preliminary"
    } else if statuses.contains(&"corrected") {
        "corrected"
    } else if statuses.contains(&"amended") {
        "amended"
    } else {
        "final"
    };
    let updated = results
        .iter()
        .map(|r| r.updated_at)
        .chain([order.updated_at])
        .max()
        .unwrap_or(order.updated_at);
    let effective = parsed
        .iter()
        .filter_map(|(_, l, _)| l.observed_at.as_ref())
        .min_by_key(|w| w.sort_key());
    let issued = parsed
        .iter()
        .filter_map(|(_, l, _)| l.issued_at.as_ref())
        .filter(|w| is_instant(w))
        .max_by_key(|w| w.sort_key());
    let code = concept(&o.code, cfg)
        .or_else(|| parsed.iter().find_map(|(_, l, _)| concept(&l.code, cfg)))
        .unwrap_or_else(|| json!({"text": "unknown"}));
    let mut v = json!({
        "resourceType": "DiagnosticReport",
        "id": order.id.to_string(),
        "meta": meta(updated),
        "identifier": identifier(order, cfg),
        "basedOn": [{"reference": format!("ServiceRequest/{}", order.id)}],
        "status": report_status,
        "code": code,
        "subject": patient_ref(order.person_id),
        "effectiveDateTime": effective.map(date_time),
        "issued": issued.and_then(|w| super::instant(w.as_str())),
        "result": parsed.iter().map(|(id, _, _)| json!({"reference": format!("Observation/{id}")})).collect::<Vec<_>>(),
    });
    clean(&mut v);
    Some(v)
}
